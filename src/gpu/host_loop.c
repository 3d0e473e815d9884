/* host_loop.c — the host side of a GPU call over a device table (contract in host_loop.h). */
#include "gpu/host_loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "gpu/pack.h"
#include "gpu/ranges_table.h"

static const char *engine_name(const kp_gpu_call *C) { return C->dev->ops->dialect == KP_GPU_CUDA ? "CUDA" : "OpenCL"; }

static kp_status keep_host(kp_gpu_call *C, void *h) {
    if (C->nhost == (int)(sizeof C->host / sizeof C->host[0])) {
        kp__free(C->dev->ctx, h);
        return kp__fail(C->dev->ctx, KP_ERR_INTERNAL, "%s engine: too many host buffers", engine_name(C));
    }
    C->host[C->nhost++] = h;
    return KP_OK;
}

static kp_gpu_mem mem_at(const kp_gpu_call *C, kp_gpu_mem m, size_t bytes) {
    return bytes && C->dev->ops->at ? C->dev->ops->at(m, bytes) : m;
}

int64_t kp__gpu_arg_rows(const kp_gpu_call *C, int u) {
    kp_var_category cat = C->info.used_cat[u];
    return cat == KP_VAR_PARAM ? 1 : cat == C->job->prog->row_cat ? C->job->nrows : C->job->ncols;
}

/* The generated kernels of the job, the block size checked, and the launch shape. */
static kp_status load_kernels(kp_gpu_call *C) {
    const kp_job *job = C->job;
    const kp_gpu_device *d = C->dev;
    kp_context *ctx = d->ctx;
    int block, per_thread;
    kp__gpu_env_geometry(&block, &per_thread);
    kp_gpu_settings set = {job->scheme, job->math, job->ranges.rows != NULL, C->states};
    char *src = kp__gpu_codegen(job->prog, job->dtype, &set, d->ops->dialect, block, per_thread, "kp", &C->info);
    if (!src) return kp__fail(ctx, KP_ERR_OOM, "out of memory while generating the %s kernel", engine_name(C));
    kp_status st = d->ops->load(d->self, src, &C->k);
    kp__free(job->prog->ctx, src);
    if (st != KP_OK) return st;
    if (C->k.max_block > 0 && C->k.max_block < C->info.block)
        return kp__fail(ctx, KP_ERR_UNSUPPORTED,
                        "%s engine: the kernel needs %d threads per work-group, the device allows %d for it "
                        "(registers); set KP_GPU_BLOCK to a smaller power of two",
                        engine_name(C), C->info.block, C->k.max_block);
    C->shape = kp__gpu_launch_shape(&C->info, job->nrows, job->ncols, job->nbatch, d->fill);
    if (C->shape.nchunks > d->ops->max_grid_y || job->ranges.rows) C->shape.split = 0;
    if (C->shape.nblocks > INT32_MAX)
        return kp__fail(ctx, KP_ERR_TOO_LARGE, "%s engine: %lld rows are too many for one grid", engine_name(C),
                        (long long)job->nrows);
    return KP_OK;
}

/* Used argument u on the device: the device's own array, or packed on the host and copied. */
static kp_status upload_arg(kp_gpu_call *C, int u) {
    const kp_gpu_device *d = C->dev;
    const kp_job *job = C->job;
    int pos = C->info.used[u], dim = C->info.used_dim[u];
    const kp_job_arg *a = &job->args[pos];
    if (d->on_device) return d->ops->device_arg(d->self, C, u, &C->arg[u], &C->bs[u]);
    int64_t rows = kp__gpu_arg_rows(C, u);
    void *h = kp__gpu_pack_arg(job, a, rows, dim, C->esz, &C->bs[u]);
    if (!h) return kp__fail(d->ctx, KP_ERR_OOM, "out of memory packing argument %d", pos);
    kp_status st = keep_host(C, h);
    int64_t nb = C->bs[u] ? job->nbatch : 1;
    size_t bytes = (size_t)(nb * rows * dim) * C->esz;
    if (st == KP_OK) st = d->ops->alloc(d->self, bytes, &C->arg[u]);
    if (st == KP_OK && bytes) st = d->ops->upload(d->self, C->arg[u], h, bytes);
    return st;
}

/* Block-sparse ranges: the table (gpu/ranges_table.h) on the device; its
 * entries are the work-groups. Partial states: one entry per rows and chunk. */
static kp_status upload_ranges(kp_gpu_call *C) {
    const kp_gpu_device *d = C->dev;
    kp_gpu_ranges_table t;
    if (!kp__gpu_ranges_table(d->ctx, C->job, (int64_t)C->info.block * C->info.rows, &t))
        return kp__fail(d->ctx, KP_ERR_OOM, "out of memory for the table of block-sparse ranges");
    if (C->states && t.nblk > INT32_MAX / C->shape.nchunks) {
        kp__gpu_ranges_table_free(d->ctx, &t);
        return kp__fail(d->ctx, KP_ERR_TOO_LARGE,
                        "%s engine: a part of %lld points is too long for partial states on these ranges; fold it in "
                        "shorter parts",
                        engine_name(C), (long long)C->job->ncols);
    }
    if (C->states && !kp__gpu_ranges_table_chunks(d->ctx, &t, C->shape.chunk, C->shape.nchunks))
        return kp__fail(d->ctx, KP_ERR_OOM, "out of memory for the table of block-sparse ranges");
    kp_status st = keep_host(C, t.blk);
    if (st == KP_OK) st = keep_host(C, t.cols);
    else kp__free(d->ctx, t.cols);
    size_t b0 = (size_t)t.nblk * (C->states ? 6 : 5) * sizeof(int64_t), b1 = (size_t)t.ncols * 2 * sizeof(int64_t);
    if (st == KP_OK) st = d->ops->alloc(d->self, b0, &C->rg[0]);
    if (st == KP_OK) st = d->ops->alloc(d->self, b1, &C->rg[1]);
    if (st == KP_OK && b0) st = d->ops->upload(d->self, C->rg[0], t.blk, b0);
    if (st == KP_OK && b1) st = d->ops->upload(d->self, C->rg[1], t.cols, b1);
    if (st != KP_OK) return st;
    C->shape.nblocks = t.nblk;
    if (C->shape.nblocks > INT32_MAX)
        return kp__fail(d->ctx, KP_ERR_TOO_LARGE, "%s engine: %lld row blocks are too many for one grid",
                        engine_name(C), (long long)C->shape.nblocks);
    return KP_OK;
}

/* Outputs (the caller's device arrays when packed, else temporaries) and chunk states when split. */
static kp_status alloc_outputs(kp_gpu_call *C) {
    const kp_gpu_device *d = C->dev;
    size_t nout = (size_t)(C->job->nbatch * C->job->nrows);
    const int dims[2] = {C->info.out_dim, C->info.out_idx_dim};
    kp_status st = KP_OK;
    for (int w = 0; w < 2 && st == KP_OK && !C->states; w++) {
        if (!dims[w]) continue;
        if (d->on_device) st = d->ops->device_out(d->self, C, w, &C->out[w], &C->direct[w]);
        if (st == KP_OK && !C->direct[w])
            st = d->ops->alloc(d->self, nout * (size_t)dims[w] * (w ? 8 : C->esz), &C->out[w]);
    }
    if (st == KP_OK && C->shape.split) {
        size_t npart = (size_t)C->shape.nchunks * nout;
        st = d->ops->alloc(d->self, npart * (size_t)C->info.nreal * C->esz, &C->out[2]);
        if (st == KP_OK) st = d->ops->alloc(d->self, npart * (size_t)C->info.nidx * 8, &C->out[3]);
    }
    return st;
}

/* Reduce (and merge) launches, in slices of at most max_grid_z batches (buffers moved to each slice). */
static kp_status launch_all(kp_gpu_call *C, const int64_t offsets[2]) {
    const kp_gpu_device *d = C->dev;
    const kp_job *job = C->job;
    const kp_gpu_kernel_info *info = &C->info;
    const size_t esz = C->esz, hs = d->ops->handle_size;
    const int64_t sizes[4] = {job->nrows, job->ncols, C->shape.chunk, C->shape.nchunks};
    const int rg = job->ranges.rows != NULL; /* one launch: the table's entries carry their batch */
    const int64_t zmax = d->ops->max_grid_z, zstep = rg ? job->nbatch : zmax;
    for (int64_t z0 = 0; job->nrows > 0 && z0 < job->nbatch; z0 += zstep) {
        int64_t nz = rg ? 1 : job->nbatch - z0 < zmax ? job->nbatch - z0 : zmax;
        kp_gpu_mem za[KP_MAX_ARGS];
        for (int u = 0; u < info->nused; u++) za[u] = mem_at(C, C->arg[u], (size_t)(z0 * C->bs[u]) * esz);
        size_t zrows = (size_t)z0 * (size_t)job->nrows, zpart = zrows * (size_t)C->shape.nchunks;
        const kp_gpu_mem zo[4] = {mem_at(C, C->out[0], zrows * (size_t)info->out_dim * esz),
                                  mem_at(C, C->out[1], zrows * (size_t)info->out_idx_dim * 8),
                                  mem_at(C, C->out[2], zpart * (size_t)info->nreal * esz),
                                  mem_at(C, C->out[3], zpart * (size_t)info->nidx * 8)};
        kp_gpu_kernel_args ka;
        const int split = C->shape.split && !rg; /* ranged states: the entries carry their chunk */
        kp__gpu_reduce_args(&ka, info->nused, za, C->bs, hs, zo, sizes, &split);
        if (rg) kp__gpu_ranges_args(&ka, C->rg, hs);
        if (C->states) kp__gpu_offset_args(&ka, offsets);
        const int64_t groups[3] = {C->shape.nblocks, C->shape.split && !rg ? C->shape.nchunks : 1, nz};
        kp_status st = d->ops->launch(d->self, C->k.reduce, groups, info->block, &ka, "kp_reduce");
        if (st != KP_OK || !C->shape.split || C->states) {
            if (st != KP_OK) return st;
            continue;
        }
        const kp_gpu_mem mb[4] = {zo[2], zo[3], zo[0], zo[1]};
        const int64_t msizes[3] = {job->nrows, C->shape.nchunks, nz * job->nrows};
        kp__gpu_merge_args(&ka, mb, hs, msizes);
        const int64_t mgroups[3] = {(msizes[2] + 63) / 64, 1, 1};
        if ((st = d->ops->launch(d->self, C->k.merge, mgroups, 64, &ka, "kp_merge")) != KP_OK) return st;
    }
    return KP_OK;
}

/* Host arrays: the packed outputs read back and scattered into the caller's. */
static kp_status download_outputs(kp_gpu_call *C) {
    const kp_gpu_device *d = C->dev;
    const kp_job *job = C->job;
    size_t nout = (size_t)(job->nbatch * job->nrows);
    for (int w = 0; w < 2; w++) {
        int dim = w ? C->info.out_idx_dim : C->info.out_dim;
        const kp_job_arg *o = w ? &job->out_idx : &job->out;
        if (!dim || !o->base) continue;
        size_t e = w ? 8 : C->esz, bytes = nout * (size_t)dim * e;
        char *h = kp__alloc(d->ctx, bytes + 1);
        if (!h) return kp__fail(d->ctx, KP_ERR_OOM, "out of memory reading the %s output", engine_name(C));
        kp_status st = keep_host(C, h);
        if (st == KP_OK) st = d->ops->download(d->self, h, C->out[w], bytes);
        if (st != KP_OK) return st;
        kp__gpu_unpack_out(job, o, h, dim, e);
    }
    return KP_OK;
}

/* Ends a call: the device's release, host buffers freed; the first error is the one reported. */
static kp_status finish_call(kp_gpu_call *C, kp_status st) {
    kp_context *ctx = C->dev->ctx;
    char keep[KP_MESSAGE_MAX];
    if (st != KP_OK) snprintf(keep, sizeof keep, "%s", kp_context_message(ctx));
    kp_status st2 = C->dev->ops->release(C->dev->self);
    for (int k = 0; k < C->nhost; k++) kp__free(ctx, C->host[k]);
    kp__free(ctx, C);
    if (st != KP_OK) return kp__fail(ctx, st, "%s", keep);
    return st2;
}

static kp_gpu_call *call_new(const kp_gpu_device *d, const kp_job *job, int states) {
    kp_gpu_call *C = kp__calloc(d->ctx, 1, sizeof *C);
    if (!C) return NULL;
    C->dev = d;
    C->job = job;
    C->esz = job->dtype == KP_FLOAT32 ? 4 : 8;
    C->states = states;
    return C;
}

/* ------------------------------------------------------------ partial states */

/* The chunk states (nbatch, nchunks, nrows, nreal | nidx) read back and merged
 * into the caller's (nbatch, nrows, ...) states in chunk order, their indices
 * made global. */
static kp_status merge_chunk_states(kp_gpu_call *C, int64_t offset, void *sreal, int64_t *sidx) {
    const kp_gpu_device *d = C->dev;
    const kp_job *job = C->job;
    const int nreal = C->info.nreal, nidx = C->info.nidx;
    const size_t nstates = (size_t)(job->nbatch * C->shape.nchunks * job->nrows);
    const size_t rbytes = nstates * (size_t)nreal * C->esz, ibytes = nstates * (size_t)nidx * 8;
    char *hr = kp__alloc(d->ctx, rbytes + 1);
    int64_t *hi = kp__alloc(d->ctx, ibytes + 8);
    kp_status st = KP_OK;
    if (!hr || !hi) {
        kp__free(d->ctx, hr);
        kp__free(d->ctx, hi);
        return kp__fail(d->ctx, KP_ERR_OOM, "out of memory reading %zu chunk states", nstates);
    }
    if ((st = keep_host(C, hr)) != KP_OK) {
        kp__free(d->ctx, hi);
        return st;
    }
    if ((st = keep_host(C, hi)) != KP_OK) return st;
    st = d->ops->download(d->self, hr, C->out[2], rbytes);
    if (st == KP_OK && ibytes) st = d->ops->download(d->self, hi, C->out[3], ibytes);
    if (st != KP_OK) return st;
    if (!job->prog->exact) /* an exact state's words are bins, not indices */
        for (size_t k = 0; k < nstates * (size_t)nidx; k++)
            if (hi[k] >= 0) hi[k] += offset;
    const size_t rowr = (size_t)job->nrows * (size_t)nreal, rowi = (size_t)job->nrows * (size_t)nidx;
    const kp_states_ops *host = kp__plan_host_states();
    if (!host) return kp__fail(d->ctx, KP_ERR_UNSUPPORTED, "no engine merges partial states on the host");
    for (int64_t b = 0; b < job->nbatch; b++)
        for (int64_t ch = 0; ch < C->shape.nchunks; ch++) {
            size_t at = (size_t)(b * C->shape.nchunks + ch);
            host->merge(job->prog, job->dtype, job->nrows, (char *)sreal + (size_t)b * rowr * C->esz,
                        nidx ? sidx + (size_t)b * rowi : NULL, hr + at * rowr * C->esz, nidx ? hi + at * rowi : NULL);
        }
    return KP_OK;
}

/* Partial states: every chunk's state, chunks of a fixed length (host_loop.h).
 * With ranges the chunks are not a grid dimension: the table's entries are
 * (upload_ranges). */
static kp_status fixed_chunks(kp_gpu_call *C) {
    const char *env = getenv("KP_GPU_CHUNK");
    int64_t chunk = env && *env ? strtoll(env, NULL, 10) : 0;
    C->shape.chunk = chunk > 0 ? chunk : KP_GPU_CHUNK_MAX;
    C->shape.nchunks = (C->job->ncols + C->shape.chunk - 1) / C->shape.chunk;
    C->shape.split = 1;
    if (C->shape.nchunks > C->dev->ops->max_grid_y && !C->job->ranges.rows)
        return kp__fail(C->dev->ctx, KP_ERR_TOO_LARGE,
                        "%s engine: a part of %lld points is too long for partial states; fold it in parts of at "
                        "most %lld points",
                        engine_name(C), (long long)C->job->ncols, (long long)(C->dev->ops->max_grid_y * C->shape.chunk));
    return KP_OK;
}

/* ------------------------------------------------------------ the call */

kp_status kp__gpu_run(const kp_gpu_device *d, const kp_job *job, const kp_gpu_partial *partial) {
    int empty = partial ? job->nbatch == 0 || job->nrows == 0 || job->ncols == 0
                        : job->nbatch == 0 || (job->nrows == 0 && !d->sum_rows_dim);
    if (empty) return d->ops->release(d->self);
    kp_gpu_call *C = call_new(d, job, partial != NULL);
    if (!C) {
        d->ops->release(d->self);
        return kp__fail(d->ctx, KP_ERR_OOM, "out of memory");
    }
    kp_status st = load_kernels(C);
    if (st == KP_OK && partial) st = fixed_chunks(C);
    for (int u = 0; st == KP_OK && u < C->info.nused; u++) st = upload_arg(C, u);
    if (st == KP_OK && job->ranges.rows) st = upload_ranges(C);
    if (st == KP_OK) st = alloc_outputs(C);
    const int64_t offsets[2] = {job->row_offset, job->col_offset}; /* global indices of partial states */
    if (st == KP_OK) st = launch_all(C, partial ? offsets : NULL);
    if (st != KP_OK) return finish_call(C, st);
    if (partial) st = merge_chunk_states(C, partial->offset, partial->sreal, partial->sidx);
    else st = d->on_device ? d->ops->device_finish(d->self, C) : download_outputs(C);
    return finish_call(C, st);
}
