/*
 * test_device_exact.c — src/device/exact.h (the KP_SUM_EXACT accumulators of
 * the generated GPU kernels, one term at a time) compiled for the CPU
 * (device/exact_host.h) and checked against plan/exact_sum.h, with which the
 * CPU engine adds tiles of terms (merging and rounding are exact.h's on both
 * sides):
 *   - the same words after the same terms, whatever the order, the split
 *     into parts and the order of their merges (random terms over 2^-1100 ..
 *     2^1000, cancellations, subnormals, zeros, infinities and NaN);
 *   - their value correctly rounded to float64 and to float32, and their
 *     log, against MPFR (the exact sum, at 2300 bits, of the terms within
 *     the accumulator's window, then rounded by MPFR: an independent
 *     reference);
 *   - rounding to nearest, ties to even, in float64 and float32 (known
 *     answers; test_exact_sum.c checks correctly rounded sums end to end);
 *   - float32 terms split into their own mantissa and exponent;
 *   - exp terms (LogSumExp, SumSoftMaxWeight) reduced and scaled as the CPU
 *     engine reduces them, with libm's exp2 on both sides;
 *   - SumSoftMaxWeight's terms beyond 1.5e18 counted apart, in any order.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <mpfr.h>

#include "kp_test_util.h"
#include "plan/exact_exp.h"
#include "plan/exact_sum.h"

#include "device/exact_host.h"

#define NTERMS 600

/* A term of any kind: mostly wide-ranging finite numbers, some of each special case. */
static double random_term(kpt_rng *rng, int specials) {
    int kind = (int)kpt_rng_int(rng, 0, 99);
    double sign = kpt_rng_int(rng, 0, 1) ? -1.0 : 1.0;
    if (specials && kind == 0) return kpt_rng_int(rng, 0, 2) == 0 ? NAN : sign * INFINITY;
    if (kind < 4) return 0.0 * sign;
    if (kind < 8) return sign * ldexp(kpt_rng_uniform(rng, 0, 1), -1074 + (int)kpt_rng_int(rng, 0, 60)); /* subnormal */
    if (kind < 20) return sign * ldexp(kpt_rng_uniform(rng, 1, 2), (int)kpt_rng_int(rng, -1100, 1000));
    return sign * ldexp(kpt_rng_uniform(rng, 1, 2), (int)kpt_rng_int(rng, -40, 40));
}

/* The CPU engine's way: a batch of terms at once. */
static void cpu_add(int64_t *w, const double *x, int n) {
    int64_t m[NTERMS], e[NTERMS], emax = KP_XSUM_NO_TERM;
    for (int k = 0; k < n; k++) {
        if (!kp__xsum_split_f64(x[k], &m[k], &e[k], &w[0])) e[k] = KP_XSUM_NO_TERM, m[k] = 0;
        if (e[k] > emax) emax = e[k];
    }
    kp__xsum_add_terms(w, m, e, n, emax);
}

static void shuffle(kpt_rng *rng, double *x, int n) {
    for (int k = n - 1; k > 0; k--) {
        int j = (int)kpt_rng_int(rng, 0, k);
        double t = x[k];
        x[k] = x[j];
        x[j] = t;
    }
}

static void assert_words(const int64_t *a, const int64_t *b, int n) {
    for (int k = 0; k < n; k++)
        if (a[k] != b[k]) fail_msg("word %d: %lld != %lld", k, (long long)a[k], (long long)b[k]);
}

static void assert_same_double(double a, double b) {
    if (memcmp(&a, &b, sizeof a)) fail_msg("%.17g (%a) != %.17g (%a)", a, a, b, b);
}

/* The same double, or both NaN (whatever their payloads). */
static void assert_same_value(double a, double b) {
    if (!(isnan(a) && isnan(b))) assert_same_double(a, b);
}

/* Enough bits for any sum of NTERMS doubles exactly: 2^-1074 .. 2^1024, and carries. */
#define EXACT_BITS 2300

/* The bin of a nonzero finite x = m 2^e (m an integer of 53 bits at most):
 * floor(e / 32), e from libm's ilogb, not from the accumulators' split. */
static int bin_of(double x) {
    int e = fpclassify(x) == FP_SUBNORMAL ? -1074 : ilogb(x) - 52;
    return e >= 0 ? e / 32 : -((-e + 31) / 32);
}

/* The exact sum of the terms an accumulator keeps (NaN, or an infinity, as
 * IEEE adds them): its window is the 5 bins of 2^32 from the top bin down,
 * the top bin that of the largest term, so terms more than 2^128 below the
 * largest may be left out (kp.h, KP_SUM_EXACT). */
static void mpfr_exact_sum(mpfr_t s, const double *x, int n) {
    int top = INT32_MIN;
    for (int k = 0; k < n; k++)
        if (isfinite(x[k]) && x[k] != 0 && bin_of(x[k]) > top) top = bin_of(x[k]);
    mpfr_init2(s, EXACT_BITS);
    mpfr_set_zero(s, 1);
    for (int k = 0; k < n; k++)
        if (!isfinite(x[k]) || (x[k] != 0 && bin_of(x[k]) >= top - 4))
            mpfr_add_d(s, s, x[k], MPFR_RNDN); /* exact at EXACT_BITS */
}

/* The kept terms' exact sum rounded to nearest (ties to even) as float64
 * (f32 = 0) or float32, subnormals and overflow included; an exact zero is
 * +0 (the accumulators' convention). */
static double reference_sum(const double *x, int n, int f32) {
    mpfr_t s;
    mpfr_exact_sum(s, x, n);
    double v = f32 ? (double)mpfr_get_flt(s, MPFR_RNDN) : mpfr_get_d(s, MPFR_RNDN);
    mpfr_clear(s);
    return v == 0 ? 0.0 : v;
}

/* log of the kept terms' exact sum (positive), rounded to nearest float64. */
static double reference_log(const double *x, int n) {
    mpfr_t s;
    mpfr_exact_sum(s, x, n);
    mpfr_log(s, s, MPFR_RNDN);
    double v = mpfr_get_d(s, MPFR_RNDN);
    mpfr_clear(s);
    return v;
}

/* The device accumulator of x[0..n): the terms one by one, in parts merged in a random order. */
static void device_sum(kpt_rng *rng, const double *x, int n, int64_t *w) {
    int64_t part[4][KP_XS_WORDS];
    for (int p = 0; p < 4; p++) kp__xs_init(part[p]);
    for (int k = 0; k < n; k++) kp__xs_add_f64(part[kpt_rng_int(rng, 0, 3)], x[k]);
    int first = (int)kpt_rng_int(rng, 0, 3);
    memcpy(w, part[first], sizeof part[first]);
    for (int p = 0; p < 4; p++)
        if (p != first) kp__xs_merge(w, part[p]);
}

static void check_sums(kpt_rng *rng, int specials, int n) {
    double x[NTERMS];
    for (int k = 0; k < n; k++) x[k] = random_term(rng, specials);
    if (!specials && n > 4) { /* cancellation: the sum's largest terms cancel exactly */
        x[0] = ldexp(1.0, 900);
        x[1] = -x[0];
    }
    int64_t cpu[KP_XSUM_WORDS], dev[KP_XS_WORDS];
    kp__xsum_init(cpu);
    cpu_add(cpu, x, n);
    for (int round = 0; round < 3; round++) {
        shuffle(rng, x, n);
        device_sum(rng, x, n, dev);
        assert_words(dev, cpu, KP_XSUM_WORDS);
    }
    /* Equal words give equal values on both sides (the CPU engine rounds with
     * exact.h too): what remains to check is that they are right. */
    assert_same_value(kp__xs_value(dev, 0), reference_sum(x, n, 0));
    assert_same_value(kp__xs_value(dev, 1), reference_sum(x, n, 1));
    if (!cpu[0] && kp__xsum_value(cpu, 0) > 0) {
        double got = kp__xs_log(dev), want = reference_log(x, n);
        /* log(m) + e log 2 (libm's log, log 2 in two parts): within 2 ulps */
        if (!(fabs(got - want) <= 2 * (nextafter(fabs(want), INFINITY) - fabs(want))))
            fail_msg("log of the sum: %.17g, MPFR %.17g", got, want);
    }
}

static void test_sums_match_cpu(void **state) {
    (void)state;
    kpt_rng rng;
    kpt_rng_seed(&rng, 11);
    for (int t = 0; t < 400; t++) check_sums(&rng, t % 4 == 0, 1 + (int)kpt_rng_int(&rng, 0, NTERMS - 1));
    int64_t empty[KP_XS_WORDS], cpu[KP_XSUM_WORDS];
    kp__xs_init(empty);
    kp__xsum_init(cpu);
    assert_words(empty, cpu, KP_XSUM_WORDS);
    assert_same_double(kp__xs_value(empty, 0), 0.0);
    assert_true(isinf(kp__xs_log(empty)) && kp__xs_log(empty) < 0);
}

/* Halfway cases round to even in float64 and float32, subnormals included. */
static void test_rounding(void **state) {
    (void)state;
    const double cases[][3] = {
        {1.0, ldexp(1.0, -53), 1.0},                                     /* tie, to even (down) */
        {1.0 + ldexp(1.0, -52), ldexp(1.0, -53), 1.0 + ldexp(1.0, -51)}, /* tie, to even (up) */
        {ldexp(1.0, -1074), ldexp(1.0, -1075) * 0, ldexp(1.0, -1074)},
        {1e308, 1e308, INFINITY},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t w[KP_XS_WORDS];
        kp__xs_init(w);
        kp__xs_add_f64(w, cases[c][0]);
        kp__xs_add_f64(w, cases[c][1]);
        assert_same_double(kp__xs_value(w, 0), cases[c][2]);
    }
    int64_t w[KP_XS_WORDS]; /* float32: 1 + 2^-24 ties to 1, 2^-150 ties to 0, 2^-149 stays */
    kp__xs_init(w);
    kp__xs_add_f64(w, 1.0);
    kp__xs_add_f64(w, ldexp(1.0, -24));
    assert_same_double(kp__xs_value(w, 1), 1.0);
    kp__xs_init(w);
    kp__xs_add_f64(w, ldexp(1.0, -150));
    assert_same_double(kp__xs_value(w, 1), 0.0);
    kp__xs_add_f64(w, ldexp(1.0, -150));
    assert_same_double(kp__xs_value(w, 1), ldexp(1.0, -149));
}

/* A float32 term is its own mantissa times 2^(exponent - 150): exactly x. */
static void test_f32_split(void **state) {
    (void)state;
    kpt_rng rng;
    kpt_rng_seed(&rng, 5);
    for (int t = 0; t < 20000; t++) {
        uint32_t u = (uint32_t)kpt_rng_u64(&rng);
        float x;
        memcpy(&x, &u, sizeof x);
        int64_t m = 0, e = 0, flags = 0, dflags = 0, dm, de;
        int got = kp__xs_split_f32(x, &m, &e, &flags);
        int want = kp__xs_split_f64((double)x, &dm, &de, &dflags);
        assert_int_equal(got, want);
        assert_int_equal(flags, dflags);
        if (!got) continue;
        assert_true(llabs(m) < (1 << 24) && ldexp((double)m, (int)e) == (double)x);
        int biased = (int)(u >> 23 & 0xff);
        assert_int_equal(e, (biased ? biased : 1) - 150);
    }
}

/* exp(x) as the CPU engine's generic kernel reduces it (libm's exp2). */
static void cpu_exp_add(int64_t *w, double x, double g) {
    double r;
    int64_t n, m, e;
    kp__xexp_reduce(x, &r, &n);
    if (kp__xsum_split_f64(exp2(r) * g, &m, &e, &w[0])) {
        e += n;
        kp__xsum_add_terms(w, &m, &e, 1, e);
    }
}

static void test_exp_terms(void **state) {
    (void)state;
    kpt_rng rng;
    kpt_rng_seed(&rng, 7);
    for (int t = 0; t < 200; t++) {
        int n = 1 + (int)kpt_rng_int(&rng, 0, 300);
        double x[300], g[300];
        double scale = t % 3 == 0 ? 1e6 : t % 3 == 1 ? 700 : 5;
        for (int k = 0; k < n; k++) {
            x[k] = kpt_rng_uniform(&rng, -scale, scale);
            g[k] = kpt_rng_uniform(&rng, -2, 2);
        }
        int64_t lse[KP_XS_LSE_WORDS], cpu[KP_XSUM_WORDS], cnum[KP_XSUM_WORDS];
        int64_t ssmw[3 + 3 * KP_XS_WORDS];
        kp__xs_lse_init(lse);
        kp__xs_ssmw_init(ssmw, 1);
        kp__xsum_init(cpu);
        kp__xsum_init(cnum);
        double xmax = -INFINITY;
        for (int k = 0; k < n; k++) {
            kp__xs_lse_add(lse, x[k]);
            kp__xs_ssmw_add(ssmw, 1, x[k], &g[k]);
            cpu_exp_add(cpu, x[k], 1.0);
            cpu_exp_add(cnum, x[k], g[k]);
            xmax = fmax(xmax, x[k]);
        }
        assert_words(lse + 1, cpu, KP_XSUM_WORDS);
        assert_words(kp__xs_den(ssmw), cpu, KP_XSUM_WORDS);
        assert_words(kp__xs_num(ssmw, 0), cnum, KP_XSUM_WORDS);
        assert_same_double(kp__d_f64_of(lse[0]), xmax);
        /* Equal words, equal values (both sides take exact.h's log and
         * ratio); the values themselves against a float64 sum shifted by the max: */
        double ref = 0, den = 0;
        for (int k = 0; k < n; k++) {
            den += exp(x[k] - xmax);
            ref += exp(x[k] - xmax) * g[k];
        }
        assert_true(fabs(kp__xs_lse_value(lse) - (xmax + log(den))) <= 1e-12 * fmax(1, fabs(xmax)));
        assert_true(fabs(kp__xs_ssmw_value(ssmw, 1, 0) - ref / den) <= 1e-12 * (1 + fabs(ref / den)) * n);
    }
}

/* Special values and huge x, every order and split giving the same words. */
static void test_exp_special(void **state) {
    (void)state;
    const double xs[] = {2e18, -3.0, 2e18, 1.0, -INFINITY, 1.5e18, -2e18, 4.0};
    const double gs[] = {1.0, 10.0, 3.0, 20.0, 50.0, 7.0, 9.0, 30.0};
    enum { N = 8, DG = 1 };
    kpt_rng rng;
    kpt_rng_seed(&rng, 3);
    int64_t first[3 + 3 * KP_XS_WORDS];
    for (int round = 0; round < 20; round++) {
        int order[N];
        for (int k = 0; k < N; k++) order[k] = k;
        for (int k = N - 1; k > 0; k--) {
            int j = (int)kpt_rng_int(&rng, 0, k), t = order[k];
            order[k] = order[j];
            order[j] = t;
        }
        int64_t a[3 + 3 * KP_XS_WORDS], b[3 + 3 * KP_XS_WORDS];
        kp__xs_ssmw_init(a, DG);
        kp__xs_ssmw_init(b, DG);
        int cut = (int)kpt_rng_int(&rng, 0, N);
        for (int k = 0; k < N; k++) kp__xs_ssmw_add(k < cut ? a : b, DG, xs[order[k]], &gs[order[k]]);
        if (round % 2) kp__xs_ssmw_merge(a, b, DG);
        else {
            kp__xs_ssmw_merge(b, a, DG);
            memcpy(a, b, sizeof a);
        }
        if (round == 0) memcpy(first, a, sizeof a);
        assert_words(a, first, 3 + 3 * KP_XS_WORDS);
    }
    assert_same_double(kp__xs_ssmw_value(first, DG, 0), 2.0); /* the mean g at the largest huge x, 2e18 */
    int64_t lse[KP_XS_LSE_WORDS];
    kp__xs_lse_init(lse);
    assert_same_double(kp__xs_lse_value(lse), -INFINITY);
    kp__xs_lse_add(lse, 1.0);
    kp__xs_lse_add(lse, 2e18);
    assert_same_double(kp__xs_lse_value(lse), 2e18);
    kp__xs_lse_add(lse, NAN);
    assert_true(isnan(kp__xs_lse_value(lse)));
    int64_t s[3 + 3 * KP_XS_WORDS];
    kp__xs_ssmw_init(s, DG);
    assert_true(isnan(kp__xs_ssmw_value(s, DG, 0))); /* no term */
    kp__xs_ssmw_add(s, DG, 0.0, &gs[0]);
    assert_same_double(kp__xs_ssmw_value(s, DG, 0), 1.0);
    kp__xs_ssmw_add(s, DG, INFINITY, &gs[0]);
    assert_true(isnan(kp__xs_ssmw_value(s, DG, 0)));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sums_match_cpu), cmocka_unit_test(test_rounding), cmocka_unit_test(test_f32_split),
        cmocka_unit_test(test_exp_terms),      cmocka_unit_test(test_exp_special),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
