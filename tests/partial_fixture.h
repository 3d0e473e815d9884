/*
 * partial_fixture.h — what the partial-state suites share (test_partial.c on
 * the CPU engine, gpu/test_gpu_partial.c on the GPU engines): the reductions,
 * the formula texts, the point clouds and the plans.
 *
 * The includer defines NR (rows), NRED (reduced points), OUTW (doubles of the
 * widest output) and PAIR_TERM, F's second component beside |x - y|^2 (a
 * function of x.y chosen for its suite's ties), before including this file.
 * With batches (2 of them), NR and NRED count the rows and points of one batch.
 */
#ifndef KP_TESTS_PARTIAL_FIXTURE_H
#define KP_TESTS_PARTIAL_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_test_util.h"

/* Every reduction family: @ is F, # the axis. */
#define PARTIAL_REDUCTIONS                                                                                      \
    "Sum_Reduction(@,#)", "LogSumExp_Reduction(@,#)", "SumSoftMaxWeight_Reduction(-SqDist(x,y),#,Concat(b,y))", \
        "Min_Reduction(@,#)", "Max_Reduction(@,#)", "ArgMin_Reduction(@,#)", "ArgMax_Reduction(@,#)",           \
        "Min_ArgMin_Reduction(@,#)", "Max_ArgMax_Reduction(@,#)", "KMin_Reduction(@,3,#)",                       \
        "ArgKMin_Reduction(@,3,#)", "KMin_ArgKMin_Reduction(@,3,#)"

/* red with F = Concat(SqDist(x,y), PAIR_TERM) and the axis written in. */
static inline void build_text(const char *red, int axis, char *buf, size_t size) {
    char tmp[256];
    size_t n = 0;
    for (const char *p = red; *p && n + 60 < sizeof tmp; p++) {
        if (*p == '@') n += (size_t)snprintf(tmp + n, sizeof tmp - n, "Concat(SqDist(x,y),%s)", PAIR_TERM);
        else if (*p == '#') tmp[n++] = (char)('0' + axis);
        else tmp[n++] = *p;
    }
    tmp[n] = 0;
    snprintf(buf, size, "%s", tmp);
}

typedef struct data {
    void *x, *y, *b; /* x: the rows' cloud (NR x 2); y (NRED x 2), b (NRED x 1): the reduced side */
    kp_dtype dt;
} data;

/* The arguments of rows [r0, NR) with the reduced side restricted to points [j0, j1). */
static inline void args_of(const data *d, int64_t r0, int64_t j0, int64_t j1, kp_array a[3]) {
    size_t es = kpt_dtype_size(d->dt);
    a[0] = kp_array_2d((char *)d->x + (size_t)r0 * 2 * es, d->dt, NR - r0, 2);
    a[1] = kp_array_2d((char *)d->y + (size_t)j0 * 2 * es, d->dt, j1 - j0, 2);
    a[2] = kp_array_2d((char *)d->b + (size_t)j0 * es, d->dt, j1 - j0, 1);
}

typedef struct result {
    double v[OUTW];
    int64_t ix[OUTW];
} result;

/* The plan of text with x the rows' cloud on either axis. */
static inline kp_plan *plan_of(kp_context *ctx, const char *text, int axis, kp_dtype dt) {
    const char *al1[] = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"};
    const char *al0[] = {"x = Vj(2)", "y = Vi(2)", "b = Vi(1)"};
    kp_formula *f;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, text, axis == 1 ? al1 : al0, 3, &f));
    kp_plan *p;
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, dt, &p));
    kp_formula_free(f);
    return p;
}

/* x, y in [-1, 1]^2, b in [0, 1], from seed. */
static inline data make_data(kp_dtype dt, uint64_t seed) {
    kpt_rng r;
    kpt_rng_seed(&r, seed);
    double *x = kpt_random_array(&r, NR * 2, -1, 1), *y = kpt_random_array(&r, NRED * 2, -1, 1);
    double *b = kpt_random_array(&r, NRED, 0, 1);
    data d = {kpt_to_dtype(x, NR * 2, dt), kpt_to_dtype(y, NRED * 2, dt), kpt_to_dtype(b, NRED, dt), dt};
    free(x);
    free(y);
    free(b);
    return d;
}

static inline void free_data(data *d) {
    free(d->x);
    free(d->y);
    free(d->b);
}

/* Block-sparse ranges of the whole problem, in kp_plan_exec's coordinates:
 * flattened (batch, point) indices, NR rows and NRED points per batch. Both
 * triples of a part's kp_ranges are these arrays, so they serve either axis
 * (the rows are always the NR-point cloud here). A suite writes its own table
 * (its ranges cross its chunk bounds) with PART_RANGES. */
typedef struct part_ranges {
    const int64_t *rows, *slices, *cols; /* clusters (2 per), slices (1 per cluster), ranges (2 per) */
    int64_t ncl, nrg;
} part_ranges;

#define PART_RANGES(rows, slices, cols) \
    {(rows), (slices), (cols), (int64_t)(sizeof(slices) / sizeof *(slices)), (int64_t)(sizeof(cols) / sizeof *(cols) / 2)}

#define PART_RANGES_MAX 16 /* ranges of a table: sizes the callers' local buffers */

/* The ranges of the part of rows [r0, NR) and points [j0, j1) of every batch
 * (NR - r0 rows and n = j1 - j0 points per batch), as kp.h asks for them: a
 * cluster [s, e) of batch b becomes b (NR - r0) + [max(s - b NR, r0),
 * min(e - b NR, NR)) - r0, and each of its ranges [s, e) becomes
 * b n + [max(s - b NRED, j0), min(e - b NRED, j1)) - j0 (kept where empty,
 * so the slices stay). lrows, lcols hold the 2 * t->ncl and 2 * t->nrg
 * clipped entries. */
static inline kp_ranges ranges_of_block(const part_ranges *t, int64_t r0, int64_t j0, int64_t j1, int64_t *lrows,
                                        int64_t *lcols) {
    const int64_t n = j1 - j0, nr = NR - r0;
    assert_true(t->nrg <= PART_RANGES_MAX && t->ncl <= PART_RANGES_MAX);
    for (int64_t k = 0, l = 0; k < t->ncl; k++) {
        const int64_t b = t->rows[2 * k] / NR;
        for (int e = 0; e < 2; e++) {
            int64_t r = t->rows[2 * k + e] - b * NR;
            lrows[2 * k + e] = b * nr + (r < r0 ? r0 : r) - r0;
        }
        for (; l < t->slices[k]; l++)
            for (int e = 0; e < 2; e++) {
                int64_t c = t->cols[2 * l + e] - b * NRED;
                lcols[2 * l + e] = b * n + (c < j0 ? j0 : c > j1 ? j1 : c) - j0;
            }
    }
    kp_ranges rg = {8, lrows, t->slices, lcols, lrows, t->slices, lcols, t->ncl, t->ncl, t->nrg, t->ncl, t->ncl, t->nrg};
    return rg;
}

/* The ranges of the part of every row and points [j0, j1): the clusters as
 * they are, local holds the 2 * t->nrg clipped ranges. */
static inline kp_ranges ranges_of_part(const part_ranges *t, int64_t j0, int64_t j1, int64_t *local) {
    int64_t lrows[2 * PART_RANGES_MAX];
    kp_ranges rg = ranges_of_block(t, 0, j0, j1, lrows, local);
    rg.ranges_i = rg.ranges_j = t->rows;
    return rg;
}

/* Two batches, float64: x (2 x NR x 2), y (2 x NRED x 2), b (2 x NRED x 1). */
typedef struct batched {
    double *x, *y, *b;
} batched;

static inline batched make_batched(uint64_t seed) {
    kpt_rng r;
    kpt_rng_seed(&r, seed);
    batched B = {kpt_random_array(&r, 2 * NR * 2, -1, 1), kpt_random_array(&r, 2 * NRED * 2, -1, 1),
                 kpt_random_array(&r, 2 * NRED, 0, 1)};
    return B;
}

static inline void free_batched(batched *B) {
    free(B->x);
    free(B->y);
    free(B->b);
}

/* The arguments of rows [r0, NR) and points [j0, j1) of each batch (strided
 * views of B: the batch strides stay NR rows and NRED points). */
static inline void batched_args(const batched *B, int64_t r0, int64_t j0, int64_t j1, kp_array a[3]) {
    const int64_t xs[3] = {2, NR, 2}, ys[3] = {2, NRED, 2}, bs[3] = {2, NRED, 1};
    a[0] = kp_array_nd(B->x + r0 * 2, KP_FLOAT64, 3, xs);
    a[0].shape[1] = NR - r0;
    a[1] = kp_array_nd(B->y + j0 * 2, KP_FLOAT64, 3, ys);
    a[2] = kp_array_nd(B->b + j0, KP_FLOAT64, 3, bs);
    a[1].shape[1] = a[2].shape[1] = j1 - j0;
}

/* The output arrays over v, ix (2 * OUTW each, zeroed here) for arguments
 * a; *vo, *io are NULL when the plan writes no values or no indices. */
typedef struct batched_out {
    kp_array v, ix;
    kp_array *vo, *io;
} batched_out;

static inline void batched_outputs(kp_context *ctx, kp_plan *p, const kp_array a[3], double *v, int64_t *ix,
                                   batched_out *o) {
    int ndim;
    int64_t shape[KP_MAX_DIMS], ishape[KP_MAX_DIMS];
    KPT_ASSERT_OK(ctx, kp_plan_output_shape(p, a, 3, NULL, &ndim, shape, ishape));
    memset(v, 0, 2 * OUTW * sizeof *v);
    memset(ix, 0, 2 * OUTW * sizeof *ix);
    o->v = kp_array_nd(v, KP_FLOAT64, ndim, shape);
    o->ix = kp_array_nd(ix, KP_INT64, ndim, ishape);
    o->vo = shape[ndim - 1] ? &o->v : NULL;
    o->io = ishape[ndim - 1] ? &o->ix : NULL;
}

/* Writes v, ix (2 * OUTW each, zeroed first) from one kp_plan_exec over every
 * point of B on the whole problem's ranges t. */
static inline void batched_exec(kp_context *ctx, kp_plan *p, const batched *B, const part_ranges *t, double *v,
                                int64_t *ix) {
    kp_array a[3];
    batched_args(B, 0, 0, NRED, a);
    int64_t local[2 * PART_RANGES_MAX];
    kp_ranges rg = ranges_of_part(t, 0, NRED, local);
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.ranges = &rg;
    batched_out o;
    batched_outputs(ctx, p, a, v, ix, &o);
    KPT_ASSERT_OK(ctx, kp_plan_exec(p, a, 3, o.vo, o.io, &opt));
}

/* The parts of rows [r0, NR) of B cut at bounds[0] = 0 < ... < bounds[n] =
 * NRED on the ranges t (clipped by ranges_of_block), folded in order (fold)
 * or one state each merged left to right, finalized into v, ix (2 * OUTW
 * each, zeroed first; batch-major, NR - r0 rows per batch). */
static inline void batched_partial(kp_context *ctx, kp_plan *p, const batched *B, const part_ranges *t, int64_t r0,
                                   const int64_t *bounds, int n, int fold, double *v, int64_t *ix) {
    kp_array a[3];
    batched_args(B, r0, 0, NRED, a);
    kp_state_info info;
    KPT_ASSERT_OK(ctx, kp_plan_state_info(p, a, 3, NULL, &info));
    assert_int_equal(info.nbatch, 2);
    info.row_offset = r0;
    void *acc = malloc(info.bytes), *part = malloc(info.bytes);
    KPT_ASSERT_OK(ctx, kp_plan_state_init(p, &info, acc));
    for (int k = 0; k < n; k++) {
        int64_t lrows[2 * PART_RANGES_MAX], lcols[2 * PART_RANGES_MAX];
        kp_ranges rg = ranges_of_block(t, r0, bounds[k], bounds[k + 1], lrows, lcols);
        kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
        opt.ranges = &rg;
        batched_args(B, r0, bounds[k], bounds[k + 1], a);
        if (!fold) KPT_ASSERT_OK(ctx, kp_plan_state_init(p, &info, part));
        KPT_ASSERT_OK(ctx, kp_plan_exec_partial(p, a, 3, bounds[k], fold ? acc : part, info.bytes, &opt));
        if (!fold) KPT_ASSERT_OK(ctx, kp_plan_state_merge(p, acc, part, info.bytes));
    }
    batched_args(B, r0, 0, 0, a);
    batched_out o;
    batched_outputs(ctx, p, a, v, ix, &o);
    KPT_ASSERT_OK(ctx, kp_plan_state_finalize(p, a, 3, acc, info.bytes, o.vo, o.io, NULL));
    free(acc);
    free(part);
}

#endif
