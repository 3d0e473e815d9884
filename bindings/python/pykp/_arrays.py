"""
_arrays.py -- NumPy and PyTorch arrays as kp_array descriptors (the call
itself is _call.py).

Arrays are passed to libkp as they are: data pointer, shape and strides (in
elements), whatever the layout -- transposed, sliced, broadcast with stride 0.
Nothing is copied, converted or moved between devices here; an array libkp
cannot read (another device, an unsupported dtype) is an error.

Devices. A descriptor is (ptr, dtype code, shape, strides, kp_device, device
ordinal). NumPy arrays and CPU tensors are host arrays (KP_DEVICE_CPU); torch
CUDA tensors are device arrays (KP_DEVICE_CUDA, tensor.device.index), which
libkp's CUDA engine reads in place. All arrays of one call, outputs included,
are on one device ("where": (kp_device, ordinal)); outputs are allocated there
by torch, and device work is queued on torch's current stream of that device.
The functions that touch torch's device side are the seam the tests replace
to run without a GPU: `tensor_where` (a tensor's device), `cuda_stream`
(torch's current stream) and `torch_empty` (every tensor pykp creates is
allocated there: outputs, gradients, indices, parameters from numbers).

Why torch's caching allocator is safe with libkp's asynchronous calls: libkp
queues its kernels on the current stream and returns; the caller's tensors
(inputs) stay referenced for the whole call, and outputs are allocated by torch
on the current stream. When any of them is freed later, the caching allocator
hands its block only to later allocations made on that same stream (a tensor
allocated on another stream needs `record_stream`, as for any torch op), whose
work is queued after libkp's kernels: the memory cannot be reused before libkp
is done with it. This is torch's own rule for ops on the current stream.
libkp's own temporaries are stream-ordered too (kp.h, KP_ENGINE_CUDA).
"""
import ctypes
import platform

import numpy as np

from ._lib import (
    KP_DEVICE_CPU,
    KP_COMPLEX64,
    KP_COMPLEX128,
    KP_DEVICE_CUDA,
    KP_FLOAT16,
    KP_FLOAT32,
    KP_FLOAT64,
    KP_INT64,
    KpRuntimeError,
    KpTypeError,
    KpValueError,
)

try:  # torch is optional
    import torch

    _TorchTensor = torch.Tensor
    _TORCH_CODES = {torch.float32: KP_FLOAT32, torch.float64: KP_FLOAT64, torch.int64: KP_INT64,
                    torch.float16: KP_FLOAT16, torch.complex64: KP_COMPLEX64, torch.complex128: KP_COMPLEX128}
    _TORCH_DTYPES = {v: k for k, v in _TORCH_CODES.items()}
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None

    class _TorchTensor:  # never an instance of anything
        pass

    _TORCH_CODES = {}
    _TORCH_DTYPES = {}

_NP_CODES = {np.dtype(np.float32): KP_FLOAT32, np.dtype(np.float64): KP_FLOAT64, np.dtype(np.int64): KP_INT64,
             np.dtype(np.float16): KP_FLOAT16, np.dtype(np.complex64): KP_COMPLEX64,
             np.dtype(np.complex128): KP_COMPLEX128}
_NP_DTYPES = {v: k.type for k, v in _NP_CODES.items()}
DTYPE_NAMES = {KP_FLOAT32: "float32", KP_FLOAT64: "float64", KP_INT64: "int64", KP_FLOAT16: "float16",
               KP_COMPLEX64: "complex64", KP_COMPLEX128: "complex128"}
COMPLEX_CODES = (KP_COMPLEX64, KP_COMPLEX128)
# The real dtype of the same precision (complex: of its parts; float16 calls
# also take float32 arrays, e.g. the Min/Max indices a gradient reads).
REAL_CODE = {KP_FLOAT32: KP_FLOAT32, KP_FLOAT64: KP_FLOAT64, KP_FLOAT16: KP_FLOAT32, KP_COMPLEX64: KP_FLOAT32,
             KP_COMPLEX128: KP_FLOAT64}


def _data_offset():
    """Byte offset of the data pointer inside a NumPy array object (the `data`
    field of PyArrayObject, right after the object header, which NumPy's own C
    macros read directly), checked against `ndarray.ctypes.data` on arrays of
    several layouts; None where it does not hold (another interpreter, another
    object header)."""
    if platform.python_implementation() != "CPython":
        return None
    off = 2 * ctypes.sizeof(ctypes.c_void_p)  # ob_refcnt, ob_type
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    probes = (base, base[1:], base[:, 2:], base.T, base[::2, 1::3], np.ones(3, np.float32))
    try:
        if all(ctypes.c_void_p.from_address(id(a) + off).value == a.ctypes.data for a in probes):
            return off
    except (ValueError, OverflowError):  # pragma: no cover - id() not an address
        pass
    return None  # pragma: no cover - depends on the interpreter


_DATA_OFFSET = _data_offset()

if _DATA_OFFSET is not None:

    def np_data(a, _at=ctypes.c_void_p.from_address, _off=_DATA_OFFSET):
        """The data pointer of a NumPy array, read from the array object:
        `a.ctypes.data` builds a ctypes helper object per call (microseconds,
        several per reduction)."""
        return _at(id(a) + _off).value or 0

else:  # pragma: no cover - interpreters without CPython's object layout

    def np_data(a):
        return a.ctypes.data


_ELEMENT_STRIDES = {}  # (byte strides, item size) -> strides in elements


def element_strides(strides, item):
    """NumPy byte strides in elements (a tuple), or None when one is not a
    multiple of the item size. Memoized: the same few layouts come back on
    every call."""
    key = (strides, item)
    st = _ELEMENT_STRIDES.get(key)
    if st is None:
        if any(s % item for s in strides):
            return None
        st = tuple(s // item for s in strides)
        if len(_ELEMENT_STRIDES) >= 4096:
            _ELEMENT_STRIDES.clear()
        _ELEMENT_STRIDES[key] = st
    return st


def call_code(codes):
    """The dtype code of a call whose arrays have these codes: complex when one
    is complex, float16 when one is float16 (libkp takes the real arrays of the
    same precision alongside, and reports any other mix), else the first."""
    first = None
    for c in codes:
        if first is None:
            first = c
        if c in COMPLEX_CODES or (c == KP_FLOAT16 and first not in COMPLEX_CODES):
            first = c
    return first


def compatible(c, code):
    """Whether arrays of codes c and code may meet in one call (same precision)."""
    return c == code or REAL_CODE.get(c) == code or REAL_CODE.get(code) == c


def is_tensor(x):
    return isinstance(x, _TorchTensor)


def is_array(x):
    return isinstance(x, (np.ndarray, _TorchTensor))


def dtype_code(x, what="argument"):
    """kp dtype code of a float16/32/64 or complex64/128 array; TypeError for anything else."""
    if isinstance(x, _TorchTensor):
        code = _TORCH_CODES.get(x.dtype)
    elif isinstance(x, np.ndarray):
        code = _NP_CODES.get(x.dtype)
    else:
        raise KpTypeError("pykp: %s is a %s, expected a NumPy array or a torch tensor" % (what, type(x).__name__))
    if code is None or code == KP_INT64:
        raise KpTypeError(
            "pykp: %s has dtype %s; libkp takes float16, float32, float64, complex64 and complex128" % (what, x.dtype)
        )
    return code


CPU = (KP_DEVICE_CPU, 0)  # "where" of host arrays


def device_name(where):
    """'cpu' or 'cuda:k', as torch writes devices."""
    return "cpu" if where[0] == KP_DEVICE_CPU else "cuda:%d" % where[1]


# ----------------------------------------------------------------- the CUDA seam
# The only places where pykp asks torch where a tensor is, allocates tensors or
# asks for a stream. Tests without a GPU replace tensor_where, cuda_stream and
# torch_empty (tests/cuda_mock_cases.py).


def tensor_where(t, what="argument"):
    """(kp_device, ordinal) of a torch tensor."""
    dev = t.device
    typ = dev.type
    if typ == "cpu":
        return CPU
    if typ == "cuda":
        idx = dev.index
        return (KP_DEVICE_CUDA, idx if idx is not None else torch.cuda.current_device())
    raise KpRuntimeError(
        "pykp: %s is on device '%s'; libkp reads host memory (CPU) and CUDA device memory only. Move it "
        "with .cpu() or .cuda() (pykp never copies between devices implicitly)." % (what, dev)
    )


def where_of(x, what="argument"):
    """(kp_device, ordinal) of an array: CPU for NumPy arrays and CPU tensors,
    (KP_DEVICE_CUDA, index) for CUDA tensors; other devices (meta, mps, ...)
    are a KpRuntimeError."""
    if isinstance(x, _TorchTensor):
        return tensor_where(x, what)
    return CPU


def check_same_device(named):
    """named: (name, array) pairs (non-arrays skipped). Returns the common
    device ("where"; CPU when there is no array), or raises KpRuntimeError
    naming the first two arguments on different devices: pykp never copies
    between devices."""
    first = None
    for name, a in named:
        if not is_array(a):
            continue
        w = where_of(a, name)
        if first is None:
            first = (name, w)
        elif w != first[1]:
            raise KpRuntimeError(
                "pykp: arguments on different devices: %s is on %s, %s on %s. pykp never copies between devices: "
                "move them to one device first (e.g. with .to(%s))"
                % (first[0], device_name(first[1]), name, device_name(w), _device_expr(first[1]))
            )
    return first[1] if first is not None else CPU


def _device_expr(where):
    return "'cpu'" if where[0] == KP_DEVICE_CPU else "'cuda:%d'" % where[1]


def tensor_desc(t, what="argument"):
    """(data pointer, dtype code, shape, strides in elements, kp_device,
    device ordinal) of a torch tensor: a CUDA tensor's data_ptr() is a device
    pointer, which libkp's CUDA engine reads in place."""
    w = tensor_where(t, what)
    return (t.data_ptr(), _TORCH_CODES[t.dtype], tuple(t.shape), t.stride(), w[0], w[1])


def cuda_stream(device_id):
    """The CUstream (an int) of torch's current stream on CUDA device device_id:
    libkp queues device work there, ordered with the torch ops around it
    (also in backward passes, which torch runs on the forward's stream)."""
    return torch.cuda.current_stream(device_id).cuda_stream


def torch_empty(shape, dtype, where):
    """An uninitialized torch tensor on device where (allocated by torch's
    caching allocator on the current stream of that device)."""
    if where[0] == KP_DEVICE_CPU:
        # sizes as separate arguments: torch parses them faster than one tuple
        return torch.empty(*shape, dtype=dtype) if shape else torch.empty((), dtype=dtype)
    return torch.empty(shape, dtype=dtype, device=torch.device("cuda", where[1]))


def torch_cast(t, dtype):
    """t converted to dtype in a new tensor on t's device (through torch_empty,
    like every tensor pykp creates)."""
    r = torch_empty(tuple(t.shape), dtype, tensor_where(t))
    r.copy_(t)
    return r


def stream_for(where):
    """The CUstream libkp gets for a call on device where (0 for host arrays)."""
    return 0 if where[0] == KP_DEVICE_CPU else cuda_stream(where[1])


def describe(x, what="argument"):
    """(data pointer, dtype code, shape, strides in elements, kp_device, ordinal) of an array."""
    if isinstance(x, _TorchTensor):
        return tensor_desc(x, what)
    item = x.itemsize
    strides = x.strides
    st = element_strides(strides, item)
    if st is None:
        raise KpValueError("pykp: array strides %s are not multiples of its item size %d" % (strides, item))
    return (np_data(x), _NP_CODES[x.dtype], x.shape, st, KP_DEVICE_CPU, 0)


def descs_have_arrays(descs):
    return any(d is not None for d in descs)


def where_of_descs(descs):
    """The device of a call from its (validated, agreeing) descriptors."""
    for d in descs:
        if d is not None:
            return (d[4], d[5])
    return CPU


class NumpyBackend:
    name = "numpy"

    @staticmethod
    def empty(shape, code, where=CPU):  # NumPy arrays are host arrays
        return np.empty(shape, dtype=_NP_DTYPES[code])

    @staticmethod
    def as_real(a):
        """A complex array's interleaved reals: (..., d) complex -> (..., 2 d) real, a view
        (a real array is returned as it is)."""
        return a.view(a.real.dtype) if np.iscomplexobj(a) else a

    @staticmethod
    def describe_out(a):
        st = element_strides(a.strides, a.itemsize)
        if st is None:  # libkp reports the layout it cannot write
            st = tuple(s // a.itemsize for s in a.strides)
        return (np_data(a), _NP_CODES[a.dtype], a.shape, st, KP_DEVICE_CPU, 0)

    @staticmethod
    def scalar_array(values, code, where=CPU):
        return np.asarray(values, dtype=_NP_DTYPES[REAL_CODE[code] if code in COMPLEX_CODES else code]).reshape(-1)

    @staticmethod
    def view(a, shape):
        return a.reshape(shape)


class TorchBackend:
    name = "torch"

    @staticmethod
    def empty(shape, code, where=CPU):
        return torch_empty(shape, _TORCH_DTYPES[code], where)

    @staticmethod
    def as_real(a):
        """A complex tensor's interleaved reals: (..., d) complex -> (..., 2 d) real, a view
        (differentiable; a real tensor is returned as it is)."""
        return torch.view_as_real(a).flatten(-2) if a.is_complex() else a

    @staticmethod
    def describe_out(a):
        if a.is_cpu:  # the common case without asking for a.device
            return (a.data_ptr(), _TORCH_CODES[a.dtype], tuple(a.shape), a.stride(), KP_DEVICE_CPU, 0)
        return tensor_desc(a, "the output")

    @staticmethod
    def scalar_array(values, code, where=CPU):
        """Numbers (parameters written as Python numbers) as a 1-D tensor on
        device where: built on the host, then copied into a tensor allocated
        there (copy_ is stream-ordered on the current stream)."""
        dtype = _TORCH_DTYPES[REAL_CODE[code] if code in COMPLEX_CODES else code]
        if type(values) is list and len(values) == 1 and type(values[0]) is float and (
                dtype is torch.float64 or (dtype is torch.float32 and abs(values[0]) <= 3e38)):
            # LazyTensor's numbers: the tensor torch.tensor makes, faster (torch.full refuses
            # what overflows the dtype, where torch.tensor gives inf: those take torch.tensor)
            t = torch.full((1,), values[0], dtype=dtype)
        else:
            t = torch.tensor(values, dtype=dtype).reshape(-1)
        if where[0] == KP_DEVICE_CPU:
            return t
        d = torch_empty(tuple(t.shape), t.dtype, where)
        d.copy_(t)
        return d

    @staticmethod
    def view(a, shape):
        # reshape == view for the shapes used here (adding/removing unit dims),
        # which works on any strides; falls back to a copy only if it must.
        return a.reshape(shape)


def backend_of(args):
    """The backend of a list of arrays (None entries and scalars ignored).
    Mixing NumPy arrays and torch tensors is a TypeError."""
    be = None
    for a in args:
        if isinstance(a, _TorchTensor):
            b = TorchBackend
        elif isinstance(a, np.ndarray):
            b = NumpyBackend
        else:
            continue
        if be is None:
            be = b
        elif be is not b:
            raise KpTypeError("pykp: arguments mix NumPy arrays and torch tensors; convert them to one kind")
    return be


def values_layout(shape, code):
    """(shape, dtype code) of the output array libkp writes as shape (...,
    dim) reals for a call of dtype code: a complex call writes dim / 2 complex
    numbers when dim is even (interleaved reals; take be.as_real of it for a
    real result), else dim reals of its precision."""
    if code in COMPLEX_CODES:
        if shape[-1] % 2 == 0:
            return tuple(shape[:-1]) + (shape[-1] // 2,), code
        return tuple(shape), REAL_CODE[code]
    return tuple(shape), code


def empty_values(be, shape, code, where=CPU):
    """A new output array for values libkp reports as shape (..., dim) reals."""
    shape, code = values_layout(shape, code)
    return be.empty(shape, code, where)
