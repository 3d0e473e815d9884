"""
_lib.py -- the ctypes layer over kp.h: library loading, status -> exception,
and thin owners of the three C handles (context, formula, plan).

Nothing here knows about NumPy or PyTorch: arrays reach `Plan.exec` (and
`JointPlan.exec`, several formulas in one call) as plain descriptors (data
pointer, dtype code, shape, strides in elements, kp_device, CUDA ordinal), with
the CUstream to queue device work on (0: host arrays or the default stream).

Engines. Every context is set to KP_ENGINE_AUTO: host arrays run on the CPU
engine exactly as with the default KP_ENGINE_CPU (the joint pass included),
arrays on a CUDA device run on libkp's CUDA engine, on that device and the
given stream. Nothing CUDA-related is loaded until device arrays arrive.

Ownership. Every handle is freed by a `weakref.finalize` whose callback holds a
strong reference to the owning `Context` object, so a context is never freed
before the formulas and plans made from it (kp.h requires that order), also at
interpreter exit (finalizers then run in reverse creation order).

Threads. kp.h: "a kp_context is used by one thread at a time". The registry
(`registry()`) therefore keeps one context, and one cache of parsed formulas and
plans, per Python thread (threading.local). Calls into libkp go through
ctypes.CDLL, which releases the GIL for the duration of the C call, so other
Python threads run while libkp computes on all cores.
"""
import ctypes
import ctypes.util
import os
import struct
import threading
import weakref

from . import _progress

# ----------------------------------------------------------------- constants
# Every value of kp.h (enums, limits, reduction and status names, struct
# layout) is asked from the library once it is loaded (below the loader).

# ----------------------------------------------------------------- errors


class KpError(Exception):
    """Base class of the errors raised from a libkp status.

    `status` is the kp_status name ("KP_ERR_SHAPE"), `message` libkp's own text.
    Each concrete class also derives from the matching Python built-in
    (ValueError, TypeError, MemoryError, ...), so `except ValueError` works."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status
        self.message = message


class KpValueError(KpError, ValueError):
    """KP_ERR_PARSE, KP_ERR_SHAPE, KP_ERR_ARGUMENT, KP_ERR_TOO_LARGE, and bad input found in Python."""


class KpTypeError(KpError, TypeError):
    """KP_ERR_DTYPE, and unsupported or mixed dtypes found in Python."""


class KpMemoryError(KpError, MemoryError):
    """KP_ERR_OOM."""


class KpNotImplementedError(KpError, NotImplementedError):
    """KP_ERR_UNSUPPORTED (e.g. gradients of Min/Max-type reductions)."""


class KpRuntimeError(KpError, RuntimeError):
    """KP_ERR_NULL, KP_ERR_INTERNAL, and unsupported devices."""


_STATUS_CLASS = {
    "KP_ERR_PARSE": KpValueError,
    "KP_ERR_SHAPE": KpValueError,
    "KP_ERR_DTYPE": KpTypeError,
    "KP_ERR_ARGUMENT": KpValueError,
    "KP_ERR_NULL": KpRuntimeError,
    "KP_ERR_OOM": KpMemoryError,
    "KP_ERR_TOO_LARGE": KpValueError,
    "KP_ERR_UNSUPPORTED": KpNotImplementedError,
    "KP_ERR_INTERNAL": KpRuntimeError,
    "KP_ERR_CANCELLED": KpRuntimeError,  # pykp raises KeyboardInterrupt when it cancelled
}


def error_for(status, message):
    name = _status_name(status)
    name = name.decode() if name else "status %d" % status
    cls = _STATUS_CLASS.get(name, KpRuntimeError)
    return cls("libkp: %s" % (message or name), name)


# ----------------------------------------------------------------- loading


def _candidates():
    env = os.environ.get("LIBKP_PATH")
    if env:
        if os.path.isdir(env):
            return [os.path.join(env, n) for n in ("libkp.so", "libkp.so.0", "libkp.dylib", "kp.dll")], env
        return [env], env
    here = os.path.dirname(os.path.abspath(__file__))
    names = [os.path.join(here, n) for n in ("libkp.so", "libkp.so.0", "libkp.dylib", "kp.dll")]
    # a source checkout where `pip install ./bindings/python` has built libkp in-tree
    names.append(os.path.normpath(os.path.join(here, "..", "build", "libkp-cmake", "src", "libkp.so")))
    found = ctypes.util.find_library("kp")
    if found:
        names.append(found)
    return names, None


def _load():
    names, env = _candidates()
    errors = []
    for n in names:
        if os.path.sep in n and not os.path.exists(n):
            continue
        try:
            return ctypes.CDLL(n), n
        except OSError as e:  # pragma: no cover - depends on the system
            errors.append("%s: %s" % (n, e))
    where = ("LIBKP_PATH=%s" % env) if env else "the pykp package directory or the system library path"
    raise ImportError(
        "pykp: cannot load libkp from %s%s. Install pykp with `pip install ./bindings/python` "
        "(it builds libkp), or point LIBKP_PATH at libkp.so." % (where, (": " + "; ".join(errors)) if errors else "")
    )


lib, library_path = _load()

_vp = ctypes.c_void_p
_i64 = ctypes.c_int64


def _proto(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


_context_new = _proto("kp_context_new", ctypes.c_int, ctypes.POINTER(_vp))
_context_free = _proto("kp_context_free", None, _vp)
_context_message = _proto("kp_context_message", ctypes.c_char_p, _vp)
_context_set_num_threads = _proto("kp_context_set_num_threads", ctypes.c_int, _vp, ctypes.c_int)
_context_set_sum_scheme = _proto("kp_context_set_sum_scheme", ctypes.c_int, _vp, ctypes.c_int)
_context_set_math_mode = _proto("kp_context_set_math_mode", ctypes.c_int, _vp, ctypes.c_int)
_formula_parse = _proto(
    "kp_formula_parse", ctypes.c_int, _vp, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_size_t, ctypes.POINTER(_vp)
)
_formula_free = _proto("kp_formula_free", None, _vp)
_formula_reduction = _proto("kp_formula_reduction", ctypes.c_int, _vp)
_formula_axis = _proto("kp_formula_axis", ctypes.c_int, _vp)
_formula_num_args = _proto("kp_formula_num_args", ctypes.c_int, _vp)
_formula_arg = _proto("kp_formula_arg", ctypes.c_int, _vp, ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))
_formula_out_dim = _proto("kp_formula_out_dim", ctypes.c_int, _vp)
_formula_out_index_dim = _proto("kp_formula_out_index_dim", ctypes.c_int, _vp)
_formula_node_count = _proto("kp_formula_node_count", ctypes.c_size_t, _vp)
_formula_print = _proto("kp_formula_print", ctypes.c_size_t, _vp, ctypes.c_char_p, ctypes.c_size_t)
_formula_grad = _proto("kp_formula_grad", ctypes.c_int, _vp, _vp, ctypes.c_int, ctypes.POINTER(_vp))
_formula_softmax_lse = _proto("kp_formula_softmax_lse", ctypes.c_int, _vp, _vp, ctypes.POINTER(_vp))
_formula_unsummed = _proto("kp_formula_unsummed", ctypes.c_int, _vp, _vp, ctypes.POINTER(_vp))
_formula_sums_rows = _proto("kp_formula_sums_rows", ctypes.c_int, _vp)
_formula_with_indices = _proto("kp_formula_with_indices", ctypes.c_int, _vp, _vp, ctypes.POINTER(_vp))
_plan_new = _proto("kp_plan_new", ctypes.c_int, _vp, _vp, ctypes.c_int, ctypes.POINTER(_vp))
_plan_free = _proto("kp_plan_free", None, _vp)
_plan_exec = _proto("kp_plan_exec", ctypes.c_int, _vp, _vp, ctypes.c_size_t, _vp, _vp, _vp)
_plan_output_shape = _proto("kp_plan_output_shape", ctypes.c_int, _vp, _vp, ctypes.c_size_t, _vp, _vp, _vp, _vp)
_status_string = _proto("kp_status_string", ctypes.c_char_p, ctypes.c_int)
_status_name = _proto("kp_status_name", ctypes.c_char_p, ctypes.c_int)
_context_set_engine = _proto("kp_context_set_engine", ctypes.c_int, _vp, ctypes.c_int)
_plan_new_joint = _proto(
    "kp_plan_new_joint", ctypes.c_int, _vp, ctypes.POINTER(_vp), ctypes.c_size_t, ctypes.c_int, ctypes.POINTER(_vp)
)
_plan_exec_joint = _proto("kp_plan_exec_joint", ctypes.c_int, _vp, _vp, ctypes.c_size_t, _vp, ctypes.c_size_t, _vp)
_constant = _proto("kp_constant", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_i64))
_reduction_count = _proto("kp_reduction_count", ctypes.c_int)
_reduction_name = _proto("kp_reduction_name", ctypes.c_char_p, ctypes.c_int)
_reduction_flags = _proto("kp_reduction_flags", ctypes.c_uint, ctypes.c_int)


def constant(name):
    """The value of a constant of kp.h (an enum value, a limit, or
    "sizeof(kp_array)" / "offsetof(kp_array,shape)"), from libkp (kp_constant)."""
    v = _i64()
    if _constant(name.encode(), ctypes.byref(v)) != 0:
        raise KpRuntimeError("libkp: this libkp does not know the constant %s" % name, "KP_ERR_ARGUMENT")
    return v.value


KP_OK = constant("KP_OK")
KP_FLOAT32, KP_FLOAT64, KP_INT64 = (constant(n) for n in ("KP_FLOAT32", "KP_FLOAT64", "KP_INT64"))
# Storage dtypes (kp.h kp_dtype): float16 computed in float32, complex as interleaved reals.
KP_FLOAT16, KP_COMPLEX64, KP_COMPLEX128 = (constant(n) for n in ("KP_FLOAT16", "KP_COMPLEX64", "KP_COMPLEX128"))
KP_MAX_DIMS = constant("KP_MAX_DIMS")
KP_MAX_BATCH_DIMS = constant("KP_MAX_BATCH_DIMS")
KP_MAX_JOINT = constant("KP_MAX_JOINT")  # formulas per joint plan
KP_VAR_I, KP_VAR_J, KP_VAR_PARAM = (constant(n) for n in ("KP_VAR_I", "KP_VAR_J", "KP_VAR_PARAM"))
KP_DEVICE_CPU, KP_DEVICE_CUDA = constant("KP_DEVICE_CPU"), constant("KP_DEVICE_CUDA")
KP_ENGINE_CPU, KP_ENGINE_OPENCL, KP_ENGINE_CUDA, KP_ENGINE_AUTO = (
    constant("KP_ENGINE_" + n) for n in ("CPU", "OPENCL", "CUDA", "AUTO")
)
SUM_SCHEMES = {n.lower(): constant("KP_SUM_" + n) for n in ("BLOCK", "KAHAN", "PLAIN", "EXACT")}
MATH_MODES = {n.lower(): constant("KP_MATH_" + n) for n in ("ACCURATE", "FAST")}  # kp_math_mode

# kp_reduction: names in enum order, and what each takes and writes (kp_reduction_flags)
REDUCTIONS = tuple(_reduction_name(r).decode() for r in range(_reduction_count()))
_RED_FLAGS = {n: _reduction_flags(r) for r, n in enumerate(REDUCTIONS)}
K_REDUCTIONS = tuple(n for n in REDUCTIONS if _RED_FLAGS[n] & constant("KP_REDUCTION_TAKES_K"))
_VALUES, _INDICES = constant("KP_REDUCTION_VALUES"), constant("KP_REDUCTION_INDICES")
_SELECTS = constant("KP_REDUCTION_SELECTS")
# Selecting reductions with values only (their forward also computes the indices, for backward)
# and those with both outputs (values, indices).
WITH_INDICES = tuple(n for n in REDUCTIONS if _RED_FLAGS[n] & _SELECTS and _RED_FLAGS[n] & (_VALUES | _INDICES) == _VALUES)
INDEXED = tuple(n for n in REDUCTIONS if _RED_FLAGS[n] & (_VALUES | _INDICES) == _VALUES | _INDICES)


def _at(struct_name, field):
    return constant("offsetof(%s,%s)" % (struct_name, field))


# The struct packers below write kp_array and kp_exec_options at libkp's own offsets.
_ARRAY_SIZE = constant("sizeof(kp_array)")
_DTYPE_OFF, _SHAPE_OFF, _STRIDES_OFF = _at("kp_array", "dtype"), _at("kp_array", "shape"), _at("kp_array", "strides")
_DEVICE_ID_OFF = _at("kp_array", "device_id")
# One pack for the head: data, then dtype, device, ndim (ints, in this order), then the shape.
assert _at("kp_array", "data") == 0 and _at("kp_array", "device") == _DTYPE_OFF + 4
assert _at("kp_array", "ndim") == _DTYPE_OFF + 8
_HEAD = [
    struct.Struct("@P%dxiii%dx%dq" % (_DTYPE_OFF - ctypes.sizeof(_vp), _SHAPE_OFF - _DTYPE_OFF - 12, nd))
    for nd in range(KP_MAX_DIMS + 1)
]
_STRIDES = [struct.Struct("@%dq" % nd) for nd in range(KP_MAX_DIMS + 1)]
_DEVICE_ID = struct.Struct("@i")
# kp_exec_options: the fields pykp packs, then the progress pointers (_progress.run).
_OPT_AT = [_at("kp_exec_options", f) for f in ("num_threads", "nx", "ny", "cuda_stream", "struct_size")]
_OPT_SIZE = constant("sizeof(kp_exec_options)")
_OPTS = struct.Struct("@i%dxqqPN" % (_OPT_AT[1] - 4))  # num_threads, nx, ny, cuda_stream, struct_size
_PROGRESS_OFF = _at("kp_exec_options", "progress")  # filled by _progress.run for long calls
assert _OPT_AT[0] == 0 and _OPT_AT[2] == _OPT_AT[1] + 8 and _OPT_AT[3] == _OPT_AT[2] + 8
assert _OPT_AT[4] == _OPT_AT[3] + ctypes.sizeof(_vp) and _OPTS.size == _PROGRESS_OFF
assert _at("kp_exec_options", "progress_user") == _PROGRESS_OFF + ctypes.sizeof(_vp)
_RANGES_OFF = _at("kp_exec_options", "ranges")  # a kp_ranges pointer (pykp._ranges.Ranges.addr) or NULL
_OUTPUT_OFF = _at("kp_exec_options", "output")  # joint plans: which formula kp_plan_output_shape describes
_INT = struct.Struct("@i")
_POINTER = struct.Struct("@P")


def _pairs_of(nx, ny, out):
    """Pairs (i, j) of a call, for _progress: a long call gets the callback."""
    n = (nx if nx > 1 else 1) * (ny if ny > 1 else 1)
    if out is not None:
        shape = out[2]
        if len(shape) > 2:
            for e in shape[:-2]:
                n *= e
    return n


def _pack_array(buf, off, d):
    """Writes descriptor d = (ptr, dtype, shape, strides, device, device_id) as
    the kp_array at byte offset off of buf. The device ordinal is written only
    for device arrays: libkp ignores it for host arrays (kp.h), and the CPU
    path stays as cheap as before."""
    shape = d[2]
    nd = len(shape)
    _HEAD[nd].pack_into(buf, off, d[0], d[1], d[4], nd, *shape)
    _STRIDES[nd].pack_into(buf, off + _STRIDES_OFF, *d[3])
    if d[4]:
        _DEVICE_ID.pack_into(buf, off + _DEVICE_ID_OFF, d[5])


def status_string(status):
    return _status_string(status).decode()


# ----------------------------------------------------------------- settings

_settings = {"num_threads": 0, "sum_scheme": 0, "math_mode": 0}


def set_num_threads(n):
    """Threads used by every later libkp call (0: KP_NUM_THREADS or all cores)."""
    n = int(n)
    if n < 0 or n > 4096:
        raise KpValueError("num_threads must be in [0, 4096], got %d" % n)
    _settings["num_threads"] = n


def get_num_threads():
    return _settings["num_threads"]


def set_sum_scheme(name):
    """Summation of Sum, LogSumExp and SumSoftMaxWeight reductions: 'block'
    (default, compensated), 'kahan' or 'plain' (float32), or 'exact' (float32
    and float64, every engine): every term added exactly and the sum rounded once,
    so results do not depend on the order, the threads or how
    pykp.distributed splits the points (kp.h, kp_sum_scheme)."""
    if name not in SUM_SCHEMES:
        raise KpValueError("sum scheme must be one of %s, got %r" % (sorted(SUM_SCHEMES), name))
    _settings["sum_scheme"] = SUM_SCHEMES[name]


def set_math_mode(name):
    """Math functions of libkp's GPU kernels (CUDA tensors), float32 only:
    'accurate' (default) or 'fast' -- the hardware's approximate exp, log and
    rsqrt (KeOps' use_fast_math; errors in kp.h, kp_math_mode). The CPU engine
    is unaffected."""
    if name not in MATH_MODES:
        raise KpValueError("math mode must be one of %s, got %r" % (sorted(MATH_MODES), name))
    _settings["math_mode"] = MATH_MODES[name]


def get_math_mode():
    return {v: k for k, v in MATH_MODES.items()}[_settings["math_mode"]]


# ----------------------------------------------------------------- handles


class Context:
    """Owns one kp_context (one per thread, see registry())."""

    def __init__(self):
        h = _vp()
        st = _context_new(ctypes.byref(h))
        if st != KP_OK:
            raise error_for(st, "kp_context_new failed")
        self.handle = h.value
        self.scheme = 0
        self.math = 0
        self._finalizer = weakref.finalize(self, _context_free, h.value)
        # AUTO: host arrays on the CPU engine (as KP_ENGINE_CPU), CUDA device
        # arrays on the CUDA engine; it never fails (nothing is loaded here).
        st = _context_set_engine(h.value, KP_ENGINE_AUTO)
        if st != KP_OK:
            raise self.fail(st)

    def message(self):
        m = _context_message(self.handle)
        return m.decode("utf-8", "replace") if m else ""

    def fail(self, status, prefix=""):
        return error_for(status, prefix + self.message())

    def use_scheme(self, scheme):
        if scheme != self.scheme:
            st = _context_set_sum_scheme(self.handle, scheme)
            if st != KP_OK:
                raise self.fail(st)
            self.scheme = scheme

    def use_settings(self, scheme):
        """The summation scheme of this call (None: the global one) and the global math mode."""
        self.use_scheme(_settings["sum_scheme"] if scheme is None else scheme)
        math = _settings["math_mode"]
        if math != self.math:
            st = _context_set_math_mode(self.handle, math)
            if st != KP_OK:
                raise self.fail(st)
            self.math = math


def _free_formula(handle, ctx):  # ctx: kept alive until the formula is freed
    _formula_free(handle)


def _free_plan(handle, ctx):
    _plan_free(handle)


class ArgInfo:
    __slots__ = ("cat", "dim")

    def __init__(self, cat, dim):
        self.cat = cat
        self.dim = dim


class Formula:
    """Owns one kp_formula; memoizes its plans (per dtype) and derived formulas."""

    def __init__(self, ctx, handle):
        self.ctx = ctx
        self.handle = handle
        self._finalizer = weakref.finalize(self, _free_formula, handle, ctx)
        self.reduction = REDUCTIONS[_formula_reduction(handle)]
        self.axis = _formula_axis(handle)
        self.nargs = _formula_num_args(handle)
        self.out_dim = _formula_out_dim(handle)
        self.out_index_dim = _formula_out_index_dim(handle)
        self.sums_rows = bool(_formula_sums_rows(handle))
        args = []
        cat, dim = ctypes.c_int(), ctypes.c_int()
        for k in range(self.nargs):
            if _formula_arg(handle, k, ctypes.byref(cat), ctypes.byref(dim)) == KP_OK:
                args.append(ArgInfo(cat.value, dim.value))
            else:
                args.append(None)  # position not used by the formula
        self.args = args
        self._plans = {}
        self._derived = {}

    @staticmethod
    def parse(ctx, text, aliases=()):
        arr = (ctypes.c_char_p * max(1, len(aliases)))(*[a.encode() for a in aliases])
        h = _vp()
        st = _formula_parse(ctx.handle, text.encode(), arr, len(aliases), ctypes.byref(h))
        if st != KP_OK:
            raise ctx.fail(st, "in %r: " % text if len(text) < 400 else "")
        return Formula(ctx, h.value)

    def text(self):
        n = _formula_print(self.handle, None, 0)
        buf = ctypes.create_string_buffer(n + 1)
        _formula_print(self.handle, buf, n + 1)
        return buf.value.decode()

    def node_count(self):
        return _formula_node_count(self.handle)

    def plan(self, dtype):
        p = self._plans.get(dtype)
        if p is None:
            p = self._plans[dtype] = Plan(self, dtype)
        return p

    def grad(self, k):
        """kp_formula_grad(self, k): d<out, E>/d(argument k), as a formula."""
        key = ("grad", k)
        g = self._derived.get(key)
        if g is None:
            h = _vp()
            st = _formula_grad(self.ctx.handle, self.handle, k, ctypes.byref(h))
            if st != KP_OK:
                raise self.ctx.fail(st)
            g = self._derived[key] = Formula(self.ctx, h.value)
        return g

    def with_indices(self):
        """kp_formula_with_indices: the Min_ArgMin-type version of a Min-type reduction."""
        g = self._derived.get("idx")
        if g is None:
            h = _vp()
            st = _formula_with_indices(self.ctx.handle, self.handle, ctypes.byref(h))
            if st != KP_OK:
                raise self.ctx.fail(st)
            g = self._derived["idx"] = Formula(self.ctx, h.value)
        return g

    def unsummed(self):
        """The same reduction without summing its rows (for a parameter gradient
        whose own gradient needs its per-row forward output)."""
        g = self._derived.get("rows")
        if g is None:
            if not self.sums_rows:
                raise KpRuntimeError("pykp: %r does not sum its rows" % self.text()[:80])
            h = _vp()
            st = _formula_unsummed(self.ctx.handle, self.handle, ctypes.byref(h))
            if st != KP_OK:
                raise self.ctx.fail(st)
            g = self._derived["rows"] = Formula(self.ctx, h.value)
        return g

    def softmax_lse(self):
        g = self._derived.get("lse")
        if g is None:
            h = _vp()
            st = _formula_softmax_lse(self.ctx.handle, self.handle, ctypes.byref(h))
            if st != KP_OK:
                raise self.ctx.fail(st)
            g = self._derived["lse"] = Formula(self.ctx, h.value)
        return g


class _ArgBuffer:
    """A plan's preallocated descriptor buffer (self.buf: the arguments from
    offset 0, _ARRAY_SIZE bytes each, the options at self.opt_off), packed
    with struct.pack_into: cheaper than building ctypes Structures on every
    call. A plan belongs to one thread's registry, so the buffer is never
    shared between concurrent calls. Subclasses give _packed_shapes: libkp's
    output shapes for the packed arguments."""

    _layout = None  # what pack_call packed last, all but the data pointers
    _shapes = None  # and the output shapes for it

    def _adopt(self, ctx, handle, dtype, nargs, nouts):
        """Owns the kp_plan `handle` (freed with this object) and makes the
        buffer: nargs argument descriptors, nouts output descriptors from
        out_off, then the options."""
        self.ctx = ctx
        self.handle = handle
        self.dtype = dtype
        self._finalizer = weakref.finalize(self, _free_plan, handle, ctx)
        self.nargs = nargs
        self.buf = ctypes.create_string_buffer((nargs + nouts) * _ARRAY_SIZE + _OPT_SIZE)
        self.base = ctypes.addressof(self.buf)
        self.out_off = nargs * _ARRAY_SIZE
        self.opt_off = (nargs + nouts) * _ARRAY_SIZE
        self.out_addr = self.base + self.out_off
        self.opt_addr = self.base + self.opt_off

    def pack_call(self, descs, nx, ny, stream=0, ranges=None):
        """pack, then _packed_shapes: the arguments of a call written into the
        buffer, and the output shapes libkp gives for them. When everything
        but the data pointers (dtypes, shapes, strides, devices, sizes,
        stream, ranges, threads) is what the previous pack_call wrote, and
        nothing else packed in between, only the data pointers are written
        and the shapes are the previous answer: kp_plan_output_shape reads no
        data pointer (pykp asks it about storage-less fake tensors), and the
        exec calls check every argument again anyway."""
        layout = (tuple(None if d is None else d[1:] for d in descs), nx, ny, stream, ranges, _settings["num_threads"])
        if layout == self._layout:
            buf = self.buf
            off = 0
            for d in descs:
                if d is not None:
                    _POINTER.pack_into(buf, off, d[0])
                off += _ARRAY_SIZE
            return self._shapes
        self.pack(descs, nx, ny, stream, ranges)
        shapes = self._packed_shapes()
        self._layout, self._shapes = layout, shapes
        return shapes

    def pack(self, descs, nx, ny, stream=0, ranges=None):
        """Writes the arguments and options of the next call into the plan's
        buffer. descs: per argument position (ptr, dtype, shape, strides,
        device, device_id) or None (unused position). stream: the CUstream (an
        int, 0 for NULL) that libkp queues the work on when the arrays are on a
        CUDA device. ranges: a pykp._ranges.Ranges (block-sparse) or None."""
        self._layout = None  # pack_call's memory of the buffer no longer holds
        buf = self.buf
        off = 0
        for d in descs:
            if d is not None:
                _pack_array(buf, off, d)
            off += _ARRAY_SIZE
        _OPTS.pack_into(buf, self.opt_off, _settings["num_threads"], nx, ny, stream, _OPT_SIZE)
        _POINTER.pack_into(buf, self.opt_off + _RANGES_OFF, 0 if ranges is None else ranges.addr)


class Plan(_ArgBuffer):
    """Owns one kp_plan and the argument descriptors it is called with, in its
    buffer (_ArgBuffer): args, out, out_index, options."""

    def __init__(self, formula, dtype):
        ctx = formula.ctx
        h = _vp()
        st = _plan_new(ctx.handle, formula.handle, dtype, ctypes.byref(h))
        if st != KP_OK:
            raise ctx.fail(st)
        self._adopt(ctx, h.value, dtype, formula.nargs, 2)  # values, then indices
        self.idx_off = self.out_off + _ARRAY_SIZE
        self.idx_addr = self.base + self.idx_off
        self.shape_buf = (ctypes.c_int(), (_i64 * KP_MAX_DIMS)(), (_i64 * KP_MAX_DIMS)())
        self.shape_addr = tuple(ctypes.addressof(b) for b in self.shape_buf)

    def output_shapes(self):
        """kp_plan_output_shape for the packed arguments: (values shape,
        indices shape), each a tuple, or None when the reduction has no such
        output."""
        ndim, shape, ishape = self.shape_buf
        st = _plan_output_shape(self.handle, self.base, self.nargs, self.opt_addr, *self.shape_addr)
        if st != KP_OK:
            raise self.ctx.fail(st)
        n = ndim.value
        vals = tuple(shape[:n]) if shape[n - 1] else None
        idx = tuple(ishape[:n]) if ishape[n - 1] else None
        return vals, idx

    _packed_shapes = output_shapes

    def run_packed(self, out, idx, nx, ny, scheme=None):
        """kp_plan_exec on the packed arguments; out, idx: descriptors of the
        outputs, or None."""
        buf = self.buf
        out_addr = idx_addr = None
        if out is not None:
            _pack_array(buf, self.out_off, out)
            out_addr = self.out_addr
        if idx is not None:
            _pack_array(buf, self.idx_off, idx)
            idx_addr = self.idx_addr
        self.ctx.use_settings(scheme)
        st = _progress.run(_plan_exec, (self.handle, self.base, self.nargs, out_addr, idx_addr, self.opt_addr), buf,
                           self.opt_off + _PROGRESS_OFF, _pairs_of(nx, ny, out if out is not None else idx))
        if st != KP_OK:
            raise self.ctx.fail(st)

    def exec(self, descs, out, idx, nx, ny, scheme=None, stream=0, ranges=None):
        """pack, then run_packed: one kp_plan_exec call."""
        self.pack(descs, nx, ny, stream, ranges)
        self.run_packed(out, idx, nx, ny, scheme)


# ----------------------------------------------------------------- partial states
# kp.h's partial reduction states (pykp.distributed is built on them): a state
# is a bytearray of kp_state_info.bytes bytes that travels as it is.


class StateInfo(ctypes.Structure):
    """kp_state_info (kp.h): the size and layout of a state buffer."""

    _fields_ = [("bytes", ctypes.c_size_t), ("nbatch", _i64), ("nrows", _i64), ("nreal", ctypes.c_int),
                ("nidx", ctypes.c_int), ("real_offset", ctypes.c_size_t), ("index_offset", ctypes.c_size_t),
                ("dtype", ctypes.c_int), ("row_offset", _i64)]


_plan_state_info = _proto("kp_plan_state_info", ctypes.c_int, _vp, _vp, ctypes.c_size_t, _vp, ctypes.POINTER(StateInfo))
_plan_state_init = _proto("kp_plan_state_init", ctypes.c_int, _vp, ctypes.POINTER(StateInfo), _vp)
_plan_exec_partial = _proto("kp_plan_exec_partial", ctypes.c_int, _vp, _vp, ctypes.c_size_t, _i64, _vp, ctypes.c_size_t, _vp)
_plan_ranges_check = _proto("kp_plan_ranges_check", ctypes.c_int, _vp, _vp, _i64, _i64, _i64)
_plan_state_merge = _proto("kp_plan_state_merge", ctypes.c_int, _vp, _vp, _vp, ctypes.c_size_t)
_plan_state_finalize = _proto(
    "kp_plan_state_finalize", ctypes.c_int, _vp, _vp, ctypes.c_size_t, _vp, ctypes.c_size_t, _vp, _vp, _vp
)


def _address(buf):
    return ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))


def state_info(plan, descs, nx, ny):
    """kp_plan_state_info: the StateInfo of plan's rows as descs give them."""
    plan.pack(descs, nx, ny)
    plan.ctx.use_settings(None)
    info = StateInfo()
    st = _plan_state_info(plan.handle, plan.base, plan.nargs, plan.opt_addr, ctypes.byref(info))
    if st != KP_OK:
        raise plan.ctx.fail(st)
    return info


def state_new(plan, descs, nx, ny, row_offset=0):
    """A new state (bytearray, every row at the identity) for plan's rows as
    descs give them; row_offset: global index of the first row."""
    info = state_info(plan, descs, nx, ny)
    info.row_offset = row_offset
    state = bytearray(info.bytes)
    st = _plan_state_init(plan.handle, ctypes.byref(info), _address(state))
    if st != KP_OK:
        raise plan.ctx.fail(st)
    return state


def state_fold(plan, descs, offset, state, nx, ny, ranges=None):
    """Folds the reduced points of descs (global indices from offset) into
    state; ranges (a pykp._ranges.Ranges or None): in the part's coordinates."""
    plan.pack(descs, nx, ny, 0, ranges)
    plan.ctx.use_settings(None)
    st = _plan_exec_partial(plan.handle, plan.base, plan.nargs, offset, _address(state), len(state), plan.opt_addr)
    if st != KP_OK:
        raise plan.ctx.fail(st)


def ranges_check(plan, ranges, nbatch, nrows, ncols):
    """kp_plan_ranges_check: raises (ValueError) when ranges (a Ranges) are
    malformed for nbatch batches of nrows output rows and ncols reduced points."""
    st = _plan_ranges_check(plan.handle, ranges.addr, nbatch, nrows, ncols)
    if st != KP_OK:
        raise plan.ctx.fail(st)


def state_merge(plan, a, b):
    """a <- a (+) b (b's points after a's)."""
    plan.ctx.use_settings(None)  # the sum scheme decides the states' layout
    st = _plan_state_merge(plan.handle, _address(a), _address(b), len(a))
    if st != KP_OK:
        raise plan.ctx.fail(st)


def state_finalize(plan, descs, state, out, idx, nx, ny):
    """Writes state's outputs into the arrays out, idx describe (or None)."""
    plan.pack(descs, nx, ny)
    plan.ctx.use_settings(None)
    out_addr = idx_addr = None
    if out is not None:
        _pack_array(plan.buf, plan.out_off, out)
        out_addr = plan.out_addr
    if idx is not None:
        _pack_array(plan.buf, plan.idx_off, idx)
        idx_addr = plan.idx_addr
    st = _plan_state_finalize(plan.handle, plan.base, plan.nargs, _address(state), len(state), out_addr, idx_addr,
                              plan.opt_addr)
    if st != KP_OK:
        raise plan.ctx.fail(st)


def has_joint_plans():
    """True: every libkp pykp loads has joint plans (kp_plan_new_joint)."""
    return True


class Joint:
    """Several formulas of one context that take the same arguments (same
    number; same category and dimension wherever two use a position), run
    together by one joint plan (kp_plan_new_joint): the Sums among them share
    their pairwise values in one pass over the pairs. `args` merges the
    formulas' argument infos (a position is used if any formula uses it), so
    that `_call.prepare` takes a Joint like a Formula."""

    def __init__(self, formulas):
        formulas = tuple(formulas)
        if not 1 <= len(formulas) <= KP_MAX_JOINT:
            raise KpValueError("pykp: a joint plan takes 1 to %d formulas, got %d" % (KP_MAX_JOINT, len(formulas)))
        ctx = formulas[0].ctx
        if any(f.ctx is not ctx for f in formulas):
            raise KpRuntimeError("pykp: the formulas of a joint plan must come from one context")
        self.ctx = ctx
        self.formulas = formulas
        self.nargs = formulas[0].nargs
        args = [None] * self.nargs
        for f in formulas:
            if f.nargs != self.nargs:
                raise KpValueError("pykp: the formulas of a joint plan must take the same number of arguments")
            for k, a in enumerate(f.args):
                if args[k] is None:
                    args[k] = a
        self.args = args
        self._plans = {}
        self.refused = None  # libkp's message if it refused the joint plan

    def plan(self, dtype):
        """The JointPlan for dtype, or None when libkp refuses to make one (then
        the caller runs each formula's own plan: same results, no shared pass)."""
        try:
            return self._plans[dtype]
        except KeyError:
            pass
        try:
            p = JointPlan(self, dtype)
        except KpMemoryError:
            raise
        except KpError as e:  # not expected for the gradients of one formula: keep working without
            self.refused = e.message
            p = None
        self._plans[dtype] = p
        return p


class JointPlan(_ArgBuffer):
    """Owns one joint kp_plan; like Plan, one preallocated descriptor buffer
    (_ArgBuffer: args, then one output per formula, then the options)."""

    def __init__(self, joint, dtype):
        ctx = joint.ctx
        n = len(joint.formulas)
        handles = (_vp * n)(*[f.handle for f in joint.formulas])
        h = _vp()
        st = _plan_new_joint(ctx.handle, handles, n, dtype, ctypes.byref(h))
        if st != KP_OK:
            raise ctx.fail(st)
        self._adopt(ctx, h.value, dtype, joint.nargs, n)  # one output per formula
        self.nouts = n
        self.shape_buf = (ctypes.c_int(), (_i64 * KP_MAX_DIMS)())
        self.shape_addr = tuple(ctypes.addressof(b) for b in self.shape_buf)

    def _packed_shapes(self):
        """Every formula's values shape for the packed arguments (a list)."""
        return [self.output_shape(k) for k in range(self.nouts)]

    def output_shape(self, k):
        """kp_plan_output_shape of formula k for the packed arguments: the
        shape of its values (a tuple)."""
        ndim, shape = self.shape_buf
        _INT.pack_into(self.buf, self.opt_off + _OUTPUT_OFF, k)
        st = _plan_output_shape(self.handle, self.base, self.nargs, self.opt_addr, self.shape_addr[0],
                                self.shape_addr[1], None)
        _INT.pack_into(self.buf, self.opt_off + _OUTPUT_OFF, 0)  # the calls refuse any other value
        if st != KP_OK:
            raise self.ctx.fail(st)
        return tuple(shape[:ndim.value])

    def run_packed(self, outs, nx, ny, scheme=None):
        """kp_plan_exec_joint on the packed arguments; outs: one descriptor per
        formula (its values)."""
        buf = self.buf
        off = self.out_off
        for d in outs:
            _pack_array(buf, off, d)
            off += _ARRAY_SIZE
        self.ctx.use_settings(scheme)
        st = _progress.run(_plan_exec_joint, (self.handle, self.base, self.nargs, self.out_addr, self.nouts, self.opt_addr),
                           buf, self.opt_off + _PROGRESS_OFF, _pairs_of(nx, ny, None))
        if st != KP_OK:
            raise self.ctx.fail(st)


# ----------------------------------------------------------------- registry

# Formulas are interned in their context's node store until the context is freed
# (docs/architecture.md). A thread that parses very many distinct formulas
# therefore starts a fresh context after this many; the old one is freed once
# the last formula or plan made from it is gone.
MAX_FORMULAS_PER_CONTEXT = 4096


class _Registry(threading.local):
    """Per-thread cache: formula key -> Formula, and tuple of formula keys ->
    Joint (joint plans, dropped with the context like the formulas).

    Keys are paths: ("parse", text, aliases) for a parsed formula, and
    (parent_key, "grad", k), (parent_key, "lse"), (parent_key, "idx") or
    (parent_key, "rows") for derived ones (see Formula), so that a
    formula built in one thread can be rebuilt in another (torch may run a
    backward pass in another thread than the forward)."""

    def __init__(self):
        self.ctx = None
        self.formulas = {}
        self.joints = {}

    def joint(self, keys):
        """The Joint of the formulas named by keys (a tuple), cached like formulas."""
        j = self.joints.get(keys)
        if j is None:
            fs = [self.get(k) for k in keys]
            if any(f.ctx is not fs[0].ctx for f in fs):  # a context change in between: build them again
                fs = [self.get(k) for k in keys]
            j = self.joints[keys] = Joint(fs)
        return j

    def get(self, key):
        f = self.formulas.get(key)
        if f is None:
            f = self._build(key)
        return f

    def _build(self, key):
        if key[0] == "parse":
            if self.ctx is None or len(self.formulas) >= MAX_FORMULAS_PER_CONTEXT:
                self.ctx = Context()
                self.formulas = {}
                self.joints = {}
            f = Formula.parse(self.ctx, key[1], key[2])
        else:
            parent = self.get(key[0])
            op = key[1]
            if op == "grad":
                f = parent.grad(key[2])
            elif op == "lse":
                f = parent.softmax_lse()
            elif op == "idx":
                f = parent.with_indices()
            elif op == "rows":
                f = parent.unsummed()
            else:
                raise KpRuntimeError("pykp: unknown derived formula %r" % (op,))
        self.formulas[key] = f
        return f

    def clear(self):
        self.formulas = {}
        self.joints = {}
        self.ctx = None


_registry = _Registry()


def registry():
    return _registry


def formula(key):
    return _registry.get(key)


def joint(keys):
    return _registry.joint(keys)
