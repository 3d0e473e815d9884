"""
pykp -- Python binding of libkp: generic kernel reductions in the KeOps formula
syntax, on NumPy arrays and PyTorch tensors, without N x M memory.

    import pykp
    gauss = pykp.Genred("Exp(-SqDist(x,y)*g)*b", ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"],
                        reduction_op="Sum", axis=1)
    a = gauss(x, y, g, b)

    x_i, y_j = pykp.LazyTensor(x[:, None, :]), pykp.LazyTensor(y[None, :, :])
    a = (-((x_i - y_j) ** 2).sum(-1)).exp() @ b

    v = pykp.kernel_product(x, y, b, "gaussian", sigma=0.5)

Torch tensors get gradients of any order (libkp's symbolic gradient reductions).
The math is in libkp (C); this package is a ctypes layer over kp.h.
"""
from ._lib import (
    KpError,
    KpMemoryError,
    KpNotImplementedError,
    KpRuntimeError,
    KpTypeError,
    KpValueError,
    get_num_threads,
    library_path,
    get_math_mode,
    set_math_mode,
    set_num_threads,
    set_sum_scheme,
)
from .genred import Genred
from .lazytensor import LazyTensor, Pm, Vi, Vj, aslinearoperator
from .complexlazy import ComplexLazyTensor
from .kernels import kernel_product, KERNELS
from .solve import KernelSolve
from . import cluster
from .generic import KernelProduct, generic_argkmin, generic_argmin, generic_logsumexp, generic_sum
from ._progress import set_progress_bar

from ._version import __version__

__all__ = [
    "Genred",
    "LazyTensor",
    "ComplexLazyTensor",
    "Vi",
    "Vj",
    "Pm",
    "aslinearoperator",
    "kernel_product",
    "KERNELS",
    "KernelSolve",
    "cluster",
    "KernelProduct",
    "generic_sum",
    "generic_logsumexp",
    "generic_argmin",
    "generic_argkmin",
    "KpError",
    "KpValueError",
    "KpTypeError",
    "KpMemoryError",
    "KpNotImplementedError",
    "KpRuntimeError",
    "set_num_threads",
    "get_num_threads",
    "set_sum_scheme",
    "set_math_mode",
    "get_math_mode",
    "library_path",
    "set_progress_bar",
    "formula_text",
]


def formula_text(formula, aliases=(), reduction_op=None, axis=1, **kwargs):
    """libkp's canonical print of a formula (after simplification), e.g. to see
    what a LazyTensor expression or a gradient becomes."""
    from ._lib import registry
    from .genred import reduction_text

    text = formula if reduction_op is None else reduction_text(formula, reduction_op, axis, **kwargs)
    return registry().get(("parse", text, tuple(aliases))).text()


def __getattr__(name):
    # pykp.ot needs torch: imported on first use, so that `import pykp` stays NumPy-only
    if name == "ot":
        import importlib

        return importlib.import_module(".ot", __name__)
    raise AttributeError("module 'pykp' has no attribute %r" % name)
