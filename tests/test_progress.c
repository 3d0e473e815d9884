/*
 * test_progress.c — progress callback and cancellation (kp_exec_options.progress).
 *
 * What it asserts, on the Gaussian kernel product sum_j exp(-|x_i-y_j|^2) b_j:
 * - a call that runs past 0.25 s sees calls with 0 < done <= total, done not
 *   decreasing, paced at least 0.2 s apart, the last with done == total, all from
 *   the calling thread; its output is bit-identical to the same call without
 *   a callback (the callback changes nothing but timing);
 * - a short call never sees the callback;
 * - a nonzero return stops a long call (N = M = 2e5, minutes of work) within
 *   a second of the first callback with KP_ERR_CANCELLED and a message, after
 *   which the same plan and context compute a correct small reduction;
 * - the same for a joint plan (kp_plan_exec_joint of the x and y gradients);
 * - KP_EXEC_OPTIONS_DEFAULT leaves the callback unset.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "kp_test_util.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct recorder {
    int calls;
    int cancel_at; /* return nonzero on this call (1-based); 0: never */
    int64_t last_done, total;
    double last_time, min_gap, first_call;
    int bad; /* done out of range, decreasing, or another thread */
    pthread_t caller;
} recorder;

static int record(void *user, int64_t done, int64_t total) {
    recorder *r = user;
    double t = now_s();
    if (r->calls == 0) r->first_call = t;
    if (done < total) { /* paced calls; the final one (done == total) may follow one at once */
        if (r->last_time > 0 && t - r->last_time < r->min_gap) r->min_gap = t - r->last_time;
        r->last_time = t;
    }
    if (done <= 0 || done > total || done < r->last_done || (r->total && total != r->total)) r->bad = 1;
    if (!pthread_equal(pthread_self(), r->caller)) r->bad = 1;
    r->last_done = done;
    r->total = total;
    r->calls++;
    return r->cancel_at && r->calls >= r->cancel_at;
}

typedef struct problem {
    kp_context *ctx;
    kp_formula *f;
    kp_plan *plan;
    int64_t N, M;
    float *x, *y, *b, *out;
} problem;

static void problem_new(problem *p, int64_t N, int64_t M) {
    static const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "b = Vj(1)"};
    p->N = N;
    p->M = M;
    assert_int_equal(kpt_context_new(&p->ctx), KP_OK);
    assert_int_equal(kp_context_set_num_threads(p->ctx, 2), KP_OK);
    assert_int_equal(kp_formula_parse(p->ctx, "Sum_Reduction(Exp(-SqDist(x,y))*b,1)", aliases, 3, &p->f), KP_OK);
    assert_int_equal(kp_plan_new(p->ctx, p->f, KP_FLOAT32, &p->plan), KP_OK);
    kpt_rng r;
    kpt_rng_seed(&r, 7);
    p->x = malloc((size_t)N * 3 * sizeof(float));
    p->y = malloc((size_t)M * 3 * sizeof(float));
    p->b = malloc((size_t)M * sizeof(float));
    p->out = malloc((size_t)N * sizeof(float));
    assert_true(p->x && p->y && p->b && p->out);
    for (int64_t k = 0; k < N * 3; k++) p->x[k] = (float)kpt_rng_uniform(&r, 0, 1);
    for (int64_t k = 0; k < M * 3; k++) p->y[k] = (float)kpt_rng_uniform(&r, 0, 1);
    for (int64_t k = 0; k < M; k++) p->b[k] = (float)kpt_rng_uniform(&r, -1, 1);
}

static kp_status problem_run(problem *p, int64_t N, int64_t M, float *out, const kp_exec_options *opt) {
    kp_array args[3] = {kp_array_2d(p->x, KP_FLOAT32, N, 3), kp_array_2d(p->y, KP_FLOAT32, M, 3),
                        kp_array_2d(p->b, KP_FLOAT32, M, 1)};
    kp_array o = kp_array_2d(out, KP_FLOAT32, N, 1);
    return kp_plan_exec(p->plan, args, 3, &o, NULL, opt);
}

static void problem_free(problem *p) {
    kp_plan_free(p->plan);
    kp_formula_free(p->f);
    kp_context_free(p->ctx);
    free(p->x);
    free(p->y);
    free(p->b);
    free(p->out);
}

static void test_default_has_no_callback(void **s) {
    (void)s;
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    assert_null(opt.progress);
    assert_null(opt.progress_user);
}

static void test_reports_and_changes_nothing(void **s) {
    (void)s;
    problem p;
    /* about a second on two cores: several calls (smaller under KP_TEST_SKIP_LARGE: sanitizer runs) */
    int64_t N = kpt_skip_large() ? 10000 : 40000, M = N;
    problem_new(&p, N, M);
    recorder r = {.min_gap = 1e9, .caller = pthread_self()};
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.progress = record;
    opt.progress_user = &r;
    double t0 = now_s();
    assert_int_equal(problem_run(&p, N, M, p.out, &opt), KP_OK);
    double elapsed = now_s() - t0;
    float *plain = malloc((size_t)N * sizeof(float));
    assert_int_equal(problem_run(&p, N, M, plain, NULL), KP_OK);
    assert_memory_equal(plain, p.out, (size_t)N * sizeof(float));
    assert_int_equal(r.bad, 0);
    assert_true(r.calls >= 1);               /* at least the final call */
    assert_int_equal(r.last_done, r.total); /* ends with done == total */
    if (elapsed > 0.6) assert_true(r.calls >= 2);
    assert_true(r.min_gap >= 0.2); /* a few calls per second at most (1e9 when fewer than two paced calls) */
    print_message("progress: %d calls over %.2f s, total %lld blocks\n", r.calls, elapsed, (long long)r.total);

    /* a short call: no progress call but the final one */
    recorder q = {.min_gap = 1e9, .caller = pthread_self()};
    opt.progress_user = &q;
    assert_int_equal(problem_run(&p, 100, 100, p.out, &opt), KP_OK);
    assert_int_equal(q.calls, 1);
    assert_int_equal(q.last_done, q.total);
    free(plain);
    problem_free(&p);
}

static void test_cancel_stops_and_context_stays_usable(void **s) {
    (void)s;
    problem p;
    int64_t N = 200000, M = 200000; /* 4e10 pairs: far longer than the test allows */
    problem_new(&p, N, M);
    recorder r = {.min_gap = 1e9, .cancel_at = 1, .caller = pthread_self()};
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.progress = record;
    opt.progress_user = &r;
    double t0 = now_s();
    kp_status st = problem_run(&p, N, M, p.out, &opt);
    double t1 = now_s();
    assert_int_equal(st, KP_ERR_CANCELLED);
    assert_non_null(strstr(kp_context_message(p.ctx), "cancelled"));
    assert_int_equal(r.calls, 1);
    assert_true(r.first_call - t0 >= 0.2);  /* never in the first 0.25 s */
    assert_true(t1 - r.first_call < 1.0);   /* stops within a second */
    print_message("cancel: first call after %.2f s, returned %.3f s later\n", r.first_call - t0, t1 - r.first_call);

    /* the same plan and context, a small call checked against float64 */
    int64_t n = 50, m = 70;
    assert_int_equal(problem_run(&p, n, m, p.out, NULL), KP_OK);
    for (int64_t i = 0; i < n; i++) {
        double ref = 0;
        for (int64_t j = 0; j < m; j++) {
            double d = 0;
            for (int c = 0; c < 3; c++) {
                double t = (double)p.x[i * 3 + c] - (double)p.y[j * 3 + c];
                d += t * t;
            }
            ref += exp(-d) * (double)p.b[j];
        }
        assert_true(fabs((double)p.out[i] - ref) <= 1e-5 * (1 + fabs(ref)));
    }
    problem_free(&p);
}

/* The joint pass (kp_plan_exec_joint) of the x and y gradients: the same
 * cancellation, between groups of rows. */
static void test_cancel_joint(void **s) {
    (void)s;
    problem p;
    int64_t N = 200000, M = 200000;
    problem_new(&p, N, M);
    kp_formula *g[2];
    assert_int_equal(kp_formula_grad(p.ctx, p.f, 0, &g[0]), KP_OK);
    assert_int_equal(kp_formula_grad(p.ctx, p.f, 1, &g[1]), KP_OK);
    const kp_formula *fs[2] = {g[0], g[1]};
    kp_plan *plan;
    assert_int_equal(kp_plan_new_joint(p.ctx, fs, 2, KP_FLOAT32, &plan), KP_OK);
    float *e = calloc((size_t)N, sizeof(float)), *gx = malloc((size_t)N * 3 * sizeof(float));
    float *gy = malloc((size_t)M * 3 * sizeof(float));
    assert_true(e && gx && gy);
    kp_array args[4] = {kp_array_2d(p.x, KP_FLOAT32, N, 3), kp_array_2d(p.y, KP_FLOAT32, M, 3),
                        kp_array_2d(p.b, KP_FLOAT32, M, 1), kp_array_2d(e, KP_FLOAT32, N, 1)};
    kp_array outs[2] = {kp_array_2d(gx, KP_FLOAT32, N, 3), kp_array_2d(gy, KP_FLOAT32, M, 3)};
    recorder r = {.min_gap = 1e9, .cancel_at = 1, .caller = pthread_self()};
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.progress = record;
    opt.progress_user = &r;
    double t0 = now_s();
    assert_int_equal(kp_plan_exec_joint(plan, args, 4, outs, 2, &opt), KP_ERR_CANCELLED);
    double t1 = now_s();
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.bad, 0);
    assert_true(t1 - r.first_call < 1.0);
    print_message("joint cancel: first call after %.2f s, returned %.3f s later\n", r.first_call - t0, t1 - r.first_call);
    /* usable afterwards: with e = 0 both gradients are exactly 0 */
    kp_array small[4] = {kp_array_2d(p.x, KP_FLOAT32, 300, 3), kp_array_2d(p.y, KP_FLOAT32, 400, 3),
                         kp_array_2d(p.b, KP_FLOAT32, 400, 1), kp_array_2d(e, KP_FLOAT32, 300, 1)};
    kp_array souts[2] = {kp_array_2d(gx, KP_FLOAT32, 300, 3), kp_array_2d(gy, KP_FLOAT32, 400, 3)};
    gx[0] = gy[0] = 1.0f;
    assert_int_equal(kp_plan_exec_joint(plan, small, 4, souts, 2, NULL), KP_OK);
    for (int k = 0; k < 900; k++) assert_true(gx[k] == 0.0f);
    for (int k = 0; k < 1200; k++) assert_true(gy[k] == 0.0f);
    kp_plan_free(plan);
    kp_formula_free(g[0]);
    kp_formula_free(g[1]);
    free(e);
    free(gx);
    free(gy);
    problem_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_has_no_callback),
        cmocka_unit_test(test_reports_and_changes_nothing),
        cmocka_unit_test(test_cancel_stops_and_context_stays_usable),
        cmocka_unit_test(test_cancel_joint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
