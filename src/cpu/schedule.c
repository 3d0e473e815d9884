/*
 * schedule.c — how the CPU engine cuts a job into work items and shares them
 * between OpenMP threads; used by kp__cpu_run and the partial fold alike, so
 * both split the same way (engine.h: the split never changes the bits).
 */
#include <omp.h>

#include "core/context.h"
#include "cpu/engine.h"

void kp__cpu_split_init(const kp_job *job, kp_cpu_split *s) {
    s->nrb = (job->nrows + KP_ROW_BLOCK - 1) / KP_ROW_BLOCK;
    s->nchunks = (job->ncols + KP_CHUNK - 1) / KP_CHUNK;
    s->nblocks = job->nbatch * s->nrb;
    int nthreads = job->num_threads;
    /* Split the reduced axis across threads only when rows alone cannot keep
     * them busy. Either way the arithmetic is the same (see engine.h). */
    s->split = s->nchunks > 1 && s->nblocks < 4 * (int64_t)nthreads;
    s->nitems = s->split ? s->nblocks * s->nchunks : s->nblocks;
    if (s->nitems < nthreads) nthreads = (int)(s->nitems > 0 ? s->nitems : 1);
    /* Waking threads costs microseconds (milliseconds on a busy machine): small
     * problems run on fewer threads, about 2^16 pairs or more each. */
    double pairs = (double)job->nbatch * (double)job->nrows * (double)(job->ncols > 0 ? job->ncols : 1);
    if (pairs < 65536.0 * nthreads) nthreads = pairs < 65536.0 ? 1 : (int)(pairs / 65536.0);
    s->nthreads = nthreads;
}

/* The calling thread's share of w: every item and block it takes from the
 * worksharing loops. Inside a parallel region the threads share them; called
 * outside one, it runs them all. */
static void run_share(kp_context *ctx, const kp_job *job, const kp_cpu_split *s, size_t scratch_bytes,
                      const kp_cpu_work *w, kp_cpu_progress *prog, int *failed) {
    void *scratch = kp__cpu_scratch(ctx, scratch_bytes, failed);
    int thread = omp_get_thread_num();
    if (w->prepare) {
#pragma omp for schedule(dynamic, 1)
        for (int64_t k = 0; k < w->nprepare; k++)
            if (scratch) w->prepare(w->prepare_user, k, scratch);
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < s->nitems; it++) {
        if (!scratch || kp__cpu_progress_stop(prog)) continue;
        int64_t b, r0, r1;
        kp__cpu_block_rows(job, s->split ? it / s->nchunks : it, &b, &r0, &r1);
        w->item(w->user, it, b, r0, r1, s->split ? it % s->nchunks : -1, thread, scratch);
        kp__cpu_progress_tick(prog);
    }
    if (s->split) {
#pragma omp for schedule(dynamic, 1)
        for (int64_t blk = 0; blk < s->nblocks; blk++) {
            if (!scratch || kp__cpu_progress_stop(prog)) continue;
            int64_t b, r0, r1;
            kp__cpu_block_rows(job, blk, &b, &r0, &r1);
            w->block(w->user, blk, b, r0, r1, scratch);
            kp__cpu_progress_tick(prog);
        }
    }
    kp__free(ctx, scratch);
}

kp_status kp__cpu_schedule(kp_context *ctx, const kp_job *job, const kp_cpu_split *s, size_t scratch_bytes,
                           const kp_cpu_work *w) {
    int failed = 0;
    kp_cpu_progress prog;
    kp__cpu_progress_init(&prog, job, s->nitems + (s->split ? s->nblocks : 0));
    /* One thread (every small call): no team to start, whose start and end
     * cost libgomp a futex call even for one thread. Not inside a caller's
     * parallel region, whose team the orphaned loops would bind to. */
    if (s->nthreads == 1 && omp_get_level() == 0) {
        run_share(ctx, job, s, scratch_bytes, w, &prog, &failed);
    } else {
#pragma omp parallel num_threads(s->nthreads)
        run_share(ctx, job, s, scratch_bytes, w, &prog, &failed);
    }
    if (failed) return kp__fail(ctx, KP_ERR_OOM, "out of memory for thread scratch (%zu bytes)", scratch_bytes);
    return kp__cpu_progress_end(ctx, &prog);
}
