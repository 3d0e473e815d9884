/* exact_exp.c — exp terms and the results of exact LogSumExp / SumSoftMaxWeight (see exact_exp.h). */
#include "plan/exact_exp.h"

#include <math.h>

/* log(2) in two parts: the float64 nearest, and the rest. */
static const double LN2_HI = 0x1.62e42fefa39efp-1, LN2_LO = 0x1.abc9e3b39803fp-56;

double kp__xexp_log(const int64_t *w) {
    kp_xsum_rounded r = kp__xsum_round(w, 53, INT64_MIN);
    if (!r.q) return -INFINITY;
    /* sum = m 2^e with m in [sqrt(1/2), sqrt(2)): log m + e log 2, the product
     * in two parts; |log m| <= log(2) / 2 never cancels e log 2 (e != 0). */
    int bits = 64 - __builtin_clzll(r.q);
    double m = ldexp((double)r.q, 1 - bits), e = (double)r.e + (bits - 1);
    if (m > 0x1.6a09e667f3bcdp0) {
        m *= 0.5;
        e += 1;
    }
    return fma(e, LN2_HI, fma(e, LN2_LO, log(m)));
}

double kp__xexp_ratio(const int64_t *num, const int64_t *den) {
    if (num[0]) return kp__xsum_value(num, 0) / (double)kp__xsum_round(den, 53, INT64_MIN).q; /* NaN or +-inf */
    kp_xsum_rounded a = kp__xsum_round(num, 53, INT64_MIN), b = kp__xsum_round(den, 53, INT64_MIN);
    if (!a.q) return 0.0;
    int64_t shift = a.e - b.e;
    double v = ldexp((double)a.q / (double)b.q, (int)(shift < -4000 ? -4000 : shift > 4000 ? 4000 : shift));
    return a.negative ? -v : v;
}
