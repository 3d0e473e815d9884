"""Property-based tests (hypothesis): random LazyTensor expressions and
reductions against dense float64 torch, gradients against torch.autograd,
and bad input reaching Python as the documented exception types.

Every test is derandomized (the same examples on every run) with a fixed
max_examples, so the file runs in well under a minute and a failure
reproduces; hypothesis prints the smallest failing example it finds.
"""
import math

import pytest
import torch

# hypothesis is in requirements-test.txt: a missing one fails, not skips.
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pykp
from pykp import LazyTensor
from conftest import assert_close, dense_reduce

SETTINGS = dict(derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None)

# ---------------------------------------------------------------- expressions
# An expression is a nested tuple over the leaves "a" (x_i, shape (N, 1, D)) and
# "b" (y_j, shape (1, M, D)); one evaluator maps it onto LazyTensors, the same
# code onto dense torch tensors (both support these operators and methods).
# The operations are smooth and finite on all reals, so values and gradients
# compare to tight tolerances.
UNARY = {
    "neg": lambda t: -t,
    "sin": lambda t: t.sin(),
    "cos": lambda t: t.cos(),
    "tanh": lambda t: t.tanh(),
    "square": lambda t: t.square(),
    "gauss": lambda t: (-(t * t)).exp(),
    "logexp": lambda t: (1 + t.tanh().exp()).log(),
    "sqrt1p": lambda t: (1 + t * t).sqrt(),
    "scale": lambda t: 0.7 * t - 0.3,
}
BINARY = {
    "add": lambda s, t: s + t,
    "sub": lambda s, t: s - t,
    "mul": lambda s, t: s * t,
    "div": lambda s, t: s / (1.5 + t * t),
}

leaves = st.sampled_from(["a", "b"])
expressions = st.recursive(
    leaves,
    lambda sub: st.one_of(
        st.tuples(st.sampled_from(sorted(UNARY)), sub),
        st.tuples(st.sampled_from(sorted(BINARY)), sub, sub),
    ),
    max_leaves=6,
)


def evaluate(e, a, b):
    if e == "a":
        return a
    if e == "b":
        return b
    if e[0] in UNARY:
        return UNARY[e[0]](evaluate(e[1], a, b))
    return BINARY[e[0]](evaluate(e[1], a, b), evaluate(e[2], a, b))


def scalar(F, how):
    """Makes F (last dimension D) scalar, the same way on both sides."""
    if how == "sum":
        return F.sum(-1) if isinstance(F, LazyTensor) else F.sum(-1, keepdim=True)
    if how == "sqnorm2":
        return F.sqnorm2() if isinstance(F, LazyTensor) else (F * F).sum(-1, keepdim=True)
    return F  # "elementwise": keep D


def lazy_dense(e, x, y, how, depends_on_both=True):
    """(LazyTensor, dense (N, M, d) tensor) of expression e on point clouds x, y.
    depends_on_both: adds a*b so that every F varies with both i and j (no ties
    in Min/Max-type reductions)."""
    a, b = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :])
    da, db = x[:, None, :], y[None, :, :]
    K, F = evaluate(e, a, b), evaluate(e, da, db)
    if depends_on_both:
        K, F = K + 0.25 * a * b, F + 0.25 * da * db
    K, F = scalar(K, how), scalar(F, how)
    return K, F.expand(x.shape[0], y.shape[0], F.shape[-1])


sizes = st.integers(1, 9)
dims = st.integers(1, 3)
seeds = st.integers(0, 2**31 - 1)
scalarize = st.sampled_from(["sum", "sqnorm2", "elementwise"])


def clouds(seed, n, m, d, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, d, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_(requires_grad)
    y = (torch.rand(m, d, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_(requires_grad)
    return x, y


def selected(F, axis, indices):
    """The entries of F (dense, (N, M, d)) that indices ((rows, d), one per
    component) select on the reduced axis: the check needs no tie convention."""
    Ft = F if axis == 1 else F.transpose(0, 1)  # (rows, reduced, d)
    return torch.gather(Ft, 1, indices.long()[:, None, :])[:, 0, :]


@settings(max_examples=70, **SETTINGS)
@given(e=expressions, how=scalarize, n=sizes, m=sizes, d=dims, seed=seeds, axis=st.integers(0, 1),
       red=st.sampled_from(["Sum", "LogSumExp", "Min", "Max", "ArgMin", "ArgMax", "Min_ArgMin", "KMin", "ArgKMin"]),
       dtype=st.sampled_from([torch.float64, torch.float32]))
def test_random_expressions_match_dense(e, how, n, m, d, seed, axis, red, dtype):
    x, y = clouds(seed, n, m, d)
    K, F = lazy_dense(e, x.to(dtype), y.to(dtype), how)
    F = lazy_dense(e, x, y, how)[1]  # the reference in float64
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-5)
    reduced = m if axis == 1 else n
    if red == "Sum":
        assert_close(K.sum(axis), dense_reduce(F, "Sum", axis), **tol)
    elif red == "LogSumExp":
        if F.shape[-1] != 1:
            F, K = F.sum(-1, keepdim=True), K.sum(-1)
        assert_close(K.logsumexp(axis), dense_reduce(F, "LogSumExp", axis), **tol)
    elif red in ("Min", "Max"):
        got = K.min(axis) if red == "Min" else K.max(axis)
        assert_close(got, dense_reduce(F, red, axis), **tol)
    elif red in ("ArgMin", "ArgMax", "Min_ArgMin"):
        if dtype == torch.float32:  # float32 rounding may pick another near-equal point
            return
        if red == "Min_ArgMin":
            vals, idx = K.min_argmin(axis)
            assert_close(vals, dense_reduce(F, "Min", axis), **tol)
        else:
            idx = K.argmin(axis) if red == "ArgMin" else K.argmax(axis)
        picked = selected(F, axis, idx.reshape(-1, F.shape[-1]))
        best = dense_reduce(F, "Max" if red == "ArgMax" else "Min", axis)
        assert_close(picked, best, rtol=1e-12, atol=1e-12)
    else:  # KMin, ArgKMin
        k = 1 + seed % reduced
        if F.shape[-1] != 1:
            F, K = F.sum(-1, keepdim=True), K.sum(-1)
        ref = dense_reduce(F, "KMin", axis, K=k)
        if red == "KMin":
            assert_close(K.Kmin(k, axis).reshape(ref.shape), ref, **tol)
        elif dtype == torch.float64:
            idx = K.argKmin(k, axis)
            Ft = F if axis == 1 else F.transpose(0, 1)
            picked = torch.gather(Ft[..., 0], 1, idx.long())
            assert_close(picked, ref.reshape(picked.shape), rtol=1e-12, atol=1e-12)


@settings(max_examples=40, **SETTINGS)
@given(e=expressions, how=st.sampled_from(["sum", "sqnorm2"]), n=sizes, m=sizes, d=dims, seed=seeds,
       axis=st.integers(0, 1), red=st.sampled_from(["Sum", "LogSumExp", "Min", "Max"]))
def test_random_gradients_match_torch(e, how, n, m, d, seed, axis, red):
    """First derivatives in x and y of a random reduction against torch.autograd
    on the dense float64 computation (Min/Max: the gradient of the selected term)."""
    x, y = clouds(seed, n, m, d, requires_grad=True)
    K, F = lazy_dense(e, x, y, how)
    ops = {"Sum": lambda t, ax: t.sum(ax), "LogSumExp": lambda t, ax: t.logsumexp(ax),
           "Min": lambda t, ax: t.min(ax), "Max": lambda t, ax: t.max(ax)}
    out = ops[red](K, axis)
    ref = dense_reduce(F, red, axis)
    w = torch.linspace(-1, 1, ref.numel(), dtype=torch.float64).reshape(ref.shape)
    gx, gy = torch.autograd.grad((out * w).sum(), (x, y))
    rx, ry = torch.autograd.grad((ref * w).sum(), (x, y))
    assert_close(gx, rx, rtol=1e-8, atol=1e-9)
    assert_close(gy, ry, rtol=1e-8, atol=1e-9)


@settings(max_examples=15, **SETTINGS)
@given(e=expressions, n=sizes, m=sizes, d=dims, seed=seeds, axis=st.integers(0, 1))
def test_random_second_derivatives_match_torch(e, n, m, d, seed, axis):
    """Hessian-vector products of a Sum reduction (libkp's gradient of its
    gradient) against double backward through the dense computation."""
    x, y = clouds(seed, n, m, d, requires_grad=True)
    K, F = lazy_dense(e, x, y, "sqnorm2")
    out, ref = K.sum(axis), dense_reduce(F, "Sum", axis)
    v = torch.linspace(0.5, -0.5, x.numel(), dtype=torch.float64).reshape(x.shape)
    (gx,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    (hx,) = torch.autograd.grad((gx * v).sum(), x)
    (rgx,) = torch.autograd.grad(ref.sum(), x, create_graph=True)
    (rhx,) = torch.autograd.grad((rgx * v).sum(), x)
    assert_close(hx, rhx, rtol=1e-7, atol=1e-8)


# ---------------------------------------------------------------- special values, layouts, sizes

@settings(max_examples=40, **SETTINGS)
@given(n=sizes, m=sizes, d=dims, seed=seeds, axis=st.integers(0, 1),
       special=st.lists(st.tuples(st.integers(0, 99), st.sampled_from([math.nan, math.inf, -math.inf])),
                        min_size=1, max_size=4),
       red=st.sampled_from(["Sum", "LogSumExp", "Min", "Max"]))
def test_nan_inf_propagate_like_dense(n, m, d, seed, axis, special, red):
    """NaN and infinities are not errors: they propagate as IEEE arithmetic
    says, like the dense computation (Min/Max: NaN is selected, as kp.h states
    and torch.min/max do)."""
    x, y = clouds(seed, n, m, d)
    for pos, v in special:
        x.view(-1)[pos % x.numel()] = v
    a, b = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :])
    K = (a - b).sqnorm2()
    F = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1, keepdim=True)
    got = {"Sum": K.sum, "LogSumExp": K.logsumexp, "Min": K.min, "Max": K.max}[red](axis)
    assert_close(got, dense_reduce(F, red, axis), rtol=1e-12, atol=1e-12)


@settings(max_examples=30, **SETTINGS)
@given(n=sizes, m=sizes, d=dims, seed=seeds, step=st.integers(1, 3), transpose=st.booleans())
def test_strided_inputs_match_contiguous(n, m, d, seed, step, transpose):
    """Views with any strides (every step-th column, transposed storage) give
    the results of their contiguous copies."""
    g = torch.Generator().manual_seed(seed)
    big = torch.rand(n, d * step, generator=g, dtype=torch.float64)
    x = big[:, ::step]
    if transpose:
        x = torch.rand(d, n, generator=g, dtype=torch.float64).t()
    y = torch.rand(m, d, generator=g, dtype=torch.float64)
    b = torch.rand(3, m, generator=g, dtype=torch.float64).t()  # (m, 3), strided
    K = (-LazyTensor(x[:, None, :]).sqdist(LazyTensor(y[None, :, :]))).exp()
    assert_close(K @ b, (K @ b.contiguous()))
    dense = torch.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)) @ b
    assert_close(K @ b, dense, rtol=1e-12, atol=1e-12)


@settings(max_examples=20, **SETTINGS)
@given(n=st.integers(0, 4), m=st.integers(0, 4), d=dims, seed=seeds, axis=st.integers(0, 1))
def test_empty_sizes(n, m, d, seed, axis):
    """Empty clouds: a (0, dim) output, or sums over nothing (0, and -inf for LogSumExp)."""
    x, y = clouds(seed, n, m, d)
    K = (LazyTensor(x[:, None, :]) - LazyTensor(y[None, :, :])).sqnorm2()
    F = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1, keepdim=True)
    assert_close(K.sum(axis), dense_reduce(F, "Sum", axis))
    assert_close(K.logsumexp(axis), dense_reduce(F, "LogSumExp", axis))


# ---------------------------------------------------------------- errors

BAD_DTYPES = [torch.int32, torch.int64, torch.bfloat16, torch.bool]  # float16, complex: libkp dtypes


@settings(max_examples=40, **SETTINGS)
@given(kind=st.sampled_from(["dtype", "mixed", "dim", "rows", "kmin", "device", "axis", "param"]),
       n=sizes, m=sizes, d=dims, seed=seeds, bad=st.sampled_from(BAD_DTYPES))
def test_bad_input_raises_documented_type(kind, n, m, d, seed, bad):
    """Each kind of bad input raises the documented pykp exception (a KpError
    subclass of the matching builtin), carrying a message, never crashing."""
    x, y = clouds(seed, n, m, d)
    g = pykp.Genred("Exp(-SqDist(x,y))*b", ["x = Vi(%d)" % d, "y = Vj(%d)" % d, "b = Vj(1)"], axis=1)
    b = torch.rand(m, 1, dtype=torch.float64)
    expected = {"dtype": TypeError, "mixed": TypeError, "dim": ValueError, "rows": ValueError,
                "kmin": ValueError, "device": RuntimeError, "axis": ValueError, "param": ValueError}[kind]
    with pytest.raises(expected) as info:
        if kind == "dtype":
            g(x.to(bad), y.to(bad), b.to(bad))
        elif kind == "mixed":
            g(x.float(), y, b)
        elif kind == "dim":
            g(torch.rand(n, d + 1, dtype=torch.float64), y, b)
        elif kind == "rows":
            g(x, y, torch.rand(m + 1, 1, dtype=torch.float64))
        elif kind == "kmin":
            (LazyTensor(x[:, None, :]) - LazyTensor(y[None, :, :])).sqnorm2().Kmin(m + 1 + seed % 3, 1)
        elif kind == "device":
            g(x.to("meta"), y.to("meta"), b.to("meta"))
        elif kind == "axis":
            pykp.Genred("SqDist(x,y)", ["x = Vi(%d)" % d, "y = Vj(%d)" % d], axis=2 + seed % 3)
        else:
            p = pykp.Genred("SqDist(x,y)*s", ["x = Vi(%d)" % d, "y = Vj(%d)" % d, "s = Pm(2)"], axis=1)
            p(x, y, torch.rand(3, dtype=torch.float64))
    assert isinstance(info.value, pykp.KpError), type(info.value)
    assert str(info.value)


FORMULA_CHARS = "xyb()+-*/|,.0123456789 ExpSqDistVijPmSumLogInvMinMax_Reduction"


@settings(max_examples=200, **SETTINGS)
@given(text=st.text(alphabet=FORMULA_CHARS, max_size=40),
       red=st.sampled_from(["Sum", "LogSumExp", "Min", "ArgKMin", "SumSoftMaxWeight"]))
def test_random_formula_text_parses_or_raises_value_error(text, red):
    """Any formula text either compiles or raises KpValueError: libkp's
    KP_ERR_PARSE / KP_ERR_SHAPE with its message, or pykp's own check (status
    None) before libkp is called, whatever the reduction's options."""
    opts = {"ArgKMin": dict(opt_arg=2), "SumSoftMaxWeight": dict(formula2="b")}.get(red, {})
    try:
        pykp.Genred(text, ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], reduction_op=red, axis=1, **opts)
    except pykp.KpValueError as e:
        assert e.status in ("KP_ERR_PARSE", "KP_ERR_SHAPE", "KP_ERR_ARGUMENT", None) and str(e)


# ---------------------------------------------------------------- huge sizes, freed and resized tensors

def test_huge_sizes_are_errors_or_cheap():
    """A reduced axis of 2^40 points (a stride-0 view) with no rows costs
    nothing; float32 point indices beyond 2^24 (the gradient of a Min) are
    KP_ERR_TOO_LARGE, a KpValueError naming the limit."""
    y = torch.zeros(1, 3).expand(2**40, 3)
    out = (LazyTensor(torch.rand(0, 3)[:, None, :]) - LazyTensor(y[None, :, :])).sqnorm2().sum(1)
    assert out.shape == (0, 1)
    x = torch.rand(1, 3, dtype=torch.float32, requires_grad=True)
    yy = torch.rand(1, 3, dtype=torch.float32).expand(2**24 + 3, 3)
    m = (LazyTensor(x[:, None, :]) - LazyTensor(yy[None, :, :])).sqnorm2().min(1)
    with pytest.raises(pykp.KpValueError, match="2\\^24") as e:
        m.sum().backward()
    assert e.value.status == "KP_ERR_TOO_LARGE"


def test_freed_and_resized_tensors():
    """A LazyTensor keeps its views (so their storage) alive, and reads them
    when reduced, as torch does: deleting the caller's tensor changes nothing;
    resizing it (torch moves the shared storage to a new buffer) and writing
    into it shows in the result exactly as in the dense computation on the
    same views; never stale or freed memory."""
    import gc

    x, y = clouds(3, 6, 5, 2)
    xs, ys = x.clone(), y.clone()
    xv, yv = xs[:, None, :], ys[None, :, :]
    K = (LazyTensor(xv) - LazyTensor(yv)).sqnorm2()
    ref = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1).sum(1, keepdim=True)
    del xs
    gc.collect()
    assert_close(K.sum(1), ref)
    ys.resize_(1000, 7)  # a new buffer for the storage yv shares
    ys.copy_(torch.linspace(-1, 1, 7000).reshape(1000, 7))
    dense = ((xv - yv) ** 2).sum(-1).sum(1, keepdim=True)
    assert_close(K.sum(1), dense)
    assert not torch.allclose(dense, ref)
