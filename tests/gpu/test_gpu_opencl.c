/*
 * test_gpu_opencl.c — asserts that the OpenCL engine (generated OpenCL C run
 * on the first OpenCL device: PoCL on the CPU in CI) agrees with the CPU engine
 * on every formula of the GPU case list (every op, every reduction, both axes,
 * float32 and float64, gradients): values within 1e-5 (float32) / 1e-12
 * (float64) of the largest reference value of the output, NaN where the CPU
 * has NaN, indices exact. Sizes are ragged (37 and 301 points: partial tiles
 * and, under `split` with KP_GPU_CHUNK=300 KP_GPU_SPLIT=1, two chunks of the 301 merged by the merge
 * kernel; under `rows` with KP_GPU_BLOCK=8 KP_GPU_ROWS=3, work-groups of 8
 * threads computing 3 rows each, the last one ragged). Also a batched,
 * strided case, and the program cache's key (build options included).
 * Skipped (exit 77) without an OpenCL platform.
 */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_cases.h"
#include "kp.h"
#include "kp_test_util.h"

#define NX 37
#define NY 301

static int failures;

/* Runs plan on the engine; outputs converted to double. */
static kp_status run(kp_context *ctx, kp_engine eng, kp_plan *plan, kp_array *args, int nargs, kp_dtype dt,
                     int64_t rows, int od, double *out, int oi, int64_t *oidx) {
    kp_status st = kp_context_set_engine(ctx, eng);
    if (st != KP_OK) return st;
    void *o = kpt_alloc_dtype((size_t)(rows * (od ? od : 1)), dt);
    kp_array ao = kp_array_2d(o, dt, rows, od), ai = kp_array_2d(oidx, KP_INT64, rows, oi);
    st = kp_plan_exec(plan, args, (size_t)nargs, od ? &ao : NULL, oi ? &ai : NULL, NULL);
    if (od) kpt_from_dtype(o, dt, (size_t)(rows * od), out);
    free(o);
    return st;
}

static void compare(const char *label, kp_dtype dt, const double *got, const double *ref, size_t n,
                    const int64_t *gi, const int64_t *ri, size_t ni) {
    if (kpt_gpu_compare(label, dt, got, ref, n, gi, ri, ni)) failures++;
}

static void run_case(kp_context *ctx, int c, int axis, kp_dtype dt) {
    kp_formula *f = NULL, *base = NULL;
    const char *label0;
    char label[600];
    if (kpt_gpu_case_formula(ctx, c, axis, &f, &label0) != KP_OK) {
        printf("FAIL: %s: %s\n", label0, kp_context_message(ctx));
        failures++;
        return;
    }
    snprintf(label, sizeof label, "%s [%s]", label0, kpt_dtype_name(dt));
    char text[400];
    snprintf(text, sizeof text, kpt_gpu_cases[c].fmt, axis);
    kp_formula_parse(ctx, text, kpt_gpu_aliases, (size_t)kpt_gpu_naliases, &base);
    int base_nargs = base ? kp_formula_num_args(base) : 0;
    kp_formula_free(base);

    int nargs = kp_formula_num_args(f);
    kpt_rng rng;
    kpt_rng_seed(&rng, 1234u + (uint64_t)c * 7u + (uint64_t)axis);
    kp_array *args = calloc((size_t)nargs + 1, sizeof *args);
    void **bufs = calloc((size_t)nargs + 1, sizeof *bufs);
    for (int k = 0; k < nargs; k++) {
        kp_var_category cat;
        int dim;
        if (kp_formula_arg(f, k, &cat, &dim) != KP_OK) continue;
        int64_t rows = cat == KP_VAR_I ? NX : cat == KP_VAR_J ? NY : 1;
        size_t n = (size_t)(rows * dim);
        double *d = malloc(n * sizeof *d);
        kpt_gpu_fill(&rng, d, n, k, base_nargs);
        bufs[k] = kpt_to_dtype(d, n, dt);
        free(d);
        args[k] = cat == KP_VAR_PARAM ? kp_array_1d(bufs[k], dt, dim) : kp_array_2d(bufs[k], dt, rows, dim);
    }
    int od = kp_formula_out_dim(f), oi = kp_formula_out_index_dim(f);
    int64_t rows = kp_formula_sums_rows(f) ? 1 : (kp_formula_axis(f) == 1 ? NX : NY);
    size_t nv = (size_t)(rows * od), ni = (size_t)(rows * oi);
    double *rv = calloc(nv + 1, sizeof *rv), *gv = calloc(nv + 1, sizeof *gv);
    int64_t *ri = calloc(ni + 1, sizeof *ri), *gi = calloc(ni + 1, sizeof *gi);
    kp_plan *plan = NULL;
    kp_status st = kp_plan_new(ctx, f, dt, &plan);
    if (st == KP_OK) st = run(ctx, KP_ENGINE_CPU, plan, args, nargs, dt, rows, od, rv, oi, ri);
    if (st != KP_OK) {
        printf("FAIL: %s: CPU: %s\n", label, kp_context_message(ctx));
        failures++;
    } else {
        st = run(ctx, KP_ENGINE_OPENCL, plan, args, nargs, dt, rows, od, gv, oi, gi);
        if (st != KP_OK) {
            printf("FAIL: %s: OpenCL: %s\n", label, kp_context_message(ctx));
            failures++;
        } else {
            compare(label, dt, gv, rv, nv, gi, ri, ni);
        }
    }
    kp_context_set_engine(ctx, KP_ENGINE_CPU);
    kp_plan_free(plan);
    for (int k = 0; k < nargs; k++) free(bufs[k]);
    free(bufs);
    free(args);
    free(rv);
    free(gv);
    free(ri);
    free(gi);
    kp_formula_free(f);
}

/* The batched and strided case of gpu_cases.c on the OpenCL engine. */
static void run_batched_strided(kp_context *ctx, kp_dtype dt) {
    kpt_gpu_batched bt;
    kp_status st = kpt_gpu_batched_new(ctx, dt, &bt);
    void *o = kpt_alloc_dtype(bt.n, dt);
    kp_array out = kp_array_nd(o, dt, 4, bt.out_shape);
    if (st == KP_OK) st = kp_context_set_engine(ctx, KP_ENGINE_OPENCL);
    if (st == KP_OK) st = kp_plan_exec(bt.plan, bt.args, 3, &out, NULL, NULL);
    if (st != KP_OK) {
        printf("FAIL: batched strided [%s]: %s\n", kpt_dtype_name(dt), kp_context_message(ctx));
        failures++;
    } else {
        double *g = malloc(bt.n * sizeof *g);
        kpt_from_dtype(o, dt, bt.n, g);
        compare(dt == KP_FLOAT32 ? "batched strided float32" : "batched strided float64", dt, g, bt.ref, bt.n, NULL,
                NULL, 0);
        free(g);
    }
    kp_context_set_engine(ctx, KP_ENGINE_CPU);
    free(o);
    kpt_gpu_batched_free(&bt);
}

/* The program cache is keyed by the build options too: a program built without
 * $KP_OPENCL_BUILD_OPTIONS is not reused once they name an option the compiler
 * refuses (the build fails, with the compiler's status), and the formula runs
 * again once they are gone. */
static void check_build_options_key(kp_context *ctx) {
    const char *aliases[] = {"x = Vi(2)", "y = Vj(2)"};
    float x[6] = {0, 1, 2, 3, 4, 5}, y[4] = {1, 1, 2, 0}, out[3];
    kp_array args[2] = {kp_array_2d(x, KP_FLOAT32, 3, 2), kp_array_2d(y, KP_FLOAT32, 2, 2)};
    kp_array ao = kp_array_2d(out, KP_FLOAT32, 3, 1);
    kp_formula *f = NULL;
    kp_plan *plan = NULL;
    kp_status st = kp_formula_parse(ctx, "Sum_Reduction(SqDist(x,y), 1)", aliases, 2, &f);
    if (st == KP_OK) st = kp_plan_new(ctx, f, KP_FLOAT32, &plan);
    if (st == KP_OK) st = kp_context_set_engine(ctx, KP_ENGINE_OPENCL);
    if (st == KP_OK) st = kp_plan_exec(plan, args, 2, &ao, NULL, NULL);
    if (st != KP_OK || out[0] != 1 + 5 || out[2] != 25 + 29) {
        printf("FAIL: build options: first run: status %d '%s'\n", (int)st, kp_context_message(ctx));
        failures++;
    }
    setenv("KP_OPENCL_BUILD_OPTIONS", "-kp-no-such-option", 1);
    st = kp_plan_exec(plan, args, 2, &ao, NULL, NULL);
    if (st != KP_ERR_INTERNAL || !strstr(kp_context_message(ctx), "building the generated kernel failed")) {
        printf("FAIL: build options: a refused option gave status %d '%s'\n", (int)st, kp_context_message(ctx));
        failures++;
    }
    unsetenv("KP_OPENCL_BUILD_OPTIONS");
    st = kp_plan_exec(plan, args, 2, &ao, NULL, NULL);
    if (st != KP_OK) {
        printf("FAIL: build options: after unsetting them: status %d '%s'\n", (int)st, kp_context_message(ctx));
        failures++;
    }
    kp_context_set_engine(ctx, KP_ENGINE_CPU);
    kp_plan_free(plan);
    kp_formula_free(f);
}

int main(int argc, char **argv) {
    kp_context *ctx;
    if (kp_context_new(&ctx) != KP_OK) return 1;
    if (kp_engine_available(ctx, KP_ENGINE_OPENCL) != KP_OK) {
        printf("SKIP: %s\n", kp_context_message(ctx));
        kp_context_free(ctx);
        return 77;
    }
    printf("mode: %s\n", argc > 1 ? argv[1] : "default");
    if (!getenv("KP_OPENCL_BUILD_OPTIONS")) check_build_options_key(ctx);
    int only = -1;
    if (getenv("KP_GPU_TEST_CASE")) only = atoi(getenv("KP_GPU_TEST_CASE"));
    for (int dti = 0; dti < 2; dti++) {
        kp_dtype dt = dti ? KP_FLOAT64 : KP_FLOAT32;
        for (int c = 0; c < kpt_gpu_ncases; c++)
            for (int axis = 0; axis < 2; axis++)
                if (only < 0 || only == c) run_case(ctx, c, axis, dt);
        run_batched_strided(ctx, dt);
    }
    kp_context_free(ctx);
    printf("%d failures\n", failures);
    return failures ? 1 : 0;
}
