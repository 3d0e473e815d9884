"""
generic.py -- KeOps' functional spellings of a reduction, and the kernel
product call libkp's first users wrote:

    gauss = generic_sum("Exp(-SqDist(x,y))*b", "a = Vi(1)", "x = Vi(3)", "y = Vj(3)", "b = Vj(1)")
    a = gauss(x, y, b)                      # a_i = sum_j exp(-|x_i - y_j|^2) b_j
    idx = generic_argkmin("SqDist(x,y)", "a = Vi(5)", "x = Vi(3)", "y = Vj(3)")(x, y)
    a = KernelProduct.apply(s, x, y, b, "gaussian")

The output alias ("a = Vi(D)") says the result's category and dimension: a
Vi output reduces over j (axis 1), a Vj output over i (axis 0); its dimension
must be the formula's (for argkmin: K). Both are checked.
"""
import re

from ._lib import KpValueError
from .genred import Genred
from .kernels import kernel_product

_OUTPUT = re.compile(r"^\s*[A-Za-z_]\w*\s*=\s*(Vi|Vj)\(\s*(\d+)\s*\)\s*$")


def _output(output):
    m = _OUTPUT.match(output) if isinstance(output, str) else None
    if m is None:
        raise KpValueError("pykp: the output must read 'name = Vi(dim)' or 'name = Vj(dim)', got %r" % (output,))
    return (1 if m.group(1) == "Vi" else 0), int(m.group(2))


def _generic(reduction_op, formula, output, aliases, kwargs, dim_is_k=False):
    axis, dim = _output(output)
    opt = dict(kwargs)
    if dim_is_k:
        opt["opt_arg"] = dim
    routine = Genred(formula, list(aliases), reduction_op=reduction_op, axis=axis, **opt)
    if not dim_is_k:
        got = routine.out_dim
        if got != dim:
            raise KpValueError("pykp: the output %r has dimension %d, but the formula's values have dimension %d"
                               % (output, dim, got))
    return routine


def generic_sum(formula, output, *aliases, **kwargs):
    """Genred with reduction_op="Sum", axis and dimension from `output`."""
    return _generic("Sum", formula, output, aliases, kwargs)


def generic_logsumexp(formula, output, *aliases, **kwargs):
    """Genred with reduction_op="LogSumExp" (output dimension 1)."""
    return _generic("LogSumExp", formula, output, aliases, kwargs)


def generic_argmin(formula, output, *aliases, **kwargs):
    """Genred with reduction_op="ArgMin": int64 indices, one per component."""
    return _generic("ArgMin", formula, output, aliases, kwargs)


def generic_argkmin(formula, output, *aliases, **kwargs):
    """Genred with reduction_op="ArgKMin", K the output's dimension."""
    return _generic("ArgKMin", formula, output, aliases, kwargs, dim_is_k=True)


class KernelProduct:
    """libkp's original call: KernelProduct.apply(s, x, y, b, kernel, mode) =
    kernel_product(x, y, b, kernel, sigma=s, mode=mode), the kernel width s
    first. Differentiable in every argument, s included, to any order."""

    @staticmethod
    def apply(s, x, y, b, kernel="gaussian", mode="sum"):
        return kernel_product(x, y, b, kernel, sigma=s, mode=mode)
