/*
 * exact_exp.h — LogSumExp and SumSoftMaxWeight under KP_SUM_EXACT: sums of
 * exp(x_j) (times g_j) that do not depend on the order of the terms.
 *
 * exp(x) = v 2^n with n = floor(x log2 e) and v = 2^(x log2 e - n) in [1, 2],
 * both functions of x alone (x log2 e is taken in two parts in float64, the
 * kernels take 2^r with the vector exp2 of their ISA), so
 * a term is the float64 v (or v g) times a power of two that may lie far
 * outside float64's range; exact_sum.h's bins, indexed by int64 exponents,
 * add such terms exactly. Finite |x| >= KP_XEXP_HUGE, where n would outgrow
 * the bins' exponents, never enter the bins: the state's largest x decides
 * the result there (see the callers in cpu/kernel_exact.h).
 */
#ifndef KP_PLAN_EXACT_EXP_H
#define KP_PLAN_EXACT_EXP_H

#include <math.h>
#include <stdint.h>

#include "plan/exact_sum.h"

/* Beyond 1.5e18 the float64 numbers are 256 apart: exp of a difference of
 * two of them is below 1e-111, and log(2^43 terms) < 30 is below half the
 * spacing, so the largest x alone gives the LogSumExp and picks the
 * SumSoftMaxWeight's terms. */
#define KP_XEXP_HUGE 1.5e18

/* State words of one row: LogSumExp, per component, the largest x (a
 * float64's bits) and the sum of exp(x); SumSoftMaxWeight the largest x,
 * the largest x of magnitude >= KP_XEXP_HUGE and how many terms have it,
 * then the sums of exp(x), of exp(x) g[c] (c < dg) and of the g[c] of the
 * terms at that largest huge x. */
#define KP_XEXP_LSE_WORDS (1 + KP_XSUM_WORDS)
#define KP_XEXP_SSMW_WORDS(dg) (3 + KP_XSUM_WORDS * (1 + 2 * (dg)))

/* x log2 e = n + r for finite |x| < KP_XEXP_HUGE (r in [0, 1] up to
 * rounding; the product in two parts): exp(x) = 2^r 2^n. */
static inline void kp__xexp_reduce(double x, double *r, int64_t *n) {
    const double log2e_hi = 0x1.71547652b82fep0, log2e_lo = 0x1.777d0ffda0d24p-56;
    double hi = x * log2e_hi;
    double lo = fma(x, log2e_hi, -hi) + x * log2e_lo; /* to 2^-100 relative */
    double fl = floor(hi);
    *n = (int64_t)fl;
    *r = (hi - fl) + lo; /* hi - fl is exact */
}
/* log of the positive sum that w holds (+0: -inf). */
double kp__xexp_log(const int64_t *w);
/* num / den, both accumulators (den positive), rounded once more than each. */
double kp__xexp_ratio(const int64_t *num, const int64_t *den);

#endif
