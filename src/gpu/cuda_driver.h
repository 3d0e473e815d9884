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

typedef struct kp_cuda_driver {
    CUresult (*Init)(unsigned);
    CUresult (*DriverGetVersion)(int *);
    CUresult (*DeviceGetCount)(int *);
    CUresult (*DeviceGet)(CUdevice *, int);
    CUresult (*DeviceGetAttribute)(int *, int, CUdevice);
    CUresult (*DeviceGetName)(char *, int, CUdevice);
    CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*CtxPushCurrent)(CUcontext);
    CUresult (*CtxPopCurrent)(CUcontext *);
    CUresult (*ModuleLoadData)(CUmodule *, const void *);
    CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
    CUresult (*FuncGetAttribute)(int *, int, CUfunction);
    CUresult (*MemAlloc)(CUdeviceptr *, size_t);
    CUresult (*MemFree)(CUdeviceptr);
    CUresult (*MemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
    CUresult (*MemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
    CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,
                             void **, void **);
    CUresult (*StreamSynchronize)(CUstream);
    CUresult (*StreamCreate)(CUstream *, unsigned); /* tests and benchmarks */
    CUresult (*StreamDestroy)(CUstream);
    CUresult (*PointerGetAttribute)(void *, int, CUdeviceptr);
    CUresult (*EventCreate)(CUevent *, unsigned);
    CUresult (*EventRecord)(CUevent, CUstream);
    CUresult (*EventSynchronize)(CUevent);
    CUresult (*EventElapsedTime)(float *, CUevent, CUevent);
    CUresult (*EventDestroy)(CUevent);
    /* Optional (NULL when the driver lacks them): */
    CUresult (*MemAllocAsync)(CUdeviceptr *, size_t, CUstream); /* CUDA >= 11.2 */
    CUresult (*MemFreeAsync)(CUdeviceptr, CUstream);
    CUresult (*GetErrorName)(CUresult, const char **);
    CUresult (*GetErrorString)(CUresult, const char **);
} kp_cuda_driver;

typedef struct kp_nvrtc_api {
    nvrtcResult (*Version)(int *, int *);
    nvrtcResult (*CreateProgram)(nvrtcProgram *, const char *, const char *, int, const char *const *,
                                 const char *const *);
    nvrtcResult (*CompileProgram)(nvrtcProgram, int, const char *const *);
    nvrtcResult (*GetProgramLogSize)(nvrtcProgram, size_t *);
    nvrtcResult (*GetProgramLog)(nvrtcProgram, char *);
    nvrtcResult (*GetPTXSize)(nvrtcProgram, size_t *);
    nvrtcResult (*GetPTX)(nvrtcProgram, char *);
    nvrtcResult (*DestroyProgram)(nvrtcProgram *);
    const char *(*GetErrorString)(nvrtcResult);
    /* Optional: */
    nvrtcResult (*GetCUBINSize)(nvrtcProgram, size_t *); /* NVRTC >= 11.1 */
    nvrtcResult (*GetCUBIN)(nvrtcProgram, char *);
    nvrtcResult (*GetNumSupportedArchs)(int *); /* NVRTC >= 11.2 */
    nvrtcResult (*GetSupportedArchs)(int *);
    int major, minor; /* nvrtcVersion */
} kp_nvrtc_api;

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
