/*
 * emul_nvrtc.c — a stand-in for libnvrtc.so (loaded through KP_NVRTC_LIBRARY)
 * that "compiles" libkp's generated CUDA C++ for the CPU: the source is built
 * with the host C++ compiler into a shared object, with cuda_on_cpu.h forced
 * in, and the object's bytes are the "CUBIN". mock_cuda.c recognizes such an
 * image (KP_EMUL_MAGIC), loads it and runs its kernels when they are launched.
 * Together they let the CUDA engine run end to end, with real results, on
 * machines without a GPU (tests/gpu/CMakeLists.txt: the *_cuda_emul tests).
 *
 * Compilation, per program:
 *   1. the inline PTX that libkp emits (KP_MATH_FAST's ex2.approx.ftz.f32) is
 *      replaced by its emulation; any other asm statement is a compile error;
 *   2. a preprocessing pass (KP_EMUL_SCAN: __global__ left in the text) lists
 *      the kernels, "__global__ void NAME(";
 *   3. a table of entry points, one per kernel (kp_emul_call unpacks the
 *      launch's parameter array by the kernel's own parameter types), and
 *      kp_emul_launch are appended, and the whole is compiled with -O1.
 * The compiler and the header are fixed at build time (KP_EMUL_CXX,
 * KP_EMUL_SHIM); the compiler's messages are the program log.
 * KP_EMUL_KEEP=1 keeps each program's build folder (source, object) and
 * prints its path, for debugging.
 */
#define _GNU_SOURCE /* mkdtemp */
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "emul_image.h"

extern char **environ;

typedef int nvrtcResult; /* 0 success, 6 compilation error, 1 out of memory, 3 invalid input */
typedef struct emul_program {
    char *src;
    char *log;
    unsigned char *image;
    size_t image_len;
} emul_program, *nvrtcProgram;

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0, *len = (size_t)n;
    return buf;
}

/* A growing text; oom is set, and later writes ignored, after a failed allocation. */
typedef struct text {
    char *s;
    size_t n, cap;
    int oom;
} text;

static void put(text *t, const char *s, size_t n) {
    if (t->oom) return;
    if (t->n + n + 1 > t->cap) {
        size_t cap = 2 * (t->n + n + 1);
        char *g = realloc(t->s, cap);
        if (!g) {
            t->oom = 1;
            return;
        }
        t->s = g, t->cap = cap;
    }
    memcpy(t->s + t->n, s, n);
    t->n += n;
    t->s[t->n] = 0;
}

static void putf(text *t, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) t->oom = 1; /* never for the short lines below */
    else put(t, buf, (size_t)n);
}

/* Replaces the inline PTX statements with their emulation; 0, or -1 (and why) for one it does not know. */
static int replace_asm(text *out, const char *src, char *why, size_t whysize) {
    static const struct { const char *ptx, *fn; } known[] = {
        {"ex2.approx.ftz.f32 %0, %1;", "kp_emul_ex2_approx_ftz"},
    };
    const size_t nknown = sizeof known / sizeof known[0];
    const char *p = src, *a;
    while ((a = strstr(p, "asm(")) != NULL) {
        /* the form libkp prints: asm("INSTR" : "=f"(OUT) : "f"(IN)); */
        char instr[64] = "", dst[64] = "", arg[64] = "";
        int used = 0;
        size_t k = nknown;
        if (sscanf(a, "asm(\"%63[^\"]\" : \"=f\"(%63[^)]) : \"f\"(%63[^)]));%n", instr, dst, arg, &used) == 3 && used)
            for (k = 0; k < nknown && strcmp(instr, known[k].ptx) != 0; k++) {}
        if (k == nknown) {
            snprintf(why, whysize, "emulator: no emulation for the inline PTX at '%.60s'", a);
            return -1;
        }
        put(out, p, (size_t)(a - p));
        putf(out, "%s = %s(%s);", dst, known[k].fn, arg);
        p = a + used;
    }
    put(out, p, strlen(p));
    return 0;
}

/* Runs argv[0] with stderr (and stdout) into log_path; 0 if it exited 0. */
static int run(char *const argv[], const char *log_path) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);
    pid_t pid;
    int st = -1;
    if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) == 0) waitpid(pid, &st, 0);
    posix_spawn_file_actions_destroy(&fa);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Appends the entry table: the source's namespaces opened for lookup, one entry per kernel of pre. */
static void entry_table(text *t, const char *src, const char *pre) {
    putf(t, "\n/* ---- emul_nvrtc.c: entry points */\n");
    for (const char *p = src; (p = strstr(p, "namespace ")) != NULL; p++) {
        char ns[64];
        if (sscanf(p, "namespace %63[A-Za-z0-9_] {", ns) == 1) putf(t, "namespace %s {} using namespace %s;\n", ns, ns);
    }
    text names = {0};
    for (const char *p = pre; (p = strstr(p, "__global__ void ")) != NULL; p++) {
        char name[128];
        if (sscanf(p, "__global__ void %127[A-Za-z0-9_]", name) != 1) continue;
        putf(t, "static void kp_emul_entry_%s(void **p) { kp_emul_call(&%s, p); }\n", name, name);
        putf(&names, "{\"%s\", kp_emul_entry_%s},\n", name, name);
    }
    putf(t, "static const kp_emul_kernel kp_emul_kernels[] = {\n");
    put(t, names.s ? names.s : "", names.n);
    t->oom |= names.oom;
    free(names.s);
    putf(t, "{NULL, NULL}};\n"
            "extern \"C\" __attribute__((visibility(\"default\"))) int kp_emul_launch(const char *name,\n"
            "    const unsigned grid[3], const unsigned block[3], void **params, char *err, size_t errsize) {\n"
            "  for (const kp_emul_kernel *k = kp_emul_kernels; k->name; k++)\n"
            "    if (strcmp(k->name, name) == 0) return kp_emul_run(k->entry, grid, block, params, err, errsize);\n"
            "  snprintf(err, errsize, \"no kernel '%%s' in this module\", name);\n"
            "  return -1;\n}\n");
}

static int write_file(const char *path, const text *t) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    size_t w = fwrite(t->s, 1, t->n, f);
    return fclose(f) == 0 && w == t->n ? 0 : -1;
}

static nvrtcResult compile(emul_program *p) {
    char dir[] = "/tmp/kp_emul_XXXXXX", cu[64], pre[64], so[64], log[64], why[160] = "";
    if (!mkdtemp(dir)) return 1;
    snprintf(cu, sizeof cu, "%s/k.cu", dir);
    snprintf(pre, sizeof pre, "%s/k.ii", dir);
    snprintf(so, sizeof so, "%s/k.so", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    nvrtcResult r = 6;
    text src = {0};
    char *pre_text = NULL, *bytes = NULL;
    size_t n = 0;
    char *scan[] = {KP_EMUL_CXX, "-std=c++17", "-E", "-P", "-DKP_EMUL_SCAN", "-include", KP_EMUL_SHIM,
                    "-x", "c++", cu, "-o", pre, NULL};
    char *build[] = {KP_EMUL_CXX, "-std=c++17", "-O1", "-fPIC", "-shared", "-fvisibility=hidden", "-w",
                     "-include", KP_EMUL_SHIM, "-x", "c++", cu, "-o", so, NULL};
    if (replace_asm(&src, p->src, why, sizeof why) == 0 && !src.oom && write_file(cu, &src) == 0 &&
        run(scan, log) == 0 && (pre_text = read_file(pre, &n)) != NULL) {
        entry_table(&src, p->src, pre_text);
        if (!src.oom && write_file(cu, &src) == 0 && run(build, log) == 0 && (bytes = read_file(so, &n)) != NULL &&
            (p->image = malloc(KP_EMUL_HEADER + n)) != NULL) {
            uint64_t len = n;
            memcpy(p->image, KP_EMUL_MAGIC, 8);
            memcpy(p->image + 8, &len, 8);
            memcpy(p->image + KP_EMUL_HEADER, bytes, n);
            p->image_len = KP_EMUL_HEADER + n;
            r = 0;
        }
    }
    free(p->log);
    p->log = why[0] ? strdup(why) : read_file(log, &n);
    if (!p->log) p->log = strdup(r == 0 ? "" : "emulator: compilation failed");
    free(src.s);
    free(pre_text);
    free(bytes);
    const char *keep = getenv("KP_EMUL_KEEP"); /* debugging: keep the build folder, say where */
    if (keep && *keep == '1') fprintf(stderr, "emul_nvrtc: kept %s\n", dir);
    else unlink(cu), unlink(pre), unlink(so), unlink(log), rmdir(dir);
    return r;
}

/* ------------------------------------------------------------ the NVRTC API libkp loads */

/* "NVRTC 0.H", H a hash of the header and the compiler's path: libkp keys its
 * kernel cache by the NVRTC version, so images of another header or compiler
 * (or of a real NVRTC) are never taken for these. */
nvrtcResult nvrtcVersion(int *major, int *minor) {
    size_t n = 0;
    char *shim = read_file(KP_EMUL_SHIM, &n);
    if (!shim) return 3;
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t k = 0; k < n; k++) h = (h ^ (unsigned char)shim[k]) * 16777619u;
    for (const char *c = KP_EMUL_CXX; *c; c++) h = (h ^ (unsigned char)*c) * 16777619u;
    free(shim);
    *major = 0;
    *minor = (int)(h & 0x7fffffff);
    return 0;
}
nvrtcResult nvrtcCreateProgram(nvrtcProgram *prog, const char *src, const char *name, int nh, const char *const *h,
                               const char *const *hn) {
    (void)name, (void)nh, (void)h, (void)hn;
    emul_program *p = calloc(1, sizeof *p);
    if (!p || !(p->src = strdup(src))) {
        free(p);
        return 1;
    }
    *prog = p;
    return 0;
}
nvrtcResult nvrtcCompileProgram(nvrtcProgram prog, int nopt, const char *const *opts) {
    int arch = 0;
    for (int k = 0; k < nopt; k++) arch |= strncmp(opts[k], "--gpu-architecture=", 19) == 0;
    if (!arch) return 3; /* libkp always names its target */
    return compile(prog);
}
nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram prog, size_t *n) {
    *n = strlen(prog->log ? prog->log : "") + 1;
    return 0;
}
nvrtcResult nvrtcGetProgramLog(nvrtcProgram prog, char *log) {
    strcpy(log, prog->log ? prog->log : "");
    return 0;
}
nvrtcResult nvrtcGetCUBINSize(nvrtcProgram prog, size_t *n) {
    *n = prog->image_len;
    return prog->image ? 0 : 3;
}
nvrtcResult nvrtcGetCUBIN(nvrtcProgram prog, char *buf) {
    if (!prog->image) return 3;
    memcpy(buf, prog->image, prog->image_len);
    return 0;
}
/* PTX is what libkp asks for when the device's architecture is not a cubin target; the emulator has one kind of image. */
nvrtcResult nvrtcGetPTXSize(nvrtcProgram prog, size_t *n) { return nvrtcGetCUBINSize(prog, n); }
nvrtcResult nvrtcGetPTX(nvrtcProgram prog, char *buf) { return nvrtcGetCUBIN(prog, buf); }
nvrtcResult nvrtcDestroyProgram(nvrtcProgram *prog) {
    if (prog && *prog) {
        free((*prog)->src);
        free((*prog)->log);
        free((*prog)->image);
        free(*prog);
        *prog = NULL;
    }
    return 0;
}
const char *nvrtcGetErrorString(nvrtcResult r) {
    return r == 0 ? "NVRTC_SUCCESS" : r == 6 ? "NVRTC_ERROR_COMPILATION" : r == 1 ? "NVRTC_ERROR_OUT_OF_MEMORY"
                                                                        : "NVRTC_ERROR_INVALID_INPUT";
}
