/*
 * bench_grad.c — forward and forward + backward of the Gaussian kernel product.
 *
 *   forward   a_i = sum_j exp(-g |x_i - y_j|^2) b_j          (x, y in 3D, b of dim 1)
 *   backward  d<a, E>/dx (a Sum over j) and d<a, E>/db (a Sum over i), built by
 *             kp_formula_grad from the forward's text, as an autodiff framework does
 *
 * N = M in {1e4, 1e5}, float32 and/or float64; each time is the best of --reps
 * runs (one run at 1e5). The backward runs three ways in the same rounds: two
 * ordinary plans, one joint plan (both gradients in one pass) on the
 * interpreter (KP_JIT=off for that call), and the same joint plan compiled
 * (KP_JIT=force: the joint kernel, src/jit). The forward runs as $KP_JIT says
 * (unset: KP_JIT=force, so the forward is compiled where libkp has the JIT).
 * Prints one Markdown table: times and the ratios (forward + backward) /
 * forward. Timing is reported, never checked.
 *
 * usage: kp_bench_grad [--quick] [--threads T] [--reps R] [--dtype f32|f64|both]
 *                      [--clock wall|cpu] [--sizes N,N,...]
 * --clock cpu: the process's CPU time (all threads), steadier than wall time
 * on a loaded machine, fairest with --threads 1.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, setenv */
#include <kp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static clockid_t clock_id = CLOCK_MONOTONIC;

static double now_s(void) {
    struct timespec t;
    clock_gettime(clock_id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int check(kp_context *ctx, kp_status st, const char *what) {
    if (st == KP_OK) return 0;
    fprintf(stderr, "kp_bench_grad: %s: %s\n", what, kp_context_message(ctx));
    return 1;
}

typedef struct plans {
    kp_formula *f, *gx, *gb;
    kp_plan *pf, *px, *pb, *pj;
} plans;

static int plans_new(kp_context *ctx, kp_dtype dt, plans *P) {
    const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"};
    memset(P, 0, sizeof *P);
    int bad = check(ctx, kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)", aliases, 4, &P->f), "parse");
    bad |= !bad && check(ctx, kp_formula_grad(ctx, P->f, 0, &P->gx), "grad x");
    bad |= !bad && check(ctx, kp_formula_grad(ctx, P->f, 3, &P->gb), "grad b");
    bad |= !bad && check(ctx, kp_plan_new(ctx, P->f, dt, &P->pf), "plan");
    bad |= !bad && check(ctx, kp_plan_new(ctx, P->gx, dt, &P->px), "plan grad x");
    bad |= !bad && check(ctx, kp_plan_new(ctx, P->gb, dt, &P->pb), "plan grad b");
    const kp_formula *grads[2] = {P->gx, P->gb};
    bad |= !bad && check(ctx, kp_plan_new_joint(ctx, grads, 2, dt, &P->pj), "joint plan");
    return bad;
}

static void plans_free(plans *P) {
    kp_plan_free(P->pf);
    kp_plan_free(P->px);
    kp_plan_free(P->pb);
    kp_plan_free(P->pj);
    kp_formula_free(P->gb);
    kp_formula_free(P->gx);
    kp_formula_free(P->f);
}

/* One timed call of plan (joint: both gradients), with $KP_JIT = jit (NULL: as set by the caller). */
static double timed(kp_plan *plan, int joint, const kp_array *args, size_t nargs, kp_array *outs, const char *jit,
                    const char *saved, int *bad) {
    if (jit) setenv("KP_JIT", jit, 1);
    double t0 = now_s();
    kp_status st = joint ? kp_plan_exec_joint(plan, args, nargs, outs, 2, NULL)
                         : kp_plan_exec(plan, args, nargs, outs, NULL, NULL);
    double t = now_s() - t0;
    if (st != KP_OK) *bad = 1;
    if (jit) setenv("KP_JIT", saved, 1);
    return t;
}

static double min2(double a, double b) { return a < b ? a : b; }

/* One row of the table: size n in dtype dt. */
static int bench_size(kp_context *ctx, const plans *P, kp_dtype dt, int64_t n, int reps, const char *fwd_jit) {
    size_t rs = dt == KP_FLOAT32 ? sizeof(float) : sizeof(double);
    char *x = malloc((size_t)n * 3 * rs), *y = malloc((size_t)n * 3 * rs), *b = malloc((size_t)n * rs);
    char *e = malloc((size_t)n * rs), *o = malloc((size_t)n * rs), *ox = malloc((size_t)n * 3 * rs);
    double g64 = 8.0;
    float g32 = 8.0f;
    uint64_t st = 0x5eed;
    for (int64_t k = 0; k < 3 * n; k++)
        for (int w = 0; w < 2; w++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            double v = (double)(st >> 40) / 16777216.0;
            if (dt == KP_FLOAT32) ((float *)(w ? y : x))[k] = (float)v;
            else ((double *)(w ? y : x))[k] = v;
        }
    for (int64_t k = 0; k < n; k++) {
        double bv = (double)(k % 7) / 7.0, ev = 1.0 - (double)(k % 5) / 5.0;
        if (dt == KP_FLOAT32) ((float *)b)[k] = (float)bv, ((float *)e)[k] = (float)ev;
        else ((double *)b)[k] = bv, ((double *)e)[k] = ev;
    }
    kp_array args[5] = {kp_array_2d(x, dt, n, 3), kp_array_2d(y, dt, n, 3),
                        kp_array_1d(dt == KP_FLOAT32 ? (void *)&g32 : (void *)&g64, dt, 1), kp_array_2d(b, dt, n, 1),
                        kp_array_2d(e, dt, n, 1)};
    kp_array out = kp_array_2d(o, dt, n, 1), outs[2] = {kp_array_2d(ox, dt, n, 3), kp_array_2d(o, dt, n, 1)};
    int bad = 0;
    /* warm-up: every plan once on each path, so compiles (force) are not timed */
    timed(P->pf, 0, args, 4, &out, fwd_jit, fwd_jit, &bad);
    timed(P->px, 0, args, 5, &outs[0], fwd_jit, fwd_jit, &bad);
    timed(P->pb, 0, args, 5, &outs[1], fwd_jit, fwd_jit, &bad);
    timed(P->pj, 1, args, 5, outs, "off", fwd_jit, &bad);
    timed(P->pj, 1, args, 5, outs, "force", fwd_jit, &bad);
    double tf = 1e300, tx = 1e300, tb = 1e300, tji = 1e300, tjc = 1e300;
    for (int r = 0; r < reps; r++) { /* one round: every variant once, so load changes hit them alike */
        tf = min2(tf, timed(P->pf, 0, args, 4, &out, fwd_jit, fwd_jit, &bad));
        tx = min2(tx, timed(P->px, 0, args, 5, &outs[0], fwd_jit, fwd_jit, &bad));
        tb = min2(tb, timed(P->pb, 0, args, 5, &outs[1], fwd_jit, fwd_jit, &bad));
        tji = min2(tji, timed(P->pj, 1, args, 5, outs, "off", fwd_jit, &bad));
        tjc = min2(tjc, timed(P->pj, 1, args, 5, outs, "force", fwd_jit, &bad));
    }
    printf("| %s | %lld | %.3f s | %.3f s | %.2f | %.3f s | %.2f | %.3f s | **%.2f** | %.3g |\n",
           dt == KP_FLOAT32 ? "float32" : "float64", (long long)n, tf, tx + tb, (tf + tx + tb) / tf, tji,
           (tf + tji) / tf, tjc, (tf + tjc) / tf, (double)n * (double)n / tf);
    free(x), free(y), free(b), free(e), free(o), free(ox);
    (void)ctx;
    return bad;
}

int main(int argc, char **argv) {
    int quick = 0, threads = 2, reps = 3, f32 = 1, f64 = 0;
    int64_t sizes[8] = {10000, 100000};
    int nsizes = 2;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--quick") == 0) quick = 1;
        else if (strcmp(argv[a], "--threads") == 0 && a + 1 < argc) threads = atoi(argv[++a]);
        else if (strcmp(argv[a], "--reps") == 0 && a + 1 < argc) reps = atoi(argv[++a]);
        else if (strcmp(argv[a], "--dtype") == 0 && a + 1 < argc) {
            const char *d = argv[++a];
            f32 = strcmp(d, "f32") == 0 || strcmp(d, "both") == 0;
            f64 = strcmp(d, "f64") == 0 || strcmp(d, "both") == 0;
            if (!f32 && !f64) return fprintf(stderr, "--dtype: f32, f64 or both\n"), 2;
        } else if (strcmp(argv[a], "--clock") == 0 && a + 1 < argc) {
            const char *c = argv[++a];
            if (strcmp(c, "cpu") == 0) clock_id = CLOCK_PROCESS_CPUTIME_ID;
            else if (strcmp(c, "wall") != 0) return fprintf(stderr, "--clock: wall or cpu\n"), 2;
        } else if (strcmp(argv[a], "--sizes") == 0 && a + 1 < argc) {
            nsizes = 0;
            for (char *s = argv[++a]; *s && nsizes < 8; s += *s == ',') sizes[nsizes++] = strtoll(s, &s, 10);
        } else {
            fprintf(stderr,
                    "usage: %s [--quick] [--threads T] [--reps R] [--dtype f32|f64|both] [--clock wall|cpu] "
                    "[--sizes N,N,...]\n",
                    argv[0]);
            return 2;
        }
    }
    if (quick) sizes[0] = 2000, nsizes = 1;
    const char *env = getenv("KP_JIT");
    char fwd_jit[32];
    snprintf(fwd_jit, sizeof fwd_jit, "%s", env && *env ? env : "force");
    kp_context *ctx = NULL;
    if (kp_context_new(&ctx) != KP_OK) return 1;
    kp_context_set_num_threads(ctx, threads);
    printf("Gaussian kernel product, %d threads, %s time, forward with KP_JIT=%s: forward, and forward + "
           "gradients w.r.t. x and b\n\n",
           threads, clock_id == CLOCK_MONOTONIC ? "wall" : "CPU", fwd_jit);
    printf("| dtype | N = M | forward | backward, two plans | fwd+bwd / fwd | backward, joint interpreted | "
           "fwd+bwd / fwd | backward, joint compiled | fwd+bwd / fwd | forward pairs/s |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    int bad = 0;
    for (int t = 0; t < 2 && !bad; t++) {
        if (!(t ? f64 : f32)) continue;
        kp_dtype dt = t ? KP_FLOAT64 : KP_FLOAT32;
        plans P;
        bad = plans_new(ctx, dt, &P);
        for (int s = 0; s < nsizes && !bad; s++)
            bad |= bench_size(ctx, &P, dt, sizes[s], sizes[s] >= 100000 ? 1 : reps, fwd_jit);
        plans_free(&P);
    }
    kp_context_free(ctx);
    if (bad) fprintf(stderr, "kp_bench_grad: a call failed\n");
    return bad;
}
