"""Backward passes through joint plans: the gradients of one reduction that take
the same arguments run in one libkp call (kp_plan_exec_joint, one pass over the
pairs for the Sums among them). Checked against the one-reduction-per-gradient
path (genred.JOINT_BACKWARD = False) at sizes where libkp's joint pass really
runs (N >= 512 i points), and for differentiability (gradcheck, gradgradcheck,
the Hamiltonian's second derivatives)."""
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import pykp
from pykp import _lib, genred
from conftest import assert_close

pytestmark = pytest.mark.skipif(not _lib.has_joint_plans(), reason="this libkp has no joint plans")

TOL = {torch.float32: dict(rtol=2e-5, atol=2e-5), torch.float64: dict(rtol=1e-11, atol=1e-11)}


class Calls:
    """Counts kp_plan_exec and kp_plan_exec_joint calls."""

    def __init__(self, monkeypatch):
        self.plain = self.joint = 0
        plain, joint = _lib._plan_exec, _lib._plan_exec_joint

        def count_plain(*a):
            self.plain += 1
            return plain(*a)

        def count_joint(*a):
            self.joint += 1
            return joint(*a)

        monkeypatch.setattr(_lib, "_plan_exec", count_plain)
        monkeypatch.setattr(_lib, "_plan_exec_joint", count_joint)

    def reset(self):
        self.plain = self.joint = 0


def both_paths(monkeypatch, fn):
    """fn() with joint backward passes, then with one reduction per gradient."""
    out = []
    for joint in (True, False):
        monkeypatch.setattr(genred, "JOINT_BACKWARD", joint)
        out.append(fn())
    return out


def close(a, b, dtype):
    scale = float(b.abs().max()) or 1.0
    assert_close(a, b, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * scale)


def data(dtype, N=700, M=600, E=2):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(N, 3, dtype=dtype, generator=g)
    y = torch.rand(M, 3, dtype=dtype, generator=g)
    b = torch.rand(M, E, dtype=dtype, generator=g)
    W = torch.rand(N, E, dtype=dtype, generator=g)  # output weights: <out, W>
    return x, y, b, W


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_gradients_match_separate_reductions(monkeypatch, dtype):
    x0, y0, b0, W = data(dtype)
    calls = Calls(monkeypatch)

    def grads():
        calls.reset()
        x, y, b = (t.clone().requires_grad_() for t in (x0, y0, b0))
        v = pykp.kernel_product(x, y, b, "gaussian", sigma=0.3)
        g = torch.autograd.grad((v * W).sum(), [x, y, b])
        return g, (calls.plain, calls.joint)

    (gj, cj), (gs, cs) = both_paths(monkeypatch, grads)
    assert cj == (1, 1)  # the forward, then x, y, b in one joint call
    assert cs == (4, 0)  # the forward, then one reduction per input
    for a, r in zip(gj, gs):
        assert a.dtype == dtype
        close(a, r, dtype)
    # and against dense torch
    x, y, b = (t.double().requires_grad_() for t in (x0, y0, b0))
    v = torch.exp(-((x[:, None] - y[None]) ** 2).sum(-1) / 0.09) @ b
    ref = torch.autograd.grad((v * W.double()).sum(), [x, y, b])
    for a, r in zip(gj, ref):
        close(a.double(), r, torch.float32 if dtype == torch.float32 else torch.float64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_parameter_gradient_joins_the_pass(monkeypatch, dtype):
    """sigma's gradient (rows summed) joins the pass as it is (libkp sums its rows)."""
    x0, y0, b0, W = data(dtype)
    calls = Calls(monkeypatch)

    def grads():
        calls.reset()
        x, b = x0.clone().requires_grad_(), b0.clone().requires_grad_()
        s = torch.tensor(0.3, dtype=dtype, requires_grad=True)
        v = pykp.kernel_product(x, y0, b, "gaussian", sigma=s)
        g = torch.autograd.grad((v * W).sum(), [x, b, s])
        return g, (calls.plain, calls.joint)

    (gj, cj), (gs, cs) = both_paths(monkeypatch, grads)
    assert cj == (1, 1) and cs == (4, 0)
    for a, r in zip(gj, gs):
        assert a.shape == r.shape
        close(a, r, dtype)


def test_gradient_not_needed_is_not_computed(monkeypatch):
    """y does not require a gradient: only x and b join; b alone runs alone."""
    x0, y0, b0, W = data(torch.float64)
    calls = Calls(monkeypatch)

    def grads(need_b):
        calls.reset()
        x = x0.clone().requires_grad_()
        b = b0.clone().requires_grad_(need_b)
        v = pykp.kernel_product(x, y0, b, "gaussian", sigma=0.3)
        g = torch.autograd.grad((v * W).sum(), [x, b] if need_b else [x])
        return g, (calls.plain, calls.joint)

    (gj, cj), (gs, cs) = both_paths(monkeypatch, lambda: grads(True))
    assert cj == (1, 1) and cs == (3, 0)
    for a, r in zip(gj, gs):
        close(a, r, torch.float64)
    (gj, cj), (gs, cs) = both_paths(monkeypatch, lambda: grads(False))
    assert cj == (2, 0) and cs == (2, 0)  # one gradient: no joint plan
    close(gj[0], gs[0], torch.float64)


def test_will_use_skips_gradients_in_joint_passes(monkeypatch):
    """The autograd engine does not need p's gradient: the joint call holds q's two only."""
    monkeypatch.setattr(genred, "_WILL_USE_MIN_PAIRS", 0)
    q0 = torch.rand(600, 3)
    p0 = torch.randn(600, 3)
    calls = Calls(monkeypatch)
    keys = []
    orig = _lib.joint

    def spy(k):
        keys.append(k)
        return orig(k)

    monkeypatch.setattr(_lib, "joint", spy)

    def grads():
        calls.reset()
        keys.clear()
        q, p = q0.clone().requires_grad_(), p0.clone().requires_grad_()
        v = pykp.kernel_product(q, q, p, "gaussian", sigma=0.3)
        g = torch.autograd.grad(0.5 * (p * v).sum(), [q])
        return g, (calls.plain, calls.joint), [len(k) for k in keys]

    (gj, cj, kj), (gs, cs, _) = both_paths(monkeypatch, grads)
    if genred._will_execute is not None:
        assert kj and set(kj) == {2}  # q as Vi and q as Vj; not p
    close(gj[0], gs[0], torch.float64)


@pytest.mark.skipif(genred._will_execute is None, reason="this torch has no _will_engine_execute_node")
@pytest.mark.parametrize("batched", [False, True])
def test_will_use_asks_from_the_calls_number_of_pairs(monkeypatch, batched):
    """The backward asks torch whether a gradient is used only for calls of
    _WILL_USE_MIN_PAIRS pairs or more, counted from the forward's Call (no
    batch dimensions) or from the arguments' shapes (batches): 2 x 7 x 5
    pairs with batches, 7 x 5 without."""
    asked = []

    def spy(fn):
        asked.append(fn)
        return True

    monkeypatch.setattr(genred, "_will_execute", spy)
    k = pykp.Genred("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], axis=1)
    shape = (2,) if batched else ()
    x = torch.rand(shape + (7, 3), dtype=torch.float64, requires_grad=True)
    y = torch.rand(shape + (5, 3), dtype=torch.float64)
    b = torch.rand(shape + (5, 1), dtype=torch.float64, requires_grad=True)
    pairs = (2 if batched else 1) * 7 * 5
    for threshold, asks in ((pairs, True), (pairs + 1, False)):
        monkeypatch.setattr(genred, "_WILL_USE_MIN_PAIRS", threshold)
        asked.clear()
        gx, gb = torch.autograd.grad(k(x, y, b).sum(), (x, b))
        assert bool(asked) == asks, (threshold, len(asked))
        xr = x[..., :, None, :] - y[..., None, :, :]
        ref = (torch.exp(-(xr ** 2).sum(-1)) @ b).sum()
        rx, rb = torch.autograd.grad(ref, (x, b))
        close(gx, rx, torch.float64)
        close(gb, rb, torch.float64)


def test_hamiltonian_derivatives_match(monkeypatch):
    """dH/dq, dH/dp (one joint call), then a second-order backward through them
    (one joint call per first-order gradient), sigma included, vs separate passes."""
    N = 800
    torch.manual_seed(2)
    q0 = torch.rand(N, 3)
    p0 = torch.randn(N, 3) / N
    w = torch.randn(N, 3)
    calls = Calls(monkeypatch)

    def derivatives():
        calls.reset()
        q, p = q0.clone().requires_grad_(), p0.clone().requires_grad_()
        s = torch.tensor(0.3, requires_grad=True)
        H = 0.5 * (p * pykp.kernel_product(q, q, p, "gaussian", sigma=s)).sum()
        dq, dp = torch.autograd.grad(H, [q, p], create_graph=True)
        first = (calls.plain, calls.joint)
        loss = (dq * w).sum() + (dq**2).sum() + (dp**2).sum()
        gq, gp, gs = torch.autograd.grad(loss, [q, p, s])
        return (H, dq, dp, gq, gp, gs), first, (calls.plain, calls.joint)

    (rj, fj, aj), (rs, fs, as_) = both_paths(monkeypatch, derivatives)
    assert fj == (1, 1)  # forward; q (Vi), q (Vj), p, s in one joint call
    assert fs == (5, 0)
    print("second order: %d + %d joint calls against %d" % (aj[0] - fj[0], aj[1] - fj[1], as_[0] - fs[0]))
    assert aj[1] > 1 and aj[0] + aj[1] < as_[0]
    for a, r in zip(rj, rs):
        close(a, r, torch.float64)


@pytest.mark.parametrize("reduction", ["LogSumExp", "SumSoftMaxWeight", "Min", "KMin"])
@pytest.mark.parametrize("axis", [0, 1])
def test_other_reductions_match(monkeypatch, reduction, axis):
    """Gradients taking more arguments than G: the forward output (LogSumExp,
    SumSoftMaxWeight), the lse (SumSoftMaxWeight, reduced-axis variables), the
    selected indices (Min, KMin); SumSoftMaxWeight gradients that are not Sums
    run alone."""
    N, M = 600, 550
    x0, y0 = torch.rand(N, 3), torch.rand(M, 3)
    u0, b0 = torch.rand(N, 2), torch.rand(M, 2)
    aliases = ["x = Vi(3)", "y = Vj(3)", "u = Vi(2)", "b = Vj(2)", "g = Pm(1)"]
    if reduction == "SumSoftMaxWeight":
        red = pykp.Genred("-SqDist(x,y)*g", aliases, reduction_op=reduction, axis=axis, formula2="u*b")
    elif reduction == "KMin":
        red = pykp.Genred("SqDist(x,y)*g+(u|b)", aliases, reduction_op=reduction, axis=axis, opt_arg=2)
    else:
        red = pykp.Genred("-SqDist(x,y)*g+u*b", aliases, reduction_op=reduction, axis=axis)
    calls = Calls(monkeypatch)

    def grads():
        calls.reset()
        ts = [t.clone().requires_grad_() for t in (x0, y0, u0, b0)]
        g = torch.tensor([2.0], requires_grad=True)
        out = red(*ts, g)
        W = torch.cos(torch.arange(out.numel(), dtype=out.dtype)).reshape(out.shape)
        return torch.autograd.grad((out * W).sum(), ts + [g]), calls.joint

    (gj, cj), (gs, cs) = both_paths(monkeypatch, grads)
    assert cj >= 1 and cs == 0
    for a, r in zip(gj, gs):
        close(a, r, torch.float64)


def test_batched_gradients_match(monkeypatch):
    """Batch dimensions: libkp runs the formulas one after the other, same results."""
    x, y = torch.rand(2, 40, 3, requires_grad=True), torch.rand(1, 30, 3, requires_grad=True)
    b, g = torch.rand(30, 2, requires_grad=True), torch.rand(2, 1, requires_grad=True)
    red = pykp.Genred("Exp(-SqDist(x,y)*g)*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)", "g = Pm(1)"], axis=1)

    def grads():
        out = red(x, y, b, g)
        return torch.autograd.grad((out * torch.cos(out)).sum(), [x, y, b, g])

    for a, r in zip(*both_paths(monkeypatch, grads)):
        assert a.shape == r.shape
        close(a, r, torch.float64)


def test_gradcheck_and_gradgradcheck_through_joint_passes(monkeypatch):
    monkeypatch.setattr(genred, "JOINT_BACKWARD", True)
    calls = Calls(monkeypatch)
    x = torch.rand(7, 3, requires_grad=True)
    y = torch.rand(5, 3, requires_grad=True)
    b = torch.rand(5, 2, requires_grad=True)
    s = torch.tensor(0.8, requires_grad=True)

    def f(x, y, b, s):
        return pykp.kernel_product(x, y, b, "gaussian", sigma=s)

    assert gradcheck(f, (x, y, b, s))
    assert gradgradcheck(f, (x, y, b, s))
    assert calls.joint > 0


def test_third_order_through_joint_passes(monkeypatch):
    monkeypatch.setattr(genred, "JOINT_BACKWARD", True)
    x = torch.rand(11, 2, requires_grad=True)
    p = torch.rand(11, 2, requires_grad=True)
    s = torch.tensor(0.9, requires_grad=True)
    res = []
    for kp in (True, False):
        if kp:
            v = pykp.kernel_product(x, x, p, "gaussian", sigma=s)
        else:
            v = torch.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / s**2) @ p
        h = 0.5 * (p * v).sum()
        dx, dp = torch.autograd.grad(h, [x, p], create_graph=True)
        ddx, dds = torch.autograd.grad((dx**2).sum() + (dx * dp).sum(), [x, s], create_graph=True)
        dddx, dddp, ddds = torch.autograd.grad((ddx * torch.cos(x)).sum() + dds, [x, p, s])
        res.append((dx, dp, ddx, dds, dddx, dddp, ddds))
    for a, r in zip(*res):
        assert_close(a, r, rtol=1e-9, atol=1e-9)


def test_refused_joint_plan_falls_back(monkeypatch):
    """Should libkp refuse a joint plan, its formulas run one by one, same results."""
    monkeypatch.setattr(genred, "JOINT_BACKWARD", True)
    x0, y0, b0, W = data(torch.float64)

    def refuse(joint, dtype):
        raise _lib.KpValueError("refused for the test", "KP_ERR_ARGUMENT")

    def grads():
        _lib.registry().joints.clear()
        x, y, b = (t.clone().requires_grad_() for t in (x0, y0, b0))
        v = pykp.kernel_product(x, y, b, "gaussian", sigma=0.3)
        return torch.autograd.grad((v * W).sum(), [x, y, b])

    ref = grads()
    monkeypatch.setattr(_lib, "JointPlan", refuse)
    calls = Calls(monkeypatch)
    try:
        out = grads()
        assert calls.joint == 0 and calls.plain == 4
        assert any(j.refused for j in _lib.registry().joints.values())
    finally:
        _lib.registry().joints.clear()  # no refused plans left for later tests
    for a, r in zip(out, ref):
        close(a, r, torch.float64)


def test_joint_plans_are_cached(monkeypatch):
    """Repeated backward passes reuse the thread's joint plan (one per dtype)."""
    monkeypatch.setattr(genred, "JOINT_BACKWARD", True)
    made = []
    orig = _lib.JointPlan

    def counting(joint, dtype):
        made.append(dtype)
        return orig(joint, dtype)

    monkeypatch.setattr(_lib, "JointPlan", counting)
    red = pykp.Genred("Exp(-SqDist(x,y)*g)*b*2.5", ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"], axis=1)
    for dtype in (torch.float32, torch.float64, torch.float32, torch.float64):
        x, y, b = torch.rand(30, 3, dtype=dtype), torch.rand(20, 3, dtype=dtype), torch.rand(20, 1, dtype=dtype)
        x.requires_grad_(), y.requires_grad_(), b.requires_grad_()
        red(x, y, torch.tensor([2.0], dtype=dtype), b).sum().backward()
    assert sorted(made) == [_lib.KP_FLOAT32, _lib.KP_FLOAT64]


def test_joint_plan_output_shapes():
    """run_joint's output shapes come from the joint plan (kp_plan_output_shape
    with kp_exec_options.output = k): formula k's own plan's shape, with a
    batch dimension, rows N or M, and one row for the summed parameter
    gradient; a formula index past the last one is refused."""
    from pykp import _call

    key = ("parse", "Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)", ("x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(2)"))
    f = _lib.formula(key)
    grads = [(key, "grad", k) for k in (0, 1, 2, 3)]
    joint = _lib.joint(tuple(grads))
    f64 = torch.float64
    x, y, b = torch.rand(2, 7, 3, dtype=f64), torch.rand(5, 3, dtype=f64), torch.rand(5, 2, dtype=f64)
    e = torch.rand(2, 7, 2, dtype=f64)  # the gradients' seed, an i-variable
    args = [x, y, torch.tensor([0.5], dtype=f64), b, e]
    call = _call.prepare(joint, args)
    plan = joint.plan(call.code)
    assert plan is not None and f.nargs == 4
    plan.pack(call.descs, call.nx, call.ny)
    got = [plan.output_shape(k) for k in range(4)]
    own = [_call.output_shapes(g, call.code, [d if i is not None else None for d, i in zip(call.descs, g.args)],
                               call.nx, call.ny)[0] for g in joint.formulas]
    assert got == own == [(2, 7, 3), (2, 5, 3), (2, 1, 1), (2, 5, 2)]
    with pytest.raises(_lib.KpError, match="4 formulas"):
        plan.output_shape(4)
