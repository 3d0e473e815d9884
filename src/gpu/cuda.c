/*
 * cuda.c — the CUDA engine: generated CUDA C++ (codegen.c) compiled for the
 * device (cuda_compile.c: built-in kernels, kernel cache, NVRTC) and run
 * through the driver API (cuda_driver.c, dlopen'ed), on the same grid as the
 * OpenCL engine:
 *
 *   reduce kernel: grid (ceil(nrows/(B*R)), split ? nchunks : 1, nbatch), block B
 *   (R rows per thread);
 *   with split, the merge kernel merges the chunk states in chunk order, so
 *   both schemes give the same bits (see codegen.h). The reduced axis is cut
 *   in chunks (gpu/launch.h); split when the row blocks alone cannot fill the
 *   device (fewer than 2 per multiprocessor). launch.h also lists the
 *   environment overrides of these choices (tests, tuning).
 *
 * Two kinds of jobs:
 *   device arrays (job->device KP_DEVICE_CUDA): every array is a device pointer on one device.
 *     Arrays already in the kernels' packed layout are used in place; others
 *     go through gather/scatter helper kernels (cuda_helpers.h) into
 *     temporaries. Everything is queued on the caller's stream and nothing
 *     waits: temporaries are stream-ordered (cuMemAllocAsync/cuMemFreeAsync)
 *     where the device supports memory pools; otherwise they come from
 *     cuMemAlloc and we synchronize the stream before cuMemFree (the only case
 *     where a device call blocks, and only when a temporary was needed).
 *   host arrays (the context's engine is CUDA): packed on the
 *     host, copied to device 0, run, copied back, synchronized.
 *
 * The device's primary context is pushed for the call and popped after, so
 * libkp shares the context of the CUDA runtime (PyTorch, CuPy) and leaves the
 * caller's current context as it was. Modules are loaded once per (device,
 * source) and kept for the process: kernels queued on a stream may still be
 * using one, so none is unloaded.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "gpu/codegen.h"
#include "gpu/cuda_compile.h"
#include "gpu/cuda_driver.h"
#include "gpu/cuda_helpers.h"
#include "gpu/launch.h"
#include "gpu/pack.h"
#include "gpu/progcache.h"
#include "gpu/ranges_table.h"
#include "plan/engine.h"

#define KP_CUDA_MAX_GRID_Z 65535
#define KP_CUDA_MAX_GRID_Y 65535

static kp_status cuda_available(kp_context *ctx) {
    char why[320];
    if (!kp__cuda_device(0, why, sizeof why)) return kp__fail(ctx, KP_ERR_UNSUPPORTED, "%s", why);
    return KP_OK;
}

/* ------------------------------------------------------------ one call */

typedef struct cuda_run {
    kp_context *ctx;
    const kp_cuda_driver *cu;
    const kp_cuda_device *dev;
    CUstream stream;
    int async; /* stream-ordered temporaries */
    CUdeviceptr tmp[KP_MAX_ARGS + 8];
    int ntmp;
    void *host[KP_MAX_ARGS + 4];
    int nhost;
} cuda_run;

static kp_status fail_cu(cuda_run *R, CUresult r, const char *what) {
    char e[200];
    kp__cuda_strerror(R->cu, r, e, sizeof e);
    return kp__fail(R->ctx, r == 2 /* CUDA_ERROR_OUT_OF_MEMORY */ ? KP_ERR_OOM : KP_ERR_INTERNAL,
                    "CUDA engine (device %d, %s): %s failed: %s", R->dev->ordinal, R->dev->name, what, e);
}

static kp_status dev_alloc(cuda_run *R, size_t bytes, CUdeviceptr *p) {
    if (R->ntmp == (int)(sizeof R->tmp / sizeof R->tmp[0]))
        return kp__fail(R->ctx, KP_ERR_INTERNAL, "CUDA engine: too many temporaries");
    if (bytes == 0) bytes = 8;
    CUresult r = R->async ? R->cu->MemAllocAsync(p, bytes, R->stream) : R->cu->MemAlloc(p, bytes);
    if (r != KP_CUDA_SUCCESS) {
        char what[80];
        snprintf(what, sizeof what, "allocating %zu bytes", bytes);
        return fail_cu(R, r, what);
    }
    R->tmp[R->ntmp++] = *p;
    return KP_OK;
}

/* Frees the temporaries: stream-ordered, or after the stream has drained. */
static kp_status release(cuda_run *R) {
    CUresult first = KP_CUDA_SUCCESS;
    if (!R->async && R->ntmp) first = R->cu->StreamSynchronize(R->stream);
    for (int k = 0; k < R->ntmp; k++) {
        CUresult r = R->async ? R->cu->MemFreeAsync(R->tmp[k], R->stream) : R->cu->MemFree(R->tmp[k]);
        if (first == KP_CUDA_SUCCESS) first = r;
    }
    R->ntmp = 0;
    for (int k = 0; k < R->nhost; k++) kp__free(R->ctx, R->host[k]);
    R->nhost = 0;
    return first == KP_CUDA_SUCCESS ? KP_OK : fail_cu(R, first, "freeing temporaries");
}

/* ------------------------------------------------------------ modules */

/* Loaded modules by device and source; never evicted (kernels queued on a stream may use them). */
static kp_progcache modules = KP_PROGCACHE_INIT(0, NULL);

/* The module of src on R's device (its context current). */
static kp_status get_module(cuda_run *R, const char *src, CUmodule *out) {
    kp_kcache_key key;
    kp__progcache_key(&key, src, NULL);
    if ((*out = kp__progcache_find(&modules, R->dev->ordinal, &key)) != NULL) return KP_OK;
    /* Not under the lock: NVRTC can take a second; two threads may both compile, both modules work. */
    kp_cuda_image img;
    char msg[KP_MESSAGE_MAX];
    kp_status st = kp__cuda_image(kp__kcache_default(), src, R->dev->cc_major * 10 + R->dev->cc_minor, &img, msg,
                                  sizeof msg);
    if (st != KP_OK) return kp__fail(R->ctx, st, "%s", msg);
    CUmodule mod = NULL;
    int cc = R->dev->cc_major * 10 + R->dev->cc_minor;
    CUresult r = R->cu->ModuleLoadData(&mod, img.data);
    if (r != KP_CUDA_SUCCESS && img.source == KP_IMAGE_AOT) { /* refused built-in image: compile it here */
        st = kp__cuda_image_compiled(kp__kcache_default(), src, cc, &img, msg, sizeof msg);
        if (st != KP_OK) return kp__fail(R->ctx, st, "%s", msg);
        r = R->cu->ModuleLoadData(&mod, img.data);
    }
    kp__cuda_image_free(&img);
    if (r != KP_CUDA_SUCCESS) {
        char e[200];
        const char *why = NULL;
        const kp_nvrtc_api *nv = kp__nvrtc_api(&why);
        kp__cuda_strerror(R->cu, r, e, sizeof e);
        return kp__fail(R->ctx, KP_ERR_UNSUPPORTED,
                        "CUDA engine (device %d, %s): loading the kernel compiled for %s failed: %s (a driver older "
                        "than NVRTC %d.%d cannot load its output: update the driver or set KP_NVRTC_LIBRARY to an "
                        "older NVRTC)",
                        R->dev->ordinal, R->dev->name, img.arch[0] ? img.arch : "this device", e, nv ? nv->major : 0,
                        nv ? nv->minor : 0);
    }
    kp__progcache_add(&modules, R->dev->ordinal, &key, mod); /* out of memory: used for this call and leaked */
    *out = mod;
    return KP_OK;
}

static kp_status get_function(cuda_run *R, CUmodule mod, const char *name, CUfunction *f) {
    CUresult r = R->cu->ModuleGetFunction(f, mod, name);
    if (r == KP_CUDA_SUCCESS) return KP_OK;
    char what[80];
    snprintf(what, sizeof what, "cuModuleGetFunction(%s)", name);
    return fail_cu(R, r, what);
}

static kp_status launch(cuda_run *R, CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, void **params,
                        const char *name) {
    CUresult r = R->cu->LaunchKernel(f, gx, gy, gz, bx, 1, 1, 0, R->stream, params, NULL);
    if (r == KP_CUDA_SUCCESS) return KP_OK;
    char what[80];
    snprintf(what, sizeof what, "launching %s", name);
    return fail_cu(R, r, what);
}

/* A generated kernel's launch: its arguments as kp__gpu_reduce_args / kp__gpu_merge_args laid them out. */
static kp_status launch_args(cuda_run *R, CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                             const kp_gpu_kernel_args *ka, const char *name) {
    void *params[sizeof ka->a / sizeof ka->a[0]];
    for (int i = 0; i < ka->n; i++) params[i] = (void *)(uintptr_t)ka->a[i].at;
    return launch(R, f, gx, gy, gz, bx, params, name);
}

/* ------------------------------------------------------------ helpers (gather, scatter, row sums) */

static void layout_of(const kp_job *job, const kp_job_arg *a, int batched, kp_cuda_layout *L) {
    memset(L, 0, sizeof *L);
    L->nd = batched ? job->nbatch_dims : 0;
    for (int d = 0; d < job->nbatch_dims; d++) {
        L->shape[d] = job->batch_shape[d];
        L->bstride[d] = a->batch_stride[d];
    }
    L->row_stride = a->row_stride;
    L->comp_stride = a->comp_stride;
}

static kp_status helper(cuda_run *R, const char *name, CUdeviceptr src, CUdeviceptr dst, const kp_cuda_layout *L,
                        int64_t nb, int64_t rows, int64_t dim) {
    int64_t n = nb * (strncmp(name, "kp_sumrows", 10) == 0 ? 1 : rows) * dim;
    if (n == 0) return KP_OK;
    CUmodule mod;
    CUfunction f;
    kp_status st = get_module(R, kp__cuda_helpers_source, &mod);
    if (st == KP_OK) st = get_function(R, mod, name, &f);
    if (st != KP_OK) return st;
    kp_cuda_layout l = *L;
    long long lnb = nb, lrows = rows, ldim = dim;
    void *params[] = {&src, &dst, &l, &lnb, &lrows, &ldim};
    int64_t blocks = (n + 255) / 256;
    if (blocks > (1 << 20)) blocks = 1 << 20; /* grid-stride loops do the rest */
    return launch(R, f, (unsigned)blocks, 1, 1, 256, params, name);
}

static kp_status check_pointer(cuda_run *R, const void *p, const char *what) {
    int ord = -1;
    CUresult r = R->cu->PointerGetAttribute(&ord, KP_CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, (CUdeviceptr)(uintptr_t)p);
    if (r != KP_CUDA_SUCCESS) {
        char e[200];
        return kp__fail(R->ctx, KP_ERR_ARGUMENT,
                        "%s has device KP_DEVICE_CUDA, but its data %p is not memory the CUDA driver knows (%s); "
                        "host memory needs device KP_DEVICE_CPU",
                        what, p, kp__cuda_strerror(R->cu, r, e, sizeof e));
    }
    if (ord != R->dev->ordinal)
        return kp__fail(R->ctx, KP_ERR_ARGUMENT, "%s: its data is on CUDA device %d, but its device_id says %d", what,
                        ord, R->dev->ordinal);
    return KP_OK;
}

/* ------------------------------------------------------------ run */

/* One job on R's device: its kernels, launch shape, buffers. */
typedef struct cuda_call {
    const kp_job *job;
    int on_device, sum_rows_dim;
    size_t esz;
    kp_gpu_kernel_info info;
    CUfunction fr, fm; /* reduce, merge */
    int64_t chunk, nchunks, nblocks;
    int split;
    CUdeviceptr aptr[KP_MAX_ARGS]; /* argument u's packed data */
    int64_t abs_[KP_MAX_ARGS];     /* and its batch stride */
    CUdeviceptr out, oidx, part, pidx;
    int out_direct, idx_direct; /* the caller's device outputs are written in place */
    CUdeviceptr rg[2];          /* block-sparse ranges: the table's entries and ranges (gpu/ranges_table.h) */
} cuda_call;

/* The generated kernels of C's job and its launch shape. */
static kp_status load_kernels(cuda_run *R, cuda_call *C) {
    const kp_job *job = C->job;
    int block, per_thread;
    kp__gpu_env_geometry(&block, &per_thread);
    kp_gpu_settings set = {job->scheme, job->math, job->ranges.rows != NULL};
    char *src = kp__gpu_codegen(job->prog, job->dtype, &set, KP_GPU_CUDA, block, per_thread, "kp", &C->info);
    if (!src) return kp__fail(R->ctx, KP_ERR_OOM, "out of memory while generating the CUDA kernel");
    CUmodule mod = NULL;
    kp_status st = get_module(R, src, &mod);
    kp__free(job->prog->ctx, src);
    if (st == KP_OK) st = get_function(R, mod, "kp_reduce", &C->fr);
    if (st == KP_OK) st = get_function(R, mod, "kp_merge", &C->fm);
    if (st != KP_OK) return st;
    int maxthr = 0;
    if (R->cu->FuncGetAttribute(&maxthr, KP_CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, C->fr) == KP_CUDA_SUCCESS &&
        maxthr > 0 && maxthr < C->info.block)
        return kp__fail(R->ctx, KP_ERR_UNSUPPORTED,
                        "CUDA engine: the kernel needs %d threads per block, device %d allows %d for it (registers); "
                        "set KP_GPU_BLOCK to a smaller power of two",
                        C->info.block, R->dev->ordinal, maxthr);
    /* Chunks of the reduced axis, fixed by its length; split when row blocks cannot fill the device. */
    int64_t fill = R->dev->sm_count > 0 ? 2 * (int64_t)R->dev->sm_count : 64;
    kp_gpu_launch shape = kp__gpu_launch_shape(&C->info, job->nrows, job->ncols, job->nbatch, fill);
    C->chunk = shape.chunk;
    C->nchunks = shape.nchunks;
    C->nblocks = shape.nblocks;
    C->split = shape.split && C->nchunks <= KP_CUDA_MAX_GRID_Y && !job->ranges.rows;
    if (C->nblocks > INT32_MAX)
        return kp__fail(R->ctx, KP_ERR_TOO_LARGE, "CUDA engine: %lld rows are too many for one grid", (long long)job->nrows);
    return KP_OK;
}

/* Used argument u: in place when packed, else gathered (device) or packed and copied (host). */
static kp_status upload_arg(cuda_run *R, cuda_call *C, int u) {
    const kp_job *job = C->job;
    int pos = C->info.used[u], dim = C->info.used_dim[u];
    const kp_job_arg *a = &job->args[pos];
    int64_t rows = C->info.used_cat[u] == KP_VAR_PARAM ? 1
                   : (C->info.used_cat[u] == job->prog->row_cat ? job->nrows : job->ncols);
    int batched = kp__gpu_arg_batched(job, a);
    int64_t nb = batched ? job->nbatch : 1, bs = 0;
    size_t bytes = (size_t)(nb * rows * dim) * C->esz;
    char what[64];
    snprintf(what, sizeof what, "argument %d", pos);
    kp_status st;
    if (C->on_device) {
        if (rows * dim > 0 && (st = check_pointer(R, a->base, what)) != KP_OK) return st;
        if (kp__gpu_arg_is_packed(job, a, rows, dim, &bs)) {
            C->aptr[u] = (CUdeviceptr)(uintptr_t)a->base;
        } else {
            kp_cuda_layout L;
            layout_of(job, a, batched, &L);
            if ((st = dev_alloc(R, bytes, &C->aptr[u])) != KP_OK) return st;
            st = helper(R, C->esz == 4 ? "kp_gather4" : "kp_gather8", (CUdeviceptr)(uintptr_t)a->base, C->aptr[u], &L,
                        nb, rows, dim);
            if (st != KP_OK) return st;
            bs = nb > 1 ? rows * dim : 0;
        }
    } else {
        void *h = kp__gpu_pack_arg(job, a, rows, dim, C->esz, &bs);
        if (!h) return kp__fail(R->ctx, KP_ERR_OOM, "out of memory packing argument %d", pos);
        R->host[R->nhost++] = h;
        if ((st = dev_alloc(R, bytes, &C->aptr[u])) != KP_OK) return st;
        CUresult r = bytes ? R->cu->MemcpyHtoDAsync(C->aptr[u], h, bytes, R->stream) : KP_CUDA_SUCCESS;
        if (r != KP_CUDA_SUCCESS) return fail_cu(R, r, "copying an argument to the device");
    }
    C->abs_[u] = bs;
    return KP_OK;
}

/* Block-sparse ranges: the table (gpu/ranges_table.h) copied to the device;
 * its entries are the work-groups of the launch. Copies from pageable memory
 * return once the data is staged, so the host table may go with the others. */
static kp_status upload_ranges(cuda_run *R, cuda_call *C) {
    kp_gpu_ranges_table t;
    if (!kp__gpu_ranges_table(R->ctx, C->job, (int64_t)C->info.block * C->info.rows, &t))
        return kp__fail(R->ctx, KP_ERR_OOM, "out of memory for the table of block-sparse ranges");
    R->host[R->nhost++] = t.blk;
    R->host[R->nhost++] = t.cols;
    size_t b0 = (size_t)t.nblk * 5 * sizeof(int64_t), b1 = (size_t)t.ncols * 2 * sizeof(int64_t);
    kp_status st = dev_alloc(R, b0, &C->rg[0]);
    if (st == KP_OK) st = dev_alloc(R, b1, &C->rg[1]);
    if (st != KP_OK) return st;
    CUresult r = b0 ? R->cu->MemcpyHtoDAsync(C->rg[0], t.blk, b0, R->stream) : KP_CUDA_SUCCESS;
    if (r == KP_CUDA_SUCCESS && b1) r = R->cu->MemcpyHtoDAsync(C->rg[1], t.cols, b1, R->stream);
    if (r != KP_CUDA_SUCCESS) return fail_cu(R, r, "copying the block-sparse ranges to the device");
    C->nblocks = t.nblk;
    if (C->nblocks > INT32_MAX)
        return kp__fail(R->ctx, KP_ERR_TOO_LARGE, "CUDA engine: %lld row blocks are too many for one grid",
                        (long long)C->nblocks);
    return KP_OK;
}

/* Outputs: the caller's when packed (device), else temporaries; chunk states when split. */
static kp_status alloc_outputs(cuda_run *R, cuda_call *C) {
    const kp_job *job = C->job;
    size_t nout = (size_t)(job->nbatch * job->nrows), esz = C->esz;
    kp_status st;
    if (C->info.out_dim) {
        if (C->on_device && (st = check_pointer(R, job->out.base, "the output")) != KP_OK) return st;
        C->out_direct = C->on_device && !C->sum_rows_dim && kp__gpu_out_is_packed(job, &job->out, C->info.out_dim);
        if (C->out_direct) C->out = (CUdeviceptr)(uintptr_t)job->out.base;
        else if ((st = dev_alloc(R, nout * (size_t)C->info.out_dim * esz, &C->out)) != KP_OK) return st;
    }
    if (C->info.out_idx_dim) {
        if (C->on_device && (st = check_pointer(R, job->out_idx.base, "the index output")) != KP_OK) return st;
        C->idx_direct = C->on_device && kp__gpu_out_is_packed(job, &job->out_idx, C->info.out_idx_dim);
        if (C->idx_direct) C->oidx = (CUdeviceptr)(uintptr_t)job->out_idx.base;
        else if ((st = dev_alloc(R, nout * (size_t)C->info.out_idx_dim * 8, &C->oidx)) != KP_OK) return st;
    }
    if (C->split) {
        size_t npart = (size_t)C->nchunks * nout;
        if ((st = dev_alloc(R, npart * (size_t)C->info.nreal * esz, &C->part)) != KP_OK) return st;
        if ((st = dev_alloc(R, npart * (size_t)C->info.nidx * 8, &C->pidx)) != KP_OK) return st;
    }
    return KP_OK;
}

/* Reduce (and merge) launches, in slices of at most KP_CUDA_MAX_GRID_Z batches (pointers moved to each slice). */
static kp_status launch_all(cuda_run *R, cuda_call *C) {
    const kp_job *job = C->job;
    const kp_gpu_kernel_info *info = &C->info;
    size_t esz = C->esz;
    const int64_t sizes[4] = {job->nrows, job->ncols, C->chunk, C->nchunks};
    const int rg = job->ranges.rows != NULL; /* one launch: the table's entries carry their batch */
    const int64_t zstep = rg ? job->nbatch : KP_CUDA_MAX_GRID_Z;
    for (int64_t z0 = 0; job->nrows > 0 && z0 < job->nbatch; z0 += zstep) {
        int64_t nz = rg ? 1 : job->nbatch - z0 < KP_CUDA_MAX_GRID_Z ? job->nbatch - z0 : KP_CUDA_MAX_GRID_Z;
        CUdeviceptr za[KP_MAX_ARGS];
        for (int u = 0; u < info->nused; u++) za[u] = C->aptr[u] + (CUdeviceptr)(z0 * C->abs_[u] * (int64_t)esz);
        size_t zrows = (size_t)z0 * (size_t)job->nrows, zpart = zrows * (size_t)C->nchunks;
        CUdeviceptr zo[4] = {/* out, out_idx, part, part_idx of this slice */
                             C->out ? C->out + (CUdeviceptr)(zrows * (size_t)info->out_dim * esz) : 0,
                             C->oidx ? C->oidx + (CUdeviceptr)(zrows * (size_t)info->out_idx_dim * 8) : 0,
                             C->part ? C->part + (CUdeviceptr)(zpart * (size_t)info->nreal * esz) : 0,
                             C->pidx ? C->pidx + (CUdeviceptr)(zpart * (size_t)info->nidx * 8) : 0};
        kp_gpu_kernel_args ka;
        kp__gpu_reduce_args(&ka, info->nused, za, C->abs_, sizeof(CUdeviceptr), zo, sizes, &C->split);
        if (rg) kp__gpu_ranges_args(&ka, C->rg, sizeof(CUdeviceptr));
        kp_status st = launch_args(R, C->fr, (unsigned)C->nblocks, C->split ? (unsigned)C->nchunks : 1u, (unsigned)nz,
                                   (unsigned)info->block, &ka, "kp_reduce");
        if (st != KP_OK) return st;
        if (C->split) {
            const CUdeviceptr mb[4] = {zo[2], zo[3], zo[0], zo[1]};
            const int64_t msizes[3] = {job->nrows, C->nchunks, nz * job->nrows};
            kp__gpu_merge_args(&ka, mb, sizeof(CUdeviceptr), msizes);
            st = launch_args(R, C->fm, (unsigned)((msizes[2] + 127) / 128), 1, 1, 128, &ka, "kp_merge");
            if (st != KP_OK) return st;
        }
    }
    return KP_OK;
}

/* Device arrays: row sums or scatters into the caller's outputs that were not written in place. */
static kp_status finish_on_device(cuda_run *R, const cuda_call *C) {
    const kp_job *job = C->job;
    kp_cuda_layout L;
    kp_status st = KP_OK;
    if (C->sum_rows_dim) {
        layout_of(job, &job->out, 1, &L);
        st = helper(R, C->esz == 4 ? "kp_sumrows_f32" : "kp_sumrows_f64", C->out, (CUdeviceptr)(uintptr_t)job->out.base,
                    &L, job->nbatch, job->nrows, C->sum_rows_dim);
    } else if (C->info.out_dim && !C->out_direct) {
        layout_of(job, &job->out, 1, &L);
        st = helper(R, C->esz == 4 ? "kp_scatter4" : "kp_scatter8", C->out, (CUdeviceptr)(uintptr_t)job->out.base, &L,
                    job->nbatch, job->nrows, C->info.out_dim);
    }
    if (st == KP_OK && C->info.out_idx_dim && !C->idx_direct) {
        layout_of(job, &job->out_idx, 1, &L);
        st = helper(R, "kp_scatter8", C->oidx, (CUdeviceptr)(uintptr_t)job->out_idx.base, &L, job->nbatch, job->nrows,
                    C->info.out_idx_dim);
    }
    return st;
}

/* Host arrays: copy the packed outputs back, wait, scatter them into the caller's. */
static kp_status finish_on_host(cuda_run *R, const cuda_call *C) {
    const kp_job *job = C->job;
    size_t nout = (size_t)(job->nbatch * job->nrows), esz = C->esz;
    int od = C->info.out_dim, oi = C->info.out_idx_dim;
    void *hv = NULL, *hi = NULL;
    if (od && job->out.base) {
        hv = kp__alloc(R->ctx, nout * (size_t)od * esz + 1);
        if (hv) R->host[R->nhost++] = hv;
    }
    if (oi && job->out_idx.base) {
        hi = kp__alloc(R->ctx, nout * (size_t)oi * 8 + 1);
        if (hi) R->host[R->nhost++] = hi;
    }
    if ((od && job->out.base && !hv) || (oi && job->out_idx.base && !hi))
        return kp__fail(R->ctx, KP_ERR_OOM, "out of memory reading the CUDA output");
    CUresult r = KP_CUDA_SUCCESS;
    if (hv) r = R->cu->MemcpyDtoHAsync(hv, C->out, nout * (size_t)od * esz, R->stream);
    if (r == KP_CUDA_SUCCESS && hi) r = R->cu->MemcpyDtoHAsync(hi, C->oidx, nout * (size_t)oi * 8, R->stream);
    if (r == KP_CUDA_SUCCESS) r = R->cu->StreamSynchronize(R->stream);
    if (r != KP_CUDA_SUCCESS) return fail_cu(R, r, "running the kernel and reading its output");
    if (hv) kp__gpu_unpack_out(job, &job->out, hv, od, esz);
    if (hi) kp__gpu_unpack_out(job, &job->out_idx, hi, oi, 8);
    return KP_OK;
}

static kp_status run(cuda_run *R, const kp_job *job, int on_device, int sum_rows_dim) {
    if (job->nbatch == 0 || (job->nrows == 0 && !sum_rows_dim)) return KP_OK;
    cuda_call *C = kp__calloc(R->ctx, 1, sizeof *C);
    if (!C) return kp__fail(R->ctx, KP_ERR_OOM, "out of memory");
    C->job = job;
    C->on_device = on_device;
    C->sum_rows_dim = sum_rows_dim;
    C->esz = job->dtype == KP_FLOAT32 ? 4 : 8;
    kp_status st = load_kernels(R, C);
    for (int u = 0; st == KP_OK && u < C->info.nused; u++) st = upload_arg(R, C, u);
    if (st == KP_OK && job->ranges.rows) st = upload_ranges(R, C);
    if (st == KP_OK) st = alloc_outputs(R, C);
    if (st == KP_OK) st = launch_all(R, C);
    if (st == KP_OK) st = on_device ? finish_on_device(R, C) : finish_on_host(R, C);
    kp__free(R->ctx, C);
    return st;
}

static kp_status run_on(kp_context *ctx, const kp_job *job, int ordinal, void *stream, int on_device,
                        int sum_rows_dim) {
    char why[320];
    cuda_run R;
    memset(&R, 0, sizeof R);
    R.ctx = ctx;
    R.cu = kp__cuda_driver(NULL);
    R.dev = kp__cuda_device(ordinal, why, sizeof why);
    if (!R.cu || !R.dev) return kp__fail(ctx, KP_ERR_UNSUPPORTED, "%s", why);
    R.stream = (CUstream)stream;
    R.async = R.dev->mempools;
    CUresult r = R.cu->CtxPushCurrent(R.dev->ctx);
    if (r != KP_CUDA_SUCCESS) return fail_cu(&R, r, "cuCtxPushCurrent");
    kp_status st = run(&R, job, on_device, sum_rows_dim);
    char keep[KP_MESSAGE_MAX];
    if (st != KP_OK) snprintf(keep, sizeof keep, "%s", kp_context_message(ctx));
    kp_status st2 = release(&R);
    CUcontext popped;
    R.cu->CtxPopCurrent(&popped);
    if (st != KP_OK) return kp__fail(ctx, st, "%s", keep); /* the first error is the one to report */
    return st2;
}

static kp_status cuda_run_job(kp_context *ctx, const kp_job *job) {
    if (job->device == KP_DEVICE_CUDA) return run_on(ctx, job, job->device_id, job->stream, 1, job->sum_rows_dim);
    return run_on(ctx, job, 0, NULL, 0, 0);
}

const kp_engine_ops kp__engine_cuda = {
    .name = "CUDA",
    .devices = KP_ENGINE_READS(KP_DEVICE_CPU) | KP_ENGINE_READS(KP_DEVICE_CUDA),
    .available = cuda_available,
    .run = cuda_run_job,
};
