"""Fake CUDA tensors for the tests that run without a GPU (not a test module).

`FakeCuda` is a torch.Tensor subclass whose `device` says cuda:k (and is_cpu
False, is_cuda True) while its data stay where torch put them. pykp sees it as
a CUDA tensor, and torch ops on it (views, reshape, sum) keep the subclass.

- `fake(t, index)` wraps an ordinary CPU tensor: enough for what pykp checks
  before calling libkp (devices, descriptors), never to be handed to libkp's
  CUDA engine (which refuses host pointers).
- `MockDevice` gives fake CUDA tensors whose memory comes from the mock driver
  (tests/gpu/mock_cuda.c, loaded by libkp through KP_CUDA_LIBRARY): "device
  memory" that libkp's CUDA engine accepts; kernels are recorded, not run
  (or run, by the CUDA emulator: tests/cuda_emul_cases.py).
  `MockDevice.device_of(ptr)` tells which fake device a pointer's memory
  belongs to: torch drops the subclass in places (a Function's saved outputs
  come back as plain tensors), so the tests tell devices by memory.
  `MockDevice.install(monkeypatch)` points pykp's CUDA seam at that memory.
  `MockDevice.device_grads(t)` is t, whose gradient is copied into that
  memory on its way back: torch's own ops on fake CUDA tensors (a loss, a
  product, gradcheck's grad_outputs) run on the host and give host tensors,
  which on a GPU would have been device tensors.
"""
import bisect
import ctypes
import weakref

import torch

STREAM_BASE = 0x57E40  # fake CUstream of cuda:k: STREAM_BASE + k (the mock records the streams it is given)


class FakeCuda(torch.Tensor):
    _kp_index = 0  # results of torch ops on a FakeCuda keep the class (and this default)

    def to(self, *args, **kwargs):
        """t.to(its own device) is t, as in torch (gradcheck does it); the rest
        is torch's (a real move to CUDA fails: torch has no CUDA here)."""
        if len(args) == 1 and not kwargs and isinstance(args[0], (torch.device, str)):
            if torch.device(args[0]) == self.device:
                return self
        return super().to(*args, **kwargs)

    @property
    def device(self):
        return torch.device("cuda", self._kp_index)

    @property
    def is_cpu(self):
        return False

    @property
    def is_cuda(self):
        return True


def fake(t, index=0):
    """t (a CPU tensor) seen as a tensor on cuda:index (same data, same autograd leaf status)."""
    f = torch.Tensor._make_subclass(FakeCuda, t.detach(), t.requires_grad)
    f._kp_index = index
    return f


class MockDevice:
    """The mock driver's memory as torch tensors. Launch records: `launches()`,
    the streams the driver was given: `streams()`."""

    def __init__(self, path):
        self.lib = lib = ctypes.CDLL(path)  # the library libkp dlopens: same handle, same state
        lib.mock_cuda_launches.restype = ctypes.c_char_p
        lib.mock_cuda_launches.argtypes = []
        lib.mock_cuda_streams.restype = ctypes.c_char_p
        lib.mock_cuda_streams.argtypes = []
        lib.mock_cuda_reset.restype = None
        lib.mock_cuda_reset.argtypes = []
        lib.cuMemAlloc_v2.restype = ctypes.c_int
        lib.cuMemAlloc_v2.argtypes = [ctypes.POINTER(ctypes.c_ulonglong), ctypes.c_size_t]
        lib.cuMemFree_v2.restype = ctypes.c_int
        lib.cuMemFree_v2.argtypes = [ctypes.c_ulonglong]
        self._starts = []  # sorted start addresses of live allocations
        self._blocks = {}  # start -> (end, device index)

    def device_of(self, ptr):
        """The fake device index of mock memory holding address ptr, or None."""
        k = bisect.bisect_right(self._starts, ptr) - 1
        if k >= 0:
            end, index = self._blocks[self._starts[k]]
            if ptr < end:
                return index
        return None

    def _free(self, p):
        k = bisect.bisect_left(self._starts, p)
        del self._starts[k]
        del self._blocks[p]
        self.lib.cuMemFree_v2(p)

    def launches(self):
        """The kernels launched since the last reset, by name ("kp_reduce", ...)."""
        text = self.lib.mock_cuda_launches().decode()
        return [r.split(" ")[0] for r in text.split(";") if r]

    def streams(self):
        """The CUstream of each launch and stream-ordered memory operation since
        the last reset, as ints (the driver saw them, not just libkp)."""
        text = self.lib.mock_cuda_streams().decode()
        return [int(r.split("@")[1], 16) for r in text.split(";") if r]

    def reset(self):
        self.lib.mock_cuda_reset()

    def empty(self, shape, dtype, index=0):
        """An uninitialized FakeCuda tensor on cuda:index in mock device memory
        (the mock's allocations are zeroed), freed with its storage."""
        shape = tuple(shape)
        n = 1
        for s in shape:
            n *= s
        item = torch.empty((), dtype=dtype).element_size()
        nbytes = max(1, n * item)
        p = ctypes.c_ulonglong()
        if self.lib.cuMemAlloc_v2(ctypes.byref(p), nbytes) != 0:
            raise MemoryError("mock cuMemAlloc failed")
        buf = (ctypes.c_char * nbytes).from_address(p.value)
        bisect.insort(self._starts, p.value)
        self._blocks[p.value] = (p.value + nbytes, index)
        weakref.finalize(buf, self._free, p.value)  # torch's storage holds buf
        t = torch.frombuffer(buf, dtype=torch.uint8)[: n * item].view(dtype).reshape(shape)
        return fake(t, index)

    def install(self, monkeypatch, stream_base=STREAM_BASE):
        """pykp's CUDA seam pointed at the mock: tensors pykp allocates on cuda:k
        (outputs, gradients, indices, parameters from numbers) in mock memory,
        torch's current stream of cuda:k the fake stream_base + k, and a
        tensor's device told by its memory (torch hands some device tensors
        back as plain tensors: saved outputs). Returns the list of the device
        ordinals whose stream pykp asked for."""
        from pykp import _arrays, _lib

        streams_asked = []
        real_where = _arrays.tensor_where

        def torch_empty(shape, dtype, where):
            if where[0] == _lib.KP_DEVICE_CPU:
                return torch.empty(shape, dtype=dtype)
            return self.empty(shape, dtype, where[1])

        def cuda_stream(device_id):
            streams_asked.append(device_id)
            return stream_base + device_id

        def tensor_where(t, what="argument"):
            index = self.device_of(t.data_ptr())
            return (_lib.KP_DEVICE_CUDA, index) if index is not None else real_where(t, what)

        monkeypatch.setattr(_arrays, "torch_empty", torch_empty)
        monkeypatch.setattr(_arrays, "cuda_stream", cuda_stream)
        monkeypatch.setattr(_arrays, "tensor_where", tensor_where)
        return streams_asked

    def device_grads(self, t):
        """t (same values, differentiable), whose gradient is copied into mock
        memory on cuda:index of t on its way back (to any order)."""
        return _ToDevice.apply(t, self)

    def tensor(self, values, index=0, requires_grad=False):
        """A copy of values (a CPU tensor) in mock device memory, on cuda:index."""
        d = self.empty(values.shape, values.dtype, index)
        with torch.no_grad():
            d.copy_(values)
        if requires_grad:
            d.requires_grad_()
        return d


class _ToDevice(torch.autograd.Function):
    """The identity; backward: the gradient copied into mock memory (a copy_
    that stays differentiable, for second-order gradients)."""

    @staticmethod
    def forward(ctx, t, mock):
        ctx.mock = mock
        index = mock.device_of(t.data_ptr())
        ctx.index = index if index is not None else getattr(t, "_kp_index", 0)
        return t.view_as(t)

    @staticmethod
    def backward(ctx, G):
        d = ctx.mock.empty(G.shape, G.dtype, ctx.index)
        d.copy_(G)
        return d, None
