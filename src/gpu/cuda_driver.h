/*
 * cuda_driver.h — the CUDA driver API and NVRTC, loaded at run time.
 *
 * libkp builds with no CUDA headers or libraries: the few types, constants
 * (values from cuda.h / nvrtc.h of CUDA 13, unchanged since CUDA 11) and entry
 * points it uses are declared here and resolved with dlopen/dlsym:
 *   libcuda.so.1 ($KP_CUDA_LIBRARY overrides), the versioned _v2 symbols that
 *     cuda.h maps the plain names to;
 *   libnvrtc ($KP_NVRTC_LIBRARY, else libnvrtc.so, .so.13, .so.12, .so.11 on
 *     the loader path, else the toolkit's /usr/local/cuda/lib64).
 * Both are loaded once per process (thread-safe) and never unloaded. This
 * module has no kp_context dependency, so tests and benchmarks can use it
 * to allocate device memory too.
 */
#ifndef KP_GPU_CUDA_DRIVER_H
#define KP_GPU_CUDA_DRIVER_H

#include <stddef.h>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct _nvrtcProgram *nvrtcProgram;
typedef int nvrtcResult;

#define KP_CUDA_SUCCESS 0
#define KP_CU_DEVICE_ATTRIBUTE_CLOCK_RATE 13
#define KP_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT 16
#define KP_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR 75
#define KP_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR 76
#define KP_CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED 115
#define KP_CU_POINTER_ATTRIBUTE_MEMORY_TYPE 2
#define KP_CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL 9
#define KP_CU_MEMORYTYPE_HOST 1
#define KP_CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK 0
#define KP_NVRTC_SUCCESS 0

/* The driver's entry points, each declared once: X(field, parameters, symbol,
 * older symbol or NULL, group). Every one returns CUresult. Group 0 is
 * required (the driver is unusable without it); the entries of a group > 0 are
 * optional and come all or none (NULL when the driver lacks one). */
#define KP_CUDA_DRIVER_ENTRIES(X)                                                                          \
    X(Init, (unsigned), "cuInit", NULL, 0)                                                                 \
    X(DriverGetVersion, (int *), "cuDriverGetVersion", NULL, 0)                                            \
    X(DeviceGetCount, (int *), "cuDeviceGetCount", NULL, 0)                                                \
    X(DeviceGet, (CUdevice *, int), "cuDeviceGet", NULL, 0)                                                \
    X(DeviceGetAttribute, (int *, int, CUdevice), "cuDeviceGetAttribute", NULL, 0)                         \
    X(DeviceGetName, (char *, int, CUdevice), "cuDeviceGetName", NULL, 0)                                  \
    X(DevicePrimaryCtxRetain, (CUcontext *, CUdevice), "cuDevicePrimaryCtxRetain", NULL, 0)                \
    X(CtxPushCurrent, (CUcontext), "cuCtxPushCurrent_v2", "cuCtxPushCurrent", 0)                           \
    X(CtxPopCurrent, (CUcontext *), "cuCtxPopCurrent_v2", "cuCtxPopCurrent", 0)                            \
    X(ModuleLoadData, (CUmodule *, const void *), "cuModuleLoadData", NULL, 0)                             \
    X(ModuleGetFunction, (CUfunction *, CUmodule, const char *), "cuModuleGetFunction", NULL, 0)           \
    X(FuncGetAttribute, (int *, int, CUfunction), "cuFuncGetAttribute", NULL, 0)                           \
    X(MemAlloc, (CUdeviceptr *, size_t), "cuMemAlloc_v2", NULL, 0)                                         \
    X(MemFree, (CUdeviceptr), "cuMemFree_v2", NULL, 0)                                                     \
    X(MemcpyHtoDAsync, (CUdeviceptr, const void *, size_t, CUstream), "cuMemcpyHtoDAsync_v2", NULL, 0)     \
    X(MemcpyDtoHAsync, (void *, CUdeviceptr, size_t, CUstream), "cuMemcpyDtoHAsync_v2", NULL, 0)           \
    X(LaunchKernel,                                                                                        \
      (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **, \
       void **),                                                                                           \
      "cuLaunchKernel", NULL, 0)                                                                           \
    X(StreamSynchronize, (CUstream), "cuStreamSynchronize", NULL, 0)                                       \
    X(StreamCreate, (CUstream *, unsigned), "cuStreamCreate", NULL, 0) /* tests and benchmarks */          \
    X(StreamDestroy, (CUstream), "cuStreamDestroy_v2", "cuStreamDestroy", 0)                               \
    X(PointerGetAttribute, (void *, int, CUdeviceptr), "cuPointerGetAttribute", NULL, 0)                   \
    X(EventCreate, (CUevent *, unsigned), "cuEventCreate", NULL, 0)                                        \
    X(EventRecord, (CUevent, CUstream), "cuEventRecord", NULL, 0)                                          \
    X(EventSynchronize, (CUevent), "cuEventSynchronize", NULL, 0)                                          \
    X(EventElapsedTime, (float *, CUevent, CUevent), "cuEventElapsedTime_v2", "cuEventElapsedTime", 0)     \
    X(EventDestroy, (CUevent), "cuEventDestroy_v2", "cuEventDestroy", 0)                                   \
    X(MemAllocAsync, (CUdeviceptr *, size_t, CUstream), "cuMemAllocAsync", NULL, 1) /* CUDA >= 11.2 */     \
    X(MemFreeAsync, (CUdeviceptr, CUstream), "cuMemFreeAsync", NULL, 1)                                    \
    X(GetErrorName, (CUresult, const char **), "cuGetErrorName", NULL, 2)                                  \
    X(GetErrorString, (CUresult, const char **), "cuGetErrorString", NULL, 3)

/* NVRTC's entry points: X(return type, field, parameters, symbol, group), groups as above. */
#define KP_NVRTC_ENTRIES(X)                                                                                \
    X(nvrtcResult, Version, (int *, int *), "nvrtcVersion", 0)                                             \
    X(nvrtcResult, CreateProgram,                                                                          \
      (nvrtcProgram *, const char *, const char *, int, const char *const *, const char *const *),         \
      "nvrtcCreateProgram", 0)                                                                             \
    X(nvrtcResult, CompileProgram, (nvrtcProgram, int, const char *const *), "nvrtcCompileProgram", 0)     \
    X(nvrtcResult, GetProgramLogSize, (nvrtcProgram, size_t *), "nvrtcGetProgramLogSize", 0)               \
    X(nvrtcResult, GetProgramLog, (nvrtcProgram, char *), "nvrtcGetProgramLog", 0)                         \
    X(nvrtcResult, GetPTXSize, (nvrtcProgram, size_t *), "nvrtcGetPTXSize", 0)                             \
    X(nvrtcResult, GetPTX, (nvrtcProgram, char *), "nvrtcGetPTX", 0)                                       \
    X(nvrtcResult, DestroyProgram, (nvrtcProgram *), "nvrtcDestroyProgram", 0)                             \
    X(const char *, GetErrorString, (nvrtcResult), "nvrtcGetErrorString", 0)                               \
    X(nvrtcResult, GetCUBINSize, (nvrtcProgram, size_t *), "nvrtcGetCUBINSize", 1) /* NVRTC >= 11.1 */     \
    X(nvrtcResult, GetCUBIN, (nvrtcProgram, char *), "nvrtcGetCUBIN", 1)                                   \
    X(nvrtcResult, GetNumSupportedArchs, (int *), "nvrtcGetNumSupportedArchs", 2) /* NVRTC >= 11.2 */      \
    X(nvrtcResult, GetSupportedArchs, (int *), "nvrtcGetSupportedArchs", 2)

#define KP_CUDA_DRIVER_FIELD(field, params, name, alt, group) CUresult(*field) params;
typedef struct kp_cuda_driver {
    KP_CUDA_DRIVER_ENTRIES(KP_CUDA_DRIVER_FIELD)
} kp_cuda_driver;
#undef KP_CUDA_DRIVER_FIELD

#define KP_NVRTC_FIELD(ret, field, params, name, group) ret(*field) params;
typedef struct kp_nvrtc_api {
    KP_NVRTC_ENTRIES(KP_NVRTC_FIELD)
    int major, minor; /* nvrtcVersion */
} kp_nvrtc_api;
#undef KP_NVRTC_FIELD

/* The driver table after a successful cuInit(0); NULL when libcuda.so.1 is
 * missing or cuInit fails, with a one-line reason in *why (static storage). */
const kp_cuda_driver *kp__cuda_driver(const char **why);
/* The NVRTC table; NULL with a reason when libnvrtc cannot be loaded. */
const kp_nvrtc_api *kp__nvrtc_api(const char **why);
/* "CUDA_ERROR_OUT_OF_MEMORY (out of memory)" or "CUDA error 2" into buf. */
const char *kp__cuda_strerror(const kp_cuda_driver *cu, CUresult r, char *buf, size_t size);

/* One device, initialized on first use and kept for the process: the
 * primary context is retained once and never released (releasing it would
 * destroy the caller's context state when they share it, e.g. PyTorch). */
typedef struct kp_cuda_device {
    int ordinal;
    CUdevice dev;
    CUcontext ctx;
    int cc_major, cc_minor;
    int sm_count, clock_khz;
    int mempools; /* cuMemAllocAsync usable */
    char name[128];
} kp_cuda_device;

#define KP_CUDA_MAX_DEVICES 64
/* Device `ordinal`, or NULL with a reason written into why. */
const kp_cuda_device *kp__cuda_device(int ordinal, char *why, size_t size);

#endif
