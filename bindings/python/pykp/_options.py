"""
_options.py -- KeOps' reduction keywords, each with its effect in pykp or a
clear error: none is accepted and dropped.

KeOps accepts the same keywords on Genred (construction and call) and on every
LazyTensor reduction. pykp reads them here, once:

    backend, device_id  where to compute: pykp computes where the arrays are
                        and never copies, so these may only confirm it (else
                        KpValueError naming the mismatch); device_id, a GPU
                        choice, does not apply to host arrays;
    sum_scheme          "auto" | "block_sum" | "kahan_scheme" | "direct_sum":
                        libkp's float32 summation for this call and its
                        backward passes; "exact_sum" (a pykp extension):
                        order-independent Sum, LogSumExp and SumSoftMaxWeight
                        in float32 and float64 on the CPU (kp.h,
                        KP_SUM_EXACT);
    dtype_acc, use_double_acc
                        "float64" / True select the compensated (Kahan) sums:
                        libkp keeps float32 accumulators and compensates them;
    use_fast_math       must agree with pykp.set_math_mode for CUDA tensors
                        (the GPU kernels' math mode is a per-process setting);
                        the CPU engine has one math mode, so it has no effect there;
    enable_chunks, rec_multVar_highdim
                        KeOps' code-generation strategies for large dimensions;
                        libkp always tiles the reduced axis and handles every
                        dimension, so they only change how KeOps compiles:
                        booleans, checked, with no effect on libkp;
    dtype, cuda_type    the arrays' dtype: must match it when given;
    ranges              block-sparse reductions: KeOps' 6-tuple (pykp._ranges,
                        docs/ranges.md), on every engine;
    out                 the output array, written in place;
    call                False: return a callable instead of computing.
"""
from . import _arrays, _ranges
from ._lib import KpTypeError, KpValueError, get_math_mode

SCHEMES = {"auto": None, "block_sum": 0, "kahan_scheme": 1, "direct_sum": 2, "exact_sum": 3}

CONSTRUCTION = ("dtype", "cuda_type", "dtype_acc", "use_double_acc", "sum_scheme", "enable_chunks",
                "rec_multVar_highdim", "use_fast_math")
CALL = ("backend", "device_id", "ranges", "out")


class Options:
    """The reduction keywords of one Genred or one LazyTensor reduction."""

    def __init__(self, where="reduction", **kw):
        unknown = sorted(set(kw) - set(CONSTRUCTION) - set(CALL) - {"call"})
        if unknown:
            raise KpTypeError("pykp: %s got unexpected keyword argument(s) %s" % (where, ", ".join(unknown)))
        self.scheme = _scheme(kw.get("sum_scheme", "auto"), kw.get("dtype_acc", "auto"), kw.get("use_double_acc", False))
        for flag in ("enable_chunks", "rec_multVar_highdim"):
            if not isinstance(kw.get(flag, True), bool):
                raise KpTypeError("pykp: %s must be True or False, got %r" % (flag, kw[flag]))
        self.fast_math = kw.get("use_fast_math")
        if self.fast_math is not None and not isinstance(self.fast_math, bool):
            raise KpTypeError("pykp: use_fast_math must be True or False, got %r" % (self.fast_math,))
        self.dtype = kw.get("dtype") or kw.get("cuda_type")
        if self.dtype is not None and str(self.dtype).replace("torch.", "") not in (
            "float32", "float64", "float", "double", "float16", "half", "complex64", "complex128"
        ):
            raise KpValueError("pykp: dtype must be 'float16', 'float32', 'float64', 'complex64' or 'complex128', got %r"
                               % (self.dtype,))
        self.backend = kw.get("backend", "auto")
        self.device_id = kw.get("device_id", -1)
        if self.device_id is not None and (isinstance(self.device_id, bool) or not isinstance(self.device_id, int)
                                           or self.device_id < -1):
            raise KpTypeError("pykp: device_id must be a CUDA device number (or -1), got %r" % (self.device_id,))
        self.ranges = kw.get("ranges")
        self.kp_ranges = None  # the checked ranges, set by check()
        self.out = kw.get("out")
        self.call = kw.get("call", True)
        if not isinstance(self.call, bool):
            raise KpTypeError("pykp: call must be True or False, got %r" % (self.call,))

    def with_call(self, **call):
        """A copy with the call-time keywords (backend, device_id, ranges) set."""
        res = object.__new__(Options)  # copy.copy's generic protocol costs microseconds per call
        res.__dict__.update(self.__dict__)
        res.__dict__.update(call)
        return res

    def _backend_upper(self):
        """The backend as asked, upper-cased if a string (anything else is refused by `check`)."""
        return self.backend.upper() if isinstance(self.backend, str) else self.backend

    def _asks_of_arrays(self):
        """Whether a backend, device, math mode or dtype is to be confirmed
        against a call's arrays."""
        b = self._backend_upper()
        return not (b == "AUTO" and self.device_id in (None, -1) and self.fast_math is None and self.dtype is None)

    def confirms_nothing(self):
        """True when `check` has nothing to do for any call: nothing to
        confirm against the arrays and no ranges to prepare."""
        return self.ranges is None and not self._asks_of_arrays()

    def check(self, args):
        """Checks the options against the arrays of a call (before computing)."""
        if self.ranges is not None or self.kp_ranges is not None:  # (shared defaults are never written)
            self.kp_ranges = _ranges.prepare(self.ranges)  # types and shapes; libkp checks the values
        if not self._asks_of_arrays():
            return  # nothing to confirm: the reduction checks its arrays itself
        arrays = [a for a in args if _arrays.is_array(a)]
        if not arrays:
            return
        b = self._backend_upper()
        where = _arrays.check_same_device(("argument %d" % k, a) for k, a in enumerate(arrays))
        on = _arrays.device_name(where)
        if not isinstance(b, str) or not (b == "AUTO" or b == "CPU" or b.startswith("GPU")):
            raise KpValueError("pykp: backend must be 'auto', 'CPU' or 'GPU...', got %r" % (self.backend,))
        cuda = where[0] != _arrays.CPU[0]
        if b.startswith("GPU") and not cuda:
            raise KpValueError(
                "pykp: backend=%r, but the arrays are on %s; pykp computes where the arrays are and never copies "
                "between devices: pass CUDA tensors (e.g. .cuda())" % (self.backend, on)
            )
        if b == "CPU" and cuda:
            raise KpValueError("pykp: backend='CPU', but the arrays are on %s; pykp never copies between devices" % on)
        if self.device_id not in (None, -1) and cuda and where[1] != self.device_id:
            raise KpValueError(
                "pykp: device_id=%r, but the arrays are on %s; pykp never copies between devices" % (self.device_id, on)
            )
        if self.fast_math is not None and cuda and self.fast_math != (get_math_mode() == "fast"):
            raise KpValueError(
                "pykp: use_fast_math=%r, but pykp's math mode is %r; call pykp.set_math_mode(%r) first"
                % (self.fast_math, get_math_mode(), "fast" if self.fast_math else "accurate")
            )
        if self.dtype is not None:
            want = {"float": "float32", "double": "float64", "half": "float16"}.get(
                str(self.dtype).replace("torch.", ""), str(self.dtype).replace("torch.", ""))
            got = _arrays.DTYPE_NAMES[_arrays.call_code([_arrays.dtype_code(a, "argument") for a in arrays])]
            if want != got:
                raise KpTypeError("pykp: dtype=%r, but the arrays are %s; pykp computes in the arrays' dtype"
                                  % (self.dtype, got))


_DEFAULTS = {}


def defaults(where):
    """Options(where) without keywords, made once per `where` and shared:
    nothing writes to them (with_call copies, check leaves them as they are)."""
    o = _DEFAULTS.get(where)
    if o is None:
        o = _DEFAULTS[where] = Options(where)
    return o


def _scheme(sum_scheme, dtype_acc, use_double_acc):
    if sum_scheme not in SCHEMES:
        raise KpValueError("pykp: sum_scheme must be auto, block_sum, kahan_scheme, direct_sum or exact_sum, got %r"
                           % (sum_scheme,))
    if dtype_acc not in ("auto", "float32", "float64", "float", "double"):
        raise KpValueError("pykp: dtype_acc must be 'auto', 'float32' or 'float64', got %r" % (dtype_acc,))
    if not isinstance(use_double_acc, bool):
        raise KpTypeError("pykp: use_double_acc must be True or False, got %r" % (use_double_acc,))
    if use_double_acc or dtype_acc in ("float64", "double"):
        if sum_scheme not in ("auto", "kahan_scheme"):
            raise KpValueError("pykp: dtype_acc='float64' (compensated sums) contradicts sum_scheme=%r" % (sum_scheme,))
        return SCHEMES["kahan_scheme"]
    return SCHEMES[sum_scheme]
