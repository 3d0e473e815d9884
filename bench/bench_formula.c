/*
 * bench_formula.c — kp_bench_formula: the time of one kp_plan_exec of one
 * formula at one size, measured in C (no binding in the way): the per-call
 * costs that the panel's Python figures hide at small N.
 *
 * Variables: x = Vi(3), y = Vj(3), b = Vj(1), g = Pm(1) (g = 2, b = 1, x and
 * y uniform in [0, 1]^3); N = M. After 20 warm-up calls and half a second of
 * calls (the compiled kernel's takeover under KP_JIT's default), the best of
 * --rounds rounds of --calls calls, per call.
 *
 * usage: kp_bench_formula [--n N] [--dtype f32|f64] [--threads T] [--calls C]
 *                         [--rounds R] [--grad] [FORMULA]
 * FORMULA defaults to the Gaussian Sum_Reduction(Exp(-SqDist(x,y)*g)*b,0);
 * --grad times its backward instead: the gradients in x and b (an incoming
 * gradient of ones) as one joint plan, kp_plan_exec_joint, as pykp runs them;
 * reductions that write indices only (ArgMin, ArgKMin, ...) are timed with an
 * index output. $KP_JIT chooses the engine path as for any call (off: the
 * interpreter; force: the compiled kernel from the first call).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kp.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void usage(const char *prog) {
    printf("usage: %s [--n N] [--dtype f32|f64] [--threads T] [--calls C] [--rounds R] [--grad] [FORMULA]\n"
           "  the time of one kp_plan_exec of FORMULA (x = Vi(3), y = Vj(3), b = Vj(1), g = Pm(1)),\n"
           "  N = M points (default 1000), best of R rounds (default 5) of C calls (default: about\n"
           "  2e9 / N^2); FORMULA defaults to Sum_Reduction(Exp(-SqDist(x,y)*g)*b,0); --grad: the\n"
           "  time of its gradients in x and b instead (one joint plan, kp_plan_exec_joint)\n",
           prog);
}

typedef struct bench {
    kp_plan *plan;     /* the formula's, or (--grad) the joint plan of its gradients in x and b */
    kp_array args[5];  /* x, y, b, g, and (--grad) the incoming gradient */
    kp_array out, out_idx, grads[2];
    int has_out, has_idx, grad;
    kp_exec_options opt;
} bench;

static kp_status call(bench *B) {
    if (B->grad) return kp_plan_exec_joint(B->plan, B->args, 5, B->grads, 2, &B->opt);
    return kp_plan_exec(B->plan, B->args, 4, B->has_out ? &B->out : NULL, B->has_idx ? &B->out_idx : NULL, &B->opt);
}

/* B->plan: the joint plan of f's gradients in x (position 0) and b (2); their outputs in gx, gb. */
static kp_status grad_plan(kp_context *ctx, const kp_formula *f, kp_dtype dt, long n, bench *B, void *gx, void *gb) {
    kp_formula *g[2] = {NULL, NULL};
    kp_status st = kp_formula_grad(ctx, f, 0, &g[0]);
    if (st == KP_OK) st = kp_formula_grad(ctx, f, 2, &g[1]);
    if (st == KP_OK) st = kp_plan_new_joint(ctx, (const kp_formula *const *)g, 2, dt, &B->plan);
    B->grads[0] = kp_array_2d(gx, dt, n, 3);
    B->grads[1] = kp_array_2d(gb, dt, n, 1);
    kp_formula_free(g[0]);
    kp_formula_free(g[1]);
    return st;
}

int main(int argc, char **argv) {
    long n = 1000, calls = 0;
    int threads = 1, rounds = 5, grad = 0;
    kp_dtype dt = KP_FLOAT32;
    const char *text = "Sum_Reduction(Exp(-SqDist(x,y)*g)*b,0)";
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) return usage(argv[0]), 0;
        if (!strcmp(argv[a], "--n") && a + 1 < argc) n = atol(argv[++a]);
        else if (!strcmp(argv[a], "--dtype") && a + 1 < argc) {
            const char *d = argv[++a];
            if (strcmp(d, "f32") && strcmp(d, "f64")) return fprintf(stderr, "--dtype: f32 or f64\n"), 2;
            dt = strcmp(d, "f64") ? KP_FLOAT32 : KP_FLOAT64;
        }
        else if (!strcmp(argv[a], "--threads") && a + 1 < argc) threads = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--calls") && a + 1 < argc) calls = atol(argv[++a]);
        else if (!strcmp(argv[a], "--rounds") && a + 1 < argc) rounds = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--grad")) grad = 1;
        else if (argv[a][0] != '-') text = argv[a];
        else return usage(argv[0]), 2;
    }
    if (n < 1 || rounds < 1 || threads < 1) return usage(argv[0]), 2;
    size_t es = dt == KP_FLOAT64 ? 8 : 4;
    const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "b = Vj(1)", "g = Pm(1)"};
    kp_context *ctx;
    kp_formula *f;
    if (kp_context_new(&ctx) != KP_OK) return 1;
    if (kp_formula_parse(ctx, text, aliases, 4, &f) != KP_OK)
        return fprintf(stderr, "kp_bench_formula: %s\n", kp_context_message(ctx)), 1;
    int od = kp_formula_out_dim(f), oi = kp_formula_out_index_dim(f);
    if (grad && (od < 1 || oi > 0))
        return fprintf(stderr, "kp_bench_formula: --grad needs a reduction with values only\n"), 2;
    char *x = malloc((size_t)n * 3 * es), *y = malloc((size_t)n * 3 * es), *b = malloc((size_t)n * es);
    char *out = malloc((size_t)n * (size_t)(od > 0 ? od : 1) * es), g[8];
    char *e = malloc((size_t)n * (size_t)(od > 0 ? od : 1) * es), *gx = malloc((size_t)n * 3 * es), *gb = malloc((size_t)n * es);
    int64_t *idx = malloc((size_t)n * (size_t)(oi > 0 ? oi : 1) * sizeof(int64_t));
    if (!x || !y || !b || !out || !idx || !e || !gx || !gb) return fprintf(stderr, "kp_bench_formula: out of memory\n"), 1;
    srand(1);
    for (long i = 0; i < 3 * n; i++) {
        double u = rand() / (double)RAND_MAX, v = rand() / (double)RAND_MAX;
        if (dt == KP_FLOAT64) ((double *)x)[i] = u, ((double *)y)[i] = v;
        else ((float *)x)[i] = (float)u, ((float *)y)[i] = (float)v;
    }
    for (long i = 0; i < n; i++)
        if (dt == KP_FLOAT64) ((double *)b)[i] = 1;
        else ((float *)b)[i] = 1;
    for (long i = 0; i < n * (od > 0 ? od : 1); i++)
        if (dt == KP_FLOAT64) ((double *)e)[i] = 1;
        else ((float *)e)[i] = 1;
    if (dt == KP_FLOAT64) *(double *)g = 2;
    else *(float *)g = 2;
    bench B = {NULL,
               {kp_array_2d(x, dt, n, 3), kp_array_2d(y, dt, n, 3), kp_array_2d(b, dt, n, 1), kp_array_1d(g, dt, 1),
                kp_array_2d(e, dt, n, od > 0 ? od : 1)},
               kp_array_2d(out, dt, n, od > 0 ? od : 1), kp_array_2d(idx, KP_INT64, n, oi > 0 ? oi : 1),
               {{0}},
               od > 0, oi > 0, grad, KP_EXEC_OPTIONS_DEFAULT};
    B.opt.num_threads = threads;
    if ((grad ? grad_plan(ctx, f, dt, n, &B, gx, gb) : kp_plan_new(ctx, f, dt, &B.plan)) != KP_OK)
        return fprintf(stderr, "kp_bench_formula: %s\n", kp_context_message(ctx)), 1;
    for (int i = 0; i < 20; i++)
        if (call(&B) != KP_OK) return fprintf(stderr, "kp_bench_formula: %s\n", kp_context_message(ctx)), 1;
    for (double t0 = now_s(); now_s() - t0 < 0.5;) call(&B);
    if (calls <= 0) calls = (long)(2e9 / ((double)n * (double)n)) + 1;
    double best = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t = now_s();
        for (long c = 0; c < calls; c++) call(&B);
        t = (now_s() - t) / (double)calls;
        if (t < best) best = t;
    }
    printf("%s%s, N = M = %ld, %s, %d thread%s: %.1f us per call, %.3g pairs/s\n", grad ? "gradients in x and b of " : "", text, n,
           dt == KP_FLOAT64 ? "float64" : "float32", threads, threads > 1 ? "s" : "", best * 1e6,
           (double)n * (double)n / best);
    kp_plan_free(B.plan);
    kp_formula_free(f);
    kp_context_free(ctx);
    free(x), free(y), free(b), free(out), free(idx), free(e), free(gx), free(gb);
    return 0;
}
