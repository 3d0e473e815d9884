/*
 * bench_gpu.c — the CUDA engine on the Gaussian kernel product, device arrays.
 *
 *   forward   a_i = sum_j exp(-g |x_i - y_j|^2) b_j      (x, y in 3D, b of dim 1, float32)
 *   backward  d<a, E>/dx (Sum over j, dim 3) and d<a, E>/db (Sum over i), from kp_formula_grad
 *
 * N = M in {1e4, 1e5, 1e6} (--quick: 1e4 only), each with the accurate and
 * the KP_MATH_FAST kernels. Arrays live on device 0; each call is queued on
 * one stream and timed with CUDA events around it (best of --reps, after a
 * warm-up call). Also reported:
 *   - NVRTC compile time of each generated kernel (needs NVRTC, not a GPU:
 *     printed even on machines without a device);
 *   - first-call latency: the first kp_plan_exec of the forward in this
 *     process, synchronized (code generation, kernel cache lookup or NVRTC,
 *     module load, run). Set KP_CACHE_DIR to an empty directory for a cold
 *     cache.
 *   - the fp32 arithmetic floor: pairs x flops per pair / card peak, with the
 *     peak = SMs x fp32 lanes per SM (from the compute capability) x 2 (FMA)
 *     x clock. Flops per pair counted (an FMA is 2, exp is 2: ex2.approx and
 *     the multiply by log2 e; Kahan compensation not counted):
 *       forward: x-y 3, |.|^2 5, *(-g) 1, exp 2, *b and accumulate 2  = 13
 *       grad x:  the same exponential 11, times b*e*(-2g) 2, times (x-y)
 *                and accumulate 3 x 2                                  = 19
 *       grad b:  the exponential 11, times e and accumulate 2          = 13
 *     (the floor assumes every lane does an FMA every cycle; exp on the SFU
 *     and the reduction's bookkeeping make the real bound higher).
 *   - the static cost of each kernel's pair loop, from its PTX (NVRTC for
 *     compute_90; no GPU needed, ptx_loop.h): issue slots, SFU ops and shared
 *     loads per pair, and the time at N = M = 1e6 that they imply on an H100
 *     SXM (132 SMs x 128 fp32 lanes, 16 SFU lanes per SM, 1.98 GHz boost):
 *     max(pairs x slots / lanes, pairs x SFU ops / SFU lanes) / clock. An
 *     estimate for comparing kernels, printed before any device is looked for.
 * Timing is reported, never checked. Without a device: prints
 * "SKIPPED: no CUDA device (reason)" after the NVRTC times and exits 77.
 *
 * usage: kp_bench_gpu [--quick] [--reps R] [--sum-scheme block|kahan|plain|exact]
 *   --sum-scheme: the context's kp_sum_scheme for every call (default block);
 *   exact (KP_SUM_EXACT, integer bins per term) is far slower: use --quick.
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <kp.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpu/cuda_compile.h"
#include "gpu/cuda_driver.h"
#include "ptx_loop.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int check(kp_context *ctx, kp_status st, const char *what) {
    if (st == KP_OK) return 0;
    fprintf(stderr, "kp_bench_gpu: %s: %s\n", what, kp_context_message(ctx));
    return 1;
}

/* f's float32 CUDA source as the engine generates it (malloc'd), or NULL. */
static char *cuda_source(kp_context *ctx, const kp_formula *f) {
    size_t need = 0;
    if (kp_formula_gpu_source(ctx, f, KP_FLOAT32, KP_ENGINE_CUDA, NULL, 0, &need) != KP_OK) return NULL;
    char *src = malloc(need + 1);
    if (src) kp_formula_gpu_source(ctx, f, KP_FLOAT32, KP_ENGINE_CUDA, src, need + 1, NULL);
    return src;
}

/* NVRTC compile time of f's CUDA source for arch (the engine's own compile
 * call, src/gpu/cuda_compile.c), or a negative value. */
static double nvrtc_seconds(kp_context *ctx, const kp_formula *f, const char *arch) {
    char *src = cuda_source(ctx, f), msg[256];
    void *image = NULL;
    size_t len = 0;
    double t0 = now_s();
    int ok = src && kp__nvrtc_compile(src, arch, 0, &image, &len, msg, sizeof msg) == KP_OK;
    double t = now_s() - t0;
    free(image);
    free(src);
    return ok ? t : -1;
}

/* PTX of f's CUDA source for compute_90 (malloc'd), or NULL; *unroll gets the
 * pair loop's unroll factor (the source's #pragma unroll N) and *rows the rows
 * per thread ("R = " in the source; its loop over them is unrolled fully), so
 * one pass of the loop body computes unroll x rows pairs. common_only: with
 * the rare branch of LogSumExp / SumSoftMaxWeight (a new running maximum,
 * special values) compiled out, to count the common case alone. */
static char *nvrtc_ptx(kp_context *ctx, const kp_formula *f, int common_only, int *unroll, int *rows) {
    char *src = cuda_source(ctx, f), msg[256];
    void *ptx = NULL;
    size_t len = 0;
    if (!src) return NULL;
    const char *pragma = strstr(src, "#pragma unroll ");
    const char *r = strstr(src, "R = ");
    *unroll = pragma ? atoi(pragma + 15) : 1;
    *rows = r ? atoi(r + 4) : 1;
    if (common_only) /* "if (ok_) { } else <rare update>" -> "if (1   ) { } else ...": dead code */
        for (char *q = src; (q = strstr(q, "if (ok_)")) != NULL; q += 8) memcpy(q, "if (1  )", 8);
    if (kp__nvrtc_compile(src, "compute_90", 1, &ptx, &len, msg, sizeof msg) != KP_OK) ptx = NULL;
    free(src);
    return ptx;
}

/* The static pair-loop table (see the header comment). */
static void print_static_costs(kp_context *ctx, const kp_formula *const *fs, const char *const *names, int n) {
    const double sms = 132, lanes = 128, sfu_lanes = 16, clock = 1.98e9, pairs = 1e12;
    printf("Static cost of the pair loop (float32 PTX for compute_90, per pair = per iteration / (rows per "
           "thread x unroll)):\n\n"
           "| kernel | rows x unroll | issue slots | SFU ops | shared loads | est. H100 SXM at N = M = 1e6 |\n"
           "|---|---:|---:|---:|---:|---:|\n");
    for (int row = 0; row < 2 * n; row++) {
        int k = row % n, fast = row >= n;
        char label[96];
        snprintf(label, sizeof label, "%s%s", names[k], fast ? ", KP_MATH_FAST" : "");
        kp_context_set_math_mode(ctx, fast ? KP_MATH_FAST : KP_MATH_ACCURATE);
        int unroll = 1, rows = 1;
        char *ptx = nvrtc_ptx(ctx, fs[k], 0, &unroll, &rows);
        ptx_loop_cost c;
        int common = 0;
        if (ptx && ptx_loop_cost_of(ptx, "kp_reduce", &c) == 0 && c.branches > 1) {
            /* LogSumExp's rare max update lies inside the loop: count its common case alone */
            free(ptx);
            ptx = nvrtc_ptx(ctx, fs[k], 1, &unroll, &rows);
            common = 1;
        }
        kp_context_set_math_mode(ctx, KP_MATH_ACCURATE);
        if (!ptx || ptx_loop_cost_of(ptx, "kp_reduce", &c) != 0 || c.branches > 1) {
            printf("| %s | | (no PTX, or branches left in the loop) | | | |\n", label);
            free(ptx);
            continue;
        }
        if (common) strncat(label, " (common case)", sizeof label - strlen(label) - 1);
        double u = (double)unroll * rows, slots = c.instructions / u, sfu = c.sfu / u;
        double t_issue = pairs * slots / (sms * lanes * clock), t_sfu = pairs * sfu / (sms * sfu_lanes * clock);
        printf("| %s | %d x %d | %.2f | %.2f | %.2f | %.3f s (%s-bound) |\n", label, rows, unroll, slots, sfu,
               c.shared_loads / u,
               t_issue > t_sfu ? t_issue : t_sfu, t_issue > t_sfu ? "issue" : "SFU");
        free(ptx);
    }
    printf("\n");
}

static int fp32_lanes_per_sm(int major, int minor) {
    if (major == 6 && minor == 0) return 64;
    if (major == 7 || (major == 8 && minor == 0)) return 64;
    return 128; /* Pascal (6.1+), Ampere 8.6+, Ada, Hopper, Blackwell */
}

typedef struct gpu {
    const kp_cuda_driver *cu;
    const kp_cuda_device *dev;
    CUstream stream;
    CUevent e0, e1;
} gpu;

static void *dalloc(gpu *g, const void *host, size_t bytes) {
    CUdeviceptr p = 0;
    if (g->cu->MemAlloc(&p, bytes) != KP_CUDA_SUCCESS) return NULL;
    if (host) g->cu->MemcpyHtoDAsync(p, host, bytes, g->stream);
    g->cu->StreamSynchronize(g->stream);
    return (void *)(uintptr_t)p;
}

static kp_array dev_array(void *p, int64_t rows, int64_t cols) {
    kp_array a = kp_array_2d(p, KP_FLOAT32, rows, cols);
    a.device = KP_DEVICE_CUDA;
    return a;
}

/* Best time (s) of reps calls, by CUDA events on the stream. */
static double best_time(gpu *g, kp_plan *plan, const kp_array *args, size_t nargs, kp_array *out, int reps, int *bad) {
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.cuda_stream = g->stream;
    double best = 1e300;
    for (int r = 0; r < reps; r++) {
        g->cu->EventRecord(g->e0, g->stream);
        if (kp_plan_exec(plan, args, nargs, out, NULL, &opt) != KP_OK) *bad = 1;
        g->cu->EventRecord(g->e1, g->stream);
        g->cu->EventSynchronize(g->e1);
        float ms = 0;
        g->cu->EventElapsedTime(&ms, g->e0, g->e1);
        best = ms * 1e-3 < best ? ms * 1e-3 : best;
    }
    return best;
}

/* The kp_sum_scheme named s, or -1. */
static int scheme_of(const char *s) {
    static const char *const names[] = {"block", "kahan", "plain", "exact"}; /* kp_sum_scheme's order */
    for (int k = 0; k < 4; k++)
        if (strcmp(s, names[k]) == 0) return k;
    return -1;
}

int main(int argc, char **argv) {
    int quick = 0, reps = 5, scheme = KP_SUM_BLOCK;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--quick") == 0) quick = 1;
        else if (strcmp(argv[a], "--reps") == 0 && a + 1 < argc) reps = atoi(argv[++a]);
        else if (strcmp(argv[a], "--sum-scheme") == 0 && a + 1 < argc && (scheme = scheme_of(argv[++a])) >= 0) continue;
        else {
            int help = strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0;
            fprintf(help ? stdout : stderr, "usage: %s [--quick] [--reps R] [--sum-scheme block|kahan|plain|exact]\n",
                    argv[0]);
            return help ? 0 : 2;
        }
    }
    kp_context *ctx = NULL;
    if (kp_context_new(&ctx) != KP_OK) return 1;
    if (check(ctx, kp_context_set_sum_scheme(ctx, (kp_sum_scheme)scheme), "sum scheme")) return 1;
    const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"};
    kp_formula *f = NULL, *gx = NULL, *gb = NULL;
    int bad = check(ctx, kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)", aliases, 4, &f), "parse");
    bad |= !bad && check(ctx, kp_formula_grad(ctx, f, 0, &gx), "grad x");
    bad |= !bad && check(ctx, kp_formula_grad(ctx, f, 3, &gb), "grad b");
    if (bad) return 1;

    kp_formula *lse = NULL;
    bad |= check(ctx, kp_formula_parse(ctx, "LogSumExp_Reduction(-SqDist(x,y)*g + b, 1)", aliases, 4, &lse), "parse");
    if (bad) return 1;
    const char *why = NULL;
    if (kp__nvrtc_api(&why)) {
        const kp_formula *all[4] = {f, gx, gb, lse};
        const char *labels[4] = {"forward (Sum)", "grad x", "grad b", "LogSumExp"};
        print_static_costs(ctx, all, labels, 4);
        printf("NVRTC compile time of the generated kernels (float32, no cache):\n\n| kernel | sm_80 | sm_90 |\n|---|---:|---:|\n");
        const kp_formula *fs[3] = {f, gx, gb};
        const char *names[3] = {"forward", "grad x", "grad b"};
        for (int k = 0; k < 3; k++)
            printf("| %s | %.3f s | %.3f s |\n", names[k], nvrtc_seconds(ctx, fs[k], "sm_80"),
                   nvrtc_seconds(ctx, fs[k], "sm_90"));
        printf("\n");
    } else {
        printf("(no NVRTC: %s)\n", why);
    }

    char w[320];
    gpu g;
    memset(&g, 0, sizeof g);
    g.dev = kp__cuda_device(0, w, sizeof w);
    g.cu = kp__cuda_driver(NULL);
    if (!g.dev || kp_context_set_engine(ctx, KP_ENGINE_CUDA) != KP_OK) {
        printf("SKIPPED: no CUDA device (%s)\n", g.dev ? kp_context_message(ctx) : w);
        kp_formula_free(lse);
        kp_formula_free(gb);
        kp_formula_free(gx);
        kp_formula_free(f);
        kp_context_free(ctx);
        return 77;
    }
    g.cu->CtxPushCurrent(g.dev->ctx);
    g.cu->StreamCreate(&g.stream, 1);
    g.cu->EventCreate(&g.e0, 0);
    g.cu->EventCreate(&g.e1, 0);
    double peak = (double)g.dev->sm_count * fp32_lanes_per_sm(g.dev->cc_major, g.dev->cc_minor) * 2.0 *
                  (double)g.dev->clock_khz * 1e3;
    printf("device 0: %s, sm_%d%d, %d SMs at %.0f MHz: fp32 peak %.1f TFLOP/s; sum scheme %d\n\n", g.dev->name,
           g.dev->cc_major, g.dev->cc_minor, g.dev->sm_count, g.dev->clock_khz * 1e-3, peak * 1e-12, scheme);

    kp_plan *pf = NULL, *px = NULL, *pb = NULL;
    bad |= check(ctx, kp_plan_new(ctx, f, KP_FLOAT32, &pf), "plan");
    bad |= !bad && check(ctx, kp_plan_new(ctx, gx, KP_FLOAT32, &px), "plan grad x");
    bad |= !bad && check(ctx, kp_plan_new(ctx, gb, KP_FLOAT32, &pb), "plan grad b");
    printf("| N = M | math | forward | fwd floor | grad x | grad b | fwd+bwd | fwd+bwd floor | (fwd+bwd)/fwd | "
           "forward pairs/s |\n");
    printf("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    const int64_t sizes[] = {10000, 100000, 1000000};
    int first = 1;
    for (int s = 0; s < (quick ? 1 : 3) && !bad; s++) {
        int64_t n = sizes[s];
        float *h = malloc((size_t)n * 3 * sizeof *h);
        uint32_t rng = 12345u;
        for (int64_t k = 0; k < n * 3; k++) h[k] = (float)((rng = rng * 1664525u + 1013904223u) >> 8) / 16777216.0f;
        float gval = 10.0f;
        void *x = dalloc(&g, h, (size_t)n * 12), *y = dalloc(&g, h, (size_t)n * 12), *b = dalloc(&g, h, (size_t)n * 4);
        void *e = dalloc(&g, h + n, (size_t)n * 4), *gp = dalloc(&g, &gval, 4);
        void *a = dalloc(&g, NULL, (size_t)n * 4), *dx = dalloc(&g, NULL, (size_t)n * 12), *db = dalloc(&g, NULL, (size_t)n * 4);
        if (!x || !y || !b || !e || !gp || !a || !dx || !db) {
            fprintf(stderr, "kp_bench_gpu: cuMemAlloc failed at N = %lld\n", (long long)n);
            bad = 1;
            break;
        }
        kp_array args[5] = {dev_array(x, n, 3), dev_array(y, n, 3), dev_array(gp, 1, 1), dev_array(b, n, 1),
                            dev_array(e, n, 1)};
        args[2] = kp_array_1d(gp, KP_FLOAT32, 1);
        args[2].device = KP_DEVICE_CUDA;
        kp_array oa = dev_array(a, n, 1), ox = dev_array(dx, n, 3), ob = dev_array(db, n, 1);
        if (first) { /* first call of the process: generation, cache or NVRTC, module load, run */
            kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
            opt.cuda_stream = g.stream;
            double t0 = now_s();
            bad |= check(ctx, kp_plan_exec(pf, args, 4, &oa, NULL, &opt), "first forward");
            g.cu->StreamSynchronize(g.stream);
            printf("(first-call latency of the forward at N = %lld: %.3f s)\n\n", (long long)n, now_s() - t0);
            first = 0;
        }
        for (int fast = 0; fast < 2 && !bad; fast++) { /* accurate, then KP_MATH_FAST kernels */
            kp_context_set_math_mode(ctx, fast ? KP_MATH_FAST : KP_MATH_ACCURATE);
            best_time(&g, pf, args, 4, &oa, 1, &bad); /* warm-up: compile this mode's kernels */
            best_time(&g, px, args, 5, &ox, 1, &bad);
            best_time(&g, pb, args, 5, &ob, 1, &bad);
            double tf = best_time(&g, pf, args, 4, &oa, reps, &bad);
            double tx = best_time(&g, px, args, 5, &ox, reps, &bad);
            double tb = best_time(&g, pb, args, 5, &ob, reps, &bad);
            double pairs = (double)n * (double)n;
            printf("| %lld | %s | %.3g ms | %.3g ms | %.3g ms | %.3g ms | %.3g ms | %.3g ms | %.2f | %.3g |\n",
                   (long long)n, fast ? "fast" : "accurate", tf * 1e3, pairs * 13 / peak * 1e3, tx * 1e3, tb * 1e3,
                   (tf + tx + tb) * 1e3, pairs * (13 + 19 + 13) / peak * 1e3, (tf + tx + tb) / tf, pairs / tf);
        }
        kp_context_set_math_mode(ctx, KP_MATH_ACCURATE);
        void *all[8] = {x, y, b, e, gp, a, dx, db};
        for (int k = 0; k < 8; k++) g.cu->MemFree((CUdeviceptr)(uintptr_t)all[k]);
        free(h);
    }
    if (bad) fprintf(stderr, "kp_bench_gpu: %s\n", kp_context_message(ctx));
    kp_plan_free(pf);
    kp_plan_free(px);
    kp_plan_free(pb);
    kp_formula_free(lse);
    kp_formula_free(gb);
    kp_formula_free(gx);
    kp_formula_free(f);
    kp_context_free(ctx);
    return bad;
}
