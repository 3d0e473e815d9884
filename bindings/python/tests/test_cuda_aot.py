"""The CUDA kernels that libkp compiles ahead of time (src/gpu/aot_set.c) are the
ones pykp.kernel_product generates: for each built-in kernel, mode, dimension
and dtype, the formula text and aliases pykp writes (kernels._compile), its
gradients with respect to x, y and b, are found in libkp's table
(kp_formula_cuda_aot). Fails when kernels.py and aot_set.c drift apart; skipped
when libkp was built without nvcc. Needs no GPU."""
import ctypes

import numpy as np
import pytest

from pykp import _lib
from pykp.kernels import _compile

_count = getattr(_lib.lib, "kp_cuda_aot_kernel_count", None)
_has = getattr(_lib.lib, "kp_formula_cuda_aot", None)
if _count is not None:
    _count.restype = ctypes.c_size_t
    _count.argtypes = []
if _has is not None:
    _has.restype = ctypes.c_int
    _has.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]

pytestmark = pytest.mark.skipif(
    _count is None or _has is None or _count() == 0,
    reason="libkp built without ahead-of-time CUDA kernels (no nvcc at build time)",
)

KP_FLOAT32, KP_FLOAT64 = 0, 1  # kp_dtype (kp.h)
KERNELS = ["gaussian", "laplacian", "cauchy", "inverse_multiquadric", "energy"]
DIMS = [(1, 1), (2, 1), (3, 1), (2, 2), (3, 3)]


def built_in(f, dtype):
    flag = ctypes.c_int(-1)
    st = _has(f.ctx.handle, f.handle, dtype, ctypes.byref(flag))
    assert st == 0, f.ctx.message()
    return flag.value == 1


# energy has no log-domain kernel built in (Log(-|x-y|) is NaN); a 1-D b has one column.
CASES = [
    (kernel, mode, dims, b_1d)
    for kernel in KERNELS
    for mode in ("sum", "lse")
    for dims in DIMS
    for b_1d in (False, True)
    if not (kernel == "energy" and mode == "lse") and not (b_1d and dims[1] != 1)
]


@pytest.mark.parametrize("kernel,mode,dims,b_1d", CASES)
def test_kernel_product_kernels_are_built_in(kernel, mode, dims, b_1d):
    D, E = dims
    x, y = np.zeros((5, D)), np.zeros((4, D))
    b = np.zeros(4) if b_1d else np.zeros((4, E))
    key, _, _ = _compile({"x": x}, {"y": y}, b, kernel, 0.5, mode)
    f = _lib.formula(key)
    grads = [0, 1, f.nargs - 1]  # x, y, b (not sigma: left to NVRTC)
    for dtype in (KP_FLOAT32, KP_FLOAT64):
        assert built_in(f, dtype), "%s %s D=%d E=%d: forward not built in (%s)" % (kernel, mode, D, E, key)
        for k in grads:
            assert built_in(f.grad(k), dtype), "%s %s D=%d E=%d: gradient %d not built in" % (kernel, mode, D, E, k)


def test_other_formulas_are_not_built_in():
    x, y, b = np.zeros((5, 4)), np.zeros((4, 4)), np.zeros((4, 1))
    key, _, _ = _compile({"x": x}, {"y": y}, b, "gaussian", 0.5, "sum")  # D = 4: not in the table
    assert not built_in(_lib.formula(key), KP_FLOAT32)
