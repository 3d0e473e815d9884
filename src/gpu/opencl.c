/*
 * opencl.c — the OpenCL engine: generated OpenCL C (codegen.c) run on the first
 * OpenCL device.
 *
 * libOpenCL.so.1 is loaded at run time (dlopen; $KP_OPENCL_LIBRARY overrides
 * the name), so libkp builds without OpenCL headers or libraries and reports
 * "no OpenCL platform" when there is none. The few OpenCL types and constants
 * used are declared here (values from the Khronos headers).
 *
 * One call: generate the source for (program, dtype), build it (programs are
 * cached by source text and build options for the life of the process), pack every argument
 * into a contiguous (batch, rows, dim) buffer (any strides and batch
 * broadcasting are resolved on the host), run the reduce kernel (and the merge
 * kernel when the reduced axis is split over work-groups), read the packed
 * outputs back and scatter them into the caller's strided outputs.
 *
 * Split: the reduced axis is cut into chunks (gpu/launch.h: fixed by its
 * length alone). With fewer than 64 row blocks one work-group row is launched
 * per chunk and the chunk states are merged in chunk order; otherwise each
 * thread walks all chunks. Both give the same bits. launch.h lists the
 * environment overrides (tests use them); $KP_OPENCL_BUILD_OPTIONS adds options
 * to clBuildProgram.
 *
 * Thread-safety: the runtime (platform, context, queue, program cache) is
 * process-wide and guarded by a mutex; calls run one at a time.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "gpu/codegen.h"
#include "gpu/launch.h"
#include "gpu/pack.h"
#include "gpu/ranges_table.h"
#include "gpu/progcache.h"
#include "plan/engine.h"

/* ------------------------------------------------------------ minimal OpenCL ABI */
typedef int32_t cl_int;
typedef uint32_t cl_uint;
typedef uint64_t cl_ulong;
typedef cl_ulong cl_bitfield;
typedef struct _cl_platform_id *cl_platform_id;
typedef struct _cl_device_id *cl_device_id;
typedef struct _cl_context *cl_context;
typedef struct _cl_command_queue *cl_command_queue;
typedef struct _cl_mem *cl_mem;
typedef struct _cl_program *cl_program;
typedef struct _cl_kernel *cl_kernel;
typedef struct _cl_event *cl_event;

#define CL_SUCCESS 0
#define CL_DEVICE_TYPE_ALL 0xFFFFFFFFu
#define CL_MEM_READ_WRITE (1u << 0)
#define CL_MEM_READ_ONLY (1u << 2)
#define CL_MEM_COPY_HOST_PTR (1u << 5)
#define CL_PROGRAM_BUILD_LOG 0x1183
#define CL_DEVICE_NAME 0x102B
#define CL_DEVICE_EXTENSIONS 0x1030
#define CL_KERNEL_WORK_GROUP_SIZE 0x11B0
#define CL_TRUE 1

typedef struct ocl_api {
    cl_int (*GetPlatformIDs)(cl_uint, cl_platform_id *, cl_uint *);
    cl_int (*GetDeviceIDs)(cl_platform_id, cl_bitfield, cl_uint, cl_device_id *, cl_uint *);
    cl_int (*GetDeviceInfo)(cl_device_id, cl_uint, size_t, void *, size_t *);
    cl_context (*CreateContext)(const intptr_t *, cl_uint, const cl_device_id *, void *, void *, cl_int *);
    cl_command_queue (*CreateCommandQueue)(cl_context, cl_device_id, cl_bitfield, cl_int *);
    cl_program (*CreateProgramWithSource)(cl_context, cl_uint, const char **, const size_t *, cl_int *);
    cl_int (*BuildProgram)(cl_program, cl_uint, const cl_device_id *, const char *, void *, void *);
    cl_int (*GetProgramBuildInfo)(cl_program, cl_device_id, cl_uint, size_t, void *, size_t *);
    cl_kernel (*CreateKernel)(cl_program, const char *, cl_int *);
    cl_int (*GetKernelWorkGroupInfo)(cl_kernel, cl_device_id, cl_uint, size_t, void *, size_t *);
    cl_mem (*CreateBuffer)(cl_context, cl_bitfield, size_t, void *, cl_int *);
    cl_int (*SetKernelArg)(cl_kernel, cl_uint, size_t, const void *);
    cl_int (*EnqueueNDRangeKernel)(cl_command_queue, cl_kernel, cl_uint, const size_t *, const size_t *,
                                   const size_t *, cl_uint, const cl_event *, cl_event *);
    cl_int (*EnqueueReadBuffer)(cl_command_queue, cl_mem, cl_uint, size_t, size_t, void *, cl_uint, const cl_event *,
                                cl_event *);
    cl_int (*Finish)(cl_command_queue);
    cl_int (*ReleaseMemObject)(cl_mem);
    cl_int (*ReleaseKernel)(cl_kernel);
    cl_int (*ReleaseProgram)(cl_program);
} ocl_api;

/* ------------------------------------------------------------ runtime (process-wide) */

static struct {
    pthread_mutex_t lock;
    int tried;
    kp_status status; /* of the initialization */
    char why[256];
    void *lib;
    ocl_api cl;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    int fp64;
    char device_name[128];
} rt = {PTHREAD_MUTEX_INITIALIZER, 0, KP_OK, "", NULL, {0}, NULL, NULL, NULL, 0, ""};

/* Built programs, by source and build options; the oldest beyond 256 are released. */
static void release_program(void *p) { rt.cl.ReleaseProgram((cl_program)p); }
static kp_progcache programs = KP_PROGCACHE_INIT(256, release_program);

static int load_symbols(void) {
    void *l = rt.lib;
#define SYM(field, name)                                   \
    *(void **)(&rt.cl.field) = dlsym(l, name);             \
    if (!rt.cl.field) {                                    \
        snprintf(rt.why, sizeof rt.why, "no OpenCL platform: %s missing in the OpenCL library", name); \
        return 0;                                          \
    }
    SYM(GetPlatformIDs, "clGetPlatformIDs")
    SYM(GetDeviceIDs, "clGetDeviceIDs")
    SYM(GetDeviceInfo, "clGetDeviceInfo")
    SYM(CreateContext, "clCreateContext")
    SYM(CreateCommandQueue, "clCreateCommandQueue")
    SYM(CreateProgramWithSource, "clCreateProgramWithSource")
    SYM(BuildProgram, "clBuildProgram")
    SYM(GetProgramBuildInfo, "clGetProgramBuildInfo")
    SYM(CreateKernel, "clCreateKernel")
    SYM(GetKernelWorkGroupInfo, "clGetKernelWorkGroupInfo")
    SYM(CreateBuffer, "clCreateBuffer")
    SYM(SetKernelArg, "clSetKernelArg")
    SYM(EnqueueNDRangeKernel, "clEnqueueNDRangeKernel")
    SYM(EnqueueReadBuffer, "clEnqueueReadBuffer")
    SYM(Finish, "clFinish")
    SYM(ReleaseMemObject, "clReleaseMemObject")
    SYM(ReleaseKernel, "clReleaseKernel")
    SYM(ReleaseProgram, "clReleaseProgram")
#undef SYM
    return 1;
}

/* Called with rt.lock held. */
static kp_status runtime_init(void) {
    if (rt.tried) return rt.status;
    rt.tried = 1;
    rt.status = KP_ERR_UNSUPPORTED;
    const char *path = getenv("KP_OPENCL_LIBRARY");
    rt.lib = dlopen(path && *path ? path : "libOpenCL.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!rt.lib) {
        snprintf(rt.why, sizeof rt.why, "no OpenCL platform: the OpenCL loader (%s) is not installed",
                 path && *path ? path : "libOpenCL.so.1");
        return rt.status;
    }
    if (!load_symbols()) return rt.status;
    cl_platform_id plats[16];
    cl_uint np = 0;
    if (rt.cl.GetPlatformIDs(16, plats, &np) != CL_SUCCESS || np == 0) {
        snprintf(rt.why, sizeof rt.why, "no OpenCL platform: the OpenCL loader finds no platform (no ICD installed)");
        return rt.status;
    }
    cl_device_id dev = NULL;
    for (cl_uint p = 0; p < np && !dev; p++) {
        cl_uint nd = 0;
        if (rt.cl.GetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 1, &dev, &nd) != CL_SUCCESS || nd == 0) dev = NULL;
    }
    if (!dev) {
        snprintf(rt.why, sizeof rt.why, "no OpenCL platform: %u platform(s) but no device", (unsigned)np);
        return rt.status;
    }
    cl_int err = 0;
    rt.context = rt.cl.CreateContext(NULL, 1, &dev, NULL, NULL, &err);
    if (!rt.context || err != CL_SUCCESS) {
        snprintf(rt.why, sizeof rt.why, "no OpenCL platform: clCreateContext failed (%d)", (int)err);
        return rt.status;
    }
    rt.queue = rt.cl.CreateCommandQueue(rt.context, dev, 0, &err);
    if (!rt.queue || err != CL_SUCCESS) {
        snprintf(rt.why, sizeof rt.why, "no OpenCL platform: clCreateCommandQueue failed (%d)", (int)err);
        return rt.status;
    }
    rt.device = dev;
    size_t n = 0;
    if (rt.cl.GetDeviceInfo(dev, CL_DEVICE_NAME, sizeof rt.device_name - 1, rt.device_name, &n) != CL_SUCCESS)
        strcpy(rt.device_name, "?");
    char ext[4096];
    memset(ext, 0, sizeof ext);
    if (rt.cl.GetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, sizeof ext - 1, ext, &n) == CL_SUCCESS)
        rt.fp64 = strstr(ext, "cl_khr_fp64") != NULL;
    rt.status = KP_OK;
    return KP_OK;
}

static kp_status opencl_available(kp_context *ctx) {
    pthread_mutex_lock(&rt.lock);
    kp_status st = runtime_init();
    pthread_mutex_unlock(&rt.lock);
    if (st != KP_OK) return kp__fail(ctx, st, "%s", rt.why);
    return KP_OK;
}

/* Builds (or finds) the program of src with the current build options. Called with rt.lock held. */
static kp_status get_program(kp_context *ctx, const char *src, cl_program *out) {
    /* $KP_OPENCL_BUILD_OPTIONS: extra clBuildProgram options, e.g. -cl-opt-disable, which about
       halves PoCL's compile time for suites that run many formulas. Read at every call and part of
       the cache key, so a change takes effect at once. */
    const char *opts = getenv("KP_OPENCL_BUILD_OPTIONS");
    if (!opts) opts = "";
    kp_kcache_key key;
    kp__progcache_key(&key, src, opts);
    if ((*out = kp__progcache_find(&programs, 0, &key)) != NULL) return KP_OK;
    cl_int err = 0;
    cl_program p = rt.cl.CreateProgramWithSource(rt.context, 1, &src, NULL, &err);
    if (!p || err != CL_SUCCESS) return kp__fail(ctx, KP_ERR_INTERNAL, "OpenCL: clCreateProgramWithSource failed (%d)", (int)err);
    err = rt.cl.BuildProgram(p, 1, &rt.device, opts, NULL, NULL);
    if (err != CL_SUCCESS) {
        char log[400];
        size_t n = 0;
        memset(log, 0, sizeof log);
        rt.cl.GetProgramBuildInfo(p, rt.device, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, &n);
        rt.cl.ReleaseProgram(p);
        return kp__fail(ctx, KP_ERR_INTERNAL, "OpenCL: building the generated kernel failed (%d): %s", (int)err, log);
    }
    if (!kp__progcache_add(&programs, 0, &key, p)) {
        rt.cl.ReleaseProgram(p);
        return kp__fail(ctx, KP_ERR_OOM, "out of memory caching an OpenCL program");
    }
    *out = p;
    return KP_OK;
}

/* ------------------------------------------------------------ run */


typedef struct run_state {
    cl_mem mem[KP_MAX_ARGS + 6];
    int nmem;
    cl_kernel kr, km;
    void *host[KP_MAX_ARGS + 2];
    int nhost;
} run_state;

static cl_mem new_buffer(run_state *rs, size_t bytes, void *host, cl_int *err) {
    cl_mem m = rt.cl.CreateBuffer(rt.context, host ? (CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR) : CL_MEM_READ_WRITE,
                                  bytes ? bytes : 8, host, err);
    if (m) rs->mem[rs->nmem++] = m;
    return m;
}

static kp_status set_args(kp_context *ctx, cl_kernel k, const kp_gpu_kernel_args *ka, const char *name) {
    for (int i = 0; i < ka->n; i++) {
        cl_int err = rt.cl.SetKernelArg(k, (cl_uint)i, ka->a[i].size, ka->a[i].at);
        if (err != CL_SUCCESS)
            return kp__fail(ctx, KP_ERR_INTERNAL, "OpenCL: clSetKernelArg %d of %s failed (%d)", i, name, (int)err);
    }
    return KP_OK;
}

/* The ranges table of job (gpu/ranges_table.h) in two device buffers; *nentries: its entries. */
static kp_status ranges_buffers(kp_context *ctx, const kp_job *job, const kp_gpu_kernel_info *info, run_state *rs,
                                cl_mem bufs[2], int64_t *nentries) {
    kp_gpu_ranges_table t;
    if (!kp__gpu_ranges_table(ctx, job, (int64_t)info->block * info->rows, &t))
        return kp__fail(ctx, KP_ERR_OOM, "out of memory for the table of block-sparse ranges");
    cl_int err = 0;
    bufs[0] = new_buffer(rs, (size_t)t.nblk * 5 * sizeof(int64_t), t.blk, &err);
    bufs[1] = bufs[0] ? new_buffer(rs, (size_t)(t.ncols ? t.ncols : 1) * 2 * sizeof(int64_t), t.cols, &err) : NULL;
    *nentries = t.nblk;
    kp__gpu_ranges_table_free(ctx, &t);
    if (!bufs[1]) return kp__fail(ctx, KP_ERR_OOM, "OpenCL: clCreateBuffer for the ranges failed (%d)", (int)err);
    return KP_OK;
}

static kp_status run_locked(kp_context *ctx, const kp_job *job, run_state *rs) {
    const kp_program *prog = job->prog;
    size_t esz = job->dtype == KP_FLOAT32 ? 4 : 8;
    if (job->dtype == KP_FLOAT64 && !rt.fp64)
        return kp__fail(ctx, KP_ERR_UNSUPPORTED, "OpenCL device '%s' has no float64 (cl_khr_fp64)", rt.device_name);
    if (job->nrows == 0 || job->nbatch == 0) return KP_OK;
    kp_gpu_kernel_info info;
    int block, per_thread;
    kp__gpu_env_geometry(&block, &per_thread);
    kp_gpu_settings set = {job->scheme, job->math, job->ranges.rows != NULL};
    char *src = kp__gpu_codegen(prog, job->dtype, &set, KP_GPU_OPENCL, block, per_thread, "kp", &info);
    if (!src) return kp__fail(ctx, KP_ERR_OOM, "out of memory while generating the OpenCL kernel");
    cl_program p = NULL;
    kp_status st = get_program(ctx, src, &p);
    kp__free(prog->ctx, src);
    if (st != KP_OK) return st;
    cl_int err = 0;
    rs->kr = rt.cl.CreateKernel(p, "kp_reduce", &err);
    if (!rs->kr) return kp__fail(ctx, KP_ERR_INTERNAL, "OpenCL: clCreateKernel(kp_reduce) failed (%d)", (int)err);
    size_t wg = 0;
    if (rt.cl.GetKernelWorkGroupInfo(rs->kr, rt.device, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg, NULL) ==
            CL_SUCCESS &&
        wg < (size_t)info.block)
        return kp__fail(ctx, KP_ERR_UNSUPPORTED, "OpenCL device allows %zu work-items per group, the kernel needs %d", wg,
                        info.block);

    /* Chunks of the reduced axis: fixed by its length. With ranges, one work-group per
       entry of the ranges table, never split (gpu/ranges_table.h). */
    kp_gpu_launch shape = kp__gpu_launch_shape(&info, job->nrows, job->ncols, job->nbatch, 64);
    int64_t chunk = shape.chunk, nchunks = shape.nchunks, nblocks = shape.nblocks;
    int split = job->ranges.rows ? 0 : shape.split;
    cl_mem rgbufs[2] = {NULL, NULL};
    if (job->ranges.rows && (st = ranges_buffers(ctx, job, &info, rs, rgbufs, &nblocks)) != KP_OK) return st;

    cl_mem bufs[KP_MAX_ARGS];
    int64_t bstride[KP_MAX_ARGS];
    for (int u = 0; u < info.nused; u++) {
        int pos = info.used[u];
        const kp_job_arg *a = &job->args[pos];
        if (!a->base) return kp__fail(ctx, KP_ERR_INTERNAL, "OpenCL: argument %d has no data", pos);
        int64_t rows = info.used_cat[u] == KP_VAR_PARAM ? 1
                       : (info.used_cat[u] == prog->row_cat ? job->nrows : job->ncols);
        void *h = kp__gpu_pack_arg(job, a, rows, info.used_dim[u], esz, &bstride[u]);
        if (!h) return kp__fail(ctx, KP_ERR_OOM, "out of memory packing argument %d", pos);
        rs->host[rs->nhost++] = h;
        int64_t nb = bstride[u] ? job->nbatch : 1;
        bufs[u] = new_buffer(rs, (size_t)(nb * rows * info.used_dim[u]) * esz, h, &err);
        if (!bufs[u]) return kp__fail(ctx, KP_ERR_OOM, "OpenCL: clCreateBuffer for argument %d failed (%d)", pos, (int)err);
    }
    size_t nout = (size_t)(job->nbatch * job->nrows);
    cl_mem outs[4]; /* out, out_idx, part, part_idx */
    outs[0] = new_buffer(rs, nout * (size_t)info.out_dim * esz, NULL, &err);
    outs[1] = outs[0] ? new_buffer(rs, nout * (size_t)info.out_idx_dim * 8, NULL, &err) : NULL;
    size_t npart = split ? (size_t)nchunks * nout : 0;
    outs[2] = outs[1] ? new_buffer(rs, npart * (size_t)info.nreal * esz, NULL, &err) : NULL;
    outs[3] = outs[2] ? new_buffer(rs, npart * (size_t)info.nidx * 8, NULL, &err) : NULL;
    if (!outs[3]) return kp__fail(ctx, KP_ERR_OOM, "OpenCL: clCreateBuffer for the outputs failed (%d)", (int)err);
    kp_gpu_kernel_args ka;
    const int64_t sizes[4] = {job->nrows, job->ncols, chunk, nchunks};
    kp__gpu_reduce_args(&ka, info.nused, bufs, bstride, sizeof(cl_mem), outs, sizes, &split);
    if (job->ranges.rows) kp__gpu_ranges_args(&ka, rgbufs, sizeof(cl_mem));
    st = set_args(ctx, rs->kr, &ka, "kp_reduce");
    if (st != KP_OK) return st;
    size_t gsz[3] = {(size_t)(nblocks * info.block), split ? (size_t)nchunks : 1,
                     job->ranges.rows ? 1 : (size_t)job->nbatch};
    size_t lsz[3] = {(size_t)info.block, 1, 1};
    err = rt.cl.EnqueueNDRangeKernel(rt.queue, rs->kr, 3, NULL, gsz, lsz, 0, NULL, NULL);
    if (err != CL_SUCCESS) return kp__fail(ctx, KP_ERR_INTERNAL, "OpenCL: launching kp_reduce failed (%d)", (int)err);
    if (split) {
        rs->km = rt.cl.CreateKernel(p, "kp_merge", &err);
        if (!rs->km) return kp__fail(ctx, KP_ERR_INTERNAL, "OpenCL: clCreateKernel(kp_merge) failed (%d)", (int)err);
        const cl_mem mbufs[4] = {outs[2], outs[3], outs[0], outs[1]};
        const int64_t msizes[3] = {job->nrows, nchunks, (int64_t)nout};
        kp__gpu_merge_args(&ka, mbufs, sizeof(cl_mem), msizes);
        if ((st = set_args(ctx, rs->km, &ka, "kp_merge")) != KP_OK) return st;
        size_t l1 = 64, g1 = (nout + 63) / 64 * 64;
        err = rt.cl.EnqueueNDRangeKernel(rt.queue, rs->km, 1, NULL, &g1, &l1, 0, NULL, NULL);
        if (err != CL_SUCCESS) return kp__fail(ctx, KP_ERR_INTERNAL, "OpenCL: launching kp_merge failed (%d)", (int)err);
    }
    /* Read back and scatter into the caller's (strided) outputs. */
    for (int which = 0; which < 2; which++) {
        int dim = which ? info.out_idx_dim : info.out_dim;
        const kp_job_arg *o = which ? &job->out_idx : &job->out;
        if (!dim || !o->base) continue;
        size_t e = which ? 8 : esz, bytes = nout * (size_t)dim * e;
        char *h = kp__alloc(ctx, bytes);
        if (!h) return kp__fail(ctx, KP_ERR_OOM, "out of memory reading the OpenCL output");
        err = rt.cl.EnqueueReadBuffer(rt.queue, outs[which], CL_TRUE, 0, bytes, h, 0, NULL, NULL);
        if (err == CL_SUCCESS) kp__gpu_unpack_out(job, o, h, dim, e);
        kp__free(ctx, h);
        if (err != CL_SUCCESS) return kp__fail(ctx, KP_ERR_INTERNAL, "OpenCL: reading the output failed (%d)", (int)err);
    }
    return KP_OK;
}

static kp_status opencl_run(kp_context *ctx, const kp_job *job) {
    pthread_mutex_lock(&rt.lock);
    kp_status st = runtime_init();
    if (st != KP_OK) {
        pthread_mutex_unlock(&rt.lock);
        return kp__fail(ctx, st, "%s", rt.why);
    }
    run_state rs;
    memset(&rs, 0, sizeof rs);
    st = run_locked(ctx, job, &rs);
    if (rt.queue) rt.cl.Finish(rt.queue);
    for (int k = 0; k < rs.nmem; k++) rt.cl.ReleaseMemObject(rs.mem[k]);
    if (rs.kr) rt.cl.ReleaseKernel(rs.kr);
    if (rs.km) rt.cl.ReleaseKernel(rs.km);
    for (int k = 0; k < rs.nhost; k++) kp__free(ctx, rs.host[k]);
    pthread_mutex_unlock(&rt.lock);
    return st;
}

const kp_engine_ops kp__engine_opencl = {
    .name = "OpenCL",
    .devices = KP_ENGINE_READS(KP_DEVICE_CPU),
    .available = opencl_available,
    .run = opencl_run,
};
