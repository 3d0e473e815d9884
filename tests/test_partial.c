/*
 * test_partial.c — partial reduction states (kp_plan_exec_partial, merge,
 * finalize). Every reduction, both axes, float32 and float64, on NR = 70 rows
 * (two row blocks) and NRED = 70,001 reduced points (three chunks):
 *   - parts starting on multiples of KP_STATE_CHUNK folded in order into one
 *     state: bit-identical to one kp_plan_exec (several splits, 1 and 3 threads);
 *   - parts reduced separately and merged in order (any split points):
 *     bit-identical for the Min/Max/KMin family, within 1e-6 (float32) or
 *     1e-13 (float64) of kp_plan_exec for Sum, LogSumExp, SumSoftMaxWeight,
 *     the same bits for 1 and 3 threads, and Sum against a float64 loop;
 *   - batches, a row-summed (parameter gradient) formula, empty parts, a rank
 *     of K larger than a part, and the errors of the calls;
 *   - block-sparse ranges, given to each part in its own coordinates: the
 *     same rules against one ranged kp_plan_exec; with 2 batches too (float64,
 *     clusters in both batches, parts of all rows and of rows [10, NR)).
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

#define NR 70
#define NRED 70001
#define KK 3
#define OUTW (NR * 2 * KK) /* enough for every output here */
#define PAIR_TERM "Sin(5*(x|y))" /* no ties on random data */
#include "partial_fixture.h"

static const char *const REDS[] = {PARTIAL_REDUCTIONS};

/* Block-sparse ranges over the NR rows and NRED reduced points, in global
 * coordinates (partial_fixture.h). The last cluster keeps no point, so its
 * rows meet no pair. */
static const int64_t RANGE_ROWS[] = {0, 20, 20, 45, 45, NR}, RANGE_SLICES[] = {3, 6, 6},
                     RANGE_COLS[] = {0, 5000, 30000, 40000, 65000, NRED, 100, 200, 32768, 33000, 50000, 66000};
static const part_ranges RANGES = PART_RANGES(RANGE_ROWS, RANGE_SLICES, RANGE_COLS);

/* opt with the ranges of points [j0, j1) when t is not NULL. */
static kp_exec_options options_of(const part_ranges *t, int64_t j0, int64_t j1, int64_t *local, kp_ranges *rg) {
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    if (t) {
        *rg = ranges_of_part(t, j0, j1, local);
        opt.ranges = rg;
    }
    return opt;
}

static void finalize(kp_context *ctx, kp_plan *p, const data *d, const void *state, size_t bytes, result *r) {
    int od = 0, id = 0, ndim;
    int64_t shape[KP_MAX_DIMS], ishape[KP_MAX_DIMS];
    kp_array a[3];
    args_of(d, 0, 0, 0, a); /* finalize does not read the reduced side */
    KPT_ASSERT_OK(ctx, kp_plan_output_shape(p, a, 3, NULL, &ndim, shape, ishape));
    od = (int)shape[1];
    id = (int)ishape[1];
    void *vo = kpt_alloc_dtype(OUTW, d->dt);
    memset(r, 0, sizeof *r);
    kp_array o = kp_array_2d(vo, d->dt, NR, od), oi = kp_array_2d(r->ix, KP_INT64, NR, id);
    KPT_ASSERT_OK(ctx, kp_plan_state_finalize(p, a, 3, state, bytes, od ? &o : NULL, id ? &oi : NULL, NULL));
    if (od) kpt_from_dtype(vo, d->dt, (size_t)NR * (size_t)od, r->v);
    free(vo);
}

static void exec_once(kp_context *ctx, kp_plan *p, const data *d, const part_ranges *t, result *r) {
    int ndim;
    int64_t shape[KP_MAX_DIMS], ishape[KP_MAX_DIMS];
    kp_array a[3];
    args_of(d, 0, 0, NRED, a);
    KPT_ASSERT_OK(ctx, kp_plan_output_shape(p, a, 3, NULL, &ndim, shape, ishape));
    int od = (int)shape[1], id = (int)ishape[1];
    void *vo = kpt_alloc_dtype(OUTW, d->dt);
    memset(r, 0, sizeof *r);
    kp_array o = kp_array_2d(vo, d->dt, NR, od), oi = kp_array_2d(r->ix, KP_INT64, NR, id);
    int64_t local[2 * PART_RANGES_MAX];
    kp_ranges rg;
    kp_exec_options opt = options_of(t, 0, NRED, local, &rg);
    KPT_ASSERT_OK(ctx, kp_plan_exec(p, a, 3, od ? &o : NULL, id ? &oi : NULL, &opt));
    if (od) kpt_from_dtype(vo, d->dt, (size_t)NR * (size_t)od, r->v);
    free(vo);
}

/* Reduces the parts cut at bounds[0] = 0 < ... < bounds[n] = NRED. fold: into
 * one state, in order; else one state per part, merged left to right. */
static void partial(kp_context *ctx, kp_plan *p, const data *d, const int64_t *bounds, int n, int fold,
                    int nthreads, const part_ranges *t, result *r) {
    kp_array a[3];
    args_of(d, 0, 0, NRED, a);
    kp_state_info info;
    KPT_ASSERT_OK(ctx, kp_plan_state_info(p, a, 3, NULL, &info));
    assert_int_equal(info.nrows, NR);
    assert_int_equal(info.nbatch, 1);
    assert_true(info.real_offset == KP_STATE_HEADER_BYTES);
    void *acc = malloc(info.bytes), *part = malloc(info.bytes);
    KPT_ASSERT_OK(ctx, kp_plan_state_init(p, &info, acc));
    for (int k = 0; k < n; k++) {
        int64_t local[2 * PART_RANGES_MAX];
        kp_ranges rg;
        kp_exec_options opt = options_of(t, bounds[k], bounds[k + 1], local, &rg);
        opt.num_threads = nthreads;
        args_of(d, 0, bounds[k], bounds[k + 1], a);
        if (fold) {
            KPT_ASSERT_OK(ctx, kp_plan_exec_partial(p, a, 3, bounds[k], acc, info.bytes, &opt));
        } else {
            KPT_ASSERT_OK(ctx, kp_plan_state_init(p, &info, part));
            KPT_ASSERT_OK(ctx, kp_plan_exec_partial(p, a, 3, bounds[k], part, info.bytes, &opt));
            KPT_ASSERT_OK(ctx, kp_plan_state_merge(p, acc, part, info.bytes));
        }
    }
    finalize(ctx, p, d, acc, info.bytes, r);
    free(acc);
    free(part);
}

static int is_select(const char *name) { return strncmp(name, "Sum", 3) && strncmp(name, "LogSumExp", 9); }

static void assert_same(const char *what, const char *text, const result *a, const result *b) {
    if (memcmp(a, b, sizeof *a)) print_error("%s: %s differs from one kp_plan_exec\n", text, what);
    assert_memory_equal(a, b, sizeof *a);
}

/* Every reduction, both axes and dtypes, dense (t NULL) or on the ranges t. */
static void every_reduction(const part_ranges *t) {
    const int64_t C = KP_STATE_CHUNK;
    const int64_t aligned[][5] = {{0, C, 2 * C, NRED}, {0, 2 * C, NRED}, {0, C, C, NRED}}; /* C, C: an empty part */
    const int naligned[] = {3, 2, 3};
    const int64_t any[][5] = {{0, 1000, 40000, NRED}, {0, NRED - 1, NRED}, {0, 3, 5, 33000, NRED}};
    const int nany[] = {3, 2, 4};
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    for (int dti = 0; dti <= (t ? 0 : 1); dti++) { /* ranges: float32 only, the rules do not depend on it */
        data d = make_data(dti ? KP_FLOAT64 : KP_FLOAT32, 11);
        for (int axis = 0; axis <= 1; axis++)
            for (size_t k = 0; k < sizeof REDS / sizeof REDS[0]; k++) {
                char text[512];
                build_text(REDS[k], axis, text, sizeof text);
                kp_plan *p = plan_of(ctx, text, axis, d.dt);
                result one, got, again;
                exec_once(ctx, p, &d, t, &one);
                for (int s = 0; s < 3; s++) {
                    partial(ctx, p, &d, aligned[s], naligned[s], 1, s == 0 ? 1 : 0, t, &got);
                    assert_same("aligned parts folded in order", text, &got, &one);
                }
                for (int s = 0; s < 3; s++) {
                    partial(ctx, p, &d, any[s], nany[s], 0, 0, t, &got);
                    if (s == 0) { /* deterministic for any thread count */
                        partial(ctx, p, &d, any[s], nany[s], 0, 1, t, &again);
                        assert_memory_equal(&got, &again, sizeof got);
                    }
                    if (is_select(REDS[k])) {
                        assert_same("parts merged in order", text, &got, &one);
                    } else {
                        /* relative to the largest output: the Sin column's sums cancel */
                        double tol = dti ? 1e-13 : 1e-6, big = 0;
                        for (int e = 0; e < OUTW; e++) big = fmax(big, fabs(one.v[e]));
                        assert_int_equal(kpt_check(text, got.v, one.v, NULL, OUTW, tol, tol * big), 0);
                    }
                }
                kp_plan_free(p);
            }
        free_data(&d);
    }
    kp_context_free(ctx);
}

static void test_every_reduction(void **state) {
    (void)state;
    every_reduction(NULL);
}

/* Block-sparse parts; the ranges change the result (they are not ignored). */
static void test_ranges(void **state) {
    (void)state;
    every_reduction(&RANGES);
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    data d = make_data(KP_FLOAT64, 11);
    kp_plan *p = plan_of(ctx, "Sum_Reduction(SqDist(x,y)*b,1)", 1, KP_FLOAT64);
    result dense, ranged;
    exec_once(ctx, p, &d, NULL, &dense);
    const int64_t bounds[] = {0, 12345, 50000, NRED};
    partial(ctx, p, &d, bounds, 3, 0, 0, &RANGES, &ranged);
    assert_true(ranged.v[NR - 1] == 0 && dense.v[NR - 1] > 0); /* the last cluster meets no point */
    assert_true(fabs(ranged.v[0] - dense.v[0]) > 1e-3 * dense.v[0]);
    kp_plan_free(p);
    free_data(&d);
    kp_context_free(ctx);
}

/* Two batches on ranges (float64), in flattened (batch, point) indices: batch
 * 0 keeps RANGES; batch 1 has a cluster over ranges crossing chunk bounds and
 * ending at the batch's last point, and one whose rows the part of rows
 * [R0B, NR) cuts; rows [60, NR) of batch 1 are in no cluster. */
#define R0B 10
static const int64_t BATCHED_ROWS[] = {0, 20, 20, 45, 45, NR, NR + 5, NR + 30, NR + 30, NR + 60},
                     BATCHED_SLICES[] = {3, 6, 6, 8, 9},
                     BATCHED_COLS[] = {0, 5000, 30000, 40000, 65000, NRED, 100, 200, 32768, 33000, 50000, 66000,
                                       NRED + 300, NRED + 33000, NRED + 65000, 2 * NRED, NRED + 32000, NRED + 40000};
static const part_ranges BATCHED = PART_RANGES(BATCHED_ROWS, BATCHED_SLICES, BATCHED_COLS);

/* got (rows [r0, NR) of each batch, width w) against those rows of want (all
 * NR rows): the same bits (exact) or within tol of want's largest value. */
static void assert_batched_rows(const char *text, const double *got, const int64_t *igot, const double *want,
                                const int64_t *iwant, int64_t r0, int w, int wi, int exact, double tol) {
    double sub[2 * OUTW], big = 0;
    int64_t isub[2 * OUTW];
    const int64_t nr = NR - r0;
    for (int64_t bt = 0; bt < 2; bt++)
        for (int64_t r = r0; r < NR; r++) {
            memcpy(sub + (bt * nr + r - r0) * w, want + (bt * NR + r) * w, (size_t)w * sizeof *sub);
            memcpy(isub + (bt * nr + r - r0) * wi, iwant + (bt * NR + r) * wi, (size_t)wi * sizeof *isub);
        }
    const size_t nv = (size_t)(2 * nr * w), ni = (size_t)(2 * nr * wi);
    assert_int_equal(kpt_check_index(text, igot, isub, ni), 0);
    if (exact) {
        if (memcmp(got, sub, nv * sizeof *got)) print_error("%s: batched ranged parts differ from one call\n", text);
        assert_memory_equal(got, sub, nv * sizeof *got);
        return;
    }
    for (size_t e = 0; e < nv; e++) big = fmax(big, fabs(sub[e]));
    assert_int_equal(kpt_check(text, got, sub, NULL, nv, tol, tol * big), 0);
}

/* Batched ranged parts, every reduction, both axes, against one ranged
 * kp_plan_exec: aligned parts folded in order give its bits; parts at any
 * points merged, and the parts of rows [R0B, NR) (clusters cut, row_offset
 * set), follow the rules of unbatched parts. */
static void test_batched_ranges(void **state) {
    (void)state;
    const int64_t C = KP_STATE_CHUNK;
    const int64_t aligned[] = {0, C, 2 * C, NRED}, any[] = {0, 1000, 32900, NRED};
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    batched B = make_batched(13);
    static double one[2 * OUTW], got[2 * OUTW];
    static int64_t ione[2 * OUTW], igot[2 * OUTW];
    for (int axis = 0; axis <= 1; axis++)
        for (size_t k = 0; k < sizeof REDS / sizeof REDS[0]; k++) {
            char text[512];
            build_text(REDS[k], axis, text, sizeof text);
            kp_plan *p = plan_of(ctx, text, axis, KP_FLOAT64);
            kp_array a[3];
            batched_args(&B, 0, 0, NRED, a);
            int ndim;
            int64_t shape[KP_MAX_DIMS], ishape[KP_MAX_DIMS];
            KPT_ASSERT_OK(ctx, kp_plan_output_shape(p, a, 3, NULL, &ndim, shape, ishape));
            const int w = (int)shape[ndim - 1], wi = (int)ishape[ndim - 1], exact = is_select(REDS[k]);
            batched_exec(ctx, p, &B, &BATCHED, one, ione);
            batched_partial(ctx, p, &B, &BATCHED, 0, aligned, 3, 1, got, igot);
            assert_batched_rows(text, got, igot, one, ione, 0, w, wi, 1, 0);
            batched_partial(ctx, p, &B, &BATCHED, 0, any, 3, 0, got, igot);
            assert_batched_rows(text, got, igot, one, ione, 0, w, wi, exact, 1e-13);
            batched_partial(ctx, p, &B, &BATCHED, R0B, any, 3, 0, got, igot);
            assert_batched_rows(text, got, igot, one, ione, R0B, w, wi, exact, 1e-13);
            kp_plan_free(p);
        }
    /* The ranges matter in both batches: batch 1's rows [60, NR) meet no pair. */
    kp_plan *p = plan_of(ctx, "Sum_Reduction(SqDist(x,y)*b,1)", 1, KP_FLOAT64);
    batched_exec(ctx, p, &B, &BATCHED, one, ione);
    assert_true(one[NR + 60] == 0 && one[NR + 59] > 0 && one[NR - 1] == 0 && one[0] > 0);
    kp_plan_free(p);
    free_batched(&B);
    kp_context_free(ctx);
}

/* Sum of F's first component over a split merged from parts, against a float64 loop. */
static void test_sum_reference(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    data d = make_data(KP_FLOAT64, 11);
    kp_plan *p = plan_of(ctx, "Sum_Reduction(SqDist(x,y)*b,1)", 1, KP_FLOAT64);
    const int64_t bounds[] = {0, 12345, 50000, NRED};
    result got;
    partial(ctx, p, &d, bounds, 3, 0, 0, NULL, &got);
    double ref[NR];
    const double *x = d.x, *y = d.y, *b = d.b;
    for (int i = 0; i < NR; i++) {
        double s = 0;
        for (int64_t j = 0; j < NRED; j++) {
            double dx = x[2 * i] - y[2 * j], dy = x[2 * i + 1] - y[2 * j + 1];
            s += (dx * dx + dy * dy) * b[j];
        }
        ref[i] = s;
    }
    assert_int_equal(kpt_check("merged Sum", got.v, ref, NULL, NR, 1e-12, 0), 0);
    kp_plan_free(p);
    free_data(&d);
    kp_context_free(ctx);
}

/* Batches (2 x NR rows, the reduced cloud batched too) and a parameter gradient
 * (rows summed): aligned folds give kp_plan_exec's bits. */
static void test_batches_and_row_sums(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    kpt_rng r;
    kpt_rng_seed(&r, 5);
    const int64_t M = 2 * KP_STATE_CHUNK + 77;
    double *x = kpt_random_array(&r, 2 * NR * 2, -1, 1), *y = kpt_random_array(&r, 2 * (size_t)M * 2, -1, 1);
    double g = 0.7;
    kp_formula *f, *grad;
    const char *al[] = {"x = Vi(2)", "y = Vj(2)", "g = Pm(1)"};
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "KMin_ArgKMin_Reduction(SqDist(x,y)*g,3,1)", al, 3, &f));
    kp_formula *fs;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*g),1)", al, 3, &fs));
    KPT_ASSERT_OK(ctx, kp_formula_grad(ctx, fs, 2, &grad)); /* d/dg: rows summed */
    assert_int_equal(kp_formula_sums_rows(grad), 1);
    for (int which = 0; which < 2; which++) {
        kp_formula *ff = which ? grad : f;
        kp_plan *p;
        KPT_ASSERT_OK(ctx, kp_plan_new(ctx, ff, KP_FLOAT64, &p));
        int is_batched = !which;
        int64_t xs[3] = {2, NR, 2}, ys[3] = {2, M, 2}, gs[1] = {1}, es[2] = {NR, 1};
        double *e = kpt_random_array(&r, NR, -1, 1);
        kp_array a[4] = {is_batched ? kp_array_nd(x, KP_FLOAT64, 3, xs) : kp_array_2d(x, KP_FLOAT64, NR, 2),
                         is_batched ? kp_array_nd(y, KP_FLOAT64, 3, ys) : kp_array_2d(y, KP_FLOAT64, M, 2),
                         kp_array_nd(&g, KP_FLOAT64, 1, gs), kp_array_nd(e, KP_FLOAT64, 2, es)};
        size_t na = (size_t)kp_formula_num_args(ff);
        double v1[2 * NR * KK], v2[2 * NR * KK];
        int64_t i1[2 * NR * KK], i2[2 * NR * KK];
        memset(v1, 0, sizeof v1), memset(v2, 0, sizeof v2), memset(i1, 0, sizeof i1), memset(i2, 0, sizeof i2);
        int ndim;
        int64_t sh[KP_MAX_DIMS], ish[KP_MAX_DIMS];
        KPT_ASSERT_OK(ctx, kp_plan_output_shape(p, a, na, NULL, &ndim, sh, ish));
        kp_array o1 = kp_array_nd(v1, KP_FLOAT64, ndim, sh), o2 = kp_array_nd(v2, KP_FLOAT64, ndim, sh);
        kp_array n1 = kp_array_nd(i1, KP_INT64, ndim, ish), n2 = kp_array_nd(i2, KP_INT64, ndim, ish);
        int has_idx = ish[ndim - 1] > 0;
        KPT_ASSERT_OK(ctx, kp_plan_exec(p, a, na, &o1, has_idx ? &n1 : NULL, NULL));
        kp_state_info info;
        KPT_ASSERT_OK(ctx, kp_plan_state_info(p, a, na, NULL, &info));
        assert_int_equal(info.nbatch, is_batched ? 2 : 1);
        assert_int_equal(info.nrows, NR);
        void *st = malloc(info.bytes);
        KPT_ASSERT_OK(ctx, kp_plan_state_init(p, &info, st));
        for (int64_t j0 = 0; j0 < M; j0 += KP_STATE_CHUNK) {
            int64_t j1 = j0 + KP_STATE_CHUNK < M ? j0 + KP_STATE_CHUNK : M;
            kp_array part[4] = {a[0], a[1], a[2], a[3]};
            part[1].data = y + (size_t)j0 * 2;
            part[1].shape[part[1].ndim - 2] = j1 - j0;
            KPT_ASSERT_OK(ctx, kp_plan_exec_partial(p, part, na, j0, st, info.bytes, NULL));
        }
        KPT_ASSERT_OK(ctx, kp_plan_state_finalize(p, a, na, st, info.bytes, &o2, has_idx ? &n2 : NULL, NULL));
        assert_memory_equal(v1, v2, sizeof v1);
        assert_memory_equal(i1, i2, sizeof i1);
        free(st);
        free(e);
        kp_plan_free(p);
    }
    kp_formula_free(f);
    kp_formula_free(fs);
    kp_formula_free(grad);
    free(x);
    free(y);
    kp_context_free(ctx);
}

/* IndexJ() on the reduced axis reads global indices (offset), IndexI() of the
 * rows reads row_offset + r: a state of rows [10, NR) folded from parts equals
 * those rows of one kp_plan_exec. */
static void test_indices_as_numbers(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    data d = make_data(KP_FLOAT64, 11);
    kp_plan *p = plan_of(ctx, "Sum_Reduction(Exp(-SqDist(x,y))*(IndexJ()+2*IndexI()),1)", 1, KP_FLOAT64);
    result one;
    exec_once(ctx, p, &d, NULL, &one);
    const int R0 = 10;
    kp_array a[3];
    args_of(&d, 0, 0, NRED, a);
    a[0].data = (double *)d.x + 2 * R0;
    a[0].shape[0] = NR - R0;
    kp_state_info info;
    KPT_ASSERT_OK(ctx, kp_plan_state_info(p, a, 3, NULL, &info));
    info.row_offset = R0;
    void *st = malloc(info.bytes);
    KPT_ASSERT_OK(ctx, kp_plan_state_init(p, &info, st));
    for (int64_t j0 = 0; j0 < NRED; j0 += KP_STATE_CHUNK) {
        int64_t j1 = j0 + KP_STATE_CHUNK < NRED ? j0 + KP_STATE_CHUNK : NRED;
        kp_array part[3];
        args_of(&d, 0, j0, j1, part);
        part[0] = a[0];
        KPT_ASSERT_OK(ctx, kp_plan_exec_partial(p, part, 3, j0, st, info.bytes, NULL));
    }
    double v[NR];
    kp_array o = kp_array_2d(v, KP_FLOAT64, NR - R0, 1);
    KPT_ASSERT_OK(ctx, kp_plan_state_finalize(p, a, 3, st, info.bytes, &o, NULL, NULL));
    assert_memory_equal(v, one.v + R0, (size_t)(NR - R0) * sizeof(double));
    free(st);
    kp_plan_free(p);
    free_data(&d);
    kp_context_free(ctx);
}

static void test_errors(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    data d = make_data(KP_FLOAT32, 11);
    kp_plan *p = plan_of(ctx, "KMin_Reduction(SqDist(x,y),3,1)", 1, KP_FLOAT32);
    kp_plan *q = plan_of(ctx, "Sum_Reduction(SqDist(x,y),1)", 1, KP_FLOAT32);
    kp_array a[3];
    args_of(&d, 0, 0, 2, a); /* a part of 2 points: fewer than K is fine for a part */
    kp_state_info info;
    KPT_ASSERT_OK(ctx, kp_plan_state_info(p, a, 3, NULL, &info));
    void *st = malloc(info.bytes), *other = malloc(info.bytes);
    KPT_ASSERT_OK(ctx, kp_plan_state_init(p, &info, st));
    KPT_ASSERT_OK(ctx, kp_plan_exec_partial(p, a, 3, 0, st, info.bytes, NULL));
    float out[NR * KK];
    kp_array o = kp_array_2d(out, KP_FLOAT32, NR, KK);
    assert_int_equal(kp_plan_state_finalize(p, a, 3, st, info.bytes, &o, NULL, NULL), KP_ERR_ARGUMENT);
    assert_non_null(strstr(kp_context_message(ctx), "K = 3"));
    assert_int_equal(kp_plan_exec_partial(p, a, 3, -1, st, info.bytes, NULL), KP_ERR_ARGUMENT);
    assert_int_equal(kp_plan_exec_partial(p, a, 3, 0, st, info.bytes - 1, NULL), KP_ERR_ARGUMENT);
    memset(other, 0, info.bytes);
    assert_int_equal(kp_plan_state_merge(p, st, other, info.bytes), KP_ERR_ARGUMENT); /* not a state */
    assert_non_null(strstr(kp_context_message(ctx), "not a state buffer"));
    kp_state_info qi;
    KPT_ASSERT_OK(ctx, kp_plan_state_info(q, a, 3, NULL, &qi));
    void *qs = malloc(qi.bytes);
    KPT_ASSERT_OK(ctx, kp_plan_state_init(q, &qi, qs));
    assert_int_equal(kp_plan_exec_partial(p, a, 3, 0, qs, qi.bytes, NULL), KP_ERR_ARGUMENT); /* another plan */
    assert_non_null(strstr(kp_context_message(ctx), "another reduction"));
    assert_int_equal(kp_plan_exec_partial(p, a, 3, 0, NULL, info.bytes, NULL), KP_ERR_NULL);
    a[0].shape[0] = NR - 1; /* other rows than the state's */
    assert_int_equal(kp_plan_exec_partial(p, a, 3, 0, st, info.bytes, NULL), KP_ERR_ARGUMENT);
    a[0].shape[0] = NR;
    a[2].dtype = KP_FLOAT64;
    assert_int_equal(kp_plan_exec_partial(p, a, 3, 0, st, info.bytes, NULL), KP_ERR_DTYPE);
    a[2].dtype = KP_FLOAT32;
    /* A part's ranges count its own points: one cluster of all NR rows over
     * points [0, 3) is past this part's 2 points (axis 1 reads ranges_i,
     * slices_i, redranges_j). */
    int64_t rows[2] = {0, NR}, cols[2] = {0, 3}, slice[1] = {1};
    kp_ranges rg = {8, rows, slice, cols, cols, slice, rows, 1, 1, 1, 1, 1, 1};
    kp_exec_options ro = KP_EXEC_OPTIONS_DEFAULT;
    ro.ranges = &rg;
    assert_int_equal(kp_plan_exec_partial(p, a, 3, 0, st, info.bytes, &ro), KP_ERR_ARGUMENT);
    assert_non_null(strstr(kp_context_message(ctx), "redranges_j"));
    /* The layout and the finalization do not read the ranges. */
    KPT_ASSERT_OK(ctx, kp_plan_state_info(p, a, 3, &ro, &qi));
    assert_int_equal(qi.bytes, info.bytes);
    /* kp_plan_ranges_check: the same ranges against the whole problem's
     * sizes, with kp_plan_exec's messages (3 points: valid; 2: past them;
     * two batches: the cluster of NR rows in batch 0, its range past batch 0's
     * 2 points); NULL ranges are dense. */
    KPT_ASSERT_OK(ctx, kp_plan_ranges_check(p, &rg, 1, NR, 3));
    KPT_ASSERT_OK(ctx, kp_plan_ranges_check(p, NULL, 1, NR, 0));
    assert_int_equal(kp_plan_ranges_check(p, &rg, 1, NR, 2), KP_ERR_ARGUMENT);
    assert_non_null(strstr(kp_context_message(ctx), "redranges_j[0] = [0, 3) is outside [0, 2]"));
    assert_int_equal(kp_plan_ranges_check(p, &rg, 2, NR, 2), KP_ERR_ARGUMENT);
    assert_int_equal(kp_plan_ranges_check(p, &rg, 1, NR - 1, 3), KP_ERR_ARGUMENT);
    assert_non_null(strstr(kp_context_message(ctx), "ranges_i[0]"));
    assert_int_equal(kp_plan_ranges_check(p, &rg, 0, NR, 3), KP_ERR_ARGUMENT);
    assert_int_equal(kp_plan_ranges_check(NULL, &rg, 1, NR, 3), KP_ERR_NULL);
    kp_formula *fs[2];
    const char *al[] = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"};
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(SqDist(x,y)*b,1)", al, 3, &fs[0]));
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(SqDist(x,y)*b,0)", al, 3, &fs[1]));
    kp_plan *joint;
    KPT_ASSERT_OK(ctx, kp_plan_new_joint(ctx, (const kp_formula *const *)fs, 2, KP_FLOAT32, &joint));
    assert_int_equal(kp_plan_state_info(joint, a, 3, NULL, &qi), KP_ERR_ARGUMENT);
    assert_int_equal(kp_plan_ranges_check(joint, &rg, 1, NR, 3), KP_ERR_ARGUMENT);
    kp_plan_free(joint);
    kp_formula_free(fs[0]);
    kp_formula_free(fs[1]);
    free(st);
    free(other);
    free(qs);
    kp_plan_free(p);
    kp_plan_free(q);
    free_data(&d);
    kp_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_every_reduction), cmocka_unit_test(test_ranges),
                                       cmocka_unit_test(test_batched_ranges),
                                       cmocka_unit_test(test_sum_reference),
                                       cmocka_unit_test(test_batches_and_row_sums), cmocka_unit_test(test_indices_as_numbers),
                                       cmocka_unit_test(test_errors)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
