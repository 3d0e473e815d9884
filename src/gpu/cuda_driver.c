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

/* One entry point of a function table (cuda_driver.h's entry lists): where
 * its pointer goes, its names, its group (0: required). */
typedef struct entry {
    size_t off;
    const char *name, *alt;
    int group;
} entry;

/* Fills table from lib (what: the library, for the message). 0 when a
 * required entry is missing, with the reason in why; an optional group with a
 * missing entry is left all NULL. */
static int resolve(void *lib, void *table, const entry *e, size_t n, const char *what, char *why, size_t size) {
    char *base = table;
    unsigned missing = 0; /* optional groups with a missing entry */
    for (size_t k = 0; k < n; k++) {
        void *p = sym(lib, e[k].name, e[k].alt);
        if (!p && !e[k].group) {
            snprintf(why, size, "%s lacks %s (too old?)", what, e[k].name);
            return 0;
        }
        if (!p) missing |= 1u << e[k].group;
        memcpy(base + e[k].off, &p, sizeof p);
    }
    for (size_t k = 0; k < n; k++)
        if (missing >> e[k].group & 1u) memset(base + e[k].off, 0, sizeof(void *));
    return 1;
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
#define DRIVER_ENTRY(field, params, name, alt, group) {offsetof(kp_cuda_driver, field), name, alt, group},
    static const entry entries[] = {KP_CUDA_DRIVER_ENTRIES(DRIVER_ENTRY)};
#undef DRIVER_ENTRY
    if (!resolve(lib, c, entries, sizeof entries / sizeof entries[0], "no CUDA device: the CUDA driver", drv.l.why,
                 sizeof drv.l.why))
        return NULL;
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
#define NVRTC_ENTRY(ret, field, params, name, group) {offsetof(kp_nvrtc_api, field), name, NULL, group},
    static const entry entries[] = {KP_NVRTC_ENTRIES(NVRTC_ENTRY)};
#undef NVRTC_ENTRY
    if (!resolve(lib, n, entries, sizeof entries / sizeof entries[0], "the NVRTC library", nvl.l.why, sizeof nvl.l.why))
        return NULL;
    if (n->Version(&n->major, &n->minor) != KP_NVRTC_SUCCESS) {
        snprintf(nvl.l.why, sizeof nvl.l.why, "nvrtcVersion failed");
        return NULL;
    }
    return n;
}

static const void *load_nvrtc_table(void) { return load_nvrtc(); }

const kp_nvrtc_api *kp__nvrtc_api(const char **why) { return load_once(&nvl.l, load_nvrtc_table, why); }
