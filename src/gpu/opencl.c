/*
 * opencl.c — the OpenCL engine: generated OpenCL C (codegen.c) run on the first
 * OpenCL device.
 *
 * libOpenCL.so.1 is loaded at run time (dlopen; $KP_OPENCL_LIBRARY overrides
 * the name), so libkp builds without OpenCL headers or libraries and reports
 * "no OpenCL platform" when there is none. The few OpenCL types and constants
 * used are declared here (values from the Khronos headers).
 *
 * A call runs through the GPU host loop (host_loop.c): this file is the
 * OpenCL device table under it (programs built and cached by source text and
 * build options for the life of the process, buffers, launches, reads).
 * Arguments are packed on the host into contiguous (batch, rows, dim) buffers
 * and outputs scattered back into the caller's strided arrays.
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
#include "gpu/host_loop.h"
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
    cl_int (*EnqueueWriteBuffer)(cl_command_queue, cl_mem, cl_uint, size_t, size_t, const void *, cl_uint,
                                 const cl_event *, cl_event *);
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
    SYM(EnqueueWriteBuffer, "clEnqueueWriteBuffer")
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

/* ------------------------------------------------------------ the device table (host_loop.h) */

/* One call's buffers and kernels, released after it. Called with rt.lock held. */
typedef struct ocl_call {
    kp_context *ctx;
    cl_mem mem[KP_MAX_ARGS + 8];
    int nmem;
    cl_kernel kr, km;
} ocl_call;

static kp_status op_load(void *self, const char *src, kp_gpu_kernels *k) {
    ocl_call *oc = self;
    cl_program p = NULL;
    kp_status st = get_program(oc->ctx, src, &p);
    if (st != KP_OK) return st;
    cl_int err = 0;
    oc->kr = rt.cl.CreateKernel(p, "kp_reduce", &err);
    if (!oc->kr) return kp__fail(oc->ctx, KP_ERR_INTERNAL, "OpenCL: clCreateKernel(kp_reduce) failed (%d)", (int)err);
    oc->km = rt.cl.CreateKernel(p, "kp_merge", &err);
    if (!oc->km) return kp__fail(oc->ctx, KP_ERR_INTERNAL, "OpenCL: clCreateKernel(kp_merge) failed (%d)", (int)err);
    k->reduce = oc->kr;
    k->merge = oc->km;
    size_t wg = 0;
    k->max_block = rt.cl.GetKernelWorkGroupInfo(oc->kr, rt.device, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg, NULL) ==
                                   CL_SUCCESS && wg < (size_t)INT32_MAX
                       ? (int)wg
                       : 0;
    return KP_OK;
}

static kp_status op_alloc(void *self, size_t bytes, kp_gpu_mem *m) {
    ocl_call *oc = self;
    if (oc->nmem == (int)(sizeof oc->mem / sizeof oc->mem[0]))
        return kp__fail(oc->ctx, KP_ERR_INTERNAL, "OpenCL engine: too many buffers");
    cl_int err = 0;
    cl_mem b = rt.cl.CreateBuffer(rt.context, CL_MEM_READ_WRITE, bytes ? bytes : 8, NULL, &err);
    if (!b) return kp__fail(oc->ctx, KP_ERR_OOM, "OpenCL: clCreateBuffer of %zu bytes failed (%d)", bytes, (int)err);
    oc->mem[oc->nmem++] = b;
    m->obj = b;
    return KP_OK;
}

static kp_status op_upload(void *self, kp_gpu_mem dst, const void *src, size_t bytes) {
    cl_int err = rt.cl.EnqueueWriteBuffer(rt.queue, (cl_mem)dst.obj, CL_TRUE, 0, bytes, src, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return kp__fail(((ocl_call *)self)->ctx, KP_ERR_INTERNAL, "OpenCL: writing an argument failed (%d)", (int)err);
    return KP_OK;
}

static kp_status op_download(void *self, void *dst, kp_gpu_mem src, size_t bytes) {
    cl_int err = rt.cl.EnqueueReadBuffer(rt.queue, (cl_mem)src.obj, CL_TRUE, 0, bytes, dst, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return kp__fail(((ocl_call *)self)->ctx, KP_ERR_INTERNAL, "OpenCL: reading the output failed (%d)", (int)err);
    return KP_OK;
}

static kp_status op_launch(void *self, void *kernel, const int64_t groups[3], int block, const kp_gpu_kernel_args *ka,
                           const char *name) {
    ocl_call *oc = self;
    cl_kernel k = kernel;
    for (int i = 0; i < ka->n; i++) {
        cl_int err = rt.cl.SetKernelArg(k, (cl_uint)i, ka->a[i].size, ka->a[i].at);
        if (err != CL_SUCCESS)
            return kp__fail(oc->ctx, KP_ERR_INTERNAL, "OpenCL: clSetKernelArg %d of %s failed (%d)", i, name, (int)err);
    }
    size_t gsz[3] = {(size_t)groups[0] * (size_t)block, (size_t)groups[1], (size_t)groups[2]};
    size_t lsz[3] = {(size_t)block, 1, 1};
    cl_int err = rt.cl.EnqueueNDRangeKernel(rt.queue, k, 3, NULL, gsz, lsz, 0, NULL, NULL);
    if (err != CL_SUCCESS) return kp__fail(oc->ctx, KP_ERR_INTERNAL, "OpenCL: launching %s failed (%d)", name, (int)err);
    return KP_OK;
}

static kp_status op_release(void *self) {
    ocl_call *oc = self;
    if (rt.queue) rt.cl.Finish(rt.queue);
    for (int k = 0; k < oc->nmem; k++) rt.cl.ReleaseMemObject(oc->mem[k]);
    if (oc->kr) rt.cl.ReleaseKernel(oc->kr);
    if (oc->km) rt.cl.ReleaseKernel(oc->km);
    oc->nmem = 0;
    oc->kr = oc->km = NULL;
    return KP_OK;
}

/* Global sizes are size_t: no grid limit that a call reaches. */
static const kp_gpu_device_ops opencl_device = {
    .dialect = KP_GPU_OPENCL,
    .handle_size = sizeof(cl_mem),
    .max_grid_y = INT64_MAX,
    .max_grid_z = INT64_MAX,
    .load = op_load,
    .alloc = op_alloc,
    .upload = op_upload,
    .download = op_download,
    .launch = op_launch,
    .release = op_release,
};

/* ------------------------------------------------------------ run */

/* One job (partial: kp_plan_exec_partial's states), the runtime locked for the call. */
static kp_status run_job(kp_context *ctx, const kp_job *job, const kp_gpu_partial *partial) {
    pthread_mutex_lock(&rt.lock);
    kp_status st = runtime_init();
    if (st != KP_OK) {
        pthread_mutex_unlock(&rt.lock);
        return kp__fail(ctx, st, "%s", rt.why);
    }
    if (job->dtype == KP_FLOAT64 && !rt.fp64) {
        pthread_mutex_unlock(&rt.lock);
        return kp__fail(ctx, KP_ERR_UNSUPPORTED, "OpenCL device '%s' has no float64 (cl_khr_fp64)", rt.device_name);
    }
    ocl_call oc;
    memset(&oc, 0, sizeof oc);
    oc.ctx = ctx;
    /* Below 64 row blocks, the reduced axis is split over work-groups. */
    kp_gpu_device d = {&opencl_device, &oc, ctx, 64, 0, 0};
    st = kp__gpu_run(&d, job, partial);
    pthread_mutex_unlock(&rt.lock);
    return st;
}

static kp_status opencl_run(kp_context *ctx, const kp_job *job) { return run_job(ctx, job, NULL); }

static kp_status opencl_run_partial(kp_context *ctx, const kp_job *job, int64_t offset, void *sreal, int64_t *sidx) {
    kp_gpu_partial p = {offset, sreal, sidx};
    return run_job(ctx, job, &p);
}

const kp_engine_ops kp__engine_opencl = {
    .name = "OpenCL",
    .devices = KP_ENGINE_READS(KP_DEVICE_CPU),
    .available = opencl_available,
    .run = opencl_run,
    .run_partial = opencl_run_partial,
};
