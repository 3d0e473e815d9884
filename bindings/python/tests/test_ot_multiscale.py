"""
pykp.ot's multiscale backend (two-scale Sinkhorn on block-sparse ranges)
against pykp's dense online backend: values, gradients (positions and
weights) and potentials, on a sphere and in a cube, with weights, balanced and
unbalanced; the truncation alone (truncate=5 against truncate=None, same
iterations); argument errors; the "auto" rule; degenerate inputs.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import pykp.ot as kot  # noqa: E402

F64 = torch.float64


def sphere(n, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, generator=g, dtype=F64)
    z = z / z.norm(dim=1, keepdim=True)
    z[:, 0] += shift
    return z


def cube(n, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=g, dtype=F64) + shift


def weights(n, seed):
    g = torch.Generator().manual_seed(seed + 100)
    w = 0.5 + torch.rand(n, generator=g, dtype=F64)
    return w / w.sum()


def value_and_grads(loss, a, x, b, y):
    """loss(a, x, b, y) and its gradients with respect to x and a."""
    xx, aa = x.clone().requires_grad_(True), a.clone().requires_grad_(True)
    v = loss(aa, xx, b, y)
    gx, ga = torch.autograd.grad(v, [xx, aa])
    return float(v.detach()), gx, ga


def rel(u, v):
    return float((u - v).norm() / v.norm())


def centered(t):
    t = t.detach()
    return t - t.mean()


def test_multiscale_against_online_cube_converged():
    """Both solvers run to the same marginal tolerance: the multiscale result
    differs from the dense one by the truncation only."""
    x, y = cube(2000, 1), cube(2013, 2, shift=0.2)
    a, b = weights(2000, 1), weights(2013, 2)
    kw = dict(p=2, blur=0.1, tol=1e-4)
    on = kot.SamplesLoss("sinkhorn", backend="online", **kw)
    ms = kot.SamplesLoss("sinkhorn", backend="multiscale", **kw)
    v0, gx0, ga0 = value_and_grads(on, a, x, b, y)
    v1, gx1, ga1 = value_and_grads(ms, a, x, b, y)
    assert ms.last_result.kept["xy"] < 0.5  # the truncation did prune
    assert ms.marginal_error <= 1e-4
    assert v1 == pytest.approx(v0, rel=1e-3)
    assert rel(gx1, gx0) < 1e-3
    assert rel(centered(ga1), centered(ga0)) < 1e-3  # weights' gradient: defined up to a constant
    # potentials come back in the caller's order (the solver sorts the points by cell);
    # balanced potentials are defined up to f + c, g - c
    r0, r1 = on.last_result, ms.last_result
    eps = 0.1**2
    assert float((centered(r1.f_ba) - centered(r0.f_ba)).abs().max()) < 0.05 * eps
    assert float((centered(r1.g_ab) - centered(r0.g_ab)).abs().max()) < 0.05 * eps


@pytest.mark.parametrize("reach", [None, 0.5])
def test_truncation_alone_sphere(reach):
    """truncate=5 against truncate=None (every cell pair kept): the same
    coarse and fine iterations, so the difference is the truncation's."""
    x, y = sphere(3000, 3), sphere(3011, 4, shift=0.3)
    a, b = weights(3000, 3), weights(3011, 4)
    kw = dict(p=2, blur=0.05, reach=reach, backend="multiscale")
    full = kot.SamplesLoss("sinkhorn", truncate=None, **kw)
    trunc = kot.SamplesLoss("sinkhorn", truncate=5, **kw)
    v0, gx0, ga0 = value_and_grads(full, a, x, b, y)
    v1, gx1, ga1 = value_and_grads(trunc, a, x, b, y)
    assert full.last_result.kept["xy"] == 1.0
    assert trunc.last_result.kept["xy"] < 0.25
    assert full.n_iter == trunc.n_iter
    assert v1 == pytest.approx(v0, rel=1e-3)
    assert rel(gx1, gx0) < 1e-3
    assert rel(ga1, ga0) < 1e-3


def test_potentials_and_debias_false():
    x, y = sphere(800, 5), sphere(700, 6, shift=0.2)
    kw = dict(p=2, blur=0.2, tol=1e-4)
    ms = dict(kw, cluster_scale=0.1)
    F0, G0 = kot.SamplesLoss("sinkhorn", potentials=True, backend="online", **kw)(x, y)
    F1, G1 = kot.SamplesLoss("sinkhorn", potentials=True, backend="multiscale", **ms)(x, y)
    assert F1.shape == (800,) and G1.shape == (700,)
    assert float((centered(F1) - centered(F0)).abs().max()) < 0.05 * 0.2**2  # up to F + c, G - c
    assert float((centered(G1) - centered(G0)).abs().max()) < 0.05 * 0.2**2
    v0 = kot.SamplesLoss("sinkhorn", debias=False, backend="online", **kw)(x, y)
    v1 = kot.SamplesLoss("sinkhorn", debias=False, backend="multiscale", **ms)(x, y)
    assert float(v1) == pytest.approx(float(v0), rel=1e-3)


def test_float32_numpy_and_zero_weights():
    x, y = sphere(1000, 7).float(), sphere(1000, 8, shift=0.2).float()
    a = torch.full((1000,), 1.0 / 1000)
    a[x[:, 2] > 0] = 0  # a whole hemisphere (many whole cells) of zero weight
    a = (a / a.sum()).float()
    b = torch.full((1000,), 1.0 / 1000).float()
    kw = dict(p=2, blur=0.2, tol=1e-3)
    v0 = kot.SamplesLoss("sinkhorn", backend="online", **kw)(a, x, b, y)
    kw["cluster_scale"] = 0.1  # the multiscale calls below
    ms = kot.SamplesLoss("sinkhorn", backend="multiscale", **kw)
    v1 = ms(a.numpy(), x.numpy(), b.numpy(), y.numpy())
    assert isinstance(v1, np.ndarray) and v1.dtype == np.float32
    assert math.isfinite(float(v1))
    assert float(v1) == pytest.approx(float(v0), rel=5e-3)
    F, G = kot.SamplesLoss("sinkhorn", backend="multiscale", potentials=True, **kw)(a, x, b, y)
    assert bool(torch.isfinite(F).all()) and bool(torch.isfinite(G).all())


def test_degenerate_inputs():
    ms = kot.SamplesLoss("sinkhorn", p=2, blur=0.05, backend="multiscale")
    x = sphere(1000, 9)
    assert float(ms(x, x)) == pytest.approx(0.0, abs=1e-12)  # identical clouds
    one, other = torch.zeros(1, 3, dtype=F64), torch.ones(1, 3, dtype=F64)
    assert float(ms(one, other)) == pytest.approx(1.5, rel=1e-9)  # |x - y|^2 / 2
    flat = torch.cat((torch.rand(400, 2, dtype=F64), torch.zeros(400, 1, dtype=F64)), 1)  # a plane in 3D
    v0 = kot.SamplesLoss("sinkhorn", p=2, blur=0.1, backend="online", tol=1e-4)(flat, flat[:300] + 0.1)
    v1 = kot.SamplesLoss("sinkhorn", p=2, blur=0.1, backend="multiscale", tol=1e-4)(flat, flat[:300] + 0.1)
    assert float(v1) == pytest.approx(float(v0), rel=1e-3)
    # D = 1, one point per cell: the coarse problem is the fine one, and the refinement
    # at the final eps must re-prune as the potentials move
    line = torch.linspace(0, 1, 200, dtype=F64)[:, None]
    v0 = kot.SamplesLoss("sinkhorn", p=2, blur=0.05, backend="online", tol=1e-4)(line, line**2)
    ms = kot.SamplesLoss("sinkhorn", p=2, blur=0.05, backend="multiscale", tol=1e-4)
    v1 = ms(line, line**2)
    assert ms.last_result.kept["xy"] < 0.5
    assert float(v1) == pytest.approx(float(v0), rel=1e-3)


def test_multiscale_errors():
    for kw in (dict(p=1), dict(loss="hausdorff"), dict(loss="energy"), dict(cost="SqDist(X,Y)")):
        args = dict(loss="sinkhorn", p=2)
        args.update(kw)
        with pytest.raises(ValueError, match="backend='multiscale'"):
            kot.SamplesLoss(backend="multiscale", **args)
    for bad in (0, -1.0, math.nan, "big"):
        with pytest.raises(ValueError, match="cluster_scale"):
            kot.SamplesLoss(backend="multiscale", cluster_scale=bad)
    for dense in ("online", "tensorized"):  # no cells: the option would have no effect
        with pytest.raises(ValueError, match="cluster_scale"):
            kot.SamplesLoss(backend=dense, cluster_scale=0.1)
    ms = kot.SamplesLoss("sinkhorn", backend="multiscale")
    with pytest.raises(ValueError, match="batch"):
        ms(torch.rand(2, 50, 3), torch.rand(2, 60, 3))
    with pytest.raises(ValueError, match="D <= 3"):
        ms(torch.rand(50, 4), torch.rand(60, 4))
    with pytest.raises(ValueError, match="NaN"):
        ms(torch.full((50, 3), math.nan), torch.rand(60, 3))


def test_auto_rule():
    """GeomLoss's rule: multiscale for sinkhorn, p = 2, D <= 3, N M > 10^8, one pair."""
    big, small = torch.empty(1, 10001, 3), torch.empty(1, 10000, 3)
    auto = kot.SamplesLoss("sinkhorn", p=2)
    assert auto.uses_multiscale(big, big)
    assert not auto.uses_multiscale(small, small)
    assert not auto.uses_multiscale(torch.empty(2, 10001, 3), torch.empty(2, 10001, 3))
    assert not auto.uses_multiscale(torch.empty(1, 10001, 4), torch.empty(1, 10001, 4))
    assert not kot.SamplesLoss("sinkhorn", p=1).uses_multiscale(big, big)
    assert not kot.SamplesLoss("sinkhorn", p=2, cost="SqDist(X,Y)").uses_multiscale(big, big)
    assert not kot.SamplesLoss("sinkhorn", p=2, backend="online").uses_multiscale(big, big)
    assert kot.SamplesLoss("sinkhorn", backend="multiscale").uses_multiscale(small, small)


@pytest.mark.parametrize("reach", [None, 0.5])
def test_three_levels_truncation_alone(reach):
    """Blocks smaller than GeomLoss's cells (cluster_scale = 0.08: parents of
    twice their side, the block pairs pruned sparsely among those of the kept
    parent pairs): truncate=7 against truncate=None, same iterations. With
    blocks of one or two points the bounds are nearly tight, so what a row
    leaves out nears its budget (e^-truncate of the row; 2e-3 on the gradient
    with truncate=5): a smaller budget is tested. Balanced and unbalanced,
    with a cap of zero weights."""
    x, y = sphere(600, 11), sphere(650, 12, shift=0.2)
    a, b = weights(600, 11), weights(650, 12)
    a[x[:, 2] > 0.3] = 0
    a = a / a.sum()
    kw = dict(p=2, blur=0.1, backend="multiscale", cluster_scale=0.08, reach=reach)
    full = kot.SamplesLoss("sinkhorn", truncate=None, **kw)
    trunc = kot.SamplesLoss("sinkhorn", truncate=7, **kw)
    v0, gx0, ga0 = value_and_grads(full, a, x, b, y)
    v1, gx1, ga1 = value_and_grads(trunc, a, x, b, y)
    assert trunc.last_result.parent_factor == 2
    assert full.last_result.kept["xy"] == 1.0
    assert trunc.last_result.kept["xy"] < 0.5
    assert v1 == pytest.approx(v0, rel=1e-3)
    assert rel(gx1, gx0) < 1e-3
    assert rel(ga1, ga0) < 1e-3


def test_sparse_pruning_helpers():
    """The sparse row rule keeps what the dense (sorted) one keeps, and drops
    at most e^-truncate per row; sparse_ranges equals from_matrix; the
    automatic blocks follow blur and N."""
    from pykp.cluster import from_matrix
    from pykp.ot._cells import choose_scales, expand_pairs, row_keep, sparse_ranges, sparse_row_keep
    g = torch.Generator().manual_seed(0)
    s = torch.randn(50, 70, generator=g, dtype=F64) * 4 - 8
    s[3] = -math.inf  # a row of zero weights
    s[4, :5] = math.nan  # inf - inf: kept
    k, l = torch.nonzero(torch.ones(50, 70, dtype=torch.bool), as_tuple=True)
    dense, sparse = row_keep(s, 5.0), sparse_row_keep(k, s[k, l], 50, 5.0).view(50, 70)
    assert not bool((dense & ~sparse).any())
    assert int(sparse.sum()) < 50 * 70 // 2
    assert bool(sparse[4, :5].all()) and bool(sparse.any(1).all())
    assert float(torch.where(sparse, 0.0, s.nan_to_num(nan=0.0).exp()).sum(1).max()) < math.exp(-5)
    ru, rv = torch.tensor([[0, 3], [3, 5], [5, 9]]), torch.tensor([[0, 2], [2, 7]])
    keep = torch.tensor([[1, 0], [1, 1], [0, 1]], dtype=torch.bool)
    kk, ll = torch.nonzero(keep, as_tuple=True)
    perm = torch.tensor([2, 0, 3, 1])
    out, ref = sparse_ranges(ru, rv, kk[perm], ll[perm]), from_matrix(ru, rv, keep)
    assert all(torch.equal(u, v) and u.dtype == v.dtype for u, v in zip(out, ref))
    kp, lp = expand_pairs(torch.tensor([[1, 0], [1, 1]], dtype=torch.bool), torch.tensor([[0, 2], [2, 3]]),
                          torch.tensor([[0, 1], [1, 4]]))
    assert kp.tolist() == [0, 1, 2, 2, 2, 2] and lp.tolist() == [0, 0, 0, 1, 2, 3]
    x, y = sphere(200_000, 13).float(), sphere(200_000, 14, shift=0.2).float()
    diameter = float((torch.cat((x, y)).max(0)[0] - torch.cat((x, y)).min(0)[0]).norm())
    side, m = choose_scales(x, y, 0.05, diameter)
    assert m == 3 and side >= 0.05  # ~35 points per block, not below blur
    assert choose_scales(x, y, 0.1, diameter)[1] == 1  # blocks of side >= blur
    assert choose_scales(x[:20_000], y[:20_000], 0.05, diameter)[1] == 1  # too few points per block
    assert choose_scales(x, y, 0.05, diameter, cluster_scale=0.04) == (0.04, 4)
