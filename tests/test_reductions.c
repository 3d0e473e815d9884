/*
 * test_reductions.c — every reduction on both axes, float32 and float64,
 * against float64 dense references computed here by double loops.
 *
 * Usage: test_reductions [small|large]  (default: small). "large" holds the
 * M = 10^7 / N = 10^7 cases; they are skipped when KP_TEST_SKIP_LARGE=1.
 *
 * Reference semantics (kp.h, KeOps):
 *   Sum: sum over the reduced index (0 when empty);
 *   LogSumExp: log sum exp, elementwise for vector F (-inf when empty);
 *   SumSoftMaxWeight(F, axis, G): sum exp(F) G / sum exp(F), F scalar (NaN when empty);
 *   Min/Max (elementwise for vector F) and their Arg* indices (int64, -1 when
 *   empty); KMin/ArgKMin/KMin_ArgKMin: K smallest ascending, out[row, k*D + d];
 *   ties go to the smallest index; NaN ranks before every number.
 * Tolerances: values within rtol * scale where scale is sum |F| for Sum,
 * max |F| + 1 for LogSumExp, the weighted mean of |G| for SumSoftMaxWeight and
 * |ref| for Min-type values; rtol 1e-12 (float64), 1e-5 .. 3e-5 (float32).
 * Min-type tests use integer-valued data, so both dtypes are exact and indices
 * (including tie-breaking) are compared exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_test_util.h"

/* ================================================================ reference */

static int is_min_family(kp_reduction r) {
    return r == KP_RED_MIN || r == KP_RED_MAX || r == KP_RED_ARGMIN || r == KP_RED_ARGMAX ||
           r == KP_RED_MIN_ARGMIN || r == KP_RED_MAX_ARGMAX;
}
static int is_k_family(kp_reduction r) {
    return r == KP_RED_KMIN || r == KP_RED_ARGKMIN || r == KP_RED_KMIN_ARGKMIN;
}
static int is_max_kind(kp_reduction r) {
    return r == KP_RED_MAX || r == KP_RED_ARGMAX || r == KP_RED_MAX_ARGMAX;
}

static int out_dim_of(kp_reduction r, int K, int D, int DG) {
    if (r == KP_RED_SUMSOFTMAXWEIGHT) return DG;
    if (r == KP_RED_ARGMIN || r == KP_RED_ARGMAX || r == KP_RED_ARGKMIN) return 0;
    if (r == KP_RED_KMIN || r == KP_RED_KMIN_ARGKMIN) return K * D;
    return D;
}
static int idx_dim_of(kp_reduction r, int K, int D) {
    if (r == KP_RED_ARGMIN || r == KP_RED_ARGMAX || r == KP_RED_MIN_ARGMIN ||
        r == KP_RED_MAX_ARGMAX)
        return D;
    if (r == KP_RED_ARGKMIN || r == KP_RED_KMIN_ARGKMIN) return K * D;
    return 0;
}

/* F is stored [i][j][d] for every reduction and axis. */
static double Fat(const double *F, int64_t M, int D, int axis, int64_t row, int64_t r, int d) {
    int64_t i = axis == 1 ? row : r, j = axis == 1 ? r : row;
    return F[(i * M + j) * D + d];
}

/* (a, ia) ranks before (b, ib): NaN first (smallest index among NaNs), then by
 * value (ascending, or descending for Max), then by smallest index. */
static int ranks_before(double a, int64_t ia, double b, int64_t ib, int is_max) {
    int na = isnan(a), nb = isnan(b);
    if (na || nb) return na && nb ? ia < ib : na;
    if (a != b) return is_max ? a > b : a < b;
    return ia < ib;
}

/* Dense reference of one reduction. out: rows x out_dim, idx: rows x idx_dim,
 * scale: rows x out_dim (tolerance scale of each value). */
static void ref_reduce(kp_reduction red, int K, int axis, const double *F, const double *G,
                       int64_t N, int64_t M, int D, int DG, double *out, double *scale,
                       int64_t *idx) {
    int64_t rows = axis == 1 ? N : M, R = axis == 1 ? M : N;
    int od = out_dim_of(red, K, D, DG), xd = idx_dim_of(red, K, D);
    for (int64_t row = 0; row < rows; row++) {
        if (red == KP_RED_SUM) {
            for (int d = 0; d < D; d++) {
                double s = 0.0, a = 0.0;
                for (int64_t r = 0; r < R; r++) {
                    double v = Fat(F, M, D, axis, row, r, d);
                    s += v;
                    a += fabs(v);
                }
                out[row * od + d] = s;
                scale[row * od + d] = a;
            }
        } else if (red == KP_RED_LOGSUMEXP) {
            for (int d = 0; d < D; d++) {
                double m = -INFINITY, amax = 0.0, s = 0.0;
                int nan = 0;
                for (int64_t r = 0; r < R; r++) {
                    double v = Fat(F, M, D, axis, row, r, d);
                    if (isnan(v)) nan = 1;
                    else if (v > m) m = v;
                    if (isfinite(v)) amax = fmax(amax, fabs(v));
                }
                double res;
                if (nan) res = NAN;
                else if (isinf(m)) res = m;
                else {
                    for (int64_t r = 0; r < R; r++) s += exp(Fat(F, M, D, axis, row, r, d) - m);
                    res = m + log(s);
                }
                out[row * od + d] = res;
                scale[row * od + d] = amax + 1.0;
            }
        } else if (red == KP_RED_SUMSOFTMAXWEIGHT) {
            double m = -INFINITY, sw = 0.0;
            int nan = 0;
            for (int64_t r = 0; r < R; r++) {
                double v = Fat(F, M, 1, axis, row, r, 0);
                if (isnan(v)) nan = 1;
                else if (v > m) m = v;
            }
            for (int g = 0; g < DG; g++) out[row * od + g] = scale[row * od + g] = 0.0;
            for (int64_t r = 0; r < R; r++) {
                double w = exp(Fat(F, M, 1, axis, row, r, 0) - m);
                sw += w;
                for (int g = 0; g < DG; g++) {
                    double gv = Fat(G, M, DG, axis, row, r, g);
                    out[row * od + g] += w * gv;
                    scale[row * od + g] += w * fabs(gv);
                }
            }
            for (int g = 0; g < DG; g++) {
                out[row * od + g] = (R == 0 || nan) ? NAN : out[row * od + g] / sw;
                scale[row * od + g] = R == 0 ? 0.0 : scale[row * od + g] / sw;
            }
        } else if (is_min_family(red)) {
            int mx = is_max_kind(red);
            for (int d = 0; d < D; d++) {
                int64_t best = -1;
                double bv = mx ? -INFINITY : INFINITY;
                for (int64_t r = 0; r < R; r++) {
                    double v = Fat(F, M, D, axis, row, r, d);
                    if (best < 0 || ranks_before(v, r, bv, best, mx)) {
                        best = r;
                        bv = v;
                    }
                }
                if (od) {
                    out[row * od + d] = bv;
                    scale[row * od + d] = fabs(bv);
                }
                if (xd) idx[row * xd + d] = best;
            }
        } else { /* K family */
            double vals[64];
            int64_t ids[64];
            for (int d = 0; d < D; d++) {
                int cnt = 0;
                for (int64_t r = 0; r < R; r++) {
                    double v = Fat(F, M, D, axis, row, r, d);
                    int p = cnt;
                    while (p > 0 && ranks_before(v, r, vals[p - 1], ids[p - 1], 0)) p--;
                    if (p >= K) continue;
                    for (int q = (cnt < K ? cnt : K - 1); q > p; q--) {
                        vals[q] = vals[q - 1];
                        ids[q] = ids[q - 1];
                    }
                    vals[p] = v;
                    ids[p] = r;
                    if (cnt < K) cnt++;
                }
                for (int k = 0; k < K; k++) {
                    if (od) {
                        out[row * od + k * D + d] = k < cnt ? vals[k] : INFINITY;
                        scale[row * od + k * D + d] = k < cnt ? fabs(vals[k]) : 0.0;
                    }
                    if (xd) idx[row * xd + k * D + d] = k < cnt ? ids[k] : -1;
                }
            }
        }
    }
}

/* ================================================================ runner */

typedef struct red_run {
    const char *label;
    kp_context *ctx;
    kpt_path path;
    const char *text;
    const char *const *aliases;
    size_t n_aliases;
    kp_dtype dtype;
    const kpt_arg *args;
    size_t n_args;
    kp_reduction red;
    int K, axis;
    const double *F, *G; /* F: N x M x D, G: N x M x DG (SumSoftMaxWeight) */
    int64_t N, M;
    int D, DG;
    double rtol; /* 0: default */
} red_run;

static double default_rtol(kp_reduction red, kp_dtype dt) {
    if (dt == KP_FLOAT64) return 1e-12;
    if (red == KP_RED_LOGSUMEXP || red == KP_RED_SUMSOFTMAXWEIGHT) return 3e-5;
    return 1e-5;
}

/* Runs one reduction and compares with ref_reduce. Asserts nothing itself:
 * returns the number of mismatches (a status mismatch counts as one) so a
 * sweep can report every failing configuration before failing. */
static size_t run_check(const red_run *q) {
    int64_t rows = q->axis == 1 ? q->N : q->M, R = q->axis == 1 ? q->M : q->N;
    int od = out_dim_of(q->red, q->K, q->D, q->DG), xd = idx_dim_of(q->red, q->K, q->D);
    size_t no = (size_t)(rows * od), ni = (size_t)(rows * xd);
    double *got = calloc(no + 1, sizeof(double)), *ref = calloc(no + 1, sizeof(double));
    double *scale = calloc(no + 1, sizeof(double));
    int64_t *gi = calloc(ni + 1, sizeof(int64_t)), *ri = calloc(ni + 1, sizeof(int64_t));
    size_t bad = 0;
    char label[512];
    snprintf(label, sizeof label, "%s %s [%s] N=%lld M=%lld", q->label, q->text,
             kpt_dtype_name(q->dtype), (long long)q->N, (long long)q->M);

    if (getenv("KPT_VERBOSE")) fprintf(stderr, "  run: %s\n", label);
    kp_status st = kpt_run(q->ctx, q->path, q->text, q->aliases, q->n_aliases, q->dtype, q->args,
                           q->n_args, rows, od, od ? got : NULL, xd, xd ? gi : NULL, NULL);
    if (is_k_family(q->red) && q->K > R) {
        /* K larger than the reduced size is an invalid argument. */
        if (st != KP_ERR_ARGUMENT && !(rows == 0 && st == KP_OK)) {
            fprintf(stderr, "  [%s] expected KP_ERR_ARGUMENT (K=%d > %lld), got %d\n", label,
                    q->K, (long long)R, (int)st);
            bad++;
        }
    } else if (st != KP_OK) {
        fprintf(stderr, "  [%s] status %d: %s\n", label, (int)st, kp_context_message(q->ctx));
        bad++;
    } else {
        double rtol = q->rtol > 0 ? q->rtol : default_rtol(q->red, q->dtype);
        ref_reduce(q->red, q->K, q->axis, q->F, q->G, q->N, q->M, q->D, q->DG, ref, scale, ri);
        if (od) bad += kpt_check(label, got, ref, scale, no, rtol, 1e-300);
        if (xd) bad += kpt_check_index(label, gi, ri, ni);
    }
    free(got);
    free(ref);
    free(scale);
    free(gi);
    free(ri);
    return bad;
}

/* ================================================================ data helpers */

static double sqdist(const double *a, const double *b, int d) {
    double s = 0.0;
    for (int k = 0; k < d; k++) s += (a[k] - b[k]) * (a[k] - b[k]);
    return s;
}

static double *xmalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    assert_non_null(p);
    return p;
}

typedef struct red_form {
    const char *fmt; /* printf format with the axis */
    kp_reduction red;
    int K;
} red_form;

/* ================================================================ size sweep */

static const int64_t sweep_sizes[] = {0, 1, 2, 15, 16, 17, 1023, 1025};
#define N_SWEEP (sizeof(sweep_sizes) / sizeof(sweep_sizes[0]))

/* For every (N, M) in sweep_sizes^2 and every reduction, asserts libkp equals
 * the dense reference on the given axis and dtype; empty reduced axes give
 * Sum 0, LogSumExp -inf, SumSoftMaxWeight NaN, Min +inf / Max -inf with index
 * -1, and K > reduced size is KP_ERR_ARGUMENT (K = 3). `empty` selects the
 * pairs with N == 0 or M == 0 (their own tests, so a crash there does not hide
 * the other sizes). */
static void sweep(kp_dtype dt, int axis, int empty) {
    static const red_form smooth[] = {
        {"Sum_Reduction(Exp(-SqDist(x,y))*b, %d)", KP_RED_SUM, 0},
        {"LogSumExp_Reduction(b - SqDist(x,y)*2, %d)", KP_RED_LOGSUMEXP, 0},
        {"SumSoftMaxWeight_Reduction(-SqDist(x,y)*2, %d, b)", KP_RED_SUMSOFTMAXWEIGHT, 0},
    };
    static const red_form mins[] = {
        {"Min_Reduction(SqDist(u,v), %d)", KP_RED_MIN, 0},
        {"Max_Reduction(SqDist(u,v), %d)", KP_RED_MAX, 0},
        {"ArgMin_Reduction(SqDist(u,v), %d)", KP_RED_ARGMIN, 0},
        {"ArgMax_Reduction(SqDist(u,v), %d)", KP_RED_ARGMAX, 0},
        {"Min_ArgMin_Reduction(SqDist(u,v), %d)", KP_RED_MIN_ARGMIN, 0},
        {"Max_ArgMax_Reduction(SqDist(u,v), %d)", KP_RED_MAX_ARGMAX, 0},
        {"KMin_Reduction(SqDist(u,v), 3, %d)", KP_RED_KMIN, 3},
        {"ArgKMin_Reduction(SqDist(u,v), 3, %d)", KP_RED_ARGKMIN, 3},
        {"KMin_ArgKMin_Reduction(SqDist(u,v), 3, %d)", KP_RED_KMIN_ARGKMIN, 3},
    };
    const char *al_s[] = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"};
    const char *al_m[] = {"u = Vi(2)", "v = Vj(2)"};
    kp_context *ctx = NULL;
    size_t bad = 0, runs = 0;
    kpt_rng rng;
    kpt_rng_seed(&rng, 42u + (uint64_t)axis * 7u + (uint64_t)dt);
    assert_int_equal(kpt_context_new(&ctx), KP_OK);

    for (size_t a = 0; a < N_SWEEP; a++)
        for (size_t c = 0; c < N_SWEEP; c++) {
            int64_t N = sweep_sizes[a], M = sweep_sizes[c];
            if ((N == 0 || M == 0) != (empty != 0)) continue;
            size_t nn = (size_t)N, mm = (size_t)M;
            double *x = xmalloc(2 * nn), *y = xmalloc(2 * mm), *b = xmalloc(mm);
            double *u = xmalloc(2 * nn), *v = xmalloc(2 * mm);
            double *Fs = xmalloc(nn * mm), *Fl = xmalloc(nn * mm), *Fw = xmalloc(nn * mm);
            double *Fm = xmalloc(nn * mm), *Gb = xmalloc(nn * mm);
            kpt_fill_uniform(&rng, x, 2 * nn, -1, 1);
            kpt_fill_uniform(&rng, y, 2 * mm, -1, 1);
            kpt_fill_uniform(&rng, b, mm, -1, 1);
            kpt_fill_int(&rng, u, 2 * nn, -4, 4);
            kpt_fill_int(&rng, v, 2 * mm, -4, 4);
            kpt_round_to_dtype(x, 2 * nn, dt);
            kpt_round_to_dtype(y, 2 * mm, dt);
            kpt_round_to_dtype(b, mm, dt);
            for (size_t i = 0; i < nn; i++)
                for (size_t j = 0; j < mm; j++) {
                    double d2 = sqdist(x + 2 * i, y + 2 * j, 2);
                    Fs[i * mm + j] = exp(-d2) * b[j];
                    Fl[i * mm + j] = b[j] - d2 * 2;
                    Fw[i * mm + j] = -d2 * 2;
                    Gb[i * mm + j] = b[j];
                    Fm[i * mm + j] = sqdist(u + 2 * i, v + 2 * j, 2);
                }
            kpt_arg as[3] = {{x, N, 2}, {y, M, 2}, {b, M, 1}};
            kpt_arg am[2] = {{u, N, 2}, {v, M, 2}};
            char text[160];
            for (size_t k = 0; k < 3; k++) {
                snprintf(text, sizeof text, smooth[k].fmt, axis);
                red_run q = {"sweep", ctx, (runs++ % 2) ? KPT_VIA_PLAN : KPT_VIA_REDUCE, text,
                             al_s, 3, dt, as, 3, smooth[k].red, 0, axis,
                             k == 0 ? Fs : (k == 1 ? Fl : Fw), Gb, N, M, 1, 1, 0};
                bad += run_check(&q);
            }
            for (size_t k = 0; k < sizeof mins / sizeof mins[0]; k++) {
                snprintf(text, sizeof text, mins[k].fmt, axis);
                red_run q = {"sweep", ctx, (runs++ % 2) ? KPT_VIA_PLAN : KPT_VIA_REDUCE, text,
                             al_m, 2, dt, am, 2, mins[k].red, mins[k].K, axis, Fm, NULL, N, M,
                             1, 1, 0};
                bad += run_check(&q);
            }
            free(x), free(y), free(b), free(u), free(v);
            free(Fs), free(Fl), free(Fw), free(Fm), free(Gb);
        }
    kp_context_free(ctx);
    assert_int_equal(bad, 0);
}

static void test_sweep_f64_axis1(void **s) { (void)s; sweep(KP_FLOAT64, 1, 0); }
static void test_sweep_f64_axis0(void **s) { (void)s; sweep(KP_FLOAT64, 0, 0); }
static void test_sweep_f32_axis1(void **s) { (void)s; sweep(KP_FLOAT32, 1, 0); }
static void test_sweep_f32_axis0(void **s) { (void)s; sweep(KP_FLOAT32, 0, 0); }
static void test_sweep_empty_f64_axis1(void **s) { (void)s; sweep(KP_FLOAT64, 1, 1); }
static void test_sweep_empty_f64_axis0(void **s) { (void)s; sweep(KP_FLOAT64, 0, 1); }
static void test_sweep_empty_f32_axis1(void **s) { (void)s; sweep(KP_FLOAT32, 1, 1); }
static void test_sweep_empty_f32_axis0(void **s) { (void)s; sweep(KP_FLOAT32, 0, 1); }

/* ================================================================ vector-valued F */

/* Dim-3 F on N = 33, M = 47, both axes and dtypes: Sum (weights of dim 3),
 * LogSumExp elementwise, SumSoftMaxWeight with a dim-3 G, and the Min family
 * and KMin (K = 4, layout out[row, k*3 + d]) elementwise on integer data with
 * many ties. Asserts agreement with the dense reference. */
static void test_vector_valued(void **s) {
    (void)s;
    const int64_t N = 33, M = 47;
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "w = Vj(3)"};
    const char *alm[] = {"u = Vi(3)", "v = Vj(3)"};
    static const red_form smooth[] = {
        {"Sum_Reduction(Exp(-SqDist(x,y))*w, %d)", KP_RED_SUM, 0},
        {"LogSumExp_Reduction(x*y, %d)", KP_RED_LOGSUMEXP, 0},
        {"SumSoftMaxWeight_Reduction(-SqDist(x,y), %d, w)", KP_RED_SUMSOFTMAXWEIGHT, 0},
    };
    static const red_form mins[] = {
        {"Min_Reduction(Square(u-v), %d)", KP_RED_MIN, 0},
        {"Max_Reduction(Square(u-v), %d)", KP_RED_MAX, 0},
        {"ArgMin_Reduction(Square(u-v), %d)", KP_RED_ARGMIN, 0},
        {"ArgMax_Reduction(Square(u-v), %d)", KP_RED_ARGMAX, 0},
        {"Min_ArgMin_Reduction(Square(u-v), %d)", KP_RED_MIN_ARGMIN, 0},
        {"Max_ArgMax_Reduction(Square(u-v), %d)", KP_RED_MAX_ARGMAX, 0},
        {"KMin_Reduction(Square(u-v), 4, %d)", KP_RED_KMIN, 4},
        {"ArgKMin_Reduction(Square(u-v), 4, %d)", KP_RED_ARGKMIN, 4},
        {"KMin_ArgKMin_Reduction(Square(u-v), 4, %d)", KP_RED_KMIN_ARGKMIN, 4},
    };
    size_t bad = 0;
    kp_context *ctx = NULL;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    for (int dti = 0; dti < 2; dti++) {
        kp_dtype dt = dti ? KP_FLOAT32 : KP_FLOAT64;
        kpt_rng rng;
        kpt_rng_seed(&rng, 7);
        double *x = xmalloc(3 * 33), *y = xmalloc(3 * 47), *w = xmalloc(3 * 47);
        double *u = xmalloc(3 * 33), *v = xmalloc(3 * 47);
        double *Fs = xmalloc(33 * 47 * 3), *Fl = xmalloc(33 * 47 * 3), *Fw = xmalloc(33 * 47);
        double *G = xmalloc(33 * 47 * 3), *Fm = xmalloc(33 * 47 * 3);
        kpt_fill_uniform(&rng, x, 99, -1, 1);
        kpt_fill_uniform(&rng, y, 141, -1, 1);
        kpt_fill_uniform(&rng, w, 141, -1, 1);
        kpt_fill_int(&rng, u, 99, -2, 2);
        kpt_fill_int(&rng, v, 141, -2, 2);
        kpt_round_to_dtype(x, 99, dt);
        kpt_round_to_dtype(y, 141, dt);
        kpt_round_to_dtype(w, 141, dt);
        for (int i = 0; i < 33; i++)
            for (int j = 0; j < 47; j++) {
                double d2 = sqdist(x + 3 * i, y + 3 * j, 3);
                Fw[i * 47 + j] = -d2;
                for (int d = 0; d < 3; d++) {
                    int e = (i * 47 + j) * 3 + d;
                    Fs[e] = exp(-d2) * w[3 * j + d];
                    Fl[e] = x[3 * i + d] * y[3 * j + d];
                    G[e] = w[3 * j + d];
                    Fm[e] = (u[3 * i + d] - v[3 * j + d]) * (u[3 * i + d] - v[3 * j + d]);
                }
            }
        kpt_arg as[3] = {{x, N, 3}, {y, M, 3}, {w, M, 3}};
        kpt_arg am[2] = {{u, N, 3}, {v, M, 3}};
        char text[160];
        for (int axis = 0; axis < 2; axis++) {
            for (size_t k = 0; k < 3; k++) {
                snprintf(text, sizeof text, smooth[k].fmt, axis);
                const double *F = k == 0 ? Fs : (k == 1 ? Fl : Fw);
                red_run q = {"vector", ctx, KPT_VIA_PLAN, text, al, 3, dt, as, 3,
                             smooth[k].red, 0, axis, F, G, N, M, k == 2 ? 1 : 3, 3, 0};
                bad += run_check(&q);
            }
            for (size_t k = 0; k < sizeof mins / sizeof mins[0]; k++) {
                snprintf(text, sizeof text, mins[k].fmt, axis);
                red_run q = {"vector", ctx, KPT_VIA_REDUCE, text, alm, 2, dt, am, 2,
                             mins[k].red, mins[k].K, axis, Fm, NULL, N, M, 3, 1, 0};
                bad += run_check(&q);
            }
        }
        free(x), free(y), free(w), free(u), free(v);
        free(Fs), free(Fl), free(Fw), free(G), free(Fm);
    }
    kp_context_free(ctx);
    assert_int_equal(bad, 0);
}

/* ================================================================ ties */

/* Duplicate points with non-integer coordinates: y_3 = y_16 = y_1024 = P and
 * x_i = P for i = 0, 4, 8, ... . Asserts that ArgMin / Min_ArgMin / ArgKMin
 * (K = 3) return the smallest indices among the exact ties: on axis 1, rows
 * i % 4 == 0 get 3 then 16 then 1024; on axis 0, rows 3, 16, 1024 get 0, 4, 8.
 * Max_ArgMax of -SqDist ties the same way. Both dtypes. */
static void test_ties_duplicate_points(void **s) {
    (void)s;
    const int64_t N = 40, M = 1025;
    const char *al[] = {"x = Vi(3)", "y = Vj(3)"};
    size_t bad = 0;
    kp_context *ctx = NULL;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    for (int dti = 0; dti < 2; dti++) {
        kp_dtype dt = dti ? KP_FLOAT32 : KP_FLOAT64;
        kpt_rng rng;
        kpt_rng_seed(&rng, 99);
        double *x = xmalloc(3 * 40), *y = xmalloc(3 * 1025);
        kpt_fill_uniform(&rng, x, 120, -1, 1);
        kpt_fill_uniform(&rng, y, 3 * 1025, -1, 1);
        const double P[3] = {0.3141592653589793, -0.2718281828459045, 0.1414213562373095};
        for (int d = 0; d < 3; d++) {
            y[3 * 3 + d] = y[3 * 16 + d] = y[3 * 1024 + d] = P[d];
            for (int i = 0; i < 40; i += 4) x[3 * i + d] = P[d];
        }
        kpt_round_to_dtype(x, 120, dt);
        kpt_round_to_dtype(y, 3 * 1025, dt);
        kpt_arg args[2] = {{x, N, 3}, {y, M, 3}};
        for (int axis = 0; axis < 2; axis++) {
            int64_t rows = axis ? N : M;
            static const char *fmts[] = {"ArgMin_Reduction(SqDist(x,y), %d)",
                                         "Min_ArgMin_Reduction(SqDist(x,y), %d)",
                                         "Max_ArgMax_Reduction(-SqDist(x,y), %d)",
                                         "ArgKMin_Reduction(SqDist(x,y), 3, %d)",
                                         "KMin_ArgKMin_Reduction(SqDist(x,y), 3, %d)"};
            static const int idim[] = {1, 1, 1, 3, 3}, odim[] = {0, 1, 1, 0, 3};
            for (int f = 0; f < 5; f++) {
                char text[128];
                snprintf(text, sizeof text, fmts[f], axis);
                double *out = xmalloc((size_t)(rows * 3));
                int64_t *idx = calloc((size_t)(rows * 3), sizeof(int64_t));
                kp_status st = kpt_run(ctx, KPT_VIA_PLAN, text, al, 2, dt, args, 2, rows,
                                       odim[f], odim[f] ? out : NULL, idim[f], idx, NULL);
                if (st != KP_OK) {
                    fprintf(stderr, "  [ties %s] status %d: %s\n", text, (int)st,
                            kp_context_message(ctx));
                    bad++;
                }
                for (int64_t row = 0; row < rows && st == KP_OK; row++) {
                    int64_t expect[3];
                    if (axis == 1 && row % 4 == 0) {
                        expect[0] = 3, expect[1] = 16, expect[2] = 1024;
                    } else if (axis == 0 && (row == 3 || row == 16 || row == 1024)) {
                        expect[0] = 0, expect[1] = 4, expect[2] = 8;
                    } else
                        continue;
                    for (int k = 0; k < idim[f]; k++) {
                        if (idx[row * idim[f] + k] != expect[k]) {
                            fprintf(stderr, "  [ties %s %s] row %lld k %d: got %lld want %lld\n",
                                    text, kpt_dtype_name(dt), (long long)row, k,
                                    (long long)idx[row * idim[f] + k], (long long)expect[k]);
                            bad++;
                        }
                        if (odim[f] && out[row * odim[f] + k] != 0.0) {
                            fprintf(stderr, "  [ties %s] row %lld value %g != 0\n", text,
                                    (long long)row, out[row * odim[f] + k]);
                            bad++;
                        }
                    }
                }
                free(out);
                free(idx);
            }
        }
        free(x);
        free(y);
    }
    kp_context_free(ctx);
    assert_int_equal(bad, 0);
}

/* ================================================================ NaN / Inf */

/* F = x*b (Sum, LogSumExp, SumSoftMaxWeight with G = b) and F = u + c (Min
 * family, integer data) with NaN / +-Inf planted in the j-variable. Asserts:
 * NaN propagates in Sum, LogSumExp and SumSoftMaxWeight; +Inf gives +Inf,
 * +Inf and -Inf give NaN; LogSumExp of all -Inf is -Inf and a single -Inf term
 * is ignored; Min/Max-type reductions select NaN (smallest index among NaNs)
 * and KMin lists NaNs first. Both axes, both dtypes. */
static void test_nan_inf(void **s) {
    (void)s;
    enum { N = 20, M = 37 };
    const char *al[] = {"x = Vi(1)", "b = Vj(1)"};
    const char *alm[] = {"u = Vi(1)", "c = Vj(1)"};
    size_t bad = 0;
    kp_context *ctx = NULL;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    /* scenario: 0 NaN at 5, 1 +inf at 7, 2 +inf at 7 and -inf at 9, 3 all -inf,
     * 4 one -inf at 11; Min family: 5 NaN at 3 and 8, 6 -inf at 5 and 11, +inf at 6. */
    for (int sc = 0; sc < 7; sc++)
        for (int dti = 0; dti < 2; dti++) {
            kp_dtype dt = dti ? KP_FLOAT32 : KP_FLOAT64;
            kpt_rng rng;
            kpt_rng_seed(&rng, (uint64_t)(100 + sc));
            double x[N], b[M], F[N * M], G[N * M];
            if (sc < 5) {
                kpt_fill_uniform(&rng, x, N, 0.5, 1.5);
                kpt_fill_uniform(&rng, b, M, -2, 2);
            } else {
                kpt_fill_int(&rng, x, N, -5, 5);
                kpt_fill_int(&rng, b, M, -5, 5);
            }
            switch (sc) {
            case 0: b[5] = NAN; break;
            case 1: b[7] = INFINITY; break;
            case 2: b[7] = INFINITY, b[9] = -INFINITY; break;
            case 3:
                for (int j = 0; j < M; j++) b[j] = -INFINITY;
                break;
            case 4: b[11] = -INFINITY; break;
            case 5: b[3] = NAN, b[8] = NAN; break;
            default: b[5] = -INFINITY, b[11] = -INFINITY, b[6] = INFINITY; break;
            }
            kpt_round_to_dtype(x, N, dt);
            kpt_round_to_dtype(b, M, dt);
            for (int i = 0; i < N; i++)
                for (int j = 0; j < M; j++) {
                    F[i * M + j] = sc < 5 ? x[i] * b[j] : x[i] + b[j];
                    G[i * M + j] = b[j];
                }
            kpt_arg args[2] = {{x, N, 1}, {b, M, 1}};
            for (int axis = 0; axis < 2; axis++) {
                char text[128];
                if (sc < 5) {
                    static const red_form f[] = {
                        {"Sum_Reduction(x*b, %d)", KP_RED_SUM, 0},
                        {"LogSumExp_Reduction(x*b, %d)", KP_RED_LOGSUMEXP, 0}};
                    for (int k = 0; k < 2; k++) {
                        snprintf(text, sizeof text, f[k].fmt, axis);
                        red_run q = {"naninf", ctx, KPT_VIA_PLAN, text, al, 2, dt, args, 2,
                                     f[k].red, 0, axis, F, NULL, N, M, 1, 1, 0};
                        bad += run_check(&q);
                    }
                    if (sc == 0) { /* NaN in the weights of SumSoftMaxWeight */
                        snprintf(text, sizeof text, "SumSoftMaxWeight_Reduction(-x, %d, b)",
                                 axis);
                        double Fx[N * M];
                        for (int e = 0; e < N * M; e++) Fx[e] = -x[e / M];
                        red_run q = {"naninf", ctx, KPT_VIA_PLAN, text, al, 2, dt, args, 2,
                                     KP_RED_SUMSOFTMAXWEIGHT, 0, axis, Fx, G, N, M, 1, 1, 0};
                        bad += run_check(&q);
                    }
                } else {
                    static const red_form f[] = {
                        {"Min_ArgMin_Reduction(u + c, %d)", KP_RED_MIN_ARGMIN, 0},
                        {"Max_ArgMax_Reduction(u + c, %d)", KP_RED_MAX_ARGMAX, 0},
                        {"Min_Reduction(u + c, %d)", KP_RED_MIN, 0},
                        {"ArgMax_Reduction(u + c, %d)", KP_RED_ARGMAX, 0},
                        {"KMin_ArgKMin_Reduction(u + c, 4, %d)", KP_RED_KMIN_ARGKMIN, 4}};
                    for (int k = 0; k < 5; k++) {
                        snprintf(text, sizeof text, f[k].fmt, axis);
                        red_run q = {"naninf", ctx, KPT_VIA_REDUCE, text, alm, 2, dt, args, 2,
                                     f[k].red, f[k].K, axis, F, NULL, N, M, 1, 1, 0};
                        bad += run_check(&q);
                    }
                }
            }
        }
    kp_context_free(ctx);
    assert_int_equal(bad, 0);
}

/* ================================================================ long K-lists */

/* The K-list filters of the CPU engine (a whole tile's bound before its list
 * is full, then the worst kept value per block) and its branch-free insertion
 * must give exactly the dense reference's entries. F = u + c on integers
 * (exact in float32): a wide range (few candidates per block, as a
 * nearest-neighbour search has) and a narrow one (ties everywhere, smallest
 * index first), with NaN and +-inf planted in some rows of c, on rows shorter
 * than, equal to and longer than a tile (512 float32, 256 float64 lanes) and
 * not multiples of the 16-lane stripes; K = 1 (Min/Max), 3, 8 (the largest K
 * with a tile bound), 9 and 17 (past the branch-free insertion). Both axes,
 * both dtypes. */
static void test_select_long_rows(void **s) {
    (void)s;
    static const int64_t sizes[][2] = {{3, 16}, {4, 47}, {5, 300}, {3, 700}, {2, 1100}};
    static const red_form f[] = {{"Min_ArgMin_Reduction(u + c, %d)", KP_RED_MIN_ARGMIN, 0},
                                 {"Max_ArgMax_Reduction(u + c, %d)", KP_RED_MAX_ARGMAX, 0},
                                 {"KMin_ArgKMin_Reduction(u + c, 3, %d)", KP_RED_KMIN_ARGKMIN, 3},
                                 {"KMin_ArgKMin_Reduction(u + c, 8, %d)", KP_RED_KMIN_ARGKMIN, 8},
                                 {"ArgKMin_Reduction(u + c, 8, %d)", KP_RED_ARGKMIN, 8},
                                 {"KMin_ArgKMin_Reduction(u + c, 9, %d)", KP_RED_KMIN_ARGKMIN, 9},
                                 {"KMin_ArgKMin_Reduction(u + c, 17, %d)", KP_RED_KMIN_ARGKMIN, 17}};
    const char *alm[] = {"u = Vi(1)", "c = Vj(1)"};
    size_t bad = 0;
    kp_context *ctx = NULL;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++)
        for (int sc = 0; sc < 4; sc++) /* 0 wide, 1 narrow, 2 wide + NaN, 3 narrow + inf */
            for (int dti = 0; dti < 2; dti++)
                for (int axis = 0; axis < 2; axis++) {
                    kp_dtype dt = dti ? KP_FLOAT32 : KP_FLOAT64;
                    int64_t N = axis == 1 ? sizes[z][0] : sizes[z][1], M = axis == 1 ? sizes[z][1] : sizes[z][0];
                    int64_t L = axis == 1 ? M : N; /* the reduced length */
                    double *u = malloc((size_t)N * sizeof *u), *c = malloc((size_t)M * sizeof *c);
                    double *F = malloc((size_t)(N * M) * sizeof *F);
                    assert_non_null(u), assert_non_null(c), assert_non_null(F);
                    kpt_rng rng;
                    kpt_rng_seed(&rng, 700 + 10 * (uint64_t)z + (uint64_t)sc);
                    int wide = sc % 2 == 0;
                    kpt_fill_int(&rng, u, (size_t)N, wide ? -1000 : -2, wide ? 1000 : 2);
                    kpt_fill_int(&rng, c, (size_t)M, wide ? -1000000 : -3, wide ? 1000000 : 3);
                    double *red_side = axis == 1 ? c : u;
                    if (sc == 2)
                        for (int64_t k = L / 3; k < L; k += L / 3 + 1) red_side[k] = NAN;
                    if (sc == 3)
                        for (int64_t k = 1; k < L; k += 37) red_side[k] = (k / 37) % 2 ? INFINITY : -INFINITY;
                    for (int64_t i = 0; i < N; i++)
                        for (int64_t j = 0; j < M; j++) F[i * M + j] = u[i] + c[j];
                    kpt_arg args[2] = {{u, N, 1}, {c, M, 1}};
                    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
                        if (f[k].K > L) continue;
                        char text[96];
                        snprintf(text, sizeof text, f[k].fmt, axis);
                        red_run q = {"select-long", ctx, KPT_VIA_REDUCE, text, alm, 2, dt, args, 2,
                                     f[k].red, f[k].K, axis, F, NULL, N, M, 1, 1, 0};
                        bad += run_check(&q);
                    }
                    free(u), free(c), free(F);
                }
    kp_context_free(ctx);
    assert_int_equal(bad, 0);
}

/* ================================================================ LSE stability */

/* LogSumExp of F = x + y and F = -(x + y) with x ~ 1e4: a naive exp overflows
 * or underflows. Asserts |got - ref| <= rtol * (max|F| + 1) with rtol 1e-6
 * (float32, a few ulp of 1e4) and 1e-14 (float64), on both axes. */
static void test_logsumexp_stable(void **s) {
    (void)s;
    enum { N = 10, M = 300 };
    const char *al[] = {"x = Vi(1)", "y = Vj(1)"};
    size_t bad = 0;
    kp_context *ctx = NULL;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    for (int sign = 0; sign < 2; sign++)
        for (int dti = 0; dti < 2; dti++) {
            kp_dtype dt = dti ? KP_FLOAT32 : KP_FLOAT64;
            kpt_rng rng;
            kpt_rng_seed(&rng, 5);
            double x[N], y[M], F[N * M];
            kpt_fill_uniform(&rng, x, N, 1e4, 1e4 + 1);
            kpt_fill_uniform(&rng, y, M, -3, 3);
            kpt_round_to_dtype(x, N, dt);
            kpt_round_to_dtype(y, M, dt);
            for (int i = 0; i < N; i++)
                for (int j = 0; j < M; j++) F[i * M + j] = sign ? -(x[i] + y[j]) : x[i] + y[j];
            kpt_arg args[2] = {{x, N, 1}, {y, M, 1}};
            for (int axis = 0; axis < 2; axis++) {
                char text[96];
                snprintf(text, sizeof text, sign ? "LogSumExp_Reduction(-(x + y), %d)"
                                                 : "LogSumExp_Reduction(x + y, %d)",
                         axis);
                red_run q = {"lse-stable", ctx, KPT_VIA_PLAN, text, al, 2, dt, args, 2,
                             KP_RED_LOGSUMEXP, 0, axis, F, NULL, N, M, 1, 1,
                             dt == KP_FLOAT32 ? 1e-6 : 1e-14};
                bad += run_check(&q);
            }
        }
    kp_context_free(ctx);
    assert_int_equal(bad, 0);
}

/* ================================================================ strided */

/* Copies src (rows x dim) into a fresh NaN-filled buffer of `len` elements of
 * dtype at offset + r*rs + c*cs and returns a descriptor of that view. NaN
 * padding makes any read outside the view poison the result. */
static kp_array strided_view(const double *src, int64_t rows, int64_t dim, int64_t rs,
                             int64_t cs, int64_t off, size_t len, kp_dtype dt, void **buf) {
    double *tmp = xmalloc(len);
    for (size_t k = 0; k < len; k++) tmp[k] = NAN;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < dim; c++) tmp[off + r * rs + c * cs] = src[r * dim + c];
    *buf = kpt_to_dtype(tmp, len, dt);
    free(tmp);
    kp_array a = kp_array_2d(NULL, dt, rows, dim);
    a.data = (char *)*buf + (size_t)off * kpt_dtype_size(dt);
    a.strides[0] = rs;
    a.strides[1] = cs;
    return a;
}

/* Gaussian Sum_Reduction(Exp(-SqDist(x,y)*s)*b, axis) and
 * Min_ArgMin_Reduction(SqDist(u,v), axis) with x = every other row of a
 * (2N, 3) matrix, y = columns 1..3 of a (M, 5) matrix, b stored column-major
 * in a (M, 2) buffer (stride (1, M)), and the output written with row stride 4
 * into a wider buffer. Asserts values match the dense reference and that the
 * output padding is left untouched. */
static void test_strided(void **s) {
    (void)s;
    enum { N = 37, M = 53 };
    size_t bad = 0;
    kp_context *ctx = NULL;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    for (int dti = 0; dti < 2; dti++) {
        kp_dtype dt = dti ? KP_FLOAT32 : KP_FLOAT64;
        size_t es = kpt_dtype_size(dt);
        kpt_rng rng;
        kpt_rng_seed(&rng, 11);
        double x[N * 3], y[M * 3], b[M], sp = 0.7, u[N * 3], v[M * 3];
        kpt_fill_uniform(&rng, x, N * 3, -1, 1);
        kpt_fill_uniform(&rng, y, M * 3, -1, 1);
        kpt_fill_uniform(&rng, b, M, -1, 1);
        kpt_fill_int(&rng, u, N * 3, -3, 3);
        kpt_fill_int(&rng, v, M * 3, -3, 3);
        kpt_round_to_dtype(x, N * 3, dt);
        kpt_round_to_dtype(y, M * 3, dt);
        kpt_round_to_dtype(b, M, dt);
        kpt_round_to_dtype(&sp, 1, dt);
        for (int axis = 0; axis < 2; axis++) {
            int64_t rows = axis ? N : M;
            void *bx, *by, *bb, *bu, *bv, *bs = kpt_to_dtype(&sp, 1, dt);
            kp_array args[4] = {
                strided_view(x, N, 3, 6, 1, 0, 2 * N * 3, dt, &bx),
                strided_view(y, M, 3, 5, 1, 1, M * 5, dt, &by),
                kp_array_1d(bs, dt, 1),
                strided_view(b, M, 1, 1, M, 0, 2 * M, dt, &bb),
            };
            kp_array margs[2] = {strided_view(u, N, 3, 6, 1, 3, 2 * N * 3, dt, &bu),
                                 strided_view(v, M, 3, 1, M, 0, 3 * M, dt, &bv)};
            /* output: rows x 1 with row stride 4; index: rows x 1 with row stride 3 */
            double *ob = xmalloc((size_t)rows * 4);
            for (int64_t k = 0; k < rows * 4; k++) ob[k] = -5.0;
            void *obuf = kpt_to_dtype(ob, (size_t)rows * 4, dt);
            int64_t *ibuf = calloc((size_t)rows * 3, sizeof(int64_t));
            for (int64_t k = 0; k < rows * 3; k++) ibuf[k] = -99;
            kp_array out = kp_array_2d((char *)obuf + es, dt, rows, 1);
            out.strides[0] = 4;
            kp_array oidx = kp_array_2d(ibuf, KP_INT64, rows, 1);
            oidx.strides[0] = 3;

            const char *al[] = {"x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(1)"};
            const char *alm[] = {"u = Vi(3)", "v = Vj(3)"};
            char text[128];
            snprintf(text, sizeof text, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, %d)", axis);
            kp_status st = kp_reduce(ctx, text, al, 4, dt, args, 4, &out, NULL);
            if (st != KP_OK) {
                fprintf(stderr, "  [strided %s] %s\n", text, kp_context_message(ctx));
                bad++;
            } else {
                double *F = xmalloc(N * M), *ref = xmalloc((size_t)rows), *sc = xmalloc((size_t)rows);
                double *got = xmalloc((size_t)rows * 4);
                int64_t dummy = 0;
                for (int i = 0; i < N; i++)
                    for (int j = 0; j < M; j++)
                        F[i * M + j] = exp(-sqdist(x + 3 * i, y + 3 * j, 3) * sp) * b[j];
                ref_reduce(KP_RED_SUM, 0, axis, F, NULL, N, M, 1, 1, ref, sc, &dummy);
                kpt_from_dtype(obuf, dt, (size_t)rows * 4, got);
                for (int64_t r = 0; r < rows; r++) {
                    double g = got[r * 4 + 1];
                    bad += kpt_check("strided sum", &g, &ref[r], &sc[r], 1,
                                     dt == KP_FLOAT32 ? 1e-5 : 1e-12, 1e-300);
                    for (int c = 0; c < 4; c++)
                        if (c != 1 && got[r * 4 + c] != -5.0) {
                            fprintf(stderr, "  [strided] output padding (%lld,%d) overwritten\n",
                                    (long long)r, c);
                            bad++;
                        }
                }
                free(F), free(ref), free(sc), free(got);
            }
            snprintf(text, sizeof text, "ArgMin_Reduction(SqDist(u,v), %d)", axis);
            st = kp_reduce(ctx, text, alm, 2, dt, margs, 2, NULL, &oidx);
            if (st != KP_OK) {
                fprintf(stderr, "  [strided %s] %s\n", text, kp_context_message(ctx));
                bad++;
            } else {
                double *F = xmalloc(N * M), *ref = xmalloc((size_t)rows), *sc = xmalloc((size_t)rows);
                int64_t *ri = calloc((size_t)rows, sizeof(int64_t));
                for (int i = 0; i < N; i++)
                    for (int j = 0; j < M; j++) F[i * M + j] = sqdist(u + 3 * i, v + 3 * j, 3);
                ref_reduce(KP_RED_ARGMIN, 0, axis, F, NULL, N, M, 1, 1, ref, sc, ri);
                for (int64_t r = 0; r < rows; r++) {
                    bad += kpt_check_index("strided argmin", &ibuf[r * 3], &ri[r], 1);
                    if (ibuf[r * 3 + 1] != -99 || ibuf[r * 3 + 2] != -99) {
                        fprintf(stderr, "  [strided] index padding of row %lld overwritten\n",
                                (long long)r);
                        bad++;
                    }
                }
                free(F), free(ref), free(sc), free(ri);
            }
            free(bx), free(by), free(bb), free(bs), free(bu), free(bv), free(ob), free(obuf);
            free(ibuf);
        }
    }
    kp_context_free(ctx);
    assert_int_equal(bad, 0);
}

/* ================================================================ batch */

/* Batched Gaussian: out (B1.., rows, 1) = Red Exp(-SqDist(x,y)*s)*b with
 * x (B, N, 3), y of batch extent 1 (1, M, 3) or broadcast by a 0 stride
 * (B, M, 3), s a per-batch parameter (B, 1), b (M, 1) without batch dims.
 * Also two batch dims (2, 3) with y (1, 3, M, 3) and s (2, 1, 1). Asserts each
 * batch equals the dense reference, both axes and dtypes. */
static void test_batch(void **s) {
    (void)s;
    enum { N = 20, M = 30 };
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(1)"};
    size_t bad = 0;
    kp_context *ctx = NULL;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    for (int variant = 0; variant < 3; variant++)
        for (int dti = 0; dti < 2; dti++)
            for (int axis = 0; axis < 2; axis++) {
                kp_dtype dt = dti ? KP_FLOAT32 : KP_FLOAT64;
                /* batch shape: variants 0,1: (3); variant 2: (2, 3) */
                int nb = variant == 2 ? 2 : 1;
                int64_t B1 = variant == 2 ? 2 : 3, B2 = variant == 2 ? 3 : 1, BT = B1 * B2;
                /* y batches: variant 0: 1 (extent 1); 1: stride 0; 2: (1, B2) */
                int64_t YB = variant == 2 ? B2 : 1;
                kpt_rng rng;
                kpt_rng_seed(&rng, (uint64_t)(300 + variant));
                double *x = xmalloc((size_t)(BT * N * 3)), *y = xmalloc((size_t)(YB * M * 3));
                double *sp = xmalloc((size_t)B1), b[M];
                kpt_fill_uniform(&rng, x, (size_t)(BT * N * 3), -1, 1);
                kpt_fill_uniform(&rng, y, (size_t)(YB * M * 3), -1, 1);
                kpt_fill_uniform(&rng, sp, (size_t)B1, 0.5, 2);
                kpt_fill_uniform(&rng, b, M, -1, 1);
                kpt_round_to_dtype(x, (size_t)(BT * N * 3), dt);
                kpt_round_to_dtype(y, (size_t)(YB * M * 3), dt);
                kpt_round_to_dtype(sp, (size_t)B1, dt);
                kpt_round_to_dtype(b, M, dt);
                void *bx = kpt_to_dtype(x, (size_t)(BT * N * 3), dt);
                void *by = kpt_to_dtype(y, (size_t)(YB * M * 3), dt);
                void *bs = kpt_to_dtype(sp, (size_t)B1, dt), *bb = kpt_to_dtype(b, M, dt);
                int64_t rows = axis ? N : M;
                void *bo = kpt_alloc_dtype((size_t)(BT * rows), dt);
                kp_array args[4], out;
                if (nb == 1) {
                    int64_t sx[3] = {BT, N, 3}, sy[3] = {1, M, 3}, ss[2] = {BT, 1}, so[3] = {BT, rows, 1};
                    args[0] = kp_array_nd(bx, dt, 3, sx);
                    args[1] = kp_array_nd(by, dt, 3, sy);
                    if (variant == 1) {
                        args[1].shape[0] = BT;
                        args[1].strides[0] = 0;
                    }
                    args[2] = kp_array_nd(bs, dt, 2, ss);
                    out = kp_array_nd(bo, dt, 3, so);
                } else {
                    int64_t sx[4] = {B1, B2, N, 3}, sy[4] = {1, B2, M, 3}, ss[3] = {B1, 1, 1},
                            so[4] = {B1, B2, rows, 1};
                    args[0] = kp_array_nd(bx, dt, 4, sx);
                    args[1] = kp_array_nd(by, dt, 4, sy);
                    args[2] = kp_array_nd(bs, dt, 3, ss);
                    out = kp_array_nd(bo, dt, 4, so);
                }
                args[3] = kp_array_2d(bb, dt, M, 1);
                char text[128];
                snprintf(text, sizeof text, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, %d)", axis);
                kp_status st = kp_reduce(ctx, text, al, 4, dt, args, 4, &out, NULL);
                if (st != KP_OK) {
                    fprintf(stderr, "  [batch variant %d axis %d %s] status %d: %s\n", variant,
                            axis, kpt_dtype_name(dt), (int)st, kp_context_message(ctx));
                    bad++;
                } else {
                    double *got = xmalloc((size_t)(BT * rows));
                    kpt_from_dtype(bo, dt, (size_t)(BT * rows), got);
                    for (int64_t bt = 0; bt < BT; bt++) {
                        int64_t b1 = bt / B2, b2 = bt % B2;
                        const double *xb = x + bt * N * 3;
                        const double *yb = y + (variant == 2 ? b2 : 0) * M * 3;
                        double sv = sp[variant == 2 ? b1 : bt];
                        for (int64_t r = 0; r < rows; r++) {
                            double ref = 0.0, sc = 0.0;
                            for (int64_t q = 0; q < (axis ? M : N); q++) {
                                int64_t i = axis ? r : q, j = axis ? q : r;
                                double f = exp(-sqdist(xb + 3 * i, yb + 3 * j, 3) * sv) * b[j];
                                ref += f;
                                sc += fabs(f);
                            }
                            char lab[96];
                            snprintf(lab, sizeof lab, "batch v%d axis %d %s b=%lld row %lld",
                                     variant, axis, kpt_dtype_name(dt), (long long)bt,
                                     (long long)r);
                            bad += kpt_check(lab, &got[bt * rows + r], &ref, &sc, 1,
                                             dt == KP_FLOAT32 ? 1e-5 : 1e-12, 1e-300);
                        }
                    }
                    free(got);
                }
                free(x), free(y), free(sp), free(bx), free(by), free(bs), free(bb), free(bo);
            }
    kp_context_free(ctx);
    assert_int_equal(bad, 0);
}

/* ================================================================ threads */

typedef struct thr_case {
    const char *text;
    int minfam; /* 1: aliases x, y only */
    int64_t N, M;
    int od, xd;
} thr_case;

/* Asserts results (values and indices) are bit-identical (memcmp) for 1, 2, 3
 * and 7 threads, set per call through kp_exec_options.num_threads and per
 * context through kp_context_set_num_threads; shapes include N small / M large
 * (split over j) and N large / M small. The 1-thread result is also checked
 * against the dense reference on its first rows, so a wrong-but-consistent
 * result still fails. float32 and float64. */
static void test_thread_identity(void **s) {
    (void)s;
    const int64_t BIG = kpt_skip_large() ? 30001 : 300001;
    const thr_case cases[] = {
        {"Sum_Reduction(Exp(-SqDist(x,y))*b, 1)", 0, 7, BIG, 1, 0},
        {"Sum_Reduction(Exp(-SqDist(x,y))*b, 1)", 0, 4001, 513, 1, 0},
        {"Sum_Reduction(Exp(-SqDist(x,y))*b, 0)", 0, BIG, 5, 1, 0},
        {"LogSumExp_Reduction(b - SqDist(x,y)*4, 1)", 0, 7, BIG, 1, 0},
        {"SumSoftMaxWeight_Reduction(-SqDist(x,y)*4, 1, b)", 0, 9, BIG, 1, 0},
        {"KMin_ArgKMin_Reduction(SqDist(x,y), 5, 1)", 1, 7, BIG, 5, 5},
        {"Min_ArgMin_Reduction(SqDist(x,y), 0)", 1, BIG, 5, 1, 1},
    };
    static const kp_reduction reds[] = {KP_RED_SUM, KP_RED_SUM, KP_RED_SUM,
                                        KP_RED_LOGSUMEXP, KP_RED_SUMSOFTMAXWEIGHT,
                                        KP_RED_KMIN_ARGKMIN, KP_RED_MIN_ARGMIN};
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "b = Vj(1)"};
    static const int threads[] = {1, 2, 3, 7};
    size_t bad = 0;
    for (int dti = 0; dti < 2; dti++) {
        kp_dtype dt = dti ? KP_FLOAT32 : KP_FLOAT64;
        size_t es = kpt_dtype_size(dt);
        kpt_rng rng;
        kpt_rng_seed(&rng, 1234);
        size_t nmax = (size_t)BIG;
        double *xd = xmalloc(3 * nmax), *yd = xmalloc(3 * nmax), *bd = xmalloc(nmax);
        kpt_fill_uniform(&rng, xd, 3 * nmax, -1, 1);
        kpt_fill_uniform(&rng, yd, 3 * nmax, -1, 1);
        kpt_fill_uniform(&rng, bd, nmax, -1, 1);
        kpt_round_to_dtype(xd, 3 * nmax, dt);
        kpt_round_to_dtype(yd, 3 * nmax, dt);
        kpt_round_to_dtype(bd, nmax, dt);
        void *xb = kpt_to_dtype(xd, 3 * nmax, dt), *yb = kpt_to_dtype(yd, 3 * nmax, dt);
        void *bb = kpt_to_dtype(bd, nmax, dt);
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            const thr_case *tc = &cases[c];
            kp_context *ctx = NULL;
            kp_formula *f = NULL;
            kp_plan *plan = NULL;
            assert_int_equal(kpt_context_new(&ctx), KP_OK);
            KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, tc->text, al, tc->minfam ? 2 : 3, &f));
            KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, dt, &plan));
            int axis = kp_formula_axis(f);
            int64_t rows = axis ? tc->N : tc->M;
            kp_array args[3] = {kp_array_2d(xb, dt, tc->N, 3), kp_array_2d(yb, dt, tc->M, 3),
                                kp_array_2d(bb, dt, tc->M, 1)};
            size_t ob = (size_t)(rows * tc->od) * es, ib = (size_t)(rows * tc->xd) * sizeof(int64_t);
            char *o1 = calloc(ob + 1, 1), *o2 = calloc(ob + 1, 1);
            int64_t *i1 = calloc(ib / 8 + 1, 8), *i2 = calloc(ib / 8 + 1, 8);
            for (int mode = 0; mode < 2; mode++)
                for (int t = 0; t < 4; t++) {
                    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
                    const kp_exec_options *po = &opt;
                    if (mode == 0)
                        opt.num_threads = threads[t];
                    else {
                        KPT_ASSERT_OK(ctx, kp_context_set_num_threads(ctx, threads[t]));
                        po = NULL;
                    }
                    int first = mode == 0 && t == 0;
                    kp_array out = kp_array_2d(first ? o1 : o2, dt, rows, tc->od);
                    kp_array oi = kp_array_2d(first ? i1 : i2, KP_INT64, rows, tc->xd);
                    KPT_ASSERT_OK(ctx, kp_plan_exec(plan, args, tc->minfam ? 2 : 3, &out,
                                                    tc->xd ? &oi : NULL, po));
                    if (!first && (memcmp(o1, o2, ob) != 0 || memcmp(i1, i2, ib) != 0)) {
                        fprintf(stderr, "  [threads %s %s] %s=%d differs from 1 thread\n",
                                tc->text, kpt_dtype_name(dt), mode ? "context" : "options",
                                threads[t]);
                        bad++;
                    }
                }
            /* the 1-thread result against the dense reference, first rows */
            int64_t nr = rows < 3 ? rows : 3;
            int64_t R = axis ? tc->M : tc->N;
            double *F = xmalloc((size_t)(nr * R)), *G = xmalloc((size_t)(nr * R));
            for (int64_t r = 0; r < nr; r++)
                for (int64_t q = 0; q < R; q++) {
                    int64_t i = axis ? r : q, j = axis ? q : r;
                    double d2 = sqdist(xd + 3 * i, yd + 3 * j, 3), v;
                    if (reds[c] == KP_RED_SUM)
                        v = exp(-d2) * bd[j];
                    else if (reds[c] == KP_RED_LOGSUMEXP)
                        v = bd[j] - d2 * 4;
                    else if (reds[c] == KP_RED_SUMSOFTMAXWEIGHT)
                        v = -d2 * 4;
                    else
                        v = d2;
                    /* stored as an (nr x R) axis-1 problem */
                    F[r * R + q] = v;
                    G[r * R + q] = bd[j];
                }
            double *ref = xmalloc((size_t)(nr * tc->od)), *sc = xmalloc((size_t)(nr * tc->od));
            int64_t *ri = calloc((size_t)(nr * tc->xd) + 1, sizeof(int64_t));
            double *got = xmalloc((size_t)(nr * tc->od));
            ref_reduce(reds[c], tc->xd > 1 ? 5 : 1, 1, F, G, nr, R, 1, 1, ref, sc, ri);
            kpt_from_dtype(o1, dt, (size_t)(nr * tc->od), got);
            bad += kpt_check(tc->text, got, ref, sc, (size_t)(nr * tc->od),
                             dt == KP_FLOAT32 ? 3e-5 : 1e-12, 1e-300);
            if (tc->xd) bad += kpt_check_index(tc->text, i1, ri, (size_t)(nr * tc->xd));
            free(F), free(G), free(ref), free(sc), free(ri), free(got);
            free(o1), free(o2), free(i1), free(i2);
            kp_plan_free(plan);
            kp_formula_free(f);
            kp_context_free(ctx);
        }
        free(xd), free(yd), free(bd), free(xb), free(yb), free(bb);
    }
    assert_int_equal(bad, 0);
}

/* ================================================================ large */

/* float32 Sum_Reduction(Exp(-Square(x - y)) * b, 1) with N = 2, M = 10^7,
 * positive terms. Asserts relative error vs the float64 sum of the same
 * float32 inputs < 2e-6 for the default scheme, KP_SUM_BLOCK and KP_SUM_KAHAN,
 * and < 2e-3 for KP_SUM_PLAIN (its documented worst case ~ M/512 ulp). */
static void test_large_sum_accuracy(void **s) {
    (void)s;
    if (kpt_skip_large()) skip();
    const int64_t M = 10000000;
    float x[2] = {0.3f, -1.2f};
    float *y = malloc((size_t)M * sizeof(float)), *b = malloc((size_t)M * sizeof(float));
    assert_non_null(y);
    assert_non_null(b);
    kpt_rng rng;
    kpt_rng_seed(&rng, 2024);
    for (int64_t j = 0; j < M; j++) {
        y[j] = (float)kpt_rng_uniform(&rng, -3, 3);
        b[j] = (float)kpt_rng_uniform(&rng, 0, 1);
    }
    double ref[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        double acc = 0.0;
        for (int64_t j = 0; j < M; j++) {
            double d = (double)x[i] - (double)y[j];
            acc += exp(-d * d) * (double)b[j];
        }
        ref[i] = acc;
    }
    const char *al[] = {"x = Vi(1)", "y = Vj(1)", "b = Vj(1)"};
    kp_array args[3] = {kp_array_2d(x, KP_FLOAT32, 2, 1), kp_array_2d(y, KP_FLOAT32, M, 1),
                        kp_array_2d(b, KP_FLOAT32, M, 1)};
    static const char *names[] = {"default", "BLOCK", "KAHAN", "PLAIN"};
    static const double tols[] = {2e-6, 2e-6, 2e-6, 2e-3};
    size_t bad = 0;
    for (int sch = 0; sch < 4; sch++) {
        kp_context *ctx = NULL;
        assert_int_equal(kpt_context_new(&ctx), KP_OK);
        if (sch > 0) KPT_ASSERT_OK(ctx, kp_context_set_sum_scheme(ctx, (kp_sum_scheme)(sch - 1)));
        float outf[2] = {0, 0};
        kp_array out = kp_array_2d(outf, KP_FLOAT32, 2, 1);
        KPT_ASSERT_OK(ctx, kp_reduce(ctx, "Sum_Reduction(Exp(-Square(x - y)) * b, 1)", al, 3,
                                     KP_FLOAT32, args, 3, &out, NULL));
        double got[2] = {outf[0], outf[1]};
        double err = kpt_max_rel_err(got, ref, 2);
        print_message("  float32 sum M=1e7 scheme %s: rel err %.3g\n", names[sch], err);
        if (!(err < tols[sch])) {
            fprintf(stderr, "  [sum accuracy %s] rel err %.3g >= %.3g (got %.9g %.9g, ref %.9g %.9g)\n",
                    names[sch], err, tols[sch], got[0], got[1], ref[0], ref[1]);
            bad++;
        }
        kp_context_free(ctx);
    }
    free(y);
    free(b);
    assert_int_equal(bad, 0);
}

/* Gaussian kernel Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1) in float32 with
 * (N, M) = (10^7, 100) and (100, 10^7). Asserts a subset of rows (every
 * stride-th) matches a double loop within 1e-5 relative to sum |F|. */
static void large_gauss(int64_t N, int64_t M, int64_t row_stride) {
    kpt_rng rng;
    kpt_rng_seed(&rng, (uint64_t)(N + 3 * M));
    float *x = malloc((size_t)N * 3 * sizeof(float)), *y = malloc((size_t)M * 3 * sizeof(float));
    float *b = malloc((size_t)M * sizeof(float)), *o = malloc((size_t)N * sizeof(float));
    float sp = 2.0f;
    assert_non_null(x);
    assert_non_null(y);
    assert_non_null(b);
    assert_non_null(o);
    for (int64_t k = 0; k < 3 * N; k++) x[k] = (float)kpt_rng_uniform(&rng, -1, 1);
    for (int64_t k = 0; k < 3 * M; k++) y[k] = (float)kpt_rng_uniform(&rng, -1, 1);
    for (int64_t k = 0; k < M; k++) b[k] = (float)kpt_rng_uniform(&rng, -1, 1);
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(1)"};
    kp_array args[4] = {kp_array_2d(x, KP_FLOAT32, N, 3), kp_array_2d(y, KP_FLOAT32, M, 3),
                        kp_array_1d(&sp, KP_FLOAT32, 1), kp_array_2d(b, KP_FLOAT32, M, 1)};
    kp_array out = kp_array_2d(o, KP_FLOAT32, N, 1);
    kp_context *ctx = NULL;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    KPT_ASSERT_OK(ctx, kp_reduce(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)", al, 4,
                                 KP_FLOAT32, args, 4, &out, NULL));
    size_t bad = 0;
    for (int64_t i = 0; i < N; i += row_stride) {
        double ref = 0.0, sc = 0.0;
        for (int64_t j = 0; j < M; j++) {
            double d2 = 0.0;
            for (int d = 0; d < 3; d++) {
                double t = (double)x[3 * i + d] - (double)y[3 * j + d];
                d2 += t * t;
            }
            double f = exp(-d2 * 2.0) * (double)b[j];
            ref += f;
            sc += fabs(f);
        }
        double g = o[i];
        bad += kpt_check("large gauss", &g, &ref, &sc, 1, 1e-5, 1e-300);
    }
    kp_context_free(ctx);
    free(x), free(y), free(b), free(o);
    assert_int_equal(bad, 0);
}
static void test_large_n(void **s) {
    (void)s;
    if (kpt_skip_large()) skip();
    large_gauss(10000000, 100, 9973);
}
static void test_large_m(void **s) {
    (void)s;
    if (kpt_skip_large()) skip();
    large_gauss(100, 10000000, 17);
}

/* ================================================================ API helpers */

typedef struct intro_case {
    const char *text;
    kp_reduction red;
    int axis, out_dim, idx_dim;
} intro_case;

/* Asserts kp_formula_num_args / kp_formula_arg (category, dim, unused and
 * out-of-range positions give KP_ERR_ARGUMENT), kp_formula_reduction,
 * kp_formula_axis, kp_formula_out_dim and kp_formula_out_index_dim against
 * values worked out by hand from kp.h, for every reduction. */
static void test_api_introspection(void **s) {
    (void)s;
    kp_context *ctx = NULL;
    kp_formula *f = NULL;
    kp_var_category cat;
    int dim;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);

    const char *al[] = {"x = Vi(0,3)", "y = Vj(2,3)", "s = Pm(3,1)"};
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*s), 0)", al, 3, &f));
    assert_int_equal(kp_formula_num_args(f), 4);
    assert_int_equal(kp_formula_arg(f, 0, &cat, &dim), KP_OK);
    assert_int_equal(cat, KP_VAR_I);
    assert_int_equal(dim, 3);
    assert_int_equal(kp_formula_arg(f, 1, &cat, &dim), KP_ERR_ARGUMENT);
    assert_int_equal(kp_formula_arg(f, 2, &cat, &dim), KP_OK);
    assert_int_equal(cat, KP_VAR_J);
    assert_int_equal(dim, 3);
    assert_int_equal(kp_formula_arg(f, 3, &cat, &dim), KP_OK);
    assert_int_equal(cat, KP_VAR_PARAM);
    assert_int_equal(dim, 1);
    assert_int_equal(kp_formula_arg(f, 4, &cat, &dim), KP_ERR_ARGUMENT);
    assert_int_equal(kp_formula_arg(f, -1, &cat, &dim), KP_ERR_ARGUMENT);
    assert_int_equal(kp_formula_reduction(f), KP_RED_SUM);
    assert_int_equal(kp_formula_axis(f), 0);
    assert_int_equal(kp_formula_out_dim(f), 1);
    assert_int_equal(kp_formula_out_index_dim(f), 0);
    kp_formula_free(f);

    /* explicit Vi/Vj in the text, no aliases */
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(Vi(0,2)*Vj(1,2), 1)", NULL, 0, &f));
    assert_int_equal(kp_formula_num_args(f), 2);
    assert_int_equal(kp_formula_arg(f, 1, &cat, &dim), KP_OK);
    assert_int_equal(cat, KP_VAR_J);
    assert_int_equal(dim, 2);
    assert_int_equal(kp_formula_out_dim(f), 2);
    kp_formula_free(f);

    /* an alias without position takes the next free one: c -> 1 */
    const char *al2[] = {"a = Vj(0,2)", "c = Vi(3)"};
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(c*Sum(a), 1)", al2, 2, &f));
    assert_int_equal(kp_formula_num_args(f), 2);
    assert_int_equal(kp_formula_arg(f, 1, &cat, &dim), KP_OK);
    assert_int_equal(cat, KP_VAR_I);
    assert_int_equal(dim, 3);
    assert_int_equal(kp_formula_out_dim(f), 3);
    kp_formula_free(f);

    static const intro_case ic[] = {
        {"Sum_Reduction(x - y, 1)", KP_RED_SUM, 1, 3, 0},
        {"LogSumExp_Reduction(x - y, 0)", KP_RED_LOGSUMEXP, 0, 3, 0},
        {"SumSoftMaxWeight_Reduction(SqDist(x,y), 1, Concat(x, y))", KP_RED_SUMSOFTMAXWEIGHT, 1, 6, 0},
        {"Min_Reduction(x - y, 1)", KP_RED_MIN, 1, 3, 0},
        {"Max_Reduction(x - y, 0)", KP_RED_MAX, 0, 3, 0},
        {"ArgMin_Reduction(x - y, 1)", KP_RED_ARGMIN, 1, 0, 3},
        {"ArgMax_Reduction(SqDist(x,y), 0)", KP_RED_ARGMAX, 0, 0, 1},
        {"Min_ArgMin_Reduction(x - y, 1)", KP_RED_MIN_ARGMIN, 1, 3, 3},
        {"Max_ArgMax_Reduction(x - y, 1)", KP_RED_MAX_ARGMAX, 1, 3, 3},
        {"KMin_Reduction(x - y, 4, 1)", KP_RED_KMIN, 1, 12, 0},
        {"ArgKMin_Reduction(x - y, 4, 0)", KP_RED_ARGKMIN, 0, 0, 12},
        {"KMin_ArgKMin_Reduction(SqDist(x,y), 5, 1)", KP_RED_KMIN_ARGKMIN, 1, 5, 5},
    };
    const char *al3[] = {"x = Vi(3)", "y = Vj(3)"};
    for (size_t k = 0; k < sizeof ic / sizeof ic[0]; k++) {
        KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, ic[k].text, al3, 2, &f));
        if (kp_formula_reduction(f) != ic[k].red || kp_formula_axis(f) != ic[k].axis ||
            kp_formula_out_dim(f) != ic[k].out_dim ||
            kp_formula_out_index_dim(f) != ic[k].idx_dim || kp_formula_num_args(f) != 2)
            fail_msg("%s: reduction %d axis %d out_dim %d idx_dim %d num_args %d", ic[k].text,
                     (int)kp_formula_reduction(f), kp_formula_axis(f), kp_formula_out_dim(f),
                     kp_formula_out_index_dim(f), kp_formula_num_args(f));
        kp_formula_free(f);
    }

    /* shared subexpressions count once in the DAG */
    kp_formula *g = NULL;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(Exp(x-y) + Exp(x-y), 1)", al3, 2, &f));
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(Exp(x-y) + Exp(y-x), 1)", al3, 2, &g));
    assert_true(kp_formula_node_count(f) < kp_formula_node_count(g));
    kp_formula_free(f);
    kp_formula_free(g);
    kp_context_free(ctx);
}

/* kp_formula_print round trip: parse, print, parse the printed text (same
 * aliases). Asserts the printed text of the reparsed formula is identical
 * (canonical form is a fixed point), the introspection agrees, both formulas
 * give the same float64 results (rtol 1e-13), and that printing into a 5-byte
 * buffer returns the full length and writes a NUL-terminated prefix. */
static void test_api_print_round_trip(void **s) {
    (void)s;
    static const char *texts[] = {
        "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)",
        "LogSumExp_Reduction(-(x|y)*b + Sqrt(Abs(s)), 0)",
        "KMin_ArgKMin_Reduction(SqDist(x,y)*s + b, 3, 1)",
        "SumSoftMaxWeight_Reduction(-SqDist(x,y)*s, 0, (x - y)*b)",
        "Sum_Reduction(Pow(x, 3) + Powf(Abs(y) + 1, s) - Round(x, 2) + Mod(y, 1.5, 0.25) + "
        "Clamp(x, -1, 1) + IfElse(x - y, x, y) * IntCst(2) + Zero(3) + b, 1)",
        "Sum_Reduction(MatVecMult(TensorProd(x, y), x) * s + Concat(Elem(x, 0), Extract(y, 1, 2))"
        " + OneHot(b*3 + 1, 3), 1)",
        "Max_ArgMax_Reduction(WeightedSqDist(s, x, y) + WeightedSqNorm(s, x) - 1e-3 + (x < y) + "
        "(x != y) + b, 1)",
        "Sum_Reduction(Atan2(x, y) + Log(Abs(x) + 1)*s + Exp(b) + SinXDivX(x) + XLogX(Abs(y)) + "
        "Sign(x) + Step(y) + ReLU(x) + Floor(y) + Inv(s + 2) + Rsqrt(Abs(x)) + "
        "Square(Normalize(y)) + Norm2(x) + SqNorm2(y) + Sum(x) + Max(y) + Min(x) + ArgMax(y) + "
        "ArgMin(x) + Tanh(x) + Erf(y) + Sin(x) + Cos(y) + Asin(x*0.5) + Acos(y*0.5) + Atan(x) + "
        "(x <= y) + (x > y) + (x >= y) + (x == y) + Mod(x, 2), 1)",
        "Min_ArgMin_Reduction(Vi(0,3) - Vj(1,3) + Pm(2,1) * Vj(3,1), 0)",
        "Min_ArgMin_Reduction(Var(0,3,0) - Var(1,3,1) + Var(2,1,2) * Var(3,1,1), 0)",
    };
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(1)"};
    enum { N = 13, M = 29 };
    kpt_rng rng;
    kpt_rng_seed(&rng, 77);
    double x[N * 3], y[M * 3], sp = 0.75, b[M];
    kpt_fill_uniform(&rng, x, N * 3, -1, 1);
    kpt_fill_uniform(&rng, y, M * 3, -1, 1);
    kpt_fill_uniform(&rng, b, M, -0.3, 0.3);
    kpt_arg args[4] = {{x, N, 3}, {y, M, 3}, {&sp, -1, 1}, {b, M, 1}};
    kp_context *ctx = NULL;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        kp_formula *f = NULL, *g = NULL;
        KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, texts[k], al, 4, &f));
        char one[1];
        size_t len = kp_formula_print(f, one, 0);
        assert_true(len > 0);
        char *p1 = malloc(len + 1), *p2 = malloc(len + 1), small[5];
        assert_int_equal(kp_formula_print(f, p1, len + 1), len);
        assert_int_equal(strlen(p1), len);
        assert_int_equal(kp_formula_print(f, small, sizeof small), len);
        assert_int_equal(small[4], '\0');
        assert_int_equal(strncmp(small, p1, 4), 0);
        kp_status st = kp_formula_parse(ctx, p1, al, 4, &g);
        if (st != KP_OK) fail_msg("reparse of printed '%s' failed: %s", p1, kp_context_message(ctx));
        size_t len2 = kp_formula_print(g, one, 0);
        if (len2 != len || (kp_formula_print(g, p2, len + 1), strcmp(p1, p2) != 0))
            fail_msg("print not a fixed point:\n  %s\n  %s", p1, len2 == len ? p2 : "(length differs)");
        assert_int_equal(kp_formula_num_args(f), kp_formula_num_args(g));
        assert_int_equal(kp_formula_out_dim(f), kp_formula_out_dim(g));
        assert_int_equal(kp_formula_out_index_dim(f), kp_formula_out_index_dim(g));
        int axis = kp_formula_axis(f), od = kp_formula_out_dim(f), xd = kp_formula_out_index_dim(f);
        int64_t rows = axis ? N : M;
        double *o1 = xmalloc((size_t)(rows * od)), *o2 = xmalloc((size_t)(rows * od));
        int64_t *i1 = calloc((size_t)(rows * xd) + 1, 8), *i2 = calloc((size_t)(rows * xd) + 1, 8);
        KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_REDUCE, texts[k], al, 4, KP_FLOAT64, args, 4, rows,
                                   od, od ? o1 : NULL, xd, xd ? i1 : NULL, NULL));
        KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_REDUCE, p1, al, 4, KP_FLOAT64, args, 4, rows, od,
                                   od ? o2 : NULL, xd, xd ? i2 : NULL, NULL));
        size_t bad = kpt_check(p1, o2, o1, NULL, (size_t)(rows * od), 1e-13, 1e-300);
        bad += kpt_check_index(p1, i2, i1, (size_t)(rows * xd));
        assert_int_equal(bad, 0);
        free(o1), free(o2), free(i1), free(i2), free(p1), free(p2);
        kp_formula_free(g);
        kp_formula_free(f);
    }
    kp_context_free(ctx);
}

/* kp_exec_options.nx / ny give the number of points of a side with no
 * variable: Sum_Reduction(Exp(-Square(y - p)), 1) with nx = 6 gives 6 equal
 * rows sum_j exp(-(y_j - p)^2); Sum_Reduction(x*p, 1) with ny = 9 gives
 * 9 x_i p; Sum_Reduction(x*p, 0) with ny = 9 gives 9 rows sum_i x_i p. */
static void test_api_nx_ny(void **s) {
    (void)s;
    kp_context *ctx = NULL;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    double y[11], x[5], p = 0.4, out[9], ref;
    kpt_rng rng;
    kpt_rng_seed(&rng, 3);
    kpt_fill_uniform(&rng, y, 11, -1, 1);
    kpt_fill_uniform(&rng, x, 5, -1, 1);
    for (int dti = 0; dti < 2; dti++) {
        kp_dtype dt = dti ? KP_FLOAT32 : KP_FLOAT64;
        double tol = dti ? 1e-5 : 1e-12;
        kpt_round_to_dtype(y, 11, dt);
        kpt_round_to_dtype(x, 5, dt);
        kpt_round_to_dtype(&p, 1, dt);
        const char *ala[] = {"y = Vj(1)", "p = Pm(1)"};
        kpt_arg aa[2] = {{y, 11, 1}, {&p, -1, 1}};
        kp_exec_options opt = {.num_threads = 0, .nx = 6, .ny = -1};
        KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, "Sum_Reduction(Exp(-Square(y - p)), 1)", ala,
                                   2, dt, aa, 2, 6, 1, out, 0, NULL, &opt));
        ref = 0.0;
        for (int j = 0; j < 11; j++) ref += exp(-(y[j] - p) * (y[j] - p));
        for (int i = 0; i < 6; i++) assert_int_equal(kpt_check("nx", &out[i], &ref, NULL, 1, tol, 0), 0);

        const char *alb[] = {"x = Vi(1)", "p = Pm(1)"};
        kpt_arg ab[2] = {{x, 5, 1}, {&p, -1, 1}};
        kp_exec_options opt2 = {.num_threads = 0, .nx = -1, .ny = 9};
        KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, "Sum_Reduction(x*p, 1)", alb, 2, dt, ab, 2, 5,
                                   1, out, 0, NULL, &opt2));
        for (int i = 0; i < 5; i++) {
            ref = 9.0 * x[i] * p;
            assert_int_equal(kpt_check("ny", &out[i], &ref, NULL, 1, tol, 1e-300), 0);
        }
        KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, "Sum_Reduction(x*p, 0)", alb, 2, dt, ab, 2, 9,
                                   1, out, 0, NULL, &opt2));
        ref = 0.0;
        double sc = 0.0;
        for (int i = 0; i < 5; i++) ref += x[i] * p, sc += fabs(x[i] * p);
        for (int j = 0; j < 9; j++) assert_int_equal(kpt_check("ny axis 0", &out[j], &ref, &sc, 1, tol, 1e-300), 0);
    }
    kp_context_free(ctx);
}

/* ================================================================ main */

int main(int argc, char **argv) {
    const struct CMUnitTest small[] = {
        cmocka_unit_test(test_api_introspection),
        cmocka_unit_test(test_api_print_round_trip),
        cmocka_unit_test(test_api_nx_ny),
        cmocka_unit_test(test_vector_valued),
        cmocka_unit_test(test_ties_duplicate_points),
        cmocka_unit_test(test_nan_inf),
        cmocka_unit_test(test_select_long_rows),
        cmocka_unit_test(test_logsumexp_stable),
        cmocka_unit_test(test_strided),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_sweep_f64_axis1),
        cmocka_unit_test(test_sweep_f64_axis0),
        cmocka_unit_test(test_sweep_f32_axis1),
        cmocka_unit_test(test_sweep_f32_axis0),
        cmocka_unit_test(test_sweep_empty_f64_axis1),
        cmocka_unit_test(test_sweep_empty_f64_axis0),
        cmocka_unit_test(test_sweep_empty_f32_axis1),
        cmocka_unit_test(test_sweep_empty_f32_axis0),
        cmocka_unit_test(test_thread_identity),
    };
    const struct CMUnitTest large[] = {
        cmocka_unit_test(test_large_sum_accuracy),
        cmocka_unit_test(test_large_n),
        cmocka_unit_test(test_large_m),
    };
    if (argc > 1 && strcmp(argv[1], "large") == 0)
        return cmocka_run_group_tests_name("reductions_large", large, NULL, NULL);
    if (argc > 1 && strcmp(argv[1], "all") == 0)
        return cmocka_run_group_tests_name("reductions", small, NULL, NULL) +
               cmocka_run_group_tests_name("reductions_large", large, NULL, NULL);
    return cmocka_run_group_tests_name("reductions", small, NULL, NULL);
}
