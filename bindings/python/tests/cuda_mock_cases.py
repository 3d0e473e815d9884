"""pykp's CUDA path against libkp's fake CUDA driver (no GPU needed).

Not collected by itself: tests/test_cuda_mock.py runs this file in a child
pytest with KP_CUDA_LIBRARY pointing at the mock driver built by the C build
(tests/gpu/mock_cuda.c -> <build>/tests/gpu/libkp_mock_cuda.so), so that the
mock never replaces a real driver in the main test process.

The mock's "device memory" is host memory from its cuMemAlloc; kernel launches
are recorded ("kp_reduce", "kp_gather4", ...), not run: results are not
computed (outputs stay as allocated). What is asserted is the plumbing:
- what pykp hands libkp (every kp_array, the options, read back from the
  buffers pykp passes to kp_plan_exec / kp_plan_exec_joint): device
  KP_DEVICE_CUDA and the tensor's device index for every array, outputs
  included, and the stream pykp got from torch for that device, which the
  driver then receives for every launch and stream-ordered allocation;
- that libkp's CUDA engine took the call (its launches are recorded, and it
  accepts only pointers of the mock's memory: anything pykp allocated on the
  host for a device call would be refused);
- that outputs, gradients, indices and the parameters pykp builds from Python
  numbers are allocated on the arguments' device (through pykp's seam
  `_arrays.torch_empty`, replaced here by mock allocations);
- that host tensors keep running on the CPU engine, with correct results,
  while the mock driver is loaded.
torch has no CUDA here: tensors on "cuda:k" are tests/fake_cuda.FakeCuda.
"""
import ctypes
import os

import numpy as np
import pytest
import torch

import pykp
from pykp import _arrays, _lib, genred
from fake_cuda import STREAM_BASE, FakeCuda, MockDevice

if not os.environ.get("KP_CUDA_LIBRARY"):  # pragma: no cover - run through test_cuda_mock.py
    pytest.skip("run by test_cuda_mock.py with KP_CUDA_LIBRARY set to the mock driver", allow_module_level=True)

KP_DEVICE_CPU, KP_DEVICE_CUDA = 0, 1

GAUSS = ("Exp(-SqDist(x,y)*g)*b", ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"])


def read(addr, ctype):
    return ctype.from_address(addr).value


def decode_array(addr):
    """A kp_array at addr as a dict, None for an unused argument position."""
    at = lambda field: addr + _lib._at("kp_array", field)  # noqa: E731
    data = read(at("data"), ctypes.c_void_p)
    if data is None:
        return None
    ndim = read(at("ndim"), ctypes.c_int)
    shape = (ctypes.c_int64 * ndim).from_address(at("shape"))
    strides = (ctypes.c_int64 * ndim).from_address(at("strides"))
    return dict(device=read(at("device"), ctypes.c_int), device_id=read(at("device_id"), ctypes.c_int), ptr=data,
                shape=tuple(shape), strides=tuple(strides))


class Calls:
    """What libkp received: one record per kp_plan_exec / kp_plan_exec_joint call."""

    def __init__(self):
        self.records = []

    def add(self, kind, args_addr, nargs, out_addrs, opt_addr):
        """Decodes the kp_array descriptors and options pykp passes (ctypes
        addresses, as _lib.Plan / JointPlan hand them to libkp), at the offsets
        libkp states (kp_constant)."""
        self.records.append(
            dict(kind=kind, args=[decode_array(args_addr + k * _lib._ARRAY_SIZE) for k in range(nargs)],
                 outs=[decode_array(a) for a in out_addrs],
                 stream=read(opt_addr + _lib._at("kp_exec_options", "cuda_stream"), ctypes.c_void_p) or 0)
        )

    def arrays(self):
        return [a for r in self.records for a in r["args"] + r["outs"] if a is not None]


@pytest.fixture(scope="module")
def mock():
    m = MockDevice(os.environ["KP_CUDA_LIBRARY"])
    return m


@pytest.fixture(autouse=True)
def device(mock, monkeypatch):
    """The seam: torch's CUDA allocator and current stream replaced by the
    mock's memory and fake streams (MockDevice.install); libkp's entry points
    wrapped to record what pykp passes."""
    streams_asked = mock.install(monkeypatch, STREAM_BASE)
    calls = Calls()
    real_exec, real_joint = _lib._plan_exec, _lib._plan_exec_joint

    def plan_exec(plan, args, nargs, out, out_index, opt):
        calls.add("plan", args, nargs, [a for a in (out, out_index) if a is not None], opt)
        return real_exec(plan, args, nargs, out, out_index, opt)

    def plan_exec_joint(plan, args, nargs, outs, nouts, opt):
        calls.add("joint", args, nargs, [outs + k * _lib._ARRAY_SIZE for k in range(nouts)], opt)
        return real_joint(plan, args, nargs, outs, nouts, opt)

    monkeypatch.setattr(_lib, "_plan_exec", plan_exec)
    monkeypatch.setattr(_lib, "_plan_exec_joint", plan_exec_joint)
    mock.reset()
    calls.streams_asked = streams_asked
    return calls


def on_device(mock, shape, dtype=torch.float32, index=0, requires_grad=False):
    return mock.tensor(torch.rand(shape, dtype=torch.float64).to(dtype), index, requires_grad)


def assert_all_on(calls, index, n_calls=None):
    """Every array of every recorded call on cuda:index, with that device's stream."""
    assert calls.records, "libkp was not called"
    if n_calls is not None:
        assert len(calls.records) == n_calls, calls.records
    for r in calls.records:
        assert r["stream"] == STREAM_BASE + index, r
        for a in r["args"] + r["outs"]:
            if a is not None:
                assert (a["device"], a["device_id"]) == (KP_DEVICE_CUDA, index), r


def assert_fake_on(t, index=0):
    assert isinstance(t, FakeCuda), "%s allocated on the host, not on the device" % type(t).__name__
    assert t.device == torch.device("cuda", index)


@pytest.fixture(autouse=True, scope="module")
def _nvrtc(mock):
    """libkp compiles the kernels with NVRTC before the mock 'launches' them:
    without NVRTC these tests cannot run (as tests/gpu/test_gpu_cuda_mock.c)."""
    f = _lib.formula(("parse", "Sum_Reduction(x,1)", ("x = Vi(1)",)))
    d = mock.empty((4, 1), torch.float32)
    o = mock.empty((4, 1), torch.float32)
    try:
        f.plan(0).exec([_arrays.tensor_desc(d)], _arrays.tensor_desc(o), None, -1, 1)
    except _lib.KpError as e:
        if "NVRTC" in str(e):
            pytest.skip("no NVRTC (libnvrtc.so): libkp's CUDA engine cannot compile kernels: %s" % e)
        raise


# ----------------------------------------------------------------- forward


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_runs_on_the_cuda_engine_on_the_device_and_stream(mock, device, dtype):
    x, y, b = on_device(mock, (100, 3), dtype), on_device(mock, (80, 3), dtype), on_device(mock, (80, 1), dtype)
    g = pykp.Genred(*GAUSS, reduction_op="Sum", axis=1)
    out = g(x, y, 2.0, b)  # the parameter from a Python number: built on the device by pykp
    assert_fake_on(out)
    assert out.shape == (100, 1) and out.dtype == dtype
    assert_all_on(device, 0, n_calls=1)
    rec = device.records[0]
    assert [a["ptr"] for a in rec["args"][:2]] == [x.data_ptr(), y.data_ptr()]  # in place, no copy
    assert rec["outs"][0]["ptr"] == out.data_ptr()
    assert device.streams_asked == [0]
    assert mock.launches() == ["kp_reduce"]
    assert mock.streams() == [STREAM_BASE], "the driver did not get torch's stream: %s" % mock.streams()


def test_strided_inputs_are_passed_as_they_are(mock, device):
    base = on_device(mock, (3, 100))
    x = base.t()  # (100, 3), strides (1, 100): libkp gathers it on the device
    assert_fake_on(x)
    y, b = on_device(mock, (80, 3)), on_device(mock, (80, 1))
    pykp.Genred(*GAUSS, axis=1)(x, y, mock.tensor(torch.tensor([2.0], dtype=torch.float32)), b)
    rec = device.records[0]
    assert rec["args"][0]["strides"] == (1, 100) and rec["args"][0]["ptr"] == base.data_ptr()
    assert_all_on(device, 0, n_calls=1)
    launches = mock.launches()
    assert "kp_gather4" in launches and launches.index("kp_gather4") < launches.index("kp_reduce"), launches
    # the gathered copy is a stream-ordered temporary: allocated, used and freed on torch's stream
    assert mock.streams() and set(mock.streams()) == {STREAM_BASE}, mock.streams()


def test_index_outputs_are_allocated_on_the_device(mock, device):
    x, y = on_device(mock, (50, 2)), on_device(mock, (40, 2))
    vals, idx = pykp.Genred("SqDist(x,y)", ["x = Vi(2)", "y = Vj(2)"], reduction_op="Min_ArgMin", axis=1)(x, y)
    assert_fake_on(vals)
    assert_fake_on(idx)
    assert idx.dtype == torch.int64 and idx.shape == (50, 1)
    assert_all_on(device, 0, n_calls=1)
    assert [o["ptr"] for o in device.records[0]["outs"]] == [vals.data_ptr(), idx.data_ptr()]
    assert "kp_reduce" in mock.launches()


def test_device_index_and_its_stream_reach_libkp(mock, device):
    # the mock driver has one device: libkp's answer for cuda:1 proves the ordinal got there
    x, y, b = (on_device(mock, s, index=1) for s in ((10, 3), (8, 3), (8, 1)))
    g = pykp.Genred(*GAUSS, axis=1)
    with pytest.raises(NotImplementedError, match="no CUDA device 1"):
        g(x, y, 2.0, b)
    assert_all_on(device, 1, n_calls=1)
    assert device.streams_asked == [1]
    assert mock.launches() == []


def test_host_tensors_still_run_on_the_cpu_with_the_mock_loaded(mock, device):
    g = pykp.Genred(*GAUSS, axis=1)
    g(on_device(mock, (10, 3)), on_device(mock, (8, 3)), 2.0, on_device(mock, (8, 1)))  # CUDA engine loaded
    mock.reset()
    device.records.clear()
    x, y, b = torch.rand(30, 3, dtype=torch.float64), torch.rand(20, 3, dtype=torch.float64), torch.rand(20, 1, dtype=torch.float64)
    out = g(x, y, 2.0, b)
    ref = (torch.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) * 2.0) @ b)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    assert type(out) is torch.Tensor and out.device.type == "cpu"
    a = g(x.numpy(), y.numpy(), np.array([2.0]), b.numpy())
    np.testing.assert_allclose(a, ref.numpy(), rtol=1e-12)
    assert device.records and all(r["stream"] == 0 for r in device.records)
    assert all(a["device"] == KP_DEVICE_CPU for a in device.arrays())
    assert mock.launches() == []


# ----------------------------------------------------------------- backward


@pytest.mark.parametrize("joint", [True, False], ids=["joint", "separate"])
def test_backward_runs_on_the_device(mock, device, monkeypatch, joint):
    monkeypatch.setattr(genred, "JOINT_BACKWARD", joint)
    x, y, b = (on_device(mock, s, requires_grad=True) for s in ((600, 3), (500, 3), (500, 1)))
    g = pykp.Genred(*GAUSS, axis=1)
    out = g(x, y, 2.0, b)
    assert_fake_on(out)
    device.records.clear()
    mock.reset()
    G = on_device(mock, (600, 1))
    gx, gy, gb = torch.autograd.grad(out, [x, y, b], G)
    for t, ref in ((gx, x), (gy, y), (gb, b)):
        assert_fake_on(t)
        assert t.shape == ref.shape and t.dtype == ref.dtype
    kinds = [r["kind"] for r in device.records]
    assert kinds == (["joint"] if joint else ["plan"] * 3), kinds
    assert_all_on(device, 0)
    assert mock.launches().count("kp_reduce") == 3  # on the device: the gradients one after the other


@pytest.mark.parametrize("reduction", ["LogSumExp", "Min"])
def test_backward_of_reductions_needing_the_output_or_indices(mock, device, reduction):
    # LogSumExp: the gradients take the forward output; Min: the forward's
    # indices (int64, on the device) turned into numbers by pykp
    x, y = on_device(mock, (40, 2), requires_grad=True), on_device(mock, (30, 2), requires_grad=True)
    g = pykp.Genred("SqDist(x,y)", ["x = Vi(2)", "y = Vj(2)"], reduction_op=reduction, axis=1)
    out = g(x, y)
    gx, gy = torch.autograd.grad(out, [x, y], on_device(mock, (40, 1)))
    assert_fake_on(gx)
    assert_fake_on(gy)
    assert_all_on(device, 0)
    assert len(device.records) >= 2


def test_parameter_gradient_on_the_device(mock, device):
    x, y, b = on_device(mock, (50, 3)), on_device(mock, (40, 3)), on_device(mock, (40, 1))
    s = on_device(mock, (1,), requires_grad=True)
    out = pykp.Genred(*GAUSS, axis=1)(x, y, s, b)
    mock.reset()
    (gs,) = torch.autograd.grad(out, [s], on_device(mock, (50, 1)))
    assert_fake_on(gs)
    assert gs.shape == (1,)
    assert_all_on(device, 0)
    assert any(k.startswith("kp_sumrows") for k in mock.launches()), mock.launches()


def test_second_order_on_the_device(mock, device):
    x, y, b = (on_device(mock, s, requires_grad=True) for s in ((600, 3), (500, 3), (500, 1)))
    out = pykp.Genred(*GAUSS, axis=1)(x, y, 2.0, b)
    (gx,) = torch.autograd.grad(out, [x], on_device(mock, (600, 1)), create_graph=True)
    assert_fake_on(gx)
    mock.reset()
    device.records.clear()
    hx, hy, hb = torch.autograd.grad(gx, [x, y, b], on_device(mock, (600, 3)))
    for t in (hx, hy, hb):
        assert_fake_on(t)
    assert "joint" in [r["kind"] for r in device.records]  # the gradients of the gradient, together
    assert_all_on(device, 0)
    assert mock.launches().count("kp_reduce") >= 3


# ----------------------------------------------------------------- LazyTensor, kernels


def test_lazytensor_on_the_device(mock, device):
    x, y, b = on_device(mock, (60, 3)), on_device(mock, (50, 3)), on_device(mock, (50, 2))
    x_i, y_j = pykp.LazyTensor(x[:, None, :]), pykp.LazyTensor(y[None, :, :])
    D = ((x_i - y_j) ** 2).sum(-1)
    a = (-D * 0.25).exp() @ b  # 0.25: a parameter built by pykp on the device
    assert_fake_on(a)
    assert a.shape == (60, 2)
    nn = D.argKmin(3, dim=1)
    assert_fake_on(nn)
    assert nn.dtype == torch.int64 and nn.shape == (60, 3)
    assert_all_on(device, 0, n_calls=2)
    assert mock.launches().count("kp_reduce") == 2


def test_kernel_product_on_the_device(mock, device):
    x, y, b = on_device(mock, (60, 3)), on_device(mock, (50, 3)), on_device(mock, (50, 1))
    v = pykp.kernel_product(x, y, b, "gaussian", sigma=0.5)  # sigma: a parameter made on the device
    assert_fake_on(v)
    assert_all_on(device, 0, n_calls=1)
    with pytest.raises(RuntimeError, match="sigma is on cpu but the data are on cuda:0"):
        pykp.kernel_product(x, y, b, "gaussian", sigma=torch.tensor(0.5, dtype=torch.float32))
    assert len(device.records) == 1
