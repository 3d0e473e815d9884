"""float16 and complex arrays through libkp's storage dtypes (KP_FLOAT16,
KP_COMPLEX64, KP_COMPLEX128): Genred, LazyTensor, ComplexLazyTensor and
autograd, against dense float64 / complex128 torch references; float16
conversions bit for bit against NumPy's on every half and on float32 values
around every rounding boundary."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pykp  # noqa: E402
from pykp import ComplexLazyTensor, Genred, LazyTensor  # noqa: E402
from pykp import _arrays, _call, _lib  # noqa: E402
from pykp.genred import formula  # noqa: E402

H, F64, C128 = torch.float16, torch.float64, torch.complex128

# float16 rounds each result to 11 significant bits: 2^-11 relative, plus the
# float32 arithmetic inside (negligible here) -- relative to the largest value.
HALF_TOL = 2.0 ** -10


def close_half(got, ref):
    assert got.dtype in (torch.float16, np.float16)
    got = torch.as_tensor(np.asarray(got, dtype=np.float64)) if isinstance(got, np.ndarray) else got.double()
    err = (got - ref).abs().max().item()
    assert err <= HALF_TOL * ref.abs().max().item(), err


def gauss_dense(x, y, b, s=1.0):
    return torch.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) * s) @ b


# ----------------------------------------------------------------- float16: conversions


def _run_f16(fml, aliases, args):
    """The formula on args through libkp's dtype handling, arrays as they are."""
    f = formula(("parse", fml, tuple(aliases)))
    vals, _ = _call.launch(f, list(args), _arrays.NumpyBackend)
    return vals


def test_every_half_round_trips():
    x = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).reshape(-1, 1)
    zero = np.zeros((1, 1), np.float16)
    out = _run_f16("Min_Reduction(x+y,1)", ["x = Vi(1)", "y = Vj(1)"], [x, zero])
    assert out.dtype == np.float16
    got, want = out.view(np.uint16).ravel(), x.view(np.uint16).ravel()
    nan = np.isnan(x.ravel())
    assert np.isnan(out.ravel()[nan]).all()
    zero_in = (want & 0x7FFF) == 0
    assert (got[zero_in] & 0x7FFF == 0).all()  # -0 + 0 = +0
    keep = ~nan & ~zero_in
    np.testing.assert_array_equal(got[keep], want[keep])


def test_float_to_half_rounding_matches_numpy():
    """float32 values (random bit patterns, each half's neighbours' midpoints
    and the floats next to them) through a float16 plan: NumPy's rounding."""
    halves = np.arange(0x7C00, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float64)
    mids = ((halves[:-1] + halves[1:]) / 2).astype(np.float32)
    rng = np.random.default_rng(1)
    rand = rng.integers(0, 2**32, 200000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    vals = np.concatenate([mids, np.nextafter(mids, np.float32(0)), np.nextafter(mids, np.float32(np.inf)), rand,
                           np.array([65504, 65519.99, 65520, 1e-8, 3e-8, -np.inf, np.inf], np.float32)])
    vals = np.concatenate([vals, -vals]).astype(np.float32).reshape(-1, 1)
    zero = np.zeros((1, 1), np.float16)
    out = _run_f16("Min_Reduction(x+y,1)", ["x = Vi(1)", "y = Vj(1)"], [vals, zero])  # float32 x in a float16 call
    assert out.dtype == np.float16
    with np.errstate(over="ignore"):
        want = vals.astype(np.float16)
    nan = np.isnan(vals.ravel())
    assert np.isnan(out.ravel()[nan]).all()
    got_b, want_b = out.view(np.uint16).ravel()[~nan], want.view(np.uint16).ravel()[~nan]
    zero_out = (want_b & 0x7FFF) == 0
    np.testing.assert_array_equal(got_b[~zero_out], want_b[~zero_out])
    assert (got_b[zero_out] & 0x7FFF == 0).all()


# ----------------------------------------------------------------- float16: calls


@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_float16_genred(kind):
    x, y, b = torch.randn(200, 3).to(H), torch.randn(150, 3).to(H), torch.randn(150, 2).to(H)
    g = Genred("Exp(-SqDist(x,y)*s)*b", ["x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(2)"], axis=1)
    s = torch.tensor([0.7]).to(H)
    args = (x, y, s, b) if kind == "torch" else tuple(a.numpy() for a in (x, y, s, b))
    out = g(*args)
    ref = gauss_dense(x.double(), y.double(), b.double(), s.double())
    close_half(out, ref)
    assert tuple(out.shape) == (200, 2)


def test_float16_lazytensor_and_autograd():
    x = torch.randn(300, 2).to(H).requires_grad_()
    y = torch.randn(250, 2).to(H).requires_grad_()
    b = torch.randn(250, 1).to(H).requires_grad_()
    xi, yj = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :])
    assert xi.dtype == "float16"
    K = (-((xi - yj) ** 2).sum(-1)).exp()
    out = K @ b
    assert out.dtype == H
    xd, yd, bd = (t.detach().double().requires_grad_() for t in (x, y, b))
    ref = gauss_dense(xd, yd, bd)
    close_half(out, ref.detach())
    e = torch.randn(300, 1).to(H)
    (out * e).sum().backward()
    (ref * e.double()).sum().backward()
    for t, td in ((x, xd), (y, yd), (b, bd)):
        assert t.grad.dtype == H
        close_half(t.grad, td.grad)


def test_float16_min_gradient_past_2048_points():
    """The selected indices reach the gradient as float32 numbers: float16
    holds integers exactly only up to 2048."""
    x = torch.rand(50, 1).to(H).requires_grad_()
    y = (torch.arange(3000, dtype=F64) / 3000).reshape(-1, 1).to(H).requires_grad_()
    d = (LazyTensor(x[:, None, :]) - LazyTensor(y[None, :, :])).abs().min(dim=1)
    assert d.dtype == H
    d.sum().backward()
    dd = (x.detach().double()[:, None, :] - y.detach().double()[None, :, :]).abs()
    j = dd[..., 0].argmin(1)
    gy = torch.zeros(3000, dtype=F64)
    gy.index_add_(0, j, -torch.sign(x.detach().double()[:, 0] - y.detach().double()[j, 0]))
    np.testing.assert_allclose(y.grad.double()[:, 0].numpy(), gy.numpy(), atol=0)
    close_half(d, dd.min(1).values)


def test_float16_refuses_other_dtypes():
    g = Genred("x*y", ["x = Vi(1)", "y = Vj(1)"], axis=1)
    with pytest.raises(TypeError, match="mixed dtypes"):
        g(torch.ones(3, 1).to(H), torch.ones(2, 1))


# ----------------------------------------------------------------- complex


def rand_c(*shape):
    return torch.randn(*shape, dtype=C128)


def test_complex_genred_and_gradcheck():
    z, w = rand_c(40, 2).requires_grad_(), rand_c(30, 2).requires_grad_()
    x = torch.randn(30, 1, requires_grad=True)
    g = Genred("ComplexMult(ComplexExp(ComplexMult(z,w)),ComplexRealScal(x,Conj(w)))",
               ["z = Vi(4)", "w = Vj(4)", "x = Vj(1)"], axis=1)
    out = g(z, w, x)
    ref = (torch.exp(z[:, None] * w[None]) * x[None] * w[None].conj()).sum(1)
    assert out.dtype == C128 and out.shape == (40, 2)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda z, w, x: g(z, w, x), (z, w, x))


def test_complex64_numpy():
    z = (np.random.randn(20, 3) + 1j * np.random.randn(20, 3)).astype(np.complex64)
    w = (np.random.randn(25, 3) + 1j * np.random.randn(25, 3)).astype(np.complex64)
    zi, wj = LazyTensor(z[:, None, :]), LazyTensor(w[None, :, :])
    assert isinstance(zi, ComplexLazyTensor) and zi.shape == (20, 1, 3) and zi.dtype == "complex64"
    out = (zi * wj.conj()).sum(dim=1)
    assert out.dtype == np.complex64 and out.shape == (20, 3)
    ref = (z[:, None].astype(np.complex128) * w[None].conj()).sum(1)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    mod = abs(zi - wj).sum(dim=1)  # a real result of a complex call
    assert mod.dtype == np.float32 and mod.shape == (20, 3)
    np.testing.assert_allclose(mod, np.abs(z[:, None].astype(np.complex128) - w[None]).sum(1), rtol=1e-5)


CASES = [
    ("mult", lambda a, b, c: a * b),
    ("divide", lambda a, b, c: a / b),
    ("add, subtract, real operand", lambda a, b, c: a + b - c),
    ("conj, exp", lambda a, b, c: (a.conj() * b).exp()),
    ("numbers", lambda a, b, c: (2.0 + 1j) * a - 1.5 + b * 0.5 + 1 / (a + 3j)),
    ("real, imag", lambda a, b, c: (a * b).real + (a / b).imag),
    ("abs, angle", lambda a, b, c: abs(a - b) + (a * b).angle()),
    ("exp1j", lambda a, b, c: c.exp1j() * a),
    ("real2complex, imag2complex", lambda a, b, c: c.real2complex() - a * c.imag2complex()),
    ("sum of components", lambda a, b, c: (a * b).sum(-1)),
]


@pytest.mark.parametrize("name,fn", CASES, ids=[c[0] for c in CASES])
def test_complex_lazytensor_ops(name, fn):
    z, w = rand_c(30, 3).requires_grad_(), rand_c(20, 3).requires_grad_()
    x = torch.randn(20, 3, requires_grad=True)
    zi, wj, xj = LazyTensor(z[:, None, :]), LazyTensor(w[None, :, :]), LazyTensor(x[None, :, :])
    r = fn(zi, wj, xj).sum(dim=1)
    Z, W, X = z[:, None, :], w[None, :, :], x[None, :, :]
    dense = {
        "exp1j": lambda: torch.exp(1j * X) * Z,
        "real2complex, imag2complex": lambda: X - Z * (1j * X),
        "sum of components": lambda: (Z * W).sum(-1, keepdim=True),
        "abs, angle": lambda: (Z - W).abs() + (Z * W).angle(),
    }
    ref = dense[name]() if name in dense else fn(Z, W, X)
    ref = ref.sum(1)
    assert r.dtype == ref.dtype and r.shape == ref.shape, (r.dtype, ref.dtype, r.shape, ref.shape)
    torch.testing.assert_close(r, ref, rtol=1e-11, atol=1e-11)
    # torch's complex autograd convention: the gradients of a real loss agree
    loss = lambda t: (t.real.sum() + 0.3 * t.imag.sum()) if t.is_complex() else t.sum()  # noqa: E731
    gr = torch.autograd.grad(loss(r), (z, w, x), allow_unused=True)
    gd = torch.autograd.grad(loss(ref), (z, w, x), allow_unused=True)
    for a, b in zip(gr, gd):
        if b is None:
            continue
        torch.testing.assert_close(a if a is not None else torch.zeros_like(b), b, rtol=1e-10, atol=1e-10)


def test_complex_gradcheck_lazytensor_and_matmul():
    z, w = rand_c(12, 2).requires_grad_(), rand_c(9, 2).requires_grad_()
    v = rand_c(9, 3).requires_grad_()

    def f(z, w, v):
        K = (LazyTensor(z[:, None, :]) * LazyTensor(w[None, :, :])).sum(-1).exp()
        return K @ v

    ref = torch.exp((z[:, None, :] * w[None, :, :]).sum(-1)) @ v
    torch.testing.assert_close(f(z, w, v), ref, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(f, (z, w, v))


def test_complex_errors():
    with pytest.raises(TypeError, match="complex array"):
        ComplexLazyTensor(torch.ones(3, 1, 2))
    assert isinstance(ComplexLazyTensor([1.0, 2j]), ComplexLazyTensor)  # a parameter of 2 numbers
    zi = LazyTensor(rand_c(5, 1, 2))
    with pytest.raises(ValueError, match="real2complex"):
        zi.real2complex()
    with pytest.raises(ValueError, match="numbers"):
        zi * LazyTensor(rand_c(1, 4, 3))
    g = Genred("ComplexMult(z,w)", ["z = Vi(2)", "w = Vj(2)"], axis=1)
    with pytest.raises(TypeError, match="mixed dtypes"):
        g(rand_c(3, 1), torch.ones(2, 1, dtype=torch.complex64))
    with pytest.raises(pykp.KpError, match="stride 1"):  # interleaved pairs must be contiguous
        g(rand_c(3, 4)[:, ::2], rand_c(2, 1))
