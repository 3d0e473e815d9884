/*
 * kernel_exact.h — the states of Sum, LogSumExp and SumSoftMaxWeight under
 * KP_SUM_EXACT on the CPU: the pair values of a tile go into exact
 * accumulators (plan/exact_sum.h, plan/exact_exp.h), so a state holds the
 * same words whatever the order, the threads and the split of the points.
 * Included by kernel_reduce.h only; every state lives in the int64 words of
 * the row (kp__state_size).
 */
#ifndef KP_CPU_KERNEL_EXACT_H
#define KP_CPU_KERNEL_EXACT_H

#include <math.h>

#include "plan/exact_exp.h"
#include "plan/exact_sum.h"

/* The fields of a REAL: mantissa bits, exponent mask, the exponent of the
 * mantissa's unit at biased exponent 1 (minus 1), the sign's bit. */
#if KP_REAL_F32
typedef uint32_t real_bits;
enum { MANT_BITS = 23, EXP_MASK = 0xff, UNIT_BIAS = 150, SIGN_BIT = 31 };
#else
typedef uint64_t real_bits;
enum { MANT_BITS = 52, EXP_MASK = 0x7ff, UNIT_BIAS = 1075, SIGN_BIT = 63 };
#endif

_Static_assert(TILE <= KP_XSUM_MAX_BATCH, "kp__xsum_add_terms takes a tile at once");

static inline double word_double(int64_t w) {
    double d;
    memcpy(&d, &w, sizeof d);
    return d;
}

static inline int64_t double_word(double d) {
    int64_t w;
    memcpy(&w, &d, sizeof w);
    return w;
}

/* The terms of one accumulator, collected over a tile then added at once. */
typedef struct xterms {
    int64_t m[TILE], e[TILE], emax;
    int n;
} xterms;

static inline void xterms_clear(xterms *t) {
    t->n = 0;
    t->emax = INT64_MIN;
}

static inline void xterms_flush(xterms *t, int64_t *w) {
    kp__xsum_add_terms(w, t->m, t->e, t->n, t->emax);
    xterms_clear(t);
}

/* ------------------------------------------------------------------ Sum */

/* x[0..len) as m 2^e (zeros and non-finite numbers: KP_XSUM_NO_TERM, their
 * flags or'ed into *flags), without branches, so that it vectorizes. */
static void split_tile(const REAL *restrict x, int len, xterms *restrict t, int64_t *flags) {
    int64_t fl = 0, emax = KP_XSUM_NO_TERM;
    for (int k = 0; k < len; k++) {
        real_bits u;
        memcpy(&u, &x[k], sizeof u);
        int64_t biased = (int64_t)(u >> MANT_BITS) & EXP_MASK, mant = (int64_t)(u & (((real_bits)1 << MANT_BITS) - 1));
        int64_t special = biased == EXP_MASK, negative = (int64_t)(u >> SIGN_BIT);
        fl |= special ? (mant ? KP_XSUM_NAN : negative ? KP_XSUM_NEG_INF : KP_XSUM_POS_INF) : 0;
        int64_t full = biased ? mant | (int64_t)1 << MANT_BITS : mant; /* subnormal: no implicit bit */
        int64_t m = special ? 0 : negative ? -full : full;
        int64_t e = m ? (biased ? biased : 1) - UNIT_BIAS : KP_XSUM_NO_TERM;
        t->m[k] = m;
        t->e[k] = e;
        emax = e > emax ? e : emax;
    }
    *flags |= fl;
    t->n = len;
    t->emax = emax;
}

/* Every term (F, or F * F2 rounded as tile_dot's products are) into the
 * component's accumulator. */
static void exact_sum_tile(const kp_program *prog, int64_t *ix, const REAL *f, const REAL *f2, int len,
                           xterms *t, REAL *tmp) {
    for (int d = 0; d < prog->fdim; d++) {
        int64_t *w = ix + (size_t)d * KP_XSUM_WORDS;
        const REAL *a = f + (f2 && prog->red_f.dim == 1 ? 0 : (size_t)d * TILE);
        if (f2) {
            const REAL *b = f2 + (prog->red_f2.dim == 1 ? 0 : (size_t)d * TILE);
            for (int k = 0; k < len; k++) tmp[k] = a[k] * b[k];
            a = tmp;
        }
        split_tile(a, len, t, &w[0]);
        xterms_flush(t, w);
    }
}

/* ------------------------------------------------------ exp(x) = v 2^n */

/* v[k] = 2^r[k] for k < len; r has room for whole vectors past len. */
static void exp2_tile(double *restrict v, double *restrict r, int len) {
#if defined(KP_ISA_AVX512)
    for (int k = len; k % 8; k++) r[k] = 0;
    for (int k = 0; k < len; k += 8) _mm512_storeu_pd(v + k, Sleef_exp2d8_u10avx512f(_mm512_loadu_pd(r + k)));
#elif defined(KP_ISA_AVX2)
    for (int k = len; k % 4; k++) r[k] = 0;
    for (int k = 0; k < len; k += 4) _mm256_storeu_pd(v + k, Sleef_exp2d4_u10avx2(_mm256_loadu_pd(r + k)));
#else
    for (int k = 0; k < len; k++) v[k] = exp2(r[k]);
#endif
}

/* The exp terms of a tile of x: exp(x[k]) = v[k] 2^n[k] where x[k] is a
 * finite number below KP_XEXP_HUGE in magnitude, else n[k] = KP_XSUM_NO_TERM. */
typedef struct exp_terms {
    double v[TILE + 8], r[TILE + 8];
    int64_t n[TILE];
} exp_terms;

static void exp_terms_of(const REAL *restrict x, int len, exp_terms *restrict E) {
    for (int k = 0; k < len; k++) {
        double xk = (double)x[k];
        int keep = fabs(xk) < KP_XEXP_HUGE;
        int64_t n;
        kp__xexp_reduce(keep ? xk : 0.0, &E->r[k], &n);
        E->n[k] = keep ? n : KP_XSUM_NO_TERM;
    }
    exp2_tile(E->v, E->r, len);
}

/* v[k] 2^n[k] (n[k] = KP_XSUM_NO_TERM: no term) as m 2^e, without branches;
 * flags of non-finite v[k] or'ed into *flags. */
static void split_scaled(const double *restrict v, const int64_t *restrict n, int len, xterms *restrict t,
                         int64_t *flags) {
    int64_t fl = 0, emax = KP_XSUM_NO_TERM;
    for (int k = 0; k < len; k++) {
        uint64_t u;
        memcpy(&u, &v[k], sizeof u);
        int64_t biased = (int64_t)(u >> 52) & 0x7ff, mant = (int64_t)(u & (((uint64_t)1 << 52) - 1));
        int64_t special = biased == 0x7ff, negative = (int64_t)(u >> 63), none = n[k] == KP_XSUM_NO_TERM;
        fl |= special && !none ? (mant ? KP_XSUM_NAN : negative ? KP_XSUM_NEG_INF : KP_XSUM_POS_INF) : 0;
        int64_t full = biased ? mant | (int64_t)1 << 52 : mant;
        int64_t m = special || none ? 0 : negative ? -full : full;
        int64_t e = m ? (biased ? biased : 1) - 1075 + n[k] : KP_XSUM_NO_TERM;
        t->m[k] = m;
        t->e[k] = e;
        emax = e > emax ? e : emax;
    }
    *flags |= fl;
    t->n = len;
    t->emax = emax;
}

/* ------------------------------------------------------------ LogSumExp */

/* Per component: [0] the largest x (-inf: none), then the sum of exp(x). */
static void exact_lse_init(int64_t *ix, int D) {
    for (int d = 0; d < D; d++) {
        int64_t *s = ix + (size_t)d * KP_XEXP_LSE_WORDS;
        s[0] = double_word(-INFINITY);
        kp__xsum_init(s + 1);
    }
}

static void exact_lse_tile(int64_t *ix, int D, const REAL *f, int len, xterms *t, exp_terms *E) {
    for (int d = 0; d < D; d++) {
        int64_t *s = ix + (size_t)d * KP_XEXP_LSE_WORDS, *w = s + 1;
        const REAL *fd = f + (size_t)d * TILE;
        double xmax = word_double(s[0]);
        int64_t nan = 0;
        for (int k = 0; k < len; k++) {
            double x = (double)fd[k];
            nan |= x != x;
            xmax = x > xmax ? x : xmax;
        }
        if (nan) w[0] |= KP_XSUM_NAN;
        s[0] = double_word(xmax);
        exp_terms_of(fd, len, E);
        split_scaled(E->v, E->n, len, t, &w[0]);
        xterms_flush(t, w);
    }
}

static void exact_lse_merge(int64_t *a, const int64_t *b, int D) {
    for (int d = 0; d < D; d++) {
        int64_t *sa = a + (size_t)d * KP_XEXP_LSE_WORDS;
        const int64_t *sb = b + (size_t)d * KP_XEXP_LSE_WORDS;
        if (word_double(sb[0]) > word_double(sa[0])) sa[0] = sb[0];
        kp__xsum_merge(sa + 1, sb + 1);
    }
}

/* NaN, +inf and -inf (no term) as the other schemes give them; a largest x
 * of magnitude KP_XEXP_HUGE or more is the result (exact_exp.h). */
static void exact_lse_finalize(const int64_t *ix, int D, REAL *out, int64_t cs) {
    for (int d = 0; d < D; d++) {
        const int64_t *s = ix + (size_t)d * KP_XEXP_LSE_WORDS;
        double xmax = word_double(s[0]);
        double r = s[1] & KP_XSUM_NAN ? (double)NAN : !(fabs(xmax) < KP_XEXP_HUGE) ? xmax : kp__xexp_log(s + 1);
        out[d * cs] = (REAL)r;
    }
}

/* ----------------------------------------------------- SumSoftMaxWeight */

/* [0] the largest x, [1] the largest x of magnitude >= KP_XEXP_HUGE (-inf:
 * none), [2] the number of terms at it, then the accumulators: den, num[DG],
 * huge[DG] (the sum of the g of the terms at [1]). */
typedef struct ssmw_view {
    int64_t *s, *den, *num, *huge;
} ssmw_view;

static ssmw_view ssmw_of(int64_t *s, int DG) {
    ssmw_view v = {s, s + 3, s + 3 + KP_XSUM_WORDS, s + 3 + KP_XSUM_WORDS * (1 + (size_t)DG)};
    return v;
}

static void exact_ssmw_init(int64_t *ix, int DG) {
    ix[0] = ix[1] = double_word(-INFINITY);
    ix[2] = 0;
    for (int k = 0; k < 1 + 2 * DG; k++) kp__xsum_init(ix + 3 + (size_t)k * KP_XSUM_WORDS);
}

/* A term at x of magnitude >= KP_XEXP_HUGE: kept when x is the largest such. */
static void ssmw_huge(ssmw_view V, int DG, double x, const REAL *g, int k) {
    double top = word_double(V.s[1]);
    if (x < top) return;
    if (x > top) {
        V.s[1] = double_word(x);
        V.s[2] = 0;
        for (int c = 0; c < DG; c++) kp__xsum_init(V.huge + (size_t)c * KP_XSUM_WORDS);
    }
    V.s[2]++;
    for (int c = 0; c < DG; c++) {
        int64_t *w = V.huge + (size_t)c * KP_XSUM_WORDS, m, e;
        if (kp__xsum_split_f64((double)g[(size_t)c * TILE + (size_t)k], &m, &e, &w[0])) kp__xsum_add_terms(w, &m, &e, 1, e);
    }
}

static void exact_ssmw_tile(int64_t *ix, int DG, const REAL *f, const REAL *g, int len, xterms *t, exp_terms *E) {
    ssmw_view V = ssmw_of(ix, DG);
    double xmax = word_double(V.s[0]);
    for (int k = 0; k < len; k++) {
        double x = (double)f[k];
        if (x != x || x == INFINITY) V.den[0] |= x != x ? KP_XSUM_NAN : KP_XSUM_POS_INF;
        xmax = x > xmax ? x : xmax;
        if (!(fabs(x) < KP_XEXP_HUGE) && x == x && x != INFINITY && x != -INFINITY) ssmw_huge(V, DG, x, g, k);
    }
    V.s[0] = double_word(xmax);
    exp_terms_of(f, len, E);
    split_scaled(E->v, E->n, len, t, &V.den[0]);
    xterms_flush(t, V.den);
    for (int c = 0; c < DG; c++) {
        int64_t *w = V.num + (size_t)c * KP_XSUM_WORDS;
        const REAL *gc = g + (size_t)c * TILE;
        for (int k = 0; k < len; k++) E->r[k] = E->v[k] * (double)gc[k]; /* r: free once v is made */
        split_scaled(E->r, E->n, len, t, &w[0]);
        xterms_flush(t, w);
    }
}

static void exact_ssmw_merge(int64_t *a, const int64_t *b, int DG) {
    ssmw_view A = ssmw_of(a, DG), B = ssmw_of((int64_t *)(uintptr_t)b, DG);
    if (word_double(b[0]) > word_double(a[0])) a[0] = b[0];
    double ta = word_double(a[1]), tb = word_double(b[1]);
    if (tb > ta) {
        a[1] = b[1];
        a[2] = b[2];
        memcpy(A.huge, B.huge, (size_t)DG * KP_XSUM_WORDS * sizeof *a);
    } else if (tb == ta && b[2]) {
        a[2] += b[2];
        for (int c = 0; c < DG; c++) kp__xsum_merge(A.huge + (size_t)c * KP_XSUM_WORDS, B.huge + (size_t)c * KP_XSUM_WORDS);
    }
    for (int k = 0; k < 1 + DG; k++) kp__xsum_merge(A.den + (size_t)k * KP_XSUM_WORDS, B.den + (size_t)k * KP_XSUM_WORDS);
}

/* NaN where the other schemes give it (a NaN or +inf x, no term); at a
 * largest x of magnitude KP_XEXP_HUGE or more, the mean g of its terms. */
static void exact_ssmw_finalize(const int64_t *ix, int DG, REAL *out, int64_t cs) {
    ssmw_view V = ssmw_of((int64_t *)(uintptr_t)ix, DG);
    double xmax = word_double(ix[0]);
    for (int c = 0; c < DG; c++) {
        double r;
        if (V.den[0] || xmax == -INFINITY) r = NAN;
        else if (!(fabs(xmax) < KP_XEXP_HUGE)) r = kp__xsum_value(V.huge + (size_t)c * KP_XSUM_WORDS, 0) / (double)ix[2];
        else r = kp__xexp_ratio(V.num + (size_t)c * KP_XSUM_WORDS, V.den);
        out[c * cs] = (REAL)r;
    }
}

/* ---------------------------------------------------------------------- */

/* One tile into a row's exact state; not inlined, so that the tile buffers
 * take stack only under KP_SUM_EXACT, not in every call of the other schemes. */
static __attribute__((noinline)) void exact_accumulate(const kp_program *prog, int64_t *ix, const REAL *f,
                                                       const REAL *f2, const REAL *g, int len, REAL *tmp) {
    xterms terms;
    exp_terms E;
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM: exact_sum_tile(prog, ix, f, f2, len, &terms, tmp); break;
    case KP_FAMILY_LOGSUMEXP: exact_lse_tile(ix, prog->fdim, f, len, &terms, &E); break;
    case KP_FAMILY_SOFTMAX: exact_ssmw_tile(ix, prog->red_g.dim, f, g, len, &terms, &E); break;
    case KP_FAMILY_SELECT: break;
    }
}

#endif
