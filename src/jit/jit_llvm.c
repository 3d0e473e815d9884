/* jit_llvm.c — loading libLLVM (see jit_llvm.h). */
#define _POSIX_C_SOURCE 200809L
#include "jit/jit_llvm.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kp_llvm_api kp__llvm;

#define KP_STR_(x) #x
#define KP_STR(x) KP_STR_(x)

/* A function of h by name into *slot (function pointers are not void *). */
static int sym(void *h, const char *name, void *slot, size_t size, char *msg, size_t msgsz) {
    void *p = dlsym(h, name);
    if (!p) {
        snprintf(msg, msgsz, "libLLVM lacks %s", name);
        return 0;
    }
    memcpy(slot, &p, size);
    return 1;
}

int kp__llvm_load(char *msg, size_t msgsz) {
    const char *path = getenv("KP_JIT_LLVM");
    void *h = dlopen(path && *path ? path : KP_LLVM_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!h && !(path && *path)) {
        const char *base = strrchr(KP_LLVM_LIBRARY, '/');
        h = dlopen(base ? base + 1 : KP_LLVM_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    }
    if (!h) {
        const char *e = dlerror();
        snprintf(msg, msgsz, "cannot load libLLVM (%s): %s", path && *path ? path : KP_LLVM_LIBRARY, e ? e : "");
        return 0;
    }
#define KP_LLVM_LOAD(f) \
    if (!sym(h, #f, &kp__llvm.f, sizeof kp__llvm.f, msg, msgsz)) return 0;
    KP_LLVM_FUNCS(KP_LLVM_LOAD)
#undef KP_LLVM_LOAD
    /* LLVMInitializeNativeTarget and ...AsmPrinter are inline in llvm-c/Target.h: their callees. */
    const char *init[] = {KP_STR(LLVM_NATIVE_TARGETINFO), KP_STR(LLVM_NATIVE_TARGET), KP_STR(LLVM_NATIVE_TARGETMC),
                          KP_STR(LLVM_NATIVE_ASMPRINTER)};
    for (size_t k = 0; k < sizeof init / sizeof *init; k++) {
        void (*fn)(void);
        if (!sym(h, init[k], &fn, sizeof fn, msg, msgsz)) return 0;
        fn();
    }
    return 1;
}
