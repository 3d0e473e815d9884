/*
 * test_threads.c — what kp.h promises about threads, exercised by many threads
 * at once (run under ThreadSanitizer by scripts/tsan.sh: 0 reports expected).
 *
 * kp.h: "a kp_context is used by one thread at a time. A kp_formula and a
 * kp_plan are immutable after creation and may be used from several threads
 * at once, provided each thread passes its own context to calls that take
 * one; concurrent kp_plan_exec on one plan is safe only while they succeed."
 * A formula lives in the context that made it: calls that take a context
 * and a formula need that one (KP_ERR_ARGUMENT otherwise); the calls that
 * only read a formula may run from any thread. So T threads, each with its
 * own context:
 *   1. own_contexts: parse, differentiate, plan and run their own formulas;
 *   2. shared_formula: introspect and print one formula while its owner
 *      thread derives gradients and plans from it in its context, and see
 *      their own contexts refused for it (with the message in their own);
 *   3. shared_plan: run one plan (and one joint plan) made in the main
 *      thread, each with its own arrays, every call succeeding;
 *   4. with 1 or 2 OpenMP threads per call, alternately.
 * Every result must equal, bit for bit, the one computed in the main thread
 * before the threads start (kp.h: results do not depend on the thread count).
 * Not tested, because kp.h does not promise it: two threads using one context
 * at once, and failing calls on a shared plan (they write the plan's context).
 * KP_TEST_THREADS sets T (default 8), KP_TEST_ROUNDS the calls per thread.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kp_test_util.h"

#define MAX_T 64
#define N 300
#define M 500
#define D 3

static const char *const ALIASES[] = {"x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(2)"};
static const char *const GAUSS = "Sum_Reduction(Exp(-g*SqDist(x,y))*b, 1)";
static const char *const KNN = "ArgKMin_Reduction(SqDist(x,y), 3, 1)";

static double X[N * D], Y[M * D], B[M * 2], G[1] = {0.7}, E[N * 2];

static int env_int(const char *name, int dflt) {
    const char *v = getenv(name);
    int n = v ? atoi(v) : 0;
    return n > 0 ? n : dflt;
}

static void fill_data(void) {
    kpt_rng r;
    kpt_rng_seed(&r, 18);
    kpt_fill_uniform(&r, X, N * D, -1, 1);
    kpt_fill_uniform(&r, Y, M * D, -1, 1);
    kpt_fill_uniform(&r, B, M * 2, -1, 1);
    kpt_fill_uniform(&r, E, N * 2, -1, 1);
}

/* The arguments of GAUSS, then E (the output gradient of its kp_formula_grad). */
static void gauss_args(kp_array *a) {
    a[0] = kp_array_2d(X, KP_FLOAT64, N, D);
    a[1] = kp_array_2d(Y, KP_FLOAT64, M, D);
    a[2] = kp_array_1d(G, KP_FLOAT64, 1);
    a[3] = kp_array_2d(B, KP_FLOAT64, M, 2);
    a[4] = kp_array_2d(E, KP_FLOAT64, N, 2);
}

/* The references, computed in the main thread. */
static double ref_gauss[N * 2], ref_grad_x[N * D], ref_grad_y[M * D];
static int64_t ref_knn[N * 3];

/* Runs one formula in ctx; out has rows x dim (values, or int64 indices when idx). */
static kp_status run_formula(kp_context *ctx, const kp_formula *f, void *out, int64_t rows, int64_t dim, int idx,
                             int nthreads) {
    kp_plan *p = NULL;
    kp_status st = kp_plan_new(ctx, f, KP_FLOAT64, &p);
    if (st != KP_OK) return st;
    kp_array a[5], o = kp_array_2d(out, idx ? KP_INT64 : KP_FLOAT64, rows, dim);
    gauss_args(a);
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.num_threads = nthreads;
    st = kp_plan_exec(p, a, (size_t)kp_formula_num_args(f), idx ? NULL : &o, idx ? &o : NULL, &opt);
    kp_plan_free(p);
    return st;
}

static kp_status parse(kp_context *ctx, const char *text, kp_formula **f) {
    return kp_formula_parse(ctx, text, ALIASES, 4, f);
}

static void compute_references(void) {
    kp_context *ctx;
    kp_formula *f, *gx, *gy, *k;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    KPT_ASSERT_OK(ctx, parse(ctx, GAUSS, &f));
    KPT_ASSERT_OK(ctx, parse(ctx, KNN, &k));
    KPT_ASSERT_OK(ctx, kp_formula_grad(ctx, f, 0, &gx));
    KPT_ASSERT_OK(ctx, kp_formula_grad(ctx, f, 1, &gy));
    KPT_ASSERT_OK(ctx, run_formula(ctx, f, ref_gauss, N, 2, 0, 1));
    KPT_ASSERT_OK(ctx, run_formula(ctx, gx, ref_grad_x, N, D, 0, 1));
    KPT_ASSERT_OK(ctx, run_formula(ctx, gy, ref_grad_y, M, D, 0, 1));
    KPT_ASSERT_OK(ctx, run_formula(ctx, k, ref_knn, N, 3, 1, 1));
    kp_formula_free(f);
    kp_formula_free(gx);
    kp_formula_free(gy);
    kp_formula_free(k);
    kp_context_free(ctx);
}

/* ------------------------------------------------------------ workers */

typedef struct worker {
    pthread_t th;
    int id, rounds;
    const kp_formula *shared_f;  /* test 2 */
    kp_plan *shared_plan;        /* test 3 */
    kp_plan *shared_joint;       /* test 3 */
    kp_context *owner_ctx;       /* test 2: the shared formula's context (owner thread only) */
    int failures;
    char first_failure[256];
} worker;

static void note_failure(worker *w, const char *what, kp_context *ctx) {
    if (w->failures++ == 0)
        snprintf(w->first_failure, sizeof w->first_failure, "thread %d: %s (%s)", w->id, what,
                 ctx ? kp_context_message(ctx) : "");
}

static int same(const void *a, const void *b, size_t bytes) { return memcmp(a, b, bytes) == 0; }

/* Gradient w.r.t. x and y of f, built in ctx, run and compared with the references. */
static void check_grads(worker *w, kp_context *ctx, const kp_formula *f, int nthreads) {
    double gx[N * D], gy[M * D];
    kp_formula *g0 = NULL, *g1 = NULL;
    if (kp_formula_grad(ctx, f, 0, &g0) != KP_OK || kp_formula_grad(ctx, f, 1, &g1) != KP_OK) {
        note_failure(w, "kp_formula_grad", ctx);
    } else {
        if (run_formula(ctx, g0, gx, N, D, 0, nthreads) != KP_OK || !same(gx, ref_grad_x, sizeof gx))
            note_failure(w, "gradient in x differs", ctx);
        if (run_formula(ctx, g1, gy, M, D, 0, nthreads) != KP_OK || !same(gy, ref_grad_y, sizeof gy))
            note_failure(w, "gradient in y differs", ctx);
    }
    kp_formula_free(g0);
    kp_formula_free(g1);
}

static void *own_contexts(void *arg) {
    worker *w = arg;
    for (int r = 0; r < w->rounds; r++) {
        int nt = 1 + ((w->id + r) & 1);
        kp_context *ctx = NULL;
        if (kp_context_new(&ctx) != KP_OK) {
            note_failure(w, "kp_context_new", NULL);
            return NULL;
        }
        kp_context_set_num_threads(ctx, nt);
        kp_formula *f = NULL, *k = NULL;
        double out[N * 2];
        int64_t idx[N * 3];
        if (parse(ctx, GAUSS, &f) != KP_OK || parse(ctx, KNN, &k) != KP_OK) {
            note_failure(w, "parse", ctx);
        } else {
            if (run_formula(ctx, f, out, N, 2, 0, 0) != KP_OK || !same(out, ref_gauss, sizeof out))
                note_failure(w, "Gaussian sum differs", ctx);
            if (run_formula(ctx, k, idx, N, 3, 1, 0) != KP_OK || !same(idx, ref_knn, sizeof idx))
                note_failure(w, "ArgKMin differs", ctx);
            check_grads(w, ctx, f, 0);
            /* A parse error in one thread's context leaves the others' alone. */
            kp_formula *bad = NULL;
            if (kp_formula_parse(ctx, "Sum_Reduction(Exq(x), 1)", ALIASES, 4, &bad) != KP_ERR_PARSE ||
                !strstr(kp_context_message(ctx), "Exq"))
                note_failure(w, "parse error message", ctx);
        }
        kp_formula_free(f);
        kp_formula_free(k);
        kp_context_free(ctx);
    }
    return NULL;
}

/* Reads a formula owned by the main thread's context while that thread keeps
 * deriving and planning from it (kp.h: read-only calls on a formula from any
 * thread; calls that take a context need the formula's own). */
static void *shared_formula(void *arg) {
    worker *w = arg;
    kp_context *ctx = NULL;
    if (kp_context_new(&ctx) != KP_OK) {
        note_failure(w, "kp_context_new", NULL);
        return NULL;
    }
    char text[512], main_text[512];
    kp_formula_print(w->shared_f, main_text, sizeof main_text);
    for (int r = 0; r < 50 * w->rounds; r++) {
        const kp_formula *f = w->shared_f;
        kp_var_category cat;
        int dim;
        if (kp_formula_num_args(f) != 4 || kp_formula_arg(f, 3, &cat, &dim) != KP_OK || dim != 2 ||
            kp_formula_arg(f, 7, &cat, &dim) != KP_ERR_ARGUMENT || kp_formula_out_dim(f) != 2 ||
            kp_formula_reduction(f) != KP_RED_SUM || kp_formula_node_count(f) == 0)
            note_failure(w, "introspection", NULL);
        kp_formula_print(f, text, sizeof text);
        if (strcmp(text, main_text) != 0) note_failure(w, "printed text differs", NULL);
        /* Another thread's context is refused, with the message in that context. */
        kp_plan *p = NULL;
        kp_formula *g = NULL;
        if (kp_plan_new(ctx, f, KP_FLOAT64, &p) != KP_ERR_ARGUMENT || p ||
            !strstr(kp_context_message(ctx), "another context"))
            note_failure(w, "kp_plan_new in another context", ctx);
        if (kp_formula_grad(ctx, f, 0, &g) != KP_ERR_ARGUMENT || g) note_failure(w, "grad in another context", ctx);
    }
    kp_context_free(ctx);
    return NULL;
}

static void *shared_plan(void *arg) {
    worker *w = arg;
    for (int r = 0; r < w->rounds; r++) {
        kp_array a[5];
        gauss_args(a);
        double out[N * 2], gx[N * D], gy[M * D];
        kp_array o = kp_array_2d(out, KP_FLOAT64, N, 2);
        kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
        opt.num_threads = 1 + ((w->id + r) & 1);
        if (kp_plan_exec(w->shared_plan, a, 4, &o, NULL, &opt) != KP_OK || !same(out, ref_gauss, sizeof out))
            note_failure(w, "shared plan result differs", NULL);
        kp_array outs[2] = {kp_array_2d(gx, KP_FLOAT64, N, D), kp_array_2d(gy, KP_FLOAT64, M, D)};
        if (kp_plan_exec_joint(w->shared_joint, a, 5, outs, 2, &opt) != KP_OK)
            note_failure(w, "shared joint plan failed", NULL);
        /* The joint pass sums in another order than one formula at a time:
         * compare with the references to rounding, bit-identity only across
         * threads (below). */
        for (int k = 0; k < N * D; k++)
            if (!(gx[k] - ref_grad_x[k] < 1e-12 && ref_grad_x[k] - gx[k] < 1e-12)) {
                note_failure(w, "joint gradient in x differs", NULL);
                break;
            }
        for (int k = 0; k < M * D; k++)
            if (!(gy[k] - ref_grad_y[k] < 1e-12 && ref_grad_y[k] - gy[k] < 1e-12)) {
                note_failure(w, "joint gradient in y differs", NULL);
                break;
            }
    }
    return NULL;
}

static void run_workers(void *(*fn)(void *), const kp_formula *f, kp_plan *p, kp_plan *joint) {
    int T = env_int("KP_TEST_THREADS", 8), rounds = env_int("KP_TEST_ROUNDS", 3);
    if (T > MAX_T) T = MAX_T;
    static worker w[MAX_T];
    memset(w, 0, sizeof w);
    for (int t = 0; t < T; t++) {
        w[t].id = t;
        w[t].rounds = rounds;
        w[t].shared_f = f;
        w[t].shared_plan = p;
        w[t].shared_joint = joint;
        assert_int_equal(pthread_create(&w[t].th, NULL, fn, &w[t]), 0);
    }
    int failures = 0;
    for (int t = 0; t < T; t++) {
        pthread_join(w[t].th, NULL);
        if (w[t].failures) print_error("%s\n", w[t].first_failure);
        failures += w[t].failures;
    }
    assert_int_equal(failures, 0);
}

static void test_own_contexts(void **state) {
    (void)state;
    run_workers(own_contexts, NULL, NULL, NULL);
}

/* The owner: derives, plans and runs from f in its context while the workers read f. */
static void *owner(void *arg) {
    worker *w = arg;
    kp_context *ctx = w->owner_ctx;
    for (int r = 0; r < w->rounds; r++) {
        double out[N * 2];
        if (run_formula(ctx, w->shared_f, out, N, 2, 0, 1 + (r & 1)) != KP_OK || !same(out, ref_gauss, sizeof out))
            note_failure(w, "owner: Gaussian sum differs", ctx);
        check_grads(w, ctx, w->shared_f, 1 + (r & 1));
    }
    return NULL;
}

static void test_shared_formula(void **state) {
    (void)state;
    kp_context *ctx;
    kp_formula *f;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    KPT_ASSERT_OK(ctx, parse(ctx, GAUSS, &f));
    static worker own;
    memset(&own, 0, sizeof own);
    own.id = -1;
    own.rounds = env_int("KP_TEST_ROUNDS", 3);
    own.shared_f = f;
    own.owner_ctx = ctx;
    assert_int_equal(pthread_create(&own.th, NULL, owner, &own), 0);
    run_workers(shared_formula, f, NULL, NULL);
    pthread_join(own.th, NULL);
    if (own.failures) print_error("%s\n", own.first_failure);
    assert_int_equal(own.failures, 0);
    kp_formula_free(f);
    kp_context_free(ctx);
}

static void test_shared_plan(void **state) {
    (void)state;
    kp_context *ctx;
    kp_formula *f, *g[2];
    kp_plan *p, *joint;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    KPT_ASSERT_OK(ctx, parse(ctx, GAUSS, &f));
    KPT_ASSERT_OK(ctx, kp_formula_grad(ctx, f, 0, &g[0]));
    KPT_ASSERT_OK(ctx, kp_formula_grad(ctx, f, 1, &g[1]));
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, KP_FLOAT64, &p));
    KPT_ASSERT_OK(ctx, kp_plan_new_joint(ctx, (const kp_formula *const *)g, 2, KP_FLOAT64, &joint));
    /* Formulas may be freed while their plans live (kp.h). */
    kp_formula_free(f);
    kp_formula_free(g[0]);
    kp_formula_free(g[1]);
    run_workers(shared_plan, NULL, p, joint);
    kp_plan_free(p);
    kp_plan_free(joint);
    kp_context_free(ctx);
}

/* Negative control (KP_TEST_NEGATIVE_CONTROL=1, not part of the suite): four
 * threads parse in ONE context, which kp.h forbids; under ThreadSanitizer this
 * must be reported, showing that the build would see a race in libkp. */
static void *parse_in_shared_context(void *arg) {
    kp_context *ctx = arg;
    for (int r = 0; r < 20; r++) {
        kp_formula *f = NULL;
        char text[64];
        snprintf(text, sizeof text, "Sum_Reduction(Exp(-%d*SqDist(x,y))*b, 1)", r);
        kp_formula_parse(ctx, text, ALIASES, 4, &f);
        kp_formula_free(f);
    }
    return NULL;
}

static void negative_control(void) {
    kp_context *ctx;
    pthread_t th[4];
    if (kp_context_new(&ctx) != KP_OK) return;
    for (int t = 0; t < 4; t++) pthread_create(&th[t], NULL, parse_in_shared_context, ctx);
    for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
    kp_context_free(ctx);
}

static int setup(void **state) {
    (void)state;
    fill_data();
    compute_references();
    return 0;
}

int main(void) {
    if (getenv("KP_TEST_NEGATIVE_CONTROL")) {
        negative_control();
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_contexts),
        cmocka_unit_test(test_shared_formula),
        cmocka_unit_test(test_shared_plan),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
