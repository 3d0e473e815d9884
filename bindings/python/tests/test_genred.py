"""Genred: every reduction and a broad set of formulas against dense float64
references, on NumPy arrays and torch tensors, both axes, float32 and float64,
batch dimensions, strided and broadcast inputs."""
import numpy as np
import pytest
import torch

import pykp
from conftest import assert_close, dense_reduce

N, M = 37, 29
ALIASES = ["x = Vi(3)", "y = Vj(3)", "u = Vi(1)", "b = Vj(2)", "s = Pm(1)"]


def data(dtype=torch.float64, lo=-1.0, hi=1.0):
    def r(*shape):
        return (lo + (hi - lo) * torch.rand(*shape)).to(dtype)

    return r(N, 3), r(M, 3), r(N, 1), r(M, 2), torch.tensor([0.7], dtype=dtype)


def bc(x, y, u, b, s):
    """Broadcastable views: X (N,1,3), Y (1,M,3), U (N,1,1), B (1,M,2), S scalar."""
    return x[:, None, :], y[None, :, :], u[:, None, :], b[None, :, :], s[0]


def full(t):
    return t.expand(N, M, t.shape[-1]) if t.dim() == 3 else t


def sqd(X, Y):
    return ((X - Y) ** 2).sum(-1, keepdim=True)


# (formula, dense F(X, Y, U, B, S) -> (N, M, D), input range)
FORMULAS = [
    ("Exp(-SqDist(x,y)*s)*b", lambda X, Y, U, B, S: torch.exp(-sqd(X, Y) * S) * B, (-1, 1)),
    ("(x|y)*u", lambda X, Y, U, B, S: (X * Y).sum(-1, keepdim=True) * U, (-1, 1)),
    ("Square(x-y)+Inv(1+u*u)", lambda X, Y, U, B, S: (X - Y) ** 2 + 1 / (1 + U * U), (-1, 1)),
    ("Norm2(x-y)*b", lambda X, Y, U, B, S: sqd(X, Y).sqrt() * B, (-1, 1)),
    ("Normalize(x-y)", lambda X, Y, U, B, S: (X - Y) / sqd(X, Y).sqrt(), (-1, 1)),
    ("Rsqrt(1+SqDist(x,y)*s)", lambda X, Y, U, B, S: (1 + sqd(X, Y) * S).rsqrt(), (-1, 1)),
    ("Pow(x-y,3)+Powf(u*u+1,s)", lambda X, Y, U, B, S: (X - Y) ** 3 + (U * U + 1) ** S, (-1, 1)),
    ("Log(1+SqDist(x,y))+Sin(x)*Cos(y)+Tanh(u)+Sqrt(u*u)", lambda X, Y, U, B, S: torch.log(1 + sqd(X, Y)) + torch.sin(X) * torch.cos(Y) + torch.tanh(U) + U.abs(), (-1, 1)),
    ("Abs(x-y)+ReLU(x-y)+Sign(x-y)", lambda X, Y, U, B, S: (X - Y).abs() + torch.relu(X - Y) + torch.sign(X - Y), (-1, 1)),
    ("Elem(x,1)*Extract(y,0,2)+Sum(x*y)", lambda X, Y, U, B, S: X[..., 1:2] * Y[..., 0:2] + (X * Y).sum(-1, keepdim=True), (-1, 1)),
    ("Concat(x*u,b)", lambda X, Y, U, B, S: torch.cat([full(X * U), full(B)], -1), (-1, 1)),
    (
        "MatVecMult(TensorProd(x,y),y)+VecMatMult(x,TensorProd(y,x))",
        lambda X, Y, U, B, S: X * (Y * Y).sum(-1, keepdim=True) + (X * Y).sum(-1, keepdim=True) * X,
        (-1, 1),
    ),
    ("WeightedSqDist(s,x,y)+WeightedSqNorm(y*y,x)", lambda X, Y, U, B, S: S * sqd(X, Y) + (Y * Y * X * X).sum(-1, keepdim=True), (-1, 1)),
    ("(x<y)*u+(x>=y)+Max(x-y)+Min(x*y)", lambda X, Y, U, B, S: (X < Y).double() * U + (X >= Y).double() + (X - Y).max(-1, keepdim=True).values + (X * Y).min(-1, keepdim=True).values, (-1, 1)),
    ("Atan2(x,y)+Exp(x-y)-Atan(u)", lambda X, Y, U, B, S: torch.atan2(X, Y) + torch.exp(X - Y) - torch.atan(U), (-1, 1)),
    ("Clamp(x-y,-0.3,0.4)+IfElse(x-y,x,y)", lambda X, Y, U, B, S: torch.clamp(X - Y, -0.3, 0.4) + torch.where(X - Y >= 0, full(X), full(Y)), (-1, 1)),
    ("x/y-u", lambda X, Y, U, B, S: X / Y - U, (0.5, 1.5)),
]


@pytest.mark.parametrize("formula,dense,rng", FORMULAS, ids=[f[0] for f in FORMULAS])
@pytest.mark.parametrize("axis", [0, 1])
def test_sum_formulas_float64(formula, dense, rng, axis):
    x, y, u, b, s = data(lo=rng[0], hi=rng[1])
    F = full(dense(*bc(x, y, u, b, s)))
    ref = dense_reduce(F, "Sum", axis)
    g = pykp.Genred(formula, ALIASES, reduction_op="Sum", axis=axis)
    assert_close(g(x, y, u, b, s), ref, rtol=1e-11, atol=1e-11)
    out_np = g(x.numpy(), y.numpy(), u.numpy(), b.numpy(), s.numpy())
    assert isinstance(out_np, np.ndarray)
    assert_close(out_np, ref, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("formula,dense,rng", FORMULAS[:8], ids=[f[0] for f in FORMULAS[:8]])
def test_sum_formulas_float32(formula, dense, rng):
    x, y, u, b, s = data(lo=rng[0], hi=rng[1])
    F = full(dense(*bc(x, y, u, b, s)))
    ref = dense_reduce(F, "Sum", 1)
    g = pykp.Genred(formula, ALIASES, reduction_op="Sum", axis=1)
    out = g(*(t.float() for t in (x, y, u, b, s)))
    assert out.dtype == torch.float32
    assert_close(out, ref.float(), rtol=2e-5, atol=2e-5 * float(ref.abs().max()))


VALUE = ("SqDist(x,y)*s+b", lambda X, Y, U, B, S: sqd(X, Y) * S + B)  # dimension 2
SCALAR = ("SqDist(x,y)-u", lambda X, Y, U, B, S: sqd(X, Y) - U)  # dimension 1


@pytest.mark.parametrize(
    "reduction", ["Sum", "LogSumExp", "Min", "Max", "ArgMin", "ArgMax", "Min_ArgMin", "Max_ArgMax", "KMin", "ArgKMin", "KMin_ArgKMin"]
)
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("case", [VALUE, SCALAR], ids=["dim2", "dim1"])
@pytest.mark.parametrize("frontend", ["torch", "numpy"])
def test_every_reduction(reduction, axis, case, frontend):
    x, y, u, b, s = data()
    formula, dense = case
    F = full(dense(*bc(x, y, u, b, s)))
    K = 4 if "KMin" in reduction else None
    ref = dense_reduce(F, reduction, axis, K=K)
    g = pykp.Genred(formula, ALIASES, reduction_op=reduction, axis=axis, opt_arg=K)
    args = (x, y, u, b, s)
    if frontend == "numpy":
        args = tuple(a.numpy() for a in args)
    out = g(*args)
    if isinstance(ref, tuple):
        assert isinstance(out, tuple) and len(out) == 2
        assert_close(out[0], ref[0])
        assert out[1].dtype in (torch.int64, np.int64)
        assert_close(out[1], ref[1])
    else:
        if "Arg" in reduction:
            assert out.dtype in (torch.int64, np.int64)
        assert_close(out, ref)


@pytest.mark.parametrize("axis", [0, 1])
def test_sumsoftmaxweight(axis):
    x, y, u, b, s = data()
    X, Y, U, B, S = bc(x, y, u, b, s)
    F = full(-sqd(X, Y) * S + U)
    Gw = full(Y * U)
    ref = dense_reduce(F, "SumSoftMaxWeight", axis, G=Gw)
    g = pykp.Genred("-SqDist(x,y)*s+u", ALIASES, reduction_op="SumSoftMaxWeight", axis=axis, formula2="y*u")
    assert_close(g(x, y, u, b, s), ref)
    g_old_name = pykp.Genred("-SqDist(x,y)*s+u", ALIASES, reduction_op="SoftMax", axis=axis, formula2="y*u")
    assert_close(g_old_name(x, y, u, b, s), ref)


def test_logsumexp_weighted_and_stability():
    x, y, u, b, s = data()
    X, Y, U, B, S = bc(x, y, u, b, s)
    g = pykp.Genred("-SqDist(x,y)*s", ALIASES, reduction_op="LogSumExp", axis=1, formula2="Exp(u)+b*b")
    F = full(-sqd(X, Y) * S + torch.log(torch.exp(U) + B * B))
    assert_close(g(x, y, u, b, s), torch.logsumexp(F, 1))
    # |F| ~ 1e4: finite, equal to the dense stable reference
    big = pykp.Genred("-SqDist(x,y)*s*10000", ALIASES, reduction_op="LogSumExp", axis=1)
    ref = torch.logsumexp(full(-sqd(X, Y) * S * 1e4), 1)
    out = big(x, y, u, b, s)
    assert torch.isfinite(out).all()
    assert_close(out, ref, rtol=1e-9)


def test_default_axis_is_keops_zero():
    x, y, u, b, s = data()
    g = pykp.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"])
    assert g.axis == 0
    assert g(x, y).shape == (M, 1)


def test_aliases_with_positions_and_direct_variables():
    x, y, u, b, s = data()
    g1 = pykp.Genred("SqDist(x,y)*b", ["b = Vj(2,2)", "x = Vi(0,3)", "y = Vj(1,3)"], axis=1)
    ref = pykp.Genred("SqDist(x,y)*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], axis=1)(x, y, b)
    assert_close(g1(x, y, b), ref)
    g2 = pykp.Genred("SqDist(Vi(0,3),Vj(1,3))*Vj(2,2)", [], axis=1)
    assert_close(g2(x, y, b), ref)


def test_vi_of_dimension_one_accepts_1d_and_parameters_accept_numbers():
    x, y, u, b, s = data()
    g = pykp.Genred("Exp(-SqDist(x,y)*s)*c", ["x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "c = Vj(1)"], axis=1)
    c = torch.rand(M)
    ref = g(x, y, s, c[:, None])
    assert_close(g(x, y, 0.7, c), ref)
    assert_close(g(x, y, torch.tensor(0.7), c[:, None]), ref)
    assert_close(g(x.numpy(), y.numpy(), 0.7, c.numpy()), ref)


def test_batch_dimensions_with_broadcasting():
    B = 3
    x = torch.rand(B, N, 3)
    y = torch.rand(1, M, 3)  # broadcast over the batch
    b = torch.rand(B, M, 2)
    s = torch.rand(B, 1) + 0.5  # one parameter per batch
    g = pykp.Genred("Exp(-SqDist(x,y)*s)*b", ["x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(2)"], axis=1)
    out = g(x, y, s, b)
    assert out.shape == (B, N, 2)
    for k in range(B):
        ref = torch.exp(-((x[k][:, None] - y[0][None]) ** 2).sum(-1) * s[k]) @ b[k]
        assert_close(out[k], ref)
    # an argument without batch dimensions is shared; (B, 1, d) parameters work too
    out2 = g(x, y[0], s[:, None, :], b)
    assert_close(out2, out)
    # numpy, and axis 0
    g0 = pykp.Genred("Exp(-SqDist(x,y)*s)*c", ["x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "c = Vi(2)"], axis=0)
    c = torch.rand(B, N, 2)
    out0 = g0(x.numpy(), y.numpy(), s.numpy(), c.numpy())
    for k in range(B):
        ref = torch.exp(-((x[k][:, None] - y[0][None]) ** 2).sum(-1) * s[k]).t() @ c[k]
        assert_close(out0[k], ref)


def test_strided_and_broadcast_inputs_are_read_in_place():
    x, y, u, b, s = data()
    g = pykp.Genred("Exp(-SqDist(x,y)*s)*b", ["x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(2)"], axis=1)
    ref = g(x.contiguous(), y.contiguous(), s, b.contiguous())
    big = torch.zeros(N, 7)
    big[:, 1:7:2] = x  # row stride 7, column stride 2
    xs = big[:, 1:7:2]
    yt = y.t().contiguous().t()  # column-major
    bs = torch.zeros(M, 2, 3)
    bs[:, :, 1] = b
    b_strided = bs[:, :, 1]
    assert not xs.is_contiguous() and not yt.is_contiguous() and not b_strided.is_contiguous()
    assert_close(g(xs, yt, s, b_strided), ref)
    # stride-0 broadcast: the same y point repeated M times, without a copy
    y0 = y[:1].expand(M, 3)
    assert y0.stride() == (0, 1)
    ref0 = g(x, y0.contiguous(), s, b)
    assert_close(g(x, y0, s, b), ref0)
    # numpy: negative strides and transposed views
    xn = np.ascontiguousarray(x.numpy()[::-1])[::-1]
    yn = np.asfortranarray(y.numpy())
    assert xn.strides[0] < 0
    assert_close(g(xn, yn, s.numpy(), b.numpy()), ref)
    xb = np.broadcast_to(x.numpy()[:1], (N, 3))
    assert_close(g(xb, y.numpy(), s.numpy(), b.numpy()), g(x[:1].expand(N, 3).contiguous(), y, s, b))


def test_nan_and_inf_propagate():
    x, y, u, b, s = data()
    x[3, 1] = float("nan")
    y[5, 0] = float("inf")
    g = pykp.Genred("Exp(-SqDist(x,y)*s)*b", ["x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(2)"], axis=1)
    out = g(x, y, s, b)
    assert torch.isnan(out[3]).all()
    assert torch.isfinite(out[np.r_[0:3, 4:N]]).all()
    mn = pykp.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="ArgMin", axis=0)(x, y)
    assert (mn == 3).all()  # NaN ranks before every number: selected by Min/ArgMin


def test_empty_inputs():
    g = pykp.Genred("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], axis=1)
    out = g(torch.rand(0, 3), torch.rand(5, 3), torch.rand(5, 1))
    assert out.shape == (0, 1)
    out = g(torch.rand(4, 3), torch.rand(0, 3), torch.rand(0, 1))
    assert out.shape == (4, 1) and (out == 0).all()
    lse = pykp.Genred("-SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="LogSumExp", axis=1)
    assert (lse(np.random.rand(4, 3), np.random.rand(0, 3)) == -np.inf).all()
    amin = pykp.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="Min_ArgMin", axis=1)
    v, i = amin(torch.rand(4, 3), torch.rand(0, 3))
    assert (v == float("inf")).all() and (i == -1).all()


def test_sum_schemes_and_threads():
    x = torch.rand(2000, 3, dtype=torch.float32)
    b = torch.rand(2000, 1, dtype=torch.float32)
    outs = []
    for scheme in ("auto", "kahan_scheme", "direct_sum", "block_sum"):
        g = pykp.Genred("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], axis=1, sum_scheme=scheme)
        outs.append(g(x, x, b))
    ref = pykp.Genred("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], axis=1)(x.double(), x.double(), b.double())
    for o in outs:
        assert_close(o, ref.float(), rtol=1e-5, atol=1e-5)
    g = pykp.Genred("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], axis=1)
    try:
        pykp.set_num_threads(1)
        one = g(x, x, b)
        pykp.set_num_threads(2)
        two = g(x, x, b)
    finally:
        pykp.set_num_threads(0)
    assert torch.equal(one, two)  # bit-identical for any thread count


def test_out_argument():
    x, y, u, b, s = data()
    g = pykp.Genred("Exp(-SqDist(x,y)*s)*b", ["x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(2)"], axis=1)
    out = torch.empty(N, 2)
    r = g(x, y, s, b, out=out)
    assert r.data_ptr() == out.data_ptr()
    assert_close(out, g(x, y, s, b))


def test_formula_text_and_repr():
    t = pykp.formula_text("Exp(-SqDist(x,y)*g)*b", ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"], reduction_op="Sum", axis=1)
    assert "Sum_Reduction" in t
    g = pykp.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], axis=1)
    assert "SqDist" in repr(g)
