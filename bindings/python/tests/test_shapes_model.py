"""pykp.shapes deformation model: geodesic shooting against an independent
dense float64 implementation of Hamilton's equations (explicit derivatives, no
autograd), conservation of H to the integrator's order, normalized
Hamiltonians, checkpointing and argument checks."""

import pytest
import torch

from pykp import shapes

F64 = torch.float64

# radial kernels k = f(r^2) and f'(r^2) for the reference (widths as in libkp: exp(-r^2 / s^2))
def _radial(kind, s):
    g = 1.0 / s**2
    if kind == "gaussian":
        return (lambda r2: torch.exp(-g * r2)), (lambda r2: -g * torch.exp(-g * r2)), shapes.GaussianKernel(s)
    if kind == "cauchy":
        return (lambda r2: 1 / (1 + g * r2)), (lambda r2: -g / (1 + g * r2) ** 2), shapes.CauchyKernel(s)
    sig, w = [s, s / 3], [0.7, 0.3]
    f = lambda r2: sum(wk * torch.exp(-r2 / sk**2) for sk, wk in zip(sig, w))
    df = lambda r2: sum(-wk / sk**2 * torch.exp(-r2 / sk**2) for sk, wk in zip(sig, w))
    return f, df, shapes.SumOfGaussiansKernel(sig, w)


def _ref_rhs(f, df):
    """dq_i/dt = sum_j f(r_ij^2) p_j, dp_i/dt = -2 sum_j f'(r_ij^2) <p_i, p_j> (q_i - q_j),
    dx/dt = sum_j f(|x - q_j|^2) p_j."""
    def rhs(q, p, x):
        diff = q[:, None, :] - q[None, :, :]
        r2 = (diff**2).sum(-1)
        dq = f(r2) @ p
        dp = -2 * ((df(r2) * (p @ p.T))[:, :, None] * diff).sum(1)
        dx = None if x is None else f(((x[:, None, :] - q[None]) ** 2).sum(-1)) @ p
        return dq, dp, dx
    return rhs


def _ref_shoot(rhs, q, p, x, steps, scheme):
    h = 1.0 / steps
    def ax(s, k, c):
        return tuple(None if a is None else a + c * b for a, b in zip(s, k))
    s = (q, p, x)
    for _ in range(steps):
        k1 = rhs(*s)
        if scheme == "euler":
            s = ax(s, k1, h)
        elif scheme == "ralston":
            k2 = rhs(*ax(s, k1, 2 * h / 3))
            s = ax(ax(s, k1, h / 4), k2, 3 * h / 4)
        else:
            k2 = rhs(*ax(s, k1, h / 2))
            k3 = rhs(*ax(s, k2, h / 2))
            k4 = rhs(*ax(s, k3, h))
            s = ax(ax(ax(ax(s, k1, h / 6), k2, h / 3), k3, h / 3), k4, h / 6)
    return s


def _data(n=40, d=3, scale=0.3):
    q = torch.rand(n, d, dtype=F64)
    p = scale * torch.randn(n, d, dtype=F64)
    x = torch.rand(n // 2 + 3, d, dtype=F64)
    return q, p, x


@pytest.mark.parametrize("scheme", shapes.INTEGRATORS)
@pytest.mark.parametrize("kind", ["gaussian", "cauchy", "sum"])
def test_shooting_matches_dense_reference(scheme, kind):
    f, df, kernel = _radial(kind, 0.4)
    q, p, x = _data()
    qr, pr, xr = _ref_shoot(_ref_rhs(f, df), q, p, x, 7, scheme)
    model = shapes.Deformation(kernel, integrator=scheme, steps=7)
    out = model.shoot(q, p, x)
    assert (out.q - qr).abs().max() < 1e-10
    assert (out.p - pr).abs().max() < 1e-10
    assert (out.points - xr).abs().max() < 1e-10
    assert (model.flow(x, q, p) - xr).abs().max() < 1e-10
    # the dense torch backend of the same model agrees too
    dense = shapes.Deformation(kernel, integrator=scheme, steps=7, backend="torch").shoot(q, p, x)
    assert (dense.q - out.q).abs().max() < 1e-10 and (dense.points - out.points).abs().max() < 1e-10


def test_trajectory_and_2d():
    f, df, kernel = _radial("gaussian", 0.5)
    q, p, x = _data(d=2)
    out = shapes.Deformation(kernel, integrator="rk4", steps=4).shoot(q, p, x, trajectory=True)
    assert len(out.q_path) == len(out.p_path) == len(out.points_path) == 5
    assert torch.equal(out.q_path[0], q) and torch.equal(out.q_path[-1], out.q)
    qr, pr, xr = _ref_shoot(_ref_rhs(f, df), q, p, x, 4, "rk4")
    assert (out.q - qr).abs().max() < 1e-10 and (out.points - xr).abs().max() < 1e-10


def test_hamiltonian_value_and_velocity():
    f, df, kernel = _radial("gaussian", 0.4)
    q, p, x = _data()
    model = shapes.Deformation(kernel)
    r2 = ((q[:, None] - q[None]) ** 2).sum(-1)
    H = 0.5 * (f(r2) * (p @ p.T)).sum()
    assert abs(model.hamiltonian(q, p) - H) < 1e-12 * H
    assert abs(model.energy(q, p) - H) < 1e-12 * H
    assert (model.velocity(x, q, p) - _ref_rhs(f, df)(q, p, x)[2]).abs().max() < 1e-12


def _energy_drift(model, q, p):
    out = model.shoot(q, p)
    return abs(float(model.hamiltonian(out.q, out.p) - model.hamiltonian(q, p)))


@pytest.mark.parametrize("scheme,order", [("euler", 1), ("ralston", 2), ("rk4", 4)])
@pytest.mark.parametrize("normalize", [None, "sinkhorn"])
def test_hamiltonian_conserved_to_the_integrators_order(scheme, order, normalize):
    """Halving the step divides the drift |H(q_T, p_T) - H(q_0, p_0)| by at least
    ~2^order (it may do better: Ralston's drift here falls as dt^3), and the
    error of q(1) against a fine RK4 solution by ~2^order exactly."""
    torch.manual_seed(1)
    q = torch.rand(12, 2, dtype=F64)
    p = torch.randn(12, 2, dtype=F64) * (0.3 if normalize is None else 1.0)
    T = {"euler": 16, "ralston": 8, "rk4": 8}[scheme]
    models = [shapes.Deformation("gaussian", 0.5, scheme, t, normalize=normalize, sinkhorn_iters=3) for t in (T, 2 * T)]
    e1, e2 = (_energy_drift(m, q, p) for m in models)
    assert e2 > 1e-11, "the test needs a drift well above rounding"
    assert e1 / e2 > 0.8 * 2**order, (e1, e2)
    exact = shapes.Deformation("gaussian", 0.5, "rk4", 128, normalize=normalize, sinkhorn_iters=3,
                               backend="torch").shoot(q, p).q
    d1, d2 = ((m.shoot(q, p).q - exact).abs().max() for m in models)
    assert 0.7 * 2**order < d1 / d2 < 1.5 * 2**order, (d1, d2)


# ----------------------------------------------------------------- normalized Hamiltonians


def _dense_normalized_H(q, p, s, normalize, iters):
    K = torch.exp(-((q[:, None] - q[None]) ** 2).sum(-1) / s**2)
    if normalize == "row":
        return 0.5 * ((p * (K @ p)).sum(1) / K.sum(1)).sum()
    a = (K @ torch.ones(len(q), 1, dtype=q.dtype)).rsqrt()
    for _ in range(iters):
        a = (a / (K @ a)).sqrt()
    d = 1 / (K @ a)
    return 0.5 * (d * K * d.T * (p @ p.T)).sum()


@pytest.mark.parametrize("normalize", ["row", "sinkhorn"])
def test_normalized_hamiltonian(normalize):
    q, p, x = _data(30, 3)
    model = shapes.Deformation("gaussian", 0.3, "rk4", 5, normalize=normalize, sinkhorn_iters=6)
    H = _dense_normalized_H(q, p, 0.3, normalize, 6)
    assert abs(model.hamiltonian(q, p) - H) < 1e-12 * abs(H)
    # the velocity field at the control points is dH/dp (the flow of q0 is q)
    qq, pp = q.clone().requires_grad_(), p.clone().requires_grad_()
    Hq, Hp = torch.autograd.grad(model.hamiltonian(qq, pp), [qq, pp])
    assert (model.velocity(q, q, p) - Hp).abs().max() < 1e-12
    out = model.shoot(q, p, torch.cat([q, x]))
    assert (out.points[: len(q)] - out.q).abs().max() < 1e-12
    # equations through the libkp reductions = through dense torch matrices
    dense = shapes.Deformation("gaussian", 0.3, "rk4", 5, normalize=normalize, sinkhorn_iters=6, backend="torch")
    ref = dense.shoot(q, p, x)
    assert (ref.q - out.q).abs().max() < 1e-10 and (ref.p - out.p).abs().max() < 1e-10
    assert (ref.points - out.points[len(q):]).abs().max() < 1e-10


def test_sinkhorn_scaling_makes_rows_sum_to_one():
    q = torch.rand(50, 3, dtype=F64)
    model = shapes.Deformation("gaussian", 0.2, normalize="sinkhorn", sinkhorn_iters=30)
    a = model.sinkhorn_scaling(q)
    K = torch.exp(-((q[:, None] - q[None]) ** 2).sum(-1) / 0.04)
    assert (a * (K @ a) - 1).abs().max() < 1e-8


def test_normalized_velocity_ignores_sampling_density():
    """Duplicating every control point (same momentum) doubles an unnormalized
    velocity, but leaves the normalized ones unchanged."""
    q, p, x = _data(20, 2)
    q2, p2 = torch.cat([q, q]), torch.cat([p, p])
    for normalize, factor in ((None, 2.0), ("row", 1.0), ("sinkhorn", 1.0)):
        m = shapes.Deformation("gaussian", 0.3, normalize=normalize, sinkhorn_iters=50)
        v1, v2 = m.velocity(x, q, p), m.velocity(x, q2, p2)
        assert (v2 - factor * v1).abs().max() < 1e-8 * v1.abs().max(), normalize


# ----------------------------------------------------------------- gradients through shooting


@pytest.mark.parametrize("normalize", [None, "row"])
def test_gradient_through_shooting_and_checkpointing(normalize):
    q, p, x = _data(25, 3)
    w = torch.randn_like(x)
    grads = []
    for backend, ck in (("torch", False), ("pykp", False), ("pykp", True)):
        p0 = p.clone().requires_grad_()
        m = shapes.Deformation("gaussian", 0.4, "ralston", 4, normalize=normalize, checkpoint=ck, backend=backend)
        out = m.shoot(q, p0, x)
        loss = (out.points * w).sum() + (out.q**2).sum() + m.energy(q, p0)
        grads.append(torch.autograd.grad(loss, p0)[0])
    assert (grads[1] - grads[0]).abs().max() < 1e-10
    assert (grads[2] - grads[1]).abs().max() < 1e-12


def test_checkpointing_keeps_only_the_step_inputs():
    """Tensors saved for backward (counted by an outer saved_tensors_hooks, which
    checkpointed regions do not reach): without checkpointing dozens of (N, D)
    tensors per RK4 step, with it at most 3 per step (the step's inputs)."""
    q = torch.rand(50, 3, dtype=F64)
    p0 = (0.1 * torch.randn(50, 3, dtype=F64)).requires_grad_()
    nd = q.numel() * q.element_size()
    saved = {}
    for ck in (False, True):
        for T in (2, 4):
            sizes = []

            def pack(t):
                sizes.append(t.numel() * t.element_size())
                return t

            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                out = shapes.Deformation("gaussian", 0.3, "rk4", T, checkpoint=ck).shoot(q, p0)
            torch.autograd.grad(out.q.sum(), p0)
            saved[ck, T] = sum(sizes) / nd
    assert saved[True, 4] <= 3 * 4 and saved[True, 2] <= 3 * 2
    assert saved[False, 4] > 10 * saved[True, 4] and saved[False, 4] >= 1.9 * saved[False, 2]


def test_gradcheck_shooting_small():
    q = torch.rand(5, 2, dtype=F64)
    p = (0.3 * torch.randn(5, 2, dtype=F64)).requires_grad_()
    m = shapes.Deformation("cauchy", 0.5, "rk4", 3)
    assert torch.autograd.gradcheck(lambda p0: m.shoot(q, p0).q, (p,))


def test_shoot_under_no_grad_and_without_requires_grad():
    q, p, x = _data()
    m = shapes.Deformation("gaussian", 0.4, "euler", 3)
    with torch.no_grad():
        a = m.shoot(q, p, x)
    b = m.shoot(q, p, x)
    assert torch.equal(a.q, b.q) and a.q.grad_fn is None and b.q.grad_fn is None


# ----------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        (dict(integrator="midpoint"), "integrator"),
        (dict(steps=0), "steps"),
        (dict(steps=2.5), "steps"),
        (dict(normalize="col"), "normalize"),
        (dict(backend="numpy"), "backend"),
        (dict(sinkhorn_iters=-1), "sinkhorn_iters"),
    ],
)
def test_model_bad_arguments(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        shapes.Deformation("gaussian", 0.5, **kwargs)


def test_bad_kernels_and_shapes():
    with pytest.raises(ValueError, match="sigma"):
        shapes.GaussianKernel(-1.0)
    with pytest.raises(ValueError, match="sigma"):
        shapes.CauchyKernel(float("nan"))
    with pytest.raises(ValueError, match="weights"):
        shapes.SumOfGaussiansKernel([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="unknown kernel"):
        shapes.Deformation("laplace", 0.5)
    with pytest.raises(ValueError, match="needs sigma"):
        shapes.Deformation("gaussian")
    m = shapes.Deformation("gaussian", 0.5)
    q = torch.rand(4, 3, dtype=F64)
    with pytest.raises(ValueError, match="same shape"):
        m.shoot(q, torch.zeros(5, 3, dtype=F64))
    with pytest.raises(ValueError, match="N > 0"):
        m.shoot(torch.zeros(0, 3, dtype=F64), torch.zeros(0, 3, dtype=F64))
    with pytest.raises(TypeError, match="dtype"):
        m.shoot(q, torch.zeros(4, 3, dtype=torch.float32))
    with pytest.raises(ValueError, match="points"):
        m.flow(torch.zeros(3, 2, dtype=F64), q, q)


def test_float32_close_to_float64():
    q, p, x = _data(60, 3)
    m = shapes.Deformation("gaussian", 0.4, "rk4", 5)
    a = m.shoot(q, p, x)
    b = m.shoot(q.float(), p.float(), x.float())
    assert b.q.dtype == torch.float32
    assert (b.q.double() - a.q).abs().max() < 1e-5 and (b.points.double() - a.points).abs().max() < 1e-5
