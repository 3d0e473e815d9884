/* engine_joint.c — CPU engine for joint jobs: groups of rows on threads, then the column merge. */
#include <omp.h>
#include <stdlib.h>

#include "core/context.h"
#include "cpu/engine.h"

int64_t kp__cpu_joint_buffer_bytes(const kp_cpu_joint_job *jj, size_t real_size) {
    int64_t per_group, all;
    if (!kp__mul_size(2 * (int64_t)jj->coldim, jj->job.ncols, &per_group) ||
        !kp__mul_size(per_group, (int64_t)real_size, &per_group) || !kp__mul_size(per_group, jj->ngroups, &all))
        return -1;
    return all;
}

kp_status kp__cpu_run_joint(kp_context *ctx, kp_cpu_joint_job *jj) {
    const kp_cpu_kernels *K = kp__cpu_pick_kernels(jj->job.dtype);
    int64_t bytes = kp__cpu_joint_buffer_bytes(jj, K->real_size);
    if (bytes < 0) return kp__fail(ctx, KP_ERR_TOO_LARGE, "joint reduction: column buffers too large");
    char *colacc = malloc((size_t)bytes + 1);
    if (!colacc)
        return kp__fail(ctx, KP_ERR_OOM, "out of memory for %lld bytes of joint column buffers", (long long)bytes);
    size_t group_stride = (size_t)(2 * jj->coldim) * (size_t)jj->job.ncols; /* reals */
    size_t scratch_bytes = K->joint_scratch_size(jj);
    int nthreads = jj->job.num_threads;
    if (nthreads > jj->ngroups) nthreads = (int)jj->ngroups;
    int failed = 0;
    kp_cpu_progress prog;
    kp__cpu_progress_init(&prog, &jj->job, (jj->job.nrows + KP_ROW_BLOCK - 1) / KP_ROW_BLOCK);
    jj->progress = &prog;
#pragma omp parallel num_threads(nthreads)
    {
        void *scratch = aligned_alloc(64, (scratch_bytes + 63) & ~(size_t)63);
        if (!scratch) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t g = 0; g < jj->ngroups; g++) {
            if (!scratch || kp__cpu_progress_stop(&prog)) continue;
            int64_t r0 = g * jj->group_rows, r1 = r0 + jj->group_rows < jj->job.nrows ? r0 + jj->group_rows : jj->job.nrows;
            K->joint_rows(jj, r0, r1, colacc + (size_t)g * group_stride * K->real_size, scratch);
        }
        /* the implicit barrier of omp for: every group's buffer is complete */
        if (jj->coldim) {
            const int64_t span = 4096;
            int64_t nspans = (jj->job.ncols + span - 1) / span;
#pragma omp for schedule(dynamic, 1)
            for (int64_t s = 0; s < nspans; s++) {
                if (failed || kp__cpu_progress_stop(&prog)) continue;
                int64_t j0 = s * span, j1 = j0 + span < jj->job.ncols ? j0 + span : jj->job.ncols;
                K->joint_cols(jj, j0, j1, colacc, group_stride);
            }
        }
        free(scratch);
    }
    free(colacc);
    jj->progress = NULL;
    if (failed) return kp__fail(ctx, KP_ERR_OOM, "out of memory for thread scratch (%zu bytes)", scratch_bytes);
    return kp__cpu_progress_end(ctx, &prog);
}
