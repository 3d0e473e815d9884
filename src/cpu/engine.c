/* engine.c — CPU engine: picks the kernel build for the CPU, runs a job's items (schedule.c splits them). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, CLOCK_MONOTONIC under strict C11 (clang) */
#include "cpu/engine.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/context.h"
#include "jit/jit.h"
#include "plan/reduction.h"

/* 2: AVX-512F (and DQ), 1: AVX2+FMA, 0: generic. */
static int native_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) return 2;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
}

int kp__cpu_native_vec_bytes(void) { return 16 << native_level(); }

/* Checked on every call (it is cheap): no shared state, so no race between
 * threads calling libkp for the first time. */
const kp_cpu_kernels *kp__cpu_pick_kernels(kp_dtype dtype) {
    int level = native_level();
    const char *force = getenv("KP_CPU_ISA"); /* testing aid: generic, avx2 */
    if (force && strcmp(force, "generic") == 0) level = 0;
    else if (force && strcmp(force, "avx2") == 0 && level >= 1) level = 1;
    if (dtype == KP_FLOAT32) return level == 2 ? &kp__cpu_f32_avx512 : level == 1 ? &kp__cpu_f32_avx2 : &kp__cpu_f32_generic;
    return level == 2 ? &kp__cpu_f64_avx512 : level == 1 ? &kp__cpu_f64_avx2 : &kp__cpu_f64_generic;
}

int kp__cpu_vec_bytes(const kp_cpu_kernels *K) {
    return K == &kp__cpu_f32_avx512 || K == &kp__cpu_f64_avx512 ? 64
           : K == &kp__cpu_f32_avx2 || K == &kp__cpu_f64_avx2   ? 32
                                                                : 16;
}

/* Seconds between progress calls: a few per second, so Ctrl-C in a binding
 * answers quickly while the callback's cost stays far below the work's. */
#define KP_PROGRESS_PERIOD 0.25

static double monotonic_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void kp__cpu_progress_init(kp_cpu_progress *p, const kp_job *job, int64_t total) {
    p->job = job;
    p->done = 0;
    p->total = total;
    p->cancelled = 0;
    p->next = job->progress ? monotonic_seconds() + KP_PROGRESS_PERIOD : 0.0;
}

void kp__cpu_progress_tick(kp_cpu_progress *p) {
    if (!p->job->progress) return;
    int64_t done = __atomic_add_fetch(&p->done, 1, __ATOMIC_RELAXED);
    if (omp_get_thread_num() != 0) return; /* the calling thread: bindings may need it (signals, GIL) */
    double now = monotonic_seconds();
    if (now < p->next) return;
    p->next = now + KP_PROGRESS_PERIOD;
    if (p->job->progress(p->job->progress_user, done, p->total)) __atomic_store_n(&p->cancelled, 1, __ATOMIC_RELAXED);
}

kp_status kp__cpu_progress_end(kp_context *ctx, kp_cpu_progress *p) {
    if (!p->job->progress) return KP_OK;
    if (p->cancelled)
        return kp__fail(ctx, KP_ERR_CANCELLED, "cancelled by the progress callback after %lld of %lld blocks",
                        (long long)p->done, (long long)p->total);
    (void)p->job->progress(p->job->progress_user, p->total, p->total);
    return KP_OK;
}

void *kp__cpu_scratch(kp_context *ctx, size_t bytes, int *failed) {
    void *p = kp__alloc_aligned(ctx, (bytes + 63) & ~(size_t)63, 64);
    if (!p) {
#pragma omp atomic write
        *failed = 1;
    }
    return p;
}

/* One run's per-chunk states (split runs only), item by item. */
typedef struct run_ctx {
    const kp_cpu_kernels *K;
    const kp_job *job;
    int64_t nchunks;
    size_t chunk_real, chunk_idx; /* per item, in reals and indices */
    char *sreal;
    int64_t *sidx;
} run_ctx;

static void run_item(const void *user, int64_t it, int64_t b, int64_t r0, int64_t r1, int64_t ch, int thread,
                     void *scratch) {
    const run_ctx *R = user;
    (void)thread;
    if (ch >= 0)
        R->K->process(R->job, b, r0, r1, ch, ch + 1, 0, R->sreal + (size_t)it * R->chunk_real * R->K->real_size,
                      R->sidx + (size_t)it * R->chunk_idx, scratch);
    else
        R->K->process(R->job, b, r0, r1, 0, R->nchunks, 1, NULL, NULL, scratch);
}

static void run_block(const void *user, int64_t blk, int64_t b, int64_t r0, int64_t r1, void *scratch) {
    const run_ctx *R = user;
    size_t first = (size_t)(blk * R->nchunks);
    R->K->merge_finalize(R->job, b, r0, r1, R->nchunks, R->sreal + first * R->chunk_real * R->K->real_size,
                         R->sidx + first * R->chunk_idx, R->chunk_real, R->chunk_idx, scratch);
}

/* The kernel mode for job: a Sum fused into the kernel (KP_JIT_SUM), and a
 * LogSumExp or SumSoftMaxWeight (KP_JIT_LSE), unless their float32 tiles need
 * lane-by-lane Kahan sums, a LogSumExp state outgrows the registers
 * (KP_JIT_LSE_MAX_STATE), the tile results outgrow the tile scratch (2 *
 * tile reals) or what the LogSumExp's first pass keeps outgrows the pair
 * buffer it goes to ((pair_size + 1) * tile * KP_JIT_MAX_ROWS reals,
 * kernel_impl.h; jit.h kp__jit_lse_stored); everything else gets F from the
 * kernel (KP_JIT_TILES). */
static kp_jit_mode jit_mode_of(const kp_job *job, const kp_cpu_kernels *K) {
    const kp_program *prog = job->prog;
    if (job->dtype == KP_FLOAT32 && job->scheme == KP_SUM_KAHAN) return KP_JIT_TILES;
    int nreal, nidx;
    kp__state_size(prog, &nreal, &nidx);
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM: return prog->fdim * KP_JIT_MAX_ROWS <= 2 * K->tile ? KP_JIT_SUM : KP_JIT_TILES;
    case KP_FAMILY_LOGSUMEXP:
    case KP_FAMILY_SOFTMAX:
        return kp__jit_lse_state(prog->fdim, prog->red_g.dim) <= KP_JIT_LSE_MAX_STATE &&
                       nreal * KP_JIT_MAX_ROWS <= 2 * K->tile &&
                       2 + KP_JIT_MAX_ROWS * kp__jit_lse_stored(prog->red_f, prog->fdim, prog->red_g) <=
                           (prog->pair_size + 1) * KP_JIT_MAX_ROWS
                   ? KP_JIT_LSE
                   : KP_JIT_TILES;
    case KP_FAMILY_SELECT: return KP_JIT_TILES;
    }
    return KP_JIT_TILES;
}

/* Whether every sign jk's exps take for granted (jit.h row_neg, row_pos) is
 * that of a ROW scalar that is the same in every row of a batch. */
static int signs_are_uniform(const kp_jit_kernel *jk) {
    uint64_t signs = jk->row_neg | jk->row_pos;
    return signs && !(signs & ~jk->row_uniform);
}

const kp_jit_kernel *kp__cpu_jit_kernel(kp_context *ctx, const kp_job *job, const kp_cpu_kernels *K, kp_jit_mode mode,
                                        double pairs, int *failed) {
    int vec_bytes = kp__cpu_vec_bytes(K);
    const kp_jit_kernel *jk = kp__jit_kernel(ctx, job->prog, job->dtype, K->tile, vec_bytes, mode, 1, pairs, failed);
    /* A scalar of the other sign in every row (a Gaussian written with a
     * negative width factor, an Exp(+g * SqDist)) would send every row to the
     * interpreter: the kernel without the analysis runs them all. */
    if (jk && signs_are_uniform(jk) && !K->uniform_rows_fit(job, jk))
        jk = kp__jit_kernel(ctx, job->prog, job->dtype, K->tile, vec_bytes, mode, 0, pairs, failed);
    return jk;
}

/* The compiled kernel for job (jit/jit.h), or NULL for the interpreter. */
static const kp_jit_kernel *compiled_kernel(kp_context *ctx, const kp_job *job, const kp_cpu_kernels *K, int *failed) {
    if (job->prog->exact) return NULL; /* its terms go one by one into the interpreter's exact accumulators */
    double pairs = (double)job->nbatch * (double)job->nrows * (double)job->ncols;
    return kp__cpu_jit_kernel(ctx, job, K, jit_mode_of(job, K), pairs, failed);
}

kp_status kp__cpu_attach_kernel(kp_context *ctx, const kp_job **job, kp_job *copy) {
    int failed = 0;
    const kp_jit_kernel *jk = compiled_kernel(ctx, *job, kp__cpu_pick_kernels((*job)->dtype), &failed);
    if (failed) return KP_ERR_INTERNAL;
    if (jk) {
        *copy = **job;
        copy->engine_kernel = jk;
        *job = copy;
    }
    return KP_OK;
}

/* Bytes at most of a run's COL tiles cache: it stays in the outer caches
 * (and, at small sizes, in L2), and a failed allocation only costs speed. */
#define KP_COL_CACHE_MAX ((size_t)8 << 20)

typedef struct col_cache_ctx {
    const kp_cpu_kernels *K;
    const kp_job *job;
    int64_t ntiles;
    void *cache;
} col_cache_ctx;

static void fill_col_tile(const void *user, int64_t k, void *scratch) {
    const col_cache_ctx *C = user;
    C->K->col_tile(C->job, k / C->ntiles, k % C->ntiles, C->cache, scratch);
}

void *kp__cpu_col_cache_new(kp_context *ctx, const kp_job *job, const kp_cpu_kernels *K, int64_t row_blocks,
                            int64_t *ntiles) {
    const kp_program *prog = job->prog;
    *ntiles = (job->ncols + K->tile - 1) / K->tile;
    if (prog->col.n == 0 || job->ranges.rows || row_blocks < 2 || job->ncols == 0) return NULL;
    double bytes = (double)job->nbatch * (double)*ntiles * (double)prog->col_size * (double)K->tile * (double)K->real_size;
    if (bytes > (double)KP_COL_CACHE_MAX) return NULL;
    return kp__alloc_aligned(ctx, (size_t)bytes, 64);
}

kp_status kp__cpu_run(kp_context *ctx, const kp_job *job) {
    const kp_cpu_kernels *K = kp__cpu_pick_kernels(job->dtype);
    if (job->nrows == 0 || job->nbatch == 0) return KP_OK;
    kp_job with_kernel;
    kp_status ast = kp__cpu_attach_kernel(ctx, &job, &with_kernel);
    if (ast != KP_OK) return ast;
    kp_cpu_split s;
    kp__cpu_split_init(job, &s);
    int nreal, nidx;
    K->state_size(job->prog, &nreal, &nidx);
    run_ctx R = {K, job, s.nchunks, (size_t)KP_ROW_BLOCK * (size_t)nreal, (size_t)KP_ROW_BLOCK * (size_t)nidx,
                 NULL, NULL};
    if (s.split) {
        int64_t bytes;
        if (!kp__mul_size(s.nitems, (int64_t)(R.chunk_real * K->real_size + R.chunk_idx * sizeof(int64_t)), &bytes))
            return kp__fail(ctx, KP_ERR_TOO_LARGE, "reduction state buffer too large");
        R.sreal = kp__alloc(ctx, (size_t)s.nitems * R.chunk_real * K->real_size + 1);
        R.sidx = kp__alloc(ctx, (size_t)s.nitems * R.chunk_idx * sizeof(int64_t) + 1);
        if (!R.sreal || !R.sidx) {
            kp__free(ctx, R.sreal);
            kp__free(ctx, R.sidx);
            return kp__fail(ctx, KP_ERR_OOM, "out of memory for %lld partial reduction states", (long long)s.nitems);
        }
    }
    col_cache_ctx C = {K, job, 0, NULL};
    C.cache = kp__cpu_col_cache_new(ctx, job, K, s.nrb, &C.ntiles);
    if (C.cache) {
        if (job != &with_kernel) with_kernel = *job;
        with_kernel.engine_cache = C.cache;
        C.job = R.job = job = &with_kernel;
    }
    kp_cpu_work w = {run_item, run_block, &R, C.cache ? fill_col_tile : NULL, &C, job->nbatch * C.ntiles};
    kp_status st = kp__cpu_schedule(ctx, job, &s, K->scratch_size(job->prog), &w);
    kp__free(ctx, R.sreal);
    kp__free(ctx, R.sidx);
    kp__free(ctx, C.cache);
    return st;
}

const kp_engine_ops kp__engine_cpu = {
    .name = "CPU",
    .devices = KP_ENGINE_READS(KP_DEVICE_CPU),
    .run = kp__cpu_run,
    .run_joint = kp__cpu_run_joint,
    .run_partial = kp__cpu_partial_fold,
    .states = &kp__cpu_states,
};
