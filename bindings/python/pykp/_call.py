"""
_call.py -- one reduction call: the user's arrays brought into libkp's layout
and described once (`prepare`), the outputs allocated with the shape libkp
reports for them (kp_plan_output_shape), and the plan run (`run`,
`run_joint`, `launch`).

libkp owns every rule about shapes: how batch dimensions broadcast, how many
rows an output has (N, M, or 1 when a parameter gradient sums its rows), and
the checks of kp_plan_exec. pykp only brings arrays into the layout libkp
takes (views, never copies) and reads the output shape back.
"""
import numpy as np

from . import _arrays
from ._arrays import (
    NumpyBackend,
    TorchBackend,
    _NP_CODES,
    _TORCH_CODES,
    _TorchTensor,
    backend_of,
    describe,
    device_name,
    element_strides,
    is_array,
    np_data,
    stream_for,
    tensor_desc,
    where_of_descs,
)
from ._lib import (
    KP_DEVICE_CPU,
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


class Call:
    """The arguments of one call in libkp's layout: the backend, the dtype
    code, the arrays (views of the user's), their descriptors (None where the
    formula does not use the position), the sizes nx, ny (-1: not told by any
    argument), whether a torch argument requires a gradient, and whether no
    argument has batch dimensions (flat: the call has nx * ny pairs)."""

    __slots__ = ("be", "code", "arrays", "descs", "nx", "ny", "requires_grad", "flat")

    def __init__(self, be, code, arrays, descs, nx, ny, requires_grad, flat=False):
        self.be, self.code, self.arrays, self.descs = be, code, arrays, descs
        self.nx, self.ny, self.requires_grad, self.flat = nx, ny, requires_grad, flat


def prepare(f, args, what="argument", nx=-1, ny=-1):
    """The Call of formula f (a _lib.Formula or Joint) on args, one entry per
    argument position: arrays, Python numbers for parameters, or anything for
    positions f does not use. nx, ny: the sizes to use when no Vi / Vj
    argument tells them. Arrays already in libkp's layout (the common case)
    take one pass; the others are brought there by views first."""
    call = _prepare_fast(f, args) if len(args) == len(f.args) else None
    if call is None:
        be, code, arrays = canonical(f, args, what)
        call = _described(f, be, code, arrays)
    if call.nx < 0:
        call.nx = nx
    if call.ny < 0:
        call.ny = ny
    return call


def _prepare_fast(f, args):
    """The common case in one pass: every used argument an array of one kind
    and one float dtype, on one device (the CPU or one CUDA device), already
    in libkp's layout without batch dimensions (Vi/Vj 2-D, Pm 1-D). None when
    anything needs the general path (which also names the problem)."""
    be = None
    code = None
    nx = ny = -1
    rg = False
    descs = []
    numbers = None  # positions of parameters given as Python numbers (LazyTensor's floats)
    dev = None  # (kp_device, ordinal) of the first tensor
    for info, a in zip(f.args, args):
        if info is None:
            descs.append(None)
            continue
        if isinstance(a, _TorchTensor):
            if be is not TorchBackend and be is not None:
                return None
            be = TorchBackend
            c = _TORCH_CODES.get(a.dtype)
            if c is None or c == KP_INT64:
                return None
            shape = a.shape
            if a.is_cpu:
                d = (a.data_ptr(), c, shape, a.stride(), KP_DEVICE_CPU, 0)
            elif a.is_cuda:
                d = tensor_desc(a)
            else:
                return None
            if dev is None:
                dev = (d[4], d[5])
            elif d[4] != dev[0] or d[5] != dev[1]:
                return None
            rg = rg or a.requires_grad
        elif isinstance(a, np.ndarray):
            if be is not NumpyBackend and be is not None:
                return None
            be = NumpyBackend
            c = _NP_CODES.get(a.dtype)
            if c is None or c == KP_INT64:
                return None
            st = element_strides(a.strides, a.itemsize)
            if st is None:
                return None
            shape = a.shape
            d = (np_data(a), c, shape, st, KP_DEVICE_CPU, 0)
        elif info.cat == KP_VAR_PARAM and isinstance(a, list):
            if numbers is None:
                numbers = []
            numbers.append(len(descs))
            descs.append(None)  # described once the call's backend, dtype and device are known
            continue
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
    arrays = list(args)
    if numbers is not None:
        if code != KP_FLOAT32 and code != KP_FLOAT64:
            return None  # float16 and complex calls take their parameters in another dtype: general path
        for k in numbers:
            made = _number_array(be, arrays[k], code, dev)
            if made is None:
                return None  # the general path names the problem
            arrays[k], descs[k] = made
    return Call(be, code, arrays, descs, nx, ny, rg, True)


# LazyTensor's Python numbers ([x], parameters) as host arrays with their
# descriptors, made once per value and dtype: an expression written with
# numbers builds them again in every call. pykp alone holds these arrays and
# never writes them. Zeros (+0 and -0 are one key), NaNs (never equal to
# themselves) and tensors made under torch.inference_mode are not kept.
_NUMBERS = {}
_NUMBERS_MAX = 256


def _number_array(be, values, code, dev):
    """(array, descriptor) of the parameter `values` (a list of numbers) for
    backend be, dtype code, on device dev (None: the host); None when
    scalar_array refuses them."""
    host = dev is None or dev[0] == KP_DEVICE_CPU
    key = None
    if host and len(values) == 1 and type(values[0]) is float and values[0] == values[0] and values[0] != 0:
        key = (be, code, values[0])
        made = _NUMBERS.get(key)
        if made is not None:
            return made
    try:
        a = be.scalar_array(values, code, _arrays.CPU if dev is None else dev)
    except (TypeError, ValueError):
        return None
    made = (a, describe(a))
    if key is not None:
        if len(_NUMBERS) >= _NUMBERS_MAX:
            _NUMBERS.clear()
        if be is NumpyBackend:
            a.flags.writeable = False
        elif a.is_inference():  # made under torch.inference_mode: autograd could not save it later
            return made
        _NUMBERS[key] = made
    return made


def _described(f, be, code, arrays):
    """The Call of arrays already in libkp's layout (from `canonical`)."""
    descs = []
    nx = ny = -1
    rg = False
    for k, (info, a) in enumerate(zip(f.args, arrays)):
        if info is None:
            descs.append(None)
            continue
        descs.append(describe(a, "argument %d" % k))
        if info.cat == KP_VAR_I:
            nx = a.shape[-2]
        elif info.cat == KP_VAR_J:
            ny = a.shape[-2]
        rg = rg or (isinstance(a, _TorchTensor) and a.requires_grad)
    return Call(be, code, arrays, descs, nx, ny, rg)


def canonical(f, args, what="argument"):
    """Brings user arrays into libkp's layout for formula f, by views only:
    Vi/Vj (batch..., n, d), Pm (batch..., d) or (d,); 1-D Vi/Vj arrays of a
    dimension-1 variable become (n, 1); 0-d parameters become (1,); Python
    numbers become parameter arrays of the common dtype, on the arguments'
    device. Arguments with fewer batch dimensions than the most batched one
    get leading unit dimensions. Arguments on different devices are a
    KpRuntimeError (never copied). Returns (backend, dtype code, list of arrays)."""
    fargs = f.args
    n = len(fargs)
    if len(args) < n:
        raise KpValueError("pykp: the formula takes %d arguments, got %d" % (n, len(args)))
    args = list(args[:n])
    be = backend_of(args)
    if be is None:
        raise KpTypeError("pykp: no NumPy array or torch tensor among the arguments")
    where = _arrays.check_same_device(("%s %d" % (what, k), a) for k, a in enumerate(args) if fargs[k] is not None)
    code = _common_code(fargs, args, what)
    nb = 0
    for k, a in enumerate(args):
        info = fargs[k]
        if info is None:
            continue
        if not is_array(a):
            if info.cat != KP_VAR_PARAM:
                raise KpTypeError("pykp: %s %d must be an array (a %s variable), got %s"
                                  % (what, k, cat_name(info.cat), type(a).__name__))
            a = args[k] = _as_backend_array(a, be, code, where)
        if info.cat == KP_VAR_PARAM:
            if a.ndim == 0:
                a = args[k] = be.view(a, (1,))
        else:
            if a.ndim == 1 and info.dim == 1:
                a = args[k] = be.view(a, (a.shape[0], 1))
            if a.ndim < 2:
                raise KpValueError(
                    "pykp: %s %d (%s(%d)) must have shape (..., n, %d), got %s"
                    % (what, k, cat_name(info.cat), info.dim, info.dim, tuple(a.shape))
                )
            nb = max(nb, a.ndim - 2)
    nb = _fit_parameters(fargs, args, be, nb)
    if nb:
        for k, a in enumerate(args):
            info = fargs[k]
            if info is None:
                continue
            base = 1 if info.cat == KP_VAR_PARAM else 2
            have = a.ndim - base
            if 0 < have < nb:
                args[k] = be.view(a, (1,) * (nb - have) + tuple(a.shape))
    return be, code, args


def _common_code(fargs, args, what):
    """The dtype code shared by the used array arguments (mixed dtypes are a
    KpTypeError naming the argument)."""
    code = None
    for k, a in enumerate(args):
        if fargs[k] is None or not is_array(a):
            continue
        c = _arrays.dtype_code(a, "%s %d" % (what, k))
        if code is None:
            code = c
        elif c != code and _arrays.compatible(c, code):
            # complex and real arrays of one precision meet (KeOps); a float16 call also takes
            # float32 arrays (the indices a Min gradient reads, exact past 2048)
            code = _arrays.call_code((code, c))
        elif c != code:
            raise KpTypeError(
                "pykp: mixed dtypes: %s %d is %s but an earlier one is %s; convert them to one dtype"
                % (what, k, _arrays.DTYPE_NAMES[c], _arrays.DTYPE_NAMES[code])
            )
    if code is None:
        raise KpValueError("pykp: the formula has no array argument to take the dtype from")
    return code


def _fit_parameters(fargs, args, be, nb):
    """Parameters given as (d,), (batch..., d) or (batch..., 1, d): drops the
    unit row dimension and leading unit dimensions beyond the variables' batch
    rank nb. Returns the batch rank of the call."""
    for k, a in enumerate(args):
        info = fargs[k]
        if info is None or info.cat != KP_VAR_PARAM or a.ndim < 2:
            continue
        shape = tuple(a.shape)
        if len(shape) - 1 > nb and shape[-2] == 1:
            shape = shape[:-2] + shape[-1:]
        while len(shape) - 1 > nb and shape[0] == 1:
            shape = shape[1:]
        if shape != tuple(a.shape):
            a = args[k] = be.view(a, shape)
        nb = max(nb, a.ndim - 1)
    return nb


def _as_backend_array(x, be, code, where):
    """A Python number or list of numbers as a 1-D array of the backend and
    dtype, on device where (the other arguments' device)."""
    try:
        return be.scalar_array(x, code, where)
    except (TypeError, ValueError) as e:
        raise KpTypeError("pykp: cannot use %r as a parameter: %s" % (x, e)) from None


def cat_name(cat):
    return ("Vi", "Vj", "Pm")[cat]


def shape_descs(f, code, arrays):
    """Descriptors that carry shapes only (null data), for asking libkp the
    output shape of arrays that have no storage (torch's fake tensors)."""
    descs = []
    for info, a in zip(f.args, arrays):
        if info is None or a is None:
            descs.append(None)
        else:
            shape = tuple(a.shape)
            descs.append((0, code, shape, (0,) * len(shape), KP_DEVICE_CPU, 0))
    return descs


def output_shapes(f, code, descs, nx, ny):
    """(values shape, indices shape) of formula f's outputs for descs (each
    None when the reduction has no such output), as libkp computes them."""
    plan = f.plan(code)
    plan.pack(descs, nx, ny)
    return plan.output_shapes()


def run(f, call, out=None, scheme=None, ranges=None):
    """Runs the plan of formula f on call (a Call) and returns (values,
    indices), new arrays of the call's backend on the arguments' device (or
    None when the reduction has no such output; values go to `out` when it is
    given). scheme: float32 summation scheme, None for the global setting. On
    a CUDA device the work is queued on torch's current stream (see
    _arrays' comment on why the caching allocator is safe)."""
    plan = f.plan(call.code)
    where = where_of_descs(call.descs)
    vshape, ishape = plan.pack_call(call.descs, call.nx, call.ny, stream_for(where), ranges)
    vals = idx = dv = di = None
    be = call.be
    if vshape is not None:
        vals = out if out is not None else _arrays.empty_values(be, vshape, call.code, where)
        dv = be.describe_out(vals)
        if (dv[4], dv[5]) != where and _arrays.descs_have_arrays(call.descs):
            raise KpRuntimeError(
                "pykp: out= is on %s but the arguments are on %s; pykp never copies between devices"
                % (device_name((dv[4], dv[5])), device_name(where))
            )
    if ishape is not None:
        idx = be.empty(ishape, KP_INT64, where)
        di = be.describe_out(idx)
    plan.run_packed(dv, di, call.nx, call.ny, scheme)
    return vals, idx


def launch(f, args, be=None, nx=-1, ny=-1, out=None, scheme=None, ranges=None):
    """prepare + run: formula f on args (one entry per argument position);
    returns (values, indices). be: the backend the caller expects, checked
    against the arguments'."""
    call = prepare(f, args, nx=nx, ny=ny)
    if be is not None and call.be is not be:
        raise KpTypeError("pykp: expected %s arrays, got %s ones" % (be.name, call.be.name))
    return run(f, call, out, scheme, ranges)


def run_joint(joint, args, nx=-1, ny=-1, scheme=None, ranges=None):
    """Runs the formulas of a _lib.Joint on args (shared by all, one array per
    argument position or None) in one kp_plan_exec_joint call; returns the
    list of their values (new arrays of the backend), one per formula."""
    call = prepare(joint, args, nx=nx, ny=ny)
    be, code, descs = call.be, call.code, call.descs
    where = where_of_descs(descs)
    stream = stream_for(where)
    plan = joint.plan(code)
    if plan is not None:  # on a CUDA device libkp runs its formulas one after the other, on the stream
        shapes = plan.pack_call(descs, call.nx, call.ny, stream, ranges)
        outs = [_arrays.empty_values(be, shape, code, where) for shape in shapes]
        plan.run_packed([be.describe_out(o) for o in outs], call.nx, call.ny, scheme)
        return outs
    outs = []  # libkp refused the joint plan: one call per formula
    for f in joint.formulas:
        own = [d if info is not None else None for d, info in zip(descs, f.args)]
        o = _arrays.empty_values(be, output_shapes(f, code, own, call.nx, call.ny)[0], code, where)
        f.plan(code).exec(own, be.describe_out(o), None, call.nx, call.ny, scheme, stream, ranges)
        outs.append(o)
    return outs
