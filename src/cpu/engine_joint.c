/* engine_joint.c — CPU engine for joint jobs: groups of rows on threads, then the column merge. */
#include <omp.h>
#include <stdlib.h>

#include "core/context.h"
#include "cpu/engine.h"
#include "jit/jit.h"

/* The joint pass needs enough groups of rows to keep threads busy, and its
 * column buffers (one per group: sum and compensation, coldim x M each) must
 * stay small: 8 to 16 groups, 64 MiB at most (the N = 10^5 Hamiltonian's three
 * gradients: 8 groups, 38 MB). Decided from the sizes alone, never from the
 * thread count (determinism). */
#define JOINT_MIN_GROUPS 8
#define JOINT_MAX_GROUPS 16
#define JOINT_MAX_BUFFER_BYTES ((int64_t)64 << 20)

/* Bytes of column buffers of jj's groups (0 if none), or -1 on overflow. */
static int64_t buffer_bytes(const kp_cpu_joint_job *jj, size_t real_size) {
    int64_t per_group, all;
    if (!kp__mul_size(2 * (int64_t)jj->coldim, jj->job.ncols, &per_group) ||
        !kp__mul_size(per_group, (int64_t)real_size, &per_group) || !kp__mul_size(per_group, jj->ngroups, &all))
        return -1;
    return all;
}

/* Sets the groups of rows; 0 if the joint pass should not run (too few rows
 * for the threads, or too much memory). */
static int choose_groups(kp_cpu_joint_job *jj, size_t real_size) {
    int64_t nblocks = (jj->job.nrows + KP_ROW_BLOCK - 1) / KP_ROW_BLOCK;
    if (nblocks < JOINT_MIN_GROUPS) return 0;
    for (int64_t want = nblocks < JOINT_MAX_GROUPS ? nblocks : JOINT_MAX_GROUPS; want >= JOINT_MIN_GROUPS; want /= 2) {
        int64_t blocks_per_group = (nblocks + want - 1) / want;
        jj->group_rows = blocks_per_group * KP_ROW_BLOCK;
        jj->ngroups = (jj->job.nrows + jj->group_rows - 1) / jj->group_rows;
        int64_t bytes = buffer_bytes(jj, real_size);
        if (bytes >= 0 && bytes <= JOINT_MAX_BUFFER_BYTES) return 1;
    }
    return 0;
}

static kp_status run_groups(kp_context *ctx, kp_cpu_joint_job *jj, const kp_cpu_kernels *K);

/* Puts the compiled joint kernel (jit/jit.h, KP_JIT_JOINT) in jj's job when
 * one serves it; KP_ERR_INTERNAL (message in ctx) only under KP_JIT=require.
 * float32 Kahan sums stay on the interpreter: its row sums compensate lane by
 * lane, which the kernel's register sums do not. */
static kp_status attach_joint_kernel(kp_context *ctx, kp_cpu_joint_job *jj, const kp_cpu_kernels *K) {
    const kp_job *job = &jj->job;
    if (job->dtype == KP_FLOAT32 && job->scheme == KP_SUM_KAHAN) return KP_OK;
    int failed = 0;
    double pairs = (double)job->nrows * (double)job->ncols;
    jj->job.engine_kernel = kp__cpu_jit_kernel(ctx, job, K, KP_JIT_JOINT, pairs, &failed);
    return failed ? KP_ERR_INTERNAL : KP_OK;
}

kp_status kp__cpu_run_joint(kp_context *ctx, const kp_joint_job *job) {
    const kp_cpu_kernels *K = kp__cpu_pick_kernels(job->job.dtype);
    kp_cpu_joint_job *jj = kp__calloc(ctx, 1, sizeof *jj);
    if (!jj) return kp__fail(ctx, KP_ERR_OOM, "out of memory");
    jj->job = job->job;
    jj->job.engine_kernel = NULL;
    jj->out = job->out;
    const kp_program *prog = job->job.prog;
    for (int t = 0; t < prog->nterms[1]; t++) jj->coldim += prog->terms[1][t].dim;
    kp_status st = KP_ERR_UNSUPPORTED;
    if (choose_groups(jj, K->real_size)) {
        st = attach_joint_kernel(ctx, jj, K);
        if (st == KP_OK) st = run_groups(ctx, jj, K);
    }
    kp__free(ctx, jj);
    return st;
}

static kp_status run_groups(kp_context *ctx, kp_cpu_joint_job *jj, const kp_cpu_kernels *K) {
    int64_t bytes = buffer_bytes(jj, K->real_size);
    if (bytes < 0) return kp__fail(ctx, KP_ERR_TOO_LARGE, "joint reduction: column buffers too large");
    char *colacc = kp__alloc(ctx, (size_t)bytes + 1);
    if (!colacc)
        return kp__fail(ctx, KP_ERR_OOM, "out of memory for %lld bytes of joint column buffers", (long long)bytes);
    size_t group_stride = (size_t)(2 * jj->coldim) * (size_t)jj->job.ncols; /* reals */
    size_t scratch_bytes = K->joint_scratch_size(jj);
    int64_t ntiles;
    void *col_cache = kp__cpu_col_cache_new(ctx, &jj->job, K, (jj->job.nrows + KP_ROW_BLOCK - 1) / KP_ROW_BLOCK, &ntiles);
    jj->job.engine_cache = col_cache;
    int nthreads = jj->job.num_threads;
    if (nthreads > jj->ngroups) nthreads = (int)jj->ngroups;
    int failed = 0;
    kp_cpu_progress prog;
    kp__cpu_progress_init(&prog, &jj->job, (jj->job.nrows + KP_ROW_BLOCK - 1) / KP_ROW_BLOCK);
    jj->progress = &prog;
#pragma omp parallel num_threads(nthreads)
    {
        void *scratch = kp__cpu_scratch(ctx, scratch_bytes, &failed);
        if (col_cache) { /* the implicit barrier: every tile is there before the groups read it */
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < ntiles; t++)
                if (scratch) K->col_tile(&jj->job, 0, t, col_cache, scratch);
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t g = 0; g < jj->ngroups; g++) {
            if (!scratch || kp__cpu_progress_stop(&prog)) continue;
            int64_t r0 = g * jj->group_rows, r1 = r0 + jj->group_rows < jj->job.nrows ? r0 + jj->group_rows : jj->job.nrows;
            K->joint_rows(jj, r0, r1, colacc + (size_t)g * group_stride * K->real_size, scratch);
        }
        /* the implicit barrier of omp for: every group's buffer is complete */
        if (jj->coldim) {
            const int64_t span = 1024; /* a few spans per thread already at M = 10^4 */
            int64_t nspans = (jj->job.ncols + span - 1) / span;
#pragma omp for schedule(dynamic, 1)
            for (int64_t s = 0; s < nspans; s++) {
                if (failed || kp__cpu_progress_stop(&prog)) continue;
                int64_t j0 = s * span, j1 = j0 + span < jj->job.ncols ? j0 + span : jj->job.ncols;
                K->joint_cols(jj, j0, j1, colacc, group_stride);
            }
        }
        kp__free(ctx, scratch);
    }
    kp__free(ctx, colacc);
    kp__free(ctx, col_cache);
    jj->job.engine_cache = NULL;
    jj->progress = NULL;
    if (failed) return kp__fail(ctx, KP_ERR_OOM, "out of memory for thread scratch (%zu bytes)", scratch_bytes);
    return kp__cpu_progress_end(ctx, &prog);
}
