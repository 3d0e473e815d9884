/*
 * mock_cuda.c — a fake libcuda.so.1 for test_gpu_cuda_mock: one "device"
 * (compute capability 9.0) whose memory is host memory and whose kernel
 * launches are recorded, not run. It lets the CUDA engine's host side (module
 * loading of real NVRTC output, pointer checks, temporaries, parameter
 * marshaling, grid shapes, stream-ordered frees) execute, under the
 * sanitizers too, on machines without a GPU. With real images it checks
 * nothing about results; images of the CUDA emulator (emul/emul_nvrtc.c,
 * loaded as NVRTC) are shared objects whose kernels it runs on the CPU, so
 * the engine's results can be checked too.
 * The stream of every launch and stream-ordered memory operation is recorded
 * too ("op@stream;", mock_cuda_streams), so tests can check that the user's
 * stream is the one used (the streams it creates are 0x5eed, which no test passes).
 * MOCK_CUDA_POOLS=0 makes the device lack memory pools (cuMemAlloc path).
 * MOCK_CUDA_DEVICES=N gives N devices (default 1): memory belongs to the
 * device whose context was current when it was allocated (cuPointerGetAttribute
 * answers it), and an emulated kernel launched with another device's context
 * current than the one its module was loaded under fails, as on a real driver.
 */
#define _GNU_SOURCE /* mkstemp */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "emul/emul_image.h"

typedef int CUresult;
typedef unsigned long long CUdeviceptr;

#define MAXA 4096
static void *allocs[MAXA]; /* buffers as handed out, their sizes, and their mappings */
static size_t sizes[MAXA];
static void *bases[MAXA];
static size_t spans[MAXA];
static int devs[MAXA]; /* the device whose context was current at the allocation */
static int nalloc_live;
static char launches[16384];
static char streams[16384];
static int nlaunch;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

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
/* MOCK_CUDA_DEVICES=N: N devices (1 to 4, default 1), each with its own primary context. */
static int device_count(void) {
    const char *e = getenv("MOCK_CUDA_DEVICES");
    int n = e ? atoi(e) : 1;
    return n < 1 ? 1 : n > 4 ? 4 : n;
}
#define CTX_BASE 0x1234 /* device d's primary context is CTX_BASE + d */
static _Thread_local int ctx_stack[16], ctx_depth; /* the thread's pushed contexts, as device ordinals */
/* The device of the current context (0 when none is current). */
static int current_device(void) { return ctx_depth ? ctx_stack[ctx_depth - 1] : 0; }

CUresult cuDeviceGetCount(int *n) { *n = device_count(); return 0; }
CUresult cuDeviceGet(int *d, int o) { *d = o; return o >= 0 && o < device_count() ? 0 : 101; }
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
CUresult cuDevicePrimaryCtxRetain(void **c, int d) { *c = (void *)(uintptr_t)(CTX_BASE + d); return 0; }
CUresult cuCtxPushCurrent_v2(void *c) {
    int d = (int)((uintptr_t)c - CTX_BASE);
    if (!c || d < 0 || d >= device_count() || ctx_depth == 16) return 1;
    ctx_stack[ctx_depth++] = d;
    return 0;
}
CUresult cuCtxPopCurrent_v2(void **c) {
    if (!ctx_depth) return 201; /* CUDA_ERROR_INVALID_CONTEXT */
    *c = (void *)(uintptr_t)(CTX_BASE + ctx_stack[--ctx_depth]);
    return 0;
}
/* A module: a real image (recorded launches only) or an emulator image (emul/), whose kernels run. */
typedef struct mock_module {
    kp_emul_launch_fn launch; /* NULL: launches are recorded, not run */
    int device;               /* the device whose context was current when it was loaded (emulator images) */
} mock_module;
/* A function: its name first, so that a handle reads as the kernel's name. */
typedef struct mock_function {
    char name[32];
    mock_module *module;
} mock_function;
static mock_module real_module;

/* Loads an emulator image's shared object through a file of a name of its own
 * (dlopen returns the library already loaded under a name it has seen, so a
 * reused /proc/self/fd/N would not do); the mapping outlives the file. */
static CUresult load_emulated(mock_module **m, const unsigned char *img) {
    uint64_t len;
    memcpy(&len, img + 8, 8);
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/kp_emul_module_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return 2;
    int written = (size_t)write(fd, img + KP_EMUL_HEADER, len) == len;
    close(fd);
    void *so = written ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
    unlink(path);
    mock_module *mod = calloc(1, sizeof *mod);
    if (!so || !mod || !(*(void **)(&mod->launch) = dlsym(so, "kp_emul_launch"))) {
        fprintf(stderr, "mock_cuda: cannot load an emulator image: %s\n", so ? "no kp_emul_launch" : dlerror());
        free(mod);
        return 200; /* INVALID_IMAGE */
    }
    mod->device = current_device();
    *m = mod; /* modules are never unloaded (libkp keeps them for the process) */
    return 0;
}

/* Says why a test died when an emulated kernel (or a copy) faults, then lets the fault end the process. */
static void on_fault(int sig) {
    static const char msg[] = "mock_cuda: segmentation fault while emulated kernels are loaded: most likely a kernel or "
                              "a copy went past the end of a device buffer (guard page)\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    signal(sig, SIG_DFL);
}

CUresult cuModuleLoadData(void **m, const void *img) {
    if (memcmp(img, KP_EMUL_MAGIC, 8) == 0) {
        signal(SIGSEGV, on_fault);
        return load_emulated((mock_module **)m, img);
    }
    /* real NVRTC output: a cubin (ELF) or NUL-terminated PTX; or a built-in fatbin */
    static const unsigned char fatbin_magic[4] = {0x50, 0xED, 0x55, 0xBA}; /* 0xBA55ED50, little-endian */
    const char *reject = getenv("MOCK_CUDA_REJECT_FATBIN"); /* a driver too old for the built-in kernels */
    if (memcmp(img, fatbin_magic, 4) == 0 && reject && *reject == '1') return 222; /* UNSUPPORTED_PTX_VERSION */
    if (memcmp(img, "\177ELF", 4) != 0 && memcmp(img, fatbin_magic, 4) != 0 && !strstr((const char *)img, ".entry"))
        return 200; /* INVALID_IMAGE */
    *m = &real_module;
    return 0;
}
CUresult cuModuleGetFunction(void **f, void *m, const char *name) {
    static mock_function fns[4096];
    static int n;
    pthread_mutex_lock(&lock);
    CUresult r = 0;
    int k = 0;
    while (k < n && !(fns[k].module == m && strcmp(fns[k].name, name) == 0)) k++;
    if (k == n && (n == 4096 || strlen(name) >= sizeof fns[k].name)) r = 1;
    else if (k == n) snprintf(fns[n].name, sizeof fns[n].name, "%s", name), fns[n++].module = m;
    if (!r) *f = &fns[k];
    pthread_mutex_unlock(&lock);
    return r;
}
CUresult cuFuncGetAttribute(int *v, int attr, void *f) { (void)attr; (void)f; *v = 1024; return 0; }
/* Device memory is host memory laid so that each buffer ends where a
 * PROT_NONE guard page begins: a kernel or a copy that reads or writes past
 * the end of a buffer faults at once instead of going unnoticed (with the
 * emulator, the tests' bounds check). The buffer keeps the alignment of its
 * size, so ending exactly at the guard costs no alignment. Memory is zeroed,
 * or with MOCK_CUDA_GARBAGE=1 all bytes 0xff (NaN in floats, -1 in integers),
 * as a real cuMemAlloc promises nothing: with the emulator, a kernel that
 * reads memory no one wrote spreads NaN into the results the tests compare. */
static CUresult alloc(CUdeviceptr *p, size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE), data = n ? (n + page - 1) / page * page : page;
    pthread_mutex_lock(&lock);
    int k = 0;
    while (k < MAXA && allocs[k]) k++;
    char *base = k < MAXA ? mmap(NULL, data + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                          : MAP_FAILED;
    if (base != MAP_FAILED && mprotect(base + data, page, PROT_NONE) == 0) {
        const char *garbage = getenv("MOCK_CUDA_GARBAGE");
        if (garbage && *garbage == '1') memset(base + data - n, 0xff, n);
        bases[k] = base;
        devs[k] = current_device();
        spans[k] = data + page;
        allocs[k] = base + data - n;
        sizes[k] = n;
        nalloc_live++;
        *p = (CUdeviceptr)(uintptr_t)allocs[k];
    } else if (base != MAP_FAILED) {
        munmap(base, data + page);
        base = MAP_FAILED;
    }
    pthread_mutex_unlock(&lock);
    return base != MAP_FAILED ? 0 : 2; /* CUDA_ERROR_OUT_OF_MEMORY */
}
static CUresult release(CUdeviceptr p) {
    pthread_mutex_lock(&lock);
    int k = 0;
    while (k < MAXA && !(allocs[k] && (CUdeviceptr)(uintptr_t)allocs[k] == p)) k++;
    if (k < MAXA) {
        munmap(bases[k], spans[k]);
        allocs[k] = NULL;
        nalloc_live--;
    }
    pthread_mutex_unlock(&lock);
    return k < MAXA ? 0 : 1;
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
    (void)shm, (void)extra;
    const mock_function *fn = f;
    if (!params || !gx || !gy || !gz || !bx || !by || !bz || (unsigned long)bx * by * bz > 1024)
        return 1; /* CUDA_ERROR_INVALID_VALUE */
    pthread_mutex_lock(&lock); /* the emulator runs one grid at a time (its shared memory is static) */
    note_stream(fn->name, s);
    size_t n = strlen(launches);
    snprintf(launches + n, sizeof launches - n, "%s %u,%u,%u %u;", fn->name, gx, gy, gz, bx);
    nlaunch++;
    int failed = 0;
    if (fn->module->launch && fn->module->device != current_device()) {
        fprintf(stderr, "mock_cuda: %s: its module was loaded on device %d, launched with device %d current\n",
                fn->name, fn->module->device, current_device());
        pthread_mutex_unlock(&lock);
        return 400; /* CUDA_ERROR_INVALID_HANDLE */
    }
    if (fn->module->launch) {
        const unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
        char err[256] = "";
        failed = fn->module->launch(fn->name, grid, block, params, err, sizeof err) != 0;
        if (failed) fprintf(stderr, "mock_cuda: %s: %s\n", fn->name, err);
    }
    pthread_mutex_unlock(&lock);
    return failed ? 719 : 0; /* CUDA_ERROR_LAUNCH_FAILED */
}
CUresult cuStreamSynchronize(void *s) { (void)s; return 0; }
CUresult cuStreamCreate(void **s, unsigned f) { (void)f; *s = (void *)(uintptr_t)0x5eed; return 0; }
CUresult cuStreamDestroy_v2(void *s) { (void)s; return 0; }
CUresult cuPointerGetAttribute(void *v, int attr, CUdeviceptr p) {
    if (attr != 9) return 1;
    for (int k = 0; k < MAXA; k++)
        if (allocs[k] && p >= (CUdeviceptr)(uintptr_t)allocs[k] && p < (CUdeviceptr)(uintptr_t)allocs[k] + sizes[k] + 1) {
            *(int *)v = devs[k];
            return 0;
        }
    return 1; /* CUDA_ERROR_INVALID_VALUE: not ours */
}
CUresult cuEventCreate(void **e, unsigned f) { (void)f; *e = (void *)(uintptr_t)1; return 0; }
CUresult cuEventRecord(void *e, void *s) { (void)e; (void)s; return 0; }
CUresult cuEventSynchronize(void *e) { (void)e; return 0; }
CUresult cuEventElapsedTime(float *ms, void *a, void *b) { (void)a; (void)b; *ms = 1; return 0; }
CUresult cuEventDestroy_v2(void *e) { (void)e; return 0; }
CUresult cuGetErrorName(CUresult r, const char **s) {
    *s = r == 1     ? "CUDA_ERROR_INVALID_VALUE"
         : r == 2   ? "CUDA_ERROR_OUT_OF_MEMORY"
         : r == 200 ? "CUDA_ERROR_INVALID_IMAGE"
         : r == 222 ? "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"
         : r == 719 ? "CUDA_ERROR_LAUNCH_FAILED" /* an emulated kernel failed: the mock said why on stderr */
                    : "CUDA_ERROR_MOCK";
    return 0;
}
CUresult cuGetErrorString(CUresult r, const char **s) { (void)r; *s = "mock error"; return 0; }
