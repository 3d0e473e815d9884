"""
_ranges.py -- KeOps' block-sparse `ranges` 6-tuple as libkp's kp_ranges.

    ranges = (ranges_i, slices_i, redranges_j, ranges_j, slices_j, redranges_i)

ranges_* and redranges_* are (C, 2) [start, end) index arrays, slices_* (C,)
ends of each cluster's list (pykp.cluster.from_matrix builds the tuple). A
reduction over j (axis 1) reads the first three, one over i (axis 0) the last
three; libkp picks them from the formula's axis, so the gradients that reduce
over the other axis (of the j variables of an axis-1 reduction) take the same
tuple and read the transposed triple. NumPy arrays or CPU tensors, int32 or
int64 (one dtype for all six, else all are converted to int64); with batch
dimensions the indices count flattened (batch, point) rows, as in KeOps.
libkp checks the values (sorted, disjoint, in bounds) and names the first bad
entry; this module checks types and shapes and keeps the arrays alive.
"""
import ctypes
import struct
from typing import Any, Optional, Sequence

import numpy as np

from ._lib import KpTypeError, KpValueError, constant

try:
    import torch

    _NO_FUNCTORCH = getattr(torch._C, "_DisableFuncTorch", None)
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None
    _NO_FUNCTORCH = None

NAMES = ("ranges_i", "slices_i", "redranges_j", "ranges_j", "slices_j", "redranges_i")


def _at(field):
    return constant("offsetof(kp_ranges,%s)" % field)


_SIZE = constant("sizeof(kp_ranges)")
_INDEX_SIZE = struct.Struct("@i")
_PTR = struct.Struct("@P")
_I64 = struct.Struct("@q")
_PTR_AT = [_at(n) for n in NAMES]
_COUNT_AT = [_at(n) for n in ("n_ranges_i", "n_slices_i", "n_redranges_j", "n_ranges_j", "n_slices_j", "n_redranges_i")]


def _as_numpy(a: Any, name: str) -> np.ndarray:
    """A contiguous NumPy view (or copy) of one array of the tuple."""
    if torch is not None and isinstance(a, torch.Tensor):
        if a.device.type != "cpu":
            raise KpValueError(
                "pykp: ranges: %s is on %s; libkp reads the ranges from host memory (also for CUDA data): pass CPU "
                "tensors or NumPy arrays" % (name, a.device)
            )
        if a.dtype not in (torch.int32, torch.int64):
            raise KpTypeError("pykp: ranges: %s must be int32 or int64, got %s" % (name, a.dtype))
        # under torch.func transforms (jvp, hessian) even a plain tensor's numpy() sees a
        # wrapper without storage: read it with the transforms off (integers have no gradient)
        if _NO_FUNCTORCH is not None:
            with _NO_FUNCTORCH():
                a = a.numpy()
        else:  # pragma: no cover - torch without functorch
            a = a.numpy()
    elif not isinstance(a, np.ndarray):
        raise KpTypeError("pykp: ranges: %s must be a NumPy array or a torch tensor, got %s" % (name, type(a).__name__))
    if a.dtype not in (np.int32, np.int64):
        raise KpTypeError("pykp: ranges: %s must be int32 or int64, got %s" % (name, a.dtype))
    return a


class Ranges:
    """A packed kp_ranges (`addr`) and the arrays it points to (kept alive)."""

    __slots__ = ("buf", "addr", "arrays")

    def __init__(self, ranges: Sequence[Any]):
        if not isinstance(ranges, (tuple, list)) or len(ranges) != 6:
            got = "%d items" % len(ranges) if isinstance(ranges, (tuple, list)) else type(ranges).__name__
            raise KpTypeError("pykp: ranges must be a 6-tuple (ranges_i, slices_i, redranges_j, ranges_j, slices_j, "
                              "redranges_i), got %r" % got)
        arrays = [_as_numpy(a, n) for a, n in zip(ranges, NAMES)]
        for k, (a, n) in enumerate(zip(arrays, NAMES)):
            want = 1 if k % 3 == 1 else 2
            if a.ndim != want or (want == 2 and a.shape[1] != 2):
                raise KpValueError("pykp: ranges: %s must have shape %s, got %s"
                                   % (n, "(C,)" if want == 1 else "(C, 2)", tuple(a.shape)))
        dt = arrays[0].dtype if all(a.dtype == arrays[0].dtype for a in arrays) else np.dtype(np.int64)
        self.arrays = [np.ascontiguousarray(a, dtype=dt) for a in arrays]
        self.buf = ctypes.create_string_buffer(_SIZE)
        self.addr = ctypes.addressof(self.buf)
        _INDEX_SIZE.pack_into(self.buf, _at("index_size"), dt.itemsize)
        for a, p, c in zip(self.arrays, _PTR_AT, _COUNT_AT):
            _PTR.pack_into(self.buf, p, a.ctypes.data if a.size else 0)
            _I64.pack_into(self.buf, c, a.shape[0])

    def repeated(self, copies: int, ni: int, nj: int) -> "Ranges":
        """The ranges of `copies` problems stacked as an outer batch, each with ni
        (flattened) i rows and nj j rows: copy v shifted by v ni / v nj."""
        ri, si, rj, rj2, sj, ri2 = self.arrays

        def triple(r, sl, c, nr, nc):
            v = np.arange(copies, dtype=r.dtype)
            return (np.concatenate([r + k * nr for k in v]), np.concatenate([sl + k * len(c) for k in v]),
                    np.concatenate([c + k * nc for k in v]))

        return Ranges(triple(ri, si, rj, ni, nj) + triple(rj2, sj, ri2, nj, ni))


def prepare(ranges: Optional[Any]) -> Optional[Ranges]:
    """None, or the Ranges of a 6-tuple (an existing Ranges is returned as is)."""
    if ranges is None or isinstance(ranges, Ranges):
        return ranges
    return Ranges(ranges)
