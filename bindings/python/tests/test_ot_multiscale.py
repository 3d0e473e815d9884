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
