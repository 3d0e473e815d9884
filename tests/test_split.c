/*
 * test_split.c — the CPU engine's split of the reduced axis across threads
 * (few rows, many reduced points: each thread reduces chunks of 32768 points,
 * the partial states merge in a fixed order). The default suites reach it only
 * in their large cases; here, every reduction on N = 5 rows and M = 70,001
 * points (three chunks, the last one partial), both axes, float32 and float64:
 *   - the same bits with 1, 2 and 3 threads (kp.h: results do not depend on
 *     the thread count, whichever way the work is split);
 *   - against direct float64 loops for Sum, LogSumExp, Min/ArgMin, Max/ArgMax
 *     and KMin/ArgKMin (indices exactly, ties impossible with this data).
 * And the split of the rows into blocks: blocks of a run read the COL tiles
 * that the run computed once (engine.c's cache) instead of their own, the
 * same bits as calls on fewer rows (one block, no cache).
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

#define NR 5
#define NRED 70001
#define KK 3

static const char *const REDS[] = {"Sum_Reduction(@,#)",       "LogSumExp_Reduction(@,#)",
                                   "Min_ArgMin_Reduction(@,#)", "Max_ArgMax_Reduction(@,#)",
                                   "KMin_ArgKMin_Reduction(@,3,#)", "SumSoftMaxWeight_Reduction(@,#,b)",
                                   "ArgMin_Reduction(@,#)",    "Min_Reduction(@,#)",
                                   "ArgKMin_Reduction(@,3,#)", "KMin_Reduction(@,3,#)",
                                   "Max_Reduction(@,#)",       "ArgMax_Reduction(@,#)"};

/* F(x, y) = |x - y|^2 + 0.1 sin(5 x.y): smooth, no ties on random data. */
static double F_of(const double *x, const double *y) {
    double d = 0, dot = 0;
    for (int c = 0; c < 2; c++) {
        d += (x[c] - y[c]) * (x[c] - y[c]);
        dot += x[c] * y[c];
    }
    return d + 0.1 * sin(5 * dot);
}

static void build_text(const char *red, int axis, char *buf, size_t size) {
    char tmp[256];
    const char *p = red;
    size_t n = 0;
    for (; *p && n + 40 < sizeof tmp; p++) {
        if (*p == '@') n += (size_t)snprintf(tmp + n, sizeof tmp - n, "(SqDist(x,y)+0.1*Sin(5*(x|y)))");
        else if (*p == '#') tmp[n++] = (char)('0' + axis);
        else tmp[n++] = *p;
    }
    tmp[n] = 0;
    snprintf(buf, size, "%s", tmp);
}

typedef struct data {
    double *x, *y, *b; /* x: the rows' cloud, y: the reduced cloud (as Vi / Vj by axis) */
} data;

/* Runs text on (x: rows, y: reduced) with nthreads; values and indices into v, ix. */
static kp_status run(kp_context *ctx, const char *text, int axis, kp_dtype dt, const data *d, int nthreads,
                     double *v, int64_t *ix) {
    const char *al1[] = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"};
    const char *al0[] = {"x = Vj(2)", "y = Vi(2)", "b = Vi(1)"};
    kp_formula *f;
    kp_status st = kp_formula_parse(ctx, text, axis == 1 ? al1 : al0, 3, &f);
    if (st != KP_OK) return st;
    int na = kp_formula_num_args(f), od = kp_formula_out_dim(f), id = kp_formula_out_index_dim(f);
    void *xs = kpt_to_dtype(d->x, NR * 2, dt), *ys = kpt_to_dtype(d->y, NRED * 2, dt), *bs = kpt_to_dtype(d->b, NRED, dt);
    void *vo = kpt_alloc_dtype((size_t)NR * KK, dt);
    kp_array a[3] = {kp_array_2d(xs, dt, NR, 2), kp_array_2d(ys, dt, NRED, 2), kp_array_2d(bs, dt, NRED, 1)};
    if (axis == 0) { /* Vj first: x (rows) is position 0 as Vj, y position 1 as Vi */
        a[0] = kp_array_2d(xs, dt, NR, 2);
        a[1] = kp_array_2d(ys, dt, NRED, 2);
    }
    kp_array o = kp_array_2d(vo, dt, NR, od > 0 ? od : 1), oi = kp_array_2d(ix, KP_INT64, NR, id > 0 ? id : 1);
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.num_threads = nthreads;
    kp_plan *p;
    st = kp_plan_new(ctx, f, dt, &p);
    if (st == KP_OK) st = kp_plan_exec(p, a, (size_t)na, od ? &o : NULL, id ? &oi : NULL, &opt);
    if (st == KP_OK && od) kpt_from_dtype(vo, dt, (size_t)NR * (size_t)od, v);
    kp_plan_free(p);
    kp_formula_free(f);
    free(xs);
    free(ys);
    free(bs);
    free(vo);
    return st;
}

/* Direct float64 references of the Min/Max/KMin/Sum/LogSumExp families. */
static void reference(const data *d, double *sum, double *lse, double *mn, int64_t *imn, double *mx, int64_t *imx,
                      double *kmin, int64_t *ikmin) {
    for (int i = 0; i < NR; i++) {
        double s = 0, m = INFINITY, M = -INFINITY, best[KK] = {INFINITY, INFINITY, INFINITY};
        int64_t im = 0, iM = 0, ib[KK] = {0, 0, 0};
        for (int64_t j = 0; j < NRED; j++) {
            double f = F_of(d->x + 2 * i, d->y + 2 * j);
            s += f;
            if (f < m) m = f, im = j;
            if (f > M) M = f, iM = j;
            for (int k = 0; k < KK; k++)
                if (f < best[k]) {
                    for (int l = KK - 1; l > k; l--) best[l] = best[l - 1], ib[l] = ib[l - 1];
                    best[k] = f, ib[k] = j;
                    break;
                }
        }
        double e = 0;
        for (int64_t j = 0; j < NRED; j++) e += exp(F_of(d->x + 2 * i, d->y + 2 * j) - M);
        sum[i] = s, lse[i] = M + log(e), mn[i] = m, imn[i] = im, mx[i] = M, imx[i] = iM;
        for (int k = 0; k < KK; k++) kmin[i * KK + k] = best[k], ikmin[i * KK + k] = ib[k];
    }
}

static void test_split_every_reduction(void **state) {
    (void)state;
    kpt_rng r;
    kpt_rng_seed(&r, 7);
    data d = {kpt_random_array(&r, NR * 2, -1, 1), kpt_random_array(&r, NRED * 2, -1, 1),
              kpt_random_array(&r, NRED, 0, 1)};
    /* Data exact in float32, so both dtypes see the same points. */
    kpt_round_to_dtype(d.x, NR * 2, KP_FLOAT32);
    kpt_round_to_dtype(d.y, NRED * 2, KP_FLOAT32);
    kpt_round_to_dtype(d.b, NRED, KP_FLOAT32);
    double sum[NR], lse[NR], mn[NR], mx[NR], kmin[NR * KK];
    int64_t imn[NR], imx[NR], ikmin[NR * KK];
    reference(&d, sum, lse, mn, imn, mx, imx, kmin, ikmin);
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    for (int axis = 0; axis <= 1; axis++)
        for (int dt = 0; dt <= 1; dt++)
            for (size_t k = 0; k < sizeof REDS / sizeof REDS[0]; k++) {
                kp_dtype dtype = dt ? KP_FLOAT64 : KP_FLOAT32;
                char text[512];
                build_text(REDS[k], axis, text, sizeof text);
                double v[3][NR * KK];
                int64_t ix[3][NR * KK];
                memset(v, 0, sizeof v);
                memset(ix, 0, sizeof ix);
                for (int t = 0; t < 3; t++) KPT_ASSERT_OK(ctx, run(ctx, text, axis, dtype, &d, t + 1, v[t], ix[t]));
                for (int t = 1; t < 3; t++) {
                    if (memcmp(v[0], v[t], sizeof v[0]) || memcmp(ix[0], ix[t], sizeof ix[0]))
                        print_error("%s (%s): %d threads differ from 1\n", text, kpt_dtype_name(dtype), t + 1);
                    assert_memory_equal(v[0], v[t], sizeof v[0]);
                    assert_memory_equal(ix[0], ix[t], sizeof ix[0]);
                }
                double rtol = dt ? 1e-10 : 1e-5;
                const char *name = REDS[k];
                if (!strncmp(name, "Sum_", 4)) assert_int_equal(kpt_check(text, v[0], sum, NULL, NR, rtol, 0), 0);
                if (!strncmp(name, "LogSumExp", 9)) assert_int_equal(kpt_check(text, v[0], lse, NULL, NR, rtol, 0), 0);
                if (!strncmp(name, "Min_", 4)) assert_int_equal(kpt_check(text, v[0], mn, NULL, NR, rtol, 1e-7), 0);
                if (!strncmp(name, "Max_", 4)) assert_int_equal(kpt_check(text, v[0], mx, NULL, NR, rtol, 1e-7), 0);
                if (!strncmp(name, "KMin_", 5)) assert_int_equal(kpt_check(text, v[0], kmin, NULL, NR * KK, rtol, 1e-7), 0);
                if (!dt) continue; /* float32 may rank near-equal values otherwise */
                if (!strncmp(name, "Min_ArgMin", 10) || !strncmp(name, "ArgMin", 6))
                    assert_int_equal(kpt_check_index(text, ix[0], imn, NR), 0);
                if (!strncmp(name, "Max_ArgMax", 10) || !strncmp(name, "ArgMax", 6))
                    assert_int_equal(kpt_check_index(text, ix[0], imx, NR), 0);
                if (strstr(name, "ArgKMin")) assert_int_equal(kpt_check_index(text, ix[0], ikmin, NR * KK), 0);
            }
    kp_context_free(ctx);
    free(d.x);
    free(d.y);
    free(d.b);
}

/* ------------------------------------------------------------ COL cache */

enum { CB = 3, CN = 300, CM = 1300, CSLICE = 50 };

/* Rows [r0, r0 + n) of every batch of (x: CB x CN x 3, y: CB x CM x 3,
 * b: CB x CM x 1, g: 1) on text, values (CB x n x od) and indices (CB x n x id)
 * into v, ix; data of dtype dt. */
static kp_status run_rows(kp_context *ctx, const char *text, kp_dtype dt, const void *x, const void *y,
                          const void *b, const void *g, int64_t r0, int64_t n, void *v, int64_t *ix) {
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "b = Vj(1)", "g = Pm(1)"};
    kp_formula *f;
    kp_status st = kp_formula_parse(ctx, text, al, 4, &f);
    if (st != KP_OK) return st;
    size_t es = kpt_dtype_size(dt);
    int od = kp_formula_out_dim(f), id = kp_formula_out_index_dim(f);
    /* The rows [r0, r0 + n) of every batch, as one batched array. */
    void *xs = malloc((size_t)(CB * n * 3) * es);
    for (int bb = 0; bb < CB; bb++)
        memcpy((char *)xs + (size_t)(bb * n * 3) * es, (const char *)x + (size_t)((bb * CN + r0) * 3) * es,
               (size_t)(n * 3) * es);
    int64_t sx[3] = {CB, n, 3}, sy[3] = {CB, CM, 3}, sb[3] = {CB, CM, 1}, so[3] = {CB, n, od}, si[3] = {CB, n, id};
    kp_array a[4] = {kp_array_nd(xs, dt, 3, sx), kp_array_nd((void *)y, dt, 3, sy), kp_array_nd((void *)b, dt, 3, sb),
                     kp_array_1d((void *)g, dt, 1)};
    kp_array o = kp_array_nd(v, dt, 3, so), oi = kp_array_nd(ix, KP_INT64, 3, si);
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.num_threads = 2;
    kp_plan *p;
    st = kp_plan_new(ctx, f, dt, &p);
    if (st == KP_OK) st = kp_plan_exec(p, a, 4, od ? &o : NULL, id ? &oi : NULL, &opt);
    kp_plan_free(p);
    kp_formula_free(f);
    free(xs);
    return st;
}

/* Batches of 300 rows (5 blocks) and 1300 reduced points (the last tile
 * partial), COL values that read a parameter (y * g, Sin(b * g)): the whole
 * call against slices of 50 rows, bit for bit, every reduction family. */
static void test_col_cache(void **state) {
    (void)state;
    static const char *const texts[] = {
        "Sum_Reduction(Exp(-SqDist(x,y*g))*Sin(b*g),1)", "LogSumExp_Reduction(-SqDist(x,y*g)+Sin(b*g),1)",
        "SumSoftMaxWeight_Reduction(-SqDist(x,y*g),1,Sin(b*g))", "Min_ArgMin_Reduction(SqDist(x,y*g)+b,1)",
        "KMin_ArgKMin_Reduction(SqDist(x,y*g)+b,5,1)"};
    kpt_rng r;
    kpt_rng_seed(&r, 11);
    double *x = kpt_random_array(&r, CB * CN * 3, -1, 1), *y = kpt_random_array(&r, CB * CM * 3, -1, 1);
    double *b = kpt_random_array(&r, CB * CM, 0, 1), g = 1.25;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    for (int dt = 0; dt <= 1; dt++)
        for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
            kp_dtype dtype = dt ? KP_FLOAT64 : KP_FLOAT32;
            size_t es = kpt_dtype_size(dtype), nv = (size_t)CB * CN * 5;
            void *xs = kpt_to_dtype(x, CB * CN * 3, dtype), *ys = kpt_to_dtype(y, CB * CM * 3, dtype);
            void *bs = kpt_to_dtype(b, CB * CM, dtype), *gs = kpt_to_dtype(&g, 1, dtype);
            char *whole = calloc(nv, es), *sliced = calloc(nv, es), *part = calloc(nv, es);
            int64_t *iwhole = calloc(nv, sizeof(int64_t)), *isliced = calloc(nv, sizeof(int64_t));
            int64_t *ipart = calloc(nv, sizeof(int64_t));
            KPT_ASSERT_OK(ctx, run_rows(ctx, texts[k], dtype, xs, ys, bs, gs, 0, CN, whole, iwhole));
            kp_formula *f;
            const char *al[] = {"x = Vi(3)", "y = Vj(3)", "b = Vj(1)", "g = Pm(1)"};
            KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, texts[k], al, 4, &f));
            size_t od = (size_t)kp_formula_out_dim(f), id = (size_t)kp_formula_out_index_dim(f);
            kp_formula_free(f);
            for (int64_t r0 = 0; r0 < CN; r0 += CSLICE) {
                KPT_ASSERT_OK(ctx, run_rows(ctx, texts[k], dtype, xs, ys, bs, gs, r0, CSLICE, part, ipart));
                for (int bb = 0; bb < CB; bb++) {
                    size_t to = (size_t)(bb * CN + r0), from = (size_t)(bb * CSLICE);
                    memcpy(sliced + to * od * es, part + from * od * es, CSLICE * od * es);
                    memcpy(isliced + to * id, ipart + from * id, CSLICE * id * sizeof(int64_t));
                }
            }
            if (memcmp(whole, sliced, (size_t)CB * CN * od * es) ||
                memcmp(iwhole, isliced, (size_t)CB * CN * id * sizeof(int64_t)))
                print_error("%s (%s): 300 rows differ from slices of 50\n", texts[k], kpt_dtype_name(dtype));
            assert_memory_equal(whole, sliced, (size_t)CB * CN * od * es);
            assert_memory_equal(iwhole, isliced, (size_t)CB * CN * id * sizeof(int64_t));
            free(xs), free(ys), free(bs), free(gs), free(whole), free(sliced), free(part);
            free(iwhole), free(isliced), free(ipart);
        }
    kp_context_free(ctx);
    free(x), free(y), free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_split_every_reduction), cmocka_unit_test(test_col_cache)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
