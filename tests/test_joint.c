/*
 * test_joint.c — joint plans (kp_plan_new_joint / kp_plan_exec_joint).
 *
 * What it asserts:
 * - the gradients of the Gaussian kernel product w.r.t. x (a Sum over j), y and
 *   b (Sums over i), run in one joint pass, equal dense float64 references
 *   (float64 to 1e-12; float32 to 1e-5 for each sum scheme);
 * - a parameter gradient (rows summed) in the list, in the joint pass and
 *   formula by formula, equals its ordinary plan;
 * - every thread count gives bit-identical outputs;
 * - edges: no j points, one j point, NaN inputs, formulas that do not depend
 *   on the reduced index, terms with more than three factors;
 * - divisions by ROW scalars (the tutorials' Gaussian's gradient): the joint
 *   pass, which divides each row's sum once, equals the formulas' own plans;
 * - float32 column sums over N = 10^6 rows stay within 2e-6 of float64;
 * - bad calls get clear errors (wrong counts, NULLs, mixed arguments, index
 *   reductions, the wrong exec function, mismatched outputs);
 * - kp_plan_output_shape gives each formula's output shape (options.output),
 *   equal to its own plan's, unbatched and batched, and kp_plan_exec_joint
 *   takes outputs of those shapes; a bad selection is refused.
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

/* Problem: x = Vi(0,3), y = Vj(1,3), g = Pm(2,1), b = Vj(3,1), seed e = Vi(4,1). */
typedef struct gauss {
    int64_t N, M;
    double *x, *y, *b, *e, g;
} gauss;

static gauss gauss_new(int64_t N, int64_t M, uint64_t seed) {
    kpt_rng r;
    kpt_rng_seed(&r, seed);
    gauss p = {N, M, kpt_random_array(&r, (size_t)N * 3, 0, 1), kpt_random_array(&r, (size_t)M * 3, 0, 1),
               kpt_random_array(&r, (size_t)M, -1, 1), kpt_random_array(&r, (size_t)N, -1, 1), 6.0};
    return p;
}

static void gauss_free(gauss *p) {
    free(p->x);
    free(p->y);
    free(p->b);
    free(p->e);
}

/* Dense float64 references: gx (N x 3), gy (M x 3), gb (M x 1). */
static void gauss_reference(const gauss *p, double *gx, double *gy, double *gb) {
    memset(gx, 0, (size_t)p->N * 3 * sizeof *gx);
    memset(gy, 0, (size_t)p->M * 3 * sizeof *gy);
    memset(gb, 0, (size_t)p->M * sizeof *gb);
    for (int64_t i = 0; i < p->N; i++)
        for (int64_t j = 0; j < p->M; j++) {
            double d[3], d2 = 0;
            for (int c = 0; c < 3; c++) {
                d[c] = p->x[3 * i + c] - p->y[3 * j + c];
                d2 += d[c] * d[c];
            }
            double k = exp(-p->g * d2), w = k * p->b[j] * p->e[i];
            for (int c = 0; c < 3; c++) {
                gx[3 * i + c] += -2 * p->g * w * d[c];
                gy[3 * j + c] += 2 * p->g * w * d[c];
            }
            gb[j] += k * p->e[i];
        }
}

typedef struct grads {
    kp_context *ctx;
    kp_formula *f, *g[4]; /* d/dx, d/dy, d/db, d/dg */
} grads;

static grads grads_new(void) {
    grads G;
    memset(&G, 0, sizeof G);
    assert_int_equal(kpt_context_new(&G.ctx), KP_OK);
    const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"};
    KPT_ASSERT_OK(G.ctx, kp_formula_parse(G.ctx, "Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)", aliases, 4, &G.f));
    const int var[4] = {0, 1, 3, 2};
    for (int k = 0; k < 4; k++) KPT_ASSERT_OK(G.ctx, kp_formula_grad(G.ctx, G.f, var[k], &G.g[k]));
    return G;
}

static void grads_free(grads *G) {
    for (int k = 0; k < 4; k++) kp_formula_free(G->g[k]);
    kp_formula_free(G->f);
    kp_context_free(G->ctx);
}

/* Runs the joint plan of formulas `which` (indices into G->g) in dtype; writes
 * each output, converted to double, into res[k] (malloc'd). Returns the status. */
typedef struct run_cfg {
    int threads;
    kp_dtype dtype;
} run_cfg;

static int64_t out_rows_of(const grads *G, int which, const gauss *p) {
    return which == 3 ? 1 : kp_formula_axis(G->g[which]) == 1 ? p->N : p->M;
}

static kp_status run_joint(grads *G, const int *which, int n, const gauss *p, run_cfg cfg, double **res) {
    kp_plan *plan = NULL;
    const kp_formula *fs[8];
    for (int k = 0; k < n; k++) fs[k] = G->g[which[k]];
    KPT_ASSERT_OK(G->ctx, kp_plan_new_joint(G->ctx, fs, (size_t)n, cfg.dtype, &plan));
    float gf = (float)p->g;
    void *data[5] = {kpt_to_dtype(p->x, (size_t)p->N * 3, cfg.dtype), kpt_to_dtype(p->y, (size_t)p->M * 3, cfg.dtype),
                     cfg.dtype == KP_FLOAT32 ? (void *)&gf : (void *)&p->g,
                     kpt_to_dtype(p->b, (size_t)p->M, cfg.dtype), kpt_to_dtype(p->e, (size_t)p->N, cfg.dtype)};
    kp_array args[5] = {kp_array_2d(data[0], cfg.dtype, p->N, 3), kp_array_2d(data[1], cfg.dtype, p->M, 3),
                        kp_array_1d(data[2], cfg.dtype, 1), kp_array_2d(data[3], cfg.dtype, p->M, 1),
                        kp_array_2d(data[4], cfg.dtype, p->N, 1)};
    kp_array outs[8];
    void *obuf[8];
    for (int k = 0; k < n; k++) {
        int64_t rows = out_rows_of(G, which[k], p);
        int dim = kp_formula_out_dim(fs[k]);
        obuf[k] = kpt_alloc_dtype((size_t)(rows * dim), cfg.dtype);
        outs[k] = kp_array_2d(obuf[k], cfg.dtype, rows, dim);
    }
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.num_threads = cfg.threads;
    kp_status st = kp_plan_exec_joint(plan, args, 5, outs, (size_t)n, &opt);
    for (int k = 0; k < n; k++) {
        size_t count = (size_t)(out_rows_of(G, which[k], p) * kp_formula_out_dim(fs[k]));
        res[k] = malloc((count ? count : 1) * sizeof(double));
        kpt_from_dtype(obuf[k], cfg.dtype, count, res[k]);
        free(obuf[k]);
    }
    for (int k = 0; k < 5; k++)
        if (k != 2) free(data[k]);
    kp_plan_free(plan);
    return st;
}

static void free_all(double **res, int n) {
    for (int k = 0; k < n; k++) free(res[k]);
}

/* Checks the x, y, b gradients against the dense reference. */
static void check_against_reference(int64_t N, int64_t M, kp_dtype dtype, kp_sum_scheme scheme, double rtol) {
    gauss p = gauss_new(N, M, 11 + (uint64_t)N);
    grads G = grads_new();
    KPT_ASSERT_OK(G.ctx, kp_context_set_sum_scheme(G.ctx, scheme));
    double *gx = malloc((size_t)N * 3 * sizeof *gx), *gy = malloc((size_t)M * 3 * sizeof *gy);
    double *gb = malloc((size_t)M * sizeof *gb);
    gauss_reference(&p, gx, gy, gb);
    const int which[3] = {0, 1, 2};
    double *res[3];
    run_cfg cfg = {2, dtype};
    KPT_ASSERT_OK(G.ctx, run_joint(&G, which, 3, &p, cfg, res));
    /* errors relative to the largest reference value of each output */
    double sx = 0, sy = 0, sb = 0;
    for (int64_t k = 0; k < 3 * N; k++) sx = fmax(sx, fabs(gx[k]));
    for (int64_t k = 0; k < 3 * M; k++) sy = fmax(sy, fabs(gy[k]));
    for (int64_t k = 0; k < M; k++) sb = fmax(sb, fabs(gb[k]));
    assert_int_equal(kpt_check("joint d/dx", res[0], gx, NULL, (size_t)(3 * N), 0, rtol * sx), 0);
    assert_int_equal(kpt_check("joint d/dy", res[1], gy, NULL, (size_t)(3 * M), 0, rtol * sy), 0);
    assert_int_equal(kpt_check("joint d/db", res[2], gb, NULL, (size_t)M, 0, rtol * sb), 0);
    free_all(res, 3);
    free(gx);
    free(gy);
    free(gb);
    grads_free(&G);
    gauss_free(&p);
}

static void test_reference_f64(void **state) {
    (void)state;
    check_against_reference(700, 900, KP_FLOAT64, KP_SUM_BLOCK, 1e-12); /* joint pass */
    check_against_reference(1000, 37, KP_FLOAT64, KP_SUM_BLOCK, 1e-12);
    check_against_reference(100, 900, KP_FLOAT64, KP_SUM_BLOCK, 1e-12); /* too few rows: one by one */
}

static void test_reference_f32_schemes(void **state) {
    (void)state;
    check_against_reference(700, 900, KP_FLOAT32, KP_SUM_BLOCK, 1e-5);
    check_against_reference(700, 900, KP_FLOAT32, KP_SUM_KAHAN, 1e-5);
    check_against_reference(700, 900, KP_FLOAT32, KP_SUM_PLAIN, 1e-5);
}

/* Bit-identical outputs for 1, 2, 3 and 7 threads (joint pass and split merge). */
static void test_threads_identical(void **state) {
    (void)state;
    gauss p = gauss_new(3000, 1500, 5);
    grads G = grads_new();
    const int which[3] = {0, 1, 2};
    const int threads[4] = {1, 2, 3, 7};
    double *first[3];
    for (int t = 0; t < 4; t++) {
        double *res[3];
        run_cfg cfg = {threads[t], KP_FLOAT32};
        KPT_ASSERT_OK(G.ctx, run_joint(&G, which, 3, &p, cfg, res));
        if (t == 0) {
            memcpy(first, res, sizeof first);
            continue;
        }
        assert_memory_equal(res[0], first[0], (size_t)p.N * 3 * sizeof(double));
        assert_memory_equal(res[1], first[1], (size_t)p.M * 3 * sizeof(double));
        assert_memory_equal(res[2], first[2], (size_t)p.M * sizeof(double));
        free_all(res, 3);
    }
    free_all(first, 3);
    grads_free(&G);
    gauss_free(&p);
}

/* Runs G->g[which] with an ordinary plan (kp_plan_exec) in float64; malloc'd. */
static double *run_alone(grads *G, int which, const gauss *p) {
    kp_plan *plan = NULL;
    KPT_ASSERT_OK(G->ctx, kp_plan_new(G->ctx, G->g[which], KP_FLOAT64, &plan));
    double g = p->g;
    kp_array args[5] = {kp_array_2d(p->x, KP_FLOAT64, p->N, 3), kp_array_2d(p->y, KP_FLOAT64, p->M, 3),
                        kp_array_1d(&g, KP_FLOAT64, 1), kp_array_2d(p->b, KP_FLOAT64, p->M, 1),
                        kp_array_2d(p->e, KP_FLOAT64, p->N, 1)};
    int64_t rows = out_rows_of(G, which, p);
    int dim = kp_formula_out_dim(G->g[which]);
    double *out = malloc((size_t)(rows * dim) * sizeof *out);
    kp_array o = kp_array_2d(out, KP_FLOAT64, rows, dim);
    KPT_ASSERT_OK(G->ctx, kp_plan_exec(plan, args, 5, &o, NULL, NULL));
    kp_plan_free(plan);
    return out;
}

/* A parameter gradient (rows summed) joins the pass through a per-row
 * temporary: every output equals that formula's ordinary plan, in the joint
 * pass (N = 600) and formula by formula (N = 100). */
static void test_parameter_gradient_joins(void **state) {
    (void)state;
    const int64_t sizes[2] = {600, 100};
    for (int s = 0; s < 2; s++) {
        gauss p = gauss_new(sizes[s], 300, 9);
        grads G = grads_new();
        const int all[4] = {0, 1, 2, 3};
        double *res[4];
        run_cfg cfg = {2, KP_FLOAT64};
        KPT_ASSERT_OK(G.ctx, run_joint(&G, all, 4, &p, cfg, res));
        for (int k = 0; k < 4; k++) {
            double *alone = run_alone(&G, k, &p);
            size_t count = (size_t)(out_rows_of(&G, k, &p) * kp_formula_out_dim(G.g[k]));
            assert_int_equal(kpt_check("joint vs ordinary plan", res[k], alone, NULL, count, 1e-12, 1e-12), 0);
            free(alone);
        }
        free_all(res, 4);
        grads_free(&G);
        gauss_free(&p);
    }
}

/* No j point: the Sum over j is 0 and the Sums over i are empty. One j point,
 * and a NaN in y: it spreads to every row's d/dx and to its own column only. */
static void test_edges(void **state) {
    (void)state;
    grads G = grads_new();
    const int which[3] = {0, 1, 2};
    run_cfg cfg = {2, KP_FLOAT64};
    gauss p = gauss_new(600, 0, 3);
    double *res[3];
    KPT_ASSERT_OK(G.ctx, run_joint(&G, which, 3, &p, cfg, res));
    for (int64_t k = 0; k < 3 * p.N; k++) assert_true(res[0][k] == 0.0);
    free_all(res, 3);
    gauss_free(&p);

    p = gauss_new(600, 5, 4);
    p.y[3 * 2 + 1] = NAN;
    KPT_ASSERT_OK(G.ctx, run_joint(&G, which, 3, &p, cfg, res));
    for (int64_t k = 0; k < 3 * p.N; k++) assert_true(isnan(res[0][k]));
    for (int64_t j = 0; j < p.M; j++) assert_true(isnan(res[2][j]) == (j == 2));
    free_all(res, 3);
    gauss_free(&p);
    grads_free(&G);
}

/* Runs texts (aliases x = Vi(2), y = Vj(2), a = Vi(1), b = Vj(1), s = Pm(1),
 * w = Vi(2)) as one joint plan and one by one in dtype on N x M points; checks
 * that they agree within rtol of each output's largest value (or exactly 0
 * for empty sums). */
static void compare_joint_alone(const char *const *texts, int n, kp_dtype dtype, int64_t N, int64_t M, double s,
                                double rtol) {
    kp_context *ctx = NULL;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    const char *aliases[] = {"x = Vi(2)", "y = Vj(2)", "a = Vi(1)", "b = Vj(1)", "s = Pm(1)", "w = Vi(2)"};
    kp_formula *fs[8];
    for (int k = 0; k < n; k++) KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, texts[k], aliases, 6, &fs[k]));
    kpt_rng r;
    kpt_rng_seed(&r, 5);
    double *src[6] = {kpt_random_array(&r, (size_t)N * 2, -1, 1), kpt_random_array(&r, (size_t)M * 2 + 1, -1, 1),
                      kpt_random_array(&r, (size_t)N, 0.5, 1.5), kpt_random_array(&r, (size_t)M + 1, -1, 1), &s,
                      kpt_random_array(&r, (size_t)N * 2, 0.5, 1.5)};
    const int64_t rows[6] = {N, M, N, M, -1, N}, dims[6] = {2, 2, 1, 1, 1, 2};
    void *data[6];
    kp_array args[6];
    for (int k = 0; k < 6; k++) {
        size_t count = rows[k] < 0 ? 1 : (size_t)(rows[k] * dims[k]);
        data[k] = kpt_to_dtype(src[k], count, dtype);
        args[k] = rows[k] < 0 ? kp_array_1d(data[k], dtype, 1) : kp_array_2d(data[k], dtype, rows[k], dims[k]);
    }
    void *joint[8], *alone[8];
    kp_array outs[8];
    size_t count[8];
    for (int k = 0; k < n; k++) {
        int64_t orows = kp_formula_sums_rows(fs[k]) ? 1 : kp_formula_axis(fs[k]) == 1 ? N : M;
        count[k] = (size_t)orows * (size_t)kp_formula_out_dim(fs[k]);
        joint[k] = kpt_alloc_dtype(count[k] + 1, dtype);
        alone[k] = kpt_alloc_dtype(count[k] + 1, dtype);
        outs[k] = kp_array_2d(joint[k], dtype, orows, kp_formula_out_dim(fs[k]));
        kp_array o = kp_array_2d(alone[k], dtype, orows, kp_formula_out_dim(fs[k]));
        kp_plan *plan = NULL;
        KPT_ASSERT_OK(ctx, kp_plan_new(ctx, fs[k], dtype, &plan));
        KPT_ASSERT_OK(ctx, kp_plan_exec(plan, args, 6, &o, NULL, NULL));
        kp_plan_free(plan);
    }
    kp_plan *jp = NULL;
    KPT_ASSERT_OK(ctx, kp_plan_new_joint(ctx, (const kp_formula *const *)fs, (size_t)n, dtype, &jp));
    KPT_ASSERT_OK(ctx, kp_plan_exec_joint(jp, args, 6, outs, (size_t)n, NULL));
    for (int k = 0; k < n; k++) {
        double *got = malloc((count[k] + 1) * sizeof *got), *want = malloc((count[k] + 1) * sizeof *want), top = 0;
        kpt_from_dtype(joint[k], dtype, count[k], got);
        kpt_from_dtype(alone[k], dtype, count[k], want);
        for (size_t c = 0; c < count[k]; c++) top = fmax(top, fabs(want[c]));
        assert_int_equal(kpt_check(texts[k], got, want, NULL, count[k], 0, rtol * top), 0);
        free(got);
        free(want);
        free(joint[k]);
        free(alone[k]);
        kp_formula_free(fs[k]);
    }
    kp_plan_free(jp);
    for (int k = 0; k < 6; k++) {
        free(data[k]);
        if (k != 4) free(src[k]);
    }
    kp_context_free(ctx);
}

/* Formulas that do not depend on the reduced index, and products of many
 * factors, against their plain plans run one by one. */
static void test_unusual_terms(void **state) {
    (void)state;
    static const char *texts[] = {
        "Sum_Reduction(x * a, 1)",                               /* row only: M x_i a_i */
        "Sum_Reduction(b * y, 0)",                               /* column only: N b_j y_j */
        "Sum_Reduction(Exp(-SqDist(x,y)) * a * b * x * y * -3, 1)", /* five factors and a sign */
        "Sum_Reduction(Exp(-SqDist(x,y)) * a * b * (x - y) * a, 0)",
        "Sum_Reduction(Cos(x - y) + a, 1)", /* not a product */
        "RowSum(Sum_Reduction(Exp(-SqDist(x,y)) * a * b * y, 0))", /* rows summed, both sides */
        "RowSum(Sum_Reduction(Exp(-SqDist(x,y)) * x * b, 1))",
    };
    compare_joint_alone(texts, 7, KP_FLOAT64, 640, 130, 0.7, 1e-12);
}

/* Divisions by a ROW scalar in terms over j are applied once per row, after
 * the row scale ((sum * scale) / divisor); other divisions stay per pair. */
static void test_divided_terms(void **state) {
    (void)state;
    static const char *texts[] = {
        /* the x-gradient of Exp(-SqDist(x,y)/s)*b, as kp_formula_grad writes it */
        "Sum_Reduction((x-y) * ((-2) * (((a*b)*Exp(-(SqDist(x,y)/s)))/s)), 1)",
        "Sum_Reduction(a*Exp(-(SqDist(x,y)/s)), 0)", /* over i: no divisor taken */
        "Sum_Reduction(x * b / a, 1)",                /* a ROW variable */
        "Sum_Reduction((x * b / a) / s, 1)",          /* two divisions: one taken, one per pair */
        "Sum_Reduction(x * b / w, 1)",                /* a vector divisor: per pair */
        "Sum_Reduction(y * b / a, 0)",                /* over i: per pair */
    };
    compare_joint_alone(texts, 6, KP_FLOAT64, 700, 300, 0.7, 1e-12);
    compare_joint_alone(texts, 6, KP_FLOAT32, 700, 300, 0.7, 1e-5);
    /* No point: empty sums are 0, even divided by 0. */
    compare_joint_alone(texts, 6, KP_FLOAT64, 700, 0, 0.0, 0);
}

/* Column sums over 10^6 rows in float32 against float64. */
static void test_long_columns_f32(void **state) {
    (void)state;
    gauss p = gauss_new(1000000, 40, 17);
    for (int64_t i = 0; i < p.N; i++) p.e[i] = 0.5 + 0.5 * p.e[i]; /* positive: a relative error is meaningful */
    grads G = grads_new();
    const int which[2] = {0, 2};
    double *r32[2], *r64[2];
    run_cfg c32 = {2, KP_FLOAT32}, c64 = {2, KP_FLOAT64};
    KPT_ASSERT_OK(G.ctx, run_joint(&G, which, 2, &p, c32, r32));
    KPT_ASSERT_OK(G.ctx, run_joint(&G, which, 2, &p, c64, r64));
    double err = kpt_max_rel_err(r32[1], r64[1], (size_t)p.M);
    printf("float32 column sums over 10^6 rows: max relative error %.2e\n", err);
    assert_true(err < 2e-6);
    free_all(r32, 2);
    free_all(r64, 2);
    grads_free(&G);
    gauss_free(&p);
}

static void test_errors(void **state) {
    (void)state;
    grads G = grads_new();
    kp_context *ctx = G.ctx;
    kp_plan *plan = NULL;
    const kp_formula *two[2] = {G.g[0], G.g[2]};
    assert_int_equal(kp_plan_new_joint(ctx, two, 0, KP_FLOAT32, &plan), KP_ERR_ARGUMENT);
    assert_non_null(strstr(kp_context_message(ctx), "1 to 8 formulas"));
    const kp_formula *nine[9];
    for (int k = 0; k < 9; k++) nine[k] = G.g[0];
    assert_int_equal(kp_plan_new_joint(ctx, nine, 9, KP_FLOAT32, &plan), KP_ERR_ARGUMENT);
    assert_int_equal(kp_plan_new_joint(ctx, NULL, 2, KP_FLOAT32, &plan), KP_ERR_NULL);
    assert_int_equal(kp_plan_new_joint(ctx, two, 2, KP_FLOAT32, NULL), KP_ERR_NULL);
    const kp_formula *with_null[2] = {G.g[0], NULL};
    assert_int_equal(kp_plan_new_joint(ctx, with_null, 2, KP_FLOAT32, &plan), KP_ERR_NULL);
    assert_non_null(strstr(kp_context_message(ctx), "formula 1 is NULL"));
    assert_int_equal(kp_plan_new_joint(ctx, two, 2, KP_INT64, &plan), KP_ERR_DTYPE);

    /* the forward takes 4 arguments, its gradients 5 */
    const kp_formula *mixed[2] = {G.f, G.g[0]};
    assert_int_equal(kp_plan_new_joint(ctx, mixed, 2, KP_FLOAT32, &plan), KP_ERR_ARGUMENT);
    assert_non_null(strstr(kp_context_message(ctx), "same arguments"));
    /* same count, another dimension at a shared position */
    const char *al2[] = {"x = Vi(2)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)", "e = Vi(1)"};
    kp_formula *other = NULL, *argmin = NULL;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(x * e, 1)", al2, 5, &other));
    const kp_formula *clash[2] = {G.g[0], other};
    assert_int_equal(kp_plan_new_joint(ctx, clash, 2, KP_FLOAT32, &plan), KP_ERR_ARGUMENT);
    const char *al3[] = {"x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)", "e = Vi(1)"};
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "ArgMin_Reduction(SqDist(x,y), 1)", al3, 5, &argmin));
    const kp_formula *idx[2] = {G.g[0], argmin};
    assert_int_equal(kp_plan_new_joint(ctx, idx, 2, KP_FLOAT32, &plan), KP_ERR_ARGUMENT);
    assert_non_null(strstr(kp_context_message(ctx), "writes indices"));

    /* exec: the wrong function, the wrong count, a bad output shape */
    KPT_ASSERT_OK(ctx, kp_plan_new_joint(ctx, two, 2, KP_FLOAT32, &plan));
    int64_t N = 600, M = 50;
    float *x = calloc((size_t)N * 3, 4), *y = calloc((size_t)M * 3, 4), *b = calloc((size_t)M, 4);
    float *e = calloc((size_t)N, 4), *ox = calloc((size_t)N * 3, 4), *ob = calloc((size_t)M, 4), g = 1;
    kp_array args[5] = {kp_array_2d(x, KP_FLOAT32, N, 3), kp_array_2d(y, KP_FLOAT32, M, 3), kp_array_1d(&g, KP_FLOAT32, 1),
                        kp_array_2d(b, KP_FLOAT32, M, 1), kp_array_2d(e, KP_FLOAT32, N, 1)};
    kp_array outs[2] = {kp_array_2d(ox, KP_FLOAT32, N, 3), kp_array_2d(ob, KP_FLOAT32, M, 1)};
    assert_int_equal(kp_plan_exec(plan, args, 5, &outs[0], NULL, NULL), KP_ERR_ARGUMENT);
    assert_non_null(strstr(kp_context_message(ctx), "kp_plan_exec_joint"));
    assert_int_equal(kp_plan_exec_joint(plan, args, 5, outs, 1, NULL), KP_ERR_ARGUMENT);
    assert_int_equal(kp_plan_exec_joint(plan, args, 5, NULL, 2, NULL), KP_ERR_NULL);
    kp_array bad[2] = {outs[0], kp_array_2d(ob, KP_FLOAT32, M - 1, 1)};
    assert_int_equal(kp_plan_exec_joint(plan, args, 5, bad, 2, NULL), KP_ERR_SHAPE);
    assert_non_null(strstr(kp_context_message(ctx), "formula 1: "));
    KPT_ASSERT_OK(ctx, kp_plan_exec_joint(plan, args, 5, outs, 2, NULL));
    kp_plan *single = NULL;
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, G.g[0], KP_FLOAT32, &single));
    assert_int_equal(kp_plan_exec_joint(single, args, 5, outs, 1, NULL), KP_ERR_ARGUMENT);
    assert_non_null(strstr(kp_context_message(ctx), "not a joint plan"));
    kp_plan_free(single);
    kp_plan_free(plan);
    free(x);
    free(y);
    free(b);
    free(e);
    free(ox);
    free(ob);
    kp_formula_free(other);
    kp_formula_free(argmin);
    grads_free(&G);
}

/* kp_plan_output_shape on a joint plan: options.output = k gives formula k's
 * output, the shape of its own ordinary plan, which kp_plan_exec_joint takes;
 * unbatched and with a batch dimension; out-of-range selections are refused. */
static void expect_shape(int ndim, const int64_t *shape, int want_ndim, const int64_t *want) {
    assert_int_equal(ndim, want_ndim);
    for (int d = 0; d < want_ndim; d++) assert_int_equal(shape[d], want[d]);
}

static void test_output_shapes(void **state) {
    (void)state;
    grads G = grads_new();
    kp_context *ctx = G.ctx;
    const int64_t N = 7, M = 5, NB = 2;
    const kp_formula *fs[4] = {G.g[0], G.g[1], G.g[2], G.g[3]};
    kp_plan *plan = NULL, *single = NULL;
    KPT_ASSERT_OK(ctx, kp_plan_new_joint(ctx, fs, 4, KP_FLOAT64, &plan));
    double *x = calloc((size_t)(NB * N * 3), 8), *y = calloc((size_t)M * 3, 8), *b = calloc((size_t)M, 8);
    double *e = calloc((size_t)(NB * N), 8), g = 1;
    const int64_t xs[3] = {NB, N, 3}, es[3] = {NB, N, 1};
    kp_array flat[5] = {kp_array_2d(x, KP_FLOAT64, N, 3), kp_array_2d(y, KP_FLOAT64, M, 3), kp_array_1d(&g, KP_FLOAT64, 1),
                        kp_array_2d(b, KP_FLOAT64, M, 1), kp_array_2d(e, KP_FLOAT64, N, 1)};
    kp_array batched[5] = {kp_array_nd(x, KP_FLOAT64, 3, xs), flat[1], flat[2], flat[3], kp_array_nd(e, KP_FLOAT64, 3, es)};
    const int64_t rows[4] = {N, M, M, 1}, dims[4] = {3, 3, 1, 1};
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    int ndim = 0;
    int64_t shape[KP_MAX_DIMS], ishape[KP_MAX_DIMS], own[KP_MAX_DIMS];
    for (int k = 0; k < 4; k++) {
        opt.output = k;
        KPT_ASSERT_OK(ctx, kp_plan_output_shape(plan, flat, 5, &opt, &ndim, shape, ishape));
        const int64_t want[2] = {rows[k], dims[k]}, iwant[2] = {rows[k], 0};
        expect_shape(ndim, shape, 2, want);
        expect_shape(ndim, ishape, 2, iwant);
        KPT_ASSERT_OK(ctx, kp_plan_output_shape(plan, batched, 5, &opt, &ndim, shape, NULL));
        const int64_t bwant[3] = {NB, rows[k], dims[k]};
        expect_shape(ndim, shape, 3, bwant);
        KPT_ASSERT_OK(ctx, kp_plan_new(ctx, fs[k], KP_FLOAT64, &single)); /* the same as formula k's own plan */
        int own_ndim = 0;
        KPT_ASSERT_OK(ctx, kp_plan_output_shape(single, batched, 5, NULL, &own_ndim, own, NULL));
        expect_shape(ndim, shape, own_ndim, own);
        opt.output = 1; /* an ordinary plan has output 0 only */
        assert_int_equal(kp_plan_output_shape(single, batched, 5, &opt, &own_ndim, own, NULL), KP_ERR_ARGUMENT);
        assert_non_null(strstr(kp_context_message(ctx), "one output"));
        kp_plan_free(single);
    }
    /* the reported shapes are what kp_plan_exec_joint takes (batched: formula by formula) */
    double *obuf[4];
    kp_array outs[4];
    for (int k = 0; k < 4; k++) {
        opt.output = k;
        KPT_ASSERT_OK(ctx, kp_plan_output_shape(plan, batched, 5, &opt, &ndim, shape, NULL));
        obuf[k] = calloc((size_t)(shape[0] * shape[1] * shape[2]), 8);
        outs[k] = kp_array_nd(obuf[k], KP_FLOAT64, ndim, shape);
    }
    /* output is the shape query's: the calls refuse it rather than ignore it */
    assert_int_equal(kp_plan_exec_joint(plan, batched, 5, outs, 4, &opt), KP_ERR_ARGUMENT);
    assert_non_null(strstr(kp_context_message(ctx), "kp_exec_options.output is 3"));
    opt.output = 0;
    KPT_ASSERT_OK(ctx, kp_plan_exec_joint(plan, batched, 5, outs, 4, &opt));
    opt.output = 4;
    assert_int_equal(kp_plan_output_shape(plan, flat, 5, &opt, &ndim, shape, NULL), KP_ERR_ARGUMENT);
    assert_non_null(strstr(kp_context_message(ctx), "4 formulas"));
    opt.output = -1;
    assert_int_equal(kp_plan_output_shape(plan, flat, 5, &opt, &ndim, shape, NULL), KP_ERR_ARGUMENT);
    /* a caller built before the field: output 0 */
    opt.output = 3;
    opt.struct_size = offsetof(kp_exec_options, output);
    KPT_ASSERT_OK(ctx, kp_plan_output_shape(plan, flat, 5, &opt, &ndim, shape, NULL));
    const int64_t first[2] = {N, 3};
    expect_shape(ndim, shape, 2, first);
    for (int k = 0; k < 4; k++) free(obuf[k]);
    free(x);
    free(y);
    free(b);
    free(e);
    kp_plan_free(plan);
    grads_free(&G);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_f64),
        cmocka_unit_test(test_reference_f32_schemes),
        cmocka_unit_test(test_threads_identical),
        cmocka_unit_test(test_parameter_gradient_joins),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_unusual_terms),
        cmocka_unit_test(test_divided_terms),
        cmocka_unit_test(test_long_columns_f32),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_output_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
