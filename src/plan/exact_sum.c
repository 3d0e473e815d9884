/* exact_sum.c — merging and reading order-independent sums (see exact_sum.h). */
#include "plan/exact_sum.h"

#include <math.h>

void kp__xsum_merge(int64_t *a, const int64_t *b) {
    a[0] |= b[0];
    if (b[1] == KP_XSUM_EMPTY) return;
    if (b[1] > a[1]) kp__xsum_raise(a, b[1]);
    for (int64_t k = 0; k < KP_XSUM_BINS; k++) {
        int64_t at = k + (a[1] - b[1]); /* b's bin b[1] - k in a's window */
        if (at < KP_XSUM_BINS) kp__xsum_set_bin(a, at, kp__xsum_bin(a, at) + kp__xsum_bin(b, k));
    }
}

/* The bins as one two's-complement integer of NLIMBS 32-bit limbs, in units
 * of the lowest bin: KP_XSUM_BINS - 1 limbs of offsets, 4 of a bin, and room
 * for the carries of adding KP_XSUM_BINS of them and a sign. */
enum { NLIMBS = KP_XSUM_BINS + 5 };
_Static_assert(KP_XSUM_WIDTH == 32, "a bin is one 32-bit limb of the integer");

static void add_at(uint32_t *L, int at, kp_xsum_bin v) {
    uint32_t ext = v < 0 ? 0xffffffffu : 0;
    unsigned __int128 u = (unsigned __int128)v;
    uint64_t carry = 0;
    for (int i = at; i < NLIMBS; i++) {
        uint64_t part = i - at < 4 ? (uint64_t)(uint32_t)(u >> (32 * (i - at))) : ext;
        uint64_t s = (uint64_t)L[i] + part + carry;
        L[i] = (uint32_t)s;
        carry = s >> 32;
    }
}

static int bit_of(const uint32_t *L, int64_t i) { return i >= 0 && i < 32 * NLIMBS ? (int)(L[i / 32] >> (i % 32) & 1) : 0; }

static int any_below(const uint32_t *L, int64_t i) {
    for (int64_t k = 0; k < i && k < 32 * NLIMBS; k++)
        if (bit_of(L, k)) return 1;
    return 0;
}

kp_xsum_rounded kp__xsum_round(const int64_t *w, int precision, int64_t smallest) {
    kp_xsum_rounded r = {0, 0, 0};
    if (w[1] == KP_XSUM_EMPTY) return r;
    uint32_t L[NLIMBS] = {0};
    for (int k = 0; k < KP_XSUM_BINS; k++) add_at(L, KP_XSUM_BINS - 1 - k, kp__xsum_bin(w, k));
    r.negative = (int)(L[NLIMBS - 1] >> 31);
    if (r.negative) { /* the magnitude: two's complement negation */
        uint64_t carry = 1;
        for (int i = 0; i < NLIMBS; i++) {
            uint64_t s = (uint64_t)(uint32_t)~L[i] + carry;
            L[i] = (uint32_t)s;
            carry = s >> 32;
        }
    }
    int high = -1;
    for (int i = 32 * NLIMBS - 1; i >= 0 && high < 0; i--)
        if (bit_of(L, i)) high = i;
    if (high < 0) return r;
    /* The value is L 2^unit; keep `precision` bits from the highest, but no
     * bit below 2^smallest. */
    int64_t unit = KP_XSUM_WIDTH * (w[1] - (KP_XSUM_BINS - 1));
    int64_t low = high - precision + 1;
    if (low + unit < smallest) low = smallest - unit;
    for (int64_t i = high; i >= low; i--) r.q = r.q << 1 | (uint64_t)bit_of(L, i);
    if (low > 0 && bit_of(L, low - 1) && (any_below(L, low - 1) || (r.q & 1))) r.q++; /* to nearest, ties to even */
    r.e = low + unit;
    return r;
}

double kp__xsum_value(const int64_t *w, int f32) {
    if ((w[0] & KP_XSUM_NAN) || (w[0] & KP_XSUM_POS_INF && w[0] & KP_XSUM_NEG_INF)) return NAN;
    if (w[0] & KP_XSUM_POS_INF) return INFINITY;
    if (w[0] & KP_XSUM_NEG_INF) return -INFINITY;
    kp_xsum_rounded r = kp__xsum_round(w, f32 ? 24 : 53, f32 ? -149 : -1074);
    if (!r.q) return 0.0;
    /* exact: q has at most precision + 1 bits; exponents past the range clamp to 0 or inf */
    double v = ldexp((double)r.q, (int)(r.e < -4000 ? -4000 : r.e > 4000 ? 4000 : r.e));
    if (f32 && fabs(v) > 0x1.fffffep127) v = INFINITY;
    return r.negative ? -v : v;
}
