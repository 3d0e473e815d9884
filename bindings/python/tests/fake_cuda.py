"""Fake CUDA tensors for the tests that run without a GPU (not a test module).

`FakeCuda` is a torch.Tensor subclass whose `device` says cuda:k (and is_cpu
False, is_cuda True) while its data stay where torch put them. pykp sees it as
a CUDA tensor, and torch ops on it (views, reshape, sum) keep the subclass.

- `fake(t, index)` wraps an ordinary CPU tensor: enough for what pykp checks
  before calling libkp (devices, descriptors), never to be handed to libkp's
  CUDA engine (which refuses host pointers).
- `MockDevice` gives fake CUDA tensors whose memory comes from the mock driver
  (tests/gpu/mock_cuda.c, loaded by libkp through KP_CUDA_LIBRARY): "device
  memory" that libkp's CUDA engine accepts; kernels are recorded, not run.
  `MockDevice.device_of(ptr)` tells which fake device a pointer's memory
  belongs to: torch drops the subclass in places (a Function's saved outputs
  come back as plain tensors), so the tests tell devices by memory.
"""
import bisect
import ctypes
import weakref

import torch


class FakeCuda(torch.Tensor):
    _kp_index = 0  # results of torch ops on a FakeCuda keep the class (and this default)

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

    def tensor(self, values, index=0, requires_grad=False):
        """A copy of values (a CPU tensor) in mock device memory, on cuda:index."""
        d = self.empty(values.shape, values.dtype, index)
        with torch.no_grad():
            d.copy_(values)
        if requires_grad:
            d.requires_grad_()
        return d
