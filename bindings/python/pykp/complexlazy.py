"""
complexlazy.py -- ComplexLazyTensor: KeOps' LazyTensor of complex numbers.

A complex array (complex64 / complex128 NumPy array or torch tensor) of last
extent D reaches libkp as it is, with the dtype KP_COMPLEX64 / KP_COMPLEX128:
libkp reads it as 2 D interleaved reals, so in the formula it is a variable of
dimension 2 D, which libkp's complex operations (ComplexMult, Conj,
ComplexExp, ...; docs/formulas.md) treat as D complex numbers. Nothing is
converted in Python: results come back from libkp as complex arrays, gradients
too (torch's convention for complex autograd is the real-linear gradient that
libkp computes on the interleaved reals).

``LazyTensor(z)`` with a complex z (or a Python complex number, or a list
holding one) is a ComplexLazyTensor. Its ``ndim`` counts reals (2 D); ``shape``
counts complex numbers, as in KeOps.
"""
import numpy as np

from . import _arrays
from ._arrays import is_array
from ._lib import KpTypeError, KpValueError
from .lazytensor import LazyTensor, _Var


class ComplexLazyTensor(LazyTensor):
    """A LazyTensor of complex numbers (KeOps' ComplexLazyTensor): +, -, *, /
    with complex or real LazyTensors and numbers, conj, real, imag, abs,
    angle, exp, sum, reductions and ``@``; results are complex arrays."""

    is_complex = True

    def __init__(self, x=None, axis=None):
        if isinstance(x, (complex, np.complexfloating)):
            x = [x]
        if isinstance(x, (list, tuple)) and not (len(x) == 3 and all(isinstance(v, (int, np.integer)) for v in x)):
            inter = []
            for v in x:
                c = complex(v)
                inter += [c.real, c.imag]
            x = inter  # a parameter of interleaved reals
        if is_array(x) and _arrays.dtype_code(x, "ComplexLazyTensor input") not in _arrays.COMPLEX_CODES:
            raise KpTypeError("pykp: ComplexLazyTensor takes a complex array, got %s (use x.real2complex() for a "
                              "real LazyTensor)" % (x.dtype,))
        super().__init__(x, axis)
        if is_array(x) and self.vars:  # a complex array: D numbers, 2 D reals in the formula
            (uid, v), = self.vars.items()
            self.vars[uid] = _Var(v.value, v.cat, 2 * v.dim, v.index)
            self.ndim = 2 * v.dim

    # ------------------------------------------------------------ shape

    @property
    def shape(self):
        s = self._shape
        s = s[:-1] + (s[-1] // 2,)
        return s[:-1] if s[-1] == 1 else s

    @property
    def dtype(self):
        return None if self.code is None else _arrays.DTYPE_NAMES[self.code]

    # ------------------------------------------------------------ unary

    def _real_result(self, op):
        return self._new("%s(%s)" % (op, self.formula), self.ndim // 2, cplx=False)

    @property
    def real(self):
        """Real parts: a (real) LazyTensor."""
        return self._real_result("ComplexReal")

    @property
    def imag(self):
        """Imaginary parts: a (real) LazyTensor."""
        return self._real_result("ComplexImag")

    def angle(self):
        """Arguments atan2(imag, real): a (real) LazyTensor."""
        return self._real_result("ComplexAngle")

    def abs(self):
        """Moduli |z|: a (real) LazyTensor."""
        return self._real_result("ComplexAbs")

    __abs__ = abs

    def sqabs(self):
        """Squared moduli |z|^2: a (real) LazyTensor (KeOps' ComplexSquareAbs)."""
        return self._real_result("ComplexSquareAbs")

    def conj(self):
        return self._new("Conj(%s)" % self.formula, self.ndim)

    def exp(self):
        return self._new("ComplexExp(%s)" % self.formula, self.ndim)

    def sum(self, axis=-1, dim=None, **kwargs):
        """sum(-1): the sum of the complex components (one complex number);
        sum(dim=0|1): the Sum reduction over i|j, a complex array."""
        if self._is_vector_axis(axis, dim):
            return self._new("ComplexSum(%s)" % self.formula, 2)
        return self._reduce("Sum", axis, dim, **kwargs)

    def real2complex(self):
        raise KpValueError("pykp: real2complex cannot be applied to a complex LazyTensor")

    def imag2complex(self):
        raise KpValueError("pykp: imag2complex cannot be applied to a complex LazyTensor")

    def exp1j(self):
        raise KpValueError("pykp: exp1j cannot be applied to a complex LazyTensor")

    # ------------------------------------------------------------ binary

    def _complex_operand(self, o):
        """o as a ComplexLazyTensor: complex numbers and arrays as they are,
        real ones through Real2Complex."""
        o = self._lazy(o)
        return o if o.is_complex else o.real2complex()

    def _cbinary(self, o, op, reverse=False):
        o = self._complex_operand(o)
        a, b = (o, self) if reverse else (self, o)
        if a.ndim != b.ndim and 2 not in (a.ndim, b.ndim):
            raise KpValueError("pykp: complex operands of %d and %d numbers: expected equal numbers or one of them 1"
                               % (a.ndim // 2, b.ndim // 2))
        return self._new("%s(%s,%s)" % (op, a.formula, b.formula), max(a.ndim, b.ndim), (o,))

    def _mul(self, o):
        lo = self._lazy(o)
        if not lo.is_complex and lo.ndim in (1, self.ndim // 2):  # a real factor: no imaginary parts to multiply
            return self._new("ComplexRealScal(%s,%s)" % (lo.formula, self.formula), self.ndim, (lo,))
        return self._cbinary(lo, "ComplexMult")

    def __add__(self, o):
        return self._cbinary(o, "ComplexAdd")

    def __radd__(self, o):
        return self._cbinary(o, "ComplexAdd", reverse=True)

    def __sub__(self, o):
        return self._cbinary(o, "ComplexSubtract")

    def __rsub__(self, o):
        return self._cbinary(o, "ComplexSubtract", reverse=True)

    def __mul__(self, o):
        return self._mul(o)

    def __rmul__(self, o):
        return self._mul(o)

    def __truediv__(self, o):
        return self._cbinary(o, "ComplexDivide")

    def __rtruediv__(self, o):
        return self._cbinary(o, "ComplexDivide", reverse=True)

    def __matmul__(self, v):
        """K @ v = sum_j K_ij v_j for K of one complex number per pair; v (M,)
        or (M, E), complex or real."""
        if self.ndim != 2:
            raise KpValueError("pykp: K @ v needs a LazyTensor K of one complex number per (i, j), got %d"
                               % (self.ndim // 2))
        if not is_array(v):
            raise KpValueError("pykp: K @ v needs an array v, got %s" % type(v).__name__)
        shape = tuple(v.shape)
        vv = v.reshape((1, shape[0], 1)) if len(shape) == 1 else v.reshape(shape[:-2] + (1,) + shape[-2:])
        Kv = self * LazyTensor(vv)
        Kv = Kv.sum(dim=Kv.dim() - 2)
        return Kv.reshape(-1) if len(shape) == 1 else Kv
