/*
 * exact_sum.h — an order-independent sum of floating-point terms, the
 * accumulator of Sum reductions under KP_SUM_EXACT (kp.h), and of the exp
 * terms of LogSumExp and SumSoftMaxWeight there (exact_exp.h).
 *
 * Every finite term is an integer m times a power of two 2^e. The exponents
 * fall into bins of KP_XSUM_WIDTH: bin b holds the terms with
 * b W <= e < (b + 1) W as one 128-bit integer, the exact sum of their
 * m 2^(e - b W). An accumulator keeps the KP_XSUM_BINS bins from the
 * highest one that any term has reached (its "top") down, so integer
 * additions only: the bins, the top and the special values seen (flags) are
 * the same whatever order the terms came in and however they were split and
 * merged. Bins below the window are dropped whole; a dropped term is below
 * 2^-(W (BINS - 1)) = 2^-128 of the largest term, so what is kept is within
 * 2^-85 of the largest term of the exact sum even at the limit of
 * KP_XSUM_MAX_TERMS terms. Reading the value rounds it once, to nearest.
 *
 * Layout of one accumulator, KP_XSUM_WORDS int64 words:
 *   [0]                 flags: +inf, -inf, NaN seen
 *   [1]                 top bin (KP_XSUM_EMPTY: no nonzero finite term yet)
 *   [2 + 2k, 3 + 2k]    bin top - k, a two's-complement 128-bit integer
 *                       (low word first), k < KP_XSUM_BINS
 * A term's m 2^s (s < W) is below 2^(53 + 31) in float64, so a bin holds
 * 2^43 terms before it could overflow: KP_XSUM_MAX_TERMS per row. Exponents
 * are int64, so terms far outside float64's range (exact_exp.h's v 2^n) fit.
 */
#ifndef KP_PLAN_EXACT_SUM_H
#define KP_PLAN_EXACT_SUM_H

#include <stdint.h>
#include <string.h>

#define KP_XSUM_BINS 5
#define KP_XSUM_WIDTH 32
#define KP_XSUM_WORDS (2 + 2 * KP_XSUM_BINS)
#define KP_XSUM_MAX_TERMS ((int64_t)1 << 43)
#define KP_XSUM_EMPTY INT64_MIN

enum { KP_XSUM_POS_INF = 1, KP_XSUM_NEG_INF = 2, KP_XSUM_NAN = 4 };

typedef __int128 kp_xsum_bin;

static inline kp_xsum_bin kp__xsum_bin(const int64_t *w, int64_t k) {
    kp_xsum_bin v;
    memcpy(&v, w + 2 + 2 * k, sizeof v); /* the words are 8-byte aligned only */
    return v;
}

static inline void kp__xsum_set_bin(int64_t *w, int64_t k, kp_xsum_bin v) { memcpy(w + 2 + 2 * k, &v, sizeof v); }

static inline void kp__xsum_init(int64_t *w) {
    memset(w, 0, KP_XSUM_WORDS * sizeof *w);
    w[1] = KP_XSUM_EMPTY;
}

/* Moves the window up so that bin top (> w[1]) is its first. */
static inline void kp__xsum_raise(int64_t *w, int64_t top) {
    int64_t shift = w[1] == KP_XSUM_EMPTY || top - w[1] > KP_XSUM_BINS ? KP_XSUM_BINS : top - w[1];
    for (int64_t k = KP_XSUM_BINS - 1; k >= 0; k--) kp__xsum_set_bin(w, k, k >= shift ? kp__xsum_bin(w, k - shift) : 0);
    w[1] = top;
}

/* A float64 term as m 2^e (|m| < 2^53) for kp__xsum_add_terms: 1 for a
 * nonzero finite x, else 0 with x's flag (if any) or'ed into *flags. */
static inline int kp__xsum_split_f64(double x, int64_t *m, int64_t *e, int64_t *flags) {
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    int biased = (int)(u >> 52 & 0x7ff);
    int64_t mant = (int64_t)(u & (((uint64_t)1 << 52) - 1));
    if (biased == 0x7ff) *flags |= mant ? KP_XSUM_NAN : u >> 63 ? KP_XSUM_NEG_INF : KP_XSUM_POS_INF;
    if (biased == 0x7ff || (biased == 0 && !mant)) return 0;
    if (biased) mant |= (int64_t)1 << 52;
    *m = u >> 63 ? -mant : mant;
    *e = (biased ? biased : 1) - 1075;
    return 1;
}

/* The bin of exponent e: floor(e / W), by the arithmetic shift that GCC and
 * Clang define for negative numbers. */
static inline int64_t kp__xsum_bin_of(int64_t e) { return e >> 5; }
_Static_assert(KP_XSUM_WIDTH == 1 << 5, "kp__xsum_bin_of shifts by log2 of the width");

/* Adds the n terms m[k] 2^e[k] (|m[k]| < 2^53, n <= KP_XSUM_MAX_BATCH, emax
 * the largest e[k], |e[k]| < 2^62, or e[k] = KP_XSUM_NO_TERM for an entry to
 * skip): the window raised once to emax's bin, then each term into its bin
 * (or left out below the window). A term m 2^s (s < 32) is written
 * lo + hi 2^32 with lo < 2^32 and |hi| < 2^53, and each bin sums its terms'
 * lo and hi in two int64s: no branch and no 128-bit arithmetic per term,
 * so the loop vectorizes in the kernels that inline it. */
#define KP_XSUM_NO_TERM INT64_MIN
#define KP_XSUM_MAX_BATCH 1024 /* hi sums stay below 2^63 */
static inline void kp__xsum_add_terms(int64_t *w, const int64_t *m, const int64_t *e, int n, int64_t emax) {
    if (n <= 0 || emax == KP_XSUM_NO_TERM) return;
    if (kp__xsum_bin_of(emax) > w[1]) kp__xsum_raise(w, kp__xsum_bin_of(emax));
    int64_t lo[KP_XSUM_BINS] = {0}, hi[KP_XSUM_BINS] = {0}, top = w[1];
    for (int k = 0; k < n; k++) {
        int64_t at = top - kp__xsum_bin_of(e[k]); /* KP_XSUM_NO_TERM: far beyond the window */
        int s = (int)(e[k] & (KP_XSUM_WIDTH - 1));
        /* m = mhi 2^32 + mlo, mlo in [0, 2^32): m 2^s = mlo 2^s + mhi 2^(s + 32) */
        uint64_t low = ((uint64_t)m[k] & 0xffffffffu) << s;
        int64_t mhi = m[k] >> 32, v0 = (int64_t)(low & 0xffffffffu), v1 = (int64_t)(low >> 32) + mhi * ((int64_t)1 << s);
        for (int q = 0; q < KP_XSUM_BINS; q++) {
            int64_t sel = -(int64_t)(at == q);
            lo[q] += v0 & sel;
            hi[q] += v1 & sel;
        }
    }
    for (int q = 0; q < KP_XSUM_BINS; q++)
        kp__xsum_set_bin(w, q, kp__xsum_bin(w, q) + lo[q] + (kp_xsum_bin)hi[q] * ((kp_xsum_bin)1 << 32));
}

/* a <- a + b: the accumulator of both sets of terms. */
void kp__xsum_merge(int64_t *a, const int64_t *b);
/* The accumulated sum rounded to nearest (ties to even) in float64 (f32 = 0)
 * or float32 (f32 = 1, returned as the float64 that holds it exactly); NaN
 * after a NaN or both infinities, else the infinity seen; +0 for no term. */
double kp__xsum_value(const int64_t *w, int f32);

#endif
