"""
lazytensor.py -- KeOps-style symbolic tensors.

A LazyTensor is a formula text with placeholders for its variables plus the
arrays behind them. Operations build text; a reduction (sum, logsumexp, min,
argKmin, ...) numbers the variables in order of appearance, writes the libkp
reduction text and runs it through the same path as Genred (pykp.genred.reduce),
so results are differentiable with torch exactly as Genred's are.

    x_i = LazyTensor(x[:, None, :])     # (N, 1, D): indexed by i
    y_j = LazyTensor(y[None, :, :])     # (1, M, D): indexed by j
    K = (-((x_i - y_j) ** 2).sum(-1) / s).exp()
    a = K.sum(dim=1)                    # (N, 1): reduce over j
    a = K @ b                           # matrix-vector product, (N,) or (N, E)

Batch dimensions: (B..., N, 1, D) and (B..., 1, M, D) arrays; batch extents of
1 broadcast. Python ints become integer constants, Python floats become
parameters (one formula serves every value).
"""
import itertools
import math
import re

import numpy as np

from . import _arrays, _options
from ._arrays import NumpyBackend, TorchBackend, is_array, torch
from ._lib import KpTypeError, KpValueError
from .genred import postprocess, reduce, reduction_text

_uids = itertools.count()
_IN_PLACE = ("Sum", "LogSumExp", "SumSoftMaxWeight", "Min", "Max")
_PLACEHOLDER = re.compile(r"@(\d+)@")
_CATS = ("Vi", "Vj", "Pm")


class _Var:
    __slots__ = ("value", "cat", "dim", "index")

    def __init__(self, value, cat, dim, index=None):
        self.value = value  # array: Vi/Vj (batch..., n, d), Pm (batch..., d) / (d,); or a list of floats
        self.cat = cat
        self.dim = dim
        self.index = index  # symbolic variable: its position among a reduction's call arguments


def _is_complex_operand(o):
    return o.is_complex if isinstance(o, LazyTensor) else _is_complex_input(o)


def _is_number(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _is_complex_input(x):
    """A Python complex number, a list holding one, or a complex array."""
    if isinstance(x, (complex, np.complexfloating)):
        return True
    if isinstance(x, (list, tuple)) and any(isinstance(v, (complex, np.complexfloating)) for v in x):
        return not (len(x) == 3 and all(isinstance(v, (int, np.integer)) for v in x))
    return is_array(x) and _arrays.dtype_code(x, "LazyTensor input") in _arrays.COMPLEX_CODES


def _blank(cplx):
    """An empty LazyTensor, complex (a ComplexLazyTensor) or not."""
    if cplx:
        from .complexlazy import ComplexLazyTensor

        return ComplexLazyTensor()
    return LazyTensor()


def _complex_class():
    from .complexlazy import ComplexLazyTensor

    return ComplexLazyTensor


def _broadcast_batch(a, b):
    if a is None:
        return b
    if b is None:
        return a
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x != y and x != 1 and y != 1:
            raise KpValueError("pykp: incompatible batch dimensions %s and %s" % (a, b))
        out.append(max(x, y))
    return tuple(out)


class LazyTensor:
    """Symbolic wrapper of NumPy arrays / torch tensors (KeOps semantics).

    LazyTensor(x) with x of shape (..., N, 1, D): a Vi variable; (..., 1, M, D):
    Vj; (..., 1, 1, D): a parameter; a 2-D x needs axis=0 (Vi) or axis=1 (Vj);
    a 0-D/1-D x, a float or a list of floats: a parameter; an int: an integer
    constant; a tuple (index, dim, cat) of three ints: a symbolic variable
    (cat 0: Vi, 1: Vj, 2: Pm) whose array is given when the reduction, which
    is then a function, is called (KeOps' `Vi(0, 3)`)."""

    __array_ufunc__ = None  # numpy defers `array op lazy` to our reflected methods
    __array_priority__ = 1000
    is_complex = False

    def __new__(cls, x=None, axis=None):
        if x is not None and cls is LazyTensor and type(x) is not float and _is_complex_input(x):  # KeOps: complex inputs give a ComplexLazyTensor
            from .complexlazy import ComplexLazyTensor

            cls = ComplexLazyTensor
        return object.__new__(cls)

    def __init__(self, x=None, axis=None):
        self.formula = None
        self.vars = {}
        self.ndim = 1
        self.batchdims = None
        self.ni = None
        self.nj = None
        self.backend = None
        self.code = None
        self.ranges = None
        if x is None:
            return
        if type(x) is float and axis is None:  # a parameter: the most common operand after the arrays
            self._leaf([x], 2, 1)
            return
        if isinstance(x, tuple) and len(x) == 3 and all(isinstance(v, (int, np.integer)) for v in x):
            self._symbolic(*(int(v) for v in x))
            return
        if isinstance(x, bool):
            raise KpTypeError("pykp: cannot build a LazyTensor from a bool")
        if isinstance(x, (int, np.integer)):
            self.formula = "IntCst(%d)" % int(x)
            return
        if isinstance(x, (float, np.floating)):
            x = [float(x)]
        if isinstance(x, (list, tuple)):
            if not x or not all(_is_number(v) for v in x):
                raise KpTypeError("pykp: a list gives a parameter and must hold numbers, got %r" % (x,))
            if axis not in (None, 2):
                raise KpValueError("pykp: lists of numbers are parameters; axis must be None or 2")
            self._leaf([float(v) for v in x], 2, len(x))
            return
        if not is_array(x):
            raise KpTypeError(
                "pykp: LazyTensor takes a NumPy array, a torch tensor, a number or a list of numbers, got %s"
                % type(x).__name__
            )
        self.code = _arrays.dtype_code(x, "LazyTensor input")
        if _arrays.is_tensor(x):
            _arrays.where_of(x, "LazyTensor input")  # CPU or CUDA (one device per reduction, checked there)
            self.backend = TorchBackend
        else:
            self.backend = NumpyBackend
        shape = tuple(x.shape)
        if len(shape) >= 3:
            if axis is not None:
                raise KpValueError("pykp: axis must not be given for a 3-D+ array: the unit dimension tells it")
            batch = shape[:-3] or None
            if shape[-3] == 1 and shape[-2] == 1:
                v, cat = x.reshape(shape[:-3] + shape[-1:]), 2
            elif shape[-2] == 1:
                v, cat = x.reshape(shape[:-2] + shape[-1:]), 0
                self.ni = shape[-3]
            elif shape[-3] == 1:
                v, cat = x.reshape(shape[:-3] + shape[-2:]), 1
                self.nj = shape[-2]
            else:
                raise KpValueError(
                    "pykp: a 3-D+ array must have shape (..., N, 1, D), (..., 1, M, D) or (..., 1, 1, D), got %s" % (shape,)
                )
            self.batchdims = batch
            self._leaf(v, cat, shape[-1])
        elif len(shape) == 2 and axis != 2:
            if axis not in (0, 1):
                raise KpValueError("pykp: a 2-D array needs axis=0 (Vi, indexed by i) or axis=1 (Vj, indexed by j)")
            if axis == 0:
                self.ni = shape[0]
            else:
                self.nj = shape[0]
            self._leaf(x, axis, shape[1])
        else:
            if axis not in (None, 2):
                raise KpValueError("pykp: a 0-D or 1-D array is a parameter; axis must be None or 2")
            if len(shape) == 0:
                x = x.reshape((1,))
            elif len(shape) == 2:
                x = x.reshape(shape[-1:])
            self._leaf(x, 2, x.shape[-1])

    def _symbolic(self, index, dim, cat):
        if index < 0 or dim < 1 or cat not in (0, 1, 2):
            raise KpValueError("pykp: a symbolic variable is (index >= 0, dim >= 1, cat in 0, 1, 2), got %r"
                               % ((index, dim, cat),))
        uid = next(_uids)
        self.vars = {uid: _Var(None, cat, dim, index)}
        self.formula = "@%d@" % uid
        self.ndim = dim

    def _leaf(self, value, cat, dim):
        uid = next(_uids)
        self.vars = {uid: _Var(value, cat, dim)}
        self.formula = "@%d@" % uid
        self.ndim = dim

    # ------------------------------------------------------------ plumbing

    def _new(self, formula, ndim, others=(), cplx=None):
        """A LazyTensor of this one's kind (cplx None) or complex / real."""
        # every attribute __init__ sets is set here: the blank object skips __init__
        res = object.__new__(_complex_class() if (self.is_complex if cplx is None else cplx) else LazyTensor)
        res.formula = formula
        res.ndim = ndim
        res.vars = dict(self.vars)
        res.batchdims = self.batchdims
        res.ni, res.nj = self.ni, self.nj
        res.backend, res.code = self.backend, self.code
        res.ranges = self.ranges
        for o in others:
            res.ranges = res.ranges if o.ranges is None else o.ranges
            res.vars.update(o.vars)
            if o.batchdims is not None:
                res.batchdims = _broadcast_batch(res.batchdims, o.batchdims)
            a, b = res.ni, o.ni
            if b is not None and a != b:
                if a is not None:
                    raise KpValueError("pykp: incompatible numbers of i points: %d and %d" % (a, b))
                res.ni = b
            a, b = res.nj, o.nj
            if b is not None and a != b:
                if a is not None:
                    raise KpValueError("pykp: incompatible numbers of j points: %d and %d" % (a, b))
                res.nj = b
            if o.backend is not None:
                if res.backend is not None and res.backend is not o.backend:
                    raise KpTypeError("pykp: a LazyTensor cannot mix NumPy arrays and torch tensors")
                if res.code is not None and res.code != o.code and _arrays.compatible(res.code, o.code) and (
                    _arrays.COMPLEX_CODES.count(res.code) or _arrays.COMPLEX_CODES.count(o.code)
                ):  # complex and real arrays of one precision meet (KeOps)
                    res.code = _arrays.call_code((res.code, o.code))
                    continue
                if res.code is not None and res.code != o.code:
                    raise KpTypeError(
                        "pykp: mixed dtypes in a LazyTensor expression (%s and %s); convert to one dtype"
                        % (_arrays.DTYPE_NAMES[res.code], _arrays.DTYPE_NAMES[o.code])
                    )
                res.backend, res.code = o.backend, o.code
        return res

    @staticmethod
    def _lazy(x):
        if isinstance(x, LazyTensor):
            return x
        return LazyTensor(x)

    def _unary(self, op, ndim=None, extra=""):
        return self._new("%s(%s%s)" % (op, self.formula, extra), self.ndim if ndim is None else ndim)

    def _binary(self, other, fmt, ndim=None, check="sameor1", reverse=False):
        other = self._lazy(other)
        a, b = (other, self) if reverse else (self, other)
        if check == "sameor1" and a.ndim != b.ndim and 1 not in (a.ndim, b.ndim):
            raise KpValueError(
                "pykp: operands of dimensions %d and %d: expected equal dimensions or one of them 1" % (a.ndim, b.ndim)
            )
        if check == "same" and a.ndim != b.ndim:
            raise KpValueError("pykp: operands of dimensions %d and %d: expected equal dimensions" % (a.ndim, b.ndim))
        if ndim is None:
            ndim = max(a.ndim, b.ndim)
        return self._new(fmt % (a.formula, b.formula), ndim, (other,))

    # ------------------------------------------------------------ shape

    @property
    def nbatchdims(self):
        return 0 if self.batchdims is None else len(self.batchdims)

    @property
    def _shape(self):
        b = () if self.batchdims is None else tuple(self.batchdims)
        return b + (1 if self.ni is None else self.ni, 1 if self.nj is None else self.nj, self.ndim)

    @property
    def shape(self):
        s = self._shape
        return s[:-1] if s[-1] == 1 else s

    def dim(self):
        return len(self._shape)

    @property
    def dtype(self):
        if self.code is None:
            return None
        code = self.code
        if code in _arrays.COMPLEX_CODES and not self.is_complex:  # e.g. z.real: real values of a complex call
            code = _arrays.REAL_CODE[code]
        return _arrays.DTYPE_NAMES[code]

    def __repr__(self):
        return "pykp.LazyTensor(formula=%s, shape=%s)" % (self._text()[0][0], self.shape)

    __str__ = __repr__

    # ------------------------------------------------------------ arithmetic

    def __add__(self, o):
        if not self.is_complex and _is_complex_operand(o):
            return self._lazy(o).__radd__(self)
        if _is_number(o) and o == 0:
            return self
        return self._binary(o, "(%s+%s)")

    def __radd__(self, o):
        if not self.is_complex and _is_complex_operand(o):
            return self._lazy(o).__add__(self)
        if _is_number(o) and o == 0:
            return self
        return self._binary(o, "(%s+%s)", reverse=True)

    def __sub__(self, o):
        if not self.is_complex and _is_complex_operand(o):
            return self._lazy(o).__rsub__(self)
        if _is_number(o) and o == 0:
            return self
        return self._binary(o, "(%s-%s)")

    def __rsub__(self, o):
        if not self.is_complex and _is_complex_operand(o):
            return self._lazy(o).__sub__(self)
        if _is_number(o) and o == 0:
            return -self
        return self._binary(o, "(%s-%s)", reverse=True)

    def __mul__(self, o):
        if not self.is_complex and _is_complex_operand(o):
            return self._lazy(o).__rmul__(self)
        if _is_number(o) and o == 1:
            return self
        return self._binary(o, "(%s*%s)")

    def __rmul__(self, o):
        if not self.is_complex and _is_complex_operand(o):
            return self._lazy(o).__mul__(self)
        if _is_number(o) and o == 1:
            return self
        return self._binary(o, "(%s*%s)", reverse=True)

    def __truediv__(self, o):
        if not self.is_complex and _is_complex_operand(o):
            return self._lazy(o).__rtruediv__(self)
        if _is_number(o) and o == 1:
            return self
        return self._binary(o, "(%s/%s)")

    def __rtruediv__(self, o):
        if not self.is_complex and _is_complex_operand(o):
            return self._lazy(o).__truediv__(self)
        return self._binary(o, "(%s/%s)", reverse=True)

    def __neg__(self):
        return self._new("(-%s)" % self.formula, self.ndim)

    def __pos__(self):
        return self

    def __pow__(self, o):
        if isinstance(o, (float, np.floating)) and float(o).is_integer() and abs(o) < 2**31:
            o = int(o)
        if isinstance(o, (int, np.integer)) and not isinstance(o, bool):
            o = int(o)
            if o == 1:
                return self
            if o == 2:
                return self._unary("Square")
            return self._unary("Pow", extra=",%d" % o)
        if isinstance(o, (float, np.floating)):
            if o == 0.5:
                return self._unary("Sqrt")
            if o == -0.5:
                return self._unary("Rsqrt")
        return self._binary(o, "Powf(%s,%s)")

    def __rpow__(self, o):
        return self._binary(o, "Powf(%s,%s)", reverse=True)

    def __or__(self, o):
        """x | y: the scalar product (dimension 1)."""
        return self._binary(o, "(%s|%s)", ndim=1, check="same")

    def __ror__(self, o):
        return self._binary(o, "(%s|%s)", ndim=1, check="same", reverse=True)

    def __abs__(self):
        return self._unary("Abs")

    # comparisons: 1 where true, 0 where false
    def __lt__(self, o):
        return self._binary(o, "(%s<%s)")

    def __le__(self, o):
        return self._binary(o, "(%s<=%s)")

    def __gt__(self, o):
        return self._binary(o, "(%s>%s)")

    def __ge__(self, o):
        return self._binary(o, "(%s>=%s)")

    def __eq__(self, o):
        return self._binary(o, "(%s==%s)")

    def __ne__(self, o):
        return self._binary(o, "(%s!=%s)")

    __hash__ = object.__hash__

    # ------------------------------------------------------------ functions

    def exp(self):
        return self._unary("Exp")

    def log(self):
        return self._unary("Log")

    def xlogx(self):
        return self._unary("XLogX")

    def sqrt(self):
        return self._unary("Sqrt")

    def rsqrt(self):
        return self._unary("Rsqrt")

    def abs(self):
        return self._unary("Abs")

    def sin(self):
        return self._unary("Sin")

    def cos(self):
        return self._unary("Cos")

    def tan(self):
        return self.sin() / self.cos()

    def asin(self):
        return self._unary("Asin")

    def acos(self):
        return self._unary("Acos")

    def atan(self):
        return self._unary("Atan")

    def atan2(self, o):
        return self._binary(o, "Atan2(%s,%s)")

    def tanh(self):
        return self._unary("Tanh")

    def erf(self):
        return self._unary("Erf")

    def sinxdivx(self):
        """sin(x) / x (1 at 0)."""
        return self._unary("SinXDivX")

    def sinc(self):
        """sin(pi x) / (pi x) (1 at 0), as torch.sinc and KeOps' sinc."""
        return self._new("SinXDivX((%s*%r))" % (self.formula, math.pi), self.ndim)

    def relu(self):
        return self._unary("ReLU")

    def real2complex(self):
        """x + 0i, a ComplexLazyTensor (KeOps' Real2Complex)."""
        return self._new("Real2Complex(%s)" % self.formula, 2 * self.ndim, cplx=True)

    def imag2complex(self):
        """0 + x i, a ComplexLazyTensor (KeOps' Imag2Complex)."""
        return self._new("Imag2Complex(%s)" % self.formula, 2 * self.ndim, cplx=True)

    def exp1j(self):
        """exp(1j x) = cos x + i sin x, a ComplexLazyTensor (KeOps' ComplexExp1j)."""
        return self._new("ComplexExp1j(%s)" % self.formula, 2 * self.ndim, cplx=True)

    def step(self):
        return self._unary("Step")

    def sign(self):
        return self._unary("Sign")

    def floor(self):
        return self._unary("Floor")

    def square(self):
        return self._unary("Square")

    def inv(self):
        return self._unary("Inv")

    def power(self, o):
        return self ** o

    def round(self, d=0):
        return self._unary("Round", extra=",%d" % int(d))

    def clamp(self, a, b):
        a, b = self._lazy(a), self._lazy(b)
        return self._new("Clamp(%s,%s,%s)" % (self.formula, a.formula, b.formula), self.ndim, (a, b))

    def ifelse(self, a, b):
        """a where self >= 0, else b."""
        a, b = self._lazy(a), self._lazy(b)
        return self._new("IfElse(%s,%s,%s)" % (self.formula, a.formula, b.formula), max(self.ndim, a.ndim, b.ndim), (a, b))

    def mod(self, modulus, offset=0):
        m, o = self._lazy(modulus), self._lazy(offset)
        return self._new("Mod(%s,%s,%s)" % (self.formula, m.formula, o.formula), self.ndim, (m, o))

    def sqnorm2(self):
        return self._unary("SqNorm2", 1)

    def norm2(self):
        return self._unary("Norm2", 1)

    def norm(self, dim=-1):
        if dim not in (-1, len(self._shape) - 1):
            raise KpValueError("pykp: norm() is only taken over the last (vector) dimension")
        return self.norm2()

    def normalize(self):
        return self._unary("Normalize")

    def sqdist(self, o):
        return self._binary(o, "SqDist(%s,%s)", ndim=1, check="same")

    def weightedsqnorm(self, s):
        """WeightedSqNorm(s, self): s scalar, diagonal (dim D) or full (dim D*D)."""
        s = self._lazy(s)
        return self._new("WeightedSqNorm(%s,%s)" % (s.formula, self.formula), 1, (s,))

    def weightedsqdist(self, o, s):
        """WeightedSqDist(s, self, o) = WeightedSqNorm(s, self - o)."""
        o, s = self._lazy(o), self._lazy(s)
        if o.ndim != self.ndim:
            raise KpValueError("pykp: weightedsqdist of dimensions %d and %d" % (self.ndim, o.ndim))
        return self._new("WeightedSqDist(%s,%s,%s)" % (s.formula, self.formula, o.formula), 1, (o, s))

    def concat(self, o):
        o = self._lazy(o)
        return self._new("Concat(%s,%s)" % (self.formula, o.formula), self.ndim + o.ndim, (o,))

    def elem(self, k):
        k = int(k)
        if k < 0:
            k += self.ndim
        if not 0 <= k < self.ndim:
            raise IndexError("pykp: index %d out of range for dimension %d" % (k, self.ndim))
        return self._unary("Elem", 1, ",%d" % k)

    def extract(self, start, length):
        start, length = int(start), int(length)
        if start < 0 or length < 1 or start + length > self.ndim:
            raise IndexError("pykp: components %d..%d out of range for dimension %d" % (start, start + length - 1, self.ndim))
        return self._unary("Extract", length, ",%d,%d" % (start, length))

    def __getitem__(self, key):
        if isinstance(key, tuple):
            rest = key[:-1]
            if not all(k is Ellipsis or (isinstance(k, slice) and k == slice(None)) for k in rest):
                raise IndexError("pykp: a LazyTensor can only be indexed along its last (vector) dimension")
            key = key[-1]
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            return self.elem(key)
        if isinstance(key, slice):
            start, stop, step = key.indices(self.ndim)
            if step != 1 or stop <= start:
                raise IndexError("pykp: only contiguous, non-empty slices of the vector dimension are supported")
            if start == 0 and stop == self.ndim:
                return self
            return self.extract(start, stop - start)
        raise IndexError("pykp: unsupported index %r" % (key,))

    def matvecmult(self, v):
        """MatVecMult(self, v): self a row-major (n x m) matrix (dim n*m), v of dim m."""
        v = self._lazy(v)
        if self.ndim % v.ndim:
            raise KpValueError("pykp: matvecmult of dimensions %d and %d" % (self.ndim, v.ndim))
        return self._new("MatVecMult(%s,%s)" % (self.formula, v.formula), self.ndim // v.ndim, (v,))

    def vecmatmult(self, A):
        """VecMatMult(self, A): self of dim n, A a row-major (n x m) matrix."""
        A = self._lazy(A)
        if A.ndim % self.ndim:
            raise KpValueError("pykp: vecmatmult of dimensions %d and %d" % (self.ndim, A.ndim))
        return self._new("VecMatMult(%s,%s)" % (self.formula, A.formula), A.ndim // self.ndim, (A,))

    def tensorprod(self, o):
        o = self._lazy(o)
        return self._new("TensorProd(%s,%s)" % (self.formula, o.formula), self.ndim * o.ndim, (o,))

    def keops_tensordot(self, other, dimfa, dimfb, contfa, contfb, *args):
        """numpy.tensordot of self (a tensor of shape dimfa, stored flat) and
        other (shape dimfb) over the axes contfa and contfb; an optional
        permutation of the result's axes follows (KeOps' TensorDot)."""
        other = self._lazy(other)
        tuples = [tuple(int(v) for v in t) for t in (dimfa, dimfb, contfa, contfb) + args]
        free_a = [d for k, d in enumerate(tuples[0]) if k not in tuples[2]]
        free_b = [d for k, d in enumerate(tuples[1]) if k not in tuples[3]]
        text = ",".join("(%s)" % ",".join(map(str, t)) for t in tuples)
        return self._new("TensorDot(%s,%s,%s)" % (self.formula, other.formula, text),
                         int(np.prod(free_a + free_b, dtype=np.int64)), (other,))

    def keops_kron(self, other, dimfself, dimfother):
        """torch.kron of self (shape dimfself, stored flat) and other (KeOps' Kron)."""
        other = self._lazy(other)
        a, b = (tuple(int(v) for v in t) for t in (dimfself, dimfother))
        return self._new("Kron(%s,%s,(%s),(%s))" % (self.formula, other.formula, ",".join(map(str, a)),
                                                    ",".join(map(str, b))),
                         int(np.prod(a, dtype=np.int64) * np.prod(b, dtype=np.int64)), (other,))

    def clampint(self, a, b):
        """Clamp between the integers a and b (KeOps' ClampInt)."""
        return self.clamp(int(a), int(b))

    def grad(self, v, gradin):
        """Grad(self, v, gradin): the gradient of <self, gradin> with respect
        to the variable v (a LazyTensor made from one array or one symbolic
        variable), a formula of v's dimension."""
        v, gradin = self._lazy(v), self._lazy(gradin)
        if len(v.vars) != 1 or not _PLACEHOLDER.fullmatch(v.formula):
            raise KpValueError("pykp: grad() differentiates with respect to a variable, not an expression")
        if gradin.ndim != self.ndim:
            raise KpValueError("pykp: grad() needs gradin of the formula's dimension %d, got %d" % (self.ndim, gradin.ndim))
        return self._new("Grad(%s,%s,%s)" % (self.formula, v.formula, gradin.formula), v.ndim, (v, gradin))

    def one_hot(self, d):
        return self._unary("OneHot", int(d), ",%d" % int(d))

    # ------------------------------------------------------------ reductions

    def _axis(self, axis, dim):
        if dim is not None:
            axis = dim
        if axis is None:
            raise KpValueError("pykp: give the reduction axis: dim=0 (over i) or dim=1 (over j)")
        n = len(self._shape)
        a = axis + n if axis < 0 else axis
        r = a - self.nbatchdims
        if r not in (0, 1):
            raise KpValueError(
                "pykp: reduction axis %r: expected %d (over i) or %d (over j) for %d batch dimension(s)"
                % (axis, self.nbatchdims, self.nbatchdims + 1, self.nbatchdims)
            )
        return r

    def _is_vector_axis(self, axis, dim):
        if dim is not None:
            axis = dim
        return axis in (-1, len(self._shape) - 1)

    def _text(self, extra=()):
        """Numbers the variables by first appearance; returns (texts, args)."""
        pos = {}
        args = []
        all_vars = dict(self.vars)
        for e in extra:
            all_vars.update(e.vars)
        # "@uid@" placeholders split out with str.split rather than a regex, which
        # torch.compile (Dynamo) traces without a graph break; the pieces go to a
        # new list (Dynamo refuses writes into the split's own list)
        texts = []
        for t in (self,) + tuple(extra):
            parts = t.formula.split("@")
            out = [parts[0]]
            for i in range(1, len(parts), 2):
                uid = int(parts[i])
                v = all_vars[uid]
                k = pos.get(uid)
                if k is None:
                    k = pos[uid] = len(args)
                    args.append(v.value)
                out.append("%s(%d,%d)" % (_CATS[v.cat], k, v.dim))
                out.append(parts[i + 1])
            texts.append("".join(out))
        return texts, args

    def _reduce(self, reduction_op, axis, dim=None, opt_arg=None, other=None, **kwargs):
        """Runs a reduction, or returns it as a function when call=False or when
        the expression has symbolic variables (KeOps' semantics)."""
        r = self._axis(axis, dim)
        where = "LazyTensor.%s" % reduction_op
        opts = _options.Options(where, **kwargs) if kwargs else _options.defaults(where)
        other = None if other is None else self._lazy(other)
        symbolic = self._symbolic_indices(other)
        if symbolic or not opts.call:
            return _Reduction(self, other, reduction_op, r, opt_arg, opts, symbolic)
        return self._run(other, reduction_op, r, opt_arg, opts)

    def _symbolic_indices(self, other=None):
        """The call positions of the symbolic variables, checked to be 0..n-1."""
        if all(v.index is None for v in self.vars.values()) and (
                other is None or all(v.index is None for v in other.vars.values())):
            return {}  # arrays only, the common case
        vs = list(self.vars.values()) + ([] if other is None else list(other.vars.values()))
        idx = {}
        for v in vs:
            if v.index is None:
                continue
            prev = idx.setdefault(v.index, (v.cat, v.dim))
            if prev != (v.cat, v.dim):
                raise KpValueError("pykp: symbolic variable %d used with two categories or dimensions" % v.index)
        if idx and sorted(idx) != list(range(len(idx))):
            raise KpValueError("pykp: symbolic variables must be numbered 0..n-1, got %s" % sorted(idx))
        return idx

    def _bind(self, values):
        """This expression with its symbolic variables replaced by arrays."""
        leaves = {}
        for uid, v in self.vars.items():
            if v.index is not None:
                leaf = (Vi, Vj, Pm)[v.cat](values[v.index])
                if leaf.ndim != v.dim:
                    raise KpValueError("pykp: symbolic variable %d has dimension %d, got an array of dimension %d"
                                       % (v.index, v.dim, leaf.ndim))
                leaves[uid] = leaf
        if not leaves:
            return self
        base = LazyTensor()
        base.vars = {u: v for u, v in self.vars.items() if u not in leaves}
        base.ndim, base.batchdims, base.ni, base.nj = self.ndim, self.batchdims, self.ni, self.nj
        base.backend, base.code, base.ranges = self.backend, self.code, self.ranges
        formula = _PLACEHOLDER.sub(lambda m: leaves[int(m.group(1))].formula if int(m.group(1)) in leaves
                                   else m.group(0), self.formula)
        return base._new(formula, self.ndim, list(leaves.values()))

    def _run(self, other, reduction_op, r, opt_arg, opts):
        merged = self if other is None else self._new(self.formula, self.ndim, (other,))
        if merged.code is None:
            raise KpTypeError("pykp: this LazyTensor holds no array, so it has no dtype to compute in")
        if merged.ranges is not None and opts.ranges is None:
            opts = opts.with_call(ranges=merged.ranges)
        extra = () if other is None else (other,)
        texts, args = self._text(extra)
        opts.check(args)
        text = reduction_text(texts[0], reduction_op, r, opt_arg, texts[1] if other is not None else None)
        nx = merged.ni if merged.ni is not None else 1
        ny = merged.nj if merged.nj is not None else 1
        red = "SumSoftMaxWeight" if reduction_op == "SoftMax" else reduction_op
        out = opts.out
        if out is not None and red not in _IN_PLACE:
            raise KpValueError("pykp: out= is taken by Sum, LogSumExp, SumSoftMaxWeight, Min and Max reductions, "
                               "not by %s" % red)
        vals, idx = reduce(("parse", text, ()), args, nx, ny, what="LazyTensor variable", out=out, scheme=opts.scheme,
                           ranges=opts.kp_ranges)
        if vals is not None and not self.is_complex and merged.code in _arrays.COMPLEX_CODES and out is None:
            vals = merged.backend.as_real(vals)  # real values of a complex call (z.abs(), z.real, ...)
        return postprocess(vals, idx, red, opt_arg)

    def sum(self, axis=-1, dim=None, **kwargs):
        """sum(dim=0|1): Sum reduction over i|j; sum(-1): sum of the vector's components."""
        if self._is_vector_axis(axis, dim):
            return self._unary("Sum", 1)
        return self._reduce("Sum", axis, dim, **kwargs)

    def sum_reduction(self, axis=None, dim=None, **kwargs):
        return self._reduce("Sum", axis, dim, **kwargs)

    def logsumexp(self, axis=None, dim=None, weight=None, other=None, **kwargs):
        """log sum exp(self) over i or j; with a weight g > 0 (KeOps: `weight`
        or `other`): log sum exp(self) g."""
        if weight is not None and other is not None:
            raise KpValueError("pykp: logsumexp takes the weight as weight= or other=, not both")
        return self._reduce("LogSumExp", axis, dim, other=weight if weight is not None else other, **kwargs)

    logsumexp_reduction = logsumexp

    def sumsoftmaxweight(self, weight, axis=None, dim=None, **kwargs):
        return self._reduce("SumSoftMaxWeight", axis, dim, other=weight, **kwargs)

    sumsoftmaxweight_reduction = sumsoftmaxweight

    def min(self, axis=-1, dim=None, **kwargs):
        if self._is_vector_axis(axis, dim):
            return self._unary("Min", 1)
        return self._reduce("Min", axis, dim, **kwargs)

    def max(self, axis=-1, dim=None, **kwargs):
        if self._is_vector_axis(axis, dim):
            return self._unary("Max", 1)
        return self._reduce("Max", axis, dim, **kwargs)

    def argmin(self, axis=-1, dim=None, **kwargs):
        if self._is_vector_axis(axis, dim):
            return self._unary("ArgMin", 1)
        return self._reduce("ArgMin", axis, dim, **kwargs)

    def argmax(self, axis=-1, dim=None, **kwargs):
        if self._is_vector_axis(axis, dim):
            return self._unary("ArgMax", 1)
        return self._reduce("ArgMax", axis, dim, **kwargs)

    def min_reduction(self, axis=None, dim=None, **kwargs):
        return self._reduce("Min", axis, dim, **kwargs)

    def max_reduction(self, axis=None, dim=None, **kwargs):
        return self._reduce("Max", axis, dim, **kwargs)

    def argmin_reduction(self, axis=None, dim=None, **kwargs):
        return self._reduce("ArgMin", axis, dim, **kwargs)

    def argmax_reduction(self, axis=None, dim=None, **kwargs):
        return self._reduce("ArgMax", axis, dim, **kwargs)

    def min_argmin(self, axis=None, dim=None, **kwargs):
        return self._reduce("Min_ArgMin", axis, dim, **kwargs)

    min_argmin_reduction = min_argmin

    def max_argmax(self, axis=None, dim=None, **kwargs):
        return self._reduce("Max_ArgMax", axis, dim, **kwargs)

    max_argmax_reduction = max_argmax

    def Kmin(self, K, axis=None, dim=None, **kwargs):
        return self._reduce("KMin", axis, dim, opt_arg=K, **kwargs)

    def argKmin(self, K, axis=None, dim=None, **kwargs):
        return self._reduce("ArgKMin", axis, dim, opt_arg=K, **kwargs)

    def Kmin_argKmin(self, K, axis=None, dim=None, **kwargs):
        return self._reduce("KMin_ArgKMin", axis, dim, opt_arg=K, **kwargs)

    Kmin_reduction = Kmin
    argKmin_reduction = argKmin
    Kmin_argKmin_reduction = Kmin_argKmin

    # ------------------------------------------------------------ linear operator

    def __matmul__(self, v):
        """K @ v = sum_j K_ij v_j for K of vector dimension 1; v (M,) -> (N,),
        v (M, E) -> (N, E), v (B..., M, E) -> (B..., N, E)."""
        if self.ndim != 1:
            raise KpValueError("pykp: K @ v needs a LazyTensor K of vector dimension 1, got %d" % self.ndim)
        if not is_array(v):
            raise KpTypeError("pykp: K @ v needs an array v, got %s" % type(v).__name__)
        shape = tuple(v.shape)
        bv = _j_leaf(v, shape) if len(shape) >= 2 else None
        if bv is None:
            vv = v.reshape((1, shape[0], 1)) if len(shape) == 1 else v.reshape(shape[:-2] + (1,) + shape[-2:])
            bv = LazyTensor(vv)
        Kv = self * bv
        Kv = Kv._reduce("Sum", Kv.nbatchdims + 1)  # over j
        return Kv.reshape(-1) if len(shape) == 1 else Kv

    def t(self):
        """Transpose: i-variables become j-variables and conversely."""
        res = _blank(self.is_complex)
        res.ndim = self.ndim
        res.batchdims = self.batchdims
        res.ni, res.nj = self.nj, self.ni
        res.backend, res.code = self.backend, self.code
        # i and j trade places: so do the two halves of the ranges (pykp.cluster.swap_axes)
        res.ranges = None if self.ranges is None else tuple(self.ranges[3:6]) + tuple(self.ranges[0:3])
        renum = {}
        for uid, v in self.vars.items():
            nu = next(_uids)
            renum[uid] = nu
            res.vars[nu] = _Var(v.value, {0: 1, 1: 0}.get(v.cat, v.cat), v.dim, v.index)
        res.formula = _PLACEHOLDER.sub(lambda m: "@%d@" % renum[int(m.group(1))], self.formula)
        return res

    @property
    def T(self):
        return self.t()

    def _device(self):
        """The torch device of this LazyTensor's tensors (CPU when it has none)."""
        for v in self.vars.values():
            if _arrays.is_tensor(v.value):
                return v.value.device
        return torch.device("cpu")

    def _as_own(self, v):
        """scipy hands NumPy float64 vectors: convert to this LazyTensor's kind
        (on a CUDA LazyTensor: copied to its device, as scipy's LinearOperator
        asks for; the result comes back to the host)."""
        if self.backend is TorchBackend and isinstance(v, np.ndarray):
            t = torch.from_numpy(np.ascontiguousarray(v, dtype=_arrays._NP_DTYPES[self.code]))
            dev = self._device()
            return (t if dev.type == "cpu" else t.to(dev)), True
        if self.backend is NumpyBackend and isinstance(v, np.ndarray) and v.dtype != _arrays._NP_DTYPES[self.code]:
            return v.astype(_arrays._NP_DTYPES[self.code]), True
        return v, False

    def _mv(self, K, v):
        w, converted = self._as_own(v)
        r = K @ w
        if converted:
            r = r.detach().cpu().numpy() if _arrays.is_tensor(r) else r
        return r

    def matvec(self, v):
        return self._mv(self, v)

    def rmatvec(self, v):
        return self._mv(self.t(), v)

    def matmat(self, v):
        return self._mv(self, v)

    def rmatmat(self, v):
        return self._mv(self.t(), v)

    def aslinearoperator(self):
        return aslinearoperator(self)

    def solve(self, other, var=None, call=True, **kwargs):
        """a with (alpha I + K) a = b, b = other (KeOps' solve; pykp.solve.lazy_solve)."""
        from .solve import lazy_solve

        return lazy_solve(self, other, var, call, **kwargs)


class _Reduction:
    """A LazyTensor reduction kept as a function (KeOps: call=False, or an
    expression with symbolic variables): called with one array per symbolic
    variable, in the order of their indices."""

    def __init__(self, lazy, other, reduction_op, axis, opt_arg, opts, symbolic):
        self._args = (lazy, other, reduction_op, axis, opt_arg, opts)
        self.nargs = len(symbolic)

    def __call__(self, *values, **kwargs):
        lazy, other, reduction_op, axis, opt_arg, opts = self._args
        bad = sorted(set(kwargs) - set(_options.CALL))
        if bad:
            raise KpTypeError("pykp: a reduction function takes only %s as keywords, got %s"
                              % (", ".join(_options.CALL), ", ".join(bad)))
        if kwargs:
            opts = opts.with_call(**kwargs)
        if len(values) != self.nargs:
            raise KpValueError("pykp: this reduction takes %d array(s), one per symbolic variable, got %d"
                               % (self.nargs, len(values)))
        bound = lazy._bind(values)
        return bound._run(None if other is None else other._bind(values), reduction_op, axis, opt_arg, opts)

    def __repr__(self):
        lazy, _, reduction_op, axis, _, _ = self._args
        return "pykp reduction %s over %s of %s (%d argument(s))" % (reduction_op, "ij"[axis], lazy, self.nargs)


def aslinearoperator(K):
    """K (a LazyTensor of shape (N, M)) as a scipy.sparse.linalg.LinearOperator
    (matvec K @ v, rmatvec K.T @ v), e.g. for eigsh or cg."""
    from scipy.sparse.linalg import LinearOperator

    s = K.shape
    if len(s) != 2 or K.ndim != 1:
        raise KpValueError("pykp: a linear operator needs a LazyTensor of shape (N, M), got %s" % (s,))
    Kt = K.t()
    return LinearOperator(
        shape=s,
        dtype=np.dtype(K.dtype),
        matvec=lambda v: K._mv(K, v),
        rmatvec=lambda v: K._mv(Kt, v),
        matmat=lambda v: K._mv(K, v),
        rmatmat=lambda v: K._mv(Kt, v),
    )


def _j_leaf(v, shape):
    """A real array v of shape (..., M, E), M > 1, as the j-variable that
    LazyTensor(v viewed as (..., 1, M, E)) makes, without the two views; None
    for the other arrays (complex, M = 1), which take that path."""
    if shape[-2] == 1:
        return None
    code = _arrays.dtype_code(v, "LazyTensor input")
    if code in _arrays.COMPLEX_CODES:
        return None
    res = LazyTensor()
    res.code = code
    if _arrays.is_tensor(v):
        _arrays.where_of(v, "LazyTensor input")  # CPU or CUDA, as LazyTensor(x) checks
        res.backend = TorchBackend
    else:
        res.backend = NumpyBackend
    res.batchdims = shape[:-2] or None
    res.nj = shape[-2]
    res._leaf(v, 1, shape[-1])
    return res


def _as_variable(x, cat):
    if not is_array(x):
        raise KpTypeError("pykp: %s() takes an array, got %s" % (_CATS[cat], type(x).__name__))
    shape = tuple(x.shape)
    if len(shape) == 1:
        x = x.reshape(shape + (1,))
        shape = tuple(x.shape)
    if len(shape) < 2:
        raise KpValueError("pykp: %s() takes an array of shape (..., n, d), got %s" % (_CATS[cat], shape))
    if cat == 0:
        return LazyTensor(x.reshape(shape[:-1] + (1,) + shape[-1:]) if len(shape) > 2 else x, axis=None if len(shape) > 2 else 0)
    return LazyTensor(x.reshape(shape[:-2] + (1,) + shape[-2:]) if len(shape) > 2 else x, axis=None if len(shape) > 2 else 1)


def Vi(x, dim=None):
    """x (N, D) or (B..., N, D) as a LazyTensor indexed by i; Vi(index, dim):
    a symbolic i-variable (its array is given when the reduction is called)."""
    return _as_variable(x, 0) if dim is None else LazyTensor((_index(x), int(dim), 0))


def Vj(x, dim=None):
    """x (M, D) or (B..., M, D) as a LazyTensor indexed by j; Vj(index, dim):
    a symbolic j-variable."""
    return _as_variable(x, 1) if dim is None else LazyTensor((_index(x), int(dim), 1))


def Pm(x, dim=None):
    """A parameter: a number, a list of numbers, or a 0-D/1-D array; Pm(index,
    dim): a symbolic parameter."""
    if dim is not None:
        return LazyTensor((_index(x), int(dim), 2))
    if is_array(x) and x.ndim > 1:
        raise KpValueError("pykp: Pm() takes a number or a 0-D/1-D array, got shape %s" % (tuple(x.shape),))
    return LazyTensor(x, axis=2 if is_array(x) and x.ndim == 2 else None)


def _index(k):
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
        raise KpTypeError("pykp: a symbolic variable's index must be an int, got %r" % (k,))
    return int(k)
