/*
 * test_gpu_cuda_mock.c — the CUDA engine's host side against a fake driver
 * (mock_cuda.c, loaded through KP_CUDA_LIBRARY): real code generation and
 * NVRTC (sm_90 cubin loaded by the mock), pointer checks, temporaries,
 * parameter marshaling and grids. Kernels are recorded, not run, so only
 * statuses, the launch sequence and the absence of leaked device memory are
 * asserted:
 *   - host arrays: kp_reduce launched, all temporaries freed;
 *   - packed device arrays: kp_reduce only (read and written in place);
 *   - a transposed argument: kp_gather4 first; a strided output: kp_scatter4 after;
 *   - few rows, many reduced points: kp_reduce over chunks then kp_merge;
 *   - a parameter gradient on the device: kp_sumrows_f32;
 *   - 70,000 batches: two kp_reduce launches (grid z limit 65,535);
 *   - a host pointer passed as a device array: KP_ERR_ARGUMENT;
 *   - with device arrays, every launch and stream-ordered allocation, free or
 *     copy is queued on the caller's stream (kp_exec_options.cuda_stream), and
 *     on no other; host arrays (synchronous) use the default stream.
 * Skipped (77) without NVRTC.
 */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp.h"

static int failures;
static const char *(*launches)(void);
static const char *(*streams)(void);
static int (*live)(void);
static void (*reset)(void);
static int (*mem_alloc)(unsigned long long *, size_t);
static int (*mem_free)(unsigned long long);

#define CHECK(cond, ...)                  \
    do {                                  \
        if (!(cond)) {                    \
            printf("FAIL: " __VA_ARGS__); \
            printf("\n");                 \
            failures++;                   \
        }                                 \
    } while (0)

static void *dev(size_t bytes) {
    unsigned long long p = 0;
    mem_alloc(&p, bytes);
    return (void *)(uintptr_t)p;
}

static kp_array on_dev(kp_array a) {
    a.device = KP_DEVICE_CUDA;
    return a;
}

/* Checks that every recorded "op@stream;" is on stream (hex), and that there is one. */
static void check_streams(const char *what, const char *stream) {
    const char *l = streams();
    int n = 0;
    for (const char *p = l; (p = strchr(p, '@')) != NULL; p++, n++) {
        size_t k = strlen(stream);
        CHECK(strncmp(p + 1, stream, k) == 0 && p[1 + k] == ';', "%s: not on stream %s: '%s'", what, stream, l);
    }
    CHECK(n > 0, "%s: nothing was queued on a stream", what);
}

/* Checks the launch sequence (and, when stream is not NULL, that everything ran on it), then resets the records. */
static void expect_on(kp_context *ctx, kp_status st, const char *what, const char *const *want, int nwant,
                      const char *stream) {
    CHECK(st == KP_OK, "%s: %s", what, kp_context_message(ctx));
    if (stream) check_streams(what, stream);
    const char *l = launches(), *at = l;
    for (int k = 0; k < nwant; k++) {
        const char *p = strstr(at, want[k]);
        CHECK(p != NULL, "%s: launches '%s' lack '%s' (in order)", what, l, want[k]);
        if (p) at = p + 1;
    }
    printf("%s: %s\n", what, l);
    reset();
}

/* Device arrays: everything on the caller's stream 0x9abc. */
static void expect(kp_context *ctx, kp_status st, const char *what, const char *const *want, int nwant) {
    expect_on(ctx, st, what, want, nwant, "9abc");
}

int main(void) {
    const char *lib = getenv("KP_CUDA_LIBRARY");
    void *h = lib ? dlopen(lib, RTLD_NOW) : NULL;
    if (!h) {
        printf("FAIL: KP_CUDA_LIBRARY must name the mock driver\n");
        return 1;
    }
    *(void **)&launches = dlsym(h, "mock_cuda_launches");
    *(void **)&streams = dlsym(h, "mock_cuda_streams");
    *(void **)&live = dlsym(h, "mock_cuda_live_allocations");
    *(void **)&reset = dlsym(h, "mock_cuda_reset");
    *(void **)&mem_alloc = dlsym(h, "cuMemAlloc_v2");
    *(void **)&mem_free = dlsym(h, "cuMemFree_v2");
    kp_context *ctx;
    kp_context_new(&ctx);
    if (kp_context_set_engine(ctx, KP_ENGINE_CUDA) != KP_OK) {
        printf("FAIL: mock device not available: %s\n", kp_context_message(ctx));
        return 1;
    }
    const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"};
    kp_formula *f, *gg;
    kp_plan *p, *pg;
    kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)", aliases, 4, &f);
    kp_formula_grad(ctx, f, 2, &gg);
    kp_plan_new(ctx, f, KP_FLOAT32, &p);
    kp_plan_new(ctx, gg, KP_FLOAT32, &pg);
    enum { N = 50, M = 70000 };
    float *x = calloc(N * 3, 4), *y = calloc(M * 3, 4), g = 1, *b = calloc(M, 4), *o = calloc(N * 2, 4);
    kp_array args[5] = {kp_array_2d(x, KP_FLOAT32, N, 3), kp_array_2d(y, KP_FLOAT32, M, 3),
                        kp_array_1d(&g, KP_FLOAT32, 1), kp_array_2d(b, KP_FLOAT32, M, 1),
                        kp_array_2d(o, KP_FLOAT32, N, 1)};
    kp_array out = kp_array_2d(o, KP_FLOAT32, N, 1);
    kp_status st = kp_plan_exec(p, args, 4, &out, NULL, NULL);
    /* Only a missing NVRTC skips: any other refusal (a module the fake driver
     * would not load, ...) is a failure. */
    if (st == KP_ERR_UNSUPPORTED && strstr(kp_context_message(ctx), "is not built in and")) {
        printf("SKIPPED: %s\n", kp_context_message(ctx));
        free(x), free(y), free(b), free(o);
        kp_plan_free(p), kp_plan_free(pg), kp_formula_free(f), kp_formula_free(gg), kp_context_free(ctx);
        return 77; /* freed first: the sanitizer builds run this path too */
    }
    const char *r1[] = {"kp_reduce "};
    expect_on(ctx, st, "host arrays", r1, 1, "0"); /* the synchronous convenience: the default stream */
    CHECK(live() == 0, "host arrays: %d device allocations left", live());

    void *dx = dev(N * 12), *dy = dev(M * 12), *dg = dev(4), *db = dev(M * 4), *de = dev(N * 4), *dout = dev(N * 8);
    int base = live();
    kp_array dargs[5] = {on_dev(kp_array_2d(dx, KP_FLOAT32, N, 3)), on_dev(kp_array_2d(dy, KP_FLOAT32, M, 3)),
                         on_dev(kp_array_1d(dg, KP_FLOAT32, 1)), on_dev(kp_array_2d(db, KP_FLOAT32, M, 1)),
                         on_dev(kp_array_2d(de, KP_FLOAT32, N, 1))};
    kp_array dao = on_dev(kp_array_2d(dout, KP_FLOAT32, N, 1));
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.cuda_stream = (void *)(uintptr_t)0x9abc;
    /* few rows (one block) and 70,000 reduced points: split over 9 chunks of 8,192
       (kp__gpu_chunk_length), merged */
    const char *r2[] = {"kp_reduce 1,9,1", "kp_merge"};
    expect(ctx, kp_plan_exec(p, dargs, 4, &dao, NULL, &opt), "packed device arrays (split)", r2, 2);
    CHECK(live() == base, "device arrays: %d temporaries left", live() - base);
    setenv("KP_GPU_SPLIT", "0", 1);
    const char *r3[] = {"kp_reduce 1,1,1"};
    expect(ctx, kp_plan_exec(p, dargs, 4, &dao, NULL, &opt), "packed device arrays (no split)", r3, 1);
    CHECK(strstr(launches(), "gather") == NULL, "packed arrays were gathered");
    kp_array tx = dargs[0]; /* x transposed: (N,3) stored as (3,N) */
    tx.strides[0] = 1;
    tx.strides[1] = N;
    kp_array targs[4] = {tx, dargs[1], dargs[2], dargs[3]};
    kp_array so = dao; /* output rows 2 apart */
    so.strides[0] = 2;
    const char *r4[] = {"kp_gather4", "kp_reduce", "kp_scatter4"};
    expect(ctx, kp_plan_exec(p, targs, 4, &so, NULL, &opt), "transposed x, strided output", r4, 3);
    CHECK(live() == base, "strided: %d temporaries left", live() - base);
    kp_array gout = on_dev(kp_array_2d(dout, KP_FLOAT32, 1, 1));
    const char *r5[] = {"kp_reduce", "kp_sumrows_f32 1,1,1"};
    expect(ctx, kp_plan_exec(pg, dargs, 5, &gout, NULL, &opt), "parameter gradient", r5, 2);
    CHECK(live() == base, "row sums: %d temporaries left", live() - base);
    kp_array lie[4] = {dargs[0], dargs[1], dargs[2], on_dev(args[3])};
    st = kp_plan_exec(p, lie, 4, &dao, NULL, &opt);
    CHECK(st == KP_ERR_ARGUMENT && strstr(kp_context_message(ctx), "argument 3"), "host pointer as device: %d '%s'",
          (int)st, kp_context_message(ctx));
    reset();
    /* 70,000 batches of 1 x 1 points: the grid's z limit is 65,535 */
    int64_t bx[3] = {70000, 1, 3}, bo[3] = {70000, 1, 1}, bb[3] = {70000, 1, 1};
    void *bxd = dev(70000 * 12), *byd = dev(70000 * 12), *bbd = dev(70000 * 4), *bod = dev(70000 * 4);
    kp_array bargs[4] = {on_dev(kp_array_nd(bxd, KP_FLOAT32, 3, bx)), on_dev(kp_array_nd(byd, KP_FLOAT32, 3, bx)),
                         dargs[2], on_dev(kp_array_nd(bbd, KP_FLOAT32, 3, bb))};
    kp_array bout = on_dev(kp_array_nd(bod, KP_FLOAT32, 3, bo));
    const char *r6[] = {"kp_reduce 1,1,65535", "kp_reduce 1,1,4465"};
    expect(ctx, kp_plan_exec(p, bargs, 4, &bout, NULL, &opt), "70,000 batches", r6, 2);
    void *all[] = {dx, dy, dg, db, de, dout, bxd, byd, bbd, bod};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) mem_free((unsigned long long)(uintptr_t)all[k]);
    CHECK(live() == 0, "%d device allocations left at the end", live());
    kp_plan_free(p);
    kp_plan_free(pg);
    kp_formula_free(f);
    kp_formula_free(gg);
    kp_context_free(ctx);
    free(x);
    free(y);
    free(b);
    free(o);
    printf("%d failures\n", failures);
    return failures ? 1 : 0;
}
