/*
 * test_gpu_partial.c — partial reduction states (kp_plan_exec_partial) on a
 * GPU engine (argv[1]: opencl or cuda; skipped, 77, when it is not
 * available), against the CPU engine. NR = 37 rows, NRED = 2000 reduced
 * points, chunks of $KP_GPU_CHUNK = 256 points (set by CTest); F is
 * (|x - y|^2, 3 x.y), whose extremes have no near-ties that the engines'
 * rounding could order differently:
 *   - every reduction, float32, axis 1 (and a subset on axis 0 and in float64):
 *     parts on multiples of the chunk folded in order give the bits of one
 *     part (several splits); parts at any points reduced separately and
 *     merged; both against the CPU engine's states of the same parts,
 *     finalized: the same indices, values within 1e-5 (float32) or 1e-12
 *     (float64) of the largest output;
 *   - IndexI()/IndexJ() read global indices (row_offset, offset), and a Sum
 *     with a row factor keeps it out of the states (finalize applies it once);
 *   - the states are interchangeable: a GPU state merged with a CPU one;
 *   - block-sparse ranges given to each part in its own coordinates (ranges
 *     across chunk and part bounds, an empty cluster): every reduction, both
 *     axes, the same rules against the CPU engine's ranged states; the rows
 *     of the empty cluster keep the identity's bytes on both engines, and
 *     the ranges change the result; 2 batches on ranges (float64), a subset;
 *   - under KP_SUM_EXACT (Sum, LogSumExp, SumSoftMaxWeight, float32 and
 *     float64, both axes, dense and ranged): parts at any points, folded in
 *     order or merged in reverse order, give the bits of one kp_plan_exec,
 *     also when the parts alternate between the GPU and the CPU engine, and
 *     whatever the launch geometry; where both engines compute the terms
 *     alike, the CPU engine's bits, else within 1e-6 / 1e-13 of them;
 *     NaN, infinities and |x| >= 1.5e18 in LogSumExp and SumSoftMaxWeight
 *     give the CPU engine's bits; 2 batches on ranges, parts merged: the
 *     bits of one part.
 */
#define _POSIX_C_SOURCE 200112L /* setenv */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NR 37
#define NRED 2000
#define KK 3
#define OUTW (NR * 2 * KK)
#define PAIR_TERM "3*(x|y)" /* extremes without near-ties the engines could order differently */
#include "partial_fixture.h"

static kp_engine gpu_engine = KP_ENGINE_OPENCL;

static const char *const REDS[] = {PARTIAL_REDUCTIONS, "Sum_Reduction(Elem(x,0)*Exp(-SqDist(x,y))*b,#)",
                                   "Sum_Reduction(Exp(-SqDist(x,y))*(IndexJ()+2*IndexI()),#)"};
#define NREDS (sizeof REDS / sizeof REDS[0])

/* A state of rows [r0, NR) at the identity; *bytes its size. */
static void *new_state(kp_context *ctx, kp_plan *p, const data *d, int64_t r0, size_t *bytes) {
    kp_array a[3];
    args_of(d, r0, 0, NRED, a);
    kp_state_info info;
    KPT_ASSERT_OK(ctx, kp_plan_state_info(p, a, 3, NULL, &info));
    info.row_offset = r0;
    void *s = malloc(info.bytes);
    KPT_ASSERT_OK(ctx, kp_plan_state_init(p, &info, s));
    *bytes = info.bytes;
    return s;
}

static void finalize(kp_context *ctx, kp_plan *p, const data *d, int64_t r0, const void *state, size_t bytes,
                     result *r) {
    int ndim;
    int64_t shape[KP_MAX_DIMS], ishape[KP_MAX_DIMS];
    kp_array a[3];
    args_of(d, r0, 0, 0, a);
    KPT_ASSERT_OK(ctx, kp_plan_output_shape(p, a, 3, NULL, &ndim, shape, ishape));
    int od = (int)shape[1], id = (int)ishape[1];
    void *vo = kpt_alloc_dtype(OUTW, d->dt);
    memset(r, 0, sizeof *r);
    kp_array o = kp_array_2d(vo, d->dt, NR - r0, od), oi = kp_array_2d(r->ix, KP_INT64, NR - r0, id);
    KPT_ASSERT_OK(ctx, kp_plan_state_finalize(p, a, 3, state, bytes, od ? &o : NULL, id ? &oi : NULL, NULL));
    if (od) kpt_from_dtype(vo, d->dt, (size_t)(NR - r0) * (size_t)od, r->v);
    free(vo);
}

/* Block-sparse ranges over the NR rows and NRED reduced points, in global
 * coordinates (partial_fixture.h). Ranges cross chunk boundaries (256) and
 * part bounds, two touch; the last cluster keeps no point, so its rows meet
 * no pair. */
static const int64_t RANGE_ROWS[] = {0, 12, 12, 25, 25, NR}, RANGE_SLICES[] = {3, 7, 7},
                     RANGE_COLS[] = {0, 100, 300, 700, 1500, NRED, 100, 120, 255, 260, 260, 300, 1000, 1900};
static const part_ranges RANGES = PART_RANGES(RANGE_ROWS, RANGE_SLICES, RANGE_COLS);

/* Folds points [j0, j1) of rows [r0, NR) into state (on the ranges t unless NULL). */
static void fold_part(kp_context *ctx, kp_plan *p, const data *d, int64_t r0, int64_t j0, int64_t j1,
                      const part_ranges *t, void *state, size_t bytes) {
    kp_array a[3];
    args_of(d, r0, j0, j1, a);
    int64_t local[2 * PART_RANGES_MAX];
    kp_ranges rg;
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    if (t) {
        rg = ranges_of_part(t, j0, j1, local);
        opt.ranges = &rg;
    }
    KPT_ASSERT_OK(ctx, kp_plan_exec_partial(p, a, 3, j0, state, bytes, &opt));
}

/* Parts cut at bounds[0] = 0 < ... < bounds[n] = NRED on the context's engine
 * (on the ranges t unless NULL): fold into one state in order, or one state
 * per part merged left to right. */
static void partial_on(kp_context *ctx, kp_plan *p, const data *d, int64_t r0, const int64_t *bounds, int n, int fold,
                       const part_ranges *t, result *r) {
    size_t bytes;
    void *acc = new_state(ctx, p, d, r0, &bytes), *part = malloc(bytes);
    for (int k = 0; k < n; k++) {
        if (fold) {
            fold_part(ctx, p, d, r0, bounds[k], bounds[k + 1], t, acc, bytes);
        } else {
            free(part);
            part = new_state(ctx, p, d, r0, &bytes);
            fold_part(ctx, p, d, r0, bounds[k], bounds[k + 1], t, part, bytes);
            KPT_ASSERT_OK(ctx, kp_plan_state_merge(p, acc, part, bytes));
        }
    }
    finalize(ctx, p, d, r0, acc, bytes, r);
    free(acc);
    free(part);
}

static void partial(kp_context *ctx, kp_plan *p, const data *d, int64_t r0, const int64_t *bounds, int n, int fold,
                    result *r) {
    partial_on(ctx, p, d, r0, bounds, n, fold, NULL, r);
}

/* got (GPU) against want (CPU): the same indices, values within tol of the largest output. */
static void assert_close(const char *what, const char *text, const result *got, const result *want, double tol) {
    double big = 0;
    for (int e = 0; e < OUTW; e++) big = fmax(big, fabs(want->v[e]));
    if (memcmp(got->ix, want->ix, sizeof got->ix)) print_error("%s: %s: indices differ\n", text, what);
    assert_memory_equal(got->ix, want->ix, sizeof got->ix);
    assert_int_equal(kpt_check(text, got->v, want->v, NULL, OUTW, tol, tol * (big > 1 ? big : 1)), 0);
}

/* One formula: GPU folds and merges against the CPU engine's; r0: first row. */
static void check_formula(kp_context *ctx, const char *red, int axis, const data *d, int64_t r0) {
    const int64_t aligned[][5] = {{0, NRED}, {0, 512, 1280, NRED}, {0, 768, 768, NRED}}; /* 768, 768: an empty part */
    const int naligned[] = {1, 3, 3};
    const int64_t any[] = {0, 700, 1301, NRED};
    char text[512];
    build_text(red, axis, text, sizeof text);
    kp_plan *p = plan_of(ctx, text, axis, d->dt);
    double tol = d->dt == KP_FLOAT32 ? 1e-5 : 1e-12;
    result want, one, got;
    KPT_ASSERT_OK(ctx, kp_context_set_engine(ctx, KP_ENGINE_CPU));
    partial(ctx, p, d, r0, aligned[0], naligned[0], 1, &want);
    KPT_ASSERT_OK(ctx, kp_context_set_engine(ctx, gpu_engine));
    partial(ctx, p, d, r0, aligned[0], naligned[0], 1, &one);
    assert_close("one part", text, &one, &want, tol);
    for (int s = 1; s < 3; s++) {
        partial(ctx, p, d, r0, aligned[s], naligned[s], 1, &got);
        if (memcmp(&got, &one, sizeof got)) print_error("%s: aligned parts folded in order differ from one part\n", text);
        assert_memory_equal(&got, &one, sizeof got);
    }
    partial(ctx, p, d, r0, any, 3, 0, &got);
    assert_close("parts merged", text, &got, &want, tol);
    kp_plan_free(p);
}

static void test_every_reduction(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    data d = make_data(KP_FLOAT32, 5);
    for (size_t k = 0; k < NREDS; k++) check_formula(ctx, REDS[k], 1, &d, 0);
    free_data(&d);
    kp_context_free(ctx);
}

/* Axis 0, float64 and rows from row_offset = 10 on, for a subset. */
static void test_axis0_float64_offsets(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    const size_t subset[] = {0, 1, 2, 11, 12, 13};
    for (int dti = 0; dti <= 1; dti++) {
        data d = make_data(dti ? KP_FLOAT64 : KP_FLOAT32, 5);
        if (dti && kp_context_set_engine(ctx, gpu_engine) == KP_OK) {
            /* a device without float64 refuses it: nothing more to check there */
            size_t bytes;
            kp_plan *p = plan_of(ctx, "Sum_Reduction(SqDist(x,y),1)", 1, KP_FLOAT64);
            void *s = new_state(ctx, p, &d, 0, &bytes);
            kp_array a[3];
            args_of(&d, 0, 0, NRED, a);
            kp_status st = kp_plan_exec_partial(p, a, 3, 0, s, bytes, NULL);
            free(s);
            kp_plan_free(p);
            if (st == KP_ERR_UNSUPPORTED) {
                free_data(&d);
                continue;
            }
            KPT_ASSERT_OK(ctx, st);
        }
        for (size_t k = 0; k < sizeof subset / sizeof subset[0]; k++)
            for (int axis = dti; axis >= 0; axis--) check_formula(ctx, REDS[subset[k]], axis, &d, axis ? 10 : 0);
        free_data(&d);
    }
    kp_context_free(ctx);
}

/* A GPU state merged with a CPU state of the next part: the states share one layout. */
static void test_mixed_engines(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    data d = make_data(KP_FLOAT32, 5);
    const size_t pick[] = {1, 2, 11};
    for (size_t k = 0; k < sizeof pick / sizeof pick[0]; k++) {
        char text[512];
        build_text(REDS[pick[k]], 1, text, sizeof text);
        kp_plan *p = plan_of(ctx, text, 1, d.dt);
        size_t bytes;
        void *a = new_state(ctx, p, &d, 0, &bytes), *b = new_state(ctx, p, &d, 0, &bytes);
        kp_array x[3];
        KPT_ASSERT_OK(ctx, kp_context_set_engine(ctx, gpu_engine));
        args_of(&d, 0, 0, 900, x);
        KPT_ASSERT_OK(ctx, kp_plan_exec_partial(p, x, 3, 0, a, bytes, NULL));
        KPT_ASSERT_OK(ctx, kp_context_set_engine(ctx, KP_ENGINE_CPU));
        args_of(&d, 0, 900, NRED, x);
        KPT_ASSERT_OK(ctx, kp_plan_exec_partial(p, x, 3, 900, b, bytes, NULL));
        KPT_ASSERT_OK(ctx, kp_plan_state_merge(p, a, b, bytes));
        result got, want;
        finalize(ctx, p, &d, 0, a, bytes, &got);
        const int64_t whole[] = {0, NRED};
        partial(ctx, p, &d, 0, whole, 1, 1, &want);
        assert_close("GPU state merged with a CPU state", text, &got, &want, 1e-5);
        free(a);
        free(b);
        kp_plan_free(p);
    }
    free_data(&d);
    kp_context_free(ctx);
}

/* Ranged parts (in their own coordinates) on the GPU engine against the CPU
 * engine's, every reduction, both axes: one part, aligned parts folded in
 * order (the bits of one part), parts at any points merged; rows of the
 * empty cluster included. The ranges change the result (not ignored), and
 * a GPU state merges with a CPU state of the next ranged part. */
/* Rows [RANGES.rows[4], NR) (the empty cluster) of the state of points
 * [0, NRED) folded on the ranges by engine e: the bytes of the identity. */
static void assert_empty_rows_identity(kp_context *ctx, kp_plan *p, const data *d, kp_engine e, const char *text) {
    kp_array a[3];
    args_of(d, 0, 0, NRED, a);
    kp_state_info info;
    KPT_ASSERT_OK(ctx, kp_plan_state_info(p, a, 3, NULL, &info));
    unsigned char *s = malloc(info.bytes), *id = malloc(info.bytes);
    KPT_ASSERT_OK(ctx, kp_plan_state_init(p, &info, s));
    KPT_ASSERT_OK(ctx, kp_plan_state_init(p, &info, id));
    KPT_ASSERT_OK(ctx, kp_context_set_engine(ctx, e));
    fold_part(ctx, p, d, 0, 0, NRED, &RANGES, s, info.bytes);
    const int64_t r = RANGES.rows[4];
    size_t esz = info.dtype == KP_FLOAT32 ? 4 : 8;
    const size_t rowr = (size_t)info.nreal * esz, rowi = (size_t)info.nidx * 8;
    size_t ro = info.real_offset + (size_t)r * rowr, rn = (size_t)(NR - r) * rowr;
    size_t io = info.index_offset + (size_t)r * rowi, in = (size_t)(NR - r) * rowi;
    if (memcmp(s + ro, id + ro, rn) || memcmp(s + io, id + io, in))
        print_error("%s: engine %d: rows of the empty cluster are not at the identity\n", text, (int)e);
    assert_memory_equal(s + ro, id + ro, rn);
    assert_memory_equal(s + io, id + io, in);
    assert_memory_not_equal(s + info.real_offset, id + info.real_offset, (size_t)r * rowr);
    free(s);
    free(id);
}

static void check_ranged(kp_context *ctx, const char *red, int axis, const data *d) {
    const int64_t aligned[][5] = {{0, NRED}, {0, 512, 1280, NRED}, {0, 768, 768, NRED}};
    const int naligned[] = {1, 3, 3};
    const int64_t any[] = {0, 700, 1301, NRED}, two[] = {0, 1100, NRED};
    char text[512];
    build_text(red, axis, text, sizeof text);
    kp_plan *p = plan_of(ctx, text, axis, d->dt);
    const double tol = 1e-5;
    result want, one, got, dense;
    KPT_ASSERT_OK(ctx, kp_context_set_engine(ctx, KP_ENGINE_CPU));
    partial_on(ctx, p, d, 0, aligned[0], 1, 1, &RANGES, &want);
    KPT_ASSERT_OK(ctx, kp_context_set_engine(ctx, gpu_engine));
    partial_on(ctx, p, d, 0, aligned[0], 1, 1, &RANGES, &one);
    assert_close("ranged, one part", text, &one, &want, tol);
    partial_on(ctx, p, d, 0, aligned[0], 1, 1, NULL, &dense);
    if (!memcmp(&dense, &one, sizeof one)) print_error("%s: the ranges change nothing\n", text);
    assert_memory_not_equal(&dense, &one, sizeof one);
    for (int s = 1; s < 3; s++) {
        partial_on(ctx, p, d, 0, aligned[s], naligned[s], 1, &RANGES, &got);
        if (memcmp(&got, &one, sizeof got))
            print_error("%s: ranged aligned parts folded in order differ from one part\n", text);
        assert_memory_equal(&got, &one, sizeof got);
    }
    partial_on(ctx, p, d, 0, any, 3, 0, &RANGES, &got);
    assert_close("ranged parts merged", text, &got, &want, tol);
    assert_empty_rows_identity(ctx, p, d, KP_ENGINE_CPU, text);
    assert_empty_rows_identity(ctx, p, d, gpu_engine, text);
    /* a GPU state of [0, 1100) merged with a CPU state of [1100, NRED) */
    size_t bytes;
    void *a = new_state(ctx, p, d, 0, &bytes), *b = new_state(ctx, p, d, 0, &bytes);
    fold_part(ctx, p, d, 0, two[0], two[1], &RANGES, a, bytes);
    KPT_ASSERT_OK(ctx, kp_context_set_engine(ctx, KP_ENGINE_CPU));
    fold_part(ctx, p, d, 0, two[1], two[2], &RANGES, b, bytes);
    KPT_ASSERT_OK(ctx, kp_plan_state_merge(p, a, b, bytes));
    finalize(ctx, p, d, 0, a, bytes, &got);
    assert_close("ranged GPU state merged with a CPU state", text, &got, &want, tol);
    free(a);
    free(b);
    kp_plan_free(p);
}

static void test_ranges(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    data d = make_data(KP_FLOAT32, 5);
    for (int axis = 1; axis >= 0; axis--)
        for (size_t k = 0; k < NREDS; k++) check_ranged(ctx, REDS[k], axis, &d);
    free_data(&d);
    kp_context_free(ctx);
}

/* Batches on ranges: 2 batches of NR rows and NRED points (float64, so that
 * a slip of a batch or a chunk shows beyond rounding); batch 0 keeps
 * RANGES, batch 1 one cluster of rows [5, 30) over [300, 1700) (its other
 * rows in no cluster), in flattened (batch, point) indices; each part gets
 * them clipped by ranges_of_part (partial_fixture.h). */
static const int64_t BATCHED_ROWS[] = {0, 12, 12, 25, 25, NR, NR + 5, NR + 30}, BATCHED_SLICES[] = {3, 7, 7, 8},
                     BATCHED_COLS[] = {0,    100,  300, 700, 1500, NRED, 100, 120, 255, 260, 260, 300, 1000, 1900,
                                       NRED + 300, NRED + 1700};
static const part_ranges BATCHED = PART_RANGES(BATCHED_ROWS, BATCHED_SLICES, BATCHED_COLS);

static void test_batched_ranges(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    batched B = make_batched(9);
    const size_t subset[] = {0, 1, 2, 7, 11, 12};
    const int64_t whole[] = {0, NRED}, aligned[] = {0, 768, NRED}, any[] = {0, 700, 1301, NRED};
    double want[2 * OUTW], got[2 * OUTW], one[2 * OUTW];
    int64_t iwant[2 * OUTW], igot[2 * OUTW], ione[2 * OUTW];
    for (size_t k = 0; k < sizeof subset / sizeof subset[0]; k++)
        for (int axis = 1; axis >= 0; axis--) {
            char text[512];
            build_text(REDS[subset[k]], axis, text, sizeof text);
            kp_plan *p = plan_of(ctx, text, axis, KP_FLOAT64);
            KPT_ASSERT_OK(ctx, kp_context_set_engine(ctx, KP_ENGINE_CPU));
            batched_partial(ctx, p, &B, &BATCHED, 0, whole, 1, 1, want, iwant);
            if (kp_context_set_engine(ctx, gpu_engine) != KP_OK) break;
            kp_array a[3];
            int64_t local[2 * PART_RANGES_MAX];
            batched_args(&B, 0, 0, NRED, a);
            kp_ranges rg = ranges_of_part(&BATCHED, 0, NRED, local);
            kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
            opt.ranges = &rg;
            kp_state_info info;
            KPT_ASSERT_OK(ctx, kp_plan_state_info(p, a, 3, NULL, &info));
            void *s = malloc(info.bytes);
            KPT_ASSERT_OK(ctx, kp_plan_state_init(p, &info, s));
            kp_status st = kp_plan_exec_partial(p, a, 3, 0, s, info.bytes, &opt);
            free(s);
            if (st == KP_ERR_UNSUPPORTED) { /* a device without float64 */
                kp_plan_free(p);
                goto done;
            }
            KPT_ASSERT_OK(ctx, st);
            batched_partial(ctx, p, &B, &BATCHED, 0, whole, 1, 1, one, ione);
            assert_memory_equal(ione, iwant, sizeof ione);
            assert_int_equal(kpt_check(text, one, want, NULL, 2 * OUTW, 1e-12, 1e-12), 0);
            batched_partial(ctx, p, &B, &BATCHED, 0, aligned, 2, 1, got, igot);
            assert_memory_equal(got, one, sizeof got);
            assert_memory_equal(igot, ione, sizeof igot);
            batched_partial(ctx, p, &B, &BATCHED, 0, any, 3, 0, got, igot);
            assert_memory_equal(igot, iwant, sizeof igot);
            assert_int_equal(kpt_check(text, got, want, NULL, 2 * OUTW, 1e-12, 1e-12), 0);
            kp_plan_free(p);
        }
done:
    free_batched(&B);
    kp_context_free(ctx);
}

/* ------------------------------------------------------------ KP_SUM_EXACT */

/* Exact sums: the formulas, the first three with terms that both engines
 * compute alike (products rounded once each), so their states and results
 * are the CPU engine's bit for bit; the others within rounding of it. */
static const char *const EXACT_REDS[] = {
    "Sum_Reduction(x*y*b,#)",
    "Sum_Reduction(Elem(x,0)*(y*b),#)", /* a row factor: the rounded sum times it */
    "Sum_Reduction(Elem(x,1)*(y*b),#)",
    "Sum_Reduction(@,#)",
    "LogSumExp_Reduction(@,#)",
    "SumSoftMaxWeight_Reduction(-SqDist(x,y),#,Concat(b,y))",
    "Sum_Reduction(Elem(x,0)*Exp(-SqDist(x,y))*b,#)",
};
#define EXACT_SAME_TERMS 3

/* One kp_plan_exec of points [0, NRED) on the context's engine (on the ranges t unless NULL). */
static void exec_whole(kp_context *ctx, kp_plan *p, const data *d, const part_ranges *t, result *r) {
    kp_array a[3];
    args_of(d, 0, 0, NRED, a);
    int ndim;
    int64_t shape[KP_MAX_DIMS], ishape[KP_MAX_DIMS];
    KPT_ASSERT_OK(ctx, kp_plan_output_shape(p, a, 3, NULL, &ndim, shape, ishape));
    int od = (int)shape[1];
    void *vo = kpt_alloc_dtype(OUTW, d->dt);
    memset(r, 0, sizeof *r);
    kp_array o = kp_array_2d(vo, d->dt, NR, od);
    int64_t local[2 * PART_RANGES_MAX];
    kp_ranges rg;
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    if (t) {
        rg = ranges_of_part(t, 0, NRED, local);
        opt.ranges = &rg;
    }
    KPT_ASSERT_OK(ctx, kp_plan_exec(p, a, 3, &o, NULL, &opt));
    kpt_from_dtype(vo, d->dt, (size_t)NR * (size_t)od, r->v);
    free(vo);
}

/* Parts at any points, each on engine eng[k % 2], merged into the last part's
 * state from the last to the first (the reverse of the points' order). */
static void exact_parts_reversed(kp_context *ctx, kp_plan *p, const data *d, const int64_t *bounds, int n,
                                 const part_ranges *t, const kp_engine eng[2], result *r) {
    size_t bytes;
    void *acc = new_state(ctx, p, d, 0, &bytes);
    for (int k = n - 1; k >= 0; k--) {
        void *part = new_state(ctx, p, d, 0, &bytes);
        KPT_ASSERT_OK(ctx, kp_context_set_engine(ctx, eng[k % 2]));
        fold_part(ctx, p, d, 0, bounds[k], bounds[k + 1], t, part, bytes);
        KPT_ASSERT_OK(ctx, kp_plan_state_merge(p, acc, part, bytes));
        free(part);
    }
    finalize(ctx, p, d, 0, acc, bytes, r);
    free(acc);
}

static void assert_same_bits(const char *what, const char *text, const result *got, const result *want) {
    if (memcmp(got, want, sizeof *got)) {
        print_error("%s: %s: not the bits of one call\n", text, what);
        for (int e = 0, shown = 0; e < OUTW && shown < 4; e++)
            if (memcmp(&got->v[e], &want->v[e], sizeof got->v[e]) || got->ix[e] != want->ix[e])
                print_error("  output %d: %.17g (index %lld) != %.17g (index %lld)\n", e, got->v[e],
                            (long long)got->ix[e], want->v[e], (long long)want->ix[e]), shown++;
    }
    assert_memory_equal(got, want, sizeof *got);
}

/* Rows that meet no pair on the ranges: finalize applies a Sum's row factor
 * to their 0 (docs/distributed.md), where one call leaves +0; -0 is then the
 * one difference, taken out here. */
static void unsign_zeros(result *r) {
    for (int e = 0; e < OUTW; e++)
        if (r->v[e] == 0) r->v[e] = 0;
}

/* One formula under KP_SUM_EXACT: the GPU engine's one call against its
 * parts at any points (folded in order, merged in reverse order, alternating
 * with the CPU engine) and the CPU engine's one call. */
static void check_exact(kp_context *ctx, int k, int axis, const data *d, const part_ranges *t) {
    const int64_t any[] = {0, 1, 700, 1301, 1301, NRED}; /* unaligned, a 1-point part, an empty part */
    const kp_engine gpu_only[2] = {gpu_engine, gpu_engine}, mixed[2] = {gpu_engine, KP_ENGINE_CPU};
    char text[512];
    build_text(EXACT_REDS[k], axis, text, sizeof text);
    kp_plan *p = plan_of(ctx, text, axis, d->dt);
    result one, got, cpu;
    KPT_ASSERT_OK(ctx, kp_context_set_engine(ctx, gpu_engine));
    exec_whole(ctx, p, d, t, &one);
    if (t) unsign_zeros(&one);
    partial_on(ctx, p, d, 0, any, 5, 1, t, &got);
    if (t) unsign_zeros(&got);
    assert_same_bits("parts folded in order", text, &got, &one);
    exact_parts_reversed(ctx, p, d, any, 5, t, gpu_only, &got);
    if (t) unsign_zeros(&got);
    assert_same_bits("parts merged in reverse order", text, &got, &one);
    KPT_ASSERT_OK(ctx, kp_context_set_engine(ctx, KP_ENGINE_CPU));
    exec_whole(ctx, p, d, t, &cpu);
    if (k < EXACT_SAME_TERMS) {
        if (t) unsign_zeros(&cpu);
        assert_same_bits("the CPU engine's call", text, &cpu, &one);
        exact_parts_reversed(ctx, p, d, any, 5, t, mixed, &got);
        if (t) unsign_zeros(&got);
        assert_same_bits("GPU and CPU parts merged", text, &got, &one);
    } else {
        assert_close("against the CPU engine", text, &one, &cpu, d->dt == KP_FLOAT32 ? 1e-6 : 1e-13);
    }
    kp_plan_free(p);
}

static void test_exact_any_split(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    KPT_ASSERT_OK(ctx, kp_context_set_sum_scheme(ctx, KP_SUM_EXACT));
    for (int dti = 0; dti <= 1; dti++) {
        data d = make_data(dti ? KP_FLOAT64 : KP_FLOAT32, 8);
        for (int axis = 1; axis >= 0; axis--)
            for (int k = 0; k < (int)(sizeof EXACT_REDS / sizeof EXACT_REDS[0]); k++) {
                check_exact(ctx, k, axis, &d, NULL);
                if (!dti) check_exact(ctx, k, axis, &d, &RANGES);
            }
        free_data(&d);
    }
    kp_context_free(ctx);
}

/* The launch geometry (B, R, chunk length, split and merge kernel) changes no bit. */
static void test_exact_geometry(void **state) {
    (void)state;
    static const char *const geo[][4] = {/* block, rows, chunk, split */
                                         {"", "", "", ""},      {"8", "1", "100", "1"}, {"16", "3", "333", "1"},
                                         {"64", "2", "64", "0"}, {"32", "8", "5000", "1"}};
    const char *chunk0 = getenv("KP_GPU_CHUNK");
    char keep[64];
    snprintf(keep, sizeof keep, "%s", chunk0 ? chunk0 : "");
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    KPT_ASSERT_OK(ctx, kp_context_set_sum_scheme(ctx, KP_SUM_EXACT));
    KPT_ASSERT_OK(ctx, kp_context_set_engine(ctx, gpu_engine));
    data d = make_data(KP_FLOAT32, 4);
    for (int k = 0; k < (int)(sizeof EXACT_REDS / sizeof EXACT_REDS[0]); k++) {
        char text[512];
        build_text(EXACT_REDS[k], 1, text, sizeof text);
        kp_plan *p = plan_of(ctx, text, 1, d.dt);
        result first, got;
        for (size_t g = 0; g < sizeof geo / sizeof geo[0]; g++) {
            setenv("KP_GPU_BLOCK", geo[g][0], 1);
            setenv("KP_GPU_ROWS", geo[g][1], 1);
            setenv("KP_GPU_CHUNK", geo[g][2], 1);
            setenv("KP_GPU_SPLIT", geo[g][3], 1);
            exec_whole(ctx, p, &d, NULL, g ? &got : &first);
            if (g) assert_same_bits(geo[g][0], text, &got, &first);
        }
        kp_plan_free(p);
    }
    unsetenv("KP_GPU_BLOCK");
    unsetenv("KP_GPU_ROWS");
    unsetenv("KP_GPU_SPLIT");
    setenv("KP_GPU_CHUNK", keep, 1);
    free_data(&d);
    kp_context_free(ctx);
}

/* KP_SUM_EXACT with 2 batches on ranges (float64): parts at any points merged
 * give the GPU's one-part bits, within 1e-12 of the CPU engine's. */
static void test_exact_batched_ranges(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    KPT_ASSERT_OK(ctx, kp_context_set_sum_scheme(ctx, KP_SUM_EXACT));
    batched B = make_batched(9);
    const int64_t whole[] = {0, NRED}, any[] = {0, 700, 1301, NRED};
    double want[2 * OUTW], got[2 * OUTW], one[2 * OUTW];
    int64_t iwant[2 * OUTW], igot[2 * OUTW], ione[2 * OUTW];
    for (size_t k = 0; k < 3; k++) /* Sum, LogSumExp, SumSoftMaxWeight */
        for (int axis = 1; axis >= 0; axis--) {
            char text[512];
            build_text(REDS[k], axis, text, sizeof text);
            kp_plan *p = plan_of(ctx, text, axis, KP_FLOAT64);
            KPT_ASSERT_OK(ctx, kp_context_set_engine(ctx, KP_ENGINE_CPU));
            batched_partial(ctx, p, &B, &BATCHED, 0, whole, 1, 1, want, iwant);
            KPT_ASSERT_OK(ctx, kp_context_set_engine(ctx, gpu_engine));
            batched_partial(ctx, p, &B, &BATCHED, 0, whole, 1, 1, one, ione);
            assert_int_equal(kpt_check(text, one, want, NULL, 2 * OUTW, 1e-12, 1e-12), 0);
            batched_partial(ctx, p, &B, &BATCHED, 0, any, 3, 0, got, igot);
            if (memcmp(got, one, sizeof got)) print_error("%s: batched exact parts differ from one part\n", text);
            assert_memory_equal(got, one, sizeof got);
            kp_plan_free(p);
        }
    free_batched(&B);
    kp_context_free(ctx);
}

/* Special values under KP_SUM_EXACT: LogSumExp_Reduction(b) and SumSoftMaxWeight_Reduction(b, 1, y)
 * over a few points b (the same x = b on both engines: + 0 * x adds an exact 0), GPU against CPU:
 * NaN, +inf, -inf, |b| >= 1.5e18 (the largest decides) bit for bit, finite sums within 1e-15. */
static void exact_special_case(kp_context *ctx, const double *bv, int m, int bitwise) {
    const char *texts[] = {"LogSumExp_Reduction(b+0*Elem(x,0),1)", "SumSoftMaxWeight_Reduction(b+0*Elem(x,0),1,y)"};
    const char *al[] = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"};
    double x[2 * 3] = {0.5, 1, 2, 3, -1, 0}, y[2 * 8], out[2][3 * 2];
    for (int k = 0; k < 2 * m; k++) y[k] = k + 1;
    for (size_t t = 0; t < 2; t++) {
        kp_formula *f;
        kp_plan *p;
        KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, texts[t], al, 3, &f));
        KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, KP_FLOAT64, &p));
        int od = kp_formula_out_dim(f);
        kp_array a[3] = {kp_array_2d(x, KP_FLOAT64, 3, 2), kp_array_2d(y, KP_FLOAT64, m, 2),
                         kp_array_2d((void *)(uintptr_t)bv, KP_FLOAT64, m, 1)};
        for (int e = 0; e < 2; e++) {
            kp_array o = kp_array_2d(out[e], KP_FLOAT64, 3, od);
            KPT_ASSERT_OK(ctx, kp_context_set_engine(ctx, e ? KP_ENGINE_CPU : gpu_engine));
            KPT_ASSERT_OK(ctx, kp_plan_exec(p, a, 3, &o, NULL, NULL));
        }
        for (int k = 0; k < 3 * od; k++) {
            double g = out[0][k], c = out[1][k];
            int same = bitwise ? !memcmp(&g, &c, sizeof g) : fabs(g - c) <= 1e-15 * fabs(c);
            if (!same) print_error("%s, b[0] = %g: GPU %.17g, CPU %.17g\n", texts[t], bv[0], g, c);
            assert_true(same);
        }
        kp_plan_free(p);
        kp_formula_free(f);
    }
}

static void test_exact_special(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    KPT_ASSERT_OK(ctx, kp_context_set_sum_scheme(ctx, KP_SUM_EXACT));
    const double inf = INFINITY;
    exact_special_case(ctx, (const double[]){1, 2, 3, 4}, 4, 0);
    exact_special_case(ctx, (const double[]){-2e18, 5, 700, -700}, 4, 0);
    exact_special_case(ctx, (const double[]){1, 2e18, 3, 2e18}, 4, 1);
    exact_special_case(ctx, (const double[]){-inf, -inf}, 2, 1);
    exact_special_case(ctx, (const double[]){1, NAN, 3}, 3, 1);
    exact_special_case(ctx, (const double[]){1, inf, 3}, 3, 1);
    exact_special_case(ctx, (const double[]){-inf, 2e18, inf}, 3, 1);
    kp_context_free(ctx);
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "opencl";
    gpu_engine = strcmp(which, "cuda") == 0 ? KP_ENGINE_CUDA : KP_ENGINE_OPENCL;
    kp_context *ctx;
    if (kp_context_new(&ctx) != KP_OK) return 1;
    if (kp_context_set_engine(ctx, gpu_engine) != KP_OK) {
        printf("SKIPPED: %s engine: %s\n", which, kp_context_message(ctx));
        kp_context_free(ctx);
        return 77;
    }
    kp_context_free(ctx);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_every_reduction),
                                       cmocka_unit_test(test_axis0_float64_offsets),
                                       cmocka_unit_test(test_mixed_engines), cmocka_unit_test(test_ranges),
                                       cmocka_unit_test(test_batched_ranges),
                                       cmocka_unit_test(test_exact_any_split),
                                       cmocka_unit_test(test_exact_geometry),
                                       cmocka_unit_test(test_exact_special),
                                       cmocka_unit_test(test_exact_batched_ranges)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
