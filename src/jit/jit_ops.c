/*
 * jit_ops.c — the op semantics of compiled kernels. Not part of libkp's
 * objects: clang compiles it to LLVM bitcode at build time (-O2
 * -fno-math-errno), the bitcode is embedded in libkp (jit_bitcode.c) and the
 * kernel builder calls these functions, which the optimizer inlines.
 *
 *   kp_jit_seval_f32/f64   every elementwise op on one scalar: in
 *                          jit_seval.c (compiled once per precision and
 *                          linked with this file's bitcode).
 *   kp_jit_exp_f32xN       expf on N lanes (N = 4, 8, 16): the reduction of
 *                          the interpreter's float32 exp (cpu/kernel_ops.h)
 *                          and its special values, a degree-6 polynomial
 *                          (< 2 ulp on [-87.3, 88.7], 0 below, +inf above).
 *   kp_jit_exp_f64xN       exp on N lanes (N = 2, 4, 8): Cody-Waite reduction
 *                          x = n ln2 + r, |r| <= ln2/2, then a degree-11
 *                          polynomial of exp(r) (approximation error 1.6e-17
 *                          relative); measured max error 1.00 ulp against libm
 *                          (tests/test_jit.c). +inf above 709.78, 0 below
 *                          -708.39 (no subnormal results), NaN for NaN.
 *                          N = 16 floats and N = 8 doubles (AVX-512) compute
 *                          the same with fewer operations (below); N = 4
 *                          doubles (AVX2) reads a table of 2^(j/64) and
 *                          takes a polynomial of degree 5 (below).
 *   kp_jit_expneg_*xN      the same exp for x <= 0 (LogSumExp's exp(-|d|)),
 *                          0 for NaN as for x below the range: one mask.
 * Vectors cross the interface through pointers: a vector argument's calling
 * convention depends on the target features, a pointer's does not.
 */
#include <immintrin.h>
#include <string.h>

#define KP_JIT_INLINE __attribute__((always_inline))

/* m ? a : b lane by lane (m all ones or zero), as bit operations. */
#define SEL(T, IT, m, a, b) ((T)(((m) & (IT)(a)) | (~(m) & (IT)(b))))

/* exp on N lanes of E (IE: the integer type of E's width), as the header says:
 * n = round(x log2 e) by the shifter trick (SHIFT = 1.5 * 2^MANT, whose bit
 * pattern SHIFT_BITS subtracted from t's leaves n); r = x - n ln2 with ln2 =
 * LN2_HI + LN2_LO (Cody-Waite, LN2_LO with its sign); exp(r) = 1 + r (1 + r
 * P(r)), where POLY(p, r) sets p = P(r) by Horner steps; 2^n added to the
 * exponent field, MANT bits up. x is not clamped: lanes outside [-LO, HI]
 * (and NaN) compute garbage, which two masks replace at the end: x + inf
 * where x is above HI or NaN (+inf, or NaN itself), and 0 below -LO. That
 * saves about 9 vector operations per exp over clamping x first and
 * selecting (AVX2 kernels, where the exp is most of the work). */
#define KP_JIT_EXP(FN, E, IE, N, LO, HI, LOG2E, SHIFT, SHIFT_BITS, LN2_HI, LN2_LO, ONE, INF, MANT, POLY, FINISH) \
    typedef E FN##_v __attribute__((vector_size(N * sizeof(E))));                                           \
    typedef IE FN##_i __attribute__((vector_size(N * sizeof(E))));                                          \
    KP_JIT_INLINE void FN(E *o, const E *a);                                                                \
    void FN(E *o, const E *a) {                                                                             \
        typedef FN##_v V;                                                                                   \
        typedef FN##_i IV;                                                                                  \
        V x;                                                                                                \
        memcpy(&x, a, sizeof x);                                                                            \
        V t = x * LOG2E + SHIFT;                                                                            \
        IV n = (IV)t - SHIFT_BITS;                                                                          \
        V nf = t - SHIFT;                                                                                   \
        V r = x - nf * LN2_HI;                                                                              \
        r = r - nf * LN2_LO;                                                                                \
        V p;                                                                                                \
        POLY(p, r)                                                                                          \
        p = p * r + ONE;                                                                                    \
        p = p * r + ONE;                                                                                    \
        V y = (V)((IV)p + (n << MANT));                                                                     \
        FINISH(V, IV, x, y, LO, HI, INF)                                                                    \
        memcpy(o, &y, sizeof y);                                                                            \
    }

/* exp's ends: +inf above HI, the NaN itself, 0 below -LO. */
#define KP_JIT_FINISH_ALL(V, IV, x, y, LO, HI, INF)                                                         \
    y = SEL(V, IV, ~(x <= (HI)), x + INF, y);                                                               \
    y = (V)(~(x < -(LO)) & (IV)y);
/* expneg's (x <= 0 or NaN): 0 below -LO and for NaN, one mask. */
#define KP_JIT_FINISH_NEG(V, IV, x, y, LO, HI, INF) y = (V)((x >= -(LO)) & (IV)y);

/* float32: P(r) of degree 4, the Chebyshev fit of (exp(r) - 1 - r) / r^2 on
 * |r| <= ln2/2 rounded to float (scripts/exp_poly.py --float32): exp(r)
 * within 1.04e-8 relative (0.17 ulp) before the rounding of the steps, in 4
 * FMAs where the Cephes polynomial of the interpreter's expf takes 5. */
#define KP_JIT_C32_4 0.001392625f
#define KP_JIT_C32_3 0.008363233f
#define KP_JIT_C32_2 0.041666552f
#define KP_JIT_C32_1 0.16666576f
#define KP_JIT_C32_0 0.5f
#define KP_JIT_POLY_F32(p, r)                                                                               \
    p = r * KP_JIT_C32_4 + KP_JIT_C32_3;                                                                    \
    p = p * r + KP_JIT_C32_2;                                                                               \
    p = p * r + KP_JIT_C32_1;                                                                               \
    p = p * r + KP_JIT_C32_0;
#define KP_JIT_EXP_F32(FN, N, FINISH)                                                                       \
    KP_JIT_EXP(FN##_f32x##N, float, int, N, 87.3f, 88.72283f, 1.44269504088896341f, 12582912.0f, 0x4B400000, \
               0.693359375f, -2.12194440e-4f, 1.0f, __builtin_inff(), 23, KP_JIT_POLY_F32, FINISH)

/* float64: P(r) of degree 9, the Chebyshev fit of (exp(r) - 1 - r) / r^2 on
 * |r| <= ln2/2 (scripts/exp_poly.py), highest degree first: with the two
 * FMAs of the tail, exp(r) within 1.6e-17 relative (0.14 ulp) before the
 * rounding of the steps, in 9 FMAs where the degree-13 Taylor polynomial took
 * 11. */
#define KP_JIT_C64_9 2.510038549551032e-08
#define KP_JIT_C64_8 2.7620088445409746e-07
#define KP_JIT_C64_7 2.7557268459997064e-06
#define KP_JIT_C64_6 2.4801521295954376e-05
#define KP_JIT_C64_5 0.00019841269863053618
#define KP_JIT_C64_4 0.0013888888917213717
#define KP_JIT_C64_3 0.008333333333330062
#define KP_JIT_C64_2 0.04166666666662413
#define KP_JIT_C64_1 0.16666666666666669
#define KP_JIT_C64_0 0.5000000000000001
#define KP_JIT_POLY_F64(p, r)                                                                               \
    p = r * KP_JIT_C64_9 + KP_JIT_C64_8;                                                                    \
    p = p * r + KP_JIT_C64_7;                                                                               \
    p = p * r + KP_JIT_C64_6;                                                                               \
    p = p * r + KP_JIT_C64_5;                                                                               \
    p = p * r + KP_JIT_C64_4;                                                                               \
    p = p * r + KP_JIT_C64_3;                                                                               \
    p = p * r + KP_JIT_C64_2;                                                                               \
    p = p * r + KP_JIT_C64_1;                                                                               \
    p = p * r + KP_JIT_C64_0;
#define KP_JIT_EXP_F64(FN, N, FINISH)                                                                       \
    KP_JIT_EXP(FN##_f64x##N, double, long long, N, 708.39, 709.782712893384, 1.4426950408889634,             \
               6755399441055744.0, 0x4338000000000000LL, 6.93147180369123816490e-01,                          \
               1.90821492927058770002e-10, 1.0, __builtin_inf(), 52, KP_JIT_POLY_F64, FINISH)

KP_JIT_EXP_F32(kp_jit_exp, 4, KP_JIT_FINISH_ALL)
KP_JIT_EXP_F32(kp_jit_exp, 8, KP_JIT_FINISH_ALL)
KP_JIT_EXP_F64(kp_jit_exp, 2, KP_JIT_FINISH_ALL)
KP_JIT_EXP_F32(kp_jit_expneg, 4, KP_JIT_FINISH_NEG)
KP_JIT_EXP_F32(kp_jit_expneg, 8, KP_JIT_FINISH_NEG)
KP_JIT_EXP_F64(kp_jit_expneg, 2, KP_JIT_FINISH_NEG)

/* float64 on 4 lanes (AVX2 kernels, where the exp is most of the work): a
 * table instead of most of the polynomial. x = (k / 64) ln2 + r, |r| <=
 * ln2 / 128 (k by the shifter trick, r by Cody-Waite with ln2 / 64), exp(x) =
 * 2^(k >> 6) T[k & 63] exp(r): T[j] = 2^(j / 64) correctly rounded, read by
 * one gather; exp(r) = 1 + q, q = r + r^2 P(r), P of degree 3 (the Chebyshev
 * fit on that range, approximation error 4.4e-18 relative); y = T + T q in one
 * rounding; 2^(k >> 6) added to the exponent field: the shifter's bits, their
 * low 6 bits cleared and shifted up by 46, are (k >> 6) << 52 (AVX2 has no
 * 64-bit arithmetic shift). The same ends as the others (masks on x; a NaN or
 * infinite x still reads T inside the table). About 16 vector
 * operations and a gather where the degree-11 polynomial takes about 20.
 * scripts/exp_poly.py --table 64 --degree 3 prints P and T. */
#define KP_JIT_CT64_3 0.008333339152857227
#define KP_JIT_CT64_2 0.041666707403338075
#define KP_JIT_CT64_1 0.16666666666664534
#define KP_JIT_CT64_0 0.4999999999998506
#define KP_JIT_T64 { \
    0x1.0000000000000p+0, 0x1.02c9a3e778061p+0, 0x1.059b0d3158574p+0, 0x1.0874518759bc8p+0, \
    0x1.0b5586cf9890fp+0, 0x1.0e3ec32d3d1a2p+0, 0x1.11301d0125b51p+0, 0x1.1429aaea92de0p+0, \
    0x1.172b83c7d517bp+0, 0x1.1a35beb6fcb75p+0, 0x1.1d4873168b9aap+0, 0x1.2063b88628cd6p+0, \
    0x1.2387a6e756238p+0, 0x1.26b4565e27cddp+0, 0x1.29e9df51fdee1p+0, 0x1.2d285a6e4030bp+0, \
    0x1.306fe0a31b715p+0, 0x1.33c08b26416ffp+0, 0x1.371a7373aa9cbp+0, 0x1.3a7db34e59ff7p+0, \
    0x1.3dea64c123422p+0, 0x1.4160a21f72e2ap+0, 0x1.44e086061892dp+0, 0x1.486a2b5c13cd0p+0, \
    0x1.4bfdad5362a27p+0, 0x1.4f9b2769d2ca7p+0, 0x1.5342b569d4f82p+0, 0x1.56f4736b527dap+0, \
    0x1.5ab07dd485429p+0, 0x1.5e76f15ad2148p+0, 0x1.6247eb03a5585p+0, 0x1.6623882552225p+0, \
    0x1.6a09e667f3bcdp+0, 0x1.6dfb23c651a2fp+0, 0x1.71f75e8ec5f74p+0, 0x1.75feb564267c9p+0, \
    0x1.7a11473eb0187p+0, 0x1.7e2f336cf4e62p+0, 0x1.82589994cce13p+0, 0x1.868d99b4492edp+0, \
    0x1.8ace5422aa0dbp+0, 0x1.8f1ae99157736p+0, 0x1.93737b0cdc5e5p+0, 0x1.97d829fde4e50p+0, \
    0x1.9c49182a3f090p+0, 0x1.a0c667b5de565p+0, 0x1.a5503b23e255dp+0, 0x1.a9e6b5579fdbfp+0, \
    0x1.ae89f995ad3adp+0, 0x1.b33a2b84f15fbp+0, 0x1.b7f76f2fb5e47p+0, 0x1.bcc1e904bc1d2p+0, \
    0x1.c199bdd85529cp+0, 0x1.c67f12e57d14bp+0, 0x1.cb720dcef9069p+0, 0x1.d072d4a07897cp+0, \
    0x1.d5818dcfba487p+0, 0x1.da9e603db3285p+0, 0x1.dfc97337b9b5fp+0, 0x1.e502ee78b3ff6p+0, \
    0x1.ea4afa2a490dap+0, 0x1.efa1bee615a27p+0, 0x1.f50765b6e4540p+0, 0x1.fa7c1819e90d8p+0, \
}
static const double kp_jit_t64[64] = KP_JIT_T64;
#define KP_JIT_EXP_F64X4(FN, FINISH)                                                                        \
    KP_JIT_INLINE __attribute__((target("avx2,fma"))) void FN(double *o, const double *a);                  \
    __attribute__((target("avx2,fma"))) void FN(double *o, const double *a) {                               \
        typedef double V __attribute__((vector_size(32)));                                                  \
        typedef long long IV __attribute__((vector_size(32)));                                              \
        const double shift = 6755399441055744.0;                                                            \
        V x;                                                                                                \
        memcpy(&x, a, sizeof x);                                                                            \
        V t = x * (64 * 1.4426950408889634) + shift;                                                        \
        IV bits = (IV)t;                                                                                    \
        V kf = t - shift;                                                                                   \
        V r = x - kf * (6.93147180369123816490e-01 / 64);                                                   \
        r = r - kf * (1.90821492927058770002e-10 / 64);                                                     \
        V p = r * KP_JIT_CT64_3 + KP_JIT_CT64_2;                                                            \
        p = p * r + KP_JIT_CT64_1;                                                                          \
        p = p * r + KP_JIT_CT64_0;                                                                          \
        V q = (r * r) * p + r;                                                                              \
        V T = (V)_mm256_i64gather_pd(kp_jit_t64, (__m256i)(bits & 63), 8);                                  \
        V y = T * q + T;                                                                                    \
        y = (V)((IV)y + ((bits & ~63LL) << 46));                                                            \
        FINISH(V, IV, x, y, 708.39, 709.782712893384, __builtin_inf())                                     \
        memcpy(o, &y, sizeof y);                                                                            \
    }
KP_JIT_EXP_F64X4(kp_jit_exp_f64x4, KP_JIT_FINISH_ALL)
KP_JIT_EXP_F64X4(kp_jit_expneg_f64x4, KP_JIT_FINISH_NEG)

/* The full-width AVX-512 vectors (the CPU engine asks for kernels of 16
 * floats or 8 doubles only on AVX-512 hosts, and nothing else may: these use
 * AVX-512 instructions) take a shorter exp: the same reduction and
 * polynomials, but x clamped by min/max (NaN passes through both), the
 * polynomial's tail as two FMAs, and 2^n applied by VSCALEF, which also gives
 * +inf on overflow, so that only the float64 underflow needs a mask (14
 * vector operations in float32 and 21 in float64 instead of about 24 and 30).
 * The clamp keeps x - n ln2 finite for x = +-inf. Below the range, float32
 * kernels run with flush-to-zero (cpu/fpenv.h), so a result under FLT_MIN is
 * 0 at no cost; float64 kernels do not, and an underflowing VSCALEF would
 * take a microcode assist (~100 cycles) per lane: x is clamped where the
 * result is still normal and the lanes below -708.39 are zeroed by the
 * instruction's mask, the interpreter's rule. */
#define KP_JIT_EXP512(FN, E, V, SUF, LO, HI, LOG2E, SHIFT, LN2_HI, LN2_LO, POLY, CLAMP, RESULT)              \
    KP_JIT_INLINE __attribute__((target("avx512f"))) void FN(E *o, const E *a);                             \
    __attribute__((target("avx512f"))) void FN(E *o, const E *a) {                                          \
        V x = _mm512_loadu_##SUF(a);                                                                        \
        x = CLAMP(SUF, x, LO, HI);                                                                          \
        V t = _mm512_fmadd_##SUF(x, _mm512_set1_##SUF(LOG2E), _mm512_set1_##SUF(SHIFT));                   \
        V nf = _mm512_sub_##SUF(t, _mm512_set1_##SUF(SHIFT));                                               \
        V r = _mm512_fnmadd_##SUF(nf, _mm512_set1_##SUF(LN2_HI), x);                                        \
        r = _mm512_fnmadd_##SUF(nf, _mm512_set1_##SUF(LN2_LO), r);                                          \
        V p;                                                                                                \
        POLY(p, r, SUF)                                                                                     \
        p = _mm512_fmadd_##SUF(p, r, _mm512_set1_##SUF(1));                                                 \
        p = _mm512_fmadd_##SUF(p, r, _mm512_set1_##SUF(1));                                                 \
        _mm512_storeu_##SUF(o, RESULT(SUF, p, nf, x));                                                      \
    }

#define KP_JIT_HORNER(p, r, SUF, c) p = _mm512_fmadd_##SUF(p, r, _mm512_set1_##SUF(c));
#define KP_JIT_POLY512_F32(p, r, SUF)                                                                       \
    p = _mm512_fmadd_##SUF(r, _mm512_set1_##SUF(KP_JIT_C32_4), _mm512_set1_##SUF(KP_JIT_C32_3));            \
    KP_JIT_HORNER(p, r, SUF, KP_JIT_C32_2)                                                                  \
    KP_JIT_HORNER(p, r, SUF, KP_JIT_C32_1)                                                                  \
    KP_JIT_HORNER(p, r, SUF, KP_JIT_C32_0)
#define KP_JIT_POLY512_F64(p, r, SUF)                                                                       \
    p = _mm512_fmadd_##SUF(r, _mm512_set1_##SUF(KP_JIT_C64_9), _mm512_set1_##SUF(KP_JIT_C64_8));            \
    KP_JIT_HORNER(p, r, SUF, KP_JIT_C64_7)                                                                  \
    KP_JIT_HORNER(p, r, SUF, KP_JIT_C64_6)                                                                  \
    KP_JIT_HORNER(p, r, SUF, KP_JIT_C64_5)                                                                  \
    KP_JIT_HORNER(p, r, SUF, KP_JIT_C64_4)                                                                  \
    KP_JIT_HORNER(p, r, SUF, KP_JIT_C64_3)                                                                  \
    KP_JIT_HORNER(p, r, SUF, KP_JIT_C64_2)                                                                  \
    KP_JIT_HORNER(p, r, SUF, KP_JIT_C64_1)                                                                  \
    KP_JIT_HORNER(p, r, SUF, KP_JIT_C64_0)

#define KP_JIT_CLAMP(SUF, x, LO, HI) _mm512_min_##SUF(_mm512_set1_##SUF(HI), _mm512_max_##SUF(_mm512_set1_##SUF(-(LO)), x))
/* expneg (x <= 0 or NaN): no clamp, the result's mask drops the lanes out of range. */
#define KP_JIT_NO_CLAMP(SUF, x, LO, HI) (x)

/* p 2^n; float64: 0 where the clamped x is at the clamp (x <= -708.39, not NaN). */
#define KP_JIT_SCALE_F32(SUF, p, nf, xc) _mm512_scalef_##SUF(p, nf)
#define KP_JIT_SCALE_F64(SUF, p, nf, xc)                                                                    \
    _mm512_maskz_scalef_##SUF(_mm512_cmp_##SUF##_mask(xc, _mm512_set1_##SUF(-708.39), _CMP_NLE_UQ), p, nf)
/* expneg: 0 below the range (float32: -104, flushed to 0 from -87.3 on) and for NaN. */
#define KP_JIT_SCALE_NEG_F32(SUF, p, nf, x)                                                                 \
    _mm512_maskz_scalef_##SUF(_mm512_cmp_##SUF##_mask(x, _mm512_set1_##SUF(-104.0f), _CMP_GE_OQ), p, nf)
#define KP_JIT_SCALE_NEG_F64(SUF, p, nf, x)                                                                 \
    _mm512_maskz_scalef_##SUF(_mm512_cmp_##SUF##_mask(x, _mm512_set1_##SUF(-708.39), _CMP_GT_OQ), p, nf)

/* expnp (x <= 0 or NaN): no clamp; the lanes below the clamp are 0, as the
 * clamped exp gives them (float32: flushed to 0 from -87.3 on), and NaN
 * stays NaN (the mask keeps unordered lanes): for every such x, the clamped
 * exp's bits with one compare instead of two clamps. */
#define KP_JIT_SCALE_NP_F32(SUF, p, nf, x)                                                                  \
    _mm512_maskz_scalef_##SUF(_mm512_cmp_##SUF##_mask(x, _mm512_set1_##SUF(-104.0f), _CMP_NLT_UQ), p, nf)
#define KP_JIT_SCALE_NP_F64 KP_JIT_SCALE_F64

/* Clamps: below -104 float32 exp is under FLT_MIN (flushed to 0); above 100
 * (float32) or 710 (float64) it overflows to +inf. */
#define KP_JIT_EXP512_F32(FN, CLAMP, RESULT)                                                                \
    KP_JIT_EXP512(FN, float, __m512, ps, 104.0f, 100.0f, 1.44269504088896341f, 12582912.0f, 0.693359375f,    \
                  -2.12194440e-4f, KP_JIT_POLY512_F32, CLAMP, RESULT)
#define KP_JIT_EXP512_F64(FN, CLAMP, RESULT)                                                                \
    KP_JIT_EXP512(FN, double, __m512d, pd, 708.39, 710.0, 1.4426950408889634, 6755399441055744.0,            \
                  6.93147180369123816490e-01, 1.90821492927058770002e-10, KP_JIT_POLY512_F64, CLAMP, RESULT)
KP_JIT_EXP512_F32(kp_jit_exp_f32x16, KP_JIT_CLAMP, KP_JIT_SCALE_F32)
KP_JIT_EXP512_F64(kp_jit_exp_f64x8, KP_JIT_CLAMP, KP_JIT_SCALE_F64)
KP_JIT_EXP512_F32(kp_jit_expneg_f32x16, KP_JIT_NO_CLAMP, KP_JIT_SCALE_NEG_F32)
KP_JIT_EXP512_F64(kp_jit_expneg_f64x8, KP_JIT_NO_CLAMP, KP_JIT_SCALE_NEG_F64)
KP_JIT_EXP512_F32(kp_jit_expnp_f32x16, KP_JIT_NO_CLAMP, KP_JIT_SCALE_NP_F32)
KP_JIT_EXP512_F64(kp_jit_expnp_f64x8, KP_JIT_NO_CLAMP, KP_JIT_SCALE_NP_F64)
