/*
 * test_jit.c — the CPU engine's compiled kernels (src/jit) against its interpreter.
 *
 * Linked against libkp's objects (not the shared library) to read the JIT's
 * counters and use its fault injection. Asserts:
 *   - every reduction family, float32 and float64, both axes, N = 37 rows (not
 *     a multiple of the kernel's rows) and M = 1037 points (several tiles and
 *     a ragged tail): compiled (KP_JIT=require) results within 1e-5 (float32)
 *     or 1e-12 (float64) of the interpreter's, relative to the largest output;
 *     selected indices identical; a kernel was compiled for each run, fused
 *     (KP_JIT_LSE) for LogSumExp and SumSoftMaxWeight (dim F 1 to 3, dim G 1
 *     to 3) but under float32 Kahan sums and for states too wide (dim F 9,
 *     dim G 19: KP_JIT_TILES); again with LogSumExp kernels of 3
 *     rows per call (a last call of 1 row);
 *   - LogSumExp and SumSoftMaxWeight on -inf, NaN and +inf: rows of -inf,
 *     tiles of -inf, one NaN or +inf F, a NaN weight where F = -inf; 1 and 2
 *     rows per call: the interpreter's outputs (special values at the same
 *     places, the rest within the bounds above) and partial states' max slots;
 *   - the compiled exp: max error against double exp over the whole range,
 *     <= 2 ulp in both dtypes (measured: 0.87-1.14 and 1.00), and its special values (NaN, +inf
 *     above the range and for +inf, 0 below and for -inf);
 *   - exps of arguments <= 0 or NaN given a row scalar's sign (AVX-512:
 *     without clamps): the clamped exp's bits where the sign holds, the
 *     interpreter's where it does not, for Exp(a * s), Exp(a / s) of both
 *     signs, specials and arguments below the clamps; a joint plan too;
 *   - background compilation (KP_JIT unset): the first call answers from the
 *     interpreter, the kernel arrives within 30 s and gives the same results;
 *   - a failed compile (injected) falls back to the interpreter under "force"
 *     (identical results) and fails the call under "require" (KP_ERR_INTERNAL
 *     naming the cause); KP_JIT=off compiles nothing;
 *   - joint plans (an autodiff backward's gradients in x, y, b and a summed
 *     parameter; terms of every shape), float32 and float64, N = 517 rows
 *     (a last block of 5 rows), M = 1037: exactly one joint kernel compiled
 *     per plan, outputs within the same bounds; float32 Kahan sums stay on the
 *     interpreter (bit-identical); background mode answers bit-identically
 *     from the interpreter first, then from the kernel; an injected compile
 *     failure falls back (force) or fails the call (require);
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

#include "cpu/engine.h"
#include "jit/jit.h"
#include "kp_test_util.h"

#include "jit_data.h"

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
    {"LogSumExp_Reduction(-SqDist(x,y)*g*100, %d)", 1, 0},
    {"LogSumExp_Reduction(-(x-y)*(x-y)*g + Sum(b), %d)", 3, 0},
    {"SumSoftMaxWeight_Reduction(-SqDist(x,y)*g, %d, b * (x|y))", 2, 0},
    {"SumSoftMaxWeight_Reduction(-SqDist(x,y)*g, %d, Sum(b))", 1, 0},
    {"SumSoftMaxWeight_Reduction(Log(1 + SqDist(x,y)) - (x|y)*g*20, %d, x - y)", 3, 0},
    {"ArgKMin_Reduction(SqDist(x,y), 4, %d)", 0, 4},
    {"Max_ArgMax_Reduction((x|y) + Log(1 + SqDist(x,y)) * g, %d)", 1, 1},
    /* States too wide for registers (KP_JIT_LSE_MAX_STATE): F written for the interpreter (KP_JIT_TILES). */
    {"LogSumExp_Reduction(TensorProd(x-y, y-x)*g, %d)", 9, 0},
    {"SumSoftMaxWeight_Reduction(-SqDist(x,y)*g, %d, Concat(Concat(TensorProd(x, y), TensorProd(y, x-y)), (x|y)))", 19, 0},
    /* ROW values from parameters only (held once for all of a kernel's rows)
     * beside ROW values of each row's point (one per row). */
    {"Sum_Reduction(Exp(-SqDist(x,y)*(g*Sum(x)) - g*3)*b, %d)", 2, 0},
    /* Divisions by ROW values (products with their reciprocals, jit.h). */
    {"Sum_Reduction(Exp(-SqDist(x,y)/g)*b, %d)", 2, 0},
    {"Sum_Reduction(SqDist(x,y)/(g*Sum(x)+1)*Sum(b) + (x-y)/x, %d)", 3, 0},
};

static void mode(const char *m) { setenv("KP_JIT", m, 1); }

static int64_t compiled_count(void) {
    kp_jit_stats s;
    kp__jit_stats(&s);
    return s.compiled;
}

/* Kernels compiled in KP_JIT_LSE mode (LogSumExp, SumSoftMaxWeight fused). */
static int64_t lse_count(void) {
    kp_jit_stats s;
    kp__jit_stats(&s);
    return s.lse;
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

/* One case in one dtype, axis and sum scheme (kahan: KP_SUM_KAHAN is set):
 * interpreter, then the compiled kernel. */
static void compare(kp_context *ctx, const jcase *c, kp_dtype dt, int axis, const data *d, int kahan) {
    char text[256];
    snprintf(text, sizeof text, c->text, axis);
    size_t rows = axis == 1 ? N : M;
    size_t nout = rows * (size_t)(c->dout ? c->dout : 1), nidx = rows * (size_t)(c->didx ? c->didx : 1);
    double *ref = calloc(nout, sizeof *ref), *got = calloc(nout, sizeof *got), *scale = calloc(nout, sizeof *scale);
    int64_t *iref = calloc(nidx, sizeof *iref), *igot = calloc(nidx, sizeof *igot);
    assert_non_null(ref), assert_non_null(got), assert_non_null(scale), assert_non_null(iref), assert_non_null(igot);
    mode("off");
    KPT_ASSERT_OK(ctx, run(ctx, text, dt, axis, d, c->dout, c->dout ? ref : NULL, c->didx, c->didx ? iref : NULL));
    int64_t before = compiled_count(), lse_before = lse_count();
    mode("require");
    KPT_ASSERT_OK(ctx, run(ctx, text, dt, axis, d, c->dout, c->dout ? got : NULL, c->didx, c->didx ? igot : NULL));
    if (compiled_count() != before + 1) print_error("%s (%s): no kernel compiled\n", text, kpt_dtype_name(dt));
    assert_int_equal(compiled_count(), before + 1);
    /* LogSumExp and SumSoftMaxWeight are fused (KP_JIT_LSE) but for float32 Kahan sums. */
    int ssmw = strstr(text, "SoftMax") != NULL, lse = ssmw || strstr(text, "LogSumExp");
    int fused = lse && kp__jit_lse_state(ssmw ? 1 : c->dout, ssmw ? c->dout : 0) <= KP_JIT_LSE_MAX_STATE &&
                !(dt == KP_FLOAT32 && kahan);
    assert_int_equal(lse_count(), lse_before + fused);
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
            compare(ctx, &cases[k], KP_FLOAT32, axis, d, 0);
            compare(ctx, &cases[k], KP_FLOAT64, axis, d, 0);
        }
    /* float32 Kahan sums: the kernel hands F to the interpreter's lane-compensated sums. */
    KPT_ASSERT_OK(ctx, kp_context_set_sum_scheme(ctx, KP_SUM_KAHAN));
    compare(ctx, &cases[0], KP_FLOAT32, 1, d, 1);
    compare(ctx, &cases[7], KP_FLOAT32, 1, d, 1);
    /* LogSumExp kernels of 3 rows per call (2 by default): N = 37 leaves a last call of 1 row. */
    KPT_ASSERT_OK(ctx, kp_context_set_sum_scheme(ctx, KP_SUM_BLOCK));
    kp__jit_lse_rows = 3;
    for (size_t k = 7; k <= 13; k++) {
        compare(ctx, &cases[k], KP_FLOAT32, 1, d, 0);
        compare(ctx, &cases[k], KP_FLOAT64, 1, d, 0);
    }
    kp__jit_lse_rows = 0;
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

/* Rows whose divisor has no normal reciprocal (subnormal, or above 1 / the
 * smallest normal) run on the interpreter: a * (1 / b) would be inf or 0
 * where a / b is a modest number. */
static void test_divisor_without_reciprocal(void **state) {
    (void)state;
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    enum { NI = 9, NJ = 70 };
    const char *al[] = {"x = Vi(1)", "y = Vj(1)", "h = Pm(1)", "g = Vi(1)"};
    double x[NI], y[NJ], h, g[NI], ref[NI], got[NI], scale[NI];
    for (int j = 0; j < NJ; j++) y[j] = 0.5 + j / (double)NJ;
    struct { kp_dtype dt; double h, small, big, tol; } dts[] = {
        {KP_FLOAT32, 1e-37, 1e-40, 1e38, 1e-5},    /* 1e-40: subnormal; 1e38 > 2^126 */
        {KP_FLOAT64, 1e-300, 1e-310, 1e308, 1e-12}, /* 1e-310: subnormal; 1e308 > 2^1022 */
    };
    for (int t = 0; t < 2; t++) {
        h = dts[t].h;
        /* Rows alternate between normal divisors and the two kinds of bad ones,
         * so a kernel call of several rows meets both. */
        for (int i = 0; i < NI; i++) {
            x[i] = 1 + i;
            g[i] = i % 3 == 0 ? dts[t].small : i % 3 == 1 ? 2.0 + i : dts[t].big;
        }
        kpt_arg args[4] = {{x, NI, 1}, {y, NJ, 1}, {&h, -1, 1}, {g, NI, 1}};
        /* Small divisor: x y h / g is about 1e3 x y (its reciprocal is inf); big
         * divisor: x y (g h) / g is about 10 h x y (float32: its reciprocal is
         * flushed to 0). */
        const char *text = "Sum_Reduction(x*y*h/g + x*y*(g*h)/g, 1)";
        mode("off");
        KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, text, al, 4, dts[t].dt, args, 4, NI, 1, ref, 0, NULL, NULL));
        mode("require");
        KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, text, al, 4, dts[t].dt, args, 4, NI, 1, got, 0, NULL, NULL));
        for (int i = 0; i < NI; i++) {
            assert_true(isfinite(ref[i]) && ref[i] > 0);
            scale[i] = fabs(ref[i]);
        }
        assert_int_equal(kpt_check(text, got, ref, scale, NI, dts[t].tol, 0), 0);
    }
    kp_context_free(ctx);
}

/* LogSumExp and SumSoftMaxWeight kernels of several rows per call whose
 * first row has a divisor without a normal reciprocal (1 / a flushed to 0):
 * that row runs on the interpreter (its bits), after the kernel's other rows
 * are read from the buffer the interpreter then writes; they match the
 * interpreter within the kernels' bound. */
static void test_lse_divisor_rows(void **state) {
    (void)state;
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    enum { NI = 23, NJ = 700 };
    static const char *texts[] = {"LogSumExp_Reduction(-SqDist(x,y)/a, 1)",
                                  "SumSoftMaxWeight_Reduction(-SqDist(x,y)/a, 1, y)"};
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "a = Vi(1)"};
    double x[NI * 3], y[NJ * 3], a[NI], ref[NI * 3], got[NI * 3];
    kpt_rng rng;
    kpt_rng_seed(&rng, 29);
    kpt_fill_uniform(&rng, x, NI * 3, 0, 1);
    kpt_fill_uniform(&rng, y, NJ * 3, 0, 1);
    kpt_arg args[3] = {{x, NI, 3}, {y, NJ, 3}, {a, NI, 1}};
    for (int t = 0; t < 2; t++) {
        kp_dtype dt = t ? KP_FLOAT64 : KP_FLOAT32;
        for (int i = 0; i < NI; i++) a[i] = i % 4 == 0 ? (t ? 1e308 : 1e38) : 0.01 * (1 + i % 3);
        for (int rows = 2; rows <= KP_JIT_MAX_ROWS; rows += 2)
            for (int f = 0; f < 2; f++) {
                int dim = f ? 3 : 1;
                kp__jit_lse_rows = rows;
                mode("off");
                KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, texts[f], al, 3, dt, args, 3, NI, dim, ref, 0, NULL, NULL));
                mode("require");
                KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, texts[f], al, 3, dt, args, 3, NI, dim, got, 0, NULL, NULL));
                kp__jit_lse_rows = 0;
                for (int i = 0; i < NI; i++)
                    for (int k = 0; k < dim; k++) {
                        double r = ref[i * dim + k], v = got[i * dim + k];
                        int ok = i % 4 == 0 ? memcmp(&r, &v, sizeof r) == 0
                                            : isfinite(r) && fabs(v - r) <= (t ? 1e-12 : 1e-5) * (1 + fabs(r));
                        if (!ok)
                            fail_msg("%s (%s, %d rows a call), row %d: %.17g, the interpreter gives %.17g", texts[f],
                                     kpt_dtype_name(dt), rows, i, v, r);
                    }
            }
    }
    kp_context_free(ctx);
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
    double sx[5] = {NAN, 1000.0, -1000.0, INFINITY, -INFINITY}, zero = 0, out[5];
    kpt_arg args[2] = {{sx, 5, 1}, {&zero, 1, 1}};
    for (int t = 0; t < 2; t++) {
        kp_dtype dt = t ? KP_FLOAT64 : KP_FLOAT32;
        KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, "Sum_Reduction(Exp(x - y), 1)", al, 2, dt, args, 2, 5, 1, out, 0,
                                   NULL, NULL));
        assert_true(isnan(out[0]));
        assert_true(isinf(out[1]) && out[1] > 0);
        assert_true(out[2] == 0.0);
        assert_true(isinf(out[3]) && out[3] > 0);
        assert_true(out[4] == 0.0);
    }
    free(xs);
    kp_context_free(ctx);
}

/* ---------------------------------------------- LogSumExp: special values
 * F = a_i + c_j, G = v_j (dim 1) or w_j (dim 3), N rows, M points: rows with
 * a_i = -inf (every F of the row -inf), c_j = -inf at every 7th point and over
 * [512, 1024) (whole tiles of -inf for finite rows), then one NaN or one
 * +inf in c, or a NaN weight at a point where F = -inf in a tile whose max
 * is finite (0 * NaN: NaN, as in the interpreter). */
enum { SP_NAN = 1, SP_INF = 2, SP_GNAN = 3 };

typedef struct sdata {
    double a[N], c[M], v[M], w[M * 3];
} sdata;

static void sfill(sdata *d, int special) {
    kpt_rng rng;
    kpt_rng_seed(&rng, 15);
    kpt_fill_uniform(&rng, d->a, N, -2, 2);
    kpt_fill_uniform(&rng, d->c, M, -3, 3);
    kpt_fill_uniform(&rng, d->v, M, -1, 1);
    kpt_fill_uniform(&rng, d->w, M * 3, -1, 1);
    for (int i = 0; i < N; i++)
        if (i % 5 == 2) d->a[i] = -INFINITY;
    for (int j = 0; j < M; j++)
        if (j % 7 == 3 || (j >= 512 && j < 1024)) d->c[j] = -INFINITY;
    if (special == SP_NAN) d->c[300] = NAN;
    if (special == SP_INF) d->c[1030] = INFINITY;
    if (special == SP_GNAN) d->w[3 * 3 + 1] = d->v[3] = NAN; /* c[3] = -inf */
}

/* Outputs' scale: the largest finite one. */
static double max_finite(const double *a, size_t n) {
    double m = 0;
    for (size_t k = 0; k < n; k++)
        if (isfinite(a[k])) m = fabs(a[k]) > m ? fabs(a[k]) : m;
    return m > 0 ? m : 1;
}

/* Interpreter and compiled kernel on d; returns the compiled outputs in got (N x dout). */
static void special_case(kp_context *ctx, const char *text, int dout, kp_dtype dt, const sdata *d, double *got) {
    const char *al[] = {"a = Vi(1)", "c = Vj(1)", "v = Vj(1)", "w = Vj(3)"};
    kpt_arg args[4] = {{d->a, N, 1}, {d->c, M, 1}, {d->v, M, 1}, {d->w, M, 3}};
    double ref[N * 3], scale[N * 3];
    mode("off");
    KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, text, al, 4, dt, args, 4, N, dout, ref, 0, NULL, NULL));
    mode("require");
    KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, text, al, 4, dt, args, 4, N, dout, got, 0, NULL, NULL));
    size_t n = (size_t)N * (size_t)dout;
    for (size_t k = 0; k < n; k++) scale[k] = max_finite(ref, n);
    assert_int_equal(kpt_check(text, got, ref, scale, n, dt == KP_FLOAT32 ? 1e-5 : 1e-12, 0), 0);
}

/* The partial states (kp_plan_exec_partial: the rows' tile states merged as
 * the engine merges them) of text on d, interpreter (ref) and compiled (got),
 * N rows x nreal; returns nreal. */
static int special_states(kp_context *ctx, const char *text, kp_dtype dt, const sdata *d, double *ref, double *got) {
    const char *al[] = {"a = Vi(1)", "c = Vj(1)", "v = Vj(1)", "w = Vj(3)"};
    const double *src[4] = {d->a, d->c, d->v, d->w};
    int64_t rows[4] = {N, M, M, M}, dims[4] = {1, 1, 1, 3};
    void *buf[4];
    kp_array a[4];
    for (int k = 0; k < 4; k++) {
        buf[k] = kpt_to_dtype(src[k], (size_t)(rows[k] * dims[k]), dt);
        a[k] = kp_array_2d(buf[k], dt, rows[k], dims[k]);
    }
    kp_formula *f = NULL;
    kp_plan *p = NULL;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, text, al, 4, &f));
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, dt, &p));
    kp_state_info info;
    KPT_ASSERT_OK(ctx, kp_plan_state_info(p, a, 4, NULL, &info));
    void *st = malloc(info.bytes);
    assert_non_null(st);
    for (int t = 0; t < 2; t++) {
        mode(t ? "require" : "off");
        KPT_ASSERT_OK(ctx, kp_plan_state_init(p, &info, st));
        KPT_ASSERT_OK(ctx, kp_plan_exec_partial(p, a, 4, 0, st, info.bytes, NULL));
        kpt_from_dtype((const char *)st + info.real_offset, dt, (size_t)N * (size_t)info.nreal, t ? got : ref);
    }
    free(st);
    kp_plan_free(p);
    kp_formula_free(f);
    for (int k = 0; k < 4; k++) free(buf[k]);
    return info.nreal;
}

static void test_lse_special(void **state) {
    (void)state;
    sdata *d = calloc(1, sizeof *d);
    assert_non_null(d);
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    double got[N * 3];
    int64_t lse0 = lse_count();
    for (int t = 0; t < 4; t++) { /* float32, float64; 1 row per call, then 2 (a last call of 1 row) */
        kp_dtype dt = t % 2 ? KP_FLOAT64 : KP_FLOAT32;
        kp__jit_lse_rows = t < 2 ? 1 : 2;
        for (int special = 0; special <= SP_GNAN; special++) {
            sfill(d, special);
            special_case(ctx, "LogSumExp_Reduction(a + c, 1)", 1, dt, d, got);
            for (int i = 0; i < N; i++) {
                int ninf = d->a[i] == -INFINITY;
                if (special == SP_NAN || (special == SP_INF && ninf)) assert_true(isnan(got[i]));
                else if (special == SP_INF) assert_true(got[i] == INFINITY);
                else if (ninf) assert_true(got[i] == -INFINITY);
                else assert_true(isfinite(got[i]));
            }
            special_case(ctx, "SumSoftMaxWeight_Reduction(a + c, 1, v)", 1, dt, d, got);
            for (int i = 0; i < N; i++)
                assert_true(isnan(got[i]) == (special != 0 || d->a[i] == -INFINITY));
            /* The states' max slots: the same values (a +inf F: NaN for SumSoftMaxWeight). */
            for (int f = 0; f < 2; f++) {
                double sref[N * 9], sgot[N * 9];
                int nreal = special_states(ctx, f ? "SumSoftMaxWeight_Reduction(a + c, 1, w)" : "LogSumExp_Reduction(a + c, 1)",
                                           dt, d, sref, sgot);
                for (int i = 0; i < N; i++) {
                    double mr = sref[i * nreal], mg = sgot[i * nreal];
                    assert_true(isnan(mr) ? isnan(mg) : mr == mg); /* a max is exact */
                }
            }
            special_case(ctx, "SumSoftMaxWeight_Reduction(a + c, 1, w)", 3, dt, d, got);
            for (int i = 0; i < N; i++)
                for (int k = 0; k < 3; k++) {
                    int nan = d->a[i] == -INFINITY || special == SP_NAN || special == SP_INF ||
                              (special == SP_GNAN && k == 1);
                    assert_true(isnan(got[i * 3 + k]) == nan);
                }
        }
    }
    kp__jit_lse_rows = 0;
    assert_int_equal(lse_count(), lse0 + 12); /* 3 formulas x 2 dtypes x 2 row counts, all fused */
    kp_context_free(ctx);
    free(d);
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

/* ------------------------------------------------------------ joint plans
 * JN rows make 9 blocks of 64 (the joint pass needs 8), the last of 5 rows
 * (not a multiple of the kernel's rows); JM points: two tiles and a tail. */
enum { JN = 517, JM = 1037 };

static const char *jaliases[] = {"x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(2)", "e = Vi(2)", "a = Vi(1)"};

typedef struct jdata {
    double x[JN * 3], y[JM * 3], g, b[JM * 2], e[JN * 2], a[JN];
} jdata;

static jdata *jdata_new(void) {
    jdata *d = calloc(1, sizeof *d);
    assert_non_null(d);
    kpt_rng rng;
    kpt_rng_seed(&rng, 15);
    kpt_fill_uniform(&rng, d->x, JN * 3, 0, 1);
    kpt_fill_uniform(&rng, d->y, JM * 3, 0, 1);
    kpt_fill_uniform(&rng, d->b, JM * 2, -1, 1);
    kpt_fill_uniform(&rng, d->e, JN * 2, -1, 1);
    kpt_fill_uniform(&rng, d->a, JN, -1, 1);
    d->g = 5.0;
    return d;
}

/* The backward of Sum_j Exp(-g |x_i - y_j|^2) b_j in x, y, b and g (its rows
 * summed), as an autodiff framework asks for it. */
static const char *grad_set[] = {
    "Sum_Reduction(Grad(Exp(-SqDist(x,y)*g)*b, x, e), 1)",
    "Sum_Reduction(Grad(Exp(-SqDist(x,y)*g)*b, y, e), 0)",
    "Sum_Reduction(Grad(Exp(-SqDist(x,y)*g)*b, b, e), 0)",
    "RowSum(Sum_Reduction(Grad(Exp(-SqDist(x,y)*g)*b, g, e), 1))",
};

/* Terms of every shape: row factors of column terms, several tiles, COL-only
 * factors, a term that is no product, transcendental ops lane by lane. */
static const char *odd_set[] = {
    "Sum_Reduction(Exp(-SqDist(x,y)*g) * a * Elem(b,0) * x * y * -3, 1)",
    "Sum_Reduction(Exp(-SqDist(x,y)) * a * Elem(b,1) * (x - y) * a, 0)",
    "Sum_Reduction(Cos(x - y) + a, 1)",
    "Sum_Reduction(b * Elem(y,2), 0)",
    "Sum_Reduction(Log(1 + SqDist(x,y)) * b, 1)",
    "Sum_Reduction(Atan((x|y)) * a * Sqrt(SqDist(x,y)), 0)",
};

/* Divisions by ROW values (products with reciprocals, jit.h): by the
 * parameter in the Gaussian of KeOps' spelling and its gradient, and by a
 * row variable in a column term. */
static const char *div_set[] = {
    "Sum_Reduction(Exp(-SqDist(x,y)/g)*b, 1)",
    "Sum_Reduction(Grad(Exp(-SqDist(x,y)/g)*b, x, e), 1)",
    "Sum_Reduction((x-y)/(a+1) * Elem(b,0), 0)",
};

/* Rows of formula f's output (1 when its rows are summed). */
static int64_t joint_rows_of(const kp_formula *f) {
    return kp_formula_sums_rows(f) ? 1 : kp_formula_axis(f) == 1 ? JN : JM;
}

/* Runs texts as one joint plan in dt; out[k] (malloc'd, as double) gets
 * formula k's output and *count[k] its size. */
static kp_status run_joint_aliases(kp_context *ctx, const char *const *texts, int n, kp_dtype dt, const jdata *d,
                                   const char *const *aliases6, double **out, size_t *count) {
    kp_formula *fs[8];
    for (int k = 0; k < n; k++) KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, texts[k], aliases6, 6, &fs[k]));
    kp_plan *plan = NULL;
    KPT_ASSERT_OK(ctx, kp_plan_new_joint(ctx, (const kp_formula *const *)fs, (size_t)n, dt, &plan));
    const double *src[6] = {d->x, d->y, &d->g, d->b, d->e, d->a};
    const size_t len[6] = {JN * 3, JM * 3, 1, JM * 2, JN * 2, JN};
    const int64_t rows[6] = {JN, JM, -1, JM, JN, JN}, dims[6] = {3, 3, 1, 2, 2, 1};
    void *bufs[6];
    kp_array args[6], outs[8];
    void *obuf[8];
    for (int k = 0; k < 6; k++) {
        bufs[k] = kpt_to_dtype(src[k], len[k], dt);
        args[k] = rows[k] < 0 ? kp_array_1d(bufs[k], dt, 1) : kp_array_2d(bufs[k], dt, rows[k], dims[k]);
    }
    for (int k = 0; k < n; k++) {
        int64_t r = joint_rows_of(fs[k]), dim = kp_formula_out_dim(fs[k]);
        count[k] = (size_t)(r * dim);
        obuf[k] = kpt_alloc_dtype(count[k], dt);
        outs[k] = kp_array_2d(obuf[k], dt, r, dim);
    }
    kp_status st = kp_plan_exec_joint(plan, args, 6, outs, (size_t)n, NULL);
    for (int k = 0; k < n; k++) {
        out[k] = calloc(count[k], sizeof(double));
        assert_non_null(out[k]);
        kpt_from_dtype(obuf[k], dt, count[k], out[k]);
        free(obuf[k]);
        kp_formula_free(fs[k]);
    }
    for (int k = 0; k < 6; k++) free(bufs[k]);
    kp_plan_free(plan);
    return st;
}

/* run_joint_aliases with jaliases. */
static kp_status run_joint(kp_context *ctx, const char *const *texts, int n, kp_dtype dt, const jdata *d,
                           double **out, size_t *count) {
    return run_joint_aliases(ctx, texts, n, dt, d, jaliases, out, count);
}

static int64_t joint_count(void) {
    kp_jit_stats s;
    kp__jit_stats(&s);
    return s.joint;
}

/* got against ref, formula by formula: within tol of each output's largest value, or bit-identical (tol < 0). */
static void check_joint(const char *const *texts, int n, double **got, double **ref, const size_t *count, double tol) {
    for (int k = 0; k < n; k++) {
        if (tol < 0) {
            assert_memory_equal(got[k], ref[k], count[k] * sizeof(double));
            continue;
        }
        double m = max_abs(ref[k], count[k]);
        assert_int_equal(kpt_check(texts[k], got[k], ref[k], NULL, count[k], 0, tol * m), 0);
    }
}

static void free_outputs(double **o, int n) {
    for (int k = 0; k < n; k++) free(o[k]);
}

/* One joint plan compiled (KP_JIT=require) against the interpreter: exactly one
 * joint kernel compiled, outputs within the bound of every compiled kernel. */
static void compare_joint(kp_context *ctx, const char *const *texts, int n, kp_dtype dt, const jdata *d) {
    double *ref[8], *got[8];
    size_t count[8];
    mode("off");
    KPT_ASSERT_OK(ctx, run_joint(ctx, texts, n, dt, d, ref, count));
    int64_t before = joint_count();
    kp_jit_stats s0, s1;
    kp__jit_stats(&s0);
    mode("require");
    KPT_ASSERT_OK(ctx, run_joint(ctx, texts, n, dt, d, got, count));
    kp__jit_stats(&s1);
    print_message("joint kernel of %d formulas (%s): compiled in %.1f ms, looked up / loaded from disk in %.2f ms\n", n,
                  kpt_dtype_name(dt), 1e3 * (s1.compile_seconds - s0.compile_seconds),
                  1e3 * (s1.load_seconds - s0.load_seconds));
    if (joint_count() != before + 1) print_error("%s (%s): no joint kernel compiled\n", texts[0], kpt_dtype_name(dt));
    assert_int_equal(joint_count(), before + 1);
    check_joint(texts, n, got, ref, count, dt == KP_FLOAT32 ? 1e-5 : 1e-12);
    free_outputs(ref, n);
    free_outputs(got, n);
}

static void test_joint_matches_interpreter(void **state) {
    (void)state;
    jdata *d = jdata_new();
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    for (int t = 0; t < 2; t++) {
        kp_dtype dt = t ? KP_FLOAT64 : KP_FLOAT32;
        compare_joint(ctx, grad_set, 4, dt, d);
        compare_joint(ctx, grad_set, 3, dt, d); /* another program: the parameter's term left out */
        compare_joint(ctx, odd_set, 6, dt, d);
        compare_joint(ctx, div_set, 3, dt, d);
    }
    /* float32 plain sums: compiled too; Kahan sums stay on the interpreter (bit-identical). */
    KPT_ASSERT_OK(ctx, kp_context_set_sum_scheme(ctx, KP_SUM_PLAIN));
    compare_joint(ctx, odd_set, 5, KP_FLOAT32, d);
    KPT_ASSERT_OK(ctx, kp_context_set_sum_scheme(ctx, KP_SUM_KAHAN));
    double *ref[8], *got[8];
    size_t count[8];
    mode("off");
    KPT_ASSERT_OK(ctx, run_joint(ctx, grad_set, 3, KP_FLOAT32, d, ref, count));
    int64_t before = compiled_count();
    mode("require");
    KPT_ASSERT_OK(ctx, run_joint(ctx, grad_set, 3, KP_FLOAT32, d, got, count));
    assert_int_equal(compiled_count(), before);
    check_joint(grad_set, 3, got, ref, count, -1);
    free_outputs(ref, 3);
    free_outputs(got, 3);
    kp_context_free(ctx);
    free(d);
}

/* A joint plan's rows whose divisor has no normal reciprocal run on the
 * interpreter, in its row terms and its column terms (float32: a = 1e-40 is
 * subnormal, 1e38 above 2^126); the kernel takes the runs of rows between. */
static void test_joint_divisor_without_reciprocal(void **state) {
    (void)state;
    static const char *texts[] = {
        "Sum_Reduction(x*Elem(y,0)*h/a + x*Elem(y,0)*(a*h)/a, 1)",
        "Sum_Reduction(x*Elem(y,0)*h/a + x*Elem(y,0)*(a*h)/a, 0)",
    };
    jdata *d = jdata_new();
    for (int i = 0; i < JN; i++) d->a[i] = i % 3 == 0 ? 1e-40 : i % 3 == 1 ? 2.0 + i : 1e38;
    d->g = 1e-37; /* h below */
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "h = Pm(1)", "b = Vj(2)", "e = Vi(2)", "a = Vi(1)"};
    double *ref[2], *got[2];
    size_t count[2];
    mode("off");
    KPT_ASSERT_OK(ctx, run_joint_aliases(ctx, texts, 2, KP_FLOAT32, d, al, ref, count));
    mode("require");
    KPT_ASSERT_OK(ctx, run_joint_aliases(ctx, texts, 2, KP_FLOAT32, d, al, got, count));
    for (int k = 0; k < 2; k++)
        for (size_t c = 0; c < count[k]; c++) assert_true(isfinite(ref[k][c]));
    check_joint(texts, 2, got, ref, count, 1e-5);
    free_outputs(ref, 2);
    free_outputs(got, 2);
    kp_context_free(ctx);
    free(d);
}

/* Whether this process runs the AVX-512 kernels, whose exps of arguments
 * known to be <= 0 or NaN drop their clamps (jit.c exp_signs). */
static int kernels_512(kp_dtype dt) { return kp__cpu_vec_bytes(kp__cpu_pick_kernels(dt)) == 64; }

/* A row's sign class for test_exp_signs: which rows fit a kernel that takes
 * -SqDist * a <= 0 (POS: a > 0), SqDist * a <= 0 (NEG), or either. */
enum { SIGN_EITHER, SIGN_POS, SIGN_NEG };
static int sign_class(double a) { return a > 0 ? SIGN_POS : a < 0 ? SIGN_NEG : SIGN_EITHER; }

/* Exps whose argument is <= 0 or NaN when a row scalar has a sign (the
 * fused Exp(a * s) and Exp(a / s) of a known sign, jit.c exp_signs): rows
 * where the sign holds get the clamped exp's bits (kp__jit_no_exp_signs);
 * the others run on the interpreter (its bits), and some of those differ
 * from the kernel's, which shows they did (AVX-512; elsewhere every row has
 * the clamped kernel's bits). Arguments below the clamps (a = 500, 4000),
 * NaN and infinite rows and scalars included, float32 and float64. */
static void test_exp_signs(void **state) {
    (void)state;
    enum { NI = 45, NJ = 1037, NVAL = 15 };
    static const struct { const char *text; int fits; } texts[] = {
        {"Sum_Reduction(Exp(-SqDist(x,y)*a)*b, 1)", SIGN_POS},
        {"Sum_Reduction(Exp(SqDist(x,y)*a)*b, 1)", SIGN_NEG},
        {"Sum_Reduction(Exp(-SqDist(x,y)/a)*b, 1)", SIGN_POS},
        {"Sum_Reduction(Exp(-Sqrt(Sum(Square(x-y)))*a)*b, 1)", SIGN_POS},
    };
    const double vals[NVAL] = {2, 500, 1e-30, -3, -500, 0.0, -0.0, NAN, INFINITY, -INFINITY, 0.5, 4000, -1e-30, 7, -7};
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "a = Vi(1)", "b = Vj(1)"};
    double x[NI * 3], y[NJ * 3], a[NI], b[NJ], ref[NI], got[NI], plain[NI];
    kpt_rng rng;
    kpt_rng_seed(&rng, 21);
    kpt_fill_uniform(&rng, x, NI * 3, 0, 1);
    kpt_fill_uniform(&rng, y, NJ * 3, 0, 1);
    kpt_fill_uniform(&rng, b, NJ, -1, 1);
    for (int i = 0; i < NI; i++) a[i] = vals[i % NVAL];
    x[3 * 40] = NAN, x[3 * 41 + 1] = INFINITY; /* a NaN and an infinite argument, in rows of a = 0.5 and 4000 */
    kpt_arg args[4] = {{x, NI, 3}, {y, NJ, 3}, {a, NI, 1}, {b, NJ, 1}};
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    for (int t = 0; t < 2; t++) {
        kp_dtype dt = t ? KP_FLOAT64 : KP_FLOAT32;
        int fell_back = 0; /* unfit rows whose interpreter bits differ from the kernel's */
        for (size_t f = 0; f < sizeof texts / sizeof *texts; f++) {
            const char *text = texts[f].text;
            mode("off");
            KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, text, al, 4, dt, args, 4, NI, 1, ref, 0, NULL, NULL));
            mode("require");
            kp__jit_no_exp_signs = 1;
            KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, text, al, 4, dt, args, 4, NI, 1, plain, 0, NULL, NULL));
            kp__jit_no_exp_signs = 0;
            KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, text, al, 4, dt, args, 4, NI, 1, got, 0, NULL, NULL));
            for (int i = 0; i < NI; i++) {
                int cls = sign_class(a[i]);
                const double *want = !kernels_512(dt) || cls == texts[f].fits ? plain
                                     : cls != SIGN_EITHER                     ? ref
                                     : memcmp(&got[i], &plain[i], sizeof got[i]) == 0 ? plain
                                                                                      : ref;
                if (memcmp(&got[i], &want[i], sizeof got[i]) != 0)
                    fail_msg("%s (%s), row %d (a = %g): %.17g, expected %.17g (%s)", text, kpt_dtype_name(dt), i, a[i],
                             got[i], want[i], want == plain ? "the clamped exp's kernel" : "the interpreter");
                if (want == ref && memcmp(&ref[i], &plain[i], sizeof ref[i]) != 0) fell_back++;
            }
        }
        if (kernels_512(dt)) assert_true(fell_back > 0);
    }
    /* A joint plan (gradients in x and b) whose rows all fit: the clamped exp's bits. */
    jdata *d = jdata_new();
    for (int i = 0; i < JN; i++) d->a[i] = i % 3 == 0 ? 500 : i % 3 == 1 ? 2 : 4000;
    d->x[3 * 100] = NAN, d->x[3 * 200 + 2] = INFINITY;
    static const char *grads[] = {"Sum_Reduction(Grad(Exp(-SqDist(x,y)*a)*b, x, e), 1)",
                                  "Sum_Reduction(Grad(Exp(-SqDist(x,y)*a)*b, b, e), 0)"};
    const char *al6[] = {"x = Vi(3)", "y = Vj(3)", "h = Pm(1)", "b = Vj(2)", "e = Vi(2)", "a = Vi(1)"};
    for (int t = 0; t < 2; t++) {
        kp_dtype dt = t ? KP_FLOAT64 : KP_FLOAT32;
        double *want[2], *have[2];
        size_t count[2];
        mode("require");
        kp__jit_no_exp_signs = 1;
        KPT_ASSERT_OK(ctx, run_joint_aliases(ctx, grads, 2, dt, d, al6, want, count));
        kp__jit_no_exp_signs = 0;
        KPT_ASSERT_OK(ctx, run_joint_aliases(ctx, grads, 2, dt, d, al6, have, count));
        check_joint(grads, 2, have, want, count, -1);
        free_outputs(want, 2);
        free_outputs(have, 2);
    }
    kp_context_free(ctx);
    free(d);
}

/* A parameter scalar is the same in every row: where it lacks the sign the
 * kernel's exps take for granted, the call takes the kernel compiled without
 * the analysis (cpu/engine.c) rather than sending every row to the
 * interpreter. Every row then has the clamped exp's bits, whatever the sign,
 * and some of them differ from the interpreter's (so the test sees which
 * path ran); in a joint plan too. */
static void test_exp_signs_uniform(void **state) {
    (void)state;
    enum { NI = 45, NJ = 1037, NVAL = 10 };
    static const char *texts[] = {
        "Sum_Reduction(Exp(-SqDist(x,y)*h)*b, 1)",
        "Sum_Reduction(Exp(SqDist(x,y)*h)*b, 1)",
        "Sum_Reduction(Exp(-SqDist(x,y)/h)*b, 1)",
        "Sum_Reduction(Exp(-SqDist(x,y)*h*2)*b, 1)",
    };
    const double vals[NVAL] = {2, -3, 0.5, -0.5, 7, -7, 0.0, -0.0, NAN, -40};
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "h = Pm(1)", "b = Vj(1)"};
    double x[NI * 3], y[NJ * 3], h, b[NJ], ref[NI], got[NI], plain[NI];
    kpt_rng rng;
    kpt_rng_seed(&rng, 23);
    kpt_fill_uniform(&rng, x, NI * 3, 0, 1);
    kpt_fill_uniform(&rng, y, NJ * 3, 0, 1);
    kpt_fill_uniform(&rng, b, NJ, -1, 1);
    kpt_arg args[4] = {{x, NI, 3}, {y, NJ, 3}, {&h, -1, 1}, {b, NJ, 1}};
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    for (int t = 0; t < 2; t++) {
        kp_dtype dt = t ? KP_FLOAT64 : KP_FLOAT32;
        int seen = 0; /* rows whose interpreter bits differ from the clamped kernel's */
        for (size_t f = 0; f < sizeof texts / sizeof *texts; f++)
            for (int v = 0; v < NVAL; v++) {
                h = vals[v];
                mode("off");
                KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, texts[f], al, 4, dt, args, 4, NI, 1, ref, 0, NULL, NULL));
                mode("require");
                kp__jit_no_exp_signs = 1;
                KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, texts[f], al, 4, dt, args, 4, NI, 1, plain, 0, NULL, NULL));
                kp__jit_no_exp_signs = 0;
                KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, texts[f], al, 4, dt, args, 4, NI, 1, got, 0, NULL, NULL));
                for (int i = 0; i < NI; i++) {
                    if (memcmp(&got[i], &plain[i], sizeof got[i]) != 0)
                        fail_msg("%s (%s), h = %g, row %d: %.17g, the clamped exp's kernel gives %.17g", texts[f],
                                 kpt_dtype_name(dt), h, i, got[i], plain[i]);
                    seen += memcmp(&ref[i], &plain[i], sizeof ref[i]) != 0;
                }
            }
        assert_true(seen > 0);
    }
    /* A joint plan (gradients in x and b) of a positive scalar where the
     * kernel's exp wants a negative one. */
    jdata *d = jdata_new();
    d->g = 0.75;
    static const char *grads[] = {"Sum_Reduction(Grad(Exp(SqDist(x,y)*g)*b, x, e), 1)",
                                  "Sum_Reduction(Grad(Exp(SqDist(x,y)*g)*b, b, e), 0)"};
    for (int t = 0; t < 2; t++) {
        kp_dtype dt = t ? KP_FLOAT64 : KP_FLOAT32;
        double *interp[2], *want[2], *have[2];
        size_t count[2];
        mode("off");
        KPT_ASSERT_OK(ctx, run_joint(ctx, grads, 2, dt, d, interp, count));
        mode("require");
        kp__jit_no_exp_signs = 1;
        KPT_ASSERT_OK(ctx, run_joint(ctx, grads, 2, dt, d, want, count));
        kp__jit_no_exp_signs = 0;
        KPT_ASSERT_OK(ctx, run_joint(ctx, grads, 2, dt, d, have, count));
        check_joint(grads, 2, have, want, count, -1);
        assert_true(memcmp(interp[0], want[0], count[0] * sizeof(double)) != 0);
        free_outputs(interp, 2);
        free_outputs(want, 2);
        free_outputs(have, 2);
    }
    kp_context_free(ctx);
    free(d);
}

/* Background mode: the first joint call runs on the interpreter (bits of
 * KP_JIT=off) while its kernel compiles; the kernel then serves the calls. */
static void test_joint_background(void **state) {
    (void)state;
    jdata *d = jdata_new();
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    const char *texts[2] = {"Sum_Reduction(Grad(Exp(-SqDist(x,y)*g*2)*b, x, e), 1)",
                            "Sum_Reduction(Grad(Exp(-SqDist(x,y)*g*2)*b, b, e), 0)"};
    double *ref[2], *got[2];
    size_t count[2];
    mode("off");
    KPT_ASSERT_OK(ctx, run_joint(ctx, texts, 2, KP_FLOAT32, d, ref, count));
    int64_t before = compiled_count() + failed_count(), joint = joint_count();
    unsetenv("KP_JIT");
    setenv("KP_JIT_THRESHOLD", "1", 1); /* the first call starts the compile */
    KPT_ASSERT_OK(ctx, run_joint(ctx, texts, 2, KP_FLOAT32, d, got, count));
    check_joint(texts, 2, got, ref, count, -1);
    free_outputs(got, 2);
    for (int waited = 0; compiled_count() + failed_count() == before && waited < 30000; waited += 10) sleep_ms(10);
    assert_int_equal(joint_count(), joint + 1);
    kp_jit_stats s0, s1;
    kp__jit_stats(&s0);
    KPT_ASSERT_OK(ctx, run_joint(ctx, texts, 2, KP_FLOAT32, d, got, count));
    kp__jit_stats(&s1);
    check_joint(texts, 2, got, ref, count, 1e-5);
    assert_true(s1.hits > s0.hits); /* the compiled kernel answered */
    unsetenv("KP_JIT_THRESHOLD");
    free_outputs(ref, 2);
    free_outputs(got, 2);
    kp_context_free(ctx);
    free(d);
}

/* A joint kernel that fails to compile: force falls back to the interpreter
 * (bit-identical), require fails the call naming the cause. */
static void test_joint_fallback(void **state) {
    (void)state;
    jdata *d = jdata_new();
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    const char *texts[2] = {"Sum_Reduction(Grad(Exp(-SqDist(x,y)*g*7)*b, x, e), 1)",
                            "Sum_Reduction(Grad(Exp(-SqDist(x,y)*g*7)*b, y, e), 0)"};
    double *ref[2], *got[2];
    size_t count[2];
    mode("off");
    KPT_ASSERT_OK(ctx, run_joint(ctx, texts, 2, KP_FLOAT64, d, ref, count));
    int64_t failed = failed_count();
    kp__jit_fail_compiles = 1;
    mode("force");
    KPT_ASSERT_OK(ctx, run_joint(ctx, texts, 2, KP_FLOAT64, d, got, count));
    assert_int_equal(failed_count(), failed + 1);
    check_joint(texts, 2, got, ref, count, -1);
    free_outputs(got, 2);
    mode("require");
    assert_int_equal(run_joint(ctx, texts, 2, KP_FLOAT64, d, got, count), KP_ERR_INTERNAL);
    assert_non_null(strstr(kp_context_message(ctx), "injected"));
    kp__jit_fail_compiles = 0;
    free_outputs(ref, 2);
    free_outputs(got, 2);
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
        cmocka_unit_test(test_lse_special),
        cmocka_unit_test(test_exp_accuracy),
        cmocka_unit_test(test_divisor_without_reciprocal),
        cmocka_unit_test(test_joint_divisor_without_reciprocal),
        cmocka_unit_test(test_exp_signs),
        cmocka_unit_test(test_exp_signs_uniform),
        cmocka_unit_test(test_lse_divisor_rows),
        cmocka_unit_test(test_background),
        cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_joint_matches_interpreter),
        cmocka_unit_test(test_joint_background),
        cmocka_unit_test(test_joint_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
