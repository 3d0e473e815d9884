/*
 * test_canon.c — canonical forms of the formula layer (formula/canon.c).
 *
 * What it asserts:
 * - the canonical print of each spelling: Sum(Square(a-b)) is SqDist(a,b),
 *   Sum(a*b) and Sum(Square(a)) scalar products, a division by a power of two
 *   a product, 1/b an Inv, signs out of quotients; divisions by other numbers
 *   and by parameters stay divisions (their inverse is rounded);
 * - equal math, equal programs: KeOps tutorials' spellings of the Gaussian,
 *   Cauchy, Laplacian, LogSumExp and ArgKMin kernels print exactly as their
 *   Genred spellings with SqDist, so they run the same program;
 * - values: every panel formula in the tutorial spelling, float32 and float64,
 *   against a dense float64 reference computed here (ragged sizes, several
 *   tiles); ArgKMin's indices exactly in float64 and by distance in float32.
 *   These run on the engine of KP_TEST_ENGINE (kpt_context_new): the GPU
 *   suites run them on the kernels generated from the canonical programs.
 * Gradients of these spellings are checked by finite differences in test_grad.c.
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

#include "kp_test_util.h"

static const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "w = Pm(3)", "b = Vj(1)", "s = Pm(1)"};
#define NAL 5

static void print_of(kp_context *ctx, const char *text, char *buf, size_t size) {
    kp_formula *f = NULL;
    kp_status st = kp_formula_parse(ctx, text, aliases, NAL, &f);
    if (st != KP_OK) print_error("%s: %s\n", text, kp_context_message(ctx));
    assert_int_equal(st, KP_OK);
    kp_formula_print(f, buf, size);
    kp_formula_free(f);
}

static const struct {
    const char *in, *out;
} printed[] = {
    {"Sum(Square(x-y))", "SqDist(Vi(0,3),Vj(1,3))"},
    {"Sum(Square(y-x))", "SqDist(Vi(0,3),Vj(1,3))"},
    {"Sum((x-y)*(x-y))", "SqDist(Vi(0,3),Vj(1,3))"},
    {"Sum(Pow(x-y,2))", "SqDist(Vi(0,3),Vj(1,3))"},
    {"Sum(x*y)", "(Vi(0,3)|Vj(1,3))"},
    {"Sum(Square(x))", "(Vi(0,3)|Vi(0,3))"},
    {"Sum(Square(x-b))", "((Vi(0,3)-Vj(3,1))|(Vi(0,3)-Vj(3,1)))"},
    {"Sum(Square(x-y)*w)", "(Pm(2,3)|Square((Vi(0,3)-Vj(1,3))))"},
    {"Sum(x*b)", "Sum((Vi(0,3)*Vj(3,1)))"}, /* dimensions differ: no scalar product */
    {"Sum(Abs(x-y))", "Sum(Abs((Vi(0,3)-Vj(1,3))))"},
    {"Norm2(x-y)", "Sqrt(SqDist(Vi(0,3),Vj(1,3)))"},
    {"-(16*x)", "((-16)*Vi(0,3))"},
    {"(-x)*16", "((-16)*Vi(0,3))"},
    {"x*(-16)", "((-16)*Vi(0,3))"},
    {"-(s*x)", "(-(Vi(0,3)*Pm(4,1)))"}, /* a parameter's sign is left to the lowering */
    {"x/4", "(0.25*Vi(0,3))"},
    {"x/0.125", "(8*Vi(0,3))"},
    {"x/(-2)", "((-0.5)*Vi(0,3))"},
    {"x/3", "(Vi(0,3)/3)"},          /* 1/3 is rounded: kept */
    {"x/0", "(Vi(0,3)/0)"},          /* no inverse */
    {"x/1e300", "(Vi(0,3)/1.0000000000000001e+300)"}, /* 1e-300 is not a float32 */
    {"x/Pow(IntCst(2),127)", "(Vi(0,3)/1.7014118346046923e+38)"}, /* 2^-127 is subnormal in float32 */
    {"x/s", "(Vi(0,3)/Pm(4,1))"},
    {"IntCst(1)/b", "Inv(Vj(3,1))"},
    {"-x/s", "(-(Vi(0,3)/Pm(4,1)))"},
    {"x/(-s)", "(-(Vi(0,3)/Pm(4,1)))"},
    {"(-x)/(-s)", "(Vi(0,3)/Pm(4,1))"},
    {"x+(-y)", "(Vi(0,3)-Vj(1,3))"},
    {"(-x)+y", "(Vj(1,3)-Vi(0,3))"}, /* not y+(-x), which reparses as y-x */
    {"(-y)+x", "(Vi(0,3)-Vj(1,3))"},
    {"(-x)+(-y)", "((-Vi(0,3))-Vj(1,3))"},
    {"x-(-y)", "(Vi(0,3)+Vj(1,3))"},
    {"Extract(Concat(x,y),0,3)", "Vi(0,3)"}, /* components within one operand of a Concat: that operand's */
    {"Extract(Concat(x,y),3,2)", "Extract(Vj(1,3),0,2)"},
    {"Extract(Concat(b,Concat(x,y)),5,1)", "Extract(Vj(1,3),1,1)"},
    {"Extract(Concat(x,y),2,2)", "Extract(Concat(Vi(0,3),Vj(1,3)),2,2)"}, /* across both: kept */
};

static void test_printed_forms(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    int fails = 0;
    for (size_t c = 0; c < sizeof printed / sizeof printed[0]; c++) {
        char text[256], want[256], got[512];
        snprintf(text, sizeof text, "Sum_Reduction(%s,1)", printed[c].in);
        snprintf(want, sizeof want, "Sum_Reduction(%s,1)", printed[c].out);
        print_of(ctx, text, got, sizeof got);
        if (strcmp(got, want) != 0) {
            print_message("%s\n  printed %s\n  wanted  %s\n", text, got, want);
            fails++;
        }
    }
    kp_context_free(ctx);
    assert_int_equal(fails, 0);
}

/* The KeOps tutorials' spelling (as pykp's LazyTensor writes it) and the Genred one. */
static const struct {
    const char *tutorial, *genred;
} same_program[] = {
    {"Sum_Reduction(Exp(-Sum(Square(x-y))/s)*b,1)", "Sum_Reduction(Exp(-SqDist(x,y)/s)*b,1)"},
    {"Sum_Reduction(Exp((-Sum(Square(x-y)))*IntCst(16))*b,1)", "Sum_Reduction(Exp(-SqDist(x,y)*16)*b,1)"},
    {"Sum_Reduction(IntCst(1)/(IntCst(1)+Sum(Square(x-y))*IntCst(16))*b,1)",
     "Sum_Reduction(Inv(1+16*SqDist(x,y))*b,1)"},
    {"Sum_Reduction(Exp((-Sqrt(Sum(Square(x-y))))*IntCst(4))*b,1)", "Sum_Reduction(Exp(-Sqrt(SqDist(x,y))*4)*b,1)"},
    {"LogSumExp_Reduction((-Sum(Square(x-y)))*IntCst(16),1)", "LogSumExp_Reduction(-SqDist(x,y)*16,1)"},
    {"ArgKMin_Reduction(Sum(Square(x-y)),8,1)", "ArgKMin_Reduction(SqDist(x,y),8,1)"},
    {"Sum_Reduction(Sum(x*y)/IntCst(2)*b,1)", "Sum_Reduction(0.5*(x|y)*b,1)"},
    {"Sum_Reduction(Exp(-Sum(Square(x-y)*w))*b,1)", "Sum_Reduction(Exp(-WeightedSqDist(w,x,y))*b,1)"},
    {"Sum_Reduction(Exp((-Sqrt(Sum(Square(x-y))))*IntCst(4))*b,1)", "Sum_Reduction(Exp(-Norm2(x-y)*4)*b,1)"},
    {"Sum_Reduction(Exp((-Sum(Abs(x-y)))*IntCst(4))*b,1)", "Sum_Reduction(Exp(Sum(Abs(x-y))*(-4))*b,1)"},
};

static void test_equal_programs(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    int fails = 0;
    for (size_t c = 0; c < sizeof same_program / sizeof same_program[0]; c++) {
        char a[512], b[512];
        print_of(ctx, same_program[c].tutorial, a, sizeof a);
        print_of(ctx, same_program[c].genred, b, sizeof b);
        if (strcmp(a, b) != 0) {
            print_message("%s\n  %s\n  %s\n", same_program[c].tutorial, a, b);
            fails++;
        }
    }
    kp_context_free(ctx);
    assert_int_equal(fails, 0);
}

/* ------------------------------------------------------------------ values */

enum { N = 37, M = 1100, K = 8 };
static const double S = 0.3, W[3] = {0.5, 2.0, 1.25};

typedef enum { GAUSS, CAUCHY, LAPLACE, L1, ANISO, LSE, DOTK } kernel_kind;

static double pair_value(kernel_kind kind, const double *x, const double *y) {
    double d2 = 0, l1 = 0, wd = 0, dt = 0;
    for (int c = 0; c < 3; c++) {
        double d = x[c] - y[c];
        d2 += d * d;
        l1 += fabs(d);
        wd += W[c] * d * d;
        dt += x[c] * y[c];
    }
    switch (kind) {
    case GAUSS: return exp(-d2 / S);
    case CAUCHY: return 1 / (1 + d2 * 16);
    case LAPLACE: return exp(-sqrt(d2) * 4);
    case L1: return exp(-l1 * 4);
    case ANISO: return exp(-wd);
    case LSE: return -d2 * 16;
    case DOTK: return dt / 2;
    }
    return 0;
}

static const struct {
    kernel_kind kind;
    const char *text;
} value_cases[] = {
    {GAUSS, "Sum_Reduction(Exp(-Sum(Square(x-y))/s)*b,1)"},
    {CAUCHY, "Sum_Reduction(IntCst(1)/(IntCst(1)+Sum(Square(x-y))*IntCst(16))*b,1)"},
    {LAPLACE, "Sum_Reduction(Exp((-Sqrt(Sum(Square(x-y))))*IntCst(4))*b,1)"},
    {L1, "Sum_Reduction(Exp((-Sum(Abs(x-y)))*IntCst(4))*b,1)"},
    {ANISO, "Sum_Reduction(Exp(-Sum(Square(x-y)*w))*b,1)"},
    {LSE, "LogSumExp_Reduction((-Sum(Square(x-y)))*IntCst(16),1)"},
    {DOTK, "Sum_Reduction(Sum(x*y)/IntCst(2)*b,1)"},
    {GAUSS, "Sum_Reduction(Exp(-Sum(Square(Extract(Concat(x,b),0,3)-Extract(Concat(b,y),1,3)))/s)*b,1)"},
    {DOTK, "Sum_Reduction(Sum(Extract(Concat(b,Concat(x,y)),1,3)*Extract(Concat(b,Concat(x,y)),4,3))/IntCst(2)*b,1)"},
};

typedef struct data {
    double x[N * 3], y[M * 3], b[M], w[3], s;
} data;

static void make_data(data *d) {
    kpt_rng rng;
    kpt_rng_seed(&rng, 11);
    kpt_fill_uniform(&rng, d->x, N * 3, 0, 1);
    kpt_fill_uniform(&rng, d->y, M * 3, 0, 1);
    kpt_fill_uniform(&rng, d->b, M, -1, 1);
    memcpy(d->w, W, sizeof W);
    d->s = S;
}

/* out[i] and, for the sums, the scale sum_j |k_ij b_j| that float32 errors follow. */
static void reference(kernel_kind kind, const data *d, double *out, double *scale) {
    for (int i = 0; i < N; i++) {
        double acc = 0, mag = 0, mx = -INFINITY;
        for (int j = 0; j < M; j++) {
            double v = pair_value(kind, d->x + 3 * i, d->y + 3 * j);
            if (kind == LSE) mx = v > mx ? v : mx;
            else {
                acc += v * d->b[j];
                mag += fabs(v * d->b[j]);
            }
        }
        if (kind == LSE) {
            for (int j = 0; j < M; j++) acc += exp(pair_value(kind, d->x + 3 * i, d->y + 3 * j) - mx);
            acc = mx + log(acc);
            mag = fabs(acc) + 1;
        }
        out[i] = acc;
        scale[i] = mag;
    }
}

static void test_values(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    data *d = malloc(sizeof *d);
    assert_non_null(d);
    make_data(d);
    kpt_arg args[5] = {{d->x, N, 3}, {d->y, M, 3}, {d->w, -1, 3}, {d->b, M, 1}, {&d->s, -1, 1}};
    double ref[N], scale[N], got[N];
    size_t fails = 0;
    for (size_t c = 0; c < sizeof value_cases / sizeof value_cases[0]; c++) {
        reference(value_cases[c].kind, d, ref, scale);
        for (int t = 0; t < 2; t++) {
            kp_dtype dt = t ? KP_FLOAT32 : KP_FLOAT64;
            kp_status st = kpt_run(ctx, KPT_VIA_PLAN, value_cases[c].text, aliases, NAL, dt, args, 5, N, 1, got, 0,
                                   NULL, NULL);
            KPT_ASSERT_OK(ctx, st);
            /* float32: inputs rounded (~6e-8 relative each), sums of M terms compensated */
            fails += kpt_check(value_cases[c].text, got, ref, scale, N, t ? 2e-6 : 1e-13, 0);
        }
    }
    free(d);
    kp_context_free(ctx);
    assert_int_equal(fails, 0);
}

/* ArgKMin of the tutorial's distance: the reference's indices in float64; in
 * float32 (where near-equal distances may swap) the distances they point at. */
static void test_argkmin(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    data *d = malloc(sizeof *d);
    assert_non_null(d);
    make_data(d);
    kpt_arg args[2] = {{d->x, N, 3}, {d->y, M, 3}};
    const char *al[] = {"x = Vi(3)", "y = Vj(3)"};
    int64_t ref[N * K], got[N * K];
    double dref[N * K], dgot[N * K];
    for (int i = 0; i < N; i++) /* selection of the K smallest, ties to the lower index */
        for (int k = 0; k < K; k++) {
            int64_t best = -1;
            double bd = INFINITY;
            for (int j = 0; j < M; j++) {
                double v = pair_value(LSE, d->x + 3 * i, d->y + 3 * j) / -16;
                int taken = 0;
                for (int q = 0; q < k; q++) taken |= ref[i * K + q] == j;
                if (!taken && v < bd) {
                    bd = v;
                    best = j;
                }
            }
            ref[i * K + k] = best;
            dref[i * K + k] = bd;
        }
    size_t fails = 0;
    for (int t = 0; t < 2; t++) {
        kp_dtype dt = t ? KP_FLOAT32 : KP_FLOAT64;
        KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, "ArgKMin_Reduction(Sum(Square(x-y)),8,1)", al, 2, dt, args, 2,
                                   N, 0, NULL, K, got, NULL));
        if (!t) fails += kpt_check_index("ArgKMin float64", got, ref, N * K);
        for (int q = 0; q < N * K; q++)
            dgot[q] = pair_value(LSE, d->x + 3 * (q / K), d->y + 3 * got[q]) / -16;
        fails += kpt_check("ArgKMin distances", dgot, dref, NULL, N * K, 1e-5, 1e-7);
    }
    free(d);
    kp_context_free(ctx);
    assert_int_equal(fails, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printed_forms),
        cmocka_unit_test(test_equal_programs),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_argkmin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
