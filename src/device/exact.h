/*
 * exact.h - the accumulators of KP_SUM_EXACT (kp.h) one term at a time, in
 * the common subset of C, CUDA C++ and OpenCL C: the GPU generator embeds
 * this text in the kernels of exact programs (gpu/codegen_prelude.c), and
 * tests/test_device_exact.c compiles it for the CPU to check that its words
 * and results are those of plan/exact_sum.h and plan/exact_exp.h, whose
 * layouts and meaning it follows word for word:
 *
 *   accumulator (KP_XS_WORDS):  [0] flags (1 +inf, 2 -inf, 4 NaN), [1] top
 *       bin (KP_XS_EMPTY: none), [2 + 2k, 3 + 2k] bin top - k, a 128-bit
 *       two's-complement integer, low word first;
 *   LogSumExp, per component:   [0] the largest x (a double's bits), then
 *       the accumulator of exp(x);
 *   SumSoftMaxWeight:           [0] the largest x, [1] the largest x of
 *       magnitude >= KP_XS_HUGE, [2] how many terms have it, then the
 *       accumulators den, num[dg], huge[dg].
 *
 * The CPU kernels add a tile of terms at once; a GPU thread adds its terms
 * one by one. Integer additions give the same words either way, so the CPU
 * engine merges and finalizes the GPU's partial states and the reverse.
 *
 * Before it, the includer defines KP_DEVICE, the integer types kp_i64,
 * kp_u64, kp_u32, the bit casts kp__d_f64_bits (double to kp_i64),
 * kp__d_f64_of (back) and kp__d_f32_bits (float to kp_u32), and double's
 * fabs, floor, fma, exp2, log and ldexp. No include guard: a CUDA
 * translation unit embeds it once per kernel namespace.
 */
#define KP_XS_BINS 5
#define KP_XS_WORDS 12
#define KP_XS_LSE_WORDS 13
#define KP_XS_EMPTY ((kp_i64)((kp_u64)1 << 63))
#define KP_XS_HUGE 1.5e18
#define KP_XS_LIMBS 10 /* the bins as one integer of 32-bit limbs (plan/exact_sum.c) */

KP_DEVICE double kp__xs_pos_inf(void) { return kp__d_f64_of((kp_i64)((kp_u64)0x7ff << 52)); }
KP_DEVICE double kp__xs_neg_inf(void) { return kp__d_f64_of((kp_i64)((kp_u64)0xfff << 52)); }
KP_DEVICE double kp__xs_nan(void) { return kp__d_f64_of((kp_i64)((kp_u64)0x7ff8 << 48)); } /* C's NAN */

KP_DEVICE void kp__xs_init(kp_i64 *w) {
    for (int k = 0; k < KP_XS_WORDS; k++) w[k] = 0;
    w[1] = KP_XS_EMPTY;
}

/* The 128-bit integer at b += (lo, hi). */
KP_DEVICE void kp__xs_add128(kp_i64 *b, kp_u64 lo, kp_u64 hi) {
    kp_u64 s = (kp_u64)b[0] + lo;
    b[1] = (kp_i64)((kp_u64)b[1] + hi + (kp_u64)(s < lo));
    b[0] = (kp_i64)s;
}

/* Moves the window up so that bin top (> w[1]) is its first. */
KP_DEVICE void kp__xs_raise(kp_i64 *w, kp_i64 top) {
    kp_i64 shift = w[1] == KP_XS_EMPTY || top - w[1] > KP_XS_BINS ? KP_XS_BINS : top - w[1];
    for (int k = KP_XS_BINS - 1; k >= 0; k--) {
        kp_i64 from = k - shift;
        w[2 + 2 * k] = from >= 0 ? w[2 + 2 * from] : 0;
        w[3 + 2 * k] = from >= 0 ? w[3 + 2 * from] : 0;
    }
    w[1] = top;
}

/* Adds m 2^e (m != 0, |m| < 2^53): into bin floor(e / 32), raising the
 * window to it, or left out below the window. */
KP_DEVICE void kp__xs_add(kp_i64 *w, kp_i64 m, kp_i64 e) {
    kp_i64 bin = e >> 5;
    if (bin > w[1]) kp__xs_raise(w, bin);
    kp_i64 at = w[1] - bin;
    if (at >= KP_XS_BINS) return;
    int s = (int)(e & 31);
    kp__xs_add128(w + 2 + 2 * at, (kp_u64)m << s, (kp_u64)(s ? m >> (64 - s) : m >> 63));
}

/* A float64 as m 2^e: 1 for a nonzero finite x, else 0 with x's flag (if
 * any) or'ed into *flags. */
KP_DEVICE int kp__xs_split_f64(double x, kp_i64 *m, kp_i64 *e, kp_i64 *flags) {
    kp_u64 u = (kp_u64)kp__d_f64_bits(x);
    int biased = (int)(u >> 52 & 0x7ff), negative = (int)(u >> 63);
    kp_i64 mant = (kp_i64)(u & (((kp_u64)1 << 52) - 1));
    if (biased == 0x7ff) *flags |= mant ? 4 : negative ? 2 : 1;
    if (biased == 0x7ff || (biased == 0 && mant == 0)) return 0;
    if (biased) mant |= (kp_i64)1 << 52;
    *m = negative ? -mant : mant;
    *e = (biased ? biased : 1) - 1075;
    return 1;
}

/* The same for a float32 (its own mantissa and exponent, as the CPU splits it). */
KP_DEVICE int kp__xs_split_f32(float x, kp_i64 *m, kp_i64 *e, kp_i64 *flags) {
    kp_u32 u = kp__d_f32_bits(x);
    int biased = (int)(u >> 23 & 0xff), negative = (int)(u >> 31);
    kp_i64 mant = (kp_i64)(u & 0x7fffff);
    if (biased == 0xff) *flags |= mant ? 4 : negative ? 2 : 1;
    if (biased == 0xff || (biased == 0 && mant == 0)) return 0;
    if (biased) mant |= (kp_i64)1 << 23;
    *m = negative ? -mant : mant;
    *e = (biased ? biased : 1) - 150;
    return 1;
}

KP_DEVICE void kp__xs_add_f64(kp_i64 *w, double x) {
    kp_i64 m, e;
    if (kp__xs_split_f64(x, &m, &e, &w[0])) kp__xs_add(w, m, e);
}

KP_DEVICE void kp__xs_add_f32(kp_i64 *w, float x) {
    kp_i64 m, e;
    if (kp__xs_split_f32(x, &m, &e, &w[0])) kp__xs_add(w, m, e);
}

/* a <- a + b: the accumulator of both sets of terms. */
KP_DEVICE void kp__xs_merge(kp_i64 *a, const kp_i64 *b) {
    a[0] |= b[0];
    if (b[1] == KP_XS_EMPTY) return;
    if (b[1] > a[1]) kp__xs_raise(a, b[1]);
    for (int k = 0; k < KP_XS_BINS; k++) {
        kp_i64 at = k + (a[1] - b[1]); /* b's bin b[1] - k in a's window */
        if (at < KP_XS_BINS) kp__xs_add128(a + 2 + 2 * at, (kp_u64)b[2 + 2 * k], (kp_u64)b[3 + 2 * k]);
    }
}

/* ------------------------------------------------------------ rounding */

/* Adds the 128-bit integer (lo, hi) to the limbs L from limb at on. */
KP_DEVICE void kp__xs_limbs_add(kp_u32 *L, int at, kp_i64 lo, kp_i64 hi) {
    kp_u64 carry = 0;
    for (int i = at; i < KP_XS_LIMBS; i++) {
        int k = i - at;
        kp_u64 part = k == 0   ? (kp_u64)lo & 0xffffffffu
                      : k == 1 ? (kp_u64)lo >> 32
                      : k == 2 ? (kp_u64)hi & 0xffffffffu
                      : k == 3 ? (kp_u64)hi >> 32
                               : (hi < 0 ? 0xffffffffu : 0u);
        kp_u64 s = (kp_u64)L[i] + part + carry;
        L[i] = (kp_u32)s;
        carry = s >> 32;
    }
}

KP_DEVICE int kp__xs_bit(const kp_u32 *L, kp_i64 i) {
    return i >= 0 && i < 32 * KP_XS_LIMBS ? (int)(L[i / 32] >> (i % 32) & 1u) : 0;
}

/* The finite part of the sum rounded to nearest, ties to even, to
 * `precision` bits and no bit below 2^smallest (KP_XS_EMPTY: no floor):
 * (-1)^*negative q 2^*e, q returned (0: a zero sum). */
KP_DEVICE kp_u64 kp__xs_round(const kp_i64 *w, int precision, kp_i64 smallest, int *negative, kp_i64 *e) {
    *negative = 0;
    *e = 0;
    if (w[1] == KP_XS_EMPTY) return 0;
    kp_u32 L[KP_XS_LIMBS];
    for (int i = 0; i < KP_XS_LIMBS; i++) L[i] = 0;
    for (int k = 0; k < KP_XS_BINS; k++) kp__xs_limbs_add(L, KP_XS_BINS - 1 - k, w[2 + 2 * k], w[3 + 2 * k]);
    *negative = (int)(L[KP_XS_LIMBS - 1] >> 31);
    if (*negative) { /* the magnitude */
        kp_u64 carry = 1;
        for (int i = 0; i < KP_XS_LIMBS; i++) {
            kp_u64 s = (kp_u64)(kp_u32)~L[i] + carry;
            L[i] = (kp_u32)s;
            carry = s >> 32;
        }
    }
    kp_i64 high = -1;
    for (kp_i64 i = 32 * KP_XS_LIMBS - 1; i >= 0 && high < 0; i--)
        if (kp__xs_bit(L, i)) high = i;
    if (high < 0) return 0;
    kp_i64 unit = 32 * (w[1] - (KP_XS_BINS - 1)); /* the value is L 2^unit */
    kp_i64 low = high - precision + 1;
    if (low + unit < smallest) low = smallest - unit;
    kp_u64 q = 0;
    for (kp_i64 i = high; i >= low; i--) q = q << 1 | (kp_u64)kp__xs_bit(L, i);
    if (low > 0 && kp__xs_bit(L, low - 1)) {
        int below = 0;
        for (kp_i64 k = 0; k < low - 1 && k < 32 * KP_XS_LIMBS; k++) below |= kp__xs_bit(L, k);
        if (below || (q & 1)) q++;
    }
    *e = low + unit;
    return q;
}

KP_DEVICE int kp__xs_clamp_exp(kp_i64 e) { return (int)(e < -4000 ? -4000 : e > 4000 ? 4000 : e); }

/* The sum rounded once, in float64 (f32 = 0) or float32 (f32 = 1, as the
 * double that holds it exactly); NaN after a NaN or both infinities. */
KP_DEVICE double kp__xs_value(const kp_i64 *w, int f32) {
    if ((w[0] & 4) || ((w[0] & 1) && (w[0] & 2))) return kp__xs_nan();
    if (w[0] & 1) return kp__xs_pos_inf();
    if (w[0] & 2) return kp__xs_neg_inf();
    int negative;
    kp_i64 e;
    kp_u64 q = kp__xs_round(w, f32 ? 24 : 53, f32 ? -149 : -1074, &negative, &e);
    if (!q) return 0.0;
    double v = ldexp((double)q, kp__xs_clamp_exp(e));
    if (f32 && fabs(v) > 3.4028234663852886e+38) v = kp__xs_pos_inf();
    return negative ? -v : v;
}

/* log of the positive sum: log m + e log 2 with m in [sqrt(1/2), sqrt(2)). */
KP_DEVICE double kp__xs_log(const kp_i64 *w) {
    int negative;
    kp_i64 e;
    kp_u64 q = kp__xs_round(w, 53, KP_XS_EMPTY, &negative, &e);
    if (!q) return kp__xs_neg_inf();
    int bits = 0;
    while (q >> bits) bits++;
    double m = ldexp((double)q, 1 - bits), ee = (double)e + (double)(bits - 1);
    if (m > 1.4142135623730951) {
        m *= 0.5;
        ee += 1;
    }
    return fma(ee, 0.69314718055994529, fma(ee, 2.3190468138462996e-17, log(m)));
}

/* num / den (den positive), each rounded to float64's precision first. */
KP_DEVICE double kp__xs_ratio(const kp_i64 *num, const kp_i64 *den) {
    int na, nb;
    kp_i64 ea, eb;
    kp_u64 b = kp__xs_round(den, 53, KP_XS_EMPTY, &nb, &eb);
    if (num[0]) return kp__xs_value(num, 0) / (double)b; /* NaN or an infinity */
    kp_u64 a = kp__xs_round(num, 53, KP_XS_EMPTY, &na, &ea);
    if (!a) return 0.0;
    double v = ldexp((double)a / (double)b, kp__xs_clamp_exp(ea - eb));
    return na ? -v : v;
}

/* ------------------------------------------------------ exp(x) = v 2^n */

/* Adds exp(x) for finite |x| < KP_XS_HUGE (times g): x log2 e = n + r, the
 * product in two parts, and v = 2^r times g goes into the bins at 2^n. */
KP_DEVICE void kp__xs_exp_reduce(double x, double *r, kp_i64 *n) {
    const double hi_c = 1.4426950408889634, lo_c = 2.0355273740931033e-17; /* log2(e) in two parts */
    double hi = x * hi_c;
    double lo = fma(x, hi_c, -hi) + x * lo_c;
    double fl = floor(hi);
    *n = (kp_i64)fl;
    *r = (hi - fl) + lo;
}

KP_DEVICE void kp__xs_add_scaled(kp_i64 *w, double v, kp_i64 n) {
    kp_i64 m, e;
    if (kp__xs_split_f64(v, &m, &e, &w[0])) kp__xs_add(w, m, e + n);
}

KP_DEVICE void kp__xs_lse_init(kp_i64 *s) {
    s[0] = kp__d_f64_bits(kp__xs_neg_inf());
    kp__xs_init(s + 1);
}

KP_DEVICE void kp__xs_lse_add(kp_i64 *s, double x) {
    if (x != x) s[1] |= 4;
    if (x > kp__d_f64_of(s[0])) s[0] = kp__d_f64_bits(x);
    if (fabs(x) < KP_XS_HUGE) {
        double r;
        kp_i64 n;
        kp__xs_exp_reduce(x, &r, &n);
        kp__xs_add_scaled(s + 1, exp2(r), n);
    }
}

KP_DEVICE void kp__xs_lse_merge(kp_i64 *a, const kp_i64 *b) {
    if (kp__d_f64_of(b[0]) > kp__d_f64_of(a[0])) a[0] = b[0];
    kp__xs_merge(a + 1, b + 1);
}

/* NaN, +inf and -inf (no term) as the other schemes give them; a largest x
 * of magnitude KP_XS_HUGE or more is the result. */
KP_DEVICE double kp__xs_lse_value(const kp_i64 *s) {
    double xmax = kp__d_f64_of(s[0]);
    return (s[1] & 4) ? kp__xs_nan() : !(fabs(xmax) < KP_XS_HUGE) ? xmax : kp__xs_log(s + 1);
}

/* SumSoftMaxWeight: the accumulators of its state. */
KP_DEVICE kp_i64 *kp__xs_den(kp_i64 *s) { return s + 3; }
KP_DEVICE kp_i64 *kp__xs_num(kp_i64 *s, int c) { return s + 3 + KP_XS_WORDS * (1 + c); }
KP_DEVICE kp_i64 *kp__xs_huge(kp_i64 *s, int dg, int c) { return s + 3 + KP_XS_WORDS * (1 + dg + c); }

KP_DEVICE void kp__xs_ssmw_init(kp_i64 *s, int dg) {
    s[0] = s[1] = kp__d_f64_bits(kp__xs_neg_inf());
    s[2] = 0;
    for (int k = 0; k < 1 + 2 * dg; k++) kp__xs_init(s + 3 + KP_XS_WORDS * k);
}

/* A term at finite x of magnitude >= KP_XS_HUGE: kept when x is the largest such. */
KP_DEVICE void kp__xs_ssmw_huge(kp_i64 *s, int dg, double x, const double *g) {
    double top = kp__d_f64_of(s[1]);
    if (x < top) return;
    if (x > top) {
        s[1] = kp__d_f64_bits(x);
        s[2] = 0;
        for (int c = 0; c < dg; c++) kp__xs_init(kp__xs_huge(s, dg, c));
    }
    s[2]++;
    for (int c = 0; c < dg; c++) kp__xs_add_f64(kp__xs_huge(s, dg, c), g[c]);
}

KP_DEVICE void kp__xs_ssmw_add(kp_i64 *s, int dg, double x, const double *g) {
    kp_i64 *den = kp__xs_den(s);
    if (x != x) den[0] |= 4;
    if (x == kp__xs_pos_inf()) den[0] |= 1;
    if (x > kp__d_f64_of(s[0])) s[0] = kp__d_f64_bits(x);
    if (fabs(x) < KP_XS_HUGE) {
        double r;
        kp_i64 n;
        kp__xs_exp_reduce(x, &r, &n);
        double v = exp2(r);
        kp__xs_add_scaled(den, v, n);
        for (int c = 0; c < dg; c++) kp__xs_add_scaled(kp__xs_num(s, c), v * g[c], n);
    } else if (x == x && fabs(x) != kp__xs_pos_inf()) {
        kp__xs_ssmw_huge(s, dg, x, g);
    }
}

KP_DEVICE void kp__xs_ssmw_merge(kp_i64 *a, const kp_i64 *b, int dg) {
    if (kp__d_f64_of(b[0]) > kp__d_f64_of(a[0])) a[0] = b[0];
    double ta = kp__d_f64_of(a[1]), tb = kp__d_f64_of(b[1]);
    if (tb > ta) {
        a[1] = b[1];
        a[2] = b[2];
        for (int k = 0; k < dg * KP_XS_WORDS; k++) kp__xs_huge(a, dg, 0)[k] = b[3 + KP_XS_WORDS * (1 + dg) + k];
    } else if (tb == ta && b[2]) {
        a[2] += b[2];
        for (int c = 0; c < dg; c++) kp__xs_merge(kp__xs_huge(a, dg, c), b + 3 + KP_XS_WORDS * (1 + dg + c));
    }
    for (int k = 0; k < 1 + dg; k++) kp__xs_merge(a + 3 + KP_XS_WORDS * k, b + 3 + KP_XS_WORDS * k);
}

/* Output c: NaN where the other schemes give it (a NaN or +inf x, no term);
 * at a largest x of magnitude KP_XS_HUGE or more, the mean g of its terms. */
KP_DEVICE double kp__xs_ssmw_value(kp_i64 *s, int dg, int c) {
    double xmax = kp__d_f64_of(s[0]);
    if (s[3] || xmax == kp__xs_neg_inf()) return kp__xs_nan();
    if (!(fabs(xmax) < KP_XS_HUGE)) return kp__xs_value(kp__xs_huge(s, dg, c), 0) / (double)s[2];
    return kp__xs_ratio(kp__xs_num(s, c), kp__xs_den(s));
}
