/*
 * c_gauss.c -- the C call that bench_octave.m compares the Octave binding with:
 * the Gaussian kernel product a_i = sum_j exp(-|x_i - y_j|^2 g) b_j (D = 3)
 * through kp_plan_exec, parse and plan outside the timing, as a C user writes
 * it with packed row-major arrays; and the same call on column-major arrays
 * described by strides (1, N), the layout the MEX gateway passes.
 *
 * usage: c_gauss N DTYPE REPS      (DTYPE: f32 or f64)
 * prints: "rowmajor <best seconds> colmajor <best seconds>"; exit 1 on error.
 * REPS > 1 adds one untimed warm-up call.
 */
#define _POSIX_C_SOURCE 200809L

#include <kp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best time of reps calls with the given argument/output descriptors. */
static double best_of(kp_plan *plan, kp_array *args, kp_array *out, int reps, kp_context *ctx) {
    double best = 1e300;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (kp_plan_exec(plan, args, 4, out, NULL, NULL) != KP_OK) {
            fprintf(stderr, "c_gauss: %s\n", kp_context_message(ctx));
            exit(1);
        }
        double t = now() - t0;
        if (t < best) best = t;
    }
    return best;
}

static kp_array colmajor(void *data, kp_dtype dt, int64_t n, int64_t d) {
    kp_array a = kp_array_2d(data, dt, n, d);
    a.strides[0] = 1;
    a.strides[1] = n;
    return a;
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[2], "f32") && strcmp(argv[2], "f64"))) {
        fprintf(stderr, "usage: c_gauss N f32|f64 REPS\n");
        return argc > 1 && strcmp(argv[1], "--help") == 0 ? 0 : 1;
    }
    int64_t n = atoll(argv[1]);
    int reps = atoi(argv[3]);
    kp_dtype dt = strcmp(argv[2], "f32") == 0 ? KP_FLOAT32 : KP_FLOAT64;
    size_t esz = dt == KP_FLOAT32 ? 4 : 8;
    char *x = malloc((size_t)n * 3 * esz), *y = malloc((size_t)n * 3 * esz);
    char *b = malloc((size_t)n * esz), *a = malloc((size_t)n * esz);
    double g = 4.0;
    float gf = 4.0f;
    if (!x || !y || !b || !a) return 1;
    srand(1);
    for (int64_t i = 0; i < 3 * n; i++) {
        double u = rand() / (double)RAND_MAX, v = rand() / (double)RAND_MAX;
        if (dt == KP_FLOAT32) ((float *)x)[i] = (float)u, ((float *)y)[i] = (float)v;
        else ((double *)x)[i] = u, ((double *)y)[i] = v;
    }
    for (int64_t i = 0; i < n; i++) {
        double u = rand() / (double)RAND_MAX;
        if (dt == KP_FLOAT32) ((float *)b)[i] = (float)u;
        else ((double *)b)[i] = u;
    }
    kp_context *ctx;
    kp_formula *f;
    kp_plan *plan;
    const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"};
    if (kp_context_new(&ctx) != KP_OK ||
        kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*g)*b,1)", aliases, 4, &f) != KP_OK ||
        kp_plan_new(ctx, f, dt, &plan) != KP_OK) {
        fprintf(stderr, "c_gauss: setup failed\n");
        return 1;
    }
    kp_array args[4] = {kp_array_2d(x, dt, n, 3), kp_array_2d(y, dt, n, 3),
                        kp_array_1d(dt == KP_FLOAT32 ? (void *)&gf : (void *)&g, dt, 1), kp_array_2d(b, dt, n, 1)};
    kp_array out = kp_array_2d(a, dt, n, 1);
    if (reps > 1) best_of(plan, args, &out, 1, ctx); /* warm-up (skipped for single long runs) */
    double row = best_of(plan, args, &out, reps, ctx);
    args[0] = colmajor(x, dt, n, 3);
    args[1] = colmajor(y, dt, n, 3);
    double col = best_of(plan, args, &out, reps, ctx);
    printf("rowmajor %.6f colmajor %.6f\n", row, col);
    kp_plan_free(plan);
    kp_formula_free(f);
    kp_context_free(ctx);
    free(x);
    free(y);
    free(b);
    free(a);
    return 0;
}
