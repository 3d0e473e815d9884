"""torch CUDA tensors in pykp.

Part 1 runs everywhere: what pykp decides before libkp is called (the device
of each tensor, the descriptors and options it packs, mixed-device errors that
name the arguments, backend=/device_id=), with fake CUDA tensors
(tests/fake_cuda.py: CPU tensors that say "cuda:k"). The CUDA engine itself,
through pykp, is exercised without a GPU by test_cuda_mock.py (the plumbing)
and test_cuda_emul.py (results, on libkp's CUDA emulator).

Part 2 needs a CUDA device and a torch built with CUDA (skipped otherwise,
saying so): results on the device against the CPU engine, gradcheck and
gradgradcheck in float64 on the device, joint and separate backward passes,
a non-default stream, a second device, mixed devices.
"""
import ctypes
import struct

import numpy as np
import pytest
import torch

import pykp
from pykp import _arrays, _lib, genred
from fake_cuda import fake

GAUSS = ("Exp(-SqDist(x,y)*g)*b", ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"])


def host_args(n=10, m=8, dtype=torch.float64):
    return torch.rand(n, 3, dtype=dtype), torch.rand(m, 3, dtype=dtype), torch.tensor([2.0], dtype=dtype), torch.rand(m, 1, dtype=dtype)


# ----------------------------------------------------------------- part 1: no GPU needed


def test_descriptors_of_cpu_and_cuda_tensors():
    t = torch.rand(5, 3).t()
    assert _arrays.tensor_desc(t) == (t.data_ptr(), _lib.KP_FLOAT64, (3, 5), (1, 3), _lib.KP_DEVICE_CPU, 0)
    f = fake(t, 2)
    assert _arrays.tensor_desc(f) == (t.data_ptr(), _lib.KP_FLOAT64, (3, 5), (1, 3), _lib.KP_DEVICE_CUDA, 2)
    assert _arrays.where_of(np.zeros(3)) == _arrays.CPU
    assert _arrays.device_name(_arrays.where_of(f)) == "cuda:2"


def test_descriptors_and_stream_are_packed_where_libkp_reads_them():
    # read back at the offsets libkp reports for its own structs (kp_constant)
    c = _lib.constant
    asize, osize = c("sizeof(kp_array)"), c("sizeof(kp_exec_options)")
    buf = ctypes.create_string_buffer(asize + osize)
    _lib._pack_array(buf, 0, (0x1000, _lib.KP_FLOAT32, (4, 3), (3, 1), _lib.KP_DEVICE_CUDA, 5))

    def at(fmt, struct_name, field, base=0):
        return struct.unpack_from(fmt, buf, base + c("offsetof(%s,%s)" % (struct_name, field)))

    assert at("@P", "kp_array", "data") == (0x1000,)
    assert at("@iii", "kp_array", "dtype") == (_lib.KP_FLOAT32, _lib.KP_DEVICE_CUDA, 2)
    assert at("@i", "kp_array", "ndim") == (2,) and at("@i", "kp_array", "device_id") == (5,)
    assert at("@2q", "kp_array", "shape") == (4, 3) and at("@2q", "kp_array", "strides") == (3, 1)
    _lib._OPTS.pack_into(buf, asize, 3, 7, -1, 0xABCDEF0, _lib._OPT_SIZE)
    opt = [at(f, "kp_exec_options", n, asize)[0] for f, n in (("@i", "num_threads"), ("@q", "nx"), ("@q", "ny"))]
    assert opt == [3, 7, -1]
    assert at("@P", "kp_exec_options", "cuda_stream", asize) == (0xABCDEF0,)
    # the struct_size pykp passes covers every field it writes; libkp takes defaults for the rest
    assert at("@N", "kp_exec_options", "struct_size", asize) == (_lib._OPT_SIZE,)
    assert _lib._OPT_SIZE <= osize


def test_cuda_stream_is_torchs_current_stream_of_the_device(monkeypatch):
    asked = []

    class Stream:
        cuda_stream = 0x5150

    def current_stream(device=None):
        asked.append(device)
        return Stream()

    monkeypatch.setattr(torch.cuda, "current_stream", current_stream)
    assert _arrays.stream_for((_lib.KP_DEVICE_CUDA, 3)) == 0x5150
    assert asked == [3]
    assert _arrays.stream_for(_arrays.CPU) == 0  # host arrays: no stream, torch's CUDA side untouched
    assert asked == [3]


def test_contexts_run_host_arrays_on_the_cpu_engine_under_auto():
    # pykp's contexts use KP_ENGINE_AUTO; host arrays are computed on the CPU as before
    x, y, g, b = host_args()
    out = pykp.Genred(*GAUSS, axis=1)(x, y, g, b)
    ref = torch.exp(-((x[:, None] - y[None]) ** 2).sum(-1) * 2.0) @ b
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def test_mixed_devices_name_the_arguments_and_never_copy():
    g = pykp.Genred(*GAUSS, axis=1)
    x, y, s, b = host_args()
    with pytest.raises(RuntimeError, match=r"argument 0 is on cuda:0, argument 1 on cpu.*never copies"):
        g(fake(x), y, s, b)
    with pytest.raises(RuntimeError, match=r"argument 0 is on cuda:0, argument 3 on cuda:1"):
        g(fake(x), fake(y), fake(s), fake(b, 1))
    with pytest.raises(RuntimeError, match=r"argument 0 is on cpu, argument 2 on cuda:0"):
        g(x, y, fake(s), b)
    with pytest.raises(RuntimeError, match=r"out= is on cuda:0 but the arguments are on cpu"):
        g(x, y, s, b, out=fake(torch.empty(10, 1, dtype=torch.float64)))
    x.requires_grad_()  # the autograd path checks the same way
    with pytest.raises(RuntimeError, match=r"argument 0 is on cpu, argument 1 on cuda:1"):
        g(x, fake(y, 1), fake(s, 1), b)


def test_mixed_devices_in_lazytensors_and_kernel_product():
    x, y, _, b = host_args()
    K = (-((pykp.LazyTensor(fake(x)[:, None, :]) - pykp.LazyTensor(y[None, :, :])) ** 2).sum(-1)).exp()
    with pytest.raises(RuntimeError, match=r"LazyTensor variable 0 is on cuda:0, LazyTensor variable 1 on cpu"):
        K.sum(1)
    with pytest.raises(RuntimeError, match=r"x feature 'x' is on cuda:0, b on cpu"):
        pykp.kernel_product(fake(x), fake(y), b, "gaussian", sigma=0.5)
    with pytest.raises(RuntimeError, match=r"sigma is on cuda:1 but the data are on cpu"):
        pykp.kernel_product(x, y, b, "gaussian", sigma=fake(torch.tensor(0.5, dtype=torch.float64), 1))


def test_backend_and_device_id_only_confirm_where_the_arrays_are():
    g = pykp.Genred(*GAUSS, axis=1)
    x, y, s, b = host_args()
    with pytest.raises(ValueError, match=r"backend='GPU', but the arrays are on cpu"):
        g(x, y, s, b, backend="GPU")
    with pytest.raises(ValueError, match=r"backend='CPU', but the arrays are on cuda:0"):
        g(fake(x), fake(y), fake(s), fake(b), backend="CPU")
    with pytest.raises(ValueError, match=r"device_id=1, but the arrays are on cuda:0"):
        g(fake(x), fake(y), fake(s), fake(b), device_id=1)
    g(x, y, s, b, backend="CPU", device_id=0)  # host arrays: device_id (a GPU choice) does not apply


def test_numpy_arrays_and_cuda_tensors_do_not_mix():
    x, y, s, b = host_args()
    with pytest.raises(TypeError, match="mix NumPy arrays and torch tensors"):
        pykp.Genred(*GAUSS, axis=1)(x.numpy(), fake(y), s, b)


# ----------------------------------------------------------------- part 2: a real CUDA device

_WHY_NOT = None
if not torch.backends.cuda.is_built():
    _WHY_NOT = "torch without CUDA (a CPU-only build): no CUDA tensors to test"
elif not torch.cuda.is_available():
    _WHY_NOT = "no CUDA device (torch.cuda.is_available() is False)"
needs_cuda = pytest.mark.skipif(_WHY_NOT is not None, reason=_WHY_NOT or "")


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["Sum", "LogSumExp", "Min_ArgMin", "ArgKMin", "KMin"])
def test_cuda_results_match_the_cpu_engine(dtype, reduction):
    x, y, b = torch.rand(300, 3, dtype=dtype), torch.rand(200, 3, dtype=dtype), torch.rand(200, 2, dtype=dtype)
    if reduction in ("Sum", "LogSumExp"):
        g = pykp.Genred("Exp(-SqDist(x,y)*g)*b", ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(2)"],
                        reduction_op=reduction, axis=1)
        args = (x, y, torch.tensor([3.0], dtype=dtype), b)
    else:
        g = pykp.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op=reduction, axis=0, opt_arg=3)
        args = (x, y)
    dev = g(*[a.cuda() for a in args])
    cpu = g(*args)
    dev = dev if isinstance(dev, tuple) else (dev,)
    cpu = cpu if isinstance(cpu, tuple) else (cpu,)
    for d, c in zip(dev, cpu):
        assert d.device.type == "cuda" and d.dtype == c.dtype and d.shape == c.shape
        if c.dtype == torch.int64:
            if dtype == torch.float64:  # float32 rounding may swap near-ties
                assert torch.equal(d.cpu(), c)
        else:
            tol = 1e-5 if dtype == torch.float32 else 1e-12
            torch.testing.assert_close(d.cpu(), c, rtol=tol, atol=tol)


@needs_cuda
def test_cuda_gradcheck_and_gradgradcheck_float64():
    g = pykp.Genred(*GAUSS, axis=1)
    dev = torch.device("cuda")
    x = torch.rand(12, 3, dtype=torch.float64, device=dev, requires_grad=True)
    y = torch.rand(9, 3, dtype=torch.float64, device=dev, requires_grad=True)
    s = torch.tensor([1.5], dtype=torch.float64, device=dev, requires_grad=True)
    b = torch.rand(9, 1, dtype=torch.float64, device=dev, requires_grad=True)
    assert torch.autograd.gradcheck(g, (x, y, s, b))
    assert torch.autograd.gradgradcheck(g, (x, y, s, b))
    lse = pykp.Genred(*GAUSS, reduction_op="LogSumExp", axis=0)
    assert torch.autograd.gradcheck(lse, (x, y, s, b))


@needs_cuda
@pytest.mark.parametrize("joint", [True, False], ids=["joint", "separate"])
def test_cuda_backward_matches_the_cpu(monkeypatch, joint):
    monkeypatch.setattr(genred, "JOINT_BACKWARD", joint)
    n = 700  # >= 512 i points: the CPU runs its joint pass, the device its formulas in turn
    cpu = [torch.rand(n, 3, dtype=torch.float64), torch.rand(n, 3, dtype=torch.float64),
           torch.tensor([2.0], dtype=torch.float64), torch.rand(n, 1, dtype=torch.float64)]
    grads = {}
    for where in ("cpu", "cuda"):
        args = [a.to(where).requires_grad_() for a in cpu]
        out = pykp.Genred(*GAUSS, axis=1)(*args)
        first = torch.autograd.grad(out.square().sum(), args, create_graph=True)
        second = torch.autograd.grad(first[0].sum() + first[1].square().sum(), args)
        assert all(t.device.type == where for t in first + second)
        grads[where] = [t.detach().cpu() for t in first + second]
    for d, c in zip(grads["cuda"], grads["cpu"]):
        torch.testing.assert_close(d, c, rtol=1e-10, atol=1e-10)


@needs_cuda
def test_cuda_runs_on_the_current_stream(monkeypatch):
    seen = []
    real = _arrays.cuda_stream
    monkeypatch.setattr(_arrays, "cuda_stream", lambda i: seen.append(real(i)) or seen[-1])
    x, y, s, b = [a.cuda() for a in host_args(2000, 3000)]
    ref = pykp.Genred(*GAUSS, axis=1)(*[a.cpu() for a in (x, y, s, b)])
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = pykp.Genred(*GAUSS, axis=1)(x, y, s, b)
        out2 = out * 2  # ordered after libkp's kernels on the same stream
    side.synchronize()
    assert seen == [side.cuda_stream] and side.cuda_stream != torch.cuda.default_stream().cuda_stream
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out2.cpu(), 2 * ref, rtol=1e-12, atol=1e-12)


@needs_cuda
def test_cuda_second_device():
    if torch.cuda.device_count() < 2:
        pytest.skip("one CUDA device: no second device to test device indices on")
    x, y, s, b = host_args()
    out = pykp.Genred(*GAUSS, axis=1)(*[a.to("cuda:1") for a in (x, y, s, b)])
    assert out.device == torch.device("cuda", 1)
    torch.testing.assert_close(out.cpu(), pykp.Genred(*GAUSS, axis=1)(x, y, s, b), rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match=r"argument 0 is on cuda:0, argument 1 on cuda:1"):
        pykp.Genred(*GAUSS, axis=1)(x.to("cuda:0"), y.to("cuda:1"), s.to("cuda:1"), b.to("cuda:1"))


@needs_cuda
def test_cuda_mixed_with_cpu_is_refused():
    x, y, s, b = host_args()
    with pytest.raises(RuntimeError, match=r"argument 0 is on cuda:0, argument 1 on cpu"):
        pykp.Genred(*GAUSS, axis=1)(x.cuda(), y, s, b)


@needs_cuda
def test_cuda_lazytensor_and_kernel_product_match_the_cpu():
    x, y, b = torch.rand(400, 3, dtype=torch.float64), torch.rand(300, 3, dtype=torch.float64), torch.rand(300, 2, dtype=torch.float64)
    res = {}
    for where in ("cpu", "cuda"):
        xx, yy, bb = x.to(where), y.to(where), b.to(where).requires_grad_()
        D = ((pykp.LazyTensor(xx[:, None, :]) - pykp.LazyTensor(yy[None, :, :])) ** 2).sum(-1)
        a = (-D * 4.0).exp() @ bb
        nn = D.argKmin(4, dim=1)
        v = pykp.kernel_product(xx, yy, bb, "gaussian", sigma=0.5)
        (gb,) = torch.autograd.grad((a.square().sum() + v.sum()), [bb])
        assert all(t.device.type == where for t in (a, nn, v, gb))
        res[where] = [t.detach().cpu() for t in (a, nn, v, gb)]
    for d, c in zip(res["cuda"], res["cpu"]):
        torch.testing.assert_close(d, c, rtol=1e-10, atol=1e-10)


@needs_cuda
def test_cuda_lazytensor_as_scipy_linear_operator():
    pytest.importorskip("scipy")
    x = torch.rand(50, 2, dtype=torch.float64)
    v = np.random.rand(50)
    res = []
    for where in ("cpu", "cuda"):
        xx = x.to(where)
        K = (-((pykp.LazyTensor(xx[:, None, :]) - pykp.LazyTensor(xx[None, :, :])) ** 2).sum(-1)).exp()
        op = K.aslinearoperator()  # scipy's NumPy vectors go to the device and back
        r = op.matvec(v)
        assert isinstance(r, np.ndarray)
        res.append(r)
    np.testing.assert_allclose(res[1], res[0], rtol=1e-10)
