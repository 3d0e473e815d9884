/*
 * jit_seval.c — every elementwise op on one scalar, for compiled kernels:
 * the same definition (formula/scalar_eval.h over src/device/) as constant
 * folding and the interpreter's scalar path. The device sources take one real
 * type per translation unit, so clang compiles this file twice to bitcode
 * (KP_REAL_F32 = 1: kp_jit_seval_f32; 0: kp_jit_seval_f64), and llvm-link
 * joins both with jit_ops.c's (src/jit/jit.cmake). A kernel calls it with a
 * constant op, so only that case survives inlining.
 */
#include "formula/scalar_eval.h"

#if KP_REAL_F32
#define KP_JIT_SEVAL kp_jit_seval_f32
#else
#define KP_JIT_SEVAL kp_jit_seval_f64
#endif

__attribute__((always_inline)) KP_REAL KP_JIT_SEVAL(int op, KP_REAL a, KP_REAL b, KP_REAL c, int ip);
KP_REAL KP_JIT_SEVAL(int op, KP_REAL a, KP_REAL b, KP_REAL c, int ip) {
    return kp__scalar_eval((kp_op)op, a, b, c, ip);
}
