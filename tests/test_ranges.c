/*
 * test_ranges.c — block-sparse reductions (kp_exec_options.ranges).
 *
 * Asserts:
 *   - every reduction, both axes, float32 and float64, int32 and int64
 *     indices, two batches: equal to the dense reduction over the kept pairs
 *     computed here in float64 (rows in no cluster, clusters with no range,
 *     single columns, whole ranges, touching ranges, ranges across tiles);
 *     indices exactly (float64); the neutral value for rows with no pair;
 *   - the same bits for 1, 2 and 3 threads, also when threads split the
 *     reduced axis (few rows, three chunks of reduced points);
 *   - a Sum with a row factor of Inf on a row with no pair is 0, not NaN;
 *   - the gradient of an axis-1 Sum with respect to a j variable reads the
 *     transposed triple (ranges_j, slices_j, redranges_i), and a joint plan
 *     with ranges equals its formulas run one by one;
 *   - each malformed 6-tuple is KP_ERR_ARGUMENT (or KP_ERR_NULL) naming the
 *     array and its first bad entry, before anything is read out of bounds;
 * With KP_TEST_ENGINE=opencl or cuda (ctest ranges_opencl, ranges_cuda,
 * ranges_cuda_emul) the result tests run on that GPU engine, against the
 * same float64 loops.
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

#define KK 3
#define MAXR 4096 /* ranges per array at most */

/* One axis's triple, as int64 here (converted for int32 runs). */
typedef struct triple {
    int64_t rows[2 * MAXR], slices[MAXR], cols[2 * MAXR];
    int64_t nrows, ncols;
} triple;

typedef struct ranges6 {
    triple t[2]; /* t[1]: reduction over j (ranges_i, slices_i, redranges_j); t[0]: over i */
    int32_t i32[2][3][2 * MAXR];
    kp_ranges r;
} ranges6;

/* Random triple for nb batches of n rows and m reduced points: clusters of
 * random sizes with gaps (rows in no cluster), empty clusters, and per
 * cluster a sorted list of disjoint ranges: empty lists, single points,
 * touching ranges, whole batches. */
static void random_triple(kpt_rng *g, triple *t, int64_t nb, int64_t n, int64_t m) {
    t->nrows = t->ncols = 0;
    for (int64_t b = 0; b < nb; b++) {
        int64_t i = b * n;
        while (i < (b + 1) * n && t->nrows < MAXR - 1) {
            i += kpt_rng_int(g, 0, 2) == 0 ? kpt_rng_int(g, 0, 5) : 0; /* a gap */
            int64_t e = i + kpt_rng_int(g, 0, 40);
            if (e > (b + 1) * n) e = (b + 1) * n;
            if (i > e) break;
            int64_t k = t->nrows++;
            t->rows[2 * k] = i, t->rows[2 * k + 1] = e;
            int kind = (int)kpt_rng_int(g, 0, 9);
            int64_t j = b * m;
            if (kind == 0) { /* empty list */
            } else if (kind == 1 && t->ncols < MAXR) { /* the whole batch */
                t->cols[2 * t->ncols] = b * m, t->cols[2 * t->ncols + 1] = (b + 1) * m, t->ncols++;
            } else {
                while (t->ncols < MAXR) {
                    j += kpt_rng_int(g, 0, 3) == 0 ? 0 : kpt_rng_int(g, 0, 300); /* 0: touching */
                    int64_t je = j + (kpt_rng_int(g, 0, 4) == 0 ? 1 : kpt_rng_int(g, 0, 600));
                    if (je > (b + 1) * m) je = (b + 1) * m;
                    if (j >= je) break;
                    t->cols[2 * t->ncols] = j, t->cols[2 * t->ncols + 1] = je, t->ncols++;
                    j = je;
                }
            }
            t->slices[k] = t->ncols;
            i = e;
        }
    }
}

/* Points the triple's row `row` (flattened) reduces over, in increasing order;
 * returns how many. */
static int64_t kept(const triple *t, int64_t row, int64_t boff, int64_t *js) {
    int64_t n = 0;
    for (int64_t k = 0; k < t->nrows; k++) {
        if (row < t->rows[2 * k] || row >= t->rows[2 * k + 1]) continue;
        for (int64_t l = k ? t->slices[k - 1] : 0; l < t->slices[k]; l++)
            for (int64_t j = t->cols[2 * l]; j < t->cols[2 * l + 1]; j++) js[n++] = j - boff;
    }
    return n;
}

/* Fills rg->r from rg->t with int64 or int32 indices. */
static void set_ranges(ranges6 *rg, int index_size) {
    kp_ranges *r = &rg->r;
    memset(r, 0, sizeof *r);
    r->index_size = index_size;
    const void *p[2][3];
    for (int a = 0; a < 2; a++) {
        const triple *t = &rg->t[a];
        const int64_t *src[3] = {t->rows, t->slices, t->cols};
        int64_t len[3] = {2 * t->nrows, t->nrows, 2 * t->ncols};
        for (int q = 0; q < 3; q++) {
            for (int64_t k = 0; k < len[q]; k++) rg->i32[a][q][k] = (int32_t)src[q][k];
            p[a][q] = index_size == 4 ? (const void *)rg->i32[a][q] : (const void *)src[q];
        }
    }
    r->ranges_i = p[1][0], r->slices_i = p[1][1], r->redranges_j = p[1][2];
    r->ranges_j = p[0][0], r->slices_j = p[0][1], r->redranges_i = p[0][2];
    r->n_ranges_i = r->n_slices_i = rg->t[1].nrows, r->n_redranges_j = rg->t[1].ncols;
    r->n_ranges_j = r->n_slices_j = rg->t[0].nrows, r->n_redranges_i = rg->t[0].ncols;
}

/* ----------------------------------------------------------- forward runs */

static const char *const REDS[] = {"Sum_Reduction(@,#)",           "LogSumExp_Reduction(@,#)",
                                   "Min_ArgMin_Reduction(@,#)",    "Max_ArgMax_Reduction(@,#)",
                                   "KMin_ArgKMin_Reduction(@,3,#)", "SumSoftMaxWeight_Reduction(@,#,b)",
                                   "ArgMin_Reduction(@,#)",        "Min_Reduction(@,#)",
                                   "ArgKMin_Reduction(@,3,#)",     "KMin_Reduction(@,3,#)",
                                   "Max_Reduction(@,#)",           "ArgMax_Reduction(@,#)"};

static double F_of(const double *x, const double *y) {
    double d = 0, dot = 0;
    for (int c = 0; c < 2; c++) d += (x[c] - y[c]) * (x[c] - y[c]), dot += x[c] * y[c];
    return d + 0.1 * sin(5 * dot);
}

static void build_text(const char *red, int axis, char *buf, size_t size) {
    size_t n = 0;
    for (const char *p = red; *p && n + 40 < size; p++) {
        if (*p == '@') n += (size_t)snprintf(buf + n, size - n, "(SqDist(x,y)+0.1*Sin(5*(x|y)))");
        else if (*p == '#') buf[n++] = (char)('0' + axis);
        else buf[n++] = *p;
    }
    buf[n] = 0;
}

typedef struct data {
    int64_t nb, n, m; /* batches, rows, reduced points */
    double *x, *y, *b; /* x (nb, n, 2): the rows' cloud; y (nb, m, 2), b (nb, m, 1): the reduced one */
} data;

/* Reference outputs of every family for one row: kept points js[0..nk). */
typedef struct refrow {
    double sum, lse, mn, mx, ssmw, kmin[KK];
    int64_t imn, imx, ikmin[KK];
} refrow;

static void reference_row(const data *d, int64_t bb, int64_t i, const int64_t *js, int64_t nk, refrow *o) {
    const double *x = d->x + (bb * d->n + i) * 2;
    double s = 0, m = INFINITY, M = -INFINITY;
    o->imn = o->imx = -1;
    for (int k = 0; k < KK; k++) o->kmin[k] = INFINITY, o->ikmin[k] = -1;
    for (int64_t q = 0; q < nk; q++) {
        int64_t j = js[q];
        double f = F_of(x, d->y + (bb * d->m + j) * 2);
        s += f;
        if (f < m) m = f, o->imn = j;
        if (f > M) M = f, o->imx = j;
        for (int k = 0; k < KK; k++)
            if (f < o->kmin[k]) {
                for (int l = KK - 1; l > k; l--) o->kmin[l] = o->kmin[l - 1], o->ikmin[l] = o->ikmin[l - 1];
                o->kmin[k] = f, o->ikmin[k] = j;
                break;
            }
    }
    double e = 0, w = 0;
    for (int64_t q = 0; q < nk; q++) {
        double ex = exp(F_of(x, d->y + (bb * d->m + js[q]) * 2) - M);
        e += ex, w += ex * d->b[bb * d->m + js[q]];
    }
    o->sum = s, o->mn = m, o->mx = M;
    o->lse = nk ? M + log(e) : -INFINITY;
    o->ssmw = nk ? w / e : NAN;
}

/* Runs text with the ranges (NULL: dense); values into v (nb*n*KK), indices into ix. */
static kp_status run(kp_context *ctx, const char *text, int axis, kp_dtype dt, const data *d, const kp_ranges *rg,
                     int nthreads, double *v, int64_t *ix) {
    const char *al1[] = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"}, *al0[] = {"x = Vj(2)", "y = Vi(2)", "b = Vi(1)"};
    kp_formula *f;
    kp_status st = kp_formula_parse(ctx, text, axis == 1 ? al1 : al0, 3, &f);
    if (st != KP_OK) return st;
    int na = kp_formula_num_args(f), od = kp_formula_out_dim(f), id = kp_formula_out_index_dim(f);
    size_t rows = (size_t)(d->nb * d->n);
    void *xs = kpt_to_dtype(d->x, rows * 2, dt), *ys = kpt_to_dtype(d->y, (size_t)(d->nb * d->m) * 2, dt);
    void *bs = kpt_to_dtype(d->b, (size_t)(d->nb * d->m), dt), *vo = kpt_alloc_dtype(rows * KK, dt);
    int64_t sx[3] = {d->nb, d->n, 2}, sy[3] = {d->nb, d->m, 2}, sb[3] = {d->nb, d->m, 1};
    int64_t so[3] = {d->nb, d->n, od > 0 ? od : 1}, si[3] = {d->nb, d->n, id > 0 ? id : 1};
    kp_array a[3] = {kp_array_nd(xs, dt, 3, sx), kp_array_nd(ys, dt, 3, sy), kp_array_nd(bs, dt, 3, sb)};
    kp_array o = kp_array_nd(vo, dt, 3, so), oi = kp_array_nd(ix, KP_INT64, 3, si);
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.num_threads = nthreads;
    opt.ranges = rg;
    kp_plan *p = NULL;
    st = kp_plan_new(ctx, f, dt, &p);
    if (st == KP_OK) st = kp_plan_exec(p, a, (size_t)na, od ? &o : NULL, id ? &oi : NULL, &opt);
    if (st == KP_OK && od) kpt_from_dtype(vo, dt, rows * (size_t)od, v);
    kp_plan_free(p);
    kp_formula_free(f);
    free(xs), free(ys), free(bs), free(vo);
    return st;
}

static data make_data(kpt_rng *g, int64_t nb, int64_t n, int64_t m) {
    data d = {nb, n, m, kpt_random_array(g, (size_t)(nb * n * 2), -1, 1), kpt_random_array(g, (size_t)(nb * m * 2), -1, 1),
              kpt_random_array(g, (size_t)(nb * m), 0, 1)};
    kpt_round_to_dtype(d.x, (size_t)(nb * n * 2), KP_FLOAT32); /* both dtypes see the same points */
    kpt_round_to_dtype(d.y, (size_t)(nb * m * 2), KP_FLOAT32);
    kpt_round_to_dtype(d.b, (size_t)(nb * m), KP_FLOAT32);
    return d;
}

/* Checks one reduction's output (v, ix: nb*n rows) against the references. */
static void check_outputs(const char *text, const char *red, int dt, const refrow *ref, int64_t rows, const double *v,
                          const int64_t *ix) {
    double rtol = dt ? 1e-10 : 2e-5, *want = malloc((size_t)rows * KK * sizeof *want);
    int64_t *iwant = malloc((size_t)rows * KK * sizeof *iwant);
    int width = 1, idx = 0, val = 1;
    for (int64_t r = 0; r < rows; r++) {
        const refrow *o = &ref[r];
        double w = !strncmp(red, "Sum_", 4) ? o->sum : !strncmp(red, "LogSumExp", 9) ? o->lse
                   : !strncmp(red, "SumSoftMax", 10)                                ? o->ssmw
                   : strstr(red, "Max")                                             ? o->mx
                                                                                    : o->mn;
        if (strstr(red, "KMin"))
            for (int k = 0; k < KK; k++) want[r * KK + k] = o->kmin[k], iwant[r * KK + k] = o->ikmin[k];
        else
            want[r] = w, iwant[r] = strstr(red, "Max") ? o->imx : o->imn;
    }
    if (strstr(red, "KMin")) width = KK;
    if (strstr(red, "Arg")) idx = 1;
    if (!strncmp(red, "Arg", 3)) val = 0;
    if (val) assert_int_equal(kpt_check(text, v, want, NULL, (size_t)(rows * width), rtol, dt ? 1e-12 : 1e-6), 0);
    if (idx && dt) assert_int_equal(kpt_check_index(text, ix, iwant, (size_t)(rows * width)), 0);
    free(want);
    free(iwant);
}

/* Every reduction on (nb, n, m), both axes, both dtypes, both index sizes;
 * threads 1..3 give the same bits. */
static void every_reduction(int64_t nb, int64_t n, int64_t m, uint64_t seed, size_t nreds) {
    kpt_rng g;
    kpt_rng_seed(&g, seed);
    static ranges6 rg;
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    for (int axis = 0; axis <= 1; axis++) {
        /* rows: the output's points; on axis 0 the data's x plays the j points (see run) */
        data d = make_data(&g, nb, n, m);
        random_triple(&g, &rg.t[axis], nb, n, m);
        random_triple(&g, &rg.t[1 - axis], nb, m, n); /* the other triple: must be ignored */
        refrow *ref = malloc((size_t)(nb * n) * sizeof *ref);
        int64_t *js = malloc((size_t)(2 * m + 1) * sizeof *js);
        for (int64_t bb = 0; bb < nb; bb++)
            for (int64_t i = 0; i < n; i++)
                reference_row(&d, bb, i, js, kept(&rg.t[axis], bb * n + i, bb * m, js), &ref[bb * n + i]);
        double *v = malloc((size_t)(nb * n * KK) * 3 * sizeof *v);
        int64_t *ix = malloc((size_t)(nb * n * KK) * 3 * sizeof *ix);
        size_t sz = (size_t)(nb * n * KK);
        for (int isz = 4; isz <= 8; isz += 4) {
            set_ranges(&rg, isz);
            for (int dt = 0; dt <= 1; dt++)
                for (size_t k = 0; k < nreds; k++) {
                    char text[512];
                    build_text(REDS[k], axis, text, sizeof text);
                    memset(v, 0, 3 * sz * sizeof *v);
                    memset(ix, 0, 3 * sz * sizeof *ix);
                    for (int t = 0; t < 3; t++)
                        KPT_ASSERT_OK(ctx, run(ctx, text, axis, dt ? KP_FLOAT64 : KP_FLOAT32, &d, &rg.r, t + 1, v + (size_t)t * sz,
                                               ix + (size_t)t * sz));
                    for (int t = 1; t < 3; t++) {
                        assert_memory_equal(v, v + (size_t)t * sz, sz * sizeof *v);
                        assert_memory_equal(ix, ix + (size_t)t * sz, sz * sizeof *ix);
                    }
                    check_outputs(text, REDS[k], dt, ref, nb * n, v, ix);
                }
        }
        free(ref), free(js), free(v), free(ix);
        free(d.x), free(d.y), free(d.b);
    }
    kp_context_free(ctx);
}

static void test_every_reduction(void **state) {
    (void)state;
    every_reduction(2, 150, 700, 11, sizeof REDS / sizeof REDS[0]);
}

/* Few rows and three chunks of reduced points: threads share the chunks. */
static void test_split_chunks(void **state) {
    (void)state;
    every_reduction(1, 7, 70001, 12, 5);
}

/* A Sum's row factor is applied to non-empty sums only: Inf * (empty) is 0. */
static void test_empty_row_factor(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    double a[3] = {INFINITY, 2, 3}, y[4] = {1, 2, 3, 4}, out[3];
    int64_t ri[4] = {0, 1, 1, 3}, si[2] = {0, 1}, rj[2] = {0, 4};
    kp_ranges r = {0};
    r.index_size = 8;
    r.ranges_i = ri, r.slices_i = si, r.redranges_j = rj, r.n_ranges_i = r.n_slices_i = 2, r.n_redranges_j = 1;
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.ranges = &r;
    const char *al[] = {"a = Vi(1)", "y = Vj(1)"};
    kpt_arg args[2] = {{a, 3, 1}, {y, 4, 1}};
    KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, "Sum_Reduction(a*y, 1)", al, 2, KP_FLOAT64, args, 2, 3, 1, out, 0,
                               NULL, &opt));
    assert_true(out[0] == 0 && out[1] == 20 && out[2] == 30); /* row 0: no pair; rows 1, 2: a * (1+2+3+4) */
    kp_context_free(ctx);
}

/* ------------------------------------------------ gradients, joint plans */

/* Both triples of a cluster mask keep[ci][cj], as KeOps' from_matrix. */
static void from_matrix(ranges6 *rg, const int64_t *ci, int nci, const int64_t *cj, int ncj, const int *keep) {
    triple *ti = &rg->t[1], *tj = &rg->t[0];
    ti->nrows = nci, tj->nrows = ncj, ti->ncols = tj->ncols = 0;
    for (int k = 0; k < nci; k++) {
        ti->rows[2 * k] = ci[k], ti->rows[2 * k + 1] = ci[k + 1];
        for (int l = 0; l < ncj; l++)
            if (keep[k * ncj + l]) ti->cols[2 * ti->ncols] = cj[l], ti->cols[2 * ti->ncols + 1] = cj[l + 1], ti->ncols++;
        ti->slices[k] = ti->ncols;
    }
    for (int l = 0; l < ncj; l++) {
        tj->rows[2 * l] = cj[l], tj->rows[2 * l + 1] = cj[l + 1];
        for (int k = 0; k < nci; k++)
            if (keep[k * ncj + l]) tj->cols[2 * tj->ncols] = ci[k], tj->cols[2 * tj->ncols + 1] = ci[k + 1], tj->ncols++;
        tj->slices[l] = tj->ncols;
    }
}

#define GN 300
#define GM 260

static void test_gradient_and_joint(void **state) {
    (void)state;
    static ranges6 rg;
    int64_t ci[6] = {0, 40, 100, 101, 220, GN}, cj[5] = {0, 70, 71, 200, GM};
    int keep[5 * 4] = {1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1};
    from_matrix(&rg, ci, 5, cj, 4, keep);
    set_ranges(&rg, 4);
    kpt_rng g;
    kpt_rng_seed(&g, 5);
    double *x = kpt_random_array(&g, GN * 2, -1, 1), *y = kpt_random_array(&g, GM * 2, -1, 1);
    double *b = kpt_random_array(&g, GM, 0, 1), *e = kpt_random_array(&g, GN, -1, 1);
    int mask[GN][GM];
    for (int k = 0; k < 5; k++)
        for (int l = 0; l < 4; l++)
            for (int64_t i = ci[k]; i < ci[k + 1]; i++)
                for (int64_t j = cj[l]; j < cj[l + 1]; j++) mask[i][j] = keep[k * 4 + l];
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    const char *al[] = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"};
    kp_formula *f, *gx, *gy, *fs[2];
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y))*b, 1)", al, 3, &f));
    KPT_ASSERT_OK(ctx, kp_formula_grad(ctx, f, 0, &gx));
    KPT_ASSERT_OK(ctx, kp_formula_grad(ctx, f, 1, &gy)); /* axis 0: reads ranges_j, slices_j, redranges_i */
    assert_int_equal(kp_formula_axis(gy), 0);
    static double refy[GM * 2], refx[GN * 2], goty[GM * 2], gotx[GN * 2];
    memset(refy, 0, sizeof refy), memset(refx, 0, sizeof refx);
    for (int i = 0; i < GN; i++)
        for (int j = 0; j < GM; j++) {
            if (!mask[i][j]) continue;
            double dx = x[2 * i] - y[2 * j], dy = x[2 * i + 1] - y[2 * j + 1], k = 2 * exp(-(dx * dx + dy * dy)) * b[j] * e[i];
            refy[2 * j] += dx * k, refy[2 * j + 1] += dy * k, refx[2 * i] -= dx * k, refx[2 * i + 1] -= dy * k;
        }
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.ranges = &rg.r;
    kp_array a[4] = {kp_array_2d(x, KP_FLOAT64, GN, 2), kp_array_2d(y, KP_FLOAT64, GM, 2), kp_array_2d(b, KP_FLOAT64, GM, 1),
                     kp_array_2d(e, KP_FLOAT64, GN, 1)};
    kp_array oy = kp_array_2d(goty, KP_FLOAT64, GM, 2), outs[2] = {kp_array_2d(gotx, KP_FLOAT64, GN, 2), oy};
    kp_plan *p;
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, gy, KP_FLOAT64, &p));
    KPT_ASSERT_OK(ctx, kp_plan_exec(p, a, 4, &oy, NULL, &opt));
    assert_int_equal(kpt_check("grad y", goty, refy, NULL, (size_t)GM * 2, 1e-12, 1e-14), 0);
    kp_plan_free(p);
    /* the joint plan of both gradients runs its formulas one by one, each with its axis's triple */
    memset(goty, 0, sizeof goty);
    fs[0] = gx, fs[1] = gy;
    kp_plan *jp;
    KPT_ASSERT_OK(ctx, kp_plan_new_joint(ctx, (const kp_formula *const *)fs, 2, KP_FLOAT64, &jp));
    KPT_ASSERT_OK(ctx, kp_plan_exec_joint(jp, a, 4, outs, 2, &opt));
    assert_int_equal(kpt_check("joint grad x", gotx, refx, NULL, (size_t)GN * 2, 1e-12, 1e-14), 0);
    assert_int_equal(kpt_check("joint grad y", goty, refy, NULL, (size_t)GM * 2, 1e-12, 1e-14), 0);
    kp_formula_free(gx);
    kp_plan_free(jp);
    kp_formula_free(gy);
    kp_formula_free(f);
    kp_context_free(ctx);
    free(x), free(y), free(b), free(e);
}

/* ------------------------------------------------------------ bad ranges */

typedef struct bad_case {
    const char *what;                       /* what the message must name */
    int64_t rows[6], slices[3], cols[8];    /* ranges_i, slices_i, redranges_j */
    int64_t nrows, nslices, ncols;
    int index_size;
    kp_status status;
} bad_case;

/* Two batches of N = 10 rows and M = 8 reduced points. */
static const bad_case BAD[] = {
    {"index_size is 3", {0, 5}, {1}, {0, 8}, 1, 1, 1, 3, KP_ERR_ARGUMENT},
    {"slices_i has 2 entries, but ranges_i has 1", {0, 5}, {1, 1}, {0, 8}, 1, 2, 1, 8, KP_ERR_ARGUMENT},
    {"ranges_i[1] = [7, 6) starts after its end", {0, 5, 7, 6}, {1, 1}, {0, 8}, 2, 2, 1, 8, KP_ERR_ARGUMENT},
    {"ranges_i[0] = [0, 21) is outside [0, 20]", {0, 21}, {1}, {0, 8}, 1, 1, 1, 8, KP_ERR_ARGUMENT},
    {"ranges_i[1] = [3, 6) starts before the end 5", {0, 5, 3, 6}, {1, 1}, {0, 8}, 2, 2, 1, 8, KP_ERR_ARGUMENT},
    {"ranges_i[0] = [5, 15) spans batches 0 and 1", {5, 15}, {1}, {0, 8}, 1, 1, 1, 8, KP_ERR_ARGUMENT},
    {"slices_i[1] = 0: slices must be non-decreasing", {0, 5, 5, 9}, {1, 0}, {0, 8}, 2, 2, 1, 8, KP_ERR_ARGUMENT},
    {"slices_i[0] = 2", {0, 5}, {2}, {0, 8}, 1, 1, 1, 8, KP_ERR_ARGUMENT},
    {"redranges_j[1] = [8, 17) is outside [8, 16]", {0, 5, 10, 12}, {1, 2}, {0, 8, 8, 17}, 2, 2, 2, 8, KP_ERR_ARGUMENT},
    {"redranges_j[0] = [8, 16) is outside [0, 8]", {0, 5}, {1}, {8, 16}, 1, 1, 1, 4, KP_ERR_ARGUMENT},
    {"redranges_j[1] = [2, 4) starts before the end 3", {0, 5}, {2}, {0, 3, 2, 4}, 1, 1, 2, 8, KP_ERR_ARGUMENT},
    {"redranges_j[0] = [-1, 4) is outside", {0, 5}, {1}, {-1, 4}, 1, 1, 1, 4, KP_ERR_ARGUMENT},
    {"is NULL but has entries", {0}, {0}, {0}, 1, 1, 0, 8, KP_ERR_NULL},
};

static void test_bad_ranges(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    double x[20] = {0}, y[16] = {0}, out[20];
    const char *al[] = {"x = Vi(1)", "y = Vj(1)"};
    for (size_t c = 0; c < sizeof BAD / sizeof BAD[0]; c++) {
        const bad_case *bc = &BAD[c];
        int32_t r32[6], s32[3], c32[8];
        for (int k = 0; k < 6; k++) r32[k] = (int32_t)bc->rows[k];
        for (int k = 0; k < 3; k++) s32[k] = (int32_t)bc->slices[k];
        for (int k = 0; k < 8; k++) c32[k] = (int32_t)bc->cols[k];
        int i4 = bc->index_size == 4;
        kp_ranges r = {0};
        r.index_size = bc->index_size;
        r.ranges_i = i4 ? (const void *)r32 : (const void *)bc->rows;
        r.slices_i = i4 ? (const void *)s32 : (const void *)bc->slices;
        r.redranges_j = bc->status == KP_ERR_NULL ? NULL : i4 ? (const void *)c32 : (const void *)bc->cols;
        if (bc->status == KP_ERR_NULL) r.ranges_i = NULL;
        r.n_ranges_i = bc->nrows, r.n_slices_i = bc->nslices, r.n_redranges_j = bc->ncols;
        kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
        opt.ranges = &r;
        int64_t sx[3] = {2, 10, 1}, sy[3] = {2, 8, 1};
        kp_array a[2] = {kp_array_nd(x, KP_FLOAT64, 3, sx), kp_array_nd(y, KP_FLOAT64, 3, sy)};
        kp_array o = kp_array_nd(out, KP_FLOAT64, 3, sx);
        kp_formula *f;
        kp_plan *p;
        KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(x*y, 1)", al, 2, &f));
        KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, KP_FLOAT64, &p));
        kp_status st = kp_plan_exec(p, a, 2, &o, NULL, &opt);
        const char *msg = kp_context_message(ctx);
        if (st != bc->status || !strstr(msg, bc->what))
            print_error("case %zu: status %d, message '%s', expected %d and '%s'\n", c, (int)st, msg, (int)bc->status,
                        bc->what);
        assert_int_equal(st, bc->status);
        assert_non_null(strstr(msg, bc->what));
        kp_plan_free(p);
        kp_formula_free(f);
    }
    kp_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_reduction),  cmocka_unit_test(test_split_chunks),
        cmocka_unit_test(test_empty_row_factor), cmocka_unit_test(test_gradient_and_joint),
        cmocka_unit_test(test_bad_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
