/*
 * jit_ops.c — the op semantics of compiled kernels. Not part of libkp's
 * objects: clang compiles it to LLVM bitcode at build time (-O2
 * -fno-math-errno), the bitcode is embedded in libkp (jit_bitcode.c) and the
 * kernel builder calls these functions, which the optimizer inlines.
 *
 *   kp_jit_seval_f32/f64   every elementwise op on one scalar: in
 *                          jit_seval.c (compiled once per precision and
 *                          linked with this file's bitcode).
 *   kp_jit_exp_f32xN       expf on N lanes (N = 4, 8, 16): the interpreter's
 *                          float32 exp (cpu/kernel_ops.h), same reduction,
 *                          same Cephes polynomial, same special values
 *                          (< 3 ulp on [-87.3, 88.7], 0 below, +inf above).
 *   kp_jit_exp_f64xN       exp on N lanes (N = 2, 4, 8): Cody-Waite reduction
 *                          x = n ln2 + r, |r| <= ln2/2, then the degree-13
 *                          Taylor polynomial of exp(r) (truncation < 4e-18
 *                          relative); measured max error 2 ulp against libm
 *                          (tests/test_jit.c). +inf above 709.78, 0 below
 *                          -708.39 (no subnormal results), NaN for NaN.
 * Vectors cross the interface through pointers: a vector argument's calling
 * convention depends on the target features, a pointer's does not.
 */
#include <string.h>

#define KP_JIT_INLINE __attribute__((always_inline))

/* m ? a : b lane by lane (m all ones or zero), as bit operations. */
#define SEL(T, IT, m, a, b) ((T)(((m) & (IT)(a)) | (~(m) & (IT)(b))))

#define KP_JIT_EXP_F32(N)                                                                       \
    typedef float vf##N __attribute__((vector_size(N * 4)));                                    \
    typedef int vi##N __attribute__((vector_size(N * 4)));                                      \
    KP_JIT_INLINE void kp_jit_exp_f32x##N(float *o, const float *a);                            \
    void kp_jit_exp_f32x##N(float *o, const float *a) {                                         \
        const vf##N lo = (vf##N){0} - 87.3f, hi = (vf##N){0} + 88.72283f;                       \
        vf##N x;                                                                                \
        memcpy(&x, a, sizeof x);                                                                \
        vi##N under = x < lo, over = x > hi, nan = x != x;                                      \
        vf##N xc = SEL(vf##N, vi##N, under, lo, SEL(vf##N, vi##N, over, hi, x));                                                \
        vf##N t = xc * 1.44269504088896341f + 12582912.0f;                                      \
        vi##N n = (vi##N)t - 0x4B400000;                                                        \
        vf##N nf = t - 12582912.0f;                                                             \
        vf##N r = xc - nf * 0.693359375f;                                                       \
        r = r - nf * -2.12194440e-4f;                                                           \
        vf##N p = r * 1.9875691500e-4f + 1.3981999507e-3f;                                      \
        p = p * r + 8.3334519073e-3f;                                                           \
        p = p * r + 4.1665795894e-2f;                                                           \
        p = p * r + 1.6666665459e-1f;                                                           \
        p = p * r + 5.0000001201e-1f;                                                           \
        p = p * (r * r) + r + 1.0f;                                                             \
        vf##N y = (vf##N)((vi##N)p + (n << 23));                                                \
        y = SEL(vf##N, vi##N, over, (vf##N){0} + __builtin_inff(), SEL(vf##N, vi##N, under, (vf##N){0}, y));          \
        y = SEL(vf##N, vi##N, nan, x, y);                                                                       \
        memcpy(o, &y, sizeof y);                                                                \
    }

KP_JIT_EXP_F32(4)
KP_JIT_EXP_F32(8)
KP_JIT_EXP_F32(16)

#define KP_JIT_EXP_F64(N)                                                                       \
    typedef double vd##N __attribute__((vector_size(N * 8)));                                   \
    typedef long long vl##N __attribute__((vector_size(N * 8)));                                \
    KP_JIT_INLINE void kp_jit_exp_f64x##N(double *o, const double *a);                          \
    void kp_jit_exp_f64x##N(double *o, const double *a) {                                       \
        const vd##N lo = (vd##N){0} - 708.39, hi = (vd##N){0} + 709.782712893384;              \
        vd##N x;                                                                                \
        memcpy(&x, a, sizeof x);                                                                \
        vl##N under = x < lo, over = x > hi, nan = x != x;                                      \
        vd##N xc = SEL(vd##N, vl##N, under, lo, SEL(vd##N, vl##N, over, hi, x));                                                \
        vd##N t = xc * 1.4426950408889634 + 6755399441055744.0; /* 1.5 * 2^52 */               \
        vl##N n = (vl##N)t - 0x4338000000000000LL;                                              \
        vd##N nf = t - 6755399441055744.0;                                                      \
        vd##N r = xc - nf * 6.93147180369123816490e-01;                                         \
        r = r - nf * 1.90821492927058770002e-10;                                                \
        vd##N p = r * (1.0 / 6227020800.0) + (1.0 / 479001600.0);                               \
        p = p * r + (1.0 / 39916800.0);                                                         \
        p = p * r + (1.0 / 3628800.0);                                                          \
        p = p * r + (1.0 / 362880.0);                                                           \
        p = p * r + (1.0 / 40320.0);                                                            \
        p = p * r + (1.0 / 5040.0);                                                             \
        p = p * r + (1.0 / 720.0);                                                              \
        p = p * r + (1.0 / 120.0);                                                              \
        p = p * r + (1.0 / 24.0);                                                               \
        p = p * r + (1.0 / 6.0);                                                                \
        p = p * r + 0.5;                                                                        \
        p = p * (r * r) + r + 1.0;                                                              \
        vd##N y = (vd##N)((vl##N)p + (n << 52));                                                \
        y = SEL(vd##N, vl##N, over, (vd##N){0} + __builtin_inf(), SEL(vd##N, vl##N, under, (vd##N){0}, y));         \
        y = SEL(vd##N, vl##N, nan, x, y);                                                                       \
        memcpy(o, &y, sizeof y);                                                                \
    }

KP_JIT_EXP_F64(2)
KP_JIT_EXP_F64(4)
KP_JIT_EXP_F64(8)
