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
 *     temporaries; float16 arrays of a float16 plan through the conversion
 *     kernels of cuda_half.h (float32 temporaries, results rounded back).
 *     Everything is queued on the caller's stream and nothing waits:
 *     temporaries are stream-ordered (cuMemAllocAsync/cuMemFreeAsync)
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
#include "gpu/cuda_half.h"
#include "gpu/cuda_helpers.h"
#include "gpu/host_loop.h"
#include "gpu/launch.h"
#include "gpu/pack.h"
#include "gpu/progcache.h"
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
    CUmodule half; /* the float16 conversion kernels' module, once loaded for the call */
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

/* Helper kernel `name` of cuda_helpers.h, or of cuda_half.h when its name says kp_half. */
static kp_status helper(cuda_run *R, const char *name, CUdeviceptr src, CUdeviceptr dst, const kp_cuda_layout *L,
                        int64_t nb, int64_t rows, int64_t dim) {
    int64_t n = nb * (strstr(name, "sumrows") ? 1 : rows) * dim;
    if (n == 0) return KP_OK;
    CUmodule mod;
    CUfunction f;
    kp_status st;
    if (strncmp(name, "kp_half", 7) == 0 && R->half) {
        mod = R->half;
        st = KP_OK;
    } else if (strncmp(name, "kp_half", 7) == 0) { /* its source is built, and hashed, once per call */
        char *text = kp__cuda_half_source(R->ctx);
        if (!text) return kp__fail(R->ctx, KP_ERR_OOM, "CUDA engine: out of memory for the float16 kernels' source");
        st = get_module(R, text, &mod);
        kp__free(R->ctx, text);
        if (st == KP_OK) R->half = mod;
    } else {
        st = get_module(R, kp__cuda_helpers_source, &mod);
    }
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

/* ------------------------------------------------------------ the device table (host_loop.h) */

static kp_status op_load(void *self, const char *src, kp_gpu_kernels *k) {
    cuda_run *R = self;
    CUmodule mod = NULL;
    kp_status st = get_module(R, src, &mod);
    CUfunction fr = NULL, fm = NULL;
    if (st == KP_OK) st = get_function(R, mod, "kp_reduce", &fr);
    if (st == KP_OK) st = get_function(R, mod, "kp_merge", &fm);
    if (st != KP_OK) return st;
    k->reduce = fr;
    k->merge = fm;
    k->max_block = 0;
    if (R->cu->FuncGetAttribute(&k->max_block, KP_CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, fr) != KP_CUDA_SUCCESS)
        k->max_block = 0;
    return KP_OK;
}

static kp_status op_alloc(void *self, size_t bytes, kp_gpu_mem *m) {
    CUdeviceptr p = 0;
    kp_status st = dev_alloc(self, bytes, &p);
    m->addr = p;
    return st;
}

/* Copies from pageable memory return once the data is staged, so the host buffer may go with the others. */
static kp_status op_upload(void *self, kp_gpu_mem dst, const void *src, size_t bytes) {
    cuda_run *R = self;
    CUresult r = R->cu->MemcpyHtoDAsync(dst.addr, src, bytes, R->stream);
    return r == KP_CUDA_SUCCESS ? KP_OK : fail_cu(R, r, "copying to the device");
}

static kp_status op_download(void *self, void *dst, kp_gpu_mem src, size_t bytes) {
    cuda_run *R = self;
    CUresult r = R->cu->MemcpyDtoHAsync(dst, src.addr, bytes, R->stream);
    if (r == KP_CUDA_SUCCESS) r = R->cu->StreamSynchronize(R->stream);
    return r == KP_CUDA_SUCCESS ? KP_OK : fail_cu(R, r, "running the kernel and reading its output");
}

static kp_status op_launch(void *self, void *kernel, const int64_t groups[3], int block, const kp_gpu_kernel_args *ka,
                           const char *name) {
    void *params[sizeof ka->a / sizeof ka->a[0]];
    for (int i = 0; i < ka->n; i++) params[i] = (void *)(uintptr_t)ka->a[i].at;
    return launch(self, (CUfunction)kernel, (unsigned)groups[0], (unsigned)groups[1], (unsigned)groups[2],
                  (unsigned)block, params, name);
}

static kp_gpu_mem op_at(kp_gpu_mem m, size_t bytes) {
    if (m.addr) m.addr += bytes;
    return m;
}

static kp_status op_release(void *self) { return release(self); }

/* Device arrays: argument u in place when packed, else gathered into a temporary (float16
 * arrays always: converted into a float32 one). */
static kp_status op_device_arg(void *self, const kp_gpu_call *C, int u, kp_gpu_mem *m, int64_t *bs) {
    cuda_run *R = self;
    const kp_job *job = C->job;
    int pos = C->info.used[u], dim = C->info.used_dim[u];
    const kp_job_arg *a = &job->args[pos];
    int64_t rows = kp__gpu_arg_rows(C, u);
    int batched = kp__gpu_arg_batched(job, a);
    int64_t nb = batched ? job->nbatch : 1;
    char what[64];
    snprintf(what, sizeof what, "argument %d", pos);
    kp_status st;
    if (rows * dim > 0 && (st = check_pointer(R, a->base, what)) != KP_OK) return st;
    if (!a->half && kp__gpu_arg_is_packed(job, a, rows, dim, bs)) {
        m->addr = (CUdeviceptr)(uintptr_t)a->base;
        return KP_OK;
    }
    kp_cuda_layout L;
    layout_of(job, a, batched, &L);
    if ((st = op_alloc(R, (size_t)(nb * rows * dim) * C->esz, m)) != KP_OK) return st;
    *bs = nb > 1 ? rows * dim : 0;
    const char *name = a->half ? "kp_half_gather" : C->esz == 4 ? "kp_gather4" : "kp_gather8";
    return helper(R, name, (CUdeviceptr)(uintptr_t)a->base, m->addr, &L, nb, rows, dim);
}

/* Device arrays: output `which` written in place when packed (and not row-summed nor float16). */
static kp_status op_device_out(void *self, const kp_gpu_call *C, int which, kp_gpu_mem *m, int *direct) {
    cuda_run *R = self;
    const kp_job *job = C->job;
    const kp_job_arg *o = which ? &job->out_idx : &job->out;
    kp_status st = check_pointer(R, o->base, which ? "the index output" : "the output");
    if (st != KP_OK) return st;
    int dim = which ? C->info.out_idx_dim : C->info.out_dim;
    *direct = (which || (!C->dev->sum_rows_dim && !o->half)) && kp__gpu_out_is_packed(job, o, dim);
    if (*direct) m->addr = (CUdeviceptr)(uintptr_t)o->base;
    return KP_OK;
}

/* Device arrays: row sums or scatters (float16 outputs: rounded) into the caller's outputs that
 * were not written in place. */
static kp_status op_device_finish(void *self, const kp_gpu_call *C) {
    cuda_run *R = self;
    const kp_job *job = C->job;
    kp_cuda_layout L;
    kp_status st = KP_OK;
    if (C->dev->sum_rows_dim) {
        layout_of(job, &job->out, 1, &L);
        const char *name = job->out.half ? "kp_half_sumrows" : C->esz == 4 ? "kp_sumrows_f32" : "kp_sumrows_f64";
        st = helper(R, name, C->out[0].addr, (CUdeviceptr)(uintptr_t)job->out.base, &L, job->nbatch, job->nrows,
                    C->dev->sum_rows_dim);
    } else if (C->info.out_dim && !C->direct[0]) {
        layout_of(job, &job->out, 1, &L);
        const char *name = job->out.half ? "kp_half_scatter" : C->esz == 4 ? "kp_scatter4" : "kp_scatter8";
        st = helper(R, name, C->out[0].addr, (CUdeviceptr)(uintptr_t)job->out.base, &L, job->nbatch, job->nrows,
                    C->info.out_dim);
    }
    if (st == KP_OK && C->info.out_idx_dim && !C->direct[1]) {
        layout_of(job, &job->out_idx, 1, &L);
        st = helper(R, "kp_scatter8", C->out[1].addr, (CUdeviceptr)(uintptr_t)job->out_idx.base, &L, job->nbatch,
                    job->nrows, C->info.out_idx_dim);
    }
    return st;
}

static const kp_gpu_device_ops cuda_device = {
    .dialect = KP_GPU_CUDA,
    .handle_size = sizeof(CUdeviceptr),
    .max_grid_y = KP_CUDA_MAX_GRID_Y,
    .max_grid_z = KP_CUDA_MAX_GRID_Z,
    .load = op_load,
    .alloc = op_alloc,
    .upload = op_upload,
    .download = op_download,
    .launch = op_launch,
    .at = op_at,
    .release = op_release,
    .device_arg = op_device_arg,
    .device_out = op_device_out,
    .device_finish = op_device_finish,
};

/* ------------------------------------------------------------ run */

/* One job on a device (ordinal, stream), its primary context current for the call. partial: the
 * states of kp_plan_exec_partial. */
static kp_status run_on(kp_context *ctx, const kp_job *job, int ordinal, void *stream, int on_device,
                        const kp_gpu_partial *partial) {
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
    /* Chunks of the reduced axis are split over the grid when row blocks cannot fill the device. */
    kp_gpu_device d = {&cuda_device, &R, ctx, R.dev->sm_count > 0 ? 2 * (int64_t)R.dev->sm_count : 64, on_device,
                       on_device && !partial ? job->sum_rows_dim : 0}; /* states keep rows: finalize sums them */
    kp_status st = kp__gpu_run(&d, job, partial);
    CUcontext popped;
    R.cu->CtxPopCurrent(&popped);
    return st;
}

static kp_status cuda_run_job(kp_context *ctx, const kp_job *job) {
    if (job->device == KP_DEVICE_CUDA) return run_on(ctx, job, job->device_id, job->stream, 1, NULL);
    return run_on(ctx, job, 0, NULL, 0, NULL);
}

/* The states are host buffers, also for device arrays: the chunk states are read back and merged. */
static kp_status cuda_run_partial(kp_context *ctx, const kp_job *job, int64_t offset, void *sreal, int64_t *sidx) {
    kp_gpu_partial p = {offset, sreal, sidx};
    if (job->device == KP_DEVICE_CUDA) return run_on(ctx, job, job->device_id, job->stream, 1, &p);
    return run_on(ctx, job, 0, NULL, 0, &p);
}

const kp_engine_ops kp__engine_cuda = {
    .name = "CUDA",
    .devices = KP_ENGINE_READS(KP_DEVICE_CPU) | KP_ENGINE_READS(KP_DEVICE_CUDA),
    .available = cuda_available,
    .run = cuda_run_job,
    .run_partial = cuda_run_partial,
};
