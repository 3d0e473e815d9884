"""
_arrays.py -- NumPy and PyTorch arrays as kp_array descriptors, and `launch`,
the one function that runs a formula on arrays.

Arrays are passed to libkp as they are: data pointer, shape and strides (in
elements), whatever the layout -- transposed, sliced, broadcast with stride 0.
Nothing is copied, converted or moved between devices here; an array libkp
cannot read (another device, an unsupported dtype) is an error.
"""
import numpy as np

from ._lib import (
    KP_FLOAT32,
    KP_FLOAT64,
    KP_INT64,
    KP_VAR_I,
    KP_VAR_J,
    KP_VAR_PARAM,
    KpRuntimeError,
    KpTypeError,
    KpValueError,
)

try:  # torch is optional
    import torch

    _TorchTensor = torch.Tensor
    _TORCH_CODES = {torch.float32: KP_FLOAT32, torch.float64: KP_FLOAT64, torch.int64: KP_INT64}
    _TORCH_DTYPES = {KP_FLOAT32: torch.float32, KP_FLOAT64: torch.float64, KP_INT64: torch.int64}
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None

    class _TorchTensor:  # never an instance of anything
        pass

    _TORCH_CODES = {}
    _TORCH_DTYPES = {}

_NP_CODES = {np.dtype(np.float32): KP_FLOAT32, np.dtype(np.float64): KP_FLOAT64, np.dtype(np.int64): KP_INT64}
_NP_DTYPES = {KP_FLOAT32: np.float32, KP_FLOAT64: np.float64, KP_INT64: np.int64}
DTYPE_NAMES = {KP_FLOAT32: "float32", KP_FLOAT64: "float64", KP_INT64: "int64"}


def is_tensor(x):
    return isinstance(x, _TorchTensor)


def is_array(x):
    return isinstance(x, (np.ndarray, _TorchTensor))


def dtype_code(x, what="argument"):
    """kp dtype code of a float32/float64 array; TypeError for anything else."""
    if isinstance(x, _TorchTensor):
        code = _TORCH_CODES.get(x.dtype)
    elif isinstance(x, np.ndarray):
        code = _NP_CODES.get(x.dtype)
    else:
        raise KpTypeError("pykp: %s is a %s, expected a NumPy array or a torch tensor" % (what, type(x).__name__))
    if code is None or code == KP_INT64:
        raise KpTypeError("pykp: %s has dtype %s; libkp computes in float32 or float64" % (what, x.dtype))
    return code


def check_device(t, what="argument"):
    dev = t.device
    if dev.type != "cpu":
        raise KpRuntimeError(
            "pykp: %s is on device '%s', but pykp drives only libkp's CPU engine so far (the CUDA engine is "
            "reachable from C). Move it with .cpu() "
            "(pykp never copies between devices implicitly)." % (what, dev)
        )


def describe(x):
    """(data pointer, dtype code, shape, strides in elements) of an array."""
    if isinstance(x, _TorchTensor):
        if x.device.type != "cpu":
            check_device(x)
        return (x.data_ptr(), _TORCH_CODES[x.dtype], tuple(x.shape), x.stride())
    item = x.itemsize
    strides = x.strides
    st = tuple(s // item for s in strides)
    if any(s % item for s in strides):
        raise KpValueError("pykp: array strides %s are not multiples of its item size %d" % (strides, item))
    return (x.ctypes.data, _NP_CODES[x.dtype], x.shape, st)


class NumpyBackend:
    name = "numpy"

    @staticmethod
    def empty(shape, code):
        return np.empty(shape, dtype=_NP_DTYPES[code])

    @staticmethod
    def describe_out(a):
        return (a.ctypes.data, _NP_CODES[a.dtype], a.shape, tuple(s // a.itemsize for s in a.strides))

    @staticmethod
    def scalar_array(values, code):
        return np.asarray(values, dtype=_NP_DTYPES[code]).reshape(-1)

    @staticmethod
    def view(a, shape):
        return a.reshape(shape)


class TorchBackend:
    name = "torch"

    @staticmethod
    def empty(shape, code):
        return torch.empty(shape, dtype=_TORCH_DTYPES[code])

    @staticmethod
    def describe_out(a):
        return (a.data_ptr(), _TORCH_CODES[a.dtype], tuple(a.shape), a.stride())

    @staticmethod
    def scalar_array(values, code):
        return torch.tensor(values, dtype=_TORCH_DTYPES[code]).reshape(-1)

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


def describe_all(f, args, nx=-1, ny=-1):
    """Descriptors of args (canonical layout) for formula f: returns
    (dtype code, descs, nx, ny, batch shape)."""
    fargs = f.args
    if len(args) != len(fargs):
        raise KpValueError("pykp: the formula takes %d arguments, got %d" % (len(fargs), len(args)))
    descs = []
    code = None
    batch = None
    for k, a in enumerate(args):
        info = fargs[k]
        if info is None:
            descs.append(None)
            continue
        if a is None:
            raise KpValueError("pykp: argument %d is missing" % k)
        d = describe(a)
        if code is None:
            code = d[1]
        descs.append(d)
        shape = d[2]
        cat = info.cat
        nb = len(shape) - (1 if cat == KP_VAR_PARAM else 2)
        if cat == KP_VAR_I:
            if len(shape) >= 2:
                nx = shape[-2]
        elif cat == KP_VAR_J:
            if len(shape) >= 2:
                ny = shape[-2]
        if nb > 0:
            bs = shape[:nb]
            if batch is None:
                batch = list(bs)
            elif len(bs) == len(batch):
                for i, e in enumerate(bs):
                    if e != 1:
                        batch[i] = e
    if code is None:
        raise KpValueError("pykp: the formula has no array argument to take the dtype from")
    if code == KP_INT64:
        raise KpTypeError("pykp: int64 arrays are not valid inputs; libkp computes in float32 or float64")
    return code, descs, nx, ny, (tuple(batch) if batch else ())


def _rows(f, nx, ny):
    """Output rows of formula f: 1 if it sums them, else N (axis 1) or M (axis 0)."""
    if f.sums_rows:
        return 1
    rows = nx if f.axis == 1 else ny
    if rows < 0:
        raise KpValueError("pykp: no %s argument tells the number of output rows" % ("Vi" if f.axis == 1 else "Vj"))
    return rows


def run(f, be, code, descs, nx, ny, bshape, out=None, scheme=None):
    """Allocates the outputs and runs the plan of f for dtype code (scheme:
    float32 summation scheme, None for the global setting)."""
    rows = _rows(f, nx, ny)
    vals = idx = dv = di = None
    if f.out_dim:
        vals = out if out is not None else be.empty(bshape + (rows, f.out_dim), code)
        dv = be.describe_out(vals)
    if f.out_index_dim:
        idx = be.empty(bshape + (rows, f.out_index_dim), KP_INT64)
        di = be.describe_out(idx)
    f.plan(code).exec(descs, dv, di, nx, ny, scheme)
    return vals, idx


def run_joint(joint, be, args, nx=-1, ny=-1, scheme=None):
    """Runs the formulas of a _lib.Joint on args (shared by all, one array per
    argument position or None) in one kp_plan_exec_joint call; returns the
    list of their values (new arrays of the backend), one per formula."""
    fast = fast_describe(joint, args)
    if fast is not None:
        _, code, descs, fnx, fny, _ = fast
        nx = fnx if fnx >= 0 else nx
        ny = fny if fny >= 0 else ny
        bshapes = [()] * len(joint.formulas)
    else:
        code, descs, nx, ny, bshape = describe_all(joint, args, nx, ny)
        if bshape:  # each output has the batch shape of its own formula's arguments
            bshapes = [describe_all(f, args, nx, ny)[4] for f in joint.formulas]
        else:
            bshapes = [()] * len(joint.formulas)
    outs = []
    douts = []
    for f, bs in zip(joint.formulas, bshapes):
        o = be.empty(bs + (_rows(f, nx, ny), f.out_dim), code)
        outs.append(o)
        douts.append(be.describe_out(o))
    plan = joint.plan(code)
    if plan is not None:
        plan.exec(descs, douts, nx, ny, scheme)
    else:  # libkp refused the joint plan: one call per formula
        for f, d in zip(joint.formulas, douts):
            f.plan(code).exec([dd if info is not None else None for dd, info in zip(descs, f.args)], d, None,
                              nx, ny, scheme)
    return outs


def launch(f, args, be, nx=-1, ny=-1, out=None, scheme=None):
    """Runs formula f on args (one array per argument position, None where the
    formula does not use the position) and returns (values, indices), each a
    new array of the backend (or None when the reduction has no such output).

    Arrays must be in the canonical layout libkp takes: Vi/Vj (batch..., n, d),
    Pm (batch..., d) or (d,); arguments with batch dimensions all have the same
    number of them, each of extent 1 or the batch extent. libkp validates all of
    it and reports errors naming the argument."""
    code, descs, nx, ny, bshape = describe_all(f, args, nx, ny)
    return run(f, be, code, descs, nx, ny, bshape, out, scheme)


def fast_describe(f, args):
    """The common case in one pass: every used argument an array of one kind
    and one float dtype, on the CPU, already in libkp's layout without batch
    dimensions (Vi/Vj 2-D, Pm 1-D). Returns (backend, code, descs, nx, ny,
    requires_grad) or None when anything needs the general path."""
    fargs = f.args
    if len(args) != len(fargs):
        return None
    be = None
    code = None
    nx = ny = -1
    rg = False
    descs = []
    for k, a in enumerate(args):
        info = fargs[k]
        if info is None:
            descs.append(None)
            continue
        if isinstance(a, _TorchTensor):
            if be is not TorchBackend and be is not None:
                return None
            be = TorchBackend
            c = _TORCH_CODES.get(a.dtype)
            if c is None or c == KP_INT64 or not a.is_cpu:
                return None
            shape = a.shape
            d = (a.data_ptr(), c, shape, a.stride())
            rg = rg or a.requires_grad
        elif isinstance(a, np.ndarray):
            if be is not NumpyBackend and be is not None:
                return None
            be = NumpyBackend
            c = _NP_CODES.get(a.dtype)
            if c is None or c == KP_INT64:
                return None
            item = a.itemsize
            strides = a.strides
            if any(s % item for s in strides):
                return None
            shape = a.shape
            d = (a.ctypes.data, c, shape, tuple(s // item for s in strides))
        else:
            return None
        if code is None:
            code = c
        elif c != code:
            return None
        cat = info.cat
        if cat == KP_VAR_PARAM:
            if len(shape) != 1:
                return None
        else:
            if len(shape) != 2:
                return None
            if cat == KP_VAR_I:
                nx = shape[0]
            else:
                ny = shape[0]
        descs.append(d)
    if code is None:
        return None
    return be, code, descs, nx, ny, rg
