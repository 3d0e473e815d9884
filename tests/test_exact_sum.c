/*
 * test_exact_sum.c — Sum, LogSumExp and SumSoftMaxWeight under KP_SUM_EXACT
 * (kp.h kp_sum_scheme).
 *   - any split of the reduced axis (unaligned, empty parts), folded in order
 *     or reduced part by part and merged in any order, with 1 or 3 threads,
 *     dense and on block-sparse ranges: the bits of one kp_plan_exec, float32
 *     and float64, both axes;
 *   - the correctly rounded sum of the terms where it is known exactly:
 *     cancellation, halfway cases (ties to even), subnormals, overflow, and
 *     NaN / infinities, in every order of the terms;
 *   - LogSumExp and SumSoftMaxWeight against the default scheme, and their
 *     special values (NaN, infinities, no term, |x| beyond 1.5e18) as the
 *     default scheme gives them, in every order;
 *   - the Min/Max family is unchanged by the scheme; states of one scheme
 *     are refused under another (the GPU engines: tests/gpu/test_gpu_partial.c).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NR 70
#define NRED 70001
#define OUTW (NR * 6)
#define PAIR_TERM "Sin(5*(x|y))"
#include "partial_fixture.h"

static const int64_t RANGE_ROWS[] = {0, 20, 20, 45, 45, NR}, RANGE_SLICES[] = {2, 4, 4},
                     RANGE_COLS[] = {7, 5003, 29999, 41000, 100, 33001, 50000, 66123};
static const part_ranges RANGES = PART_RANGES(RANGE_ROWS, RANGE_SLICES, RANGE_COLS);

static kp_exec_options options_of(const part_ranges *t, int64_t j0, int64_t j1, int nthreads, int64_t *local,
                                  kp_ranges *rg) {
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.num_threads = nthreads;
    if (t) {
        *rg = ranges_of_part(t, j0, j1, local);
        opt.ranges = rg;
    }
    return opt;
}

static int out_width(kp_context *ctx, kp_plan *p, const data *d) {
    int ndim;
    int64_t shape[KP_MAX_DIMS], ishape[KP_MAX_DIMS];
    kp_array a[3];
    args_of(d, 0, 0, NRED, a);
    KPT_ASSERT_OK(ctx, kp_plan_output_shape(p, a, 3, NULL, &ndim, shape, ishape));
    return (int)shape[1];
}

static void exec_once(kp_context *ctx, kp_plan *p, const data *d, const part_ranges *t, int nthreads, double *r) {
    int od = out_width(ctx, p, d);
    kp_array a[3];
    args_of(d, 0, 0, NRED, a);
    void *vo = kpt_alloc_dtype(OUTW, d->dt);
    kp_array o = kp_array_2d(vo, d->dt, NR, od);
    int64_t local[2 * PART_RANGES_MAX];
    kp_ranges rg;
    kp_exec_options opt = options_of(t, 0, NRED, nthreads, local, &rg);
    KPT_ASSERT_OK(ctx, kp_plan_exec(p, a, 3, &o, NULL, &opt));
    memset(r, 0, OUTW * sizeof *r);
    kpt_from_dtype(vo, d->dt, (size_t)NR * (size_t)od, r);
    free(vo);
}

/* How the parts' states come together. */
typedef enum how { FOLD, MERGE_FORWARD, MERGE_BACKWARD } how;

/* The parts cut at bounds[0] = 0 <= ... <= bounds[n] = NRED, finalized into r. */
static void split(kp_context *ctx, kp_plan *p, const data *d, const int64_t *bounds, int n, how h, int nthreads,
                  const part_ranges *t, double *r) {
    kp_array a[3];
    args_of(d, 0, 0, NRED, a);
    kp_state_info info;
    KPT_ASSERT_OK(ctx, kp_plan_state_info(p, a, 3, NULL, &info));
    char *states = malloc(info.bytes * (size_t)n);
    for (int k = 0; k < n; k++) KPT_ASSERT_OK(ctx, kp_plan_state_init(p, &info, states + (size_t)k * info.bytes));
    for (int k = 0; k < n; k++) {
        int64_t local[2 * PART_RANGES_MAX];
        kp_ranges rg;
        kp_exec_options opt = options_of(t, bounds[k], bounds[k + 1], nthreads, local, &rg);
        args_of(d, 0, bounds[k], bounds[k + 1], a);
        void *into = states + (h == FOLD ? 0 : (size_t)k * info.bytes);
        KPT_ASSERT_OK(ctx, kp_plan_exec_partial(p, a, 3, bounds[k], into, info.bytes, &opt));
    }
    if (h == MERGE_FORWARD)
        for (int k = 1; k < n; k++) KPT_ASSERT_OK(ctx, kp_plan_state_merge(p, states, states + (size_t)k * info.bytes, info.bytes));
    if (h == MERGE_BACKWARD) {
        for (int k = n - 2; k >= 0; k--)
            KPT_ASSERT_OK(ctx, kp_plan_state_merge(p, states + (size_t)(n - 1) * info.bytes,
                                                   states + (size_t)k * info.bytes, info.bytes));
        memmove(states, states + (size_t)(n - 1) * info.bytes, info.bytes);
    }
    int od = out_width(ctx, p, d);
    void *vo = kpt_alloc_dtype(OUTW, d->dt);
    kp_array o = kp_array_2d(vo, d->dt, NR, od);
    args_of(d, 0, 0, 0, a);
    KPT_ASSERT_OK(ctx, kp_plan_state_finalize(p, a, 3, states, info.bytes, &o, NULL, NULL));
    memset(r, 0, OUTW * sizeof *r);
    kpt_from_dtype(vo, d->dt, (size_t)NR * (size_t)od, r);
    free(vo);
    free(states);
}

static void assert_bits(const char *what, const char *text, const double *want, const double *got) {
    if (memcmp(want, got, OUTW * sizeof *want)) print_error("%s: %s differs from one kp_plan_exec\n", text, what);
    assert_memory_equal(want, got, OUTW * sizeof *want);
}

/* Splits at unaligned points (some parts empty, some shorter than a tile),
 * folded and merged in both orders, 1 and 3 threads: one call's bits. */
static void any_split(const part_ranges *t) {
    const char *texts[] = {"Sum_Reduction(@,#)", "Sum_Reduction(Exp(-SqDist(x,y))*b,#)", "Sum_Reduction(b*y-x,#)",
                           "LogSumExp_Reduction(@,#)", "SumSoftMaxWeight_Reduction(-SqDist(x,y)*20,#,Concat(b,y))"};
    const int64_t cuts[][7] = {{0, 1, 12345, 12345, 50000, 69999, NRED},
                               {0, 511, 513, 32767, 32769, 65537, NRED},
                               {0, 7, 10007, 20011, 40009, 60013, NRED}};
    const kp_dtype dts[] = {KP_FLOAT32, KP_FLOAT64};
    kp_context *ctx;
    KPT_ASSERT_OK(NULL, kpt_context_new(&ctx));
    KPT_ASSERT_OK(ctx, kp_context_set_sum_scheme(ctx, KP_SUM_EXACT));
    double want[OUTW], got[OUTW];
    for (int di = 0; di < 2; di++) {
        data d = make_data(dts[di], 5 + (uint64_t)di);
        for (int axis = 0; axis <= 1; axis++)
            for (size_t ti = 0; ti < sizeof texts / sizeof *texts; ti++) {
                char text[256];
                build_text(texts[ti], axis, text, sizeof text);
                kp_plan *p = plan_of(ctx, text, axis, dts[di]);
                exec_once(ctx, p, &d, t, 1, want);
                exec_once(ctx, p, &d, t, 3, got);
                assert_bits("3 threads", text, want, got);
                for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++)
                    for (int h = FOLD; h <= MERGE_BACKWARD; h++) {
                        split(ctx, p, &d, cuts[c], 6, (how)h, c == 1 ? 3 : 1, t, got);
                        assert_bits(h == FOLD ? "a fold" : "a merge", text, want, got);
                    }
                kp_plan_free(p);
            }
        free_data(&d);
    }
    kp_context_free(ctx);
}

static void test_any_split(void **state) {
    (void)state;
    any_split(NULL);
}

static void test_any_split_ranges(void **state) {
    (void)state;
    any_split(&RANGES);
}

/* Sum_Reduction(b, 1) over terms b (n of them) for one row, in dtype dt. */
static double sum_of(kp_context *ctx, kp_dtype dt, const double *terms, int64_t n) {
    const char *al1[] = {"b = Vj(1)"};
    kp_formula *f;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(b,1)", al1, 1, &f));
    kp_plan *p;
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, dt, &p));
    kp_formula_free(f);
    void *b = kpt_to_dtype(terms, (size_t)n, dt), *o = kpt_alloc_dtype(1, dt);
    kp_array a = kp_array_2d(b, dt, n, 1), out = kp_array_2d(o, dt, 1, 1);
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.nx = 1;
    KPT_ASSERT_OK(ctx, kp_plan_exec(p, &a, 1, &out, NULL, &opt));
    double r;
    kpt_from_dtype(o, dt, 1, &r);
    free(b);
    free(o);
    kp_plan_free(p);
    return r;
}

/* The sum of terms in every rotation and reversal of their order is want. */
static void check_sum(kp_context *ctx, kp_dtype dt, const double *terms, int n, double want) {
    double t[16];
    for (int rev = 0; rev < 2; rev++)
        for (int r = 0; r < n; r++) {
            for (int k = 0; k < n; k++) t[k] = terms[(rev ? n - 1 - k + r : k + r) % n];
            double got = sum_of(ctx, dt, t, n);
            if (!(got == want || (isnan(got) && isnan(want))) || signbit(got) != signbit(want))
                print_error("%s: %a (%d terms, rotation %d%s), want %a\n", kpt_dtype_name(dt), got, n, r,
                            rev ? " reversed" : "", want);
            assert_true(got == want || (isnan(got) && isnan(want)));
        }
}

static void test_correctly_rounded(void **state) {
    (void)state;
    kp_context *ctx;
    KPT_ASSERT_OK(NULL, kpt_context_new(&ctx));
    KPT_ASSERT_OK(ctx, kp_context_set_sum_scheme(ctx, KP_SUM_EXACT));
    const double p60 = 0x1p60, p100 = 0x1p100;
    /* float64 */
    check_sum(ctx, KP_FLOAT64, (const double[]){p60, 1, -p60, 0x1p-40}, 4, 1 + 0x1p-40);
    check_sum(ctx, KP_FLOAT64, (const double[]){1, 0x1p-53}, 2, 1);                         /* tie: to even */
    check_sum(ctx, KP_FLOAT64, (const double[]){1 + 0x1p-52, 0x1p-53}, 2, 1 + 0x1p-51);     /* tie: to even, up */
    check_sum(ctx, KP_FLOAT64, (const double[]){1, 0x1p-53, 0x1p-100}, 3, 1 + 0x1p-52);     /* just above the tie */
    check_sum(ctx, KP_FLOAT64, (const double[]){-1, -0x1p-53, -0x1p-100}, 3, -1 - 0x1p-52);
    check_sum(ctx, KP_FLOAT64, (const double[]){0x1p-1074, 0x1p-1074, 0x1p-1074}, 3, 0x3p-1074); /* subnormals */
    check_sum(ctx, KP_FLOAT64, (const double[]){0x1p-1022, -0x1p-1074}, 2, 0x1p-1022 - 0x1p-1074);
    check_sum(ctx, KP_FLOAT64, (const double[]){0x1.fffffffffffffp1023, 0x1p970}, 2, INFINITY); /* overflow */
    check_sum(ctx, KP_FLOAT64, (const double[]){0x1.fffffffffffffp1023, 0x1p969}, 2, 0x1.fffffffffffffp1023);
    check_sum(ctx, KP_FLOAT64, (const double[]){0x1.fffffffffffffp1023, 0x1.fffffffffffffp1023, -0x1.fffffffffffffp1023},
              3, 0x1.fffffffffffffp1023); /* partial sums overflow, the sum does not */
    check_sum(ctx, KP_FLOAT64, (const double[]){3, -3, 0x1p-1074, -0x1p-1074}, 4, 0);
    check_sum(ctx, KP_FLOAT64, (const double[]){1, INFINITY, 2}, 3, INFINITY);
    check_sum(ctx, KP_FLOAT64, (const double[]){1, -INFINITY, 2}, 3, -INFINITY);
    check_sum(ctx, KP_FLOAT64, (const double[]){1, INFINITY, -INFINITY}, 3, NAN);
    check_sum(ctx, KP_FLOAT64, (const double[]){1, NAN, 2}, 3, NAN);
    /* a term 2^-250 of the largest is left out (exact_sum.h); 2^-120 is kept */
    check_sum(ctx, KP_FLOAT64, (const double[]){1, 0x1p-53, 0x1p-250}, 3, 1);
    check_sum(ctx, KP_FLOAT64, (const double[]){1, 0x1p-53, 0x1p-120}, 3, 1 + 0x1p-52);
    /* float32 */
    check_sum(ctx, KP_FLOAT32, (const double[]){p100, 1, -p100, 0x1p-30}, 4, 1);
    check_sum(ctx, KP_FLOAT32, (const double[]){p100, 1, -p100, 0x1p-20}, 4, 1 + 0x1p-20);
    check_sum(ctx, KP_FLOAT32, (const double[]){1, 0x1p-24}, 2, 1);
    check_sum(ctx, KP_FLOAT32, (const double[]){1, 0x1p-24, 0x1p-60}, 3, 1 + 0x1p-23);
    check_sum(ctx, KP_FLOAT32, (const double[]){0x1.fffffep127, 0x1p103}, 2, INFINITY);
    check_sum(ctx, KP_FLOAT32, (const double[]){0x1.fffffep127, 0x1p102}, 2, 0x1.fffffep127);
    check_sum(ctx, KP_FLOAT32, (const double[]){0x1.fffffep127, 0x1.fffffep127, -0x1.fffffep127}, 3, 0x1.fffffep127);
    /* many terms, over several chunks and threads: 3 x 10^5 copies of 0.1
     * (exactly 30000.0000000000016653... in float64, 30000.000447... in
     * float32: both round to 30000) */
    int64_t n = 300000;
    double *many = malloc((size_t)n * sizeof *many);
    for (int64_t k = 0; k < n; k++) many[k] = 0.1;
    assert_true(sum_of(ctx, KP_FLOAT64, many, n) == 30000.0);
    assert_true(sum_of(ctx, KP_FLOAT32, many, n) == 30000.0);
    free(many);
    kp_context_free(ctx);
}

/* LogSumExp and SumSoftMaxWeight under KP_SUM_EXACT against the default
 * scheme (1e-6 / 1e-13 of the largest output); Min/Max-type reductions give
 * the same state size and bits under either scheme. */
static void test_other_reductions(void **state) {
    (void)state;
    const char *texts[] = {"LogSumExp_Reduction(@,#)", "SumSoftMaxWeight_Reduction(-SqDist(x,y)*20,#,Concat(b,y))",
                           "LogSumExp_Reduction(-SqDist(x,y)*1000,#)", "Min_ArgMin_Reduction(@,#)",
                           "KMin_Reduction(@,3,#)"};
    const kp_dtype dts[] = {KP_FLOAT32, KP_FLOAT64};
    kp_context *block, *exact;
    KPT_ASSERT_OK(NULL, kpt_context_new(&block));
    KPT_ASSERT_OK(NULL, kpt_context_new(&exact));
    KPT_ASSERT_OK(exact, kp_context_set_sum_scheme(exact, KP_SUM_EXACT));
    for (int di = 0; di < 2; di++) {
        data d = make_data(dts[di], 9);
        for (int axis = 0; axis <= 1; axis++)
            for (size_t ti = 0; ti < sizeof texts / sizeof *texts; ti++) {
                char text[256];
                build_text(texts[ti], axis, text, sizeof text);
                kp_plan *pb = plan_of(block, text, axis, dts[di]), *pe = plan_of(exact, text, axis, dts[di]);
                int select = strstr(text, "Min") != NULL;
                kp_array a[3];
                args_of(&d, 0, 0, NRED, a);
                kp_state_info ib, ie;
                KPT_ASSERT_OK(block, kp_plan_state_info(pb, a, 3, NULL, &ib));
                KPT_ASSERT_OK(exact, kp_plan_state_info(pe, a, 3, NULL, &ie));
                if (select) assert_int_equal(ib.bytes, ie.bytes);
                if (select && strstr(text, "Arg")) {
                    kp_plan_free(pb);
                    kp_plan_free(pe);
                    continue; /* their indices: test_partial.c; here the scheme changes nothing to read */
                }
                double wb[OUTW], we[OUTW], scale[OUTW];
                exec_once(block, pb, &d, NULL, 1, wb);
                exec_once(exact, pe, &d, NULL, 1, we);
                if (select) { /* KMin: the same values, bit for bit */
                    assert_memory_equal(wb, we, sizeof wb);
                    kp_plan_free(pb);
                    kp_plan_free(pe);
                    continue;
                }
                double big = 0;
                for (int k = 0; k < OUTW; k++) big = fabs(wb[k]) > big ? fabs(wb[k]) : big;
                for (int k = 0; k < OUTW; k++) scale[k] = big;
                int od = out_width(exact, pe, &d);
                assert_int_equal(kpt_check(text, we, wb, scale, (size_t)NR * (size_t)od, dts[di] == KP_FLOAT32 ? 1e-6 : 1e-13, 0), 0);
                kp_plan_free(pb);
                kp_plan_free(pe);
            }
        free_data(&d);
    }
    kp_context_free(block);
    kp_context_free(exact);
}

/* One row's reduction of terms x (and weights g: SumSoftMaxWeight) under
 * KP_SUM_EXACT in float64, in every rotation and reversal of their order:
 * always want (NaN matches NaN). */
static void check_exp(kp_context *ctx, const char *red, const double *x, const double *g, int n, double want) {
    const char *al[] = {"x = Vj(1)", "g = Vj(1)"};
    char text[128];
    snprintf(text, sizeof text, "%s_Reduction(x,1%s)", red, strcmp(red, "SumSoftMaxWeight") ? "" : ",g");
    kp_formula *f;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, text, al, 2, &f));
    kp_plan *p;
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, KP_FLOAT64, &p));
    size_t nargs = (size_t)kp_formula_num_args(f);
    kp_formula_free(f);
    double xs[8], gs[8], out;
    for (int rev = 0; rev < 2; rev++)
        for (int r = 0; r < n; r++) {
            for (int k = 0; k < n; k++) {
                int at = (rev ? n - 1 - k + r : k + r) % n;
                xs[k] = x[at];
                gs[k] = g ? g[at] : 0;
            }
            kp_array a[2] = {kp_array_2d(xs, KP_FLOAT64, n, 1), kp_array_2d(gs, KP_FLOAT64, n, 1)};
            kp_array o = kp_array_2d(&out, KP_FLOAT64, 1, 1);
            kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
            opt.nx = 1;
            KPT_ASSERT_OK(ctx, kp_plan_exec(p, a, nargs, &o, NULL, &opt));
            if (!(out == want || (isnan(out) && isnan(want))))
                print_error("%s: %a, want %a (rotation %d%s)\n", text, out, want, r, rev ? " reversed" : "");
            assert_true(out == want || (isnan(out) && isnan(want)));
        }
    kp_plan_free(p);
}

static void test_exp_special_values(void **state) {
    (void)state;
    kp_context *ctx;
    KPT_ASSERT_OK(NULL, kpt_context_new(&ctx));
    KPT_ASSERT_OK(ctx, kp_context_set_sum_scheme(ctx, KP_SUM_EXACT));
    const double inf = INFINITY;
    check_exp(ctx, "LogSumExp", (const double[]){0, 0, 0, 0}, NULL, 4, log(4.0));
    check_exp(ctx, "LogSumExp", (const double[]){1, NAN, 2}, NULL, 3, NAN);
    check_exp(ctx, "LogSumExp", (const double[]){1, inf, 2}, NULL, 3, inf);
    check_exp(ctx, "LogSumExp", (const double[]){-inf, -inf}, NULL, 2, -inf);
    check_exp(ctx, "LogSumExp", (const double[]){-inf, 3}, NULL, 2, 3);
    check_exp(ctx, "LogSumExp", (const double[]){1e19, 1, 1e19}, NULL, 3, 1e19);     /* the largest x decides */
    check_exp(ctx, "LogSumExp", (const double[]){-1e19, -2e19}, NULL, 2, -1e19);
    check_exp(ctx, "LogSumExp", (const double[]){-1e19, 5, -7}, NULL, 3, 5 + log1p(exp(-12)));
    check_exp(ctx, "LogSumExp", (const double[]){1e6, 1e6}, NULL, 2, 1e6 + log(2.0)); /* far outside exp's range */
    check_exp(ctx, "LogSumExp", (const double[]){-1e6, -1e6 - 1}, NULL, 2, -1e6 + log1p(exp(-1)));
    const double g[] = {1, 2, 4, 8};
    check_exp(ctx, "SumSoftMaxWeight", (const double[]){0, 0, 0, 0}, g, 4, 3.75);
    check_exp(ctx, "SumSoftMaxWeight", (const double[]){1e6, 1e6, -1e6, 0}, g, 4, 1.5);
    check_exp(ctx, "SumSoftMaxWeight", (const double[]){1, NAN, 2, 0}, g, 4, NAN);
    check_exp(ctx, "SumSoftMaxWeight", (const double[]){1, inf, 2, 0}, g, 4, NAN);
    check_exp(ctx, "SumSoftMaxWeight", (const double[]){-inf, -inf, -inf, -inf}, g, 4, NAN);
    check_exp(ctx, "SumSoftMaxWeight", (const double[]){-inf, 3, -inf, -inf}, g, 4, 2);
    check_exp(ctx, "SumSoftMaxWeight", (const double[]){2e18, 2e18, 1e18, 5}, g, 4, 1.5); /* ties at a huge x */
    check_exp(ctx, "SumSoftMaxWeight", (const double[]){-2e18, -3e18, -2e18, -2e18}, g, 4, 13.0 / 3);
    check_exp(ctx, "SumSoftMaxWeight", (const double[]){-2e18, 0, -2e18, -2e18}, g, 4, 2);
    kp_context_free(ctx);
}

/* A state of one scheme under another, and the state's size. */
static void test_errors(void **state) {
    (void)state;
    kp_context *ctx;
    KPT_ASSERT_OK(NULL, kpt_context_new(&ctx));
    data d = make_data(KP_FLOAT64, 3);
    char text[256];
    build_text("Sum_Reduction(@,1)", 1, text, sizeof text);
    kp_plan *p = plan_of(ctx, text, 1, KP_FLOAT64);
    kp_array a[3];
    args_of(&d, 0, 0, NRED, a);
    kp_state_info block, exact;
    KPT_ASSERT_OK(ctx, kp_plan_state_info(p, a, 3, NULL, &block));
    KPT_ASSERT_OK(ctx, kp_context_set_sum_scheme(ctx, KP_SUM_EXACT));
    KPT_ASSERT_OK(ctx, kp_plan_state_info(p, a, 3, NULL, &exact));
    assert_int_equal(exact.nreal, 0);
    assert_int_equal(exact.nidx, 2 * 12); /* D = 2 accumulators of 12 words */
    assert_int_equal(block.nreal, 4);
    void *s = malloc(exact.bytes), *s2 = malloc(exact.bytes);
    KPT_ASSERT_OK(ctx, kp_plan_state_init(p, &exact, s));
    KPT_ASSERT_OK(ctx, kp_plan_state_init(p, &exact, s2));
    KPT_ASSERT_OK(ctx, kp_plan_exec_partial(p, a, 3, 0, s, exact.bytes, NULL));
    KPT_ASSERT_OK(ctx, kp_context_set_sum_scheme(ctx, KP_SUM_BLOCK));
    assert_int_equal(kp_plan_exec_partial(p, a, 3, 0, s, exact.bytes, NULL), KP_ERR_ARGUMENT);
    assert_int_equal(kp_plan_state_merge(p, s, s2, exact.bytes), KP_ERR_ARGUMENT);
    assert_non_null(strstr(kp_context_message(ctx), "sum scheme"));
    KPT_ASSERT_OK(ctx, kp_context_set_sum_scheme(ctx, KP_SUM_EXACT));
    KPT_ASSERT_OK(ctx, kp_plan_state_merge(p, s, s2, exact.bytes));
    assert_int_equal(kp_context_set_sum_scheme(ctx, (kp_sum_scheme)4), KP_ERR_ARGUMENT);
    free(s);
    free(s2);
    kp_plan_free(p);
    free_data(&d);
    kp_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_any_split),         cmocka_unit_test(test_any_split_ranges),
        cmocka_unit_test(test_correctly_rounded), cmocka_unit_test(test_other_reductions),
        cmocka_unit_test(test_exp_special_values),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
