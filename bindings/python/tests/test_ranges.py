"""Block-sparse reductions (ranges=, LazyTensor.ranges): every reduction, both
axes, NumPy and torch, int32 and int64 ranges, batches, autograd to second
order, against dense masked computations in float64 (torch); the KeOps
block-sparse tutorial's pipeline with pykp.cluster; bad ranges give named errors."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pykp  # noqa: E402
from pykp import Genred, Pm, Vi, Vj  # noqa: E402
from pykp.cluster import cluster_ranges_centroids, from_matrix, grid_cluster, sort_clusters, swap_axes  # noqa: E402

F64 = torch.float64


def random_ranges(n, m, seed, dtype=torch.int64):
    """A 6-tuple with both triples drawn independently (the axis-1 reduction
    reads the first three, axis 0 the last three), and the dense masks they
    mean: (n, m) for the first triple, (m, n) for the second. Clusters leave
    gaps (rows in none), some lists are empty, some ranges single points."""
    g = np.random.default_rng(seed)

    def triple(rows, cols):
        r, s, c = [], [], []
        mask = np.zeros((rows, cols), bool)
        i = 0
        while i < rows:
            i += int(g.integers(0, 3))
            e = min(rows, i + int(g.integers(0, 12)))
            if i > e:
                break
            r.append([i, e])
            j = 0
            while g.random() < 0.7:
                j += int(g.integers(0, 8))
                je = min(cols, j + (1 if g.random() < 0.2 else int(g.integers(1, 15))))
                if j >= je:
                    break
                c.append([j, je])
                mask[i:e, j:je] = True
                j = je
            s.append(len(c))
            i = e
        t = lambda a, shape: torch.tensor(a, dtype=dtype).reshape(shape)  # noqa: E731
        return (t(r, (-1, 2)), t(s, (-1,)), t(c, (-1, 2))), mask

    ti, mi = triple(n, m)
    tj, mj = triple(m, n)
    return ti + tj, torch.from_numpy(mi), torch.from_numpy(mj)


def dense_reference(red, F, mask, b=None, K=3):
    """The reduction over j of F (n, m) restricted to mask, in float64: values,
    indices; rows without a pair get the neutral value (and index -1)."""
    empty = ~mask.any(1, keepdim=True)
    inf = torch.tensor(float("inf"), dtype=F.dtype)
    if red == "sum":
        return (F * mask).sum(1, keepdim=True), None
    if red == "logsumexp":
        return torch.logsumexp(torch.where(mask, F, -inf), 1, keepdim=True), None
    if red == "sumsoftmaxweight":
        w = torch.softmax(torch.where(mask, F, -inf), 1)
        return torch.where(empty, torch.nan, w @ b), None
    if red in ("min", "max"):
        v, i = (torch.where(mask, F, inf).min(1, keepdim=True) if red == "min"
                else torch.where(mask, F, -inf).max(1, keepdim=True))
        return v, torch.where(empty, -1, i)
    v, i = torch.where(mask, F, inf).topk(K, dim=1, largest=False)  # Kmin
    return v, torch.where(torch.isinf(v), -1, i)


REDS = ["sum", "logsumexp", "min", "max", "argmin", "argmax", "min_argmin", "max_argmax", "Kmin", "argKmin",
        "Kmin_argKmin", "sumsoftmaxweight"]


def run_lazy(red, x, y, b, dim, ranges):
    F = Vi(x).sqdist(Vj(y)) - 0.3 * (Vi(x) | Vj(y))
    kw = {"dim": dim, "ranges": ranges}
    if red == "sumsoftmaxweight":
        return F.sumsoftmaxweight(Vj(b) if dim == 1 else Vi(b), **kw)
    if red in ("Kmin", "argKmin", "Kmin_argKmin"):
        kw["K"] = 3
    return getattr(F, red)(**kw)


@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.parametrize("kind", ["torch", "numpy"])
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_every_reduction_against_the_dense_masked_one(dim, kind, index_dtype):
    n, m = 70, 55
    g = torch.Generator().manual_seed(dim + 2)
    x, y = torch.randn(n, 3, generator=g, dtype=F64), torch.randn(m, 3, generator=g, dtype=F64)
    b = torch.randn(m if dim == 1 else n, 2, generator=g, dtype=F64)
    rg, mi, mj = random_ranges(n, m, seed=dim, dtype=index_dtype)
    F = ((x[:, None] - y[None]) ** 2).sum(-1) - 0.3 * x @ y.T
    if dim == 0:  # rows are the j points: the second triple, mj is (m, n)
        F, mask = F.T, mj
    else:
        mask = mi
    assert mask.any(1).sum() < mask.shape[0], "some rows must have no pair"
    args = (x, y, b, rg)
    if kind == "numpy":
        args = (x.numpy(), y.numpy(), b.numpy(), tuple(a.numpy() for a in rg))
    for red in REDS:
        got = run_lazy(red, *args[:3], dim, args[3])
        base = {"argmin": "min", "argmax": "max", "min_argmin": "min", "max_argmax": "max", "argKmin": "Kmin",
                "Kmin_argKmin": "Kmin"}.get(red, red)
        v, i = dense_reference(base, F, mask, b)
        if isinstance(got, tuple):
            got_v, got_i = got
        elif red.startswith("arg"):
            got_v, got_i = None, got
        else:
            got_v, got_i = got, None
        if got_v is not None:
            np.testing.assert_allclose(np.asarray(got_v), v.numpy(), rtol=1e-12, atol=1e-12, err_msg=red)
        if got_i is not None:
            assert (np.asarray(got_i) == i.numpy()).all(), red


def test_genred_batches_use_flattened_indices():
    """With batch dimensions the ranges index flattened (batch, point) rows, as KeOps."""
    B, n, m = 2, 30, 20
    g = torch.Generator().manual_seed(3)
    x, y, b = (torch.randn(B, n, 2, generator=g, dtype=F64), torch.randn(B, m, 2, generator=g, dtype=F64),
               torch.randn(B, m, 1, generator=g, dtype=F64))
    ri = torch.tensor([[0, 12], [12, 30], [30, 45], [45, 60]])
    rj = torch.tensor([[0, 10], [10, 20], [20, 30], [30, 40]])
    keep = torch.tensor([[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]], dtype=torch.bool)
    rg = from_matrix(ri, rj, keep)
    mask = torch.zeros(B * n, B * m, dtype=torch.bool)
    for k in range(4):
        for ll in range(4):
            if keep[k, ll]:
                mask[ri[k, 0]:ri[k, 1], rj[ll, 0]:rj[ll, 1]] = True
    gr = Genred("Exp(-SqDist(x,y))*b", ["x = Vi(2)", "y = Vj(2)", "b = Vj(1)"], axis=1)
    got = gr(x, y, b, ranges=rg)
    K = torch.exp(-((x[:, :, None] - y[:, None]) ** 2).sum(-1))
    for bb in range(B):
        mb = mask[bb * n:(bb + 1) * n, bb * m:(bb + 1) * m]
        torch.testing.assert_close(got[bb], (K[bb] * mb) @ b[bb])
    with pytest.raises(ValueError, match="spans batches"):
        gr(x, y, b, ranges=from_matrix(torch.tensor([[0, 40], [40, 60]]), rj, keep[:2]))


@pytest.mark.parametrize("red", ["sum", "logsumexp", "min", "Kmin"])
def test_gradients_to_second_order_use_the_transposed_ranges(red):
    """d/dx, d/dy, d/db, d/dsigma and a second derivative of a block-sparse
    reduction equal those of the dense masked float64 computation: the
    gradients in y and b are reductions over i, which read the second triple."""
    n, m = 40, 35
    g = torch.Generator().manual_seed(5)
    x = torch.randn(n, 2, generator=g, dtype=F64, requires_grad=True)
    y = torch.randn(m, 2, generator=g, dtype=F64, requires_grad=True)
    b = torch.randn(m, 1, generator=g, dtype=F64, requires_grad=True)
    s = torch.tensor([0.7], dtype=F64, requires_grad=True)
    ri = torch.tensor([[0, 10], [10, 25], [27, 40]])
    rj = torch.tensor([[0, 5], [5, 20], [20, 35]])
    keep = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=torch.bool)
    rg = from_matrix(ri, rj, keep)
    mask = torch.zeros(n, m, dtype=torch.bool)
    for k in range(3):
        for ll in range(3):
            if keep[k, ll]:
                mask[ri[k, 0]:ri[k, 1], rj[ll, 0]:rj[ll, 1]] = True
    F = -Pm(s) * Vi(x).sqdist(Vj(y))
    Fd = -s * ((x[:, None] - y[None]) ** 2).sum(-1)
    if red == "sum":
        got = (F.exp() * Vj(b)).sum(dim=1, ranges=rg)
        ref = (torch.exp(Fd) * mask) @ b
    elif red == "logsumexp":
        got = (F + Vj(b)).logsumexp(dim=1, ranges=rg)
        ref = torch.logsumexp(torch.where(mask, Fd + b.T, -torch.inf), 1, keepdim=True)
        got, ref = got[mask.any(1)], ref[mask.any(1)]  # -inf rows have no gradient
    else:
        got = (F + Vj(b)).min(dim=1, ranges=rg) if red == "min" else (F + Vj(b)).Kmin(K=2, dim=1, ranges=rg)
        Fb = torch.where(mask, Fd + b.T, torch.inf)
        ref = Fb.min(1, keepdim=True)[0] if red == "min" else Fb.topk(2, dim=1, largest=False)[0]
        got, ref = got[mask.any(1)], ref[mask.any(1)]
    torch.testing.assert_close(got, ref)
    w = torch.randn(got.shape, generator=g, dtype=F64)
    gs = torch.autograd.grad((got * w).sum(), (x, y, b, s), create_graph=True)
    rs = torch.autograd.grad((ref * w).sum(), (x, y, b, s), create_graph=True)
    for a, r in zip(gs, rs):
        torch.testing.assert_close(a, r)
    if red in ("sum", "logsumexp"):  # second order: d/dy of <d/dx, v>
        v = torch.randn(n, 2, generator=g, dtype=F64)
        h = torch.autograd.grad((gs[0] * v).sum(), (y, s))
        hr = torch.autograd.grad((rs[0] * v).sum(), (y, s))
        for a, r in zip(h, hr):
            torch.testing.assert_close(a, r)


def test_keops_tutorial_pipeline_with_pykp_cluster():
    """KeOps' block-sparse tutorial: grid_cluster, sort_clusters,
    cluster_ranges_centroids, a centroid-distance mask, from_matrix; the
    truncated Gaussian equals the dense masked one and is close to the full one."""
    g = torch.Generator().manual_seed(7)
    x, y = torch.rand(600, 2, generator=g, dtype=F64), torch.rand(500, 2, generator=g, dtype=F64)
    b = torch.randn(500, 1, generator=g, dtype=F64)
    sigma, eps = 0.05, 0.1
    x_lab, y_lab = grid_cluster(x, eps), grid_cluster(y, eps)
    x_ranges, x_c, _ = cluster_ranges_centroids(x, x_lab)
    y_ranges, y_c, _ = cluster_ranges_centroids(y, y_lab)
    x, x_lab = sort_clusters(x, x_lab)
    (y, b), y_lab = sort_clusters((y, b), y_lab)
    D = ((x_c[:, None] - y_c[None]) ** 2).sum(-1)
    keep = D < (4 * sigma + np.sqrt(2) * eps) ** 2
    rg = from_matrix(x_ranges, y_ranges, keep)
    K = (-Vi(x).sqdist(Vj(y)) / (2 * sigma ** 2)).exp()
    K.ranges = rg
    got = K @ b
    mask = keep[x_lab.long()][:, y_lab.long()]
    Kd = torch.exp(-((x[:, None] - y[None]) ** 2).sum(-1) / (2 * sigma ** 2))
    torch.testing.assert_close(got, (Kd * mask) @ b)
    assert ((got - Kd @ b).abs().max() / (Kd @ b).abs().max()) < 1e-3  # truncation at 4 sigma
    assert mask.float().mean() < 0.5  # the ranges did skip pairs
    Kt = K.t()  # swap_axes: the transposed operator reads the other triple
    torch.testing.assert_close(Kt.sum(dim=1, ranges=swap_axes(rg)), (Kd * mask).sum(0).unsqueeze(1))


def test_bad_ranges_are_named_errors():
    x, y = torch.randn(10, 2, dtype=F64), torch.randn(8, 2, dtype=F64)
    gr = Genred("SqDist(x,y)", ["x = Vi(2)", "y = Vj(2)"], axis=1)
    good = (torch.tensor([[0, 10]]), torch.tensor([1]), torch.tensor([[0, 8]]))
    with pytest.raises(ValueError, match=r"redranges_j\[0\] = \[0, 9\) is outside \[0, 8\]"):
        gr(x, y, ranges=good[:2] + (torch.tensor([[0, 9]]),) + good)
    with pytest.raises(ValueError, match=r"ranges_i\[1\] = \[3, 10\) starts before the end 5"):
        gr(x, y, ranges=(torch.tensor([[0, 5], [3, 10]]), torch.tensor([1, 1])) + good[2:] + good)
    with pytest.raises(ValueError, match="slices_i has 2 entries, but ranges_i has 1"):
        gr(x, y, ranges=(good[0], torch.tensor([1, 1]), good[2]) + good)
    with pytest.raises(ValueError, match=r"slices_i must have shape \(C,\)"):
        gr(x, y, ranges=(good[0], good[0], good[2]) + good)
    with pytest.raises(TypeError, match="int32 or int64"):
        gr(x, y, ranges=(good[0].double(),) + good[1:] + good)
    with pytest.raises(TypeError, match="6-tuple"):
        gr(x, y, ranges=good)
    # the transposed triple is read by axis-0 reductions only: the axis-1 call ignores a bad one
    gr(x, y, ranges=good + (torch.tensor([[0, 99]]), torch.tensor([1]), torch.tensor([[0, 99]])))
    gr0 = Genred("SqDist(x,y)", ["x = Vi(2)", "y = Vj(2)"], axis=0)
    with pytest.raises(ValueError, match=r"ranges_j\[0\] = \[0, 99\)"):
        gr0(x, y, ranges=good + (torch.tensor([[0, 99]]), torch.tensor([1]), torch.tensor([[0, 99]])))


def test_ranges_under_vmap_repeat_per_slice():
    """torch.func.vmap makes its dimension the outermost batch: each slice reduces with the ranges
    (batched arguments too), equal to one call per slice."""
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(4, 2, 10, 2, generator=g, dtype=F64), torch.randn(2, 8, 2, generator=g, dtype=F64)
    rg = from_matrix(torch.tensor([[0, 5], [5, 10], [10, 20]]), torch.tensor([[0, 3], [3, 8], [8, 16]]),
                     torch.eye(3, dtype=torch.bool))
    gr = Genred("SqDist(x,y)", ["x = Vi(2)", "y = Vj(2)"], axis=1)
    got = torch.func.vmap(lambda xx: gr(xx, y, ranges=rg))(x)
    want = torch.stack([gr(x[v], y, ranges=rg) for v in range(4)])
    torch.testing.assert_close(got, want)
    dense = torch.stack([gr(x[v], y) for v in range(4)])
    assert (want[:, 0, :5, 0] < dense[:, 0, :5, 0]).all()  # rows 0-4 of batch 0 see 3 of the 8 points
    assert pykp.cluster.swap_axes(None) is None


def test_kernel_solve_with_ranges_matches_the_masked_dense_solve():
    """KernelSolve and LazyTensor.solve with ranges solve (alpha I + K o mask) a = b,
    mask symmetric (from_matrix of a symmetric cluster mask); the gradient in b
    is another ranged solve."""
    g = np.random.default_rng(4)
    x = np.sort(g.uniform(0, 1, (300, 1)), axis=0) @ np.ones((1, 2))  # sorted: clusters of consecutive points
    b = g.standard_normal((300, 1))
    lab = np.minimum((x[:, 0] * 6).astype(np.int64), 5)
    rng_ = pykp.cluster.cluster_ranges(lab)
    c = (np.arange(6)[:, None] - np.arange(6)[None, :])
    keep = np.abs(c) <= 1
    rg = from_matrix(rng_, rng_, keep)
    mask = keep[lab][:, lab]
    Kd = np.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / 0.02) * mask
    alpha = 0.5
    want = np.linalg.solve(alpha * np.eye(300) + Kd, b)
    solver = pykp.KernelSolve("Exp(-SqDist(x,y)*g)*b", ["x = Vi(2)", "y = Vj(2)", "g = Pm(1)", "b = Vj(1)"], "b", axis=1)
    got = solver(x, x, np.array([50.0]), b, alpha=alpha, eps=1e-10, ranges=rg)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)
    xt, bt = torch.from_numpy(x), torch.from_numpy(b).requires_grad_()
    K = (-Vi(xt).sqdist(Vj(xt)) * 50.0).exp()
    K.ranges = rg
    a = K.solve(bt, alpha=alpha, eps=1e-10)
    np.testing.assert_allclose(a.detach().numpy(), want, rtol=1e-7, atol=1e-9)
    w = torch.randn(300, 1, dtype=F64)
    (gb,) = torch.autograd.grad((a * w).sum(), bt)
    np.testing.assert_allclose(gb.numpy(), np.linalg.solve(alpha * np.eye(300) + Kd, w.numpy()), rtol=1e-6, atol=1e-8)


def test_forward_mode_and_hessian_under_torch_func():
    """torch.func.jvp and hessian of a block-sparse reduction equal the dense masked ones."""
    n, m = 30, 25
    g = torch.Generator().manual_seed(9)
    x, y = torch.randn(n, 2, generator=g, dtype=F64), torch.randn(m, 2, generator=g, dtype=F64)
    b = torch.randn(m, 1, generator=g, dtype=F64)
    ri, rj = torch.tensor([[0, 12], [12, 30]]), torch.tensor([[0, 10], [10, 25]])
    keep = torch.tensor([[True, False], [True, True]])
    rg = from_matrix(ri, rj, keep)
    mask = torch.zeros(n, m, dtype=torch.bool)
    mask[:12, :10] = mask[12:, :] = True
    gr = Genred("Exp(-SqDist(x,y))*b", ["x = Vi(2)", "y = Vj(2)", "b = Vj(1)"], axis=1)

    def f(yy):
        return gr(x, yy, b, ranges=rg).sum()

    def fd(yy):
        return ((torch.exp(-((x[:, None] - yy[None]) ** 2).sum(-1)) * mask) @ b).sum()

    t = torch.randn(m, 2, generator=g, dtype=F64)
    got, ref = torch.func.jvp(f, (y,), (t,)), torch.func.jvp(fd, (y,), (t,))
    torch.testing.assert_close(got[1], ref[1])
    torch.testing.assert_close(torch.func.hessian(f)(y), torch.func.hessian(fd)(y))
