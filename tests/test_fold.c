/*
 * test_fold.c — constant folding agrees with evaluation.
 *
 * The parser folds an operation whose operands are all constants into one
 * constant (formula/node.c, with formula/scalar_eval.h in double); the CPU
 * engine evaluates the same operation on a parameter (SLEEF or its own
 * vector code). For every elementwise operation and operands including 0,
 * negative numbers, values outside the domain (NaN), and infinities:
 * OP(c) folded must equal OP(p) evaluated with p = c, in float64, to 2 ulp
 * (both NaN counts as equal). A folded constant that differs from the
 * evaluated one would make a formula's value depend on how it was written.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kp_test_util.h"

static const double VALUES[] = {-2.5, -1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 3.0, INFINITY, -INFINITY};
#define NV (sizeof VALUES / sizeof VALUES[0])

/* One-output float64 run of "Sum_Reduction(<f>, 1)" with one row, one reduced point. */
static double eval(kp_context *ctx, const char *f, const double *p, int np) {
    const char *al[] = {"p = Pm(1)", "q = Pm(1)", "r = Pm(1)"};
    char text[512];
    snprintf(text, sizeof text, "Sum_Reduction(%s, 1)", f);
    double out = -12345;
    kp_array args[3];
    for (int k = 0; k < 3; k++) args[k] = kp_array_1d((void *)&p[k < np ? k : 0], KP_FLOAT64, 1);
    kp_array o = kp_array_2d(&out, KP_FLOAT64, 1, 1);
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.nx = 1;
    opt.ny = 1;
    kp_formula *fm;
    kp_plan *plan;
    kp_status st = kp_formula_parse(ctx, text, al, (size_t)np, &fm);
    if (st != KP_OK) print_error("%s: %s\n", text, kp_context_message(ctx));
    assert_int_equal(st, KP_OK);
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, fm, KP_FLOAT64, &plan));
    KPT_ASSERT_OK(ctx, kp_plan_exec(plan, args, (size_t)kp_formula_num_args(fm), &o, NULL, &opt));
    kp_plan_free(plan);
    kp_formula_free(fm);
    return out;
}

static int same(double a, double b) {
    if (a != a || b != b) return a != a && b != b;
    if (a == b) return 1;
    return fabs(a - b) <= 4.5e-16 * fabs(b); /* 2 ulp */
}

/* Writes a literal for v (the parser takes no "inf": 1/0 and -1/0 fold to them). */
static void lit(double v, char *buf, size_t size) {
    if (v == INFINITY) snprintf(buf, size, "(1/0)");
    else if (v == -INFINITY) snprintf(buf, size, "(-1/0)");
    else snprintf(buf, size, "(%.17g)", v);
}

static void check(kp_context *ctx, const char *folded_fmt, const char *eval_fmt, const double *v, int n, int *fails) {
    char l[3][64], ft[256], et[256];
    for (int k = 0; k < n; k++) lit(v[k], l[k], sizeof l[k]);
    snprintf(ft, sizeof ft, folded_fmt, l[0], l[1], l[2]);
    snprintf(et, sizeof et, eval_fmt, "p", "q", "r");
    double a = eval(ctx, ft, v, n), b = eval(ctx, et, v, n);
    if (!same(a, b)) {
        if (*fails < 10) print_error("%s = %.17g folded, %.17g evaluated (%s)\n", ft, a, b, et);
        (*fails)++;
    }
}

static void test_unary(void **state) {
    (void)state;
    static const char *ops[] = {"Exp", "Log", "XLogX", "Sin", "Cos", "Asin", "Acos", "Atan", "SinXDivX", "Tanh",
                                "Erf", "Abs", "Sign", "Step", "ReLU", "Floor", "Inv", "Square", "Sqrt", "Rsqrt",
                                "Minus"};
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    int fails = 0;
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
        for (size_t k = 0; k < NV; k++) {
            char fmt[64];
            snprintf(fmt, sizeof fmt, "%s(%%s)", ops[o]);
            check(ctx, fmt, fmt, &VALUES[k], 1, &fails);
        }
    static const char *param[] = {"Pow(%s,3)", "Pow(%s,-2)", "Pow(%s,0)", "Round(%s,0)", "Round(%s,2)"};
    for (size_t o = 0; o < sizeof param / sizeof param[0]; o++)
        for (size_t k = 0; k < NV; k++) check(ctx, param[o], param[o], &VALUES[k], 1, &fails);
    assert_int_equal(fails, 0);
    kp_context_free(ctx);
}

static void test_binary_ternary(void **state) {
    (void)state;
    static const char *ops2[] = {"(%s+%s)", "(%s-%s)", "(%s*%s)", "(%s/%s)", "Powf(%s,%s)", "Atan2(%s,%s)",
                                 "(%s<%s)",  "(%s<=%s)", "(%s>%s)", "(%s>=%s)", "(%s==%s)", "(%s!=%s)",
                                 "Mod(%s,%s)"};
    static const char *ops3[] = {"Clamp(%s,%s,%s)", "IfElse(%s,%s,%s)", "Mod(%s,%s,%s)"};
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    int fails = 0;
    for (size_t o = 0; o < sizeof ops2 / sizeof ops2[0]; o++)
        for (size_t i = 0; i < NV; i++)
            for (size_t j = 0; j < NV; j += 2) {
                double v[2] = {VALUES[i], VALUES[j]};
                check(ctx, ops2[o], ops2[o], v, 2, &fails);
            }
    for (size_t o = 0; o < sizeof ops3 / sizeof ops3[0]; o++)
        for (size_t i = 0; i < NV; i += 2)
            for (size_t j = 1; j < NV; j += 3) {
                double v[3] = {VALUES[i], VALUES[j], VALUES[(i + j) % NV]};
                check(ctx, ops3[o], ops3[o], v, 3, &fails);
            }
    assert_int_equal(fails, 0);
    kp_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_unary), cmocka_unit_test(test_binary_ternary)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
