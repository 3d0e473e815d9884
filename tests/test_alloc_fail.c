/*
 * test_alloc_fail.c — allocation failures, through the context's allocator
 * (kp_context_new_with_allocator).
 *
 * Each scenario (parse; gradients to order 2, with indices, softmax; plans and
 * CPU executions, the split path and index outputs included; a row-summed
 * parameter gradient; a joint plan; a kernel solve; GPU kernel source and the
 * built-in kernel table; block-sparse ranges and partial states, dense and
 * ranged; the OpenCL engine where it runs, ranges and ranged partial states
 * included) is first run with
 * no failure to count its allocations. Then, for k = 1, 2, ... the k-th
 * allocation (context creation included) fails: every call that fails must
 * return KP_ERR_OOM with a message, the same scenario run again on the same
 * context without failures must succeed with results checked against dense
 * float64 references (the context stays usable), and once everything is freed
 * every block must have been given back (nothing leaks; LeakSanitizer checks
 * the same in the ASan build). The allocator also checks that libkp gives it
 * back each block's own size and alignment, as kp_alloc_fn promises, and runs
 * from several OpenMP threads (it is thread-safe).
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dlfcn.h>

#include "kp.h"
#include "core/half.h"
#include "kp_test_util.h"

/* ------------------------------------------------------------ the allocator */

#define MAX_LIVE 65536

typedef struct block {
    void *p;
    size_t size, align;
} block;

typedef struct counting_alloc {
    pthread_mutex_t lock;
    long count;   /* allocations and resizes asked for so far */
    long fail_at; /* the one that fails (1-based); 0: none */
    long failed;  /* how many were refused */
    long bad;     /* frees/resizes with a size or alignment that is not the block's */
    long nlive;
    block live[MAX_LIVE];
} counting_alloc;

static counting_alloc A = {.lock = PTHREAD_MUTEX_INITIALIZER};

static long find_live(const void *p) {
    for (long k = A.nlive - 1; k >= 0; k--)
        if (A.live[k].p == p) return k;
    return -1;
}

static void *raw_alloc(size_t size, size_t align) {
    if (align <= 16) return malloc(size);
    return aligned_alloc(align, (size + align - 1) & ~(align - 1));
}

static void *test_alloc(void *user, void *ptr, size_t old_size, size_t new_size, size_t align) {
    (void)user;
    pthread_mutex_lock(&A.lock);
    long at = ptr ? find_live(ptr) : -1;
    if (ptr && (at < 0 || A.live[at].size != old_size || A.live[at].align != align)) A.bad++;
    void *q = NULL;
    if (new_size == 0) {
        if (at >= 0) A.live[at] = A.live[--A.nlive];
        free(ptr);
    } else if (++A.count == A.fail_at || (align & (align - 1)) || align < 16) {
        A.failed++;
    } else if ((q = raw_alloc(new_size, align)) != NULL) {
        if (ptr) {
            memcpy(q, ptr, old_size < new_size ? old_size : new_size);
            free(ptr);
            if (at >= 0) A.live[at] = (block){q, new_size, align};
        } else if (A.nlive < MAX_LIVE) {
            A.live[A.nlive++] = (block){q, new_size, align};
        } else {
            A.bad++;
        }
        if ((uintptr_t)q % align) A.bad++;
    }
    pthread_mutex_unlock(&A.lock);
    return q;
}

static void arm(long fail_at) {
    pthread_mutex_lock(&A.lock);
    A.count = 0;
    A.failed = 0;
    A.fail_at = fail_at;
    pthread_mutex_unlock(&A.lock);
}

/* ------------------------------------------------------------ data and references */

#define N 600
#define M 700
#define D 3
#define E 2
#define G 0.8

static double X[N * D], Y[M * D], B[M * E], EE[N * E];
static double XS[100], YS[40000], BS[40000]; /* the split path: M above one chunk of 32768 */

static void fill_data(void) {
    kpt_rng r;
    kpt_rng_seed(&r, 91);
    kpt_fill_uniform(&r, X, N * D, 0, 1);
    kpt_fill_uniform(&r, Y, M * D, 0, 1);
    kpt_fill_uniform(&r, B, M * E, -1, 1);
    kpt_fill_uniform(&r, EE, N * E, -1, 1);
    kpt_fill_uniform(&r, XS, 100, 0, 1);
    kpt_fill_uniform(&r, YS, 40000, 0, 1);
    kpt_fill_uniform(&r, BS, 40000, -1, 1);
}

static double kern(const double *x, const double *y, int d) {
    double s = 0;
    for (int c = 0; c < d; c++) s += (x[c] - y[c]) * (x[c] - y[c]);
    return exp(-G * s);
}

static const char *const GAUSS_ALIASES[] = {"x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(2)"};
#define GAUSS "Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)"

/* A wrong result: scenarios return this status (no libkp call does). */
#define WRONG KP_ERR_CANCELLED
static char g_wrong[256];

static kp_status wrong(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_wrong, sizeof g_wrong, fmt, ap);
    va_end(ap);
    return WRONG;
}

static kp_status close_to(const char *what, const double *got, const double *ref, size_t n, double rtol) {
    double scale = 0;
    for (size_t k = 0; k < n; k++) scale = fmax(scale, fabs(ref[k]));
    for (size_t k = 0; k < n; k++)
        if (!(fabs(got[k] - ref[k]) <= rtol * scale)) return wrong("%s[%zu] = %g, expected %g", what, k, got[k], ref[k]);
    return KP_OK;
}

static kp_array gauss_args[4];
static double g_param = G;

static void set_gauss_args(void) {
    gauss_args[0] = kp_array_2d(X, KP_FLOAT64, N, D);
    gauss_args[1] = kp_array_2d(Y, KP_FLOAT64, M, D);
    gauss_args[2] = kp_array_1d(&g_param, KP_FLOAT64, 1);
    gauss_args[3] = kp_array_2d(B, KP_FLOAT64, M, E);
}

/* ------------------------------------------------------------ scenarios */

/* Each runs its calls in order and stops at the first failure; it frees all it
 * made and returns that status (KP_OK, or WRONG for a wrong result). */
typedef kp_status (*scenario_fn)(kp_context *ctx);

static long failed_so_far(void) {
    pthread_mutex_lock(&A.lock);
    long n = A.failed;
    pthread_mutex_unlock(&A.lock);
    return n;
}

static kp_status sc_parse(kp_context *ctx) {
    kp_formula *f = NULL;
    size_t nodes = 0;
    kp_status st = kp_formula_parse(ctx, GAUSS, GAUSS_ALIASES, 4, &f);
    if (st == KP_OK) st = kp_formula_count_nodes(ctx, f, &nodes);
    if (st == KP_OK && (kp_formula_out_dim(f) != E || kp_formula_num_args(f) != 4 || nodes < 5))
        st = wrong("parse: out_dim %d, %zu nodes", kp_formula_out_dim(f), nodes);
    /* The count without a status: the same, or 0 when its memory was refused (never a partial count). */
    long before = failed_so_far();
    size_t quiet = st == KP_OK ? kp_formula_node_count(f) : nodes;
    if (quiet != nodes && !(quiet == 0 && failed_so_far() > before))
        st = wrong("kp_formula_node_count gives %zu, kp_formula_count_nodes %zu", quiet, nodes);
    kp_formula_free(f);
    return st;
}

static kp_status sc_grad(kp_context *ctx) {
    static const char *const al[] = {"x = Vi(3)", "y = Vj(3)", "w = Vj(1)"};
    kp_formula *f[9] = {NULL};
    kp_status st = kp_formula_parse(ctx, GAUSS, GAUSS_ALIASES, 4, &f[0]);
    if (st == KP_OK) st = kp_formula_grad(ctx, f[0], 0, &f[1]);
    if (st == KP_OK) st = kp_formula_grad(ctx, f[1], 1, &f[2]); /* order 2 */
    if (st == KP_OK) st = kp_formula_grad(ctx, f[0], 2, &f[3]); /* a parameter: rows summed */
    if (st == KP_OK) st = kp_formula_unsummed(ctx, f[3], &f[4]);
    if (st == KP_OK) st = kp_formula_parse(ctx, "KMin_Reduction(SqDist(x,y)*w, 3, 1)", al, 3, &f[5]);
    if (st == KP_OK) st = kp_formula_with_indices(ctx, f[5], &f[6]);
    if (st == KP_OK) st = kp_formula_grad(ctx, f[5], 0, &f[7]);
    if (st == KP_OK) st = kp_formula_parse(ctx, "SumSoftMaxWeight_Reduction(-SqDist(x,y), 1, y)", al, 3, &f[8]);
    kp_formula *s = NULL, *gs = NULL;
    if (st == KP_OK) st = kp_formula_softmax_lse(ctx, f[8], &s);
    if (st == KP_OK) st = kp_formula_grad(ctx, f[8], 1, &gs);
    if (st == KP_OK && (kp_formula_out_dim(f[1]) != D || kp_formula_out_dim(f[2]) != D ||
                        kp_formula_sums_rows(f[3]) != 1 || kp_formula_out_index_dim(f[6]) != 3 ||
                        kp_formula_num_args(gs) != 6))
        st = wrong("gradient shapes");
    for (int k = 0; k < 9; k++) kp_formula_free(f[k]);
    kp_formula_free(s);
    kp_formula_free(gs);
    return st;
}

/* Dense a_i = sum_j k(x_i, y_j) b_j. */
static void gauss_ref(double *a) {
    for (int i = 0; i < N; i++)
        for (int e = 0; e < E; e++) {
            double s = 0;
            for (int j = 0; j < M; j++) s += kern(&X[i * D], &Y[j * D], D) * B[j * E + e];
            a[i * E + e] = s;
        }
}

static double g_gauss_ref[N * E];

static kp_status sc_exec(kp_context *ctx) {
    static const char *const al1[] = {"x = Vi(1)", "y = Vj(1)", "b = Vj(1)"};
    static const char *const al3[] = {"x = Vi(3)", "y = Vj(3)"};
    static double out[N * E], outs[100], vals[N * 3];
    static int64_t idx[N * 3];
    kp_formula *f = NULL, *fs = NULL, *fk = NULL;
    kp_plan *p = NULL, *ps = NULL, *pk = NULL;
    kp_status st = kp_formula_parse(ctx, GAUSS, GAUSS_ALIASES, 4, &f);
    if (st == KP_OK) st = kp_plan_new(ctx, f, KP_FLOAT64, &p);
    kp_array o = kp_array_2d(out, KP_FLOAT64, N, E);
    if (st == KP_OK) st = kp_plan_exec(p, gauss_args, 4, &o, NULL, NULL);
    if (st == KP_OK) st = close_to("gauss", out, g_gauss_ref, N * E, 1e-12);
    /* the split path: partial states of two chunks of j, merged */
    if (st == KP_OK) st = kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*IntCst(3))*b, 1)", al1, 3, &fs);
    if (st == KP_OK) st = kp_plan_new(ctx, fs, KP_FLOAT64, &ps);
    kp_array as[3] = {kp_array_2d(XS, KP_FLOAT64, 100, 1), kp_array_2d(YS, KP_FLOAT64, 40000, 1),
                      kp_array_2d(BS, KP_FLOAT64, 40000, 1)};
    kp_array os = kp_array_2d(outs, KP_FLOAT64, 100, 1);
    if (st == KP_OK) st = kp_plan_exec(ps, as, 3, &os, NULL, NULL);
    for (int i = 0; st == KP_OK && i < 100; i += 33) {
        double s = 0;
        for (int j = 0; j < 40000; j++) s += exp(-3 * (XS[i] - YS[j]) * (XS[i] - YS[j])) * BS[j];
        st = close_to("split", &outs[i], &s, 1, 1e-10);
    }
    /* index outputs */
    if (st == KP_OK) st = kp_formula_parse(ctx, "KMin_ArgKMin_Reduction(SqDist(x,y), 3, 1)", al3, 2, &fk);
    if (st == KP_OK) st = kp_plan_new(ctx, fk, KP_FLOAT64, &pk);
    kp_array ov = kp_array_2d(vals, KP_FLOAT64, N, 3), oi = kp_array_2d(idx, KP_INT64, N, 3);
    if (st == KP_OK) st = kp_plan_exec(pk, gauss_args, 2, &ov, &oi, NULL);
    for (int i = 0; st == KP_OK && i < N; i += 97) {
        double best = INFINITY;
        int64_t arg = -1;
        for (int j = 0; j < M; j++) {
            double s = -log(kern(&X[i * D], &Y[j * D], D)) / G;
            if (s < best) best = s, arg = j;
        }
        if (idx[i * 3] != arg) st = wrong("argkmin[%d] = %lld, expected %lld", i, (long long)idx[i * 3], (long long)arg);
    }
    kp_plan_free(p);
    kp_plan_free(ps);
    kp_plan_free(pk);
    kp_formula_free(f);
    kp_formula_free(fs);
    kp_formula_free(fk);
    return st;
}

/* Dense gradients of <a, EE> w.r.t. x, y and g. */
static double g_dx[N * D], g_dy[M * D], g_dg;

static void grad_refs(void) {
    memset(g_dx, 0, sizeof g_dx);
    memset(g_dy, 0, sizeof g_dy);
    g_dg = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < M; j++) {
            double k = kern(&X[i * D], &Y[j * D], D), eb = 0, d2 = 0;
            for (int e = 0; e < E; e++) eb += EE[i * E + e] * B[j * E + e];
            for (int c = 0; c < D; c++) {
                double diff = X[i * D + c] - Y[j * D + c];
                d2 += diff * diff;
                g_dx[i * D + c] += -2 * G * diff * k * eb;
                g_dy[j * D + c] += 2 * G * diff * k * eb;
            }
            g_dg += -d2 * k * eb;
        }
}

static kp_status sc_grad_exec(kp_context *ctx, int joint) {
    static double dx[N * D], dy[M * D], dg;
    kp_formula *f = NULL, *g[3] = {NULL};
    kp_plan *p[3] = {NULL}, *pj = NULL;
    kp_status st = kp_formula_parse(ctx, GAUSS, GAUSS_ALIASES, 4, &f);
    int wrt[3] = {0, 1, 2};
    for (int k = 0; k < 3 && st == KP_OK; k++) st = kp_formula_grad(ctx, f, wrt[k], &g[k]);
    kp_array args[5] = {gauss_args[0], gauss_args[1], gauss_args[2], gauss_args[3], kp_array_2d(EE, KP_FLOAT64, N, E)};
    kp_array outs[3] = {kp_array_2d(dx, KP_FLOAT64, N, D), kp_array_2d(dy, KP_FLOAT64, M, D),
                        kp_array_2d(&dg, KP_FLOAT64, 1, 1)};
    if (joint) {
        if (st == KP_OK) st = kp_plan_new_joint(ctx, (const kp_formula *const *)g, 3, KP_FLOAT64, &pj);
        if (st == KP_OK) st = kp_plan_exec_joint(pj, args, 5, outs, 3, NULL);
    } else {
        for (int k = 0; k < 3 && st == KP_OK; k++) st = kp_plan_new(ctx, g[k], KP_FLOAT64, &p[k]);
        for (int k = 0; k < 3 && st == KP_OK; k++) st = kp_plan_exec(p[k], args, 5, &outs[k], NULL, NULL);
    }
    if (st == KP_OK) st = close_to("dx", dx, g_dx, N * D, 1e-11);
    if (st == KP_OK) st = close_to("dy", dy, g_dy, M * D, 1e-11);
    if (st == KP_OK) st = close_to("dg", &dg, &g_dg, 1, 1e-11);
    kp_plan_free(pj);
    for (int k = 0; k < 3; k++) {
        kp_plan_free(p[k]);
        kp_formula_free(g[k]);
    }
    kp_formula_free(f);
    return st;
}

static kp_status sc_grads(kp_context *ctx) { return sc_grad_exec(ctx, 0); }
static kp_status sc_joint(kp_context *ctx) { return sc_grad_exec(ctx, 1); }

static kp_status sc_solve(kp_context *ctx) {
    enum { S = 200 };
    static const char *const al[] = {"x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"};
    static double rhs[S], sol[S];
    for (int i = 0; i < S; i++) rhs[i] = sin(i + 1.0);
    kp_formula *f = NULL;
    kp_plan *p = NULL;
    kp_status st = kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)", al, 4, &f);
    if (st == KP_OK) st = kp_plan_new(ctx, f, KP_FLOAT64, &p);
    kp_array args[4] = {kp_array_2d(X, KP_FLOAT64, S, 3), kp_array_2d(X, KP_FLOAT64, S, 3),
                        kp_array_1d(&g_param, KP_FLOAT64, 1), kp_array_2d(NULL, KP_FLOAT64, S, 1)};
    kp_array b = kp_array_2d(rhs, KP_FLOAT64, S, 1), x = kp_array_2d(sol, KP_FLOAT64, S, 1);
    kp_solve_options o = KP_SOLVE_OPTIONS_DEFAULT;
    o.alpha = 1.0;
    o.tol = 1e-10;
    kp_solve_info info;
    if (st == KP_OK) st = kp_plan_solve(p, args, 4, 3, &b, &x, &o, &info);
    for (int i = 0; st == KP_OK && i < S; i += 37) { /* row i of (I + K) x = b */
        double s = sol[i];
        for (int j = 0; j < S; j++) s += kern(&X[i * 3], &X[j * 3], 3) * sol[j];
        st = close_to("solve", &s, &rhs[i], 1, 1e-8);
    }
    kp_plan_free(p);
    kp_formula_free(f);
    return st;
}

static kp_status sc_gpu_source(kp_context *ctx) {
    kp_formula *f = NULL;
    size_t need = 0;
    int built_in = -1;
    char buf[64];
    kp_status st = kp_formula_parse(ctx, GAUSS, GAUSS_ALIASES, 4, &f);
    if (st == KP_OK) st = kp_formula_gpu_source(ctx, f, KP_FLOAT32, KP_ENGINE_OPENCL, buf, sizeof buf, &need);
    if (st == KP_OK && need < 200) st = wrong("OpenCL source of %zu characters", need);
    if (st == KP_OK) st = kp_formula_gpu_source(ctx, f, KP_FLOAT64, KP_ENGINE_CUDA, NULL, 0, &need);
    if (st == KP_OK) st = kp_formula_cuda_aot(ctx, f, KP_FLOAT32, &built_in);
    if (st == KP_OK && built_in != 0 && built_in != 1) st = wrong("built_in = %d", built_in);
    kp_formula_free(f);
    return st;
}

/* Block-sparse ranges that keep every pair (two clusters of rows, each over
 * both halves of the columns): the dense result, on the context's engine. */
static kp_status ranged_gauss(kp_plan *p, double *out) {
    static const int64_t rows[4] = {0, N / 2, N / 2, N}, cols[4] = {0, M / 2, M / 2, M}, slices[2] = {2, 4};
    static const int64_t redcols[8] = {0, M / 2, M / 2, M, 0, M / 2, M / 2, M};
    static const int64_t redrows[8] = {0, N / 2, N / 2, N, 0, N / 2, N / 2, N};
    kp_ranges rg = {8, rows, slices, redcols, cols, slices, redrows, 2, 2, 4, 2, 2, 4};
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.ranges = &rg;
    kp_array o = kp_array_2d(out, KP_FLOAT64, N, E);
    kp_status st = kp_plan_exec(p, gauss_args, 4, &o, NULL, &opt);
    return st == KP_OK ? close_to("ranged gauss", out, g_gauss_ref, N * E, 1e-10) : st;
}

/* Ranges of a part of n points that keep every pair (two clusters of rows, in the part's coordinates). */
static kp_ranges all_pairs(int64_t n, int64_t *cols) {
    static const int64_t rows[4] = {0, N / 2, N / 2, N}, slices[2] = {1, 2};
    cols[0] = cols[2] = 0, cols[1] = cols[3] = n;
    kp_ranges rg = {8, rows, slices, cols, rows, slices, cols, 2, 2, 2, 2, 2, 2};
    return rg;
}

/* Partial states: the Gaussian sum over two parts of j (on ranges keeping
 * every pair when ranged), merged, finalized. */
static kp_status partial_gauss(kp_plan *p, double *out, int ranged) {
    kp_array lo[4], hi[4];
    memcpy(lo, gauss_args, sizeof lo);
    memcpy(hi, gauss_args, sizeof hi);
    lo[1].shape[0] = lo[3].shape[0] = M / 2;
    hi[1].shape[0] = hi[3].shape[0] = M - M / 2;
    hi[1].data = &Y[(M / 2) * D];
    hi[3].data = &B[(M / 2) * E];
    kp_state_info info;
    kp_status st = kp_plan_state_info(p, lo, 4, NULL, &info);
    if (st != KP_OK) return st;
    void *a = malloc(info.bytes), *b = malloc(info.bytes);
    if (!a || !b) st = wrong("the test's own malloc failed");
    if (st == KP_OK) st = kp_plan_state_init(p, &info, a);
    if (st == KP_OK) st = kp_plan_state_init(p, &info, b);
    int64_t clo[4], chi[4];
    kp_ranges rlo = all_pairs(M / 2, clo), rhi = all_pairs(M - M / 2, chi);
    kp_exec_options olo = KP_EXEC_OPTIONS_DEFAULT, ohi = KP_EXEC_OPTIONS_DEFAULT;
    olo.ranges = ranged ? &rlo : NULL;
    ohi.ranges = ranged ? &rhi : NULL;
    if (st == KP_OK) st = kp_plan_exec_partial(p, lo, 4, 0, a, info.bytes, &olo);
    if (st == KP_OK) st = kp_plan_exec_partial(p, hi, 4, M / 2, b, info.bytes, &ohi);
    if (st == KP_OK) st = kp_plan_state_merge(p, a, b, info.bytes);
    kp_array o = kp_array_2d(out, KP_FLOAT64, N, E);
    if (st == KP_OK) st = kp_plan_state_finalize(p, lo, 4, a, info.bytes, &o, NULL, NULL);
    if (st == KP_OK) st = close_to("partial gauss", out, g_gauss_ref, N * E, 1e-12);
    free(a);
    free(b);
    return st;
}

/* Ranges and partial states on the CPU engine. */
static kp_status sc_ranges_partial(kp_context *ctx) {
    static double out[N * E];
    kp_formula *f = NULL;
    kp_plan *p = NULL;
    kp_status st = kp_formula_parse(ctx, GAUSS, GAUSS_ALIASES, 4, &f);
    if (st == KP_OK) st = kp_plan_new(ctx, f, KP_FLOAT64, &p);
    if (st == KP_OK) st = ranged_gauss(p, out);
    if (st == KP_OK) st = partial_gauss(p, out, 0);
    if (st == KP_OK) st = partial_gauss(p, out, 1);
    kp_plan_free(p);
    kp_formula_free(f);
    return st;
}

/* Storage dtypes: float16 inputs and output (converted through the context's
 * allocator), complex arrays read as reals, on the Gaussian sum. */
static kp_status sc_dtypes(kp_context *ctx) {
    static uint16_t hx[N * D], hy[M * D], hb[M * E], hout[N * E];
    static double out[N * E];
    uint16_t hg = kp__float_to_half((float)G);
    for (int k = 0; k < N * D; k++) hx[k] = kp__float_to_half((float)X[k]);
    for (int k = 0; k < M * D; k++) hy[k] = kp__float_to_half((float)Y[k]);
    for (int k = 0; k < M * E; k++) hb[k] = kp__float_to_half((float)B[k]);
    kp_formula *f = NULL;
    kp_plan *p = NULL, *pc = NULL;
    kp_status st = kp_formula_parse(ctx, GAUSS, GAUSS_ALIASES, 4, &f);
    if (st == KP_OK) st = kp_plan_new(ctx, f, KP_FLOAT16, &p);
    kp_array a[4] = {kp_array_2d(hx, KP_FLOAT16, N, D), kp_array_2d(hy, KP_FLOAT16, M, D),
                     kp_array_1d(&hg, KP_FLOAT16, 1), kp_array_2d(hb, KP_FLOAT16, M, E)};
    kp_array o = kp_array_2d(hout, KP_FLOAT16, N, E);
    if (st == KP_OK) st = kp_plan_exec(p, a, 4, &o, NULL, NULL);
    for (int k = 0; st == KP_OK && k < N * E; k++) out[k] = (double)kp__half_to_float(hout[k]);
    if (st == KP_OK) st = close_to("float16 gauss", out, g_gauss_ref, N * E, 1e-2);
    /* b as M complex numbers (E = 2 reals each), the output as N */
    if (st == KP_OK) st = kp_plan_new(ctx, f, KP_COMPLEX128, &pc);
    kp_array c[4] = {gauss_args[0], gauss_args[1], gauss_args[2], kp_array_2d(B, KP_COMPLEX128, M, 1)};
    kp_array oc = kp_array_2d(out, KP_COMPLEX128, N, 1);
    if (st == KP_OK) st = kp_plan_exec(pc, c, 4, &oc, NULL, NULL);
    if (st == KP_OK) st = close_to("complex gauss", out, g_gauss_ref, N * E, 1e-12);
    kp_plan_free(p);
    kp_plan_free(pc);
    kp_formula_free(f);
    return st;
}

/* The OpenCL engine: the exec scenario's Gaussian sum on it, with ranges, and
 * in partial states on ranges. */
static kp_status sc_opencl(kp_context *ctx) {
    static double out[N * E];
    kp_formula *f = NULL;
    kp_plan *p = NULL;
    kp_status st = kp_context_set_engine(ctx, KP_ENGINE_OPENCL);
    if (st == KP_OK) st = kp_formula_parse(ctx, GAUSS, GAUSS_ALIASES, 4, &f);
    if (st == KP_OK) st = kp_plan_new(ctx, f, KP_FLOAT64, &p);
    kp_array o = kp_array_2d(out, KP_FLOAT64, N, E);
    if (st == KP_OK) st = kp_plan_exec(p, gauss_args, 4, &o, NULL, NULL);
    if (st == KP_OK) st = close_to("opencl gauss", out, g_gauss_ref, N * E, 1e-10);
    if (st == KP_OK) st = ranged_gauss(p, out);
    if (st == KP_OK) st = partial_gauss(p, out, 1);
    kp_plan_free(p);
    kp_formula_free(f);
    kp_context_set_engine(ctx, KP_ENGINE_CPU);
    return st;
}

/* The CUDA engine on host arrays. Against the fake driver of tests/gpu
 * (kernels recorded, not run: argument "cuda-mock") only the statuses and the
 * host side's allocations are checked, not the results; there, float16 device
 * arrays too (the fake driver's memory, allocated once through its
 * cuMemAlloc): the engine's conversion kernels and their temporaries. */
static int g_cuda_mock;

static kp_status sc_cuda_half_device(kp_context *ctx) {
    static void *dev[5];
    if (!dev[0]) {
        void *lib = dlopen(getenv("KP_CUDA_LIBRARY"), RTLD_NOW);
        int (*mem_alloc)(uintptr_t *, size_t) = lib ? (int (*)(uintptr_t *, size_t))dlsym(lib, "cuMemAlloc_v2") : NULL;
        const size_t bytes[5] = {N * 3 * 2, M * 3 * 2, 2, M * E * 2, N * E * 2};
        for (int k = 0; k < 5; k++) {
            uintptr_t p = 0;
            if (!mem_alloc || mem_alloc(&p, bytes[k]) != 0) return KP_ERR_INTERNAL;
            dev[k] = (void *)p;
        }
    }
    kp_formula *f = NULL;
    kp_plan *p = NULL;
    kp_status st = kp_formula_parse(ctx, GAUSS, GAUSS_ALIASES, 4, &f);
    if (st == KP_OK) st = kp_plan_new(ctx, f, KP_FLOAT16, &p);
    kp_array a[4] = {kp_array_2d(dev[0], KP_FLOAT16, N, 3), kp_array_2d(dev[1], KP_FLOAT16, M, 3),
                     kp_array_1d(dev[2], KP_FLOAT16, 1), kp_array_2d(dev[3], KP_FLOAT16, M, E)};
    kp_array o = kp_array_2d(dev[4], KP_FLOAT16, N, E);
    for (int k = 0; k < 4; k++) a[k].device = KP_DEVICE_CUDA;
    o.device = KP_DEVICE_CUDA;
    if (st == KP_OK) st = kp_plan_exec(p, a, 4, &o, NULL, NULL);
    kp_plan_free(p);
    kp_formula_free(f);
    return st;
}

static kp_status sc_cuda(kp_context *ctx) {
    static double out[N * E];
    kp_formula *f = NULL, *g = NULL;
    kp_plan *p = NULL, *pg = NULL;
    kp_status st = kp_context_set_engine(ctx, KP_ENGINE_CUDA);
    if (st == KP_OK) st = kp_formula_parse(ctx, GAUSS, GAUSS_ALIASES, 4, &f);
    if (st == KP_OK) st = kp_plan_new(ctx, f, KP_FLOAT64, &p);
    kp_array o = kp_array_2d(out, KP_FLOAT64, N, E);
    if (st == KP_OK) st = kp_plan_exec(p, gauss_args, 4, &o, NULL, NULL);
    if (st == KP_OK && !g_cuda_mock) st = close_to("cuda gauss", out, g_gauss_ref, N * E, 1e-10);
    double dg = 0; /* a parameter gradient: rows summed */
    kp_array args[5] = {gauss_args[0], gauss_args[1], gauss_args[2], gauss_args[3], kp_array_2d(EE, KP_FLOAT64, N, E)};
    kp_array og = kp_array_2d(&dg, KP_FLOAT64, 1, 1);
    if (st == KP_OK) st = kp_formula_grad(ctx, f, 2, &g);
    if (st == KP_OK) st = kp_plan_new(ctx, g, KP_FLOAT64, &pg);
    if (st == KP_OK) st = kp_plan_exec(pg, args, 5, &og, NULL, NULL);
    if (st == KP_OK && !g_cuda_mock) st = close_to("cuda dg", &dg, &g_dg, 1, 1e-10);
    if (st == KP_OK && g_cuda_mock) st = sc_cuda_half_device(ctx);
    kp_plan_free(p);
    kp_plan_free(pg);
    kp_formula_free(f);
    kp_formula_free(g);
    kp_context_set_engine(ctx, KP_ENGINE_CPU);
    return st;
}

/* ------------------------------------------------------------ the driver */

static long g_points_total; /* allocations failed, over every scenario */

/* Fails allocation k = 1, 2, ... of scenario s (context creation included)
 * until a run reaches no k-th allocation. */
static void fail_each(const char *name, scenario_fn s) {
    long k;
    pthread_mutex_lock(&A.lock); /* a failed test before may have left blocks */
    A.nlive = 0;
    A.bad = 0;
    pthread_mutex_unlock(&A.lock);
    for (k = 1; k < 20000; k++) {
        arm(k);
        kp_context *ctx = NULL;
        kp_status st = kp_context_new_with_allocator(test_alloc, NULL, &ctx);
        if (st == KP_OK) {
            kp_context_set_num_threads(ctx, 4); /* scratch buffers from 4 OpenMP threads */
            g_wrong[0] = '\0';
            st = s(ctx);
            if (st == WRONG) fail_msg("%s, allocation %ld failed: wrong result: %s", name, k, g_wrong);
            if (st != KP_OK) {
                if (st != KP_ERR_OOM)
                    fail_msg("%s, allocation %ld failed: status %s (%s), expected KP_ERR_OOM", name, k,
                             kp_status_name(st), kp_context_message(ctx));
                if (!kp_context_message(ctx)[0])
                    fail_msg("%s, allocation %ld failed: KP_ERR_OOM without a message", name, k);
                arm(0); /* the context stays usable: the whole scenario, no failure */
                st = s(ctx);
                if (st != KP_OK)
                    fail_msg("%s: after allocation %ld failed, the next run gives %s: %s%s", name, k, kp_status_name(st),
                             kp_context_message(ctx), g_wrong);
            }
            kp_context_free(ctx);
        } else if (st != KP_ERR_OOM) {
            fail_msg("%s: kp_context_new_with_allocator with allocation %ld failing: %s", name, k, kp_status_name(st));
        }
        pthread_mutex_lock(&A.lock);
        long nlive = A.nlive, bad = A.bad, failed = A.failed, count = A.count;
        pthread_mutex_unlock(&A.lock);
        if (nlive) fail_msg("%s, allocation %ld failed: %ld blocks not given back", name, k, nlive);
        if (bad) fail_msg("%s: %ld frees or resizes with another size or alignment than the block's", name, bad);
        if (!failed && count < k) break; /* allocation k was never reached: every point was tried */
        g_points_total++;
    }
    print_message("%s: %ld allocation failures tried\n", name, k - 1);
    assert_true(k > 1 && k < 20000);
}

static void test_parse(void **state) { (void)state; fail_each("parse", sc_parse); }
static void test_grad(void **state) { (void)state; fail_each("grad", sc_grad); }
static void test_exec(void **state) { (void)state; fail_each("exec", sc_exec); }
static void test_grads(void **state) { (void)state; fail_each("gradient exec", sc_grads); }
static void test_joint(void **state) { (void)state; fail_each("joint", sc_joint); }
static void test_solve(void **state) { (void)state; fail_each("solve", sc_solve); }
static void test_gpu_source(void **state) { (void)state; fail_each("gpu source", sc_gpu_source); }
static void test_ranges_partial(void **state) { (void)state; fail_each("ranges and partial states", sc_ranges_partial); }
static void test_dtypes(void **state) { (void)state; fail_each("float16 and complex arrays", sc_dtypes); }

static void test_opencl(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    kp_status st = kp_engine_available(ctx, KP_ENGINE_OPENCL);
    if (st != KP_OK || getenv("KP_TEST_NO_OPENCL")) {
        print_message("OpenCL engine not available here (%s): skipped\n", kp_context_message(ctx));
        kp_context_free(ctx);
        skip();
    }
    kp_context_free(ctx);
    fail_each("opencl", sc_opencl);
}

static void test_cuda(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    kp_status st = kp_engine_available(ctx, KP_ENGINE_CUDA);
    if (st == KP_OK) st = sc_cuda(ctx); /* a clean run: kernels may not compile here (no NVRTC) */
    if (st == KP_ERR_UNSUPPORTED) {
        print_message("CUDA engine not available here (%s): skipped\n", kp_context_message(ctx));
        kp_context_free(ctx);
        skip();
    }
    if (st != KP_OK) fail_msg("cuda: %s: %s%s", kp_status_name(st), kp_context_message(ctx), g_wrong);
    kp_context_free(ctx);
    fail_each(g_cuda_mock ? "cuda (fake driver)" : "cuda", sc_cuda);
}

/* The default allocator and a caller's one give the same results; NULL out. */
static void test_api(void **state) {
    (void)state;
    assert_int_equal(kp_context_new_with_allocator(test_alloc, NULL, NULL), KP_ERR_NULL);
    kp_context *ctx;
    assert_int_equal(kp_context_new_with_allocator(NULL, NULL, &ctx), KP_OK);
    assert_int_equal(sc_exec(ctx), KP_OK);
    kp_context_free(ctx);
}

/* No argument: every scenario (OpenCL and CUDA where they run); "cuda-mock":
 * the CUDA scenario alone, against tests/gpu's fake driver. */
int main(int argc, char **argv) {
    fill_data();
    set_gauss_args();
    gauss_ref(g_gauss_ref);
    grad_refs();
    g_cuda_mock = argc > 1 && strcmp(argv[1], "cuda-mock") == 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api),   cmocka_unit_test(test_parse), cmocka_unit_test(test_grad),
        cmocka_unit_test(test_exec),  cmocka_unit_test(test_grads), cmocka_unit_test(test_joint),
        cmocka_unit_test(test_solve), cmocka_unit_test(test_gpu_source), cmocka_unit_test(test_ranges_partial),
        cmocka_unit_test(test_dtypes),
        cmocka_unit_test(test_opencl),
        cmocka_unit_test(test_cuda),
    };
    const struct CMUnitTest mock[] = {cmocka_unit_test(test_cuda)};
    int rc = g_cuda_mock ? cmocka_run_group_tests(mock, NULL, NULL) : cmocka_run_group_tests(tests, NULL, NULL);
    printf("allocation failure points tried: %ld\n", g_points_total);
    return rc;
}
