"""PyTorch autograd through libkp's symbolic gradient reductions:
gradcheck / gradgradcheck (float64) for the Gaussian kernel product, a
LogSumExp reduction, a SumSoftMaxWeight reduction and a varifold product
kernel; gradients of every input (parameters included) against dense torch;
third order; variables used twice; batch broadcasting; non-differentiable
reductions."""
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import pykp
from conftest import assert_close

N, M = 7, 5


def rnd(*shape, lo=-1.0, hi=1.0):
    return (lo + (hi - lo) * torch.rand(*shape, dtype=torch.float64)).requires_grad_()


def test_gradcheck_gaussian_kernel_product():
    x, y, b = rnd(N, 3), rnd(M, 3), rnd(M, 2)
    s = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)

    def f(x, y, b, s):
        return pykp.kernel_product(x, y, b, "gaussian", sigma=s)

    assert gradcheck(f, (x, y, b, s))
    assert gradgradcheck(f, (x, y, b, s))


@pytest.mark.parametrize("axis", [0, 1])
def test_gradcheck_logsumexp(axis):
    x, y, u, b = rnd(N, 3), rnd(M, 3), rnd(N, 1), rnd(M, 1)
    g = rnd(1, lo=0.5, hi=1.0)
    red = pykp.Genred("-SqDist(x,y)*g+u*b", ["x = Vi(3)", "y = Vj(3)", "u = Vi(1)", "b = Vj(1)", "g = Pm(1)"],
                      reduction_op="LogSumExp", axis=axis)
    assert gradcheck(red, (x, y, u, b, g))
    assert gradgradcheck(red, (x, y, u, b, g))


@pytest.mark.parametrize("axis", [0, 1])
def test_gradcheck_sumsoftmaxweight(axis):
    x, y, u, b = rnd(N, 3), rnd(M, 3), rnd(N, 2), rnd(M, 2)
    g = rnd(1, lo=0.5, hi=1.0)
    red = pykp.Genred("-SqDist(x,y)*g", ["x = Vi(3)", "y = Vj(3)", "u = Vi(2)", "b = Vj(2)", "g = Pm(1)"],
                      reduction_op="SumSoftMaxWeight", axis=axis, formula2="u*b+Extract(y,0,2)*Elem(x,0)")
    assert gradcheck(red, (x, y, u, b, g))
    assert gradgradcheck(red, (x, y, u, b, g))


def test_gradcheck_varifold_kernel():
    x, y = rnd(N, 3), rnd(M, 3)
    u, v = rnd(N, 3), rnd(M, 3)
    b = rnd(M, 1)
    s = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)

    def f(x, y, u, v, b, s):
        return pykp.kernel_product({"x": x, "u": u}, {"y": y, "v": v}, b, "gaussian(x,y) * linear(u,v)**2", sigma={"x": s})

    assert gradcheck(f, (x, y, u, v, b, s))
    assert gradgradcheck(f, (x, y, u, v, b, s))
    # and against the dense formula
    out = f(x, y, u, v, b, s)
    K = torch.exp(-((x[:, None] - y[None]) ** 2).sum(-1) / s**2) * ((u[:, None] * v[None]).sum(-1)) ** 2
    assert_close(out, K @ b)


FORMULAS = [
    ("Exp(-SqDist(x,y)*g)*b", lambda X, Y, B, g: torch.exp(-((X - Y) ** 2).sum(-1, keepdim=True) * g) * B),
    ("Inv(1+SqDist(x,y)*g)*(x|y)*b", lambda X, Y, B, g: (X * Y).sum(-1, keepdim=True) * B / (1 + ((X - Y) ** 2).sum(-1, keepdim=True) * g)),
    ("Sin(x*g)*Cos(y)+Square(x-y)*b", lambda X, Y, B, g: torch.sin(X * g) * torch.cos(Y) + (X - Y) ** 2 * B),
    ("Normalize(x-y)*Exp(-Norm2(x-y)*g)*b", lambda X, Y, B, g: (X - Y) / ((X - Y) ** 2).sum(-1, keepdim=True).sqrt() * torch.exp(-((X - Y) ** 2).sum(-1, keepdim=True).sqrt() * g) * B),
]


@pytest.mark.parametrize("formula,dense", FORMULAS, ids=[f[0] for f in FORMULAS])
@pytest.mark.parametrize("axis", [0, 1])
def test_gradients_of_every_input_against_dense(formula, dense, axis):
    Nb, Mb = 23, 19
    x, y, b = rnd(Nb, 3), rnd(Mb, 3), rnd(Mb if axis == 1 else Nb, 1)
    g = rnd(1, lo=0.5, hi=1.5)
    aliases = ["x = Vi(3)", "y = Vj(3)", "b = %s(1)" % ("Vj" if axis == 1 else "Vi"), "g = Pm(1)"]
    red = pykp.Genred(formula, aliases, reduction_op="Sum", axis=axis)
    out = red(x, y, b, g)
    E = torch.rand_like(out)
    grads = torch.autograd.grad((out * E).sum(), [x, y, b, g])
    Bv = b[None, :, :] if axis == 1 else b[:, None, :]
    ref = dense(x[:, None, :], y[None, :, :], Bv, g).expand(Nb, Mb, -1).sum(1 if axis == 1 else 0)
    assert_close(out, ref)
    rgrads = torch.autograd.grad((ref * E).sum(), [x, y, b, g])
    for a, r in zip(grads, rgrads):
        assert_close(a, r, rtol=1e-9, atol=1e-9)


def test_third_order_against_dense():
    x = rnd(11, 2)
    p = rnd(11, 2)
    s = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)

    def H(kp):
        if kp:
            v = pykp.kernel_product(x, x, p, "gaussian", sigma=s)
        else:
            v = torch.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / s**2) @ p
        return 0.5 * (p * v).sum()

    res = []
    for kp in (True, False):
        h = H(kp)
        (dx,) = torch.autograd.grad(h, [x], create_graph=True)
        (ddx,) = torch.autograd.grad((dx**2).sum(), [x], create_graph=True)
        dddx, ds = torch.autograd.grad((ddx * torch.cos(x)).sum(), [x, s])
        res.append((dx, ddx, dddx, ds))
    for a, r in zip(*res):
        assert_close(a, r, rtol=1e-9, atol=1e-9)


def test_variable_used_twice_accumulates():
    q = rnd(13, 3)
    p = rnd(13, 3)
    v = pykp.kernel_product(q, q, p, "gaussian", sigma=0.6)
    (gq,) = torch.autograd.grad((v * p).sum(), [q])
    q2 = q.detach().clone().requires_grad_()
    vd = torch.exp(-((q2[:, None] - q2[None]) ** 2).sum(-1) / 0.36) @ p
    (rq,) = torch.autograd.grad((vd * p).sum(), [q2])
    assert_close(gq, rq)


def test_batch_gradients_with_broadcasting():
    B = 3
    x = rnd(B, 6, 3)
    y = rnd(1, 5, 3)  # broadcast over the batch: its gradient sums over it
    b = rnd(5, 2)  # no batch dimensions at all
    g = rnd(B, 1, lo=0.5, hi=1.5)  # per-batch parameter
    red = pykp.Genred("Exp(-SqDist(x,y)*g)*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)", "g = Pm(1)"], axis=1)
    out = red(x, y, b, g)
    assert out.shape == (B, 6, 2)
    E = torch.rand_like(out)
    grads = torch.autograd.grad((out * E).sum(), [x, y, b, g])
    ref = torch.exp(-((x[:, :, None] - y[:, None]) ** 2).sum(-1, keepdim=True) * g[:, None, None]) * b[None, None]
    ref = ref.sum(2)
    assert_close(out, ref)
    rgrads = torch.autograd.grad((ref * E).sum(), [x, y, b, g])
    for a, r in zip(grads, rgrads):
        assert a.shape == r.shape
        assert_close(a, r)
    assert gradcheck(lambda x, y, b, g: red(x, y, b, g), (x, y, b, g))


def test_float32_gradients():
    x = torch.rand(300, 3, dtype=torch.float32, requires_grad=True)
    b = torch.rand(300, 1, dtype=torch.float32)
    v = pykp.kernel_product(x, x, b, "gaussian", sigma=0.3)
    (gx,) = torch.autograd.grad(v.sum(), [x])
    assert gx.dtype == torch.float32
    xd = x.detach().double().requires_grad_()
    vd = torch.exp(-((xd[:, None] - xd[None]) ** 2).sum(-1) / 0.09) @ b.double()
    (rx,) = torch.autograd.grad(vd.sum(), [xd])
    assert_close(gx, rx.float(), rtol=1e-4, atol=1e-4 * float(rx.abs().max()))


@pytest.mark.parametrize("reduction", ["Min", "Max", "Min_ArgMin", "Max_ArgMax", "KMin", "KMin_ArgKMin"])
@pytest.mark.parametrize("axis", [0, 1])
def test_min_max_kmin_gradients(reduction, axis):
    x = rnd(N, 3)
    y = rnd(M, 3)
    g = rnd(1, lo=0.5, hi=1.5)
    K = 2 if "KMin" in reduction else None
    red = pykp.Genred("SqDist(x,y)*g+Square(x-y)*Elem(y,0)", ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)"],
                      reduction_op=reduction, axis=axis, opt_arg=K)
    out = red(x, y, g)
    vals = out[0] if isinstance(out, tuple) else out
    F = ((x[:, None] - y[None]) ** 2).sum(-1, keepdim=True) * g + (x[:, None] - y[None]) ** 2 * y[None, :, 0:1]
    if axis == 0:
        F = F.transpose(0, 1)
    if "KMin" in reduction:
        ref = torch.sort(F, dim=1, stable=True).values[:, :K]
    elif "Min" in reduction:
        ref = F.min(1).values
    else:
        ref = F.max(1).values
    assert_close(vals, ref)
    E = torch.rand_like(vals)
    grads = torch.autograd.grad((vals * E).sum(), [x, y, g])
    rgrads = torch.autograd.grad((ref * E).sum(), [x, y, g])
    for a, r in zip(grads, rgrads):
        assert_close(a, r)
    if isinstance(out, tuple):
        assert out[1].dtype == torch.int64 and not out[1].requires_grad
    assert gradcheck(lambda x, y, g: red(x, y, g)[0] if isinstance(out, tuple) else red(x, y, g), (x, y, g))


def test_arg_reductions_have_integer_outputs():
    x = rnd(N, 3)
    y = torch.rand(M, 3, dtype=torch.float64)
    idx = pykp.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="ArgMin", axis=1)(x, y)
    assert not idx.requires_grad and idx.dtype == torch.int64
    # indices, then differentiable indexing
    d = ((x - y[idx[:, 0]]) ** 2).sum(-1)
    assert d.requires_grad


def test_no_graph_under_no_grad():
    x = rnd(N, 3)
    with torch.no_grad():
        v = pykp.kernel_product(x, x, torch.rand(N, 1, dtype=torch.float64), "gaussian")
    assert not v.requires_grad
