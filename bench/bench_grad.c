/*
 * bench_grad.c — forward and forward + backward of the Gaussian kernel product.
 *
 *   forward   a_i = sum_j exp(-g |x_i - y_j|^2) b_j          (x, y in 3D, b of dim 1)
 *   backward  d<a, E>/dx (a Sum over j) and d<a, E>/db (a Sum over i), built by
 *             kp_formula_grad from the forward's text, as an autodiff framework does
 *
 * float32, 2 threads, N = M in {1e4, 1e5}; each time is the best of --reps runs
 * (one run at 1e5). Prints one Markdown table: times and the ratio
 * (forward + backward) / forward. Timing is reported, never checked.
 *
 * usage: kp_bench_grad [--quick] [--threads T] [--reps R]
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <kp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int check(kp_context *ctx, kp_status st, const char *what) {
    if (st == KP_OK) return 0;
    fprintf(stderr, "kp_bench_grad: %s: %s\n", what, kp_context_message(ctx));
    return 1;
}

/* Best time of reps executions of plan. */
static double best_time(kp_plan *plan, const kp_array *args, size_t nargs, kp_array *out, int reps, int *bad) {
    double best = 1e300;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        if (kp_plan_exec(plan, args, nargs, out, NULL, NULL) != KP_OK) *bad = 1;
        double t = now_s() - t0;
        best = t < best ? t : best;
    }
    return best;
}

int main(int argc, char **argv) {
    int quick = 0, threads = 2, reps = 3;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--quick") == 0) quick = 1;
        else if (strcmp(argv[a], "--threads") == 0 && a + 1 < argc) threads = atoi(argv[++a]);
        else if (strcmp(argv[a], "--reps") == 0 && a + 1 < argc) reps = atoi(argv[++a]);
        else {
            fprintf(stderr, "usage: %s [--quick] [--threads T] [--reps R]\n", argv[0]);
            return 2;
        }
    }
    kp_context *ctx = NULL;
    if (kp_context_new(&ctx) != KP_OK) return 1;
    kp_context_set_num_threads(ctx, threads);
    const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"};
    kp_formula *f = NULL, *gx = NULL, *gb = NULL;
    kp_plan *pf = NULL, *px = NULL, *pb = NULL, *pj = NULL;
    int bad = check(ctx, kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)", aliases, 4, &f), "parse");
    bad |= !bad && check(ctx, kp_formula_grad(ctx, f, 0, &gx), "grad x");
    bad |= !bad && check(ctx, kp_formula_grad(ctx, f, 3, &gb), "grad b");
    bad |= !bad && check(ctx, kp_plan_new(ctx, f, KP_FLOAT32, &pf), "plan");
    bad |= !bad && check(ctx, kp_plan_new(ctx, gx, KP_FLOAT32, &px), "plan grad x");
    bad |= !bad && check(ctx, kp_plan_new(ctx, gb, KP_FLOAT32, &pb), "plan grad b");
    const kp_formula *grads[2] = {gx, gb};
    bad |= !bad && check(ctx, kp_plan_new_joint(ctx, grads, 2, KP_FLOAT32, &pj), "joint plan");
    if (bad) return 1;
    printf("Gaussian kernel product, float32, %d threads: forward, and forward + gradient w.r.t. x and b\n\n",
           threads);
    printf("| N = M | forward | grad x | grad b | fwd+bwd, separate | ratio | grad x and b, joint | fwd+bwd, joint | "
           "ratio | forward pairs/s |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    const int64_t sizes[] = {10000, 100000};
    int nsizes = quick ? 1 : 2;
    for (int s = 0; s < nsizes; s++) {
        int64_t n = quick ? 2000 : sizes[s];
        int r = n >= 100000 ? 1 : reps;
        float *x = malloc((size_t)n * 3 * sizeof *x), *y = malloc((size_t)n * 3 * sizeof *y);
        float *b = malloc((size_t)n * sizeof *b), *e = malloc((size_t)n * sizeof *e);
        float *o = malloc((size_t)n * sizeof *o), *ox = malloc((size_t)n * 3 * sizeof *ox), g = 8.0f;
        uint64_t st = 0x5eed;
        for (int64_t k = 0; k < 3 * n; k++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            x[k] = (float)(st >> 40) / 16777216.0f;
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            y[k] = (float)(st >> 40) / 16777216.0f;
        }
        for (int64_t k = 0; k < n; k++) {
            b[k] = (float)(k % 7) / 7.0f;
            e[k] = 1.0f - (float)(k % 5) / 5.0f;
        }
        kp_array args[5] = {kp_array_2d(x, KP_FLOAT32, n, 3), kp_array_2d(y, KP_FLOAT32, n, 3),
                            kp_array_1d(&g, KP_FLOAT32, 1), kp_array_2d(b, KP_FLOAT32, n, 1),
                            kp_array_2d(e, KP_FLOAT32, n, 1)};
        kp_array out = kp_array_2d(o, KP_FLOAT32, n, 1), outx = kp_array_2d(ox, KP_FLOAT32, n, 3);
        kp_array outb = kp_array_2d(o, KP_FLOAT32, n, 1);
        kp_plan_exec(pf, args, 4, &out, NULL, NULL); /* warm-up */
        double tf = best_time(pf, args, 4, &out, r, &bad);
        double tx = best_time(px, args, 5, &outx, r, &bad);
        double tb = best_time(pb, args, 5, &outb, r, &bad);
        kp_array outs[2] = {outx, outb};
        double tj = 1e300;
        for (int k = 0; k < r; k++) {
            double t0 = now_s();
            if (kp_plan_exec_joint(pj, args, 5, outs, 2, NULL) != KP_OK) bad = 1;
            double t = now_s() - t0;
            tj = t < tj ? t : tj;
        }
        printf("| %lld | %.3f s | %.3f s | %.3f s | %.3f s | %.2f | %.3f s | %.3f s | %.2f | %.3g |\n", (long long)n,
               tf, tx, tb, tf + tx + tb, (tf + tx + tb) / tf, tj, tf + tj, (tf + tj) / tf, (double)n * (double)n / tf);
        free(x);
        free(y);
        free(b);
        free(e);
        free(o);
        free(ox);
    }
    kp_plan_free(pf);
    kp_plan_free(px);
    kp_plan_free(pb);
    kp_plan_free(pj);
    kp_formula_free(gb);
    kp_formula_free(gx);
    kp_formula_free(f);
    kp_context_free(ctx);
    return bad;
}
