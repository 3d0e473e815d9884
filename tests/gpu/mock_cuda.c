/*
 * mock_cuda.c — a fake libcuda.so.1 for test_gpu_cuda_mock: one "device"
 * (compute capability 9.0) whose memory is host memory and whose kernel
 * launches are recorded, not run. It lets the CUDA engine's host side (module
 * loading of real NVRTC output, pointer checks, temporaries, parameter
 * marshaling, grid shapes, stream-ordered frees) execute, under the
 * sanitizers too, on machines without a GPU. It checks nothing about results.
 * The stream of every launch and stream-ordered memory operation is recorded
 * too ("op@stream;", mock_cuda_streams), so tests can check that the user's
 * stream is the one used (the streams it creates are 0x5eed, which no test passes).
 * MOCK_CUDA_POOLS=0 makes the device lack memory pools (cuMemAlloc path).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;

#define MAXA 4096
static void *allocs[MAXA];
static size_t sizes[MAXA];
static int nalloc_live;
static char launches[16384];
static char streams[16384];
static int nlaunch;

/* The record of launches, "name gx,gy,gz bx;" each, of the streams of launches
 * and stream-ordered memory operations, "op@stream;" each (stream in hex), and
 * the live allocations. */
const char *mock_cuda_launches(void) { return launches; }
const char *mock_cuda_streams(void) { return streams; }
int mock_cuda_live_allocations(void) { return nalloc_live; }
void mock_cuda_reset(void) {
    launches[0] = 0;
    streams[0] = 0;
    nlaunch = 0;
}
static void note_stream(const char *op, const void *s) {
    size_t n = strlen(streams);
    snprintf(streams + n, sizeof streams - n, "%s@%lx;", op, (unsigned long)(uintptr_t)s);
}

CUresult cuInit(unsigned f) { return f == 0 ? 0 : 1; }
CUresult cuDriverGetVersion(int *v) { *v = 13000; return 0; }
CUresult cuDeviceGetCount(int *n) { *n = 1; return 0; }
CUresult cuDeviceGet(int *d, int o) { *d = o; return o == 0 ? 0 : 101; }
CUresult cuDeviceGetAttribute(int *v, int attr, int dev) {
    (void)dev;
    const char *pools = getenv("MOCK_CUDA_POOLS");
    switch (attr) {
    case 75: *v = 9; break;
    case 76: *v = 0; break;
    case 16: *v = 4; break;
    case 13: *v = 1000000; break;
    case 115: *v = pools && *pools == '0' ? 0 : 1; break;
    default: *v = 0;
    }
    return 0;
}
CUresult cuDeviceGetName(char *s, int n, int d) { (void)d; snprintf(s, (size_t)n, "mock device"); return 0; }
CUresult cuDevicePrimaryCtxRetain(void **c, int d) { (void)d; *c = (void *)(uintptr_t)0x1234; return 0; }
CUresult cuCtxPushCurrent_v2(void *c) { return c ? 0 : 1; }
CUresult cuCtxPopCurrent_v2(void **c) { *c = NULL; return 0; }
CUresult cuModuleLoadData(void **m, const void *img) {
    /* real NVRTC output: a cubin (ELF) or NUL-terminated PTX; or a built-in fatbin */
    static const unsigned char fatbin_magic[4] = {0x50, 0xED, 0x55, 0xBA}; /* 0xBA55ED50, little-endian */
    const char *reject = getenv("MOCK_CUDA_REJECT_FATBIN"); /* a driver too old for the built-in kernels */
    if (memcmp(img, fatbin_magic, 4) == 0 && reject && *reject == '1') return 222; /* UNSUPPORTED_PTX_VERSION */
    if (memcmp(img, "\177ELF", 4) != 0 && memcmp(img, fatbin_magic, 4) != 0 && !strstr((const char *)img, ".entry"))
        return 200; /* INVALID_IMAGE */
    *m = (void *)(uintptr_t)0x5678;
    return 0;
}
CUresult cuModuleGetFunction(void **f, void *m, const char *name) {
    (void)m;
    static char names[64][32];
    static int n;
    for (int k = 0; k < n; k++)
        if (strcmp(names[k], name) == 0) { *f = names[k]; return 0; }
    if (n == 64) return 1;
    snprintf(names[n], sizeof names[n], "%s", name);
    *f = names[n++];
    return 0;
}
CUresult cuFuncGetAttribute(int *v, int attr, void *f) { (void)attr; (void)f; *v = 1024; return 0; }
static CUresult alloc(CUdeviceptr *p, size_t n) {
    for (int k = 0; k < MAXA; k++)
        if (!allocs[k]) {
            allocs[k] = calloc(1, n);
            sizes[k] = n;
            *p = (CUdeviceptr)(uintptr_t)allocs[k];
            nalloc_live++;
            return allocs[k] ? 0 : 2;
        }
    return 2;
}
static CUresult release(CUdeviceptr p) {
    for (int k = 0; k < MAXA; k++)
        if (allocs[k] && (CUdeviceptr)(uintptr_t)allocs[k] == p) {
            free(allocs[k]);
            allocs[k] = NULL;
            nalloc_live--;
            return 0;
        }
    return 1;
}
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) { return alloc(p, n); }
CUresult cuMemFree_v2(CUdeviceptr p) { return release(p); }
CUresult cuMemAllocAsync(CUdeviceptr *p, size_t n, void *s) {
    note_stream("alloc", s);
    return alloc(p, n);
}
CUresult cuMemFreeAsync(CUdeviceptr p, void *s) {
    note_stream("free", s);
    return release(p);
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *h, size_t n, void *s) {
    note_stream("htod", s);
    memcpy((void *)(uintptr_t)d, h, n);
    return 0;
}
CUresult cuMemcpyDtoHAsync_v2(void *h, CUdeviceptr d, size_t n, void *s) {
    note_stream("dtoh", s);
    memcpy(h, (const void *)(uintptr_t)d, n);
    return 0;
}
CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shm, void *s, void **params, void **extra) {
    (void)by, (void)bz, (void)shm, (void)extra;
    if (!params || !gx || !gy || !gz || !bx || bx > 1024) return 1; /* CUDA_ERROR_INVALID_VALUE */
    note_stream((const char *)f, s);
    size_t n = strlen(launches);
    snprintf(launches + n, sizeof launches - n, "%s %u,%u,%u %u;", (const char *)f, gx, gy, gz, bx);
    nlaunch++;
    return 0;
}
CUresult cuStreamSynchronize(void *s) { (void)s; return 0; }
CUresult cuStreamCreate(void **s, unsigned f) { (void)f; *s = (void *)(uintptr_t)0x5eed; return 0; }
CUresult cuStreamDestroy_v2(void *s) { (void)s; return 0; }
CUresult cuPointerGetAttribute(void *v, int attr, CUdeviceptr p) {
    if (attr != 9) return 1;
    for (int k = 0; k < MAXA; k++)
        if (allocs[k] && p >= (CUdeviceptr)(uintptr_t)allocs[k] && p < (CUdeviceptr)(uintptr_t)allocs[k] + sizes[k] + 1) {
            *(int *)v = 0;
            return 0;
        }
    return 1; /* CUDA_ERROR_INVALID_VALUE: not ours */
}
CUresult cuEventCreate(void **e, unsigned f) { (void)f; *e = (void *)(uintptr_t)1; return 0; }
CUresult cuEventRecord(void *e, void *s) { (void)e; (void)s; return 0; }
CUresult cuEventSynchronize(void *e) { (void)e; return 0; }
CUresult cuEventElapsedTime(float *ms, void *a, void *b) { (void)a; (void)b; *ms = 1; return 0; }
CUresult cuEventDestroy_v2(void *e) { (void)e; return 0; }
CUresult cuGetErrorName(CUresult r, const char **s) { *s = r == 2 ? "CUDA_ERROR_OUT_OF_MEMORY" : "CUDA_ERROR_MOCK"; return 0; }
CUresult cuGetErrorString(CUresult r, const char **s) { (void)r; *s = "mock error"; return 0; }
