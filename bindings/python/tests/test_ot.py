"""
pykp.ot against references: a dense float64 log-domain Sinkhorn written here
(N = 500), POT (ot.emd2: exact transport, the limit blur -> 0; ot.sinkhorn2 in
the log domain at a fixed eps), GeomLoss's tensorized backend (values,
gradients, potentials, double backward), torch.autograd.gradcheck.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import pykp.ot as kot  # noqa: E402

F64 = torch.float64


def cloud(n, d=3, seed=0, shift=0.0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g, dtype=dtype) + shift


def weights(n, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed + 100)
    w = torch.rand(n, generator=g, dtype=dtype) + 0.1
    return w / w.sum()


# ----------------------------------------------------------------- dense reference


def dense_sinkhorn(a, x, b, y, eps, p=2, rho=None, iters=4000, tol=1e-12):
    """Log-domain Sinkhorn on the dense float64 cost matrix, to convergence at
    a fixed eps (alternating updates; averaged ones for a symmetric problem
    x is y, which would oscillate otherwise). Returns (f, g) on x, y."""
    C = torch.cdist(x, y) ** p / p
    la, lb = a.log(), b.log()
    dmp = 1.0 if rho is None else 1.0 / (1.0 + eps / rho)
    f = torch.zeros_like(a)
    g = torch.zeros_like(b)
    symmetric = x is y
    for _ in range(iters):
        f_new = -dmp * eps * torch.logsumexp(lb[None, :] + g[None, :] / eps - C / eps, dim=1)
        if symmetric:
            f_new = 0.5 * (f + f_new)
            g = f_new
        else:
            g = -dmp * eps * torch.logsumexp(la[:, None] + f_new[:, None] / eps - C / eps, dim=0)
        done = float((f_new - f).abs().max()) < tol
        f = f_new
        if done:
            break
    return f, g


def dense_ot(a, x, b, y, eps, p=2, rho=None):
    """OT_eps(a, b) with GeomLoss's dual formulas (balanced: <a,f> + <b,g>)."""
    f, g = dense_sinkhorn(a, x, b, y, eps, p, rho)
    if rho is None:
        return float(a @ f + b @ g)
    w = rho + eps / 2
    return float(w * (a @ (1 - torch.exp(-f / rho)) + b @ (1 - torch.exp(-g / rho))))


@pytest.mark.parametrize("p,blur", [(1, 0.2), (2, 0.25)])
def test_dense_reference_n500(p, blur):
    """OT_eps and the debiased S_eps at N = 500, M = 400 against the dense
    solver, pykp converged with tol (balanced)."""
    a, x, b, y = weights(500), cloud(500), weights(400, 1), cloud(400, seed=1, shift=0.3)
    eps = blur**p
    ot_ab = dense_ot(a, x, b, y, eps, p)
    ot_aa = dense_ot(a, x, a, x, eps, p)
    ot_bb = dense_ot(b, y, b, y, eps, p)
    raw = kot.SamplesLoss(p=p, blur=blur, debias=False, tol=1e-9, max_iter=3000)
    v = float(raw(a, x, b, y))
    assert raw.marginal_error < 1e-9
    assert v == pytest.approx(ot_ab, rel=1e-7, abs=1e-9)
    S = float(kot.SamplesLoss(p=p, blur=blur, tol=1e-9, max_iter=3000)(a, x, b, y))
    assert S == pytest.approx(ot_ab - ot_aa / 2 - ot_bb / 2, rel=1e-6, abs=1e-9)


def test_dense_reference_unbalanced():
    a, x, b, y = weights(300), cloud(300), 2 * weights(200, 1), cloud(200, seed=1, shift=0.2)
    blur, reach = 0.2, 0.5
    ref = dense_ot(a, x, b, y, blur**2, 2, reach**2)
    loss = kot.SamplesLoss(blur=blur, reach=reach, debias=False, tol=1e-10, max_iter=3000)
    assert float(loss(a, x, b, y)) == pytest.approx(ref, rel=1e-7)


# ----------------------------------------------------------------- POT


def _optional(name):
    try:
        return __import__(name)
    except Exception:  # not installed, or broken: its comparisons are skipped
        return None


ot = _optional("ot")
needs_pot = pytest.mark.skipif(ot is None, reason="POT (pip install pot) is not installed")


@needs_pot
@pytest.mark.parametrize("p,blur,rel", [(1, 0.001, 0.01), (2, 0.01, 0.01)])
def test_emd2_limit(p, blur, rel):
    """The debiased divergence tends to the exact transport cost (ot.emd2)
    as blur -> 0; at blur = 0.05 it is measurably farther."""
    a, x, b, y = weights(40, 3), cloud(40, 2, seed=3), weights(50, 4), cloud(50, 2, seed=4, shift=0.25)
    M = (torch.cdist(x, y) ** p / p).numpy()
    exact = ot.emd2(a.numpy(), b.numpy(), M)
    v = float(kot.SamplesLoss(p=p, blur=blur, scaling=0.9, tol=1e-4, max_iter=4000)(a, x, b, y))
    assert v == pytest.approx(exact, rel=rel)
    far = float(kot.SamplesLoss(p=p, blur=0.2, scaling=0.9)(a, x, b, y))
    assert abs(far - exact) > abs(v - exact)


@needs_pot
def test_pot_sinkhorn_log_plan():
    """At a fixed eps, POT's log-domain Sinkhorn plan and pykp's lazy plan agree:
    products pi w, pi^T w, and the transport cost <pi, C> (ot.sinkhorn2)."""
    a, x, b, y = weights(200), cloud(200), weights(150, 1), cloud(150, seed=1, shift=0.2)
    eps = 0.05**2
    M = (torch.cdist(x, y) ** 2 / 2).numpy()
    G = ot.sinkhorn(a.numpy(), b.numpy(), M, eps, method="sinkhorn_log", numItermax=20000, stopThr=1e-12)
    cost = ot.sinkhorn2(a.numpy(), b.numpy(), M, eps, method="sinkhorn_log", numItermax=20000, stopThr=1e-12)
    plan = kot.SamplesLoss(blur=0.05, tol=1e-11, max_iter=20000).plan(a, x, b, y)
    w = torch.linspace(-1, 1, 150, dtype=F64)
    assert np.allclose(plan.matvec(w).numpy(), G @ w.numpy(), rtol=1e-6, atol=1e-10)
    u = torch.linspace(0, 1, 200, dtype=F64)
    assert np.allclose(plan.rmatvec(u).numpy(), G.T @ u.numpy(), rtol=1e-6, atol=1e-10)
    import pykp

    x_i, y_j = pykp.LazyTensor(x[:, None, :]), pykp.LazyTensor(y[None, :, :])
    ours = float((plan.lazy * (((x_i - y_j) ** 2).sum(-1) / 2)).sum(1).sum())
    assert ours == pytest.approx(float(cost), rel=1e-6)


# ----------------------------------------------------------------- GeomLoss

geomloss = _optional("geomloss")
needs_geomloss = pytest.mark.skipif(geomloss is None, reason="GeomLoss (pip install geomloss) is not installed")

CASES = [
    dict(),
    dict(p=1),
    dict(blur=0.01),
    dict(reach=0.5),
    dict(reach=0.3, debias=False),
    dict(debias=False),
    dict(scaling=0.8, blur=0.1),
    dict(diameter=3.0),
    dict(loss="energy"),
    dict(loss="gaussian", blur=0.3),
    dict(loss="laplacian", blur=0.3),
]


def _geomloss_grads(make, args):
    args = [t.clone().requires_grad_(True) for t in args]
    v = make()(*args)
    grads = torch.autograd.grad(v.sum(), args)
    return v.detach(), grads


@needs_geomloss
@pytest.mark.parametrize("kw", CASES, ids=lambda kw: ",".join("%s=%s" % i for i in kw.items()) or "default")
def test_geomloss_values_and_gradients(kw):
    """Value and gradients w.r.t. a, x, b, y against GeomLoss (tensorized),
    weighted and batched (B = 2). p = 1 costs: GeomLoss clamps |x - y| at 1e-4
    (its sqrt), hence the looser tolerance there."""
    B = 2
    a = torch.stack([weights(120, s) for s in range(B)])
    b = torch.stack([weights(90, s + 7) for s in range(B)])
    x = torch.stack([cloud(120, seed=s) for s in range(B)])
    y = torch.stack([cloud(90, seed=s + 7, shift=0.3) for s in range(B)])
    v1, g1 = _geomloss_grads(lambda: kot.SamplesLoss(**kw), (a, x, b, y))
    v2, g2 = _geomloss_grads(lambda: geomloss.SamplesLoss(backend="tensorized", **kw), (a, x, b, y))
    loose = kw.get("p") == 1 or kw.get("loss") in ("energy", "laplacian")
    rtol = 2e-3 if loose else 1e-9
    assert v1.shape == (B,)
    assert torch.allclose(v1, v2, rtol=rtol, atol=1e-12)
    for name, u, w in zip("axby", g1, g2):
        if "reach" in kw:
            # GeomLoss means to scale the backward by rho + eps (its UnbalancedWeight) but,
            # an nn.Module's backward being never called, uses rho + eps/2: pykp applies it,
            # and the exact weight gradients (gradcheck below); debiased, those are the same rescaling
            if name in "ab" and not kw.get("debias", True):
                continue
            rho, eps = kw["reach"] ** 2, kw.get("blur", 0.05) ** 2
            w = w * (rho + eps) / (rho + eps / 2)
        if name in "ab" and kw.get("loss") in (None, "sinkhorn"):
            # dS/da is a potential, defined up to a constant on the simplex
            u, w = u - u.mean(-1, keepdim=True), w - w.mean(-1, keepdim=True)
        scale = float(w.abs().max())
        assert float((u - w).abs().max()) <= rtol * scale + 1e-12, name


@needs_geomloss
@pytest.mark.parametrize("kw", [dict(), dict(reach=0.5), dict(debias=False), dict(loss="gaussian", blur=0.3)])
def test_geomloss_potentials(kw):
    x, y = cloud(100), cloud(80, seed=1, shift=0.2)
    F1, G1 = kot.SamplesLoss(potentials=True, **kw)(x, y)
    F2, G2 = geomloss.SamplesLoss(potentials=True, backend="tensorized", **kw)(x, y)
    assert F1.shape == (100,) and G1.shape == (80,)
    assert torch.allclose(F1, F2, rtol=1e-9, atol=1e-12) and torch.allclose(G1, G2, rtol=1e-9, atol=1e-12)


@needs_geomloss
def test_geomloss_double_backward():
    """Hessian-vector products w.r.t. x through the last extrapolation step,
    as GeomLoss's tensorized backend computes them."""
    x, y = cloud(60), cloud(50, seed=1, shift=0.2)
    v = torch.randn(60, 3, generator=torch.Generator().manual_seed(5), dtype=F64)

    def hvp(loss):
        xx = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss(xx, y), [xx], create_graph=True)
        (h,) = torch.autograd.grad((g * v).sum(), [xx])
        return h

    h1 = hvp(kot.SamplesLoss(blur=0.1))
    h2 = hvp(geomloss.SamplesLoss(blur=0.1, backend="tensorized"))
    assert torch.allclose(h1, h2, rtol=1e-8, atol=1e-12)


def test_float32_matches_float64():
    x, y = cloud(300), cloud(200, seed=1, shift=0.3)
    v64 = float(kot.SamplesLoss()(x, y))
    v32 = float(kot.SamplesLoss()(x.float(), y.float()))
    assert v32 == pytest.approx(v64, rel=1e-4)


# ----------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("p", [1, 2])
def test_gradcheck_sinkhorn_positions(p):
    """The envelope-theorem gradient is the derivative of the converged divergence."""
    x = cloud(7, 2, seed=11).requires_grad_(True)
    y = cloud(6, 2, seed=12, shift=0.4).requires_grad_(True)
    loss = kot.SamplesLoss(p=p, blur=0.3, tol=1e-14, max_iter=5000)
    assert torch.autograd.gradcheck(lambda x, y: loss(x, y), (x, y), eps=1e-6, atol=1e-7, rtol=1e-4)


@pytest.mark.parametrize("debias", [True, False])
def test_gradcheck_unbalanced(debias):
    """Unbalanced: positions and weights (any mass), exact derivatives of the value."""
    x = cloud(6, 2, seed=13).requires_grad_(True)
    y = cloud(5, 2, seed=14, shift=0.3)
    a = (weights(6, 3) * 1.5).requires_grad_(True)
    b = weights(5, 4).requires_grad_(True)
    loss = kot.SamplesLoss(blur=0.3, reach=0.7, debias=debias, tol=1e-14, max_iter=5000)
    assert torch.autograd.gradcheck(lambda a, x, b: loss(a, x, b, y), (a, x, b), eps=1e-6, atol=1e-7, rtol=1e-4)


@pytest.mark.parametrize("name", ["hausdorff", "energy", "gaussian", "laplacian"])
def test_gradcheck_other_losses(name):
    """Exact autograd (positions and weights), and second derivatives."""
    a, x = weights(6, 1).requires_grad_(True), cloud(6, 2, seed=15).requires_grad_(True)
    b, y = weights(5, 2), cloud(5, 2, seed=16, shift=0.3).requires_grad_(True)
    loss = kot.SamplesLoss(name, blur=0.4)
    f = lambda a, x, y: loss(a, x, b, y)  # noqa: E731
    assert torch.autograd.gradcheck(f, (a, x, y), eps=1e-6, atol=1e-7, rtol=1e-4)
    if name != "laplacian":  # |x - y| is not twice differentiable where points meet
        assert torch.autograd.gradgradcheck(f, (a, x, y), eps=1e-6, atol=1e-6, rtol=1e-3)


def test_hausdorff_dense_reference():
    """H(a, b) = 1/2 <a, d_b - d_a> + 1/2 <b, d_a - d_b> with dense soft-mins."""
    a, x, b, y = weights(80), cloud(80), weights(70, 1), cloud(70, seed=1, shift=0.2)
    eps = 0.1**2

    def d(w, pts, at):
        C = torch.cdist(at, pts) ** 2 / 2
        return -eps * torch.logsumexp(w.log()[None, :] - C / eps, dim=1)

    ref = 0.5 * (a @ (d(b, y, x) - d(a, x, x))) + 0.5 * (b @ (d(a, x, y) - d(b, y, y)))
    assert float(kot.SamplesLoss("hausdorff", blur=0.1)(a, x, b, y)) == pytest.approx(float(ref), rel=1e-10)
