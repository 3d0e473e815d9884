/*
 * test_mpi.c — kp_mpi_exec against one process, run by CTest under
 * mpirun -np 1, 2, 3, 4 (tests/CMakeLists.txt). Every rank builds the same
 * global data (N i points, M j points), takes its share (uneven, rank 1 of
 * 3+ ranks gets no point at all), and checks, for every reduction, both axes,
 * both layouts, float32 and float64:
 *   - the rows it owns against kp_plan_exec over all points on one process:
 *     bit-identical for KP_MPI_ROWS axis 1 and for the Min/Max/KMin family,
 *     within 1e-6 (float32) / 1e-13 (float64) of the largest output otherwise;
 *   - IndexI()/IndexJ() read global indices (row and reduced offsets);
 *   - ring blocks of KP_STATE_CHUNK points: rank 0's rows bit-identical;
 *   - a column-side gradient (kp_formula_grad w.r.t. y) in both layouts;
 *   - bad input on one rank: every rank returns the same status and message
 *     (disagreeing arguments: KP_ERR_ARGUMENT), and nobody hangs;
 *   - block-sparse ranges of the whole problem (a cluster with no range, rows
 *     and points in no cluster, clusters cut by the ranks' shares): every
 *     case above against one ranged kp_plan_exec, the aligned ring bit for
 *     bit, the gradient, two batches; ranges that differ between ranks or are malformed
 *     for the whole problem: KP_ERR_ARGUMENT with one message everywhere;
 *   - Sum, LogSumExp and SumSoftMaxWeight under KP_SUM_EXACT: bit-identical
 *     in every layout, both axes, dense and on ranges.
 * A failed check aborts every rank (MPI_Abort), so CTest sees the failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "kp_mpi.h"

#define N 203
#define M 3001
#define KK 3

static int rank, size;
static int exact_sums; /* the context's sum scheme is KP_SUM_EXACT */

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "rank %d: %s:%d: ", rank, __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
            MPI_Abort(MPI_COMM_WORLD, 1);                                  \
        }                                                                  \
    } while (0)

static const char *const REDS[] = {"Sum_Reduction(@,#)",       "LogSumExp_Reduction(@,#)",
                                   "SumSoftMaxWeight_Reduction(-SqDist(x,y),#,Concat(b,x))",
                                   "Min_Reduction(@,#)",       "Max_Reduction(@,#)",
                                   "ArgMin_Reduction(@,#)",    "ArgMax_Reduction(@,#)",
                                   "Min_ArgMin_Reduction(@,#)", "Max_ArgMax_Reduction(@,#)",
                                   "KMin_Reduction(@,3,#)",    "ArgKMin_Reduction(@,3,#)",
                                   "KMin_ArgKMin_Reduction(@,3,#)", "Sum_Reduction(Exp(-SqDist(x,y))*(IndexJ()+2*IndexI()),#)"};

static void build_text(const char *red, int axis, char *buf, size_t n) {
    size_t k = 0;
    for (const char *p = red; *p && k + 40 < n; p++) {
        if (*p == '@') k += (size_t)snprintf(buf + k, n - k, "Concat(SqDist(x,y),Sin(5*(x|y)))");
        else if (*p == '#') buf[k++] = (char)('0' + axis);
        else buf[k++] = *p;
    }
    buf[k] = 0;
}

/* Deterministic data, the same on every rank. */
static double *make(size_t n, unsigned seed) {
    double *a = malloc(n * sizeof *a);
    unsigned s = seed;
    for (size_t k = 0; k < n; k++) {
        s = s * 1103515245u + 12345u;
        a[k] = ((s >> 8) & 0xffff) / 32768.0 - 1.0;
    }
    return a;
}

static void *as_dtype(const double *a, size_t n, kp_dtype dt) {
    void *o = malloc(n * 8 + 8);
    for (size_t k = 0; k < n; k++) {
        if (dt == KP_FLOAT32) ((float *)o)[k] = (float)a[k];
        else ((double *)o)[k] = a[k];
    }
    return o;
}

/* Rank r's share of n points: weights r + 1, rank 1 empty when size >= 3. */
static void share(int64_t n, int r, int64_t *first, int64_t *count) {
    int64_t w[64], tot = 0, acc = 0;
    for (int q = 0; q < size; q++) tot += w[q] = (size >= 3 && q == 1) ? 0 : q + 1;
    for (int q = 0; q < r; q++) acc += w[q];
    *first = n * acc / tot;
    *count = n * (acc + w[r]) / tot - *first;
}

/* The mask of the ranges: NCI clusters of i, NCJ of j, rows [70, 80) and
 * points [1500, 1550) in none, i cluster 2 kept with nothing. */
#define NCI 5
#define NCJ 8
static const int64_t CI[NCI][2] = {{0, 30}, {30, 70}, {80, 120}, {120, 160}, {160, N}};
static const int64_t CJ[NCJ][2] = {{0, 300},     {300, 700},   {700, 1000},  {1000, 1500},
                                   {1550, 1900}, {1900, 2200}, {2200, 2600}, {2600, M}};
static int keep(int a, int b) { return a != 2 && (a + 2 * b) % 3 != 0; }

/* Both triples from the mask (as pykp.cluster.from_matrix builds them). */
typedef struct mask_ranges {
    int64_t ri[2 * NCI], si[NCI], rj[2 * NCI * NCJ];  /* axis 1 */
    int64_t rjj[2 * NCJ], sj[NCJ], rii[2 * NCI * NCJ]; /* axis 0 */
    kp_ranges r;
} mask_ranges;

static void mask_build(mask_ranges *m) {
    int64_t l = 0;
    for (int a = 0; a < NCI; a++) {
        m->ri[2 * a] = CI[a][0], m->ri[2 * a + 1] = CI[a][1];
        for (int b = 0; b < NCJ; b++)
            if (keep(a, b)) m->rj[2 * l] = CJ[b][0], m->rj[2 * l + 1] = CJ[b][1], l++;
        m->si[a] = l;
    }
    int64_t l0 = 0;
    for (int b = 0; b < NCJ; b++) {
        m->rjj[2 * b] = CJ[b][0], m->rjj[2 * b + 1] = CJ[b][1];
        for (int a = 0; a < NCI; a++)
            if (keep(a, b)) m->rii[2 * l0] = CI[a][0], m->rii[2 * l0 + 1] = CI[a][1], l0++;
        m->sj[b] = l0;
    }
    m->r = (kp_ranges){8, m->ri, m->si, m->rj, m->rjj, m->sj, m->rii, NCI, NCI, l, NCJ, NCJ, l0};
}

static kp_exec_options options_with(const kp_ranges *rg) {
    kp_exec_options o = KP_EXEC_OPTIONS_DEFAULT;
    o.ranges = rg;
    return o;
}

/* Largest |value| among the finite ones. */
static double largest(const void *a, kp_dtype dt, int64_t n) {
    double big = 0;
    for (int64_t k = 0; k < n; k++) {
        double v = dt == KP_FLOAT32 ? ((const float *)a)[k] : ((const double *)a)[k];
        if (isfinite(v)) big = fmax(big, fabs(v));
    }
    return big;
}

/* |got - ref| <= tol where ref is finite, the same value (or both NaN) where
 * it is not (the neutral values of rows that meet no pair). */
static void check_close(const void *got, const void *ref, kp_dtype dt, int64_t n, double tol, const char *what) {
    for (int64_t k = 0; k < n; k++) {
        double a = dt == KP_FLOAT32 ? ((const float *)got)[k] : ((const double *)got)[k];
        double b = dt == KP_FLOAT32 ? ((const float *)ref)[k] : ((const double *)ref)[k];
        if (isfinite(b)) CHECK(fabs(a - b) <= tol, "%s: entry %lld: %g, one process %g", what, (long long)k, a, b);
        else CHECK(a == b || (isnan(a) && isnan(b)), "%s: entry %lld: %g, one process %g", what, (long long)k, a, b);
    }
}

typedef struct global {
    void *x, *y, *b;
    kp_dtype dt;
    size_t es;
} global;

static kp_array rows_of(void *base, const global *g, int64_t first, int64_t count, int dim) {
    return kp_array_2d((char *)base + (size_t)(first * dim) * g->es, g->dt, count, dim);
}

/* Runs one case and checks it; returns nothing, aborts on failure. */
static void check_case(kp_context *ctx, const global *g, const char *text, int axis, kp_mpi_layout layout,
                       const kp_ranges *rg) {
    kp_exec_options opt = options_with(rg);
    const char *al[] = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"};
    kp_formula *f;
    CHECK(kp_formula_parse(ctx, text, al, 3, &f) == KP_OK, "%s", kp_context_message(ctx));
    kp_plan *p;
    CHECK(kp_plan_new(ctx, f, g->dt, &p) == KP_OK, "%s", kp_context_message(ctx));
    int od = kp_formula_out_dim(f), id = kp_formula_out_index_dim(f), na = kp_formula_num_args(f);
    int64_t nrows_all = axis == 1 ? N : M;
    /* One process, all points. */
    kp_array full[3] = {rows_of(g->x, g, 0, N, 2), rows_of(g->y, g, 0, M, 2), rows_of(g->b, g, 0, M, 1)};
    void *ref = malloc((size_t)nrows_all * (size_t)(od + 1) * g->es);
    int64_t *refi = malloc((size_t)nrows_all * (size_t)(id + 1) * 8);
    kp_array ro = kp_array_2d(ref, g->dt, nrows_all, od), roi = kp_array_2d(refi, KP_INT64, nrows_all, id);
    CHECK(kp_plan_exec(p, full, (size_t)na, od ? &ro : NULL, id ? &roi : NULL, &opt) == KP_OK, "%s",
          kp_context_message(ctx));
    /* This rank's share. */
    int64_t i0, ni, j0 = 0, nj = M;
    share(N, rank, &i0, &ni);
    if (layout == KP_MPI_RING) share(M, size - 1 - rank, &j0, &nj); /* another split than the i points' */
    if (layout == KP_MPI_RING) { /* j shares must follow rank order: recompute them in order */
        int64_t acc = 0, f0, c0;
        for (int q = 0; q < rank; q++) {
            share(M, size - 1 - q, &f0, &c0);
            acc += c0;
        }
        j0 = acc;
    }
    kp_array mine[3] = {rows_of(g->x, g, i0, ni, 2), rows_of(g->y, g, j0, nj, 2), rows_of(g->b, g, j0, nj, 1)};
    int64_t r0 = axis == 1 ? i0 : (layout == KP_MPI_RING ? j0 : 0);
    int64_t nr = axis == 1 ? ni : (layout == KP_MPI_RING ? nj : M);
    void *got = malloc((size_t)(nr + 1) * (size_t)(od + 1) * g->es);
    int64_t *goti = malloc((size_t)(nr + 1) * (size_t)(id + 1) * 8);
    kp_array o = kp_array_2d(got, g->dt, nr, od), oi = kp_array_2d(goti, KP_INT64, nr, id);
    kp_status st = kp_mpi_exec(p, MPI_COMM_WORLD, layout, mine, (size_t)na, od ? &o : NULL, id ? &oi : NULL, &opt);
    CHECK(st == KP_OK, "%s layout %d: %s", text, (int)layout, kp_context_message(ctx));
    if (id)
        CHECK(!memcmp(goti, refi + r0 * id, (size_t)(nr * id) * 8), "%s layout %d%s: indices differ", text, (int)layout,
              rg ? " ranges" : "");
    int exact = strncmp(text, "Sum", 3) && strncmp(text, "LogSumExp", 9);
    exact |= (layout == KP_MPI_ROWS && axis == 1) || exact_sums;
    if (od && exact)
        CHECK(!memcmp(got, (char *)ref + (size_t)(r0 * od) * g->es, (size_t)(nr * od) * g->es),
              "%s layout %d%s: values not bit-identical", text, (int)layout, rg ? " ranges" : "");
    if (od && !exact) {
        double tol = (g->dt == KP_FLOAT32 ? 1e-6 : 1e-13) * largest(ref, g->dt, nrows_all * od);
        char what[300];
        snprintf(what, sizeof what, "%s layout %d%s", text, (int)layout, rg ? " ranges" : "");
        check_close(got, (char *)ref + (size_t)(r0 * od) * g->es, g->dt, nr * od, tol, what);
    }
    free(ref), free(refi), free(got), free(goti);
    kp_plan_free(p);
    kp_formula_free(f);
}

/* The message of rank 0 equals every rank's. */
static void check_same_message(kp_context *ctx) {
    char mine[600], first[600];
    snprintf(mine, sizeof mine, "%s", kp_context_message(ctx));
    memcpy(first, mine, sizeof first);
    MPI_Bcast(first, (int)sizeof first, MPI_CHAR, 0, MPI_COMM_WORLD);
    CHECK(!strcmp(first, mine), "messages differ: '%s' vs '%s'", mine, first);
}

static void check_errors(kp_context *ctx, const global *g) {
    const char *al[] = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"};
    kp_formula *f;
    kp_plan *p;
    CHECK(kp_formula_parse(ctx, "Sum_Reduction(SqDist(x,y)*b,1)", al, 3, &f) == KP_OK, "parse");
    CHECK(kp_plan_new(ctx, f, g->dt, &p) == KP_OK, "plan");
    int last = rank == size - 1;
    double out[N];
    for (int layout = 0; layout <= 1; layout++) {
        kp_array a[3] = {rows_of(g->x, g, 0, 5, 2), rows_of(g->y, g, 0, 7, 2), rows_of(g->b, g, 0, 7, 1)};
        kp_array o = kp_array_2d(out, g->dt, 5, 1);
        /* The last rank's b has another dimension: every rank refuses. */
        if (last) a[2] = rows_of(g->b, g, 0, 3, 2);
        kp_status st = kp_mpi_exec(p, MPI_COMM_WORLD, (kp_mpi_layout)layout, a, 3, &o, NULL, NULL);
        kp_status want = size > 1 ? KP_ERR_ARGUMENT : KP_ERR_SHAPE;
        CHECK(st == want, "disagreeing dims: status %d, message %s", (int)st, kp_context_message(ctx));
        check_same_message(ctx);
        if (size > 1) CHECK(strstr(kp_context_message(ctx), "argument 2") != NULL, "%s", kp_context_message(ctx));
        /* Replicated j points that differ in number (KP_MPI_ROWS). */
        a[2] = rows_of(g->b, g, 0, 7, 1);
        if (layout == KP_MPI_ROWS && last && size > 1) {
            a[1] = rows_of(g->y, g, 0, 6, 2);
            a[2] = rows_of(g->b, g, 0, 6, 1);
        }
        st = kp_mpi_exec(p, MPI_COMM_WORLD, (kp_mpi_layout)layout, a, 3, &o, NULL, NULL);
        CHECK(st == KP_OK || (layout == KP_MPI_ROWS && size > 1 && st == KP_ERR_ARGUMENT), "sizes: %d %s", (int)st,
              kp_context_message(ctx));
        check_same_message(ctx);
        /* A wrong output on one rank: its own error, on every rank. */
        a[1] = rows_of(g->y, g, 0, 7, 2);
        a[2] = rows_of(g->b, g, 0, 7, 1);
        kp_array bad = kp_array_2d(out, g->dt, last ? 4 : 5, 1);
        st = kp_mpi_exec(p, MPI_COMM_WORLD, (kp_mpi_layout)layout, a, 3, &bad, NULL, NULL);
        CHECK(st == KP_ERR_SHAPE, "wrong output: status %d %s", (int)st, kp_context_message(ctx));
        check_same_message(ctx);
    }
    kp_plan_free(p);
    kp_formula_free(f);
}

/* Two batches, float64: batch 1's ranges from another mask, indices of the
 * flattened (batch, point) rows; each rank's points of each batch are a
 * strided slice. Against one ranged kp_plan_exec. */
#define NB 2
static int keep_b(int bt, int a, int b) { return bt == 0 ? keep(a, b) : !keep(a, b) && a != 4; }

static void check_batched_ranges(kp_context *ctx, const double *x, const double *y, const double *b) {
    static const char *const reds[] = {"Sum_Reduction(@,#)", "LogSumExp_Reduction(@,#)", "Min_ArgMin_Reduction(@,#)",
                                       "KMin_ArgKMin_Reduction(@,3,#)"};
    int64_t ri[2 * NB * NCI], si[NB * NCI], rj[2 * NB * NCI * NCJ], rjj[2 * NB * NCJ], sj[NB * NCJ],
        rii[2 * NB * NCI * NCJ], l = 0, l0 = 0;
    for (int bt = 0; bt < NB; bt++) {
        for (int a = 0; a < NCI; a++) {
            ri[2 * (bt * NCI + a)] = bt * N + CI[a][0], ri[2 * (bt * NCI + a) + 1] = bt * N + CI[a][1];
            for (int c = 0; c < NCJ; c++)
                if (keep_b(bt, a, c)) rj[2 * l] = bt * M + CJ[c][0], rj[2 * l + 1] = bt * M + CJ[c][1], l++;
            si[bt * NCI + a] = l;
        }
        for (int c = 0; c < NCJ; c++) {
            rjj[2 * (bt * NCJ + c)] = bt * M + CJ[c][0], rjj[2 * (bt * NCJ + c) + 1] = bt * M + CJ[c][1];
            for (int a = 0; a < NCI; a++)
                if (keep_b(bt, a, c)) rii[2 * l0] = bt * N + CI[a][0], rii[2 * l0 + 1] = bt * N + CI[a][1], l0++;
            sj[bt * NCJ + c] = l0;
        }
    }
    kp_ranges rg = {8, ri, si, rj, rjj, sj, rii, NB * NCI, NB * NCI, l, NB * NCJ, NB * NCJ, l0};
    kp_exec_options opt = options_with(&rg);
    /* Batch 1's points are batch 0's, scaled: other values, same layout. */
    double *xb = malloc(NB * N * 2 * sizeof *xb), *yb = malloc(NB * M * 2 * sizeof *yb);
    double *bb = malloc(NB * M * sizeof *bb);
    for (int bt = 0; bt < NB; bt++) {
        for (int k = 0; k < N * 2; k++) xb[bt * N * 2 + k] = x[k] * (1 + 0.5 * bt);
        for (int k = 0; k < M * 2; k++) yb[bt * M * 2 + k] = y[k] * (1 - 0.3 * bt);
        for (int k = 0; k < M; k++) bb[bt * M + k] = b[k] + bt;
    }
    const char *al[] = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"};
    for (size_t q = 0; q < sizeof reds / sizeof reds[0]; q++)
        for (int axis = 0; axis <= 1; axis++)
            for (int layout = 0; layout <= 1; layout++) {
                char text[256];
                build_text(reds[q], axis, text, sizeof text);
                kp_formula *f;
                kp_plan *p;
                CHECK(kp_formula_parse(ctx, text, al, 3, &f) == KP_OK, "%s", kp_context_message(ctx));
                CHECK(kp_plan_new(ctx, f, KP_FLOAT64, &p) == KP_OK, "%s", kp_context_message(ctx));
                int od = kp_formula_out_dim(f), id = kp_formula_out_index_dim(f);
                int64_t nall = axis == 1 ? N : M;
                int64_t sx[3] = {NB, N, 2}, sy[3] = {NB, M, 2}, sb[3] = {NB, M, 1}, so[3] = {NB, nall, od},
                        soi[3] = {NB, nall, id};
                kp_array full[3] = {kp_array_nd(xb, KP_FLOAT64, 3, sx), kp_array_nd(yb, KP_FLOAT64, 3, sy),
                                    kp_array_nd(bb, KP_FLOAT64, 3, sb)};
                double *ref = malloc((size_t)(NB * nall * od) * 8), *got = malloc((size_t)(NB * nall * od + 1) * 8);
                int64_t *refi = malloc((size_t)(NB * nall * id) * 8), *goti = malloc((size_t)(NB * nall * id + 1) * 8);
                kp_array ro = kp_array_nd(ref, KP_FLOAT64, 3, so), roi = kp_array_nd(refi, KP_INT64, 3, soi);
                CHECK(kp_plan_exec(p, full, 3, &ro, &roi, &opt) == KP_OK, "%s", kp_context_message(ctx));
                int64_t i0, ni, j0 = 0, nj = M;
                share(N, rank, &i0, &ni);
                if (layout == KP_MPI_RING) j0 = (int64_t)M * rank / size, nj = (int64_t)M * (rank + 1) / size - j0;
                kp_array mine[3] = {full[0], full[1], full[2]};
                mine[0].data = xb + i0 * 2, mine[0].shape[1] = ni;
                mine[1].data = yb + j0 * 2, mine[1].shape[1] = nj;
                mine[2].data = bb + j0, mine[2].shape[1] = nj;
                int64_t r0 = axis == 1 ? i0 : (layout == KP_MPI_RING ? j0 : 0);
                int64_t nr = axis == 1 ? ni : (layout == KP_MPI_RING ? nj : M);
                int64_t mo[3] = {NB, nr, od}, moi[3] = {NB, nr, id};
                kp_array o = kp_array_nd(got, KP_FLOAT64, 3, mo), oi = kp_array_nd(goti, KP_INT64, 3, moi);
                CHECK(kp_mpi_exec(p, MPI_COMM_WORLD, (kp_mpi_layout)layout, mine, 3, &o, &oi, &opt) == KP_OK,
                      "%s batches: %s", text, kp_context_message(ctx));
                double tol = 1e-13 * largest(ref, KP_FLOAT64, NB * nall * od);
                for (int bt = 0; bt < NB; bt++) {
                    char what[300];
                    snprintf(what, sizeof what, "%s layout %d batch %d", text, layout, bt);
                    check_close(got + bt * nr * od, ref + (bt * nall + r0) * od, KP_FLOAT64, nr * od, tol, what);
                    CHECK(!memcmp(goti + bt * nr * id, refi + (bt * nall + r0) * id, (size_t)(nr * id) * 8),
                          "%s: indices differ", what);
                }
                free(ref), free(got), free(refi), free(goti);
                kp_plan_free(p);
                kp_formula_free(f);
            }
    free(xb), free(yb), free(bb);
}

/* Every rank returns st with rank 0's message, which contains want. */
static void check_refused(kp_context *ctx, kp_status st, const char *want) {
    CHECK(st == KP_ERR_ARGUMENT, "status %d (%s), expected KP_ERR_ARGUMENT", (int)st, kp_context_message(ctx));
    check_same_message(ctx);
    CHECK(strstr(kp_context_message(ctx), want) != NULL, "'%s' not in '%s'", want, kp_context_message(ctx));
}

/* Ranges that differ between ranks, or that are malformed for the whole
 * problem (out of bounds where no rank's share sees it, unsorted clusters),
 * on one rank or on all: KP_ERR_ARGUMENT with one message on every rank. */
static void check_range_errors(kp_context *ctx, const global *g, const mask_ranges *good) {
    const char *al[] = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"};
    int last = rank == size - 1;
    double out[2 * M];
    for (int axis = 0; axis <= 1; axis++) {
        char text[64];
        snprintf(text, sizeof text, "Sum_Reduction(SqDist(x,y)*b,%d)", axis);
        kp_formula *f;
        kp_plan *p;
        CHECK(kp_formula_parse(ctx, text, al, 3, &f) == KP_OK, "parse");
        CHECK(kp_plan_new(ctx, f, g->dt, &p) == KP_OK, "plan");
        const char *cols = axis == 1 ? "redranges_j" : "redranges_i";
        for (int layout = 0; layout <= 1; layout++) {
            int64_t i0, ni, j0 = 0, nj = M;
            share(N, rank, &i0, &ni);
            if (layout == KP_MPI_RING) j0 = (int64_t)M * rank / size, nj = (int64_t)M * (rank + 1) / size - j0;
            kp_array a[3] = {rows_of(g->x, g, i0, ni, 2), rows_of(g->y, g, j0, nj, 2), rows_of(g->b, g, j0, nj, 1)};
            int64_t nr = axis == 1 ? ni : nj;
            kp_array o = kp_array_2d(out, g->dt, nr, 1);
            mask_ranges m = *good;
            m.r = (kp_ranges){8, m.ri, m.si, m.rj, m.rjj, m.sj, m.rii, good->r.n_ranges_i, good->r.n_slices_i,
                              good->r.n_redranges_j, good->r.n_ranges_j, good->r.n_slices_j, good->r.n_redranges_i};
            int64_t *c1 = axis == 1 ? &m.rj[2 * good->r.n_redranges_j - 1] : &m.rii[2 * good->r.n_redranges_i - 1];
            int64_t end = *c1;
            kp_exec_options opt = options_with(&m.r), none = options_with(NULL);
            /* One rank's last range is shorter: valid, but not the others'. */
            if (last) *c1 = end - 1;
            kp_status st = kp_mpi_exec(p, MPI_COMM_WORLD, (kp_mpi_layout)layout, a, 3, &o, NULL, &opt);
            if (size > 1) check_refused(ctx, st, "disagree on the ranges");
            else CHECK(st == KP_OK, "%s", kp_context_message(ctx));
            /* Ranges on one rank only. */
            st = kp_mpi_exec(p, MPI_COMM_WORLD, (kp_mpi_layout)layout, a, 3, &o, NULL, last ? &none : &opt);
            if (size > 1) check_refused(ctx, st, "disagree on the ranges");
            /* The last range past the last point, on every rank: no rank's
             * share sees it but the whole problem's check does. */
            const int64_t past = (axis == 1 ? M : N) + 1;
            *c1 = past;
            st = kp_mpi_exec(p, MPI_COMM_WORLD, (kp_mpi_layout)layout, a, 3, &o, NULL, &opt);
            check_refused(ctx, st, cols);
            check_refused(ctx, st, "outside");
            /* Malformed on one rank only. */
            *c1 = last ? past : end;
            st = kp_mpi_exec(p, MPI_COMM_WORLD, (kp_mpi_layout)layout, a, 3, &o, NULL, &opt);
            check_refused(ctx, st, size > 1 ? "disagree on the ranges" : "outside");
            /* Unsorted clusters everywhere. */
            *c1 = end;
            int64_t *rows = axis == 1 ? m.ri : m.rjj, keep0 = rows[2];
            rows[2] = rows[1] - 1;
            st = kp_mpi_exec(p, MPI_COMM_WORLD, (kp_mpi_layout)layout, a, 3, &o, NULL, &opt);
            check_refused(ctx, st, axis == 1 ? "ranges_i[1]" : "ranges_j[1]");
            rows[2] = keep0;
            /* Repaired: it runs. */
            st = kp_mpi_exec(p, MPI_COMM_WORLD, (kp_mpi_layout)layout, a, 3, &o, NULL, &opt);
            CHECK(st == KP_OK, "%s", kp_context_message(ctx));
        }
        kp_plan_free(p);
        kp_formula_free(f);
    }
}

/* Ring blocks of KP_STATE_CHUNK points each: rank 0 folds them in global
 * order from the identity, which is one process's computation bit for bit. */
static void check_aligned_ring(kp_context *ctx, int ranged) {
    const int64_t NI = 70, MJ = (int64_t)size * KP_STATE_CHUNK;
    double *x = make(NI * 2, 4), *y = make((size_t)MJ * 2, 5);
    const char *al[] = {"x = Vi(2)", "y = Vj(2)"};
    kp_formula *f;
    kp_plan *p;
    CHECK(kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y)),1)", al, 2, &f) == KP_OK, "parse");
    CHECK(kp_plan_new(ctx, f, KP_FLOAT32, &p) == KP_OK, "plan");
    float *xs = as_dtype(x, NI * 2, KP_FLOAT32), *ys = as_dtype(y, (size_t)MJ * 2, KP_FLOAT32);
    float ref[70], got[70];
    kp_array full[2] = {kp_array_2d(xs, KP_FLOAT32, NI, 2), kp_array_2d(ys, KP_FLOAT32, MJ, 2)};
    kp_array ro = kp_array_2d(ref, KP_FLOAT32, NI, 1);
    /* Ranges across the blocks' borders; rows [35, 40) in no cluster. */
    int64_t ri[] = {0, 35, 40, NI}, si[] = {2, 3};
    int64_t rj[] = {100, MJ / 2 + 5000, MJ / 2 + 9000, MJ - 3, 20000, MJ};
    kp_ranges rg = {8, ri, si, rj, NULL, NULL, NULL, 2, 2, 3, 0, 0, 0};
    kp_exec_options opt = options_with(ranged ? &rg : NULL);
    CHECK(kp_plan_exec(p, full, 2, &ro, NULL, &opt) == KP_OK, "%s", kp_context_message(ctx));
    int64_t i0 = rank == 0 ? 0 : NI, ni = rank == 0 ? NI : 0; /* all rows on rank 0 */
    kp_array mine[2] = {kp_array_2d(xs + 2 * i0, KP_FLOAT32, ni, 2),
                        kp_array_2d(ys + 2 * rank * KP_STATE_CHUNK, KP_FLOAT32, KP_STATE_CHUNK, 2)};
    kp_array o = kp_array_2d(got, KP_FLOAT32, ni, 1);
    CHECK(kp_mpi_exec(p, MPI_COMM_WORLD, KP_MPI_RING, mine, 2, &o, NULL, &opt) == KP_OK, "%s",
          kp_context_message(ctx));
    if (rank == 0)
        CHECK(!memcmp(got, ref, sizeof ref), "aligned ring%s: rank 0 not bit-identical", ranged ? ", ranges" : "");
    kp_plan_free(p);
    kp_formula_free(f);
    free(x), free(y), free(xs), free(ys);
}

/* A column-side gradient (of the Gaussian kernel product with respect to y:
 * a reduction over the split i points) through KP_MPI_ROWS: every rank gets
 * all M rows, within tolerance of one process; the same through the ring
 * gives each rank its own rows. */
static void check_gradient(kp_context *ctx, const global *g, const kp_ranges *rg) {
    kp_exec_options opt = options_with(rg); /* the gradient reduces over i: it reads the transposed triple */
    const char *al[] = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"};
    kp_formula *f, *gy;
    kp_plan *p;
    CHECK(kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y))*b,1)", al, 3, &f) == KP_OK, "parse");
    CHECK(kp_formula_grad(ctx, f, 1, &gy) == KP_OK, "%s", kp_context_message(ctx));
    CHECK(kp_plan_new(ctx, gy, g->dt, &p) == KP_OK, "%s", kp_context_message(ctx));
    double *e = make(N, 6);
    void *es = as_dtype(e, N, g->dt), *ref = malloc((size_t)M * 2 * g->es), *got = malloc((size_t)M * 2 * g->es);
    kp_array full[4] = {rows_of(g->x, g, 0, N, 2), rows_of(g->y, g, 0, M, 2), rows_of(g->b, g, 0, M, 1),
                        kp_array_2d(es, g->dt, N, 1)};
    kp_array ro = kp_array_2d(ref, g->dt, M, 2);
    CHECK(kp_plan_exec(p, full, 4, &ro, NULL, &opt) == KP_OK, "%s", kp_context_message(ctx));
    for (int layout = 0; layout <= 1; layout++) {
        int64_t i0, ni, j0 = 0, nj = M;
        share(N, rank, &i0, &ni);
        if (layout == KP_MPI_RING) {
            j0 = (int64_t)M * rank / size;
            nj = (int64_t)M * (rank + 1) / size - j0;
        }
        kp_array mine[4] = {rows_of(g->x, g, i0, ni, 2), rows_of(g->y, g, j0, nj, 2), rows_of(g->b, g, j0, nj, 1),
                            kp_array_2d((char *)es + (size_t)i0 * g->es, g->dt, ni, 1)};
        kp_array o = kp_array_2d(got, g->dt, nj, 2);
        CHECK(kp_mpi_exec(p, MPI_COMM_WORLD, (kp_mpi_layout)layout, mine, 4, &o, NULL, &opt) == KP_OK, "%s",
              kp_context_message(ctx));
        double tol = (g->dt == KP_FLOAT32 ? 1e-6 : 1e-13) * largest(ref, g->dt, 2 * M);
        check_close(got, (char *)ref + (size_t)(2 * j0) * g->es, g->dt, 2 * nj, tol,
                    rg ? "gradient with ranges" : "gradient");
    }
    free(e), free(es), free(ref), free(got);
    kp_plan_free(p);
    kp_formula_free(gy);
    kp_formula_free(f);
}

/* Storage dtypes travel around the ring as they are (2-byte halves, 16-byte
 * complex numbers): kp_mpi_exec against one kp_plan_exec, y and b split. */
static void check_storage_dtypes(kp_context *ctx, const double *x, const double *y, const double *b) {
    static const kp_dtype dts[2] = {KP_FLOAT16, KP_COMPLEX128};
    const char *al[] = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"};
    for (int t = 0; t < 2; t++) {
        kp_dtype dt = dts[t];
        int half = dt == KP_FLOAT16;
        size_t es = half ? 2 : 16; /* a complex128 row of 2 reals is 1 number */
        int64_t xd = half ? 2 : 1;
        char *xa = malloc((size_t)N * 2 * 8 + 8), *ya = malloc((size_t)M * 2 * 8 + 8), *ba = malloc((size_t)M * 8 + 8);
        for (size_t k = 0; k < (size_t)N * 2; k++)
            if (half) ((uint16_t *)xa)[k] = kp__float_to_half((float)x[k]);
            else ((double *)xa)[k] = x[k];
        for (size_t k = 0; k < (size_t)M * 2; k++)
            if (half) ((uint16_t *)ya)[k] = kp__float_to_half((float)y[k]);
            else ((double *)ya)[k] = y[k];
        for (size_t k = 0; k < (size_t)M; k++)
            if (half) ((uint16_t *)ba)[k] = kp__float_to_half((float)b[k]);
            else ((double *)ba)[k] = b[k];
        kp_dtype bdt = half ? KP_FLOAT16 : KP_FLOAT64; /* a real argument of a complex plan */
        size_t bes = half ? 2 : 8;
        kp_formula *f;
        kp_plan *p;
        CHECK(kp_formula_parse(ctx, "Sum_Reduction(Concat(Exp(-SqDist(x,y)),Sin(5*(x|y)))*b,1)", al, 3, &f) == KP_OK,
              "%s", kp_context_message(ctx));
        CHECK(kp_plan_new(ctx, f, dt, &p) == KP_OK, "%s", kp_context_message(ctx));
        size_t oes = half ? 2 : 8; /* the output as reals: float16, or float64 in a complex plan */
        kp_dtype odt = half ? KP_FLOAT16 : KP_FLOAT64;
        char *ref = malloc((size_t)N * 2 * oes), *got = malloc((size_t)N * 2 * oes + 8);
        kp_array full[3] = {kp_array_2d(xa, dt, N, xd), kp_array_2d(ya, dt, M, xd), kp_array_2d(ba, bdt, M, 1)};
        kp_array ro = kp_array_2d(ref, odt, N, 2);
        CHECK(kp_plan_exec(p, full, 3, &ro, NULL, NULL) == KP_OK, "%s", kp_context_message(ctx));
        int64_t i0, ni, j0, nj;
        share(N, rank, &i0, &ni);
        share(M, rank, &j0, &nj);
        kp_array mine[3] = {kp_array_2d(xa + (size_t)i0 * (size_t)xd * es, dt, ni, xd),
                            kp_array_2d(ya + (size_t)j0 * (size_t)xd * es, dt, nj, xd),
                            kp_array_2d(ba + (size_t)j0 * bes, bdt, nj, 1)};
        kp_array o = kp_array_2d(got, odt, ni, 2);
        CHECK(kp_mpi_exec(p, MPI_COMM_WORLD, KP_MPI_RING, mine, 3, &o, NULL, NULL) == KP_OK, "%s",
              kp_context_message(ctx));
        double big = 0;
        for (int64_t k = 0; k < N * 2; k++)
            big = fmax(big, fabs(half ? (double)kp__half_to_float(((uint16_t *)ref)[k]) : ((double *)ref)[k]));
        for (int64_t k = 0; k < ni * 2; k++) {
            double a = half ? (double)kp__half_to_float(((uint16_t *)got)[k]) : ((double *)got)[k];
            double r = half ? (double)kp__half_to_float(((uint16_t *)ref)[i0 * 2 + k]) : ((double *)ref)[i0 * 2 + k];
            double tol = half ? ldexp(fabs(r), -10) + 1e-6 * big : 1e-13 * big; /* one float16 rounding */
            CHECK(fabs(a - r) <= tol, "%s row %lld: %g, one process %g", half ? "float16" : "complex128",
                  (long long)(i0 + k / 2), a, r);
        }
        free(xa), free(ya), free(ba), free(ref), free(got);
        kp_plan_free(p);
        kp_formula_free(f);
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(size <= 64, "at most 64 ranks");
    double *x = make(N * 2, 1), *y = make(M * 2, 2), *b = make(M, 3);
    kp_context *ctx;
    CHECK(kp_context_new(&ctx) == KP_OK, "context");
    kp_context_set_num_threads(ctx, 1);
    int ncases = 0;
    mask_ranges mask;
    mask_build(&mask);
    for (int dti = 0; dti <= 1; dti++) {
        kp_dtype dt = dti ? KP_FLOAT64 : KP_FLOAT32;
        global g = {as_dtype(x, N * 2, dt), as_dtype(y, M * 2, dt), as_dtype(b, M, dt), dt, dti ? 8u : 4u};
        for (size_t k = 0; k < sizeof REDS / sizeof REDS[0]; k++)
            for (int axis = 0; axis <= 1; axis++)
                for (int layout = 0; layout <= 1; layout++) {
                    char text[256];
                    build_text(REDS[k], axis, text, sizeof text);
                    check_case(ctx, &g, text, axis, (kp_mpi_layout)layout, NULL);
                    check_case(ctx, &g, text, axis, (kp_mpi_layout)layout, &mask.r);
                    ncases += 2;
                }
        check_gradient(ctx, &g, NULL);
        check_gradient(ctx, &g, &mask.r);
        check_errors(ctx, &g);
        check_range_errors(ctx, &g, &mask);
        CHECK(kp_context_set_sum_scheme(ctx, KP_SUM_EXACT) == KP_OK, "exact sums");
        exact_sums = 1;
        for (int k = 0; k < 3; k++) /* Sum, LogSumExp, SumSoftMaxWeight */
            for (int axis = 0; axis <= 1; axis++)
                for (int layout = 0; layout <= 1; layout++) {
                    char text[256];
                    build_text(REDS[k], axis, text, sizeof text);
                    check_case(ctx, &g, text, axis, (kp_mpi_layout)layout, NULL);
                    check_case(ctx, &g, text, axis, (kp_mpi_layout)layout, &mask.r);
                    ncases += 2;
                }
        CHECK(kp_context_set_sum_scheme(ctx, KP_SUM_BLOCK) == KP_OK, "block sums");
        exact_sums = 0;
        free(g.x), free(g.y), free(g.b);
    }
    check_aligned_ring(ctx, 0);
    check_aligned_ring(ctx, 1);
    check_storage_dtypes(ctx, x, y, b);
    check_batched_ranges(ctx, x, y, b);
    kp_context_free(ctx);
    free(x), free(y), free(b);
    if (rank == 0) printf("test_mpi: %d cases on %d ranks passed\n", ncases, size);
    MPI_Finalize();
    return 0;
}
