"""The shortcuts of pykp's per-call path give what the general path gives:
NumPy data pointers read from the array object, the element strides memo, a
plan's and a joint plan's memory of the previous call's layout (only the data
pointers change),
LazyTensor numbers and K @ v taking the fast path, and contiguous inputs
passed to libkp in place."""
import numpy as np
import pytest

from pykp import Genred, LazyTensor, _arrays, _call, _lib

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

GAUSS = ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"]


def _gauss_ref(x, y, g, b):
    d = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return (np.exp(-d * g[0]) @ b).astype(np.float64)


def test_np_data_matches_ctypes_on_every_layout():
    base = np.arange(60, dtype=np.float32).reshape(6, 10)
    for a in (base, base[2:], base[:, 3:], base.T, base[::-1], base[:, ::-2], base[1:1], np.float64(3.0) * base,
              np.empty((0, 3)), base[3]):
        assert _arrays.np_data(a) == a.ctypes.data


def test_element_strides_memo_and_odd_strides():
    a = np.zeros((4, 6), np.float32)
    assert _arrays.element_strides(a.strides, a.itemsize) == (6, 1)
    assert _arrays.element_strides(a.T.strides, a.itemsize) == (1, 6)
    assert _arrays.element_strides((6,), 4) is None  # not a multiple of the item size
    raw = np.zeros(25, np.uint8)[1:].view(np.float32).reshape(2, 3)  # misaligned but whole items
    assert _arrays.element_strides(raw.strides, raw.itemsize) == (3, 1)


def test_layout_memory_follows_pointers_and_layouts():
    """One Genred called in turn with other arrays of the same layout (only
    the pointers change), other sizes and strided views (the layout changes),
    and between two calls of one layout a direct Plan.pack of another (the
    plan's memory is dropped)."""
    rng = np.random.default_rng(1)
    k = Genred("Exp(-SqDist(x,y)*g)*b", GAUSS, axis=1)
    g = np.array([2.0], np.float64)
    cases = []
    for n, m in ((5, 7), (5, 7), (9, 7), (5, 7), (5, 3)):
        cases.append((rng.random((n, 3)), rng.random((m, 3)), g, rng.random((m, 1))))
    wide = rng.random((7, 6))
    cases.append((cases[0][0], wide[:, ::2], g, cases[0][3]))  # strided y: another layout
    cases.append(cases[0])
    f = _lib.formula(k.key)
    for i, (x, y, gg, b) in enumerate(cases):
        out = k(x, y, gg, b)
        np.testing.assert_allclose(out, _gauss_ref(x, y, gg, b), rtol=1e-12)
        if i == 0:  # another layout packed in between: the next call (this layout) must write it all again
            call = _call.prepare(f, cases[2])
            f.plan(call.code).pack(call.descs, call.nx, call.ny)


def test_joint_layout_memory_follows_pointers_and_layouts():
    """The backward's joint plan (gradients in x and b) keeps the same memory
    of its last layout: calls in turn with new arrays of one layout, other
    sizes, a strided view, and a direct JointPlan.pack of another layout
    between two calls of one layout; every gradient equals dense torch
    autograd's."""
    if torch is None:
        pytest.skip("torch")
    gen = torch.Generator().manual_seed(3)
    k = Genred("Exp(-SqDist(x,y)*g)*b", GAUSS, axis=1)
    g = torch.tensor([2.0], dtype=torch.float64)
    cases = []
    def rand(*shape):
        return torch.rand(*shape, generator=gen, dtype=torch.float64)

    for n, m in ((5, 7), (5, 7), (9, 7), (5, 7), (5, 3)):
        cases.append((rand(n, 3), rand(m, 3), rand(m, 1)))
    x0, y0, b0 = cases[0]
    cases.append((x0, rand(7, 6)[:, ::2], b0))  # strided y: another layout
    cases.append(cases[0])
    for i, (x, y, b) in enumerate(cases):
        e = rand(x.shape[0], 1)
        xg, bg = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
        got = torch.autograd.grad(k(xg, y, g, bg), (xg, bg), e)
        xr, br = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
        d = ((xr[:, None, :] - y[None, :, :]) ** 2).sum(-1)
        ref = torch.autograd.grad(torch.exp(-d * g[0]) @ br, (xr, br), e)
        for a, r in zip(got, ref):
            torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-14)
        if i == 0:  # another layout packed in between: the next backward (this layout) writes it all again
            x2, y2, b2 = cases[2]
            joint = _lib.joint(tuple((k.key, "grad", a) for a in (0, 3)))
            args = [x2, y2, g, b2, torch.rand(x2.shape[0], 1, dtype=torch.float64), None]
            call = _call.prepare(joint, args[: _lib.formula((k.key, "grad", 0)).nargs])
            joint.plan(call.code).pack(call.descs, call.nx, call.ny)


def test_layout_memory_keeps_shape_errors():
    k = Genred("Exp(-SqDist(x,y)*g)*b", GAUSS, axis=1)
    x, y, g, b = np.ones((4, 3)), np.ones((5, 3)), np.ones(1), np.ones((5, 1))
    k(x, y, g, b)
    with pytest.raises(ValueError):
        k(x, y, g, np.ones((6, 1)))  # b and y disagree on M: libkp says so, every time
    with pytest.raises(ValueError):
        k(x, y, g, np.ones((6, 1)))
    np.testing.assert_allclose(k(x, y, g, b), _gauss_ref(x, y, g, b))


def test_contiguous_inputs_are_passed_in_place():
    x, y, g, b = np.ones((4, 3)), np.ones((5, 3)), np.ones(1), np.ones((5, 1))
    f = _lib.formula(Genred("Exp(-SqDist(x,y)*g)*b", GAUSS, axis=1).key)
    call = _call.prepare(f, (x, y, g, b))
    assert [d[0] for d in call.descs] == [a.ctypes.data for a in (x, y, g, b)]
    assert all(a is b for a, b in zip(call.arrays, (x, y, g, b)))


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_lazytensor_numbers_and_matmul(kind):
    if kind == "torch" and torch is None:
        pytest.skip("torch")
    rng = np.random.default_rng(2)
    x, y, b = rng.random((6, 3)), rng.random((8, 3)), rng.random((8, 2))
    ref = np.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) / 0.25) @ b
    conv = (lambda a: a) if kind == "numpy" else torch.from_numpy
    xi, yj = LazyTensor(conv(x)[:, None, :]), LazyTensor(conv(y)[None, :, :])
    K = (-((xi - yj) ** 2).sum(-1) / 0.25).exp()
    for v in (conv(b), conv(b[:, :1])):
        r = K @ v
        r = r if kind == "numpy" else r.numpy()
        np.testing.assert_allclose(r, ref[:, : v.shape[1]], rtol=1e-12)
    r = K @ conv(b[:, 0])  # 1-D v: (N,)
    np.testing.assert_allclose(r if kind == "numpy" else r.numpy(), ref[:, 0], rtol=1e-12)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_lazytensor_numbers_are_kept_per_value_and_dtype(kind):
    """Numbers made once (_call._NUMBERS) and used again: every value, dtype
    and backend has its own, a number's array is never another's (0.5 then
    0.25, float32 then float64 of one value, +0 and -0, NaN), an array made
    under torch.inference_mode is not kept for calls that record a graph, and
    nothing changes when the store is full and starts over."""
    if kind == "torch" and torch is None:
        pytest.skip("torch")
    conv = (lambda a: a) if kind == "numpy" else torch.from_numpy
    back = (lambda a: a) if kind == "numpy" else (lambda a: a.detach().numpy())
    rng = np.random.default_rng(3)
    _call._NUMBERS.clear()
    for dtype in (np.float32, np.float64, np.float32):
        x, y = rng.random((4, 1)).astype(dtype), rng.random((5, 1)).astype(dtype)
        xi, yj = LazyTensor(conv(x)[:, None, :]), LazyTensor(conv(y)[None, :, :])
        for s in (0.5, 0.25, 0.5, 0.0, -0.0, float("nan"), 1e40, 0.1):
            r = back((xi * yj * s).sum(dim=1))
            ref = (x * s * y.sum()).astype(dtype)
            if s == 0:  # the sign of a zero sum: -0.0 * positive terms
                np.testing.assert_array_equal(np.signbit(r), np.signbit(ref))
            np.testing.assert_allclose(r, ref, rtol=1e-6 if dtype == np.float32 else 1e-13)
    assert len(_call._NUMBERS) == 8  # 0.5, 0.25, 1e40, 0.1 per dtype; not the zeros nor NaN
    for (be, code, v), (a, d) in _call._NUMBERS.items():
        assert v == v and v != 0 and d[0] == _arrays.describe(a)[0] and d[1] == code
        if be is _arrays.NumpyBackend:
            assert not a.flags.writeable
    if kind == "torch":  # the NumPy array of a number is not the tensor's
        xn = rng.random((4, 1))
        (LazyTensor(xn[:, None, :]) * LazyTensor(np.ones((1, 5, 1))) * 0.625).sum(dim=1)
        xt = torch.from_numpy(xn)
        r = (LazyTensor(xt[:, None, :]) * LazyTensor(torch.ones(1, 5, 1, dtype=torch.float64)) * 0.625).sum(dim=1)
        torch.testing.assert_close(r, xt * 0.625 * 5)
        _call._NUMBERS.clear()
        x = torch.rand(4, 1, dtype=torch.float64, requires_grad=True)
        xi, yj = LazyTensor(x[:, None, :]), LazyTensor(torch.ones(1, 5, 1, dtype=torch.float64))
        with torch.inference_mode():
            (LazyTensor(x.detach()[:, None, :]) * yj * 0.75).sum(dim=1)
        assert not _call._NUMBERS
        (g,) = torch.autograd.grad((xi * yj * 0.75).sum(dim=1).sum(), (x,))
        torch.testing.assert_close(g, torch.full_like(x, 0.75 * 5))
    saved = _call._NUMBERS_MAX
    try:
        _call._NUMBERS_MAX = 2
        x, y = rng.random((4, 1)), rng.random((5, 1))
        xi, yj = LazyTensor(conv(x)[:, None, :]), LazyTensor(conv(y)[None, :, :])
        for s in (1.5, 2.5, 3.5, 1.5, 4.5):
            np.testing.assert_allclose(back((xi * yj * s).sum(dim=1)), x * s * y.sum(), rtol=1e-13)
            assert len(_call._NUMBERS) <= 2
    finally:
        _call._NUMBERS_MAX = saved


def test_float32_number_that_overflows_is_inf_as_before():
    """A number beyond float32 becomes inf in a float32 call (torch.tensor's
    rounding), on the fast path as on the general one."""
    if torch is None:
        pytest.skip("torch")
    x = torch.ones(3, 1, 1, dtype=torch.float32)
    y = torch.ones(1, 4, 1, dtype=torch.float32)
    r = (LazyTensor(x) * LazyTensor(y) * 1e40).sum(dim=1)
    assert torch.isinf(r).all()
    t = _arrays.TorchBackend.scalar_array([1e40], _lib.KP_FLOAT32)
    assert torch.isinf(t).all() and t.shape == (1,)
    t = _arrays.TorchBackend.scalar_array([0.1], _lib.KP_FLOAT32)
    assert t.item() == torch.tensor([0.1], dtype=torch.float32).item()


def test_torch_grad_through_fast_apply_matches_reference():
    if torch is None:
        pytest.skip("torch")
    torch.manual_seed(0)
    x = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    y = torch.rand(6, 3, dtype=torch.float64)
    b = torch.rand(6, 1, dtype=torch.float64, requires_grad=True)
    g = torch.tensor([2.0], dtype=torch.float64)
    k = Genred("Exp(-SqDist(x,y)*g)*b", GAUSS, axis=1)
    gx, gb = torch.autograd.grad(k(x, y, g, b).sum(), (x, b))
    ref = (torch.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) * g) @ b).sum()
    rx, rb = torch.autograd.grad(ref, (x, b))
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gb, rb)
