"""pykp's CUDA path computing real results on libkp's CUDA emulator (no GPU needed).

Not collected by itself: tests/test_cuda_emul.py runs this file in a child
pytest with
  KP_CUDA_LIBRARY   the fake driver  (<build>/tests/gpu/libkp_mock_cuda.so)
  KP_NVRTC_LIBRARY  the emulator     (<build>/tests/gpu/libkp_emul_nvrtc.so)
  MOCK_CUDA_REJECT_FATBIN=1, KP_CACHE_DIR a fresh folder,
so that every kernel libkp's CUDA engine generates is built for the CPU by the
host C++ compiler and run by the fake driver on launch, in its "device
memory" (host memory): see docs/architecture.md, "The CUDA emulator".

Tensors on "cuda:0" are tests/fake_cuda.FakeCuda tensors whose memory is the
mock's (MockDevice); pykp's CUDA seam is pointed at it (MockDevice.install).
Every case runs the same computation on ordinary CPU tensors (libkp's CPU
engine) and compares: float32 within 1e-5 and float64 within 1e-12 of the
largest magnitude of the CPU result, indices exactly. Each case also checks
that its results are in the mock's memory and that kp_reduce was launched.
Covered: Genred Sum forward (axis 1 and 0, ragged sizes, a split reduction),
LogSumExp, Kmin and argKmin through LazyTensor, kernel_product, first-order
gradients of scalar losses (x, y, b and the parameter; joint and separate
backward passes; LogSumExp and Kmin, whose gradients take the forward's output
or indices), the second order of the Hamiltonian, torch.autograd.gradcheck
(first and second order) in float64, complex128 tensors, and float16 tensors
(converted on the device by libkp: Genred, LogSumExp, Kmin, argKmin, the
gradients with the parameter's row sum, small and split sizes) against
float64 references within float16 rounding.

Torch's own ops on fake CUDA tensors run on the host (torch has no CUDA here)
and give host tensors: the gradient a loss sends back to a pykp output is one.
On a GPU it would be a device tensor, so the device computations route their
pykp outputs through MockDevice.device_grads, which copies gradients into
mock memory on their way back (libkp's CUDA engine refuses host memory).
"""
import os

import pytest
import torch

import pykp
from pykp import genred
from fake_cuda import FakeCuda, MockDevice

if not (os.environ.get("KP_CUDA_LIBRARY") and os.environ.get("KP_NVRTC_LIBRARY")):  # pragma: no cover
    pytest.skip("run by test_cuda_emul.py with KP_CUDA_LIBRARY and KP_NVRTC_LIBRARY set to the mock driver and "
                "the CUDA emulator", allow_module_level=True)

GAUSS = ("Exp(-SqDist(x,y)*g)*b", ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"])
RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}
DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])


@pytest.fixture(scope="module")
def mock():
    return MockDevice(os.environ["KP_CUDA_LIBRARY"])


@pytest.fixture(autouse=True)
def dev(mock, monkeypatch):
    mock.install(monkeypatch)
    mock.reset()
    return mock


def rand(shape, dtype, scale=1.0):
    return (torch.rand(shape, dtype=torch.float64) * scale).to(dtype)


def plain(t):
    return t.detach().as_subclass(torch.Tensor)


def assert_on_device(mock, t):
    assert mock.device_of(t.data_ptr()) == 0, "a result in host memory, not in the mock's device memory"


def assert_matches(mock, got, ref, what="result", from_pykp=True):
    """got (computed on the device) against ref (the CPU engine): within RTOL
    of ref's largest magnitude; indices exactly. from_pykp: got is what pykp
    returned, in device memory (False: torch's ops came after pykp's, e.g. the
    backward of x[:, None, :] or the sum of two gradients of one leaf, and ran
    on the host)."""
    assert got is not None, "%s: no gradient from the device" % what
    if from_pykp:
        assert_on_device(mock, got)
    g, r = plain(got), plain(ref)
    assert g.shape == r.shape and g.dtype == r.dtype, (what, g.shape, r.shape, g.dtype, r.dtype)
    if r.dtype == torch.int64:
        bad = (g != r).nonzero()
        assert bad.numel() == 0, "%s: %d indices differ, first at %s: %s vs %s (CPU)" % (
            what, bad.shape[0], tuple(bad[0].tolist()), g[tuple(bad[0])].item(), r[tuple(bad[0])].item())
        return
    scale = max(r.abs().max().item(), 1e-300) if r.numel() else 1.0
    err = (g - r).abs().max().item() if r.numel() else 0.0
    assert err <= RTOL[r.dtype] * scale, "%s: max |device - cpu| = %.3g, %.3g of max |cpu| = %.3g" % (
        what, err, err / scale, scale)


def assert_ran(mock, *kernels):
    """The emulator ran kp_reduce (and the other kernels named) since the last reset."""
    launched = mock.launches()
    for k in ("kp_reduce",) + kernels:
        assert k in launched, "%s was not launched: %s" % (k, launched)


def to_device(mock, host, requires_grad=False):
    return [mock.tensor(t, requires_grad=requires_grad) for t in host]


def leaves(host):
    return [t.clone().requires_grad_() for t in host]


# ----------------------------------------------------------------- forward


@DTYPES
@pytest.mark.parametrize("axis", [1, 0])
@pytest.mark.parametrize("size", ["37x301", "1x1", "3x2", "split"])
def test_genred_sum_forward(mock, dtype, axis, size):
    # split: the reduced axis in 3 chunks (> 1,024 each) and one row block: split-j + merge
    n, m = {"37x301": (37, 301), "1x1": (1, 1), "3x2": (3, 2), "split": (37, 2500)}[size]
    if axis == 0:
        n, m = m, n
    host = [rand((n, 3), dtype), rand((m, 3), dtype), torch.tensor([2.0], dtype=dtype), rand((m, 1), dtype)]
    g = pykp.Genred(*GAUSS, reduction_op="Sum", axis=axis)
    ref = g(*host)
    out = g(*to_device(mock, host))
    assert isinstance(out, FakeCuda)
    assert_matches(mock, out, ref)
    assert_ran(mock, *(["kp_merge"] if size == "split" else []))


def test_a_parameter_given_as_a_number(mock):
    host = [rand((37, 3), torch.float64), rand((301, 3), torch.float64), rand((301, 1), torch.float64)]
    g = pykp.Genred(*GAUSS, axis=1)
    x, y, b = to_device(mock, host)
    assert_matches(mock, g(x, y, 0.7, b), g(host[0], host[1], 0.7, host[2]))  # 0.7 made on the device by pykp
    assert_ran(mock)


def lazy_sqdist(x, y):
    return ((pykp.LazyTensor(x[:, None, :]) - pykp.LazyTensor(y[None, :, :])) ** 2).sum(-1)


@DTYPES
def test_logsumexp_through_lazytensor(mock, dtype):
    host = [rand((37, 3), dtype, 3.0), rand((301, 3), dtype, 3.0)]

    def lse(x, y):
        return (-lazy_sqdist(x, y) * 0.5).logsumexp(dim=1)

    assert_matches(mock, lse(*to_device(mock, host)), lse(*host))
    assert_ran(mock)


@DTYPES
@pytest.mark.parametrize("axis", [1, 0])
def test_kmin_and_argkmin_through_lazytensor(mock, dtype, axis):
    host = [rand((37, 3), dtype), rand((301, 3), dtype)]
    x, y = to_device(mock, host)
    K = 5
    ref_idx = lazy_sqdist(*host).argKmin(K, dim=axis)
    ref_vals = lazy_sqdist(*host).Kmin(K, dim=axis)
    idx = lazy_sqdist(x, y).argKmin(K, dim=axis)
    assert idx.dtype == torch.int64
    assert_matches(mock, idx, ref_idx, "argKmin")
    assert_ran(mock)
    mock.reset()
    assert_matches(mock, lazy_sqdist(x, y).Kmin(K, dim=axis), ref_vals, "Kmin")
    assert_ran(mock)
    # the neighbours really are the nearest ones (the CPU engine is not the only reference)
    D = ((host[0][:, None, :] - host[1][None, :, :]) ** 2).sum(-1)
    dense = torch.sort(D, dim=axis).values
    dense = dense[:, :K] if axis == 1 else dense[:K, :].t()
    torch.testing.assert_close(plain(ref_vals), dense, rtol=RTOL[dtype] * 10, atol=0)


@DTYPES
def test_kernel_product_gaussian(mock, dtype):
    host = [rand((37, 3), dtype), rand((301, 3), dtype), rand((301, 2), dtype)]
    ref = pykp.kernel_product(*host, "gaussian", sigma=0.5)
    out = pykp.kernel_product(*to_device(mock, host), "gaussian", sigma=0.5)
    assert_matches(mock, out, ref)
    assert_ran(mock)


# ----------------------------------------------------------------- backward


def gauss_loss(mock, x, y, s, b, axis, on_device):
    out = pykp.Genred(*GAUSS, axis=axis)(x, y, s, b)
    if on_device:
        out = mock.device_grads(out)
    w = torch.linspace(-1.0, 2.0, out.shape[0], dtype=torch.float64).to(out.dtype)[:, None]
    return (out**2 * w).sum() + out.sum()  # a gradient that differs from row to row


@DTYPES
@pytest.mark.parametrize("joint", [True, False], ids=["joint", "separate"])
@pytest.mark.parametrize("axis", [1, 0])
def test_gradients_of_a_scalar_loss(mock, monkeypatch, dtype, joint, axis):
    monkeypatch.setattr(genred, "JOINT_BACKWARD", joint)
    n, m = (37, 301) if axis == 1 else (301, 37)
    host = [rand((n, 3), dtype), rand((m, 3), dtype), torch.tensor([2.0], dtype=dtype), rand((m, 1), dtype)]
    ins = leaves(host)
    ref = torch.autograd.grad(gauss_loss(mock, *ins, axis, False), ins)
    d = to_device(mock, host, requires_grad=True)
    loss = gauss_loss(mock, *d, axis, True)
    mock.reset()
    got = torch.autograd.grad(loss, d)
    for name, a, r in zip(("x", "y", "g", "b"), got, ref):
        assert_matches(mock, a, r, "d loss / d " + name)
    assert_ran(mock, "kp_sumrows_f32" if dtype == torch.float32 else "kp_sumrows_f64")  # g's rows summed


@DTYPES
@pytest.mark.parametrize("reduction", ["LogSumExp", "Kmin"])
def test_gradients_taking_the_forward_output_or_indices(mock, dtype, reduction):
    host = [rand((37, 3), dtype, 2.0), rand((301, 3), dtype, 2.0)]

    def loss(x, y, on_device):
        D = lazy_sqdist(x, y)
        out = (-D).logsumexp(dim=1) if reduction == "LogSumExp" else D.Kmin(3, dim=1)
        if on_device:
            out = mock.device_grads(out)
        return (out * torch.arange(1, out.shape[1] + 1, dtype=out.dtype)).sum() + (out**2).sum()

    ins = leaves(host)
    ref = torch.autograd.grad(loss(*ins, False), ins)
    d = to_device(mock, host, requires_grad=True)
    l = loss(*d, True)
    mock.reset()
    got = torch.autograd.grad(l, d)
    for name, a, r in zip(("x", "y"), got, ref):
        assert_matches(mock, a, r, "d loss / d " + name, from_pykp=False)  # through x[:, None, :]
    assert_ran(mock)


@DTYPES
@pytest.mark.parametrize("axis", [1, 0])
def test_block_sparse_ranges(mock, dtype, axis):
    """ranges= (host index arrays) with device data: the ranged kernels against the CPU engine,
    forward and the gradients (those in y and b reduce over the other axis: the transposed triple)."""
    from pykp.cluster import from_matrix

    ri, rj = torch.tensor([[0, 20], [20, 21], [25, 37]]), torch.tensor([[0, 100], [100, 230], [230, 301]])
    rg = from_matrix(ri, rj, torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=torch.bool))
    host = [rand((37, 3), dtype), rand((301, 3), dtype), torch.tensor([2.0], dtype=dtype), rand((301, 1), dtype)]

    def loss(x, y, s, b, on_device):
        out = pykp.Genred(*GAUSS, axis=axis)(x, y, s, b, ranges=rg)
        if on_device:
            out = mock.device_grads(out)
        w = torch.linspace(-1.0, 2.0, out.shape[0], dtype=torch.float64).to(out.dtype)[:, None]
        return (out**2 * w).sum() + out.sum(), out

    ins = leaves(host)
    lref, oref = loss(*ins, False)
    ref = torch.autograd.grad(lref, ins)
    d = to_device(mock, host, requires_grad=True)
    l, out = loss(*d, True)
    assert_matches(mock, plain(out), plain(oref), "forward", from_pykp=False)
    mock.reset()
    got = torch.autograd.grad(l, d)
    for name, a, r in zip(("x", "y", "g", "b"), got, ref):
        assert_matches(mock, a, r, "d loss / d " + name)
    assert_ran(mock)


def hamiltonian(mock, q, p, s, on_device):
    v = pykp.kernel_product(q, q, p, "gaussian", sigma=s)
    if on_device:
        v = mock.device_grads(v)
    return 0.5 * (p * v).sum()


@DTYPES
def test_hamiltonian_second_order(mock, dtype):
    n = 37
    host = [rand((n, 3), dtype), (rand((n, 3), dtype) - 0.5) / n, torch.tensor(0.5, dtype=dtype)]
    e = [rand((n, 3), dtype) - 0.5, rand((n, 3), dtype) - 0.5]  # the directions of the second derivatives

    def second(q, p, s, on_device):
        H = hamiltonian(mock, q, p, s, on_device)
        dq, dp = torch.autograd.grad(H, [q, p], create_graph=True)
        if on_device:
            dq, dp = mock.device_grads(dq), mock.device_grads(dp)
            mock.reset()
        return (dq, dp), torch.autograd.grad((dq * e[0]).sum() + (dp * e[1]).sum(), [q, p, s])

    ref_first, ref = second(*leaves(host), False)
    first, got = second(*to_device(mock, host, requires_grad=True), True)
    assert_ran(mock)
    # q and p are used more than once: their gradients are sums made by torch (on the host)
    for name, a, r in zip(("dH/dq", "dH/dp"), first, ref_first):
        assert_matches(mock, a, r, name, from_pykp=False)
    for name, a, r in zip(("q", "p", "sigma"), got, ref):
        assert_matches(mock, a, r, "second order: d<dH, e> / d" + name, from_pykp=False)


# ----------------------------------------------------------------- gradcheck
# gradcheck perturbs the inputs in place (mock memory is host memory, so torch
# writes it directly) and compares .to(device) copies (FakeCuda.to: a no-op to
# its own device); its grad_outputs are host tensors, hence device_grads.


@pytest.mark.parametrize("size", [(7, 11), (1, 3)], ids=["7x11", "1x3"])
def test_gradcheck_float64(mock, size):
    n, m = size
    host = [rand((n, 3), torch.float64), rand((m, 3), torch.float64), torch.tensor([1.5], dtype=torch.float64),
            rand((m, 1), torch.float64)]
    g = pykp.Genred(*GAUSS, axis=1)
    d = to_device(mock, host, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: mock.device_grads(g(*a)), d)
    assert_ran(mock)
    # gradcheck alone would pass with kernels that do nothing (zeros everywhere): the values too
    assert_matches(mock, g(*d), g(*host))


def test_gradgradcheck_float64(mock):
    # gradgradcheck's own grad_outputs and first-order gradients would be host
    # tensors: the same check written with gradcheck over the first-order
    # gradients, each through device_grads
    host = [rand((6, 3), torch.float64), rand((9, 3), torch.float64), torch.tensor([1.5], dtype=torch.float64),
            rand((9, 1), torch.float64)]
    g = pykp.Genred(*GAUSS, axis=1)

    def first_order(x, y, s, b, G):
        out = mock.device_grads(g(x, y, s, b))
        grads = torch.autograd.grad(out, [x, y, s, b], G, create_graph=True)
        return tuple(mock.device_grads(t) for t in grads)

    host.append(rand((6, 1), torch.float64))
    d = to_device(mock, host, requires_grad=True)
    assert torch.autograd.gradcheck(first_order, d)
    assert_ran(mock)
    ins = leaves(host)
    ref = torch.autograd.grad(g(*ins[:4]), ins[:4], ins[4])
    for name, a, r in zip(("x", "y", "g", "b"), first_order(*d), ref):
        assert_matches(mock, a, r, "d<out, G> / d" + name)


# ----------------------------------------------------------------- storage dtypes


def test_complex_tensors_on_the_device(mock):
    """complex128 device tensors reach the CUDA engine as interleaved reals (a
    view of the descriptors, no copy); the result is a complex device tensor."""
    host = [torch.randn(37, 2, dtype=torch.complex128), torch.randn(301, 2, dtype=torch.complex128),
            rand((301, 1), torch.float64)]
    g = pykp.Genred("ComplexMult(ComplexExp(ComplexMult(z,w)),ComplexRealScal(b,Conj(w)))",
                    ["z = Vi(4)", "w = Vj(4)", "b = Vj(1)"], axis=1)
    ref = g(*host)
    out = g(*to_device(mock, host))
    assert isinstance(out, FakeCuda) and out.dtype == torch.complex128
    assert_on_device(mock, out)
    err = (plain(out) - ref).abs().max().item()
    assert err <= 1e-12 * ref.abs().max().item(), err
    assert_ran(mock)


# float16: libkp's CUDA engine converts float16 device arrays on the device (kp_half_gather into
# float32, kp_half_scatter / kp_half_sumrows back, the host's rounding) and computes in float32.
# Checked against float64 on the same (float16) values: 2^-11 relative rounding of each result plus
# float32 arithmetic, relative to the largest value; the host float16 path (CPU engine) alike.
HALF_TOL = 2.0**-10


def close_half(got, ref, what="result"):
    g = plain(got)
    assert g.dtype == torch.float16, (what, g.dtype)
    err = (g.double() - ref).abs().max().item()
    assert err <= HALF_TOL * ref.abs().max().item(), "%s: max error %.3g, max |ref| %.3g" % (
        what, err, ref.abs().max().item())


def test_float16_device_tensors(mock):
    """A float16 Genred on device tensors: the result is a float16 device tensor, equal to the
    float64 reference and to the host float16 path up to float16 rounding."""
    H = torch.float16
    host = [rand((37, 3), H), rand((301, 3), H), torch.tensor([0.7]).to(H), rand((301, 2), H) - 0.5]
    g = pykp.Genred("Exp(-SqDist(x,y)*s)*b", ["x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(2)"], axis=1)
    out = g(*to_device(mock, host))
    assert isinstance(out, FakeCuda) and out.dtype == H and tuple(out.shape) == (37, 2)
    assert_on_device(mock, out)
    assert_ran(mock, "kp_half_gather", "kp_half_scatter")
    x, y, s, b = (t.double() for t in host)
    ref = torch.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) * s) @ b
    close_half(out, ref)
    close_half(out, g(*host).double(), "against the host float16 path")


def test_float16_device_lazytensor_reductions(mock):
    """LogSumExp, Kmin and argKmin of float16 device tensors through LazyTensor."""
    H = torch.float16
    host = [rand((37, 3), H, 2.0), rand((301, 3), H, 2.0)]
    x, y = to_device(mock, host)
    D = ((host[0].double()[:, None, :] - host[1].double()[None, :, :]) ** 2).sum(-1)
    close_half((-lazy_sqdist(x, y)).logsumexp(dim=1), torch.logsumexp(-D, 1, keepdim=True), "LogSumExp")
    assert_ran(mock, "kp_half_gather")
    close_half(lazy_sqdist(x, y).Kmin(3, dim=1), D.sort(1).values[:, :3], "Kmin")
    idx = lazy_sqdist(x, y).argKmin(3, dim=1)
    assert idx.dtype == torch.int64
    assert_on_device(mock, idx)
    # the distances at the indices are the 3 smallest (up to float32 rounding of near ties)
    torch.testing.assert_close(D.gather(1, plain(idx)), D.sort(1).values[:, :3], rtol=1e-6, atol=1e-7)


def test_float16_device_gradients(mock):
    """Gradients of a float16 Genred on device tensors in every argument, the parameter's (rows
    summed on the device: kp_half_sumrows) included, against float64 autograd."""
    H = torch.float16
    host = [rand((37, 3), H), rand((301, 3), H), torch.tensor([2.0]).to(H), rand((301, 1), H) - 0.5]
    e = rand((37, 1), H) - 0.5
    g = pykp.Genred(*GAUSS, axis=1)
    d = to_device(mock, host, requires_grad=True)
    out = mock.device_grads(g(*d))
    mock.reset()
    got = torch.autograd.grad((out * e).sum(), d)
    assert_ran(mock, "kp_half_gather", "kp_half_sumrows")
    ins = [t.double().requires_grad_() for t in host]
    x, y, s, b = ins
    ref_out = torch.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) * s) @ b
    ref = torch.autograd.grad((ref_out * e.double()).sum(), ins)
    for name, a, r in zip(("x", "y", "g", "b"), got, ref):
        close_half(a, r, "d loss / d " + name)


@pytest.mark.parametrize("size", [(1, 1), (5, 4), (3, 2500)], ids=["1x1", "5x4", "split"])
def test_float16_device_sizes(mock, size):
    """Small and ragged sizes, and a reduced axis split in chunks (split-j + merge)."""
    n, m = size
    host = [rand((n, 3), torch.float16), rand((m, 3), torch.float16)]
    g = pykp.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], axis=1)
    out = g(*to_device(mock, host))
    assert_on_device(mock, out)
    close_half(out, ((host[0].double()[:, None] - host[1].double()[None]) ** 2).sum(-1).sum(1, keepdim=True))
