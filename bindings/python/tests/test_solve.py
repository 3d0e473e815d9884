"""KernelSolve / LazyTensor.solve: conjugate gradients on (alpha I + K) a = b.

Asserts: solutions equal numpy.linalg.solve of the dense float64 system
(N = 2,000, both axes, NumPy and torch, float32 to its precision); gradients
w.r.t. b, the points and a parameter equal the dense torch.linalg.solve
autograd and pass gradcheck / gradgradcheck at small N; preconditioned CG
(Nystrom, block-Jacobi on sorted clusters) takes fewer iterations than plain
CG and reaches the same solution; the scipy LinearOperator works with scipy's
cg; bad arguments raise ValueError / TypeError naming the argument."""
import warnings

import numpy as np
import pytest

import pykp
from pykp import cluster as pc

torch = pytest.importorskip("torch")

FORMULA = "Exp(-SqDist(x,y)*g)*b"


def aliases(d=1, cat="Vj"):
    return ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = %s(%d)" % (cat, d)]


def dense_kernel(x, gamma):
    return np.exp(-gamma * ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2000, 3))
    b = rng.standard_normal((2000, 2))
    return x, b


@pytest.mark.parametrize("axis", [1, 0])
def test_matches_numpy_solve_n2000(problem, axis):
    x, b = problem
    gamma, alpha = 4.0, 1.0
    Kinv = pykp.KernelSolve(FORMULA, aliases(2, "Vj" if axis == 1 else "Vi"), "b", axis=axis)
    a = Kinv(x, x, np.array([gamma]), b, alpha=alpha, eps=1e-10)
    ref = np.linalg.solve(dense_kernel(x, gamma) + alpha * np.eye(len(x)), b)
    assert a.shape == b.shape and a.dtype == np.float64
    assert np.abs(a - ref).max() <= 1e-9 * np.abs(ref).max()
    info = Kinv.info
    assert info.converged and 0 < info.iterations < 200 and info.residual <= 1e-10
    # the true residual of the answer
    r = b - (dense_kernel(x, gamma) + alpha * np.eye(len(x))) @ a
    assert np.linalg.norm(r) <= 1e-9


def test_torch_and_float32(problem):
    x, b = problem
    x, b = x[:500], b[:500, :1]
    gamma, alpha = 4.0, 0.5
    ref = np.linalg.solve(dense_kernel(x, gamma) + alpha * np.eye(len(x)), b)
    Kinv = pykp.KernelSolve(FORMULA, aliases(1), "b", axis=1)
    xt = torch.from_numpy(x)
    a = Kinv(xt, xt, torch.tensor([gamma], dtype=torch.float64), torch.from_numpy(b), alpha=alpha, eps=1e-10)
    assert isinstance(a, torch.Tensor) and a.dtype == torch.float64
    np.testing.assert_allclose(a.numpy(), ref, rtol=0, atol=1e-9 * np.abs(ref).max())
    a32 = Kinv(x.astype(np.float32), x.astype(np.float32), np.float32([gamma]), b.astype(np.float32), alpha=alpha,
               eps=1e-4)
    assert a32.dtype == np.float32
    assert np.abs(a32 - ref).max() <= 1e-4 * np.abs(ref).max()
    # 1-D b gives a 1-D answer
    a1 = Kinv(x, x, np.array([gamma]), b[:, 0], alpha=alpha, eps=1e-10)
    assert a1.shape == (500,)
    np.testing.assert_allclose(a1, ref[:, 0], atol=1e-9 * np.abs(ref).max())


def test_aliases_positions_and_var_syntax(problem):
    x, b = problem
    x, b = x[:300], b[:300, :1]
    ref = np.linalg.solve(dense_kernel(x, 3.0) + 0.2 * np.eye(300), b)
    # explicit positions, out of order; the unknown named as Var(k,d,cat)
    Kinv = pykp.KernelSolve("Exp(-SqDist(x,y)*g)*b", ["b = Vj(0,1)", "x = Vi(1,3)", "y = Vj(2,3)", "g = Pm(3,1)"],
                            "Var(0,1,1)", axis=1)
    a = Kinv(b, x, x, np.array([3.0]), alpha=0.2, eps=1e-10)
    np.testing.assert_allclose(a, ref, atol=1e-9 * np.abs(ref).max())
    Kinv = pykp.KernelSolve("Exp(-SqDist(x,y)*g)*b", ["g = Pm(1)", "b = Vj(1)", "x = Vi(3)", "y = Vj(3)"], "b", axis=1)
    a = Kinv(np.array([3.0]), b, x, x, alpha=0.2, eps=1e-10)
    np.testing.assert_allclose(a, ref, atol=1e-9 * np.abs(ref).max())


def test_lazytensor_solve(problem):
    x, b = problem
    x, b = x[:400], b[:400]
    ref = np.linalg.solve(dense_kernel(x, 5.0) + 0.3 * np.eye(400), b)
    x_i, x_j = pykp.LazyTensor(x[:, None, :]), pykp.LazyTensor(x[None, :, :])
    K = (-((x_i - x_j) ** 2).sum(-1) * 5.0).exp()
    a = K.solve(b, alpha=0.3, eps=1e-10)
    np.testing.assert_allclose(a, ref, atol=1e-9 * np.abs(ref).max())
    a = K.solve(pykp.Vi(b), alpha=0.3, eps=1e-10)  # a LazyTensor right-hand side
    np.testing.assert_allclose(a, ref, atol=1e-9 * np.abs(ref).max())
    a = K.solve(pykp.Vj(b), alpha=0.3, eps=1e-10)  # b indexed by j: the unknown by i, a sum over i
    np.testing.assert_allclose(a, ref, atol=1e-9 * np.abs(ref).max())
    # var: K linear in a j-variable already inside it
    v_j = pykp.Vj(np.zeros_like(b))
    Kv = (-((x_i - x_j) ** 2).sum(-1) * 5.0).exp() * v_j
    a = Kv.solve(pykp.Vi(b), var=v_j, alpha=0.3, eps=1e-10)
    np.testing.assert_allclose(a, ref, atol=1e-9 * np.abs(ref).max())
    # torch LazyTensors
    xt = torch.from_numpy(x)
    Kt = (-((pykp.LazyTensor(xt[:, None, :]) - pykp.LazyTensor(xt[None, :, :])) ** 2).sum(-1) * 5.0).exp()
    at = Kt.solve(torch.from_numpy(b), alpha=0.3, eps=1e-10)
    np.testing.assert_allclose(at.numpy(), ref, atol=1e-9 * np.abs(ref).max())
    with pytest.raises(ValueError, match="square"):
        K.solve(b[:10], alpha=0.3)
    with pytest.raises(ValueError, match="vector dimension 1"):
        (x_i - x_j).solve(b, alpha=0.3)


# ----------------------------------------------------------------- gradients


def _dense_torch_solve(x, g, b, alpha):
    K = torch.exp(-g * ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    return torch.linalg.solve(K + alpha * torch.eye(len(x), dtype=x.dtype), b)


def test_gradients_match_dense_autograd():
    rng = np.random.default_rng(1)
    n = 60
    x = torch.tensor(rng.uniform(0, 1, (n, 3)), requires_grad=True)
    g = torch.tensor([3.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(rng.standard_normal((n, 2)), requires_grad=True)
    w = torch.tensor(rng.standard_normal((n, 2)))
    Kinv = pykp.KernelSolve(FORMULA, aliases(2), "b", axis=1)
    a = Kinv(x, x, g, b, alpha=0.1, eps=1e-13)
    gx, gg, gb = torch.autograd.grad((a * w).sum() + (a**2).sum(), [x, g, b])
    ref = _dense_torch_solve(x, g, b, 0.1)
    rx, rg, rb = torch.autograd.grad((ref * w).sum() + (ref**2).sum(), [x, g, b])
    for got, want in ((gx, rx), (gg, rg), (gb, rb)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-7, atol=1e-9 * want.abs().max().item())


def test_gradcheck_and_gradgradcheck():
    rng = np.random.default_rng(2)
    n = 12
    x = torch.tensor(rng.uniform(0, 1, (n, 3)), requires_grad=True)
    y = torch.tensor(rng.uniform(0, 1, (n, 3)), requires_grad=True)
    g = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(rng.standard_normal((n, 1)), requires_grad=True)
    Kinv = pykp.KernelSolve(FORMULA, aliases(1), "b", axis=1)

    def f(x, g, b):
        return Kinv(x, x, g, b, alpha=0.5, eps=1e-14)

    assert torch.autograd.gradcheck(f, (x, g, b), eps=1e-6, atol=1e-7)
    assert torch.autograd.gradgradcheck(f, (x, g, b), eps=1e-6, atol=1e-6)
    # distinct x and y (the same points, distinct tensors): each gets its partial derivative
    with torch.no_grad():
        y.copy_(x)

    def h(x, y, b):
        return Kinv(x, y, g.detach(), b, alpha=0.5, eps=1e-14)

    assert torch.autograd.gradcheck(h, (x, y, b), eps=1e-6, atol=1e-7)


# ----------------------------------------------------------------- preconditioners


def test_nystrom_takes_fewer_iterations():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (800, 3))
    b = rng.standard_normal((800, 1))
    gamma, alpha = 2.0, 1e-3  # a smooth kernel: eigenvalues decay fast, CG is slow
    ref = np.linalg.solve(dense_kernel(x, gamma) + alpha * np.eye(800), b)
    Kinv = pykp.KernelSolve(FORMULA, aliases(1), "b", axis=1)
    a0 = Kinv(x, x, np.array([gamma]), b, alpha=alpha, rtol=1e-8, eps=0)
    plain = Kinv.info.iterations
    a1 = Kinv(x, x, np.array([gamma]), b, alpha=alpha, rtol=1e-8, eps=0, precond="nystrom", landmarks=60)
    nys = Kinv.info
    assert nys.preconditioner == "nystrom" and nys.converged
    print("nystrom", nys.iterations, "plain", plain)
    assert nys.iterations < plain / 3, (nys.iterations, plain)
    for a in (a0, a1):
        assert np.linalg.norm(a - ref) <= 1e-5 * np.linalg.norm(ref)


def test_block_jacobi_takes_fewer_iterations():
    rng = np.random.default_rng(4)
    # 12 tight blobs at the centres of distinct cells of side 2: grid_cluster finds them
    cells = rng.permutation(np.array(np.meshgrid(*[np.arange(4)] * 3)).reshape(3, -1).T)[:12]
    centers = 2.0 * cells + 1.0
    x = centers[rng.integers(0, 12, 300)] + np.clip(0.1 * rng.standard_normal((300, 3)), -0.9, 0.9)
    lab = pc.grid_cluster(x, 2.0)
    assert len(np.unique(lab)) == 12
    x, lab = pc.sort_clusters(x, lab)
    blocks = pc.cluster_ranges(lab)
    b = rng.standard_normal((300, 1))
    gamma, alpha = 2.0, 1e-4  # tight blobs: K nearly block-diagonal, each block ill-conditioned
    ref = np.linalg.solve(dense_kernel(x, gamma) + alpha * np.eye(300), b)
    Kinv = pykp.KernelSolve(FORMULA, aliases(1), "b", axis=1)
    a0 = Kinv(x, x, np.array([gamma]), b, alpha=alpha, rtol=1e-9, eps=0, maxiter=5000)
    plain = Kinv.info.iterations
    a1 = Kinv(x, x, np.array([gamma]), b, alpha=alpha, rtol=1e-9, eps=0, precond="block_jacobi", blocks=blocks)
    bj = Kinv.info
    assert bj.preconditioner == "block_jacobi" and bj.converged
    print("block-Jacobi", bj.iterations, "plain", plain)
    assert bj.iterations < plain / 3, (bj.iterations, plain)
    for a in (a0, a1):
        assert np.linalg.norm(a - ref) <= 1e-5 * np.linalg.norm(ref)
    # torch tensors, with gradients, through the preconditioned solve
    xt = torch.from_numpy(x).requires_grad_()
    bt = torch.from_numpy(b).requires_grad_()
    at = Kinv(xt, xt, torch.tensor([gamma], dtype=torch.float64), bt, alpha=alpha, rtol=1e-10, eps=0,
              precond="block_jacobi", blocks=torch.from_numpy(blocks))
    np.testing.assert_allclose(at.detach().numpy(), a1, atol=1e-6 * np.abs(a1).max())
    (at**2).sum().backward()
    assert torch.isfinite(xt.grad).all() and torch.isfinite(bt.grad).all()


def test_callable_preconditioner_and_dense_blocks():
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (100, 3))
    b = rng.standard_normal((100, 2))
    A = dense_kernel(x, 3.0) + 0.1 * np.eye(100)
    Ainv = np.linalg.inv(A)
    Kinv = pykp.KernelSolve(FORMULA, aliases(2), "b", axis=1)
    a = Kinv(x, x, np.array([3.0]), b, alpha=0.1, eps=1e-10, precond=lambda r: Ainv @ r)
    assert Kinv.info.iterations <= 2  # the exact inverse
    np.testing.assert_allclose(a, np.linalg.solve(A, b), atol=1e-9)
    # the kernel blocks the preconditioners read: K[rows, cols] with the (i d + r, j d + c) layout
    from pykp.solve import KernelOperator

    op = KernelOperator(Kinv.key, [x, x, np.array([3.0]), b], 3)
    rows, cols = np.array([3, 7, 50]), np.arange(0, 100, 3)
    blk = op.dense(rows, cols)
    K = dense_kernel(x, 3.0)
    want = np.kron(K[np.ix_(rows, cols)], np.eye(2))
    np.testing.assert_allclose(blk, want, rtol=1e-13, atol=1e-15)


def test_linear_operators_with_scipy_cg():
    from scipy.sparse.linalg import cg

    rng = np.random.default_rng(6)
    x = rng.uniform(0, 1, (300, 3))
    b = rng.standard_normal(300)
    A = dense_kernel(x, 3.0) + 0.5 * np.eye(300)
    Kinv = pykp.KernelSolve(FORMULA, aliases(1), "b", axis=1)
    L = Kinv.linear_operator(x, x, np.array([3.0]), b, alpha=0.5)
    v = rng.standard_normal(300)
    np.testing.assert_allclose(L @ v, A @ v, rtol=1e-12)
    sol, code = cg(L, b, rtol=1e-12, atol=0, maxiter=1000) if _cg_has_rtol() else cg(L, b, tol=1e-12, maxiter=1000)
    assert code == 0
    np.testing.assert_allclose(sol, np.linalg.solve(A, b), atol=1e-8)
    K = (-((pykp.Vi(x) - pykp.Vj(x)) ** 2).sum(-1) * 3.0).exp()
    np.testing.assert_allclose(pykp.aslinearoperator(K) @ v, (A - 0.5 * np.eye(300)) @ v, rtol=1e-12)


def _cg_has_rtol():
    import inspect

    from scipy.sparse.linalg import cg

    return "rtol" in inspect.signature(cg).parameters


# ----------------------------------------------------------------- errors


def test_bad_arguments():
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, (50, 3))
    b = rng.standard_normal((50, 1))
    g = np.array([3.0])
    with pytest.raises(ValueError, match="varinvalias 'c' is not one of the aliases"):
        pykp.KernelSolve(FORMULA, aliases(1), "c", axis=1)
    with pytest.raises(ValueError, match="must be a Vj variable"):
        pykp.KernelSolve(FORMULA, aliases(1), "x", axis=1)
    with pytest.raises(ValueError, match="must be a Vi variable"):
        pykp.KernelSolve(FORMULA, aliases(1), "b", axis=0)
    with pytest.raises(ValueError, match="dimension"):
        pykp.KernelSolve("Exp(-SqDist(x,y)*g)*Sum(b)", aliases(2), "b", axis=1)
    with pytest.raises(TypeError, match="varinvalias"):
        pykp.KernelSolve(FORMULA, aliases(1), 1.5, axis=1)
    Kinv = pykp.KernelSolve(FORMULA, aliases(1), "b", axis=1)
    with pytest.raises(ValueError, match="square"):
        Kinv(x[:40], x, g, b)
    with pytest.raises(ValueError, match="argument 1 has 40 rows"):
        Kinv(x, x[:40], g, b)
    with pytest.raises(ValueError, match="alpha"):
        Kinv(x, x, g, b, alpha=-1.0)
    with pytest.raises(ValueError, match="eps"):
        Kinv(x, x, g, b, eps=float("nan"))
    with pytest.raises(ValueError, match="eps or rtol"):
        Kinv(x, x, g, b, eps=0, rtol=0)
    with pytest.raises(ValueError, match="maxiter"):
        Kinv(x, x, g, b, maxiter=0)
    with pytest.raises(ValueError, match="precond"):
        Kinv(x, x, g, b, precond="ilu")
    with pytest.raises(ValueError, match="alpha > 0"):
        Kinv(x, x, g, b, alpha=0.0, precond="nystrom")
    with pytest.raises(ValueError, match="landmarks"):
        Kinv(x, x, g, b, alpha=0.1, precond="nystrom", landmarks=500)
    with pytest.raises(ValueError, match="needs blocks"):
        Kinv(x, x, g, b, precond="block_jacobi")
    with pytest.raises(ValueError, match="blocks must be ranges"):
        Kinv(x, x, g, b, precond="block_jacobi", blocks=np.array([[0, 60]]))
    with pytest.raises(ValueError, match="overlap"):
        Kinv(x, x, g, b, precond="block_jacobi", blocks=np.array([[0, 30], [20, 50]]))
    with pytest.raises(ValueError, match="2 columns|1 columns"):
        Kinv(x, x, g, np.zeros((50, 2)))
    with pytest.raises(ValueError, match="takes 4 arguments"):
        Kinv(x, x, g)
    with pytest.raises(TypeError, match="must be an array"):
        Kinv(x, x, g, [1.0] * 50)
    with pytest.raises(TypeError, match="ranges_i must be a NumPy array"):
        Kinv(x, x, g, b, ranges=(0,) * 6)
    with pytest.raises(ValueError, match="NaN"):
        Kinv(x, x, g, np.full((50, 1), np.nan))
    neg = pykp.KernelSolve("-" + FORMULA, aliases(1), "b", axis=1)
    with pytest.raises(ValueError, match="not positive definite"):
        neg(x, x, g, b, alpha=0.0)
    # non-convergence: a warning and the flag, never silence
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        Kinv(x, x, g, b, alpha=1e-8, eps=1e-14, maxiter=2)
    assert any("did not converge" in str(m.message) for m in w)
    assert Kinv.info.converged is False and Kinv.info.iterations == 2
    # b = 0: a = 0 without iterating
    assert (Kinv(x, x, g, np.zeros((50, 1))) == 0).all() and Kinv.info.iterations == 0
