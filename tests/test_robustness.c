/*
 * test_robustness.c — regression tests for misuse that used to crash, each a
 * documented status now (the inputs the fuzzers and the thread test found):
 *   - RowSum of a reduction with index outputs (its indices were written past
 *     the one-row output): KP_ERR_PARSE, and kp_formula_with_indices of a
 *     row-summed Min: KP_ERR_ARGUMENT;
 *   - a formula used with another context than the one that made it (lowering
 *     indexed its tables by the other store's node ids): KP_ERR_ARGUMENT from
 *     kp_plan_new, kp_plan_new_joint and the gradient builders, with the
 *     message in the context passed, and both contexts usable afterwards;
 * and execution arguments that contradict the formula or the options (the
 * error paths the other suites did not reach): KP_ERR_SHAPE / KP_ERR_TOO_LARGE
 * naming what is wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kp_test_util.h"

static void test_rowsum_of_indices_refused(void **state) {
    (void)state;
    kp_context *ctx;
    kp_formula *f = NULL, *g = NULL;
    const char *al[] = {"x = Vi(2)", "y = Vj(2)"};
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    const char *bad[] = {"RowSum(ArgMin_Reduction(SqDist(x,y),0))", "RowSum(Min_ArgMin_Reduction(SqDist(x,y),1))",
                         "RowSum(ArgKMin_Reduction(SqDist(x,y),2,1))", "RowSum(Max_ArgMax_Reduction(x,0))"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        assert_int_equal(kp_formula_parse(ctx, bad[k], al, 2, &f), KP_ERR_PARSE);
        assert_null(f);
        assert_non_null(strstr(kp_context_message(ctx), "index outputs"));
    }
    /* Row sums of values stay allowed; their indices do not exist. */
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "RowSum(Min_Reduction(SqDist(x,y),0))", al, 2, &f));
    assert_int_equal(kp_formula_with_indices(ctx, f, &g), KP_ERR_ARGUMENT);
    assert_null(g);
    /* The row sum itself runs: sum over j of min_i |x_i - y_j|^2. */
    double x[4] = {0, 0, 1, 1}, y[6] = {0, 1, 2, 2, 1, 0}, out = -1;
    kp_plan *p;
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, KP_FLOAT64, &p));
    kp_array args[2] = {kp_array_2d(x, KP_FLOAT64, 2, 2), kp_array_2d(y, KP_FLOAT64, 3, 2)};
    kp_array o = kp_array_2d(&out, KP_FLOAT64, 1, 1);
    KPT_ASSERT_OK(ctx, kp_plan_exec(p, args, 2, &o, NULL, NULL));
    assert_true(out == 1.0 + 2.0 + 1.0); /* j=0: min(1, 1), j=1: min(8, 2), j=2: min(1, 1) */
    kp_plan_free(p);
    kp_formula_free(f);
    kp_context_free(ctx);
}

static void test_formula_needs_its_own_context(void **state) {
    (void)state;
    kp_context *a, *b;
    kp_formula *f, *h, *out = NULL;
    kp_plan *p = NULL;
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "c = Vj(1)"};
    assert_int_equal(kp_context_new(&a), KP_OK);
    assert_int_equal(kp_context_new(&b), KP_OK);
    /* b's store gets more nodes than a's, so a's node ids would be in range. */
    KPT_ASSERT_OK(b, kp_formula_parse(b, "Sum_Reduction(Exp(-SqDist(x,y)*2)*c+Sin(x)*Cos(y)*Sqrt(c), 1)", al, 3, &h));
    KPT_ASSERT_OK(a, kp_formula_parse(a, "Sum_Reduction(Exp(-SqDist(x,y))*c, 1)", al, 3, &f));
    assert_int_equal(kp_plan_new(b, f, KP_FLOAT64, &p), KP_ERR_ARGUMENT);
    assert_null(p);
    assert_non_null(strstr(kp_context_message(b), "another context"));
    assert_int_equal(kp_formula_grad(b, f, 0, &out), KP_ERR_ARGUMENT);
    assert_int_equal(kp_formula_softmax_lse(b, f, &out), KP_ERR_ARGUMENT);
    assert_int_equal(kp_formula_unsummed(b, f, &out), KP_ERR_ARGUMENT);
    assert_int_equal(kp_formula_with_indices(b, f, &out), KP_ERR_ARGUMENT);
    const kp_formula *both[2] = {f, f};
    assert_int_equal(kp_plan_new_joint(b, both, 2, KP_FLOAT64, &p), KP_ERR_ARGUMENT);
    assert_null(out);
    assert_null(p);
    /* Both contexts still work with their own formulas. */
    KPT_ASSERT_OK(a, kp_plan_new(a, f, KP_FLOAT64, &p));
    kp_plan_free(p);
    KPT_ASSERT_OK(b, kp_plan_new(b, h, KP_FLOAT64, &p));
    kp_plan_free(p);
    KPT_ASSERT_OK(a, kp_formula_grad(a, f, 1, &out));
    kp_formula_free(out);
    kp_formula_free(f);
    kp_formula_free(h);
    kp_context_free(a);
    kp_context_free(b);
}

/* Calls whose arrays disagree with the formula or the options: each a
 * KP_ERR_SHAPE (or KP_ERR_TOO_LARGE) naming what is wrong, never a crash. */
static void test_exec_argument_errors(void **state) {
    (void)state;
    kp_context *ctx;
    kp_formula *f, *rs, *pm, *ix;
    kp_plan *p, *prs, *ppm, *pix;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    const char *al[] = {"x = Vi(2)", "y = Vj(2)", "s = Pm(2)"};
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(SqDist(x,y), 1)", al, 2, &f));
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "RowSum(Sum_Reduction(SqDist(x,y), 1))", al, 2, &rs));
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction((s|y), 1)", al, 3, &pm));
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(IndexJ()*Sum(y), 1)", al, 2, &ix));
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, KP_FLOAT64, &p));
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, rs, KP_FLOAT64, &prs));
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, pm, KP_FLOAT64, &ppm));
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, ix, KP_FLOAT32, &pix));
    double x[8] = {0}, y[6] = {0}, s[2] = {1, 2}, out[4];
    float yf[6] = {0}, outf[4];
    kp_array a[3] = {kp_array_2d(x, KP_FLOAT64, 4, 2), kp_array_2d(y, KP_FLOAT64, 3, 2), kp_array_1d(s, KP_FLOAT64, 2)};
    kp_array o = kp_array_2d(out, KP_FLOAT64, 4, 1), o1 = kp_array_2d(out, KP_FLOAT64, 1, 1);
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    /* Options that contradict the arrays. */
    opt.nx = 3;
    assert_int_equal(kp_plan_exec(p, a, 2, &o, NULL, &opt), KP_ERR_SHAPE);
    assert_non_null(strstr(kp_context_message(ctx), "options"));
    opt.nx = -1;
    opt.ny = 5;
    assert_int_equal(kp_plan_exec(p, a, 2, &o, NULL, &opt), KP_ERR_SHAPE);
    assert_non_null(strstr(kp_context_message(ctx), "rows"));
    /* A row-summed formula writes one row. */
    assert_int_equal(kp_plan_exec(prs, a, 2, &o, NULL, NULL), KP_ERR_SHAPE);
    assert_non_null(strstr(kp_context_message(ctx), "1 row"));
    KPT_ASSERT_OK(ctx, kp_plan_exec(prs, a, 2, &o1, NULL, NULL));
    /* A parameter as (1, dim) is accepted; as (2, dim) or with a wrong rank it is not. */
    kp_array a2[3] = {a[0], a[1], kp_array_2d(s, KP_FLOAT64, 1, 2)};
    KPT_ASSERT_OK(ctx, kp_plan_exec(ppm, a2, 3, &o, NULL, NULL));
    a2[2] = kp_array_2d(s, KP_FLOAT64, 2, 1);
    assert_int_equal(kp_plan_exec(ppm, a2, 3, &o, NULL, NULL), KP_ERR_SHAPE);
    int64_t shape3[3] = {1, 1, 2};
    a2[2] = kp_array_nd(s, KP_FLOAT64, 3, shape3);
    assert_int_equal(kp_plan_exec(ppm, a2, 3, &o, NULL, NULL), KP_ERR_SHAPE);
    assert_non_null(strstr(kp_context_message(ctx), "ndim"));
    /* No Vi argument used: the output's rows say how many i points. */
    kp_array yo[2] = {kp_array_2d(x, KP_FLOAT32, 4, 2), kp_array_2d(yf, KP_FLOAT32, 3, 2)};
    kp_array of = kp_array_2d(outf, KP_FLOAT32, 4, 1);
    KPT_ASSERT_OK(ctx, kp_plan_exec(pix, yo, 2, &of, NULL, NULL));
    /* float32 holds point indices exactly below 2^24: more is KP_ERR_TOO_LARGE (a stride-0 cloud). */
    kp_array big = kp_array_2d(yf, KP_FLOAT32, ((int64_t)1 << 24) + 1, 2);
    big.strides[0] = 0;
    yo[1] = big;
    assert_int_equal(kp_plan_exec(pix, yo, 2, &of, NULL, NULL), KP_ERR_TOO_LARGE);
    assert_non_null(strstr(kp_context_message(ctx), "2^24"));
    kp_plan_free(p);
    kp_plan_free(prs);
    kp_plan_free(ppm);
    kp_plan_free(pix);
    kp_formula_free(f);
    kp_formula_free(rs);
    kp_formula_free(pm);
    kp_formula_free(ix);
    kp_context_free(ctx);
}

/* The parser's limits: each a status and a message, never a crash. */
static void test_parser_limits(void **state) {
    (void)state;
    kp_context *ctx;
    kp_formula *f = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    static const struct {
        const char *text;
        kp_status st;
        const char *msg;
    } cases[] = {
        {"Sum_Reduction(Vi(256,1), 1)", KP_ERR_PARSE, "position"},
        {"Sum_Reduction(Vi(0,0), 1)", KP_ERR_SHAPE, "dimension"},
        {"Sum_Reduction(Clamp(Vi(0,1),Vi(0,1),Vi(0,1),Vi(0,1),Vi(0,1)), 1)", KP_ERR_PARSE, "arguments"},
        {"KMin_Reduction(Vi(0,300), 300, 1)", KP_ERR_SHAPE, "too large"},
        {"KMin_Reduction(Vi(0,3), 0, 1)", KP_ERR_PARSE, "at least 1"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        kp_status st = kp_formula_parse(ctx, cases[k].text, NULL, 0, &f);
        if (st != cases[k].st || !strstr(kp_context_message(ctx), cases[k].msg))
            print_error("%s: status %d, message '%s'\n", cases[k].text, (int)st, kp_context_message(ctx));
        assert_int_equal(st, cases[k].st);
        assert_non_null(strstr(kp_context_message(ctx), cases[k].msg));
        assert_null(f);
    }
    /* Nesting deeper than the parser's limit is an error, not a stack overflow. */
    char deep[4096] = "Sum_Reduction(";
    for (int k = 0; k < 1000; k++) strcat(deep, "(");
    strcat(deep, "Vi(0,1)");
    for (int k = 0; k < 1000; k++) strcat(deep, ")");
    strcat(deep, ",1)");
    assert_int_equal(kp_formula_parse(ctx, deep, NULL, 0, &f), KP_ERR_PARSE);
    assert_non_null(strstr(kp_context_message(ctx), "deeply"));
    /* A gradient needs positions past the formula's: at position 255, there are none. */
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(Vi(255,1)*Vj(254,1), 1)", NULL, 0, &f));
    kp_formula *g = NULL;
    assert_int_equal(kp_formula_grad(ctx, f, 255, &g), KP_ERR_ARGUMENT);
    assert_non_null(strstr(kp_context_message(ctx), "too many arguments"));
    assert_null(g);
    kp_formula_free(f);
    kp_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rowsum_of_indices_refused),
        cmocka_unit_test(test_formula_needs_its_own_context),
        cmocka_unit_test(test_exec_argument_errors),
        cmocka_unit_test(test_parser_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
