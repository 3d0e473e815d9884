/*
 * test_robustness.c — regression tests for misuse that used to crash, each a
 * documented status now (the inputs the fuzzers and the thread test found):
 *   - RowSum of a reduction with index outputs (its indices were written past
 *     the one-row output): KP_ERR_PARSE, and kp_formula_with_indices of a
 *     row-summed Min: KP_ERR_ARGUMENT;
 *   - a formula used with another context than the one that made it (lowering
 *     indexed its tables by the other store's node ids): KP_ERR_ARGUMENT from
 *     kp_plan_new, kp_plan_new_joint and the gradient builders, with the
 *     message in the context passed, and both contexts usable afterwards.
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rowsum_of_indices_refused),
        cmocka_unit_test(test_formula_needs_its_own_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
