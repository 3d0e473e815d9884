/* cuda_driver.c — dlopen'ed CUDA driver and NVRTC tables; see cuda_driver.h. */
#include "gpu/cuda_driver.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* First of the names that resolves (versioned names first: the plain ones are
 * the CUDA 3 ABI that cuda.h no longer maps to). */
static void *sym(void *lib, const char *a, const char *b) {
    void *p = dlsym(lib, a);
    if (!p && b) p = dlsym(lib, b);
    return p;
}

/* A library loaded on first use, once per process (under lock). */
typedef struct lazy_lib {
    int tried;
    const void *ok; /* the function table, NULL if loading failed */
    char why[320];  /* why it failed */
} lazy_lib;

static const void *load_once(lazy_lib *l, const void *(*load)(void), const char **why) {
    pthread_mutex_lock(&lock);
    if (!l->tried) {
        l->tried = 1;
        l->ok = load();
    }
    const void *p = l->ok;
    pthread_mutex_unlock(&lock);
    if (why) *why = p ? "" : l->why;
    return p;
}

static struct {
    lazy_lib l;
    kp_cuda_driver cu;
} drv; /* libcuda */
static struct {
    lazy_lib l;
    kp_nvrtc_api nv;
} nvl; /* libnvrtc */

/* ------------------------------------------------------------ driver */

static const kp_cuda_driver *load_driver(void) {
    const char *path = getenv("KP_CUDA_LIBRARY");
    const char *name = path && *path ? path : "libcuda.so.1";
    void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(drv.l.why, sizeof drv.l.why, "no CUDA device: the CUDA driver (%.200s) is not installed", name);
        return NULL;
    }
    kp_cuda_driver *c = &drv.cu;
#define REQ(field, a, b)                                                                                   \
    if (!(*(void **)(&c->field) = sym(lib, a, b))) {                                                       \
        snprintf(drv.l.why, sizeof drv.l.why, "no CUDA device: the CUDA driver lacks %s (too old?)", a);       \
        return NULL;                                                                                       \
    }
    REQ(Init, "cuInit", NULL)
    REQ(DriverGetVersion, "cuDriverGetVersion", NULL)
    REQ(DeviceGetCount, "cuDeviceGetCount", NULL)
    REQ(DeviceGet, "cuDeviceGet", NULL)
    REQ(DeviceGetAttribute, "cuDeviceGetAttribute", NULL)
    REQ(DeviceGetName, "cuDeviceGetName", NULL)
    REQ(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", NULL)
    REQ(CtxPushCurrent, "cuCtxPushCurrent_v2", "cuCtxPushCurrent")
    REQ(CtxPopCurrent, "cuCtxPopCurrent_v2", "cuCtxPopCurrent")
    REQ(ModuleLoadData, "cuModuleLoadData", NULL)
    REQ(ModuleGetFunction, "cuModuleGetFunction", NULL)
    REQ(FuncGetAttribute, "cuFuncGetAttribute", NULL)
    REQ(MemAlloc, "cuMemAlloc_v2", NULL)
    REQ(MemFree, "cuMemFree_v2", NULL)
    REQ(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2", NULL)
    REQ(MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2", NULL)
    REQ(LaunchKernel, "cuLaunchKernel", NULL)
    REQ(StreamSynchronize, "cuStreamSynchronize", NULL)
    REQ(StreamCreate, "cuStreamCreate", NULL)
    REQ(StreamDestroy, "cuStreamDestroy_v2", "cuStreamDestroy")
    REQ(PointerGetAttribute, "cuPointerGetAttribute", NULL)
    REQ(EventCreate, "cuEventCreate", NULL)
    REQ(EventRecord, "cuEventRecord", NULL)
    REQ(EventSynchronize, "cuEventSynchronize", NULL)
    REQ(EventElapsedTime, "cuEventElapsedTime_v2", "cuEventElapsedTime")
    REQ(EventDestroy, "cuEventDestroy_v2", "cuEventDestroy")
#undef REQ
    *(void **)(&c->MemAllocAsync) = sym(lib, "cuMemAllocAsync", NULL);
    *(void **)(&c->MemFreeAsync) = sym(lib, "cuMemFreeAsync", NULL);
    if (!c->MemAllocAsync || !c->MemFreeAsync) c->MemAllocAsync = NULL, c->MemFreeAsync = NULL;
    *(void **)(&c->GetErrorName) = sym(lib, "cuGetErrorName", NULL);
    *(void **)(&c->GetErrorString) = sym(lib, "cuGetErrorString", NULL);
    CUresult r = c->Init(0);
    int n = 0;
    if (r != KP_CUDA_SUCCESS) {
        char e[160];
        snprintf(drv.l.why, sizeof drv.l.why, "no CUDA device: cuInit failed: %s", kp__cuda_strerror(c, r, e, sizeof e));
        return NULL;
    }
    if (c->DeviceGetCount(&n) != KP_CUDA_SUCCESS || n <= 0) {
        snprintf(drv.l.why, sizeof drv.l.why, "no CUDA device: the CUDA driver reports no usable device");
        return NULL;
    }
    return c; /* the library stays loaded for the process: its functions are in use */
}

static const void *load_driver_table(void) { return load_driver(); }

const kp_cuda_driver *kp__cuda_driver(const char **why) { return load_once(&drv.l, load_driver_table, why); }

const char *kp__cuda_strerror(const kp_cuda_driver *cu, CUresult r, char *buf, size_t size) {
    const char *name = NULL, *text = NULL;
    if (cu && cu->GetErrorName) cu->GetErrorName(r, &name);
    if (cu && cu->GetErrorString) cu->GetErrorString(r, &text);
    if (name && text) snprintf(buf, size, "%s (%s)", name, text);
    else snprintf(buf, size, "CUDA error %d", r);
    return buf;
}

/* ------------------------------------------------------------ devices */

static kp_cuda_device devices[KP_CUDA_MAX_DEVICES];
static int device_ready[KP_CUDA_MAX_DEVICES];

const kp_cuda_device *kp__cuda_device(int ordinal, char *why, size_t size) {
    const char *w = NULL;
    const kp_cuda_driver *cu = kp__cuda_driver(&w);
    if (!cu) {
        snprintf(why, size, "%s", w);
        return NULL;
    }
    int n = 0;
    cu->DeviceGetCount(&n);
    if (ordinal < 0 || ordinal >= n || ordinal >= KP_CUDA_MAX_DEVICES) {
        snprintf(why, size, "no CUDA device %d (this machine has %d)", ordinal, n);
        return NULL;
    }
    pthread_mutex_lock(&lock);
    kp_cuda_device *d = &devices[ordinal];
    CUresult r = KP_CUDA_SUCCESS;
    if (!device_ready[ordinal]) {
        memset(d, 0, sizeof *d);
        d->ordinal = ordinal;
        r = cu->DeviceGet(&d->dev, ordinal);
        if (r == KP_CUDA_SUCCESS) r = cu->DevicePrimaryCtxRetain(&d->ctx, d->dev);
        if (r == KP_CUDA_SUCCESS)
            r = cu->DeviceGetAttribute(&d->cc_major, KP_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d->dev);
        if (r == KP_CUDA_SUCCESS)
            r = cu->DeviceGetAttribute(&d->cc_minor, KP_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d->dev);
        if (r == KP_CUDA_SUCCESS) {
            /* informative only: failures leave zeros */
            cu->DeviceGetAttribute(&d->sm_count, KP_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, d->dev);
            cu->DeviceGetAttribute(&d->clock_khz, KP_CU_DEVICE_ATTRIBUTE_CLOCK_RATE, d->dev);
            int pools = 0;
            cu->DeviceGetAttribute(&pools, KP_CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, d->dev);
            d->mempools = pools && cu->MemAllocAsync;
            if (cu->DeviceGetName(d->name, (int)sizeof d->name - 1, d->dev) != KP_CUDA_SUCCESS) strcpy(d->name, "?");
            device_ready[ordinal] = 1;
        }
    }
    pthread_mutex_unlock(&lock);
    if (r != KP_CUDA_SUCCESS) {
        char e[160];
        snprintf(why, size, "CUDA device %d: initialization failed: %s", ordinal, kp__cuda_strerror(cu, r, e, sizeof e));
        return NULL;
    }
    return d;
}

/* ------------------------------------------------------------ NVRTC */

static const kp_nvrtc_api *load_nvrtc(void) {
    const char *env = getenv("KP_NVRTC_LIBRARY");
    const char *names[] = {env,
                           "libnvrtc.so",
                           "libnvrtc.so.13",
                           "libnvrtc.so.12",
                           "libnvrtc.so.11.2",
                           "libnvrtc.so.11",
                           "/usr/local/cuda/lib64/libnvrtc.so"};
    void *lib = NULL;
    for (size_t k = 0; k < sizeof names / sizeof names[0] && !lib; k++) {
        if (!names[k] || !*names[k]) continue;
        lib = dlopen(names[k], RTLD_NOW | RTLD_LOCAL);
        if (!lib && k == 0) break; /* an explicit library that fails is an error, not a hint */
    }
    if (!lib) {
        snprintf(nvl.l.why, sizeof nvl.l.why, "NVRTC (libnvrtc.so) not found: install the CUDA toolkit's NVRTC or set KP_NVRTC_LIBRARY");
        return NULL;
    }
    kp_nvrtc_api *n = &nvl.nv;
#define REQ(field, a)                                                                          \
    if (!(*(void **)(&n->field) = dlsym(lib, a))) {                                            \
        snprintf(nvl.l.why, sizeof nvl.l.why, "NVRTC library lacks %s", a);                        \
        return NULL;                                                                           \
    }
    REQ(Version, "nvrtcVersion")
    REQ(CreateProgram, "nvrtcCreateProgram")
    REQ(CompileProgram, "nvrtcCompileProgram")
    REQ(GetProgramLogSize, "nvrtcGetProgramLogSize")
    REQ(GetProgramLog, "nvrtcGetProgramLog")
    REQ(GetPTXSize, "nvrtcGetPTXSize")
    REQ(GetPTX, "nvrtcGetPTX")
    REQ(DestroyProgram, "nvrtcDestroyProgram")
    REQ(GetErrorString, "nvrtcGetErrorString")
#undef REQ
    *(void **)(&n->GetCUBINSize) = dlsym(lib, "nvrtcGetCUBINSize");
    *(void **)(&n->GetCUBIN) = dlsym(lib, "nvrtcGetCUBIN");
    if (!n->GetCUBINSize || !n->GetCUBIN) n->GetCUBINSize = NULL, n->GetCUBIN = NULL;
    *(void **)(&n->GetNumSupportedArchs) = dlsym(lib, "nvrtcGetNumSupportedArchs");
    *(void **)(&n->GetSupportedArchs) = dlsym(lib, "nvrtcGetSupportedArchs");
    if (!n->GetNumSupportedArchs || !n->GetSupportedArchs) n->GetNumSupportedArchs = NULL, n->GetSupportedArchs = NULL;
    if (n->Version(&n->major, &n->minor) != KP_NVRTC_SUCCESS) {
        snprintf(nvl.l.why, sizeof nvl.l.why, "nvrtcVersion failed");
        return NULL;
    }
    return n;
}

static const void *load_nvrtc_table(void) { return load_nvrtc(); }

const kp_nvrtc_api *kp__nvrtc_api(const char **why) { return load_once(&nvl.l, load_nvrtc_table, why); }
