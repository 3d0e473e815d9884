"""pykp.set_math_mode: the math functions of libkp's GPU kernels (kp_math_mode).

The fast mode only changes GPU kernels (float32 exp, log, rsqrt on the
hardware's approximations), so what is checked here, without a GPU:
- the setting reaches the kp_context pykp computes with: the CUDA kernel that
  context generates for a formula switches to ex2.approx (kp_formula_gpu_source);
- CPU results do not change by a bit;
- bad names are refused, and the default is 'accurate'.
"""
import ctypes

import numpy as np
import pytest

import pykp
from pykp import _lib

KP_FLOAT32, KP_ENGINE_CUDA = 0, 2

GAUSS = ("Exp(-SqDist(x,y)*g)*b", ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"])


@pytest.fixture(autouse=True)
def accurate_after():
    yield
    pykp.set_math_mode("accurate")


def _cuda_source(ctx_handle):
    """The CUDA kernel source the context generates for the Gaussian kernel product, float32."""
    lib = _lib.lib
    lib.kp_formula_gpu_source.restype = ctypes.c_int
    lib.kp_formula_gpu_source.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                          ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    f = ctypes.c_void_p()
    aliases = (ctypes.c_char_p * 4)(*[a.encode() for a in GAUSS[1]])
    st = _lib._formula_parse(ctx_handle, b"Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)", aliases, 4, ctypes.byref(f))
    assert st == 0
    need = ctypes.c_size_t()
    assert lib.kp_formula_gpu_source(ctx_handle, f, KP_FLOAT32, KP_ENGINE_CUDA, None, 0, ctypes.byref(need)) == 0
    buf = ctypes.create_string_buffer(need.value + 1)
    assert lib.kp_formula_gpu_source(ctx_handle, f, KP_FLOAT32, KP_ENGINE_CUDA, buf, need.value + 1, None) == 0
    _lib._formula_free(f)
    return buf.value.decode()


def _run(x, y, b):
    return pykp.Genred(*GAUSS, reduction_op="Sum", axis=1)(x, y, np.array([2.0], dtype=np.float32), b)


def test_default_is_accurate():
    assert pykp.get_math_mode() == "accurate"


def test_fast_mode_reaches_the_context_and_leaves_cpu_results_alone():
    rng = np.random.default_rng(0)
    x, y = rng.random((200, 3), dtype=np.float32), rng.random((300, 3), dtype=np.float32)
    b = rng.random((300, 1), dtype=np.float32)
    accurate = _run(x, y, b)
    ctx = _lib.registry().ctx
    assert "ex2.approx" not in _cuda_source(ctx.handle)
    pykp.set_math_mode("fast")
    assert pykp.get_math_mode() == "fast"
    fast = _run(x, y, b)
    assert _lib.registry().ctx is ctx
    assert "ex2.approx.ftz.f32" in _cuda_source(ctx.handle), "the context did not get KP_MATH_FAST"
    np.testing.assert_array_equal(fast, accurate)  # the CPU engine ignores the math mode
    pykp.set_math_mode("accurate")
    _run(x, y, b)
    assert "ex2.approx" not in _cuda_source(ctx.handle)


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="math mode must be one of"):
        pykp.set_math_mode("fastest")
    assert pykp.get_math_mode() == "accurate"
