/*
 * simd.h — the SIMD vocabulary of one kernel build: REAL x ISA.
 *
 * A kernel translation unit defines KP_REAL_F32 (1 for float, 0 for double) and
 * one of KP_ISA_AVX512, KP_ISA_AVX2, KP_ISA_GENERIC, then includes this file and
 * kernel_impl.h. Kernels are written once against these names:
 *
 *   REAL, TILE        scalar type and lanes per tile (2 KiB per component)
 *   VL                elements per vector register (1 for the generic build)
 *   VT, VLD, VST, VSET vector type, unaligned load/store, broadcast
 *   VMIN, VMAX        lane-wise a < b ? a : b and a > b ? a : b (so a NaN in a
 *                     gives b), as x86 min/max do
 *   VFN(name)         SLEEF vector function, 1.0-ulp accuracy (u10)
 *   LM(name)          libm function for REAL (scalar fallback)
 *   vbeats(f, t, mx)  one bit per lane of the VL values at f: the value beats t
 *                     (mx: is above it; else below it) or is NaN
 *   vwithin(f, t, mx)  one bit per lane: the value is not beyond t (mx: not
 *                     below it; else not above it), NaN included
 *   KP_VKMIN_MAX, vkmin_load, vkmin_push, vkmin_store  (AVX-512 only) a
 *                     sorted list of K <= KP_VKMIN_MAX contiguous slots, held
 *                     in registers, takes (x, j) after the slots x does not
 *                     beat (mx: is not above; else not below); x must be a
 *                     number, the empty slots hold the identity (+inf; mx:
 *                     -inf); vkmin_offsets: the lanes of a vector worth
 *                     offering
 */
#ifndef KP_CPU_SIMD_H
#define KP_CPU_SIMD_H

#include <math.h>

#if KP_REAL_F32
#define REAL float
#define TILE 512
#define LM(fn) fn##f
#else
#define REAL double
#define TILE 256
#define LM(fn) fn
#endif

#if defined(KP_ISA_AVX512) || defined(KP_ISA_AVX2)
#include <immintrin.h>
#include <sleef.h>
#endif

#if defined(KP_ISA_AVX512) && KP_REAL_F32
#define VL 16
#define VT __m512
#define VLD _mm512_loadu_ps
#define VST _mm512_storeu_ps
#define VSET _mm512_set1_ps
#define VMIN _mm512_min_ps
#define VMAX _mm512_max_ps
#define VFN(name) Sleef_##name##f16_u10avx512f
#elif defined(KP_ISA_AVX512)
#define VL 8
#define VT __m512d
#define VLD _mm512_loadu_pd
#define VST _mm512_storeu_pd
#define VSET _mm512_set1_pd
#define VMIN _mm512_min_pd
#define VMAX _mm512_max_pd
#define VFN(name) Sleef_##name##d8_u10avx512f
#elif defined(KP_ISA_AVX2) && KP_REAL_F32
#define VL 8
#define VT __m256
#define VLD _mm256_loadu_ps
#define VST _mm256_storeu_ps
#define VSET _mm256_set1_ps
#define VMIN _mm256_min_ps
#define VMAX _mm256_max_ps
#define VFN(name) Sleef_##name##f8_u10avx2
#elif defined(KP_ISA_AVX2)
#define VL 4
#define VT __m256d
#define VLD _mm256_loadu_pd
#define VST _mm256_storeu_pd
#define VSET _mm256_set1_pd
#define VMIN _mm256_min_pd
#define VMAX _mm256_max_pd
#define VFN(name) Sleef_##name##d4_u10avx2
#elif defined(KP_ISA_GENERIC)
#define VL 1
#else
#error "define one of KP_ISA_AVX512, KP_ISA_AVX2, KP_ISA_GENERIC"
#endif

#if defined(KP_ISA_AVX512) && KP_REAL_F32
static inline unsigned vbeats(const REAL *f, REAL t, int mx) {
    __m512 v = VLD(f), w = VSET(t);
    return (unsigned)(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) |
                      (mx ? _mm512_cmp_ps_mask(v, w, _CMP_GT_OQ) : _mm512_cmp_ps_mask(v, w, _CMP_LT_OQ)));
}
static inline unsigned vwithin(const REAL *f, REAL t, int mx) {
    __m512 v = VLD(f), w = VSET(t);
    return (unsigned)(mx ? _mm512_cmp_ps_mask(v, w, _CMP_NLT_UQ) : _mm512_cmp_ps_mask(v, w, _CMP_NGT_UQ));
}
#elif defined(KP_ISA_AVX512)
static inline unsigned vbeats(const REAL *f, REAL t, int mx) {
    __m512d v = VLD(f), w = VSET(t);
    return (unsigned)(_mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q) |
                      (mx ? _mm512_cmp_pd_mask(v, w, _CMP_GT_OQ) : _mm512_cmp_pd_mask(v, w, _CMP_LT_OQ)));
}
static inline unsigned vwithin(const REAL *f, REAL t, int mx) {
    __m512d v = VLD(f), w = VSET(t);
    return (unsigned)(mx ? _mm512_cmp_pd_mask(v, w, _CMP_NLT_UQ) : _mm512_cmp_pd_mask(v, w, _CMP_NGT_UQ));
}
#elif defined(KP_ISA_AVX2) && KP_REAL_F32
static inline unsigned vbeats(const REAL *f, REAL t, int mx) {
    __m256 v = VLD(f), w = VSET(t);
    __m256 b = mx ? _mm256_cmp_ps(v, w, _CMP_GT_OQ) : _mm256_cmp_ps(v, w, _CMP_LT_OQ);
    return (unsigned)_mm256_movemask_ps(_mm256_or_ps(b, _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
}
static inline unsigned vwithin(const REAL *f, REAL t, int mx) {
    __m256 v = VLD(f), w = VSET(t);
    return (unsigned)_mm256_movemask_ps(mx ? _mm256_cmp_ps(v, w, _CMP_NLT_UQ) : _mm256_cmp_ps(v, w, _CMP_NGT_UQ));
}
#elif defined(KP_ISA_AVX2)
static inline unsigned vbeats(const REAL *f, REAL t, int mx) {
    __m256d v = VLD(f), w = VSET(t);
    __m256d b = mx ? _mm256_cmp_pd(v, w, _CMP_GT_OQ) : _mm256_cmp_pd(v, w, _CMP_LT_OQ);
    return (unsigned)_mm256_movemask_pd(_mm256_or_pd(b, _mm256_cmp_pd(v, v, _CMP_UNORD_Q)));
}
static inline unsigned vwithin(const REAL *f, REAL t, int mx) {
    __m256d v = VLD(f), w = VSET(t);
    return (unsigned)_mm256_movemask_pd(mx ? _mm256_cmp_pd(v, w, _CMP_NLT_UQ) : _mm256_cmp_pd(v, w, _CMP_NGT_UQ));
}
#else
static inline unsigned vbeats(const REAL *f, REAL t, int mx) {
    return (unsigned)((mx ? *f > t : *f < t) | (*f != *f));
}
static inline unsigned vwithin(const REAL *f, REAL t, int mx) { return (unsigned)(mx ? !(*f < t) : !(*f > t)); }
#endif

#if defined(KP_ISA_AVX512)
/* A K-list in registers (vkmin_load .. vkmin_store), so that a tile's
 * insertions do not wait on each other's masked stores and loads. */
#define KP_VKMIN_MAX 8
#if KP_REAL_F32
typedef __m512 vkmin_values;
#else
typedef __m512d vkmin_values;
#endif
typedef struct vkmin_list {
    vkmin_values v; /* slots 0..K-1 */
    __m512i ix;
} vkmin_list;

static inline vkmin_list vkmin_load(const REAL *v, const int64_t *ix, int K) {
    __mmask8 km = (__mmask8)((1u << K) - 1);
#if KP_REAL_F32
    vkmin_list L = {_mm512_maskz_loadu_ps(km, v), _mm512_maskz_loadu_epi64(km, ix)};
#else
    vkmin_list L = {_mm512_maskz_loadu_pd(km, v), _mm512_maskz_loadu_epi64(km, ix)};
#endif
    return L;
}

static inline void vkmin_store(const vkmin_list *L, REAL *v, int64_t *ix, int K) {
    __mmask8 km = (__mmask8)((1u << K) - 1);
#if KP_REAL_F32
    _mm512_mask_storeu_ps(v, km, L->v);
#else
    _mm512_mask_storeu_pd(v, km, L->v);
#endif
    _mm512_mask_storeu_epi64(ix, km, L->ix);
}

/* The slots x beats are a suffix [p, K) (the list is sorted): they take
 * their predecessor's entry (a lane permutation), then slot p takes x; when
 * x beats none, every mask is empty and nothing changes. */
static inline void vkmin_push(vkmin_list *L, int K, REAL x, int64_t j, int mx) {
    __mmask8 km = (__mmask8)((1u << K) - 1);
    __m512i prev = _mm512_set_epi64(6, 5, 4, 3, 2, 1, 0, 0);
#if KP_REAL_F32
    __m512 xv = VSET(x);
    __mmask8 beaten = (__mmask8)(km & (mx ? _mm512_cmp_ps_mask(xv, L->v, _CMP_GT_OQ)
                                          : _mm512_cmp_ps_mask(xv, L->v, _CMP_LT_OQ)));
    __m512 sh = _mm512_permutexvar_ps(_mm512_set_epi32(14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0), L->v);
    int p = K - __builtin_popcount(beaten);
    __mmask8 at = (__mmask8)(beaten & (1u << p));
    L->v = _mm512_mask_mov_ps(_mm512_mask_mov_ps(L->v, beaten, sh), at, xv);
#else
    __m512d xv = VSET(x);
    __mmask8 beaten = (__mmask8)(km & (mx ? _mm512_cmp_pd_mask(xv, L->v, _CMP_GT_OQ)
                                          : _mm512_cmp_pd_mask(xv, L->v, _CMP_LT_OQ)));
    __m512d sh = _mm512_permutexvar_pd(prev, L->v);
    int p = K - __builtin_popcount(beaten);
    __mmask8 at = (__mmask8)(beaten & (1u << p));
    L->v = _mm512_mask_mov_pd(_mm512_mask_mov_pd(L->v, beaten, sh), at, xv);
#endif
    L->ix = _mm512_mask_mov_epi64(_mm512_mask_mov_epi64(L->ix, beaten, _mm512_permutexvar_epi64(prev, L->ix)), at,
                                  _mm512_set1_epi64(j));
}

/* Appends to co the offsets base + l of the values f[l], l < n (0 < n <=
 * 16; those past n are not read), that beat u (beat: vbeats; else not
 * beyond it: vwithin), in order; returns how many. Without branches: co
 * takes 16 entries whatever the count. */
static inline int vkmin_offsets(const REAL *f, int n, REAL u, int beat, int mx, int32_t *co, int base) {
    __m512i lane = _mm512_add_epi32(_mm512_set1_epi32(base),
                                    _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
    __mmask16 live = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
#if KP_REAL_F32
    __m512 v = _mm512_maskz_loadu_ps(live, f), uv = VSET(u);
    __mmask16 m = beat ? (mx ? _mm512_cmp_ps_mask(v, uv, _CMP_NLE_UQ) : _mm512_cmp_ps_mask(v, uv, _CMP_NGE_UQ))
                       : (mx ? _mm512_cmp_ps_mask(v, uv, _CMP_NLT_UQ) : _mm512_cmp_ps_mask(v, uv, _CMP_NGT_UQ));
#else
    __mmask8 lo = (__mmask8)live, hi = (__mmask8)(live >> 8);
    __m512d v0 = _mm512_maskz_loadu_pd(lo, f), v1 = _mm512_maskz_loadu_pd(hi, f + 8), uv = VSET(u);
#define KP_OFFSET_TEST(v)                                                                                            \
    (beat ? (mx ? _mm512_cmp_pd_mask(v, uv, _CMP_NLE_UQ) : _mm512_cmp_pd_mask(v, uv, _CMP_NGE_UQ))                   \
          : (mx ? _mm512_cmp_pd_mask(v, uv, _CMP_NLT_UQ) : _mm512_cmp_pd_mask(v, uv, _CMP_NGT_UQ)))
    __mmask16 m = (__mmask16)(KP_OFFSET_TEST(v0) | (unsigned)KP_OFFSET_TEST(v1) << 8);
#undef KP_OFFSET_TEST
#endif
    m &= live;
    _mm512_storeu_si512(co, _mm512_maskz_compress_epi32(m, lane));
    return __builtin_popcount((unsigned)m);
}

#endif

#endif
