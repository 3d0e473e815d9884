/* nvrtc_check.c — see nvrtc_check.h. */
#include "nvrtc_check.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct _nvrtcProgram *nvrtcProgram;
typedef int (*create_fn)(nvrtcProgram *, const char *, const char *, int, const char *const *, const char *const *);
typedef int (*compile_fn)(nvrtcProgram, int, const char *const *);
typedef int (*logsize_fn)(nvrtcProgram, size_t *);
typedef int (*getlog_fn)(nvrtcProgram, char *);
typedef int (*destroy_fn)(nvrtcProgram *);

static struct {
    int tried, ok;
    char why[256];
    create_fn create;
    compile_fn compile;
    logsize_fn logsize;
    getlog_fn getlog;
    destroy_fn destroy;
} nv;

static void load(void) {
    if (nv.tried) return;
    nv.tried = 1;
    const char *env = getenv("KP_NVRTC_LIBRARY");
    const char *names[] = {env, "libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "/usr/local/cuda/lib64/libnvrtc.so",
                           "/usr/local/cuda/lib/libnvrtc.so"};
    void *lib = NULL;
    for (size_t k = 0; k < sizeof names / sizeof names[0] && !lib; k++)
        if (names[k] && *names[k]) lib = dlopen(names[k], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(nv.why, sizeof nv.why, "libnvrtc not found (set KP_NVRTC_LIBRARY): %s", dlerror());
        return;
    }
    *(void **)&nv.create = dlsym(lib, "nvrtcCreateProgram");
    *(void **)&nv.compile = dlsym(lib, "nvrtcCompileProgram");
    *(void **)&nv.logsize = dlsym(lib, "nvrtcGetProgramLogSize");
    *(void **)&nv.getlog = dlsym(lib, "nvrtcGetProgramLog");
    *(void **)&nv.destroy = dlsym(lib, "nvrtcDestroyProgram");
    if (!nv.create || !nv.compile || !nv.logsize || !nv.getlog || !nv.destroy) {
        snprintf(nv.why, sizeof nv.why, "libnvrtc lacks the nvrtc* entry points");
        return;
    }
    nv.ok = 1;
}

int kpt_nvrtc_available(const char **why) {
    load();
    if (why) *why = nv.ok ? "" : nv.why;
    return nv.ok;
}

int kpt_nvrtc_compile(const char *src, const char *name, const char *arch, char **log) {
    if (log) *log = NULL;
    load();
    if (!nv.ok) return -1;
    nvrtcProgram p = NULL;
    if (nv.create(&p, src, name, 0, NULL, NULL) != 0) return 1;
    char opt_arch[64];
    snprintf(opt_arch, sizeof opt_arch, "--gpu-architecture=%s", arch);
    const char *opts[] = {opt_arch, "--std=c++17"};
    int rc = nv.compile(p, 2, opts);
    size_t n = 0;
    if (log && nv.logsize(p, &n) == 0 && n > 1) {
        *log = malloc(n + 1);
        if (*log && nv.getlog(p, *log) != 0) (*log)[0] = 0;
    }
    nv.destroy(&p);
    return rc == 0 ? 0 : 1;
}
