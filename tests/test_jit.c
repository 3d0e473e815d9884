/*
 * test_jit.c — the CPU engine's compiled kernels (src/jit) against its interpreter.
 *
 * Linked against libkp's objects (not the shared library) to read the JIT's
 * counters and use its fault injection. Asserts:
 *   - every reduction family, float32 and float64, both axes, N = 37 rows (not
 *     a multiple of the kernel's rows) and M = 1037 points (several tiles and
 *     a ragged tail): compiled (KP_JIT=require) results within 1e-5 (float32)
 *     or 1e-12 (float64) of the interpreter's, relative to the largest output;
 *     selected indices identical; a kernel was compiled for each run;
 *   - the compiled exp: max error against double exp over the whole range,
 *     <= 2 ulp in both dtypes (measured: 0.95 and 1.00), and its special values (NaN, +inf
 *     above the range, 0 below);
 *   - background compilation (KP_JIT unset): the first call answers from the
 *     interpreter, the kernel arrives within 30 s and gives the same results;
 *   - a failed compile (injected) falls back to the interpreter under "force"
 *     (identical results) and fails the call under "require" (KP_ERR_INTERNAL
 *     naming the cause); KP_JIT=off compiles nothing;
 *   - "absent" (argument, its own process): libLLVM cannot be loaded, force
 *     falls back to the interpreter, require names the cause.
 * Without the compiler (KP_JIT=OFF builds) it prints SKIPPED and exits 77.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jit/jit.h"
#include "kp_test_util.h"

enum { N = 37, M = 1037 };

static const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(2)"};

typedef struct data {
    double x[N * 3], y[M * 3], g, b[M * 2];
} data;

static void fill(data *d) {
    kpt_rng rng;
    kpt_rng_seed(&rng, 14);
    kpt_fill_uniform(&rng, d->x, N * 3, 0, 1);
    kpt_fill_uniform(&rng, d->y, M * 3, 0, 1);
    kpt_fill_uniform(&rng, d->b, M * 2, -1, 1);
    d->g = 4.0;
}

/* Runs text (axis in the text) on d: x has N points, y and b have M; the
 * output has N rows (axis 1) or M (axis 0). out and idx may be NULL. */
static kp_status run(kp_context *ctx, const char *text, kp_dtype dt, int axis, const data *d, int dout,
                     double *out, int didx, int64_t *idx) {
    kpt_arg args[4] = {{d->x, N, 3}, {d->y, M, 3}, {&d->g, -1, 1}, {d->b, M, 2}};
    return kpt_run(ctx, KPT_VIA_PLAN, text, aliases, 4, dt, args, 4, axis == 1 ? N : M, dout, out, didx, idx, NULL);
}

typedef struct jcase {
    const char *text; /* %d: the axis */
    int dout, didx;
} jcase;

static const jcase cases[] = {
    {"Sum_Reduction(Exp(-SqDist(x,y)*g)*b, %d)", 2, 0},
    {"Sum_Reduction(Inv(IntCst(1)+SqDist(x,y)*g)*b, %d)", 2, 0},
    {"Sum_Reduction(Exp(-Sqrt(SqDist(x,y))*g)*b, %d)", 2, 0},
    {"Sum_Reduction(Exp(-Sum(Abs(x-y))*g)*b, %d)", 2, 0},
    {"Sum_Reduction(Concat(TensorProd(x-y, b) * Atan((x|y)), Cos(y-x) + Pow(x-y, 3) + Step(x-y)), %d)", 9, 0},
    {"Sum_Reduction(MatVecMult(TensorProd(x, y), x) * g + OneHot(Sum(b)*2 + 2, 3) + Clamp(x-y, -0.2, 0.3), %d)", 3, 0},
    {"Sum_Reduction(Max(x-y) + ArgMin(y-x) + Rsqrt(Abs(x-y)) + IfElse(x-y, Sign(x-y), ReLU(y-x)) + Floor(4*y), %d)", 3, 0},
    {"LogSumExp_Reduction(-SqDist(x,y)*g, %d)", 1, 0},
    {"LogSumExp_Reduction(Log(1 + SqDist(x,y)) - (x|y)*b, %d)", 2, 0},
    {"SumSoftMaxWeight_Reduction(-SqDist(x,y)*g, %d, b * (x|y))", 2, 0},
    {"ArgKMin_Reduction(SqDist(x,y), 4, %d)", 0, 4},
    {"Max_ArgMax_Reduction((x|y) + Log(1 + SqDist(x,y)) * g, %d)", 1, 1},
};

static void mode(const char *m) { setenv("KP_JIT", m, 1); }

static int64_t compiled_count(void) {
    kp_jit_stats s;
    kp__jit_stats(&s);
    return s.compiled;
}

static int64_t failed_count(void) {
    kp_jit_stats s;
    kp__jit_stats(&s);
    return s.failed;
}

static double max_abs(const double *a, size_t n) {
    double m = 0;
    for (size_t k = 0; k < n; k++) m = fabs(a[k]) > m ? fabs(a[k]) : m;
    return m > 0 ? m : 1;
}

/* One case in one dtype, axis and sum scheme: interpreter, then the compiled kernel. */
static void compare(kp_context *ctx, const jcase *c, kp_dtype dt, int axis, const data *d) {
    char text[256];
    snprintf(text, sizeof text, c->text, axis);
    size_t rows = axis == 1 ? N : M;
    size_t nout = rows * (size_t)(c->dout ? c->dout : 1), nidx = rows * (size_t)(c->didx ? c->didx : 1);
    double *ref = calloc(nout, sizeof *ref), *got = calloc(nout, sizeof *got), *scale = calloc(nout, sizeof *scale);
    int64_t *iref = calloc(nidx, sizeof *iref), *igot = calloc(nidx, sizeof *igot);
    assert_non_null(ref), assert_non_null(got), assert_non_null(scale), assert_non_null(iref), assert_non_null(igot);
    mode("off");
    KPT_ASSERT_OK(ctx, run(ctx, text, dt, axis, d, c->dout, c->dout ? ref : NULL, c->didx, c->didx ? iref : NULL));
    int64_t before = compiled_count();
    mode("require");
    KPT_ASSERT_OK(ctx, run(ctx, text, dt, axis, d, c->dout, c->dout ? got : NULL, c->didx, c->didx ? igot : NULL));
    if (compiled_count() != before + 1) print_error("%s (%s): no kernel compiled\n", text, kpt_dtype_name(dt));
    assert_int_equal(compiled_count(), before + 1);
    double m = max_abs(ref, nout);
    for (size_t k = 0; k < nout; k++) scale[k] = m;
    assert_int_equal(kpt_check(text, got, ref, scale, c->dout ? nout : 0, dt == KP_FLOAT32 ? 1e-5 : 1e-12, 0), 0);
    assert_int_equal(kpt_check_index(text, igot, iref, c->didx ? nidx : 0), 0);
    free(ref), free(got), free(scale), free(iref), free(igot);
}

static void test_matches_interpreter(void **state) {
    (void)state;
    data *d = calloc(1, sizeof *d);
    assert_non_null(d);
    fill(d);
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (int axis = 0; axis <= 1; axis++) {
            compare(ctx, &cases[k], KP_FLOAT32, axis, d);
            compare(ctx, &cases[k], KP_FLOAT64, axis, d);
        }
    /* float32 Kahan sums: the kernel hands F to the interpreter's lane-compensated sums. */
    KPT_ASSERT_OK(ctx, kp_context_set_sum_scheme(ctx, KP_SUM_KAHAN));
    compare(ctx, &cases[0], KP_FLOAT32, 1, d);
    kp_context_free(ctx);
    free(d);
}

/* Error of the compiled exp in ulps of dt, over xs: Sum_j Exp(x_i - y_j) with one y_j = 0. */
static double exp_ulps(kp_context *ctx, kp_dtype dt, const double *xs, size_t n) {
    const char *al[] = {"x = Vi(1)", "y = Vj(1)"};
    double zero = 0, *out = calloc(n, sizeof *out), worst = 0;
    assert_non_null(out);
    kpt_arg args[2] = {{xs, (int64_t)n, 1}, {&zero, 1, 1}};
    mode("require");
    KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, "Sum_Reduction(Exp(x - y), 1)", al, 2, dt, args, 2, (int64_t)n, 1, out,
                               0, NULL, NULL));
    for (size_t k = 0; k < n; k++) {
        double x = dt == KP_FLOAT32 ? (double)(float)xs[k] : xs[k], e = exp(x);
        if (dt == KP_FLOAT32) e = (double)(float)e; /* below the ulp: the reference's own rounding */
        double ulp = ldexp(1.0, ilogb(e) - (dt == KP_FLOAT32 ? 23 : 52));
        double err = fabs(out[k] - exp(x)) / ulp;
        worst = err > worst ? err : worst;
    }
    free(out);
    return worst;
}

static void test_exp_accuracy(void **state) {
    (void)state;
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    enum { NX = 20001 };
    double *xs = calloc(NX, sizeof *xs);
    assert_non_null(xs);
    for (int k = 0; k < NX; k++) xs[k] = -87.0 + 175.5 * k / (NX - 1.0);
    double u32 = exp_ulps(ctx, KP_FLOAT32, xs, NX);
    for (int k = 0; k < NX; k++) xs[k] = -708.0 + 1417.5 * k / (NX - 1.0);
    double u64 = exp_ulps(ctx, KP_FLOAT64, xs, NX);
    print_message("compiled exp: float32 %.2f ulp, float64 %.2f ulp\n", u32, u64);
    assert_true(u32 <= 2.0);
    assert_true(u64 <= 2.0);
    /* Special values, each dtype: NaN stays NaN, +inf above the range, 0 below. */
    const char *al[] = {"x = Vi(1)", "y = Vj(1)"};
    double sx[3] = {NAN, 1000.0, -1000.0}, zero = 0, out[3];
    kpt_arg args[2] = {{sx, 3, 1}, {&zero, 1, 1}};
    for (int t = 0; t < 2; t++) {
        kp_dtype dt = t ? KP_FLOAT64 : KP_FLOAT32;
        KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, "Sum_Reduction(Exp(x - y), 1)", al, 2, dt, args, 2, 3, 1, out, 0,
                                   NULL, NULL));
        assert_true(isnan(out[0]));
        assert_true(isinf(out[1]) && out[1] > 0);
        assert_true(out[2] == 0.0);
    }
    free(xs);
    kp_context_free(ctx);
}

static void sleep_ms(int ms) {
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_background(void **state) {
    (void)state;
    data *d = calloc(1, sizeof *d);
    assert_non_null(d);
    fill(d);
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    const char *text = "Sum_Reduction(Exp(-SqDist(x,y)*g*3)*b + (x|y)*b, 1)";
    double ref[N * 2], got[N * 2], scale[N * 2];
    mode("off");
    KPT_ASSERT_OK(ctx, run(ctx, text, KP_FLOAT32, 1, d, 2, ref, 0, NULL));
    int64_t before = compiled_count() + failed_count();
    unsetenv("KP_JIT");
    setenv("KP_JIT_THRESHOLD", "1", 1); /* the first call starts the compile */
    KPT_ASSERT_OK(ctx, run(ctx, text, KP_FLOAT32, 1, d, 2, got, 0, NULL)); /* the interpreter, while it compiles */
    for (int k = 0; k < N * 2; k++) scale[k] = max_abs(ref, N * 2);
    assert_int_equal(kpt_check("first call", got, ref, scale, N * 2, 1e-5, 0), 0);
    for (int waited = 0; compiled_count() + failed_count() == before && waited < 30000; waited += 10) sleep_ms(10);
    assert_int_equal(compiled_count() + failed_count(), before + 1);
    KPT_ASSERT_OK(ctx, run(ctx, text, KP_FLOAT32, 1, d, 2, got, 0, NULL)); /* the compiled kernel */
    assert_int_equal(kpt_check("compiled", got, ref, scale, N * 2, 1e-5, 0), 0);
    unsetenv("KP_JIT_THRESHOLD");
    kp_context_free(ctx);
    free(d);
}

static void test_fallback(void **state) {
    (void)state;
    data *d = calloc(1, sizeof *d);
    assert_non_null(d);
    fill(d);
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    const char *text = "Sum_Reduction(Exp(-SqDist(x,y)*g*5)*b, 1)";
    double ref[N * 2], got[N * 2];
    mode("off");
    int64_t compiled = compiled_count(), failed = failed_count();
    KPT_ASSERT_OK(ctx, run(ctx, text, KP_FLOAT64, 1, d, 2, ref, 0, NULL));
    assert_int_equal(compiled_count(), compiled); /* off: nothing compiled */
    kp__jit_fail_compiles = 1;
    mode("force");
    KPT_ASSERT_OK(ctx, run(ctx, text, KP_FLOAT64, 1, d, 2, got, 0, NULL));
    assert_int_equal(failed_count(), failed + 1);
    assert_memory_equal(got, ref, sizeof ref); /* the interpreter ran */
    mode("require"); /* the failure is cached: require reports it */
    assert_int_equal(run(ctx, text, KP_FLOAT64, 1, d, 2, got, 0, NULL), KP_ERR_INTERNAL);
    assert_non_null(strstr(kp_context_message(ctx), "injected"));
    assert_int_equal(run(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*g)*b*b, 1)", KP_FLOAT64, 1, d, 2, got, 0, NULL),
                     KP_ERR_INTERNAL);
    assert_int_equal(failed_count(), failed + 2);
    kp__jit_fail_compiles = 0;
    kp_context_free(ctx);
    free(d);
}

/* "absent" group, its own process: libLLVM cannot be loaded ($KP_JIT_LLVM). */
static void test_llvm_absent(void **state) {
    (void)state;
    data *d = calloc(1, sizeof *d);
    assert_non_null(d);
    fill(d);
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    const char *text = "Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)";
    double ref[N * 2], got[N * 2];
    mode("off");
    KPT_ASSERT_OK(ctx, run(ctx, text, KP_FLOAT32, 1, d, 2, ref, 0, NULL));
    mode("force");
    KPT_ASSERT_OK(ctx, run(ctx, text, KP_FLOAT32, 1, d, 2, got, 0, NULL));
    assert_memory_equal(got, ref, sizeof ref); /* the interpreter ran */
    mode("require");
    assert_int_equal(run(ctx, text, KP_FLOAT32, 1, d, 2, got, 0, NULL), KP_ERR_INTERNAL);
    assert_non_null(strstr(kp_context_message(ctx), "cannot load libLLVM"));
    assert_int_equal(compiled_count(), 0);
    kp_context_free(ctx);
    free(d);
}

int main(int argc, char **argv) {
    if (!kp__jit_built()) {
        printf("SKIPPED: libkp built without the compiler (KP_JIT=OFF)\n");
        return 77;
    }
    if (argc > 1 && strcmp(argv[1], "absent") == 0) {
        setenv("KP_JIT_LLVM", "/nonexistent/libLLVM.so", 1);
        const struct CMUnitTest absent[] = {cmocka_unit_test(test_llvm_absent)};
        return cmocka_run_group_tests(absent, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_interpreter),
        cmocka_unit_test(test_exp_accuracy),
        cmocka_unit_test(test_background),
        cmocka_unit_test(test_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
