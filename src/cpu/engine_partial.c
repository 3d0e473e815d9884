/*
 * engine_partial.c — partial reduction states on the CPU engine: fold a part
 * of the reduced axis into caller-owned row states, merge, finalize.
 *
 * Folding walks the part's chunks of KP_CHUNK points in increasing order and
 * merges each chunk's state into the row's state, which is what kp__cpu_run
 * does from the identity: a part that starts on a chunk boundary continues
 * the very fold of one call. When rows are too few to keep the threads busy,
 * the chunks' states are computed in parallel first and merged in chunk order
 * after, so the bits never depend on the thread count. The split and the
 * threads are kp__cpu_run's (schedule.c).
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "cpu/engine.h"

/* Shifts the indices a chunk's states hold (part-local) to global ones. */
static void offset_indices(int64_t *ix, size_t n, int64_t offset) {
    for (size_t k = 0; k < n; k++)
        if (ix[k] >= 0) ix[k] += offset;
}

typedef struct fold_ctx {
    const kp_cpu_kernels *K;
    const kp_job *job;
    int64_t offset, nchunks;
    int nreal, nidx;
    char *sreal; /* the caller's row states */
    int64_t *sidx;
    size_t creal, cidx; /* one chunk buffer: bytes of reals, number of indices */
    char *breal;        /* chunk buffers: one per item with split, else one per thread */
    int64_t *bidx;
} fold_ctx;

/* Merges one chunk's states (rows [r0,r1) of batch b) into the caller's. */
static void merge_chunk(const fold_ctx *F, int64_t b, int64_t r0, int64_t r1, void *creal, int64_t *cidx) {
    size_t row = (size_t)(b * F->job->nrows + r0), nr = (size_t)(r1 - r0);
    if (F->nidx && !F->job->prog->exact) offset_indices(cidx, nr * (size_t)F->nidx, F->offset); /* not bins */
    F->K->states_merge(F->job->prog, (int64_t)nr, F->sreal + row * (size_t)F->nreal * F->K->real_size,
                       F->nidx ? F->sidx + row * (size_t)F->nidx : NULL, creal, F->nidx ? cidx : NULL);
}

/* With split: chunk ch's state into the item's own buffer. Without: every
 * chunk in order through the thread's buffer, merged as it goes. */
static void fold_item(const void *user, int64_t it, int64_t b, int64_t r0, int64_t r1, int64_t ch, int thread,
                      void *scratch) {
    const fold_ctx *F = user;
    if (ch >= 0) {
        F->K->process(F->job, b, r0, r1, ch, ch + 1, 0, F->breal + (size_t)it * F->creal,
                      F->bidx + (size_t)it * F->cidx, scratch);
        return;
    }
    char *creal = F->breal + (size_t)thread * F->creal;
    int64_t *cidx = F->bidx + (size_t)thread * F->cidx;
    for (int64_t c = 0; c < F->nchunks; c++) {
        F->K->process(F->job, b, r0, r1, c, c + 1, 0, creal, cidx, scratch);
        merge_chunk(F, b, r0, r1, creal, cidx);
    }
}

/* With split, once every chunk's state is made: merged in chunk order. */
static void fold_block(const void *user, int64_t blk, int64_t b, int64_t r0, int64_t r1, void *scratch) {
    const fold_ctx *F = user;
    (void)scratch;
    for (int64_t c = 0; c < F->nchunks; c++) {
        size_t at = (size_t)(blk * F->nchunks + c);
        merge_chunk(F, b, r0, r1, F->breal + at * F->creal, F->bidx + at * F->cidx);
    }
}

kp_status kp__cpu_partial_fold(kp_context *ctx, const kp_job *job, int64_t offset, void *sreal, int64_t *sidx) {
    const kp_cpu_kernels *K = kp__cpu_pick_kernels(job->dtype);
    if (job->nrows == 0 || job->nbatch == 0 || job->ncols == 0) return KP_OK;
    kp_job with_kernel; /* the compiled kernel of kp__cpu_run, if any: the same bits */
    kp_status jst = kp__cpu_attach_kernel(ctx, &job, &with_kernel);
    if (jst != KP_OK) return jst;
    kp_cpu_split s;
    kp__cpu_split_init(job, &s);
    fold_ctx F = {K, job, offset, s.nchunks, 0, 0, sreal, sidx, 0, 0, NULL, NULL};
    K->state_size(job->prog, &F.nreal, &F.nidx);
    F.creal = (size_t)KP_ROW_BLOCK * (size_t)F.nreal * K->real_size;
    F.cidx = (size_t)KP_ROW_BLOCK * (size_t)F.nidx;
    size_t nbuf = s.split ? (size_t)s.nitems : (size_t)s.nthreads;
    int64_t bytes;
    if (!kp__mul_size((int64_t)nbuf, (int64_t)(F.creal + F.cidx * sizeof(int64_t)), &bytes))
        return kp__fail(ctx, KP_ERR_TOO_LARGE, "partial state buffers too large");
    F.breal = kp__alloc(ctx, nbuf * F.creal + 1);
    F.bidx = kp__alloc(ctx, nbuf * F.cidx * sizeof(int64_t) + 1);
    kp_status st = KP_OK;
    if (!F.breal || !F.bidx) {
        st = kp__fail(ctx, KP_ERR_OOM, "out of memory for %zu chunk states", nbuf);
    } else {
        kp_cpu_work w = {fold_item, fold_block, &F, NULL, NULL, 0};
        st = kp__cpu_schedule(ctx, job, &s, K->scratch_size(job->prog), &w);
    }
    kp__free(ctx, F.breal);
    kp__free(ctx, F.bidx);
    return st;
}

static void states_init(const kp_program *prog, kp_dtype dtype, int64_t n, void *sreal, int64_t *sidx) {
    kp__cpu_pick_kernels(dtype)->states_init(prog, n, sreal, sidx);
}

static void states_merge(const kp_program *prog, kp_dtype dtype, int64_t n, void *a, int64_t *ai, const void *b,
                         const int64_t *bi) {
    kp__cpu_pick_kernels(dtype)->states_merge(prog, n, a, ai, b, bi);
}

static kp_status states_finalize(kp_context *ctx, const kp_job *job, const void *sreal, const int64_t *sidx) {
    const kp_cpu_kernels *K = kp__cpu_pick_kernels(job->dtype);
    int nreal, nidx;
    K->state_size(job->prog, &nreal, &nidx);
    int64_t nblocks = job->nbatch * ((job->nrows + KP_ROW_BLOCK - 1) / KP_ROW_BLOCK);
    if (job->nrows == 0 || nblocks == 0) return KP_OK;
    size_t scratch_bytes = K->scratch_size(job->prog);
    int failed = 0, nthreads = nblocks < job->num_threads ? (int)nblocks : job->num_threads;
    if ((double)job->nbatch * (double)job->nrows < 4096.0) nthreads = 1;
#pragma omp parallel num_threads(nthreads)
    {
        void *scratch = kp__cpu_scratch(ctx, scratch_bytes, &failed);
#pragma omp for schedule(static)
        for (int64_t blk = 0; blk < nblocks; blk++) {
            if (!scratch) continue;
            int64_t b, r0, r1;
            kp__cpu_block_rows(job, blk, &b, &r0, &r1);
            size_t row = (size_t)(b * job->nrows + r0);
            K->states_finalize(job, b, r0, r1, (const char *)sreal + row * (size_t)nreal * K->real_size,
                               nidx ? sidx + row * (size_t)nidx : NULL, scratch);
        }
        kp__free(ctx, scratch);
    }
    if (failed) return kp__fail(ctx, KP_ERR_OOM, "out of memory for thread scratch (%zu bytes)", scratch_bytes);
    return KP_OK;
}

const kp_states_ops kp__cpu_states = {states_init, states_merge, states_finalize};
