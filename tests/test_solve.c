/*
 * test_solve.c — kp_plan_solve: conjugate gradients on (alpha I + K) x = b.
 *
 * What it asserts:
 * - Gaussian kernel systems (x = y, N = 300 in 3D, b of 2 columns, alpha = 0.1
 *   and alpha = 0) solved in float64 equal a dense float64 LU solve to 1e-8;
 *   in float32 to 1e-4 (relative to max |x|); reductions over j (axis 1, b a Vj
 *   variable) and over i (axis 0, b a Vi variable);
 * - the reported residual is |b - (alpha I + K) x| / |b| of the returned x
 *   (checked against a dense product), and iterations stay below n*d;
 * - strided b and x (column-major), and x given as b itself;
 * - b = 0 gives x = 0 in 0 iterations; a capped run reports converged = 0 with
 *   the last iterate and its residual;
 * - bad calls get the documented status: not a Sum (LogSumExp), K not square
 *   (N != M, or nx in the options), varinv not a variable of the reduced axis,
 *   alpha < 0, tol <= 0, options->size too small, info NULL, b of the wrong
 *   dtype or width, x of the wrong rows, a negative definite operator.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kp_test_util.h"

#define GAMMA 2.0 /* exp(-2 |x-y|^2) on points in [0,1]^3: well but not trivially conditioned */

typedef struct sys {
    int64_t n, d;
    double *x, *b; /* points (n, 3), right-hand side (n, d) */
} sys;

static sys sys_new(int64_t n, int64_t d, uint64_t seed) {
    kpt_rng r;
    kpt_rng_seed(&r, seed);
    sys s = {n, d, kpt_random_array(&r, (size_t)(n * 3), 0, 1), kpt_random_array(&r, (size_t)(n * d), -1, 1)};
    return s;
}

static void sys_free(sys *s) {
    free(s->x);
    free(s->b);
}

/* A = alpha I + K, dense (n, n), K_ij = exp(-GAMMA |x_i - x_j|^2). */
static double *dense_matrix(const sys *s, double alpha) {
    int64_t n = s->n;
    double *A = malloc((size_t)(n * n) * sizeof *A);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double d2 = 0;
            for (int c = 0; c < 3; c++) {
                double t = s->x[3 * i + c] - s->x[3 * j + c];
                d2 += t * t;
            }
            A[i * n + j] = exp(-GAMMA * d2) + (i == j ? alpha : 0);
        }
    return A;
}

/* Dense solve of A X = B (B: n x d, overwritten by X) by LU with partial pivoting. */
static void dense_solve(double *A, int64_t n, double *B, int64_t d) {
    for (int64_t k = 0; k < n; k++) {
        int64_t piv = k;
        for (int64_t i = k + 1; i < n; i++)
            if (fabs(A[i * n + k]) > fabs(A[piv * n + k])) piv = i;
        if (piv != k) {
            for (int64_t j = 0; j < n; j++) {
                double t = A[k * n + j];
                A[k * n + j] = A[piv * n + j];
                A[piv * n + j] = t;
            }
            for (int64_t c = 0; c < d; c++) {
                double t = B[k * d + c];
                B[k * d + c] = B[piv * d + c];
                B[piv * d + c] = t;
            }
        }
        for (int64_t i = k + 1; i < n; i++) {
            double l = A[i * n + k] / A[k * n + k];
            for (int64_t j = k; j < n; j++) A[i * n + j] -= l * A[k * n + j];
            for (int64_t c = 0; c < d; c++) B[i * d + c] -= l * B[k * d + c];
        }
    }
    for (int64_t k = n - 1; k >= 0; k--)
        for (int64_t c = 0; c < d; c++) {
            double t = B[k * d + c];
            for (int64_t j = k + 1; j < n; j++) t -= A[k * n + j] * B[j * d + c];
            B[k * d + c] = t / A[k * n + k];
        }
}

/* |b - A x| / |b| with A dense (Frobenius norms). */
static double dense_residual(const double *A, const sys *s, const double *x) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < s->n; i++)
        for (int64_t c = 0; c < s->d; c++) {
            double t = s->b[i * s->d + c];
            for (int64_t j = 0; j < s->n; j++) t -= A[i * s->n + j] * x[j * s->d + c];
            num += t * t;
            den += s->b[i * s->d + c] * s->b[i * s->d + c];
        }
    return sqrt(num / den);
}

typedef struct problem {
    kp_context *ctx;
    kp_formula *f;
    kp_plan *plan;
    void *xv, *gv; /* points and the parameter in the plan's dtype */
    kp_array args[4];
} problem;

/* Gaussian kernel product "Exp(-SqDist(x,y)*g)*b" over axis, b at position 3. */
static void problem_new(problem *p, const sys *s, kp_dtype dtype, int axis, const char *kernel) {
    memset(p, 0, sizeof *p);
    assert_int_equal(kp_context_new(&p->ctx), KP_OK);
    char text[256], bdecl[32];
    snprintf(text, sizeof text, "Sum_Reduction(%s, %d)", kernel, axis);
    snprintf(bdecl, sizeof bdecl, "b = %s(3, %d)", axis == 1 ? "Vj" : "Vi", (int)s->d);
    const char *aliases[] = {"x = Vi(0, 3)", "y = Vj(1, 3)", "g = Pm(2, 1)", bdecl};
    KPT_ASSERT_OK(p->ctx, kp_formula_parse(p->ctx, text, aliases, 4, &p->f));
    KPT_ASSERT_OK(p->ctx, kp_plan_new(p->ctx, p->f, dtype, &p->plan));
    double g = GAMMA;
    p->xv = kpt_to_dtype(s->x, (size_t)(s->n * 3), dtype);
    p->gv = kpt_to_dtype(&g, 1, dtype);
    p->args[0] = kp_array_2d(p->xv, dtype, s->n, 3);
    p->args[1] = kp_array_2d(p->xv, dtype, s->n, 3);
    p->args[2] = kp_array_1d(p->gv, dtype, 1);
    p->args[3] = kp_array_2d(NULL, dtype, s->n, s->d); /* ignored: varinv */
}

static void problem_free(problem *p) {
    kp_plan_free(p->plan);
    kp_formula_free(p->f);
    kp_context_free(p->ctx);
    free(p->xv);
    free(p->gv);
}

/* Solves with kp_plan_solve and compares with the dense solve. */
static void check_against_dense(kp_dtype dtype, int axis, double alpha, double tol, double rtol) {
    sys s = sys_new(300, 2, 11u + (uint64_t)axis);
    problem p;
    problem_new(&p, &s, dtype, axis, "Exp(-SqDist(x,y)*g)*b");
    void *bv = kpt_to_dtype(s.b, (size_t)(s.n * s.d), dtype);
    void *xv = kpt_alloc_dtype((size_t)(s.n * s.d), dtype);
    kp_array b = kp_array_2d(bv, dtype, s.n, s.d), x = kp_array_2d(xv, dtype, s.n, s.d);
    kp_solve_options o = KP_SOLVE_OPTIONS_DEFAULT;
    o.alpha = alpha;
    o.tol = tol;
    kp_solve_info info;
    KPT_ASSERT_OK(p.ctx, kp_plan_solve(p.plan, p.args, 4, 3, &b, &x, &o, &info));
    assert_int_equal(info.converged, 1);
    assert_true(info.iterations > 0 && info.iterations < s.n * s.d);
    assert_true(info.residual <= tol);

    double *A = dense_matrix(&s, alpha), *ref = malloc((size_t)(s.n * s.d) * sizeof *ref), *got = malloc((size_t)(s.n * s.d) * sizeof *got);
    memcpy(ref, s.b, (size_t)(s.n * s.d) * sizeof *ref);
    kpt_from_dtype(xv, dtype, (size_t)(s.n * s.d), got);
    double *A2 = dense_matrix(&s, alpha);
    double res = dense_residual(A2, &s, got);
    dense_solve(A, s.n, ref, s.d);
    double scale = 0;
    for (int64_t k = 0; k < s.n * s.d; k++) scale = fmax(scale, fabs(ref[k]));
    double *sc = malloc((size_t)(s.n * s.d) * sizeof *sc);
    for (int64_t k = 0; k < s.n * s.d; k++) sc[k] = scale;
    assert_int_equal(kpt_check("solve vs dense", got, ref, sc, (size_t)(s.n * s.d), rtol, 0), 0);
    /* the reported residual is the true one of the returned x (float64: same to round-off) */
    if (dtype == KP_FLOAT64) assert_true(fabs(res - info.residual) <= 1e-9 + 0.01 * info.residual);
    print_message("%s axis %d alpha %g: %d iterations, residual %.2e (dense: %.2e)\n", kpt_dtype_name(dtype), axis,
                  alpha, info.iterations, info.residual, res);
    free(A), free(A2), free(ref), free(got), free(sc), free(bv), free(xv);
    problem_free(&p);
    sys_free(&s);
}

static void test_dense_f64(void **state) {
    (void)state;
    check_against_dense(KP_FLOAT64, 1, 0.1, 1e-12, 1e-8);
    check_against_dense(KP_FLOAT64, 0, 0.1, 1e-12, 1e-8);
    check_against_dense(KP_FLOAT64, 1, 1.0, 1e-12, 1e-8);
}

static void test_dense_f32(void **state) {
    (void)state;
    check_against_dense(KP_FLOAT32, 1, 0.1, 1e-6, 1e-4);
    check_against_dense(KP_FLOAT32, 0, 0.1, 1e-6, 1e-4);
}

/* Column-major b and x give the row-major answer; x may be b itself. */
static void test_strided_and_aliased(void **state) {
    (void)state;
    sys s = sys_new(120, 3, 5);
    problem p;
    problem_new(&p, &s, KP_FLOAT64, 1, "Exp(-SqDist(x,y)*g)*b");
    size_t len = (size_t)(s.n * s.d);
    double *bt = malloc(len * sizeof *bt), *xt = malloc(len * sizeof *xt), *xr = malloc(len * sizeof *xr);
    for (int64_t i = 0; i < s.n; i++)
        for (int64_t c = 0; c < s.d; c++) bt[c * s.n + i] = s.b[i * s.d + c];
    kp_array b = kp_array_2d(bt, KP_FLOAT64, s.n, s.d), x = b;
    b.strides[0] = 1, b.strides[1] = s.n;
    x.data = xt, x.strides[0] = 1, x.strides[1] = s.n;
    kp_solve_options o = KP_SOLVE_OPTIONS_DEFAULT;
    o.alpha = 0.5, o.tol = 1e-12;
    kp_solve_info info;
    KPT_ASSERT_OK(p.ctx, kp_plan_solve(p.plan, p.args, 4, 3, &b, &x, &o, &info));
    kp_array br = kp_array_2d(s.b, KP_FLOAT64, s.n, s.d), xrow = kp_array_2d(xr, KP_FLOAT64, s.n, s.d);
    KPT_ASSERT_OK(p.ctx, kp_plan_solve(p.plan, p.args, 4, 3, &br, &xrow, &o, &info));
    for (int64_t i = 0; i < s.n; i++)
        for (int64_t c = 0; c < s.d; c++) assert_true(xt[c * s.n + i] == xr[i * s.d + c]);
    /* in place: x is b */
    KPT_ASSERT_OK(p.ctx, kp_plan_solve(p.plan, p.args, 4, 3, &b, &b, &o, &info));
    for (int64_t i = 0; i < s.n; i++)
        for (int64_t c = 0; c < s.d; c++) assert_true(bt[c * s.n + i] == xr[i * s.d + c]);
    free(bt), free(xt), free(xr);
    problem_free(&p);
    sys_free(&s);
}

static void test_zero_rhs_and_cap(void **state) {
    (void)state;
    sys s = sys_new(200, 1, 9);
    problem p;
    problem_new(&p, &s, KP_FLOAT64, 1, "Exp(-SqDist(x,y)*g)*b");
    size_t len = (size_t)s.n;
    double *zero = calloc(len, sizeof *zero), *x = malloc(len * sizeof *x);
    for (size_t k = 0; k < len; k++) x[k] = 7;
    kp_array b = kp_array_2d(zero, KP_FLOAT64, s.n, 1), xa = kp_array_2d(x, KP_FLOAT64, s.n, 1);
    kp_solve_info info = {-1, -1, -1};
    KPT_ASSERT_OK(p.ctx, kp_plan_solve(p.plan, p.args, 4, 3, &b, &xa, NULL, &info));
    assert_int_equal(info.iterations, 0);
    assert_int_equal(info.converged, 1);
    for (size_t k = 0; k < len; k++) assert_true(x[k] == 0);
    /* alpha = 0: ill-conditioned; 3 iterations cannot reach 1e-14 */
    kp_solve_options o = KP_SOLVE_OPTIONS_DEFAULT;
    o.tol = 1e-14, o.max_iter = 3;
    b.data = s.b;
    KPT_ASSERT_OK(p.ctx, kp_plan_solve(p.plan, p.args, 4, 3, &b, &xa, &o, &info));
    assert_int_equal(info.converged, 0);
    assert_int_equal(info.iterations, 3);
    double *A = dense_matrix(&s, 0);
    double res = dense_residual(A, &s, x);
    assert_true(res > 1e-14 && fabs(res - info.residual) <= 1e-6 * res + 1e-12);
    free(A), free(zero), free(x);
    problem_free(&p);
    sys_free(&s);
}

static void expect(problem *p, kp_status got, kp_status want, const char *needle) {
    if (got != want || !strstr(kp_context_message(p->ctx), needle))
        print_error("status %d, message '%s'; expected %d and '%s'\n", (int)got, kp_context_message(p->ctx), (int)want,
                    needle);
    assert_int_equal(got, want);
    assert_non_null(strstr(kp_context_message(p->ctx), needle));
}

static void test_errors(void **state) {
    (void)state;
    sys s = sys_new(50, 1, 3);
    problem p;
    problem_new(&p, &s, KP_FLOAT64, 1, "Exp(-SqDist(x,y)*g)*b");
    double x[50], y2[40 * 3] = {0};
    float bf[50] = {0};
    kp_array b = kp_array_2d(s.b, KP_FLOAT64, 50, 1), xa = kp_array_2d(x, KP_FLOAT64, 50, 1);
    kp_solve_options o = KP_SOLVE_OPTIONS_DEFAULT;
    kp_solve_info info;
    expect(&p, kp_plan_solve(p.plan, p.args, 4, 3, &b, &xa, &o, NULL), KP_ERR_NULL, "info");
    expect(&p, kp_plan_solve(p.plan, p.args, 4, 0, &b, &xa, &o, &info), KP_ERR_ARGUMENT, "Vj variable");
    expect(&p, kp_plan_solve(p.plan, p.args, 4, 7, &b, &xa, &o, &info), KP_ERR_ARGUMENT, "varinv = 7");
    o.alpha = -1;
    expect(&p, kp_plan_solve(p.plan, p.args, 4, 3, &b, &xa, &o, &info), KP_ERR_ARGUMENT, "alpha");
    o.alpha = 0, o.tol = 0;
    expect(&p, kp_plan_solve(p.plan, p.args, 4, 3, &b, &xa, &o, &info), KP_ERR_ARGUMENT, "tol");
    o.tol = 1e-6, o.size = 8;
    expect(&p, kp_plan_solve(p.plan, p.args, 4, 3, &b, &xa, &o, &info), KP_ERR_ARGUMENT, "options->size");
    o.size = sizeof o;
    kp_array bad = kp_array_2d(bf, KP_FLOAT32, 50, 1);
    expect(&p, kp_plan_solve(p.plan, p.args, 4, 3, &bad, &xa, &o, &info), KP_ERR_DTYPE, "b has dtype");
    bad = kp_array_2d(s.b, KP_FLOAT64, 25, 2);
    expect(&p, kp_plan_solve(p.plan, p.args, 4, 3, &bad, &xa, &o, &info), KP_ERR_SHAPE, "b must have shape");
    bad = kp_array_2d(x, KP_FLOAT64, 40, 1);
    expect(&p, kp_plan_solve(p.plan, p.args, 4, 3, &b, &bad, &o, &info), KP_ERR_SHAPE, "x has 40 rows");
    /* N != M: 40 x points, 50 y points and b rows */
    kp_array args[4];
    memcpy(args, p.args, sizeof args);
    args[0] = kp_array_2d(y2, KP_FLOAT64, 40, 3);
    expect(&p, kp_plan_solve(p.plan, args, 4, 3, &b, &xa, &o, &info), KP_ERR_SHAPE, "not square");
    kp_exec_options eo = KP_EXEC_OPTIONS_DEFAULT;
    eo.nx = 10;
    o.exec = &eo;
    expect(&p, kp_plan_solve(p.plan, p.args, 4, 3, &b, &xa, &o, &info), KP_ERR_SHAPE, "not square");
    o.exec = NULL;
    expect(&p, kp_plan_solve(p.plan, p.args, 3, 3, &b, &xa, &o, &info), KP_ERR_ARGUMENT, "3 arguments given");
    problem_free(&p);

    problem_new(&p, &s, KP_FLOAT64, 1, "-Exp(-SqDist(x,y)*g)*b"); /* negative definite */
    expect(&p, kp_plan_solve(p.plan, p.args, 4, 3, &b, &xa, &o, &info), KP_ERR_ARGUMENT, "not positive definite");
    problem_free(&p);

    kp_context *ctx;
    kp_formula *f;
    kp_plan *plan;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    const char *aliases[] = {"x = Vi(0, 3)", "y = Vj(1, 3)", "g = Pm(2, 1)", "b = Vj(3, 1)"};
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "LogSumExp_Reduction(-SqDist(x,y)*g+b, 1)", aliases, 4, &f));
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, KP_FLOAT64, &plan));
    assert_int_equal(kp_plan_solve(plan, p.args, 4, 3, &b, &xa, &o, &info), KP_ERR_ARGUMENT);
    assert_non_null(strstr(kp_context_message(ctx), "Sum reduction"));
    assert_int_equal(kp_plan_solve(NULL, p.args, 4, 3, &b, &xa, &o, &info), KP_ERR_NULL);
    kp_plan_free(plan);
    kp_formula_free(f);
    kp_context_free(ctx);
    sys_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_f64),
        cmocka_unit_test(test_dense_f32),
        cmocka_unit_test(test_strided_and_aliased),
        cmocka_unit_test(test_zero_rhs_and_cap),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
