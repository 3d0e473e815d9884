/*
 * bench_first_call.c — what a new formula costs before the compiled kernel
 * serves it (docs/jit.md, "No call waits for the compiler").
 *
 * For each formula of the panel (bench_panel.py's, in both spellings), in one
 * process and in the default KP_JIT mode (background compiles):
 *   first call   parse + plan + the first kp_plan_exec at N = M = --n (1000):
 *                the latency a user sees for a formula the process has not
 *                run before; the interpreter serves it;
 *   steady call  the fastest of --reps later calls of the same plan, same N;
 *   takeover     calls at N = M = --takeover-n (10^4) in a loop, from the
 *                first one until the first call that starts after the
 *                compiled kernel is ready (kp__jit_stats counts it): the
 *                wall time the interpreter served the formula alone;
 *   slowest      the slowest and the fastest of those interpreted calls: a
 *                call that waited for the compiler (or for LLVM's start)
 *                would stand out;
 *   speedup      the fastest interpreted call of that loop over the fastest
 *                of the first compiled call and --reps more.
 * The process's very first call (thread pool, page faults) is timed apart on
 * another formula. Timing is reported, never checked.
 *
 * usage: kp_bench_first_call [--quick] [--threads T] [--dtype f32|f64] [--n N]
 *                            [--takeover-n N] [--reps R] [--max-seconds S]
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <kp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jit/jit.h"

typedef struct bench_formula {
    const char *name, *text;
} bench_formula;

/* x, y: 3D points; b: a weight per point; g: a scale; w: anisotropic weights. */
static const char *const aliases[] = {"x = Vi(3)", "y = Vj(3)", "b = Vj(1)", "g = Pm(1)", "w = Pm(3)"};
enum { N_ALIASES = 5, N_ARGS = 5 };

static const bench_formula panel[] = {
    {"Gaussian", "Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 0)"},
    {"Gaussian, LazyTensor spelling", "Sum_Reduction(Exp(-Sum(Square(x-y))/g)*b, 0)"},
    {"Cauchy", "Sum_Reduction(Inv(IntCst(1)+SqDist(x,y)*g)*b, 0)"},
    {"Laplacian", "Sum_Reduction(Exp(-Sqrt(SqDist(x,y))*g)*b, 0)"},
    {"L1", "Sum_Reduction(Exp(-Sum(Abs(x-y))*g)*b, 0)"},
    {"anisotropic", "Sum_Reduction(Exp(-Sum(Square(x-y)*w))*b, 0)"},
    {"logsumexp", "LogSumExp_Reduction(-SqDist(x,y)*g, 0)"},
    {"argKmin (K = 8)", "ArgKMin_Reduction(SqDist(x,y), 8, 0)"},
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int64_t compiled_count(void) {
    kp_jit_stats s;
    kp__jit_stats(&s);
    return s.compiled;
}

/* Inputs for N points of both sides in dt, and room for any panel output. */
typedef struct inputs {
    kp_dtype dt;
    int64_t n;
    char *x, *y, *b, *out;
    double g64[1], w64[3];
    float g32[1], w32[3];
    kp_array args[N_ARGS];
} inputs;

static void put(const inputs *in, char *p, int64_t k, double v) {
    if (in->dt == KP_FLOAT32) ((float *)p)[k] = (float)v;
    else ((double *)p)[k] = v;
}

static int inputs_new(inputs *in, kp_dtype dt, int64_t n) {
    size_t rs = dt == KP_FLOAT32 ? sizeof(float) : sizeof(double);
    memset(in, 0, sizeof *in);
    in->dt = dt, in->n = n;
    in->x = malloc((size_t)n * 3 * rs), in->y = malloc((size_t)n * 3 * rs), in->b = malloc((size_t)n * rs);
    in->out = malloc((size_t)n * 8 * rs + (size_t)n * 8 * sizeof(int64_t));
    if (!in->x || !in->y || !in->b || !in->out) return 1;
    uint64_t st = 0x5eed;
    for (int64_t k = 0; k < 3 * n; k++)
        for (int side = 0; side < 2; side++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            put(in, side ? in->y : in->x, k, (double)(st >> 40) / 16777216.0);
        }
    for (int64_t k = 0; k < n; k++) put(in, in->b, k, (double)(k % 7) / 7.0);
    in->g64[0] = 16.0, in->g32[0] = 16.0f;
    for (int d = 0; d < 3; d++) in->w64[d] = 8.0 + d, in->w32[d] = 8.0f + (float)d;
    int f32 = dt == KP_FLOAT32;
    in->args[0] = kp_array_2d(in->x, dt, n, 3);
    in->args[1] = kp_array_2d(in->y, dt, n, 3);
    in->args[2] = kp_array_2d(in->b, dt, n, 1);
    in->args[3] = kp_array_1d(f32 ? (void *)in->g32 : (void *)in->g64, dt, 1);
    in->args[4] = kp_array_1d(f32 ? (void *)in->w32 : (void *)in->w64, dt, 3);
    return 0;
}

static void inputs_free(inputs *in) { free(in->x), free(in->y), free(in->b), free(in->out); }

/* One call of plan on in; its time in seconds, or -1 on error. */
static double call(kp_context *ctx, kp_plan *plan, const inputs *in) {
    int ndim;
    int64_t shape[KP_MAX_DIMS], ishape[KP_MAX_DIMS];
    if (kp_plan_output_shape(plan, in->args, N_ARGS, NULL, &ndim, shape, ishape) != KP_OK || ndim != 2) return -1;
    size_t rs = in->dt == KP_FLOAT32 ? sizeof(float) : sizeof(double);
    kp_array out = kp_array_2d(in->out, in->dt, shape[0], shape[1]);
    kp_array idx = kp_array_2d(in->out + (size_t)in->n * 8 * rs, KP_INT64, ishape[0], ishape[1]);
    double t0 = now_s();
    kp_status st = kp_plan_exec(plan, in->args, N_ARGS, shape[1] ? &out : NULL, ishape[1] ? &idx : NULL, NULL);
    double t = now_s() - t0;
    if (st != KP_OK) fprintf(stderr, "kp_bench_first_call: %s\n", kp_context_message(ctx));
    return st == KP_OK ? t : -1;
}

static kp_plan *plan_of(kp_context *ctx, const char *text, kp_dtype dt) {
    kp_formula *f = NULL;
    kp_plan *p = NULL;
    if (kp_formula_parse(ctx, text, aliases, N_ALIASES, &f) != KP_OK || kp_plan_new(ctx, f, dt, &p) != KP_OK)
        fprintf(stderr, "kp_bench_first_call: %s: %s\n", text, kp_context_message(ctx));
    kp_formula_free(f);
    return p;
}

typedef struct options {
    int threads, reps;
    kp_dtype dt;
    int64_t n, takeover_n;
    double max_seconds;
} options;

typedef struct takeover_times {
    double wait, speedup, slowest, fastest;
} takeover_times;

/* Calls at in's size until one starts after a kernel was compiled: wait is
 * when it started, speedup the fastest interpreted call over the fastest of
 * that one and reps more, slowest and fastest the interpreted calls'. */
static int takeover(kp_context *ctx, kp_plan *p, const inputs *in, const options *o, takeover_times *tt) {
    int64_t before = compiled_count();
    double t0 = now_s(), interp = 1e300, compiled = 1e300;
    *tt = (takeover_times){.wait = -1};
    while (now_s() - t0 < o->max_seconds) {
        int ready = compiled_count() > before;
        double start = now_s(), t = call(ctx, p, in);
        if (t < 0) return 1;
        if (!ready) {
            interp = t < interp ? t : interp;
            tt->slowest = t > tt->slowest ? t : tt->slowest;
            tt->fastest = interp;
            continue;
        }
        tt->wait = start - t0;
        for (int r = 0; r <= o->reps && t >= 0; r++, t = call(ctx, p, in)) compiled = t < compiled ? t : compiled;
        if (t < 0) return 1;
        tt->speedup = interp < 1e300 ? interp / compiled : 0;
        return 0;
    }
    return 0;
}

static int bench_formula_row(kp_context *ctx, const bench_formula *bf, const inputs *small, const inputs *large,
                             const options *o) {
    double t0 = now_s();
    kp_plan *p = plan_of(ctx, bf->text, o->dt);
    if (!p) return 1;
    double tplan = now_s() - t0, tcall = call(ctx, p, small), first = now_s() - t0, steady = 1e300;
    if (tcall < 0) return kp_plan_free(p), 1;
    for (int r = 0; r < o->reps; r++) {
        double t = call(ctx, p, small);
        if (t < 0) return kp_plan_free(p), 1;
        steady = t < steady ? t : steady;
    }
    takeover_times tt;
    int bad = takeover(ctx, p, large, o, &tt);
    kp_plan_free(p);
    char w[32] = "not within the limit", s[32] = "-";
    if (tt.wait >= 0) snprintf(w, sizeof w, "%.3f s", tt.wait);
    if (tt.speedup > 0) snprintf(s, sizeof s, "%.2fx", tt.speedup);
    printf("| %s | %.2f ms | %.2f ms | %.2f ms | %s | %.1f / %.1f ms | %s |\n", bf->name, 1e3 * first, 1e3 * tplan,
           1e3 * steady, w, 1e3 * tt.slowest, 1e3 * tt.fastest, s);
    fflush(stdout);
    return bad;
}

static int parse_args(int argc, char **argv, options *o) {
    *o = (options){.threads = 2, .reps = 5, .dt = KP_FLOAT32, .n = 1000, .takeover_n = 10000, .max_seconds = 10};
    for (int a = 1; a < argc; a++) {
        const char *v = a + 1 < argc ? argv[a + 1] : NULL;
        if (strcmp(argv[a], "--quick") == 0) o->n = 200, o->takeover_n = 2000, o->max_seconds = 2, o->reps = 2;
        else if (strcmp(argv[a], "--threads") == 0 && v) o->threads = atoi(v), a++;
        else if (strcmp(argv[a], "--reps") == 0 && v) o->reps = atoi(v), a++;
        else if (strcmp(argv[a], "--n") == 0 && v) o->n = atoll(v), a++;
        else if (strcmp(argv[a], "--takeover-n") == 0 && v) o->takeover_n = atoll(v), a++;
        else if (strcmp(argv[a], "--max-seconds") == 0 && v) o->max_seconds = atof(v), a++;
        else if (strcmp(argv[a], "--dtype") == 0 && v && (!strcmp(v, "f32") || !strcmp(v, "f64")))
            o->dt = strcmp(v, "f32") == 0 ? KP_FLOAT32 : KP_FLOAT64, a++;
        else {
            fprintf(stderr,
                    "usage: %s [--quick] [--threads T] [--dtype f32|f64] [--n N] [--takeover-n N] [--reps R] "
                    "[--max-seconds S]\n"
                    "First-call latency of each panel formula (default KP_JIT mode: background compiles) and\n"
                    "the time until its compiled kernel takes over. See the comment at the top of the source.\n",
                    argv[0]);
            return strcmp(argv[a], "--help") == 0 ? -1 : 2;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    kp_context *ctx = NULL;
    if (kp_context_new(&ctx) != KP_OK) return 1;
    kp_context_set_num_threads(ctx, o.threads);
    inputs small, large;
    int bad = inputs_new(&small, o.dt, o.n) || inputs_new(&large, o.dt, o.takeover_n);
    const char *jit = getenv("KP_JIT");
    printf("%s, %d threads, KP_JIT=%s, LLVM %s: first call at N = M = %lld, takeover at N = M = %lld\n\n",
           o.dt == KP_FLOAT32 ? "float32" : "float64", o.threads, jit && *jit ? jit : "(unset: background)",
           kp__jit_built() ? "built in" : "absent", (long long)o.n, (long long)o.takeover_n);
    double t0 = now_s();
    kp_plan *warm = bad ? NULL : plan_of(ctx, "Sum_Reduction(x*b, 0)", o.dt);
    bad |= !warm || call(ctx, warm, &small) < 0;
    kp_plan_free(warm);
    printf("The process's first call (another formula: thread pool, first touch): %.2f ms\n\n", 1e3 * (now_s() - t0));
    printf("| formula | first call (parse + plan + call) | of which parse + plan | steady call | interpreter "
           "alone for | its slowest / fastest call | compiled / interpreted speed |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for (size_t k = 0; k < sizeof panel / sizeof panel[0] && !bad; k++)
        bad |= bench_formula_row(ctx, &panel[k], &small, &large, &o);
    inputs_free(&small), inputs_free(&large);
    kp_context_free(ctx);
    if (bad) fprintf(stderr, "kp_bench_first_call: a call failed\n");
    return bad;
}
