"""
pykp.ot's interface: argument checks (ValueError / TypeError naming the
argument), degenerate inputs (identical clouds, single points, zero weights,
small blur), NumPy in / NumPy out, the tolerance stop, the transport plan and
the free-support barycenter.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import pykp  # noqa: E402
import pykp.ot as kot  # noqa: E402

F64 = torch.float64


def cloud(n, d=3, seed=0, shift=0.0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g, dtype=dtype) + shift


# ----------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "kw,word",
    [
        (dict(loss="wasserstein"), "loss"),
        (dict(p=3), "p"),
        (dict(p=0), "p"),
        (dict(blur=0), "blur"),
        (dict(blur=-1.0), "blur"),
        (dict(blur=math.nan), "blur"),
        (dict(reach=0), "reach"),
        (dict(diameter=-2.0), "diameter"),
        (dict(scaling=1.0), "scaling"),
        (dict(scaling=0), "scaling"),
        (dict(debias="yes"), "debias"),
        (dict(backend="multiscale", p=1), "multiscale"),
        (dict(cluster_scale=0), "cluster_scale"),
        (dict(backend="gpu"), "backend"),
        (dict(tol=-1e-3), "tol"),
        (dict(max_iter=0), "max_iter"),
        (dict(cost=""), "cost"),
    ],
)
def test_bad_constructor_arguments(kw, word):
    with pytest.raises(ValueError, match=word):
        kot.SamplesLoss(**kw)


def test_callable_cost_is_a_type_error():
    with pytest.raises(TypeError, match="cost"):
        kot.SamplesLoss(cost=lambda x, y: ((x[:, None] - y[None]) ** 2).sum(-1))


def test_bad_call_arguments():
    loss = kot.SamplesLoss()
    x, y = cloud(10), cloud(12, seed=1)
    with pytest.raises(ValueError, match="dimension D"):
        loss(x, cloud(12, d=2))
    with pytest.raises(ValueError, match="batch size"):
        loss(torch.rand(2, 10, 3, dtype=F64), torch.rand(3, 10, 3, dtype=F64))
    with pytest.raises(ValueError, match="x and y"):
        loss(torch.rand(2, 10, 3, dtype=F64), y)
    with pytest.raises(ValueError, match="x"):
        loss(torch.rand(10, dtype=F64), y)
    with pytest.raises(ValueError, match="weights a"):
        loss(torch.ones(9, dtype=F64), x, torch.ones(12, dtype=F64) / 12, y)
    with pytest.raises(ValueError, match="weights b.*nonnegative"):
        loss(torch.ones(10, dtype=F64) / 10, x, -torch.ones(12, dtype=F64), y)
    with pytest.raises(ValueError, match="weights a.*sum to zero"):
        loss(torch.zeros(10, dtype=F64), x, torch.ones(12, dtype=F64) / 12, y)
    bad = x.clone()
    bad[3, 1] = math.nan
    with pytest.raises(ValueError, match="x holds NaN"):
        loss(bad, y)
    with pytest.raises(ValueError, match="weights a hold NaN"):
        loss(torch.full((10,), math.nan, dtype=F64), x, torch.ones(12, dtype=F64) / 12, y)
    with pytest.raises(TypeError, match="mixed dtypes"):
        loss(x, y.float())
    with pytest.raises(TypeError, match="float32 or float64"):
        loss(x.long(), y.long())
    with pytest.raises(ValueError, match="arguments"):
        loss(x)
    with pytest.raises(TypeError, match="x must be"):
        loss([[0.0, 1.0, 2.0]], y)


# ----------------------------------------------------------------- degenerate inputs


@pytest.mark.parametrize("name", ["sinkhorn", "hausdorff", "energy", "gaussian", "laplacian"])
def test_identical_clouds_give_zero(name):
    x = cloud(50)
    assert abs(float(kot.SamplesLoss(name, blur=0.1)(x, x.clone()))) < 1e-12
    F, G = kot.SamplesLoss(name, blur=0.1, potentials=True)(x, x.clone())
    assert float(F.abs().max()) < 1e-12 and float(G.abs().max()) < 1e-12


def test_single_points():
    """One point each: S = |x - y|^2 / 2 exactly for p = 2 (all eps: the plan is
    the product measure, and the debiasing removes the entropy)."""
    x = torch.tensor([[0.0, 0.0]], dtype=F64)
    y = torch.tensor([[3.0, 4.0]], dtype=F64)
    assert float(kot.SamplesLoss(blur=0.5)(x, y)) == pytest.approx(12.5, rel=1e-12)
    assert float(kot.SamplesLoss(p=1, blur=0.5)(x, y)) == pytest.approx(5.0, rel=1e-12)
    v = float(kot.SamplesLoss(blur=0.05)(x, cloud(30, d=2)))
    assert math.isfinite(v) and v > 0


def test_zero_weights_drop_points():
    """Points of weight 0 change nothing (no NaN, even far away), and their
    potentials are finite."""
    x, y = cloud(40), cloud(30, seed=1, shift=0.2)
    far = torch.cat([x, torch.full((5, 3), 1e3, dtype=F64)])
    a = torch.cat([torch.full((40,), 1 / 40, dtype=F64), torch.zeros(5, dtype=F64)])
    b = torch.full((30,), 1 / 30, dtype=F64)
    loss = kot.SamplesLoss(blur=0.01)  # the annealing starts from the diameter of the points that weigh
    ref = float(loss(x, y))
    xx = far.clone().requires_grad_(True)
    v = loss(a, xx, b, y)
    (g,) = torch.autograd.grad(v, [xx])
    assert float(v) == pytest.approx(ref, rel=1e-10)
    assert bool(torch.isfinite(g).all()) and float(g[40:].abs().max()) == 0.0
    F, G = kot.SamplesLoss(blur=0.01, potentials=True)(a, far, b, y)
    assert bool(torch.isfinite(F).all()) and bool(torch.isfinite(G).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("blur", [1e-3, 1e-4])
def test_small_blur_no_nan_nonnegative(dtype, blur):
    x = cloud(200, dtype=dtype).requires_grad_(True)
    y = cloud(150, seed=1, dtype=dtype)
    v = kot.SamplesLoss(blur=blur)(x, y)
    (g,) = torch.autograd.grad(v, [x])
    assert math.isfinite(float(v)) and float(v) >= 0 and bool(torch.isfinite(g).all())
    # nearly identical clouds: round-off never makes the divergence negative
    assert float(kot.SamplesLoss(blur=blur)(y, y + 1e-7)) >= 0


def test_numpy_in_numpy_out():
    x, y = cloud(30).numpy(), cloud(20, seed=1).numpy()
    v = kot.SamplesLoss()(x, y)
    assert isinstance(v, np.ndarray) and v.shape == ()
    assert float(v) == pytest.approx(float(kot.SamplesLoss()(torch.from_numpy(x), torch.from_numpy(y))), rel=1e-14)
    F, G = kot.SamplesLoss(potentials=True)(x, y)
    assert isinstance(F, np.ndarray) and F.shape == (30,) and G.shape == (20,)


def test_batched_equals_separate_calls():
    xs, ys = torch.rand(3, 25, 2, dtype=F64), torch.rand(3, 30, 2, dtype=F64)
    for name in ("sinkhorn", "hausdorff", "gaussian"):
        loss = kot.SamplesLoss(name, blur=0.1, diameter=2.0)  # default: the diameter of all batches
        v = loss(xs, ys)
        assert v.shape == (3,)
        for k in range(3):
            assert float(v[k]) == pytest.approx(float(loss(xs[k], ys[k])), rel=1e-12)


def test_custom_cost_matches_builtin():
    x, y = cloud(40), cloud(30, seed=1, shift=0.1)
    builtin = float(kot.SamplesLoss(blur=0.1)(x, y))
    custom = float(kot.SamplesLoss(blur=0.1, cost="SqDist(X,Y)/IntCst(2)")(x, y))
    assert custom == pytest.approx(builtin, rel=1e-12)
    # p = 3 through a cost formula: |x - y|^3 / 3, eps = blur^3
    far = y + 1.0
    v = float(kot.SamplesLoss(p=3, blur=0.1, cost="Norm2(X-Y)*SqDist(X,Y)/IntCst(3)")(x, far))
    ref = float(kot.SamplesLoss(p=3, blur=0.1, cost="Norm2(X-Y)*Norm2(X-Y)*Norm2(X-Y)", scaling=0.5)(x, far))
    assert math.isfinite(v) and v > 0 and ref == pytest.approx(3 * v, rel=1e-3)


def test_tolerance_stop():
    x, y = cloud(100), cloud(80, seed=1, shift=0.3)
    plain = kot.SamplesLoss(blur=0.1)
    plain(x, y)
    tight = kot.SamplesLoss(blur=0.1, tol=1e-8)
    tight(x, y)
    assert tight.marginal_error < 1e-8 <= plain.marginal_error
    assert tight.n_iter > plain.n_iter == len(plain.last_result.eps_list)
    capped = kot.SamplesLoss(blur=0.1, tol=1e-30, max_iter=12)
    capped(x, y)
    assert capped.n_iter == 12


def test_epsilon_schedule():
    eps = kot.epsilon_schedule(2, 4.0, 0.1, 0.5)
    assert eps[0] == pytest.approx(16.0) and eps[1] == pytest.approx(16.0) and eps[-1] == pytest.approx(0.01)
    assert all(e1 > e2 for e1, e2 in zip(eps[1:-1], eps[2:]))
    assert np.allclose(np.diff(np.log(eps[1:-1])), 2 * math.log(0.5))


# ----------------------------------------------------------------- the plan


def test_plan_marginals_and_lazy():
    g = torch.Generator().manual_seed(3)
    a = torch.rand(60, generator=g, dtype=F64) + 0.1
    a /= a.sum()
    x, y = cloud(60), cloud(45, seed=1, shift=0.2)
    b = torch.full((45,), 1 / 45, dtype=F64)
    plan = kot.SamplesLoss(blur=0.1, tol=1e-10).plan(a, x, b, y)
    r, c = plan.marginals()
    assert torch.allclose(r, a, atol=1e-10) and torch.allclose(c, b, atol=1e-10)
    assert plan.marginal_error < 1e-10
    # the LazyTensor and the dense plan from the potentials agree with matvec
    P = torch.exp((a.log() + plan.f / plan.eps)[:, None] + (b.log() + plan.g / plan.eps)[None, :] - torch.cdist(x, y) ** 2 / 2 / plan.eps)
    w = torch.linspace(0, 1, 45, dtype=F64)
    assert torch.allclose(plan.matvec(w), P @ w, rtol=1e-10)
    assert torch.allclose((plan.lazy @ w).reshape(-1), P @ w, rtol=1e-10)
    assert torch.equal(plan.lazy.argmax(dim=1).reshape(-1), P.argmax(dim=1))
    T = plan.barycentric_map()
    assert torch.allclose(T, (P @ y) / P.sum(1, keepdim=True), rtol=1e-10)


def test_plan_batched_and_numpy():
    xs, ys = np.random.default_rng(0).random((2, 20, 2)), np.random.default_rng(1).random((2, 25, 2))
    plan = kot.SamplesLoss(blur=0.2, tol=1e-9).plan(xs, ys)
    r, c = plan.marginals()
    assert isinstance(r, np.ndarray) and r.shape == (2, 20) and np.allclose(r, 1 / 20, atol=1e-9)
    assert plan.barycentric_map().shape == (2, 20, 2)
    with pytest.raises(ValueError, match="w"):
        plan.matvec(np.ones((2, 20)))


# ----------------------------------------------------------------- barycenter


def test_barycenter_of_translates():
    """The W2 barycenter of a cloud and its translate by t is (about) the cloud
    translated by t/2: its mean is the middle and it is close to that cloud."""
    x = cloud(80, d=2, seed=5)
    t = torch.tensor([2.0, -1.0], dtype=F64)
    z, hist = kot.barycenter([x, x + t], n_iter=10, blur=0.05, scaling=0.8, tol_sinkhorn=1e-3)
    assert hist[-1] == pytest.approx(float(t @ t) / 8, rel=1e-3)  # W2^2/2 to either cloud: |t/2|^2 / 2
    assert torch.allclose(z.mean(0), x.mean(0) + t / 2, atol=1e-3)
    assert float(kot.SamplesLoss(blur=0.05)(z, x + t / 2)) < 1e-4
    assert hist[-1] < hist[0]
    with pytest.raises(ValueError, match="lambdas"):
        kot.barycenter([x, x + t], lambdas=[1.0])


def test_ot_flow_example(tmp_path):
    """examples/python/ot_flow.py runs (small), lowers the loss and saves its pictures."""
    pytest.importorskip("matplotlib")
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "python", "ot_flow.py")
    spec = importlib.util.spec_from_file_location("ot_flow", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "flow"
    assert mod.main(["--n", "150", "--m", "120", "--steps", "2", "--blur", "0.05", "--out", str(out)]) == 0
    for name in ("flow_start.png", "flow_middle.png", "flow_end.png", "loss.png"):
        assert (out / name).stat().st_size > 1000


def test_backward_costs_a_few_reductions(monkeypatch):
    """The envelope-theorem gradient: backward runs 2 gradient reductions (x's
    in OT(a, b) and OT(a, a)), whatever the number of Sinkhorn iterations."""
    from pykp import _call

    calls = []
    real = _call.run

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_call, "run", counting)
    for scaling in (0.5, 0.9):
        x = cloud(200).requires_grad_(True)
        loss = kot.SamplesLoss(blur=0.05, scaling=scaling)
        v = loss(x, cloud(150, seed=1))
        forward = len(calls)
        v.backward()
        assert forward == 4 * loss.n_iter + 8  # init, iterations, last extrapolation
        assert len(calls) - forward == 2
        calls.clear()
