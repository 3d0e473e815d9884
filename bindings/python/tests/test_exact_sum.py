"""Reductions under the exact scheme (sum_scheme="exact_sum", pykp.set_sum_scheme("exact")):
Sums correctly rounded against math.fsum (float64) and exact fractions (float32), on
terms spanning 80 orders of magnitude with cancellations; the same bits in every
order of the points and for every thread count; LazyTensor reductions; LogSumExp and
SumSoftMaxWeight against the default scheme; torch gradients (gradcheck) through the
exact scheme."""
import math
from fractions import Fraction

import numpy as np
import pytest

import pykp

torch = pytest.importorskip("torch")


def _terms(rng, m, dtype, decades=40):
    """m terms of random signs and magnitudes 10^-decades .. 10^decades, half
    of them cancelled by a negated copy somewhere else."""
    t = rng.standard_normal(m) * 10.0 ** rng.uniform(-decades, decades, m)
    t[m // 2:] = -t[: m - m // 2][rng.permutation(m - m // 2)]
    t[rng.integers(0, m, 5)] *= 1e-3  # the cancellation is not quite exact
    return t.astype(dtype)


def _sum_rows(b, scales, **kw):
    """Row i: sum_j scales_i * b_j (exact products: scales are powers of two)."""
    g = pykp.Genred("s*b", ["s = Vi(1)", "b = Vj(1)"], "Sum", axis=1, **kw)
    return g(scales, b[:, None])[:, 0]


def _nearest_f32(exact):
    """The float32 nearest to a Fraction (ties to even), via its neighbours."""
    guess = np.float32(float(exact))
    below, above = np.nextafter(guess, np.float32(-np.inf)), np.nextafter(guess, np.float32(np.inf))
    return min((guess, below, above), key=lambda c: (abs(Fraction(float(c)) - exact), int(c.view(np.int32)) & 1))


@pytest.mark.parametrize("m", [3, 1000, 70001])
def test_float64_correctly_rounded(m):
    rng = np.random.default_rng(m)
    b = _terms(rng, m, np.float64)
    scales = np.array([[1.0], [2.0**-60], [2.0**70]])
    got = _sum_rows(b, scales, sum_scheme="exact_sum")
    for i, s in enumerate(scales[:, 0]):
        assert got[i] == math.fsum(b * s), (i, got[i], math.fsum(b * s))


@pytest.mark.parametrize("m", [3, 1000, 40001])
def test_float32_correctly_rounded(m):
    rng = np.random.default_rng(m + 1)
    b = _terms(rng, m, np.float32, 30)
    scales = np.array([[1.0], [2.0**-20]], np.float32)
    got = _sum_rows(b, scales, sum_scheme="exact_sum")
    for i, s in enumerate(scales[:, 0]):
        exact = sum(Fraction(float(v) * float(s)) for v in b)
        assert got[i] == _nearest_f32(exact), (i, got[i], float(exact))


def test_any_order_and_threads():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((50, 3)), rng.standard_normal((20000, 3))
    b = _terms(rng, 20000, np.float64)[:, None]
    g = pykp.Genred("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], "Sum", axis=1,
                    sum_scheme="exact_sum")
    want = g(x, y, b)
    block = pykp.Genred("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], "Sum", axis=1)
    perm = rng.permutation(20000)
    assert np.array_equal(g(x, y[perm], b[perm]), want)
    assert not np.array_equal(block(x, y[perm], b[perm]), block(x, y, b))  # what the scheme is for
    old = pykp.get_num_threads()
    try:
        pykp.set_num_threads(1)
        assert np.array_equal(g(x, y, b), want)
    finally:
        pykp.set_num_threads(old)


def test_global_setting_and_lazytensor():
    from pykp import LazyTensor

    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((30, 2)), rng.standard_normal((5000, 2))
    b = _terms(rng, 5000, np.float64)[:, None]
    K = (-LazyTensor(x[:, None, :]).sqdist(LazyTensor(y[None, :, :]))).exp() * LazyTensor(b[None, :, :])
    want = K.sum(dim=1, sum_scheme="exact_sum")
    perm = rng.permutation(5000)
    Kp = (-LazyTensor(x[:, None, :]).sqdist(LazyTensor(y[None, perm, :]))).exp() * LazyTensor(b[None, perm, :])
    assert np.array_equal(Kp.sum(dim=1, sum_scheme="exact_sum"), want)
    pykp.set_sum_scheme("exact")
    try:
        assert np.array_equal(K.sum(dim=1), want)
    finally:
        pykp.set_sum_scheme("block")
    with pytest.raises(ValueError):
        pykp.set_sum_scheme("exactly")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logsumexp_and_softmax(dtype):
    """Close to the default scheme, and the same bits in any order of the points."""
    rng = np.random.default_rng(10)
    x, y = rng.standard_normal((40, 3)).astype(dtype), rng.standard_normal((30000, 3)).astype(dtype)
    b = rng.standard_normal((30000, 2)).astype(dtype)
    perm = rng.permutation(30000)
    al = ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"]
    tol = 1e-6 if dtype == np.float32 else 1e-13
    for red, form, f2 in (("LogSumExp", "-SqDist(x,y)*30+b", None), ("SumSoftMaxWeight", "-SqDist(x,y)*30", "b")):
        exact = pykp.Genred(form, al, red, axis=1, formula2=f2, sum_scheme="exact_sum")
        block = pykp.Genred(form, al, red, axis=1, formula2=f2)
        want = exact(x, y, b)
        assert np.array_equal(exact(x, y[perm], b[perm]), want)
        np.testing.assert_allclose(want, block(x, y, b), rtol=tol, atol=tol * np.abs(want).max())


def test_gradients():
    rng = np.random.default_rng(9)
    t = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)  # noqa: E731
    x, y, b = t(rng.standard_normal((7, 2))), t(rng.standard_normal((9, 2))), t(rng.standard_normal((9, 1)))
    g = pykp.Genred("Exp(-SqDist(x,y))*b", ["x = Vi(2)", "y = Vj(2)", "b = Vj(1)"], "Sum", axis=1,
                    sum_scheme="exact_sum")
    assert torch.autograd.gradcheck(g, (x, y, b))
    assert torch.autograd.gradgradcheck(g, (x, y, b))
    lse = pykp.Genred("-SqDist(x,y)+b", ["x = Vi(2)", "y = Vj(2)", "b = Vj(1)"], "LogSumExp", axis=1,
                      sum_scheme="exact_sum")
    assert torch.autograd.gradcheck(lse, (x, y, b))
    # the gradient w.r.t. y is a Sum over i: also independent of the order of the rows
    out = g(x, y, b)
    (out * torch.arange(7.0, dtype=torch.float64)[:, None]).sum().backward()
    perm = torch.from_numpy(rng.permutation(7))
    x2, y2, b2 = t(x.detach()[perm].numpy()), t(y.detach().numpy()), t(b.detach().numpy())
    (g(x2, y2, b2) * perm.to(torch.float64)[:, None]).sum().backward()
    assert torch.equal(y2.grad, y.grad) and torch.equal(b2.grad, b.grad)
