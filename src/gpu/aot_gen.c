/*
 * aot_gen.c — build-time tool: the ahead-of-time CUDA kernel table (aot.h).
 *
 *   kp_aot_gen --out DIR --jobs N --targets "sm_75 ... compute_75"
 *              [--nvrtc LIBNVRTC --nvrtc-arch compute_75] -- NVCC [nvcc flags ...]
 *
 * 1. Generates the CUDA source of every standard formula (aot_set.h) and of
 *    its built-in gradients, in float32 and float64, through the public API
 *    exactly as a user's program does at run time: a fresh context per
 *    forward formula, the forward parsed and lowered first, then its
 *    gradients in increasing argument order (pykp's backward order). The
 *    text does not depend on that history (kp__node_cmp orders nodes by
 *    structure, not creation; tests/gpu/test_gpu_aot.c checks other orders),
 *    but this is the sequence users run.
 * 2. Compiles each distinct source into a fatbin, at most N at a time, into
 *    DIR/cache/, named by the SHA-256 of (source, this tool's options): a
 *    rebuild only compiles what changed, and an interrupted build leaves no
 *    partial file (written to a temporary name, then renamed); files of
 *    kernels no longer generated are removed. With --nvrtc,
 *    the front end is NVRTC, in a child process (source -> PTX for
 *    --nvrtc-arch: the compiler the CUDA engine uses at run time, and about
 *    0.2 s instead of nvcc's 0.5 s, which preprocesses cuda_runtime.h for every
 *    kernel), then `NVCC flags -o X.fatbin X.ptx` (ptxas per target,
 *    fatbinary); without it, `NVCC flags -o X.fatbin X.cu`.
 * 3. Writes DIR/aot_blob.bin (the fatbins, 16-byte aligned) and DIR/aot_table.c
 *    (entries sorted by source digest, the blob included with the assembler's
 *    .incbin), each only when its content changed, so an unchanged table does
 *    not relink libkp.
 * Exit status 0 on success; on failure a message on stderr.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpu/aot_set.h"
#include "gpu/sha256.h"
#include "kp.h"

#define FATBIN_MAGIC 0xBA55ED50u

typedef struct kernel {
    char *source;
    size_t len;
    uint8_t digest[KP_SHA256_BYTES]; /* of the source: the lookup key */
    char cache[80];                  /* hex SHA-256 of (source, nvcc command): the cache file's name */
    char label[96];
    unsigned char *image;
    size_t size, offset;
} kernel;

typedef struct kernels {
    kernel *k;
    size_t n, cap;
} kernels;

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "kp_aot_gen: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

static void hex(const uint8_t *d, size_t n, char *out) {
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* ------------------------------------------------------------ 1. sources */

static void add_source(kernels *ks, kp_context *ctx, const kp_formula *f, kp_dtype dt, const char *label) {
    size_t need = 0;
    if (kp_formula_gpu_source(ctx, f, dt, KP_ENGINE_CUDA, NULL, 0, &need) != KP_OK) die("%s", kp_context_message(ctx));
    char *src = malloc(need + 1);
    if (!src) die("%s", "out of memory");
    kp_formula_gpu_source(ctx, f, dt, KP_ENGINE_CUDA, src, need + 1, NULL);
    uint8_t d[KP_SHA256_BYTES];
    kp__sha256(src, need, d);
    for (size_t i = 0; i < ks->n; i++)
        if (!memcmp(ks->k[i].digest, d, sizeof d)) { /* the same kernel reached another way */
            free(src);
            return;
        }
    if (ks->n == ks->cap) {
        ks->cap = ks->cap ? 2 * ks->cap : 256;
        ks->k = realloc(ks->k, ks->cap * sizeof *ks->k);
        if (!ks->k) die("%s", "out of memory");
    }
    kernel *k = &ks->k[ks->n++];
    memset(k, 0, sizeof *k);
    k->source = src;
    k->len = need;
    memcpy(k->digest, d, sizeof d);
    snprintf(k->label, sizeof k->label, "%s %s", label, dt == KP_FLOAT32 ? "float32" : "float64");
}

static void collect(kernels *ks) {
    static const kp_dtype dtypes[2] = {KP_FLOAT32, KP_FLOAT64};
    for (size_t i = 0; i < kp__aot_set_count(); i++) {
        kp_aot_formula af;
        kp__aot_set_get(i, &af);
        kp_context *ctx = NULL;
        kp_formula *f = NULL;
        if (kp_context_new(&ctx) != KP_OK) die("%s", "kp_context_new failed");
        if (kp_formula_parse(ctx, af.text, af.aliases, af.n_aliases, &f) != KP_OK) die("%s", kp_context_message(ctx));
        for (int t = 0; t < 2; t++)
            add_source(ks, ctx, f, dtypes[t], af.label);
        for (int q = 0; q < af.ngrads; q++) {
            int a = af.grads[q];
            kp_formula *g = NULL;
            if (kp_formula_grad(ctx, f, a, &g) != KP_OK) die("%s", kp_context_message(ctx));
            char label[96];
            snprintf(label, sizeof label, "%s, gradient %d", af.label, a);
            for (int t = 0; t < 2; t++)
                add_source(ks, ctx, g, dtypes[t], label);
            kp_formula_free(g);
        }
        kp_formula_free(f);
        kp_context_free(ctx);
    }
}

/* ------------------------------------------------------------ 2. nvcc */

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 1 << 16;
            unsigned char *q = realloc(buf, cap);
            if (!q) die("%s", "out of memory");
            buf = q;
        }
        size_t r = fread(buf + n, 1, cap - n, fp);
        n += r;
        if (r == 0) break;
    }
    fclose(fp);
    *size = n;
    return buf;
}

/* Writes data to path unless the file already holds exactly that. */
static void write_if_changed(const char *path, const void *data, size_t size) {
    size_t old_size = 0;
    unsigned char *old = read_file(path, &old_size);
    int same = old && old_size == size && !memcmp(old, data, size);
    free(old);
    if (same) return;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "wb");
    if (!fp || fwrite(data, 1, size, fp) != size || fclose(fp) != 0) die("cannot write %s", tmp);
    if (rename(tmp, path) != 0) die("cannot rename %s", tmp);
}

/* The few NVRTC entry points used (nvrtc.h), loaded with dlopen so the tool
 * builds without the CUDA headers. nvrtcResult is an int enum; 0 = success. */
typedef struct nvrtc_api {
    int (*create)(void **prog, const char *src, const char *name, int nheaders, const char *const *headers,
                  const char *const *include_names);
    int (*compile)(void *prog, int nopts, const char *const *opts);
    int (*ptx_size)(void *prog, size_t *size);
    int (*ptx)(void *prog, char *ptx);
    int (*log_size)(void *prog, size_t *size);
    int (*log)(void *prog, char *log);
} nvrtc_api;

static int load_nvrtc(nvrtc_api *api, const char *path) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) return 0;
    *(void **)&api->create = dlsym(lib, "nvrtcCreateProgram");
    *(void **)&api->compile = dlsym(lib, "nvrtcCompileProgram");
    *(void **)&api->ptx_size = dlsym(lib, "nvrtcGetPTXSize");
    *(void **)&api->ptx = dlsym(lib, "nvrtcGetPTX");
    *(void **)&api->log_size = dlsym(lib, "nvrtcGetProgramLogSize");
    *(void **)&api->log = dlsym(lib, "nvrtcGetProgramLog");
    return api->create && api->compile && api->ptx_size && api->ptx && api->log_size && api->log;
}

typedef struct options {
    const char *out, *targets, *nvrtc_lib, *nvrtc_arch;
    int jobs;
    char **nvcc; /* NULL-terminated: the nvcc command and its flags */
    nvrtc_api nvrtc;
    int use_nvrtc;
} options;

/* In the child: src -> PTX at ptx_path with NVRTC. Exits on failure. */
static void nvrtc_to_ptx(const options *o, const kernel *k, const char *ptx_path) {
    void *prog = NULL;
    char arch[64];
    snprintf(arch, sizeof arch, "-arch=%s", o->nvrtc_arch);
    const char *opts[1] = {arch};
    if (o->nvrtc.create(&prog, k->source, "kp_aot.cu", 0, NULL, NULL) != 0) {
        fprintf(stderr, "kp_aot_gen: nvrtcCreateProgram failed (%s)\n", k->label);
        _exit(1);
    }
    if (o->nvrtc.compile(prog, 1, opts) != 0) {
        size_t n = 0;
        o->nvrtc.log_size(prog, &n);
        char *log = malloc(n + 1);
        if (log && o->nvrtc.log(prog, log) == 0) fprintf(stderr, "%s\n", log);
        fprintf(stderr, "kp_aot_gen: NVRTC failed on %s\n", k->label);
        _exit(1);
    }
    size_t n = 0;
    o->nvrtc.ptx_size(prog, &n);
    char *ptx = malloc(n);
    if (!ptx || o->nvrtc.ptx(prog, ptx) != 0) _exit(1);
    size_t len = strnlen(ptx, n); /* the size counts the NUL */
    FILE *fp = fopen(ptx_path, "wb");
    if (!fp || fwrite(ptx, 1, len, fp) != len || fclose(fp) != 0) {
        fprintf(stderr, "kp_aot_gen: cannot write %s\n", ptx_path);
        _exit(1);
    }
}

typedef struct job {
    pid_t pid;
    kernel *k;
    char out[4200], tmp[4200];
} job;

static void start(job *j, kernel *k, const char *dir, const options *o) {
    char src[4200], ptx[4200];
    snprintf(src, sizeof src, "%s/%s.cu", dir, k->cache);
    snprintf(ptx, sizeof ptx, "%s/%s.ptx", dir, k->cache);
    snprintf(j->out, sizeof j->out, "%s/%s.fatbin", dir, k->cache);
    snprintf(j->tmp, sizeof j->tmp, "%s/%s.fatbin.tmp", dir, k->cache);
    write_if_changed(src, k->source, k->len); /* kept: what each image was compiled from */
    size_t n = 0;
    while (o->nvcc[n])
        n++;
    char **argv = calloc(n + 4, sizeof *argv);
    if (!argv) die("%s", "out of memory");
    for (size_t i = 0; i < n; i++)
        argv[i] = o->nvcc[i];
    argv[n] = "-o";
    argv[n + 1] = j->tmp;
    argv[n + 2] = o->use_nvrtc ? ptx : src;
    j->k = k;
    fflush(NULL);
    j->pid = fork();
    if (j->pid < 0) die("%s", "fork failed");
    if (j->pid == 0) {
        if (o->use_nvrtc) nvrtc_to_ptx(o, k, ptx);
        execv(argv[0], argv);
        fprintf(stderr, "kp_aot_gen: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    free(argv);
}

/* Waits for any running compile; removes it from run[0 .. *nrun). */
static void finish_one(job *run, int *nrun) {
    int status = 0;
    pid_t pid;
    while ((pid = waitpid(-1, &status, 0)) < 0)
        if (errno != EINTR) die("%s", "waitpid failed");
    int r = 0;
    while (r < *nrun && run[r].pid != pid)
        r++;
    if (r == *nrun) return; /* not ours */
    job *j = &run[r];
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "kp_aot_gen: compiling %s failed (%s)\n", j->tmp, j->k->label);
        exit(1);
    }
    if (rename(j->tmp, j->out) != 0) die("cannot rename %s", j->tmp);
    run[r] = run[--*nrun];
}

/* Compiles every kernel that has no cached fatbin, jobs at a time. */
static void compile_all(kernels *ks, const char *dir, const options *o, char **key_args) {
    /* Cache key: the source and every option of this tool (front end, nvcc command). */
    int jobs = o->jobs;
    size_t cmdlen = 0;
    for (char **a = key_args; *a; a++)
        cmdlen += strlen(*a) + 1;
    job *run = calloc((size_t)jobs, sizeof *run);
    if (!run) die("%s", "out of memory");
    int nrun = 0;
    size_t ncompiled = 0;
    for (size_t i = 0; i < ks->n; i++) {
        kernel *k = &ks->k[i];
        char *keytext = malloc(k->len + cmdlen + 1);
        if (!keytext) die("%s", "out of memory");
        memcpy(keytext, k->source, k->len);
        size_t at = k->len;
        for (char **a = key_args; *a; a++) {
            keytext[at++] = '\n';
            memcpy(keytext + at, *a, strlen(*a));
            at += strlen(*a);
        }
        uint8_t d[KP_SHA256_BYTES];
        kp__sha256(keytext, at, d);
        free(keytext);
        hex(d, sizeof d, k->cache);
        char out[4200];
        snprintf(out, sizeof out, "%s/%s.fatbin", dir, k->cache);
        if (access(out, R_OK) == 0) continue;
        if (nrun == jobs) finish_one(run, &nrun);
        start(&run[nrun++], k, dir, o);
        ncompiled++;
    }
    while (nrun > 0)
        finish_one(run, &nrun);
    free(run);
    printf("kp_aot_gen: %zu kernels, %zu compiled now, %zu from the cache\n", ks->n, ncompiled, ks->n - ncompiled);
}

/* Removes the cache files of kernels no longer generated (the generator or the
 * set changed), so the build tree does not grow with every change. */
static void prune_cache(const kernels *ks, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (strlen(name) < 2 * KP_SHA256_BYTES + 2 || name[2 * KP_SHA256_BYTES] != '.') continue;
        int used = 0;
        for (size_t i = 0; i < ks->n && !used; i++)
            used = !strncmp(name, ks->k[i].cache, 2 * KP_SHA256_BYTES);
        if (used) continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        remove(path);
    }
    closedir(d);
}

/* ------------------------------------------------------------ 3. table */

static int by_digest(const void *a, const void *b) {
    return memcmp(((const kernel *)a)->digest, ((const kernel *)b)->digest, KP_SHA256_BYTES);
}

typedef struct text {
    char *p;
    size_t n, cap;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(t->p ? t->p + t->n : NULL, t->p ? t->cap - t->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) die("%s", "formatting failed");
        if (t->p && t->n + (size_t)k < t->cap) {
            t->n += (size_t)k;
            return;
        }
        t->cap = t->cap ? 2 * t->cap : 1 << 16;
        while (t->cap <= t->n + (size_t)k)
            t->cap *= 2;
        t->p = realloc(t->p, t->cap);
        if (!t->p) die("%s", "out of memory");
    }
}

static void write_table(kernels *ks, const char *outdir, const char *cachedir, const char *targets) {
    qsort(ks->k, ks->n, sizeof *ks->k, by_digest);
    size_t total = 0;
    for (size_t i = 0; i < ks->n; i++) {
        kernel *k = &ks->k[i];
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.fatbin", cachedir, k->cache);
        k->image = read_file(path, &k->size);
        if (!k->image || k->size < 16) die("cannot read %s", path);
        uint32_t magic = (uint32_t)k->image[0] | (uint32_t)k->image[1] << 8 | (uint32_t)k->image[2] << 16 |
                         (uint32_t)k->image[3] << 24;
        if (magic != FATBIN_MAGIC) die("%s is not a fatbin (magic)", path);
        k->offset = total;
        total += (k->size + 15) & ~(size_t)15;
    }
    unsigned char *blob = calloc(total ? total : 1, 1);
    if (!blob) die("%s", "out of memory");
    for (size_t i = 0; i < ks->n; i++)
        memcpy(blob + ks->k[i].offset, ks->k[i].image, ks->k[i].size);
    char blob_path[4200];
    snprintf(blob_path, sizeof blob_path, "%s/aot_blob.bin", outdir);
    if (strchr(blob_path, '"') || strchr(blob_path, '\\') || strchr(blob_path, '\n'))
        die("the build directory's path cannot be written in an assembler string: %s", blob_path);
    write_if_changed(blob_path, blob, total);
    uint8_t bd[KP_SHA256_BYTES];
    char bdhex[2 * KP_SHA256_BYTES + 1];
    kp__sha256(blob, total, bd);
    hex(bd, sizeof bd, bdhex);
    free(blob);

    text t = {0};
    put(&t,
        "/* aot_table.c — GENERATED by kp_aot_gen (src/gpu/aot_gen.c) at build time; do not edit.\n"
        " * %zu CUDA kernels for %s, %zu bytes of fatbins.\n"
        " * Blob SHA-256 %s (so that this file changes whenever the blob does). */\n"
        "#include \"gpu/aot_table.h\"\n\n"
        "const size_t kp__aot_nentries = %zu;\n"
        "const char kp__aot_targets[] = \"%s\";\n"
        "const kp_aot_entry kp__aot_entries[%zu] = {\n",
        ks->n, targets, total, bdhex, ks->n, targets, ks->n ? ks->n : 1);
    for (size_t i = 0; i < ks->n; i++) {
        kernel *k = &ks->k[i];
        put(&t, "    {{");
        for (int b = 0; b < KP_SHA256_BYTES; b++)
            put(&t, "%s0x%02x", b ? "," : "", k->digest[b]);
        put(&t, "}, %zu, %zu, %zu}, /* %s */\n", k->len, k->offset, k->size, k->label);
    }
    if (!ks->n) put(&t, "    {{0}, 0, 0, 0},\n");
    put(&t,
        "};\n\n"
        "/* The fatbins, read by the assembler (no multi-megabyte C array to compile). */\n"
        "__asm__(\".pushsection .rodata\\n\"\n"
        "        \".balign 16\\n\"\n"
        "        \".globl kp__aot_blob\\n\"\n"
        "        \".hidden kp__aot_blob\\n\"\n"
        "        \".type kp__aot_blob, \\\"object\\\"\\n\"\n"
        "        \"kp__aot_blob:\\n\"\n"
        "        \".incbin \\\"%s\\\"\\n\"\n"
        "        \".byte 0\\n\"\n"
        "        \".size kp__aot_blob, . - kp__aot_blob\\n\"\n"
        "        \".popsection\\n\");\n",
        blob_path);
    char table_path[4200];
    snprintf(table_path, sizeof table_path, "%s/aot_table.c", outdir);
    write_if_changed(table_path, t.p, t.n);
    free(t.p);
    printf("kp_aot_gen: %s: %zu kernels, %zu bytes of fatbins\n", table_path, ks->n, total);
}

static void usage(void) {
    fprintf(stderr, "usage: kp_aot_gen --out DIR --jobs N --targets TEXT [--nvrtc LIB --nvrtc-arch ARCH] "
                    "-- NVCC [flags]\n");
    exit(2);
}

int main(int argc, char **argv) {
    options o;
    memset(&o, 0, sizeof o);
    o.jobs = 1;
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "--out"))
            o.out = argv[i + 1];
        else if (!strcmp(argv[i], "--jobs"))
            o.jobs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--targets"))
            o.targets = argv[i + 1];
        else if (!strcmp(argv[i], "--nvrtc"))
            o.nvrtc_lib = argv[i + 1];
        else if (!strcmp(argv[i], "--nvrtc-arch"))
            o.nvrtc_arch = argv[i + 1];
        else
            usage();
    }
    if (i + 1 >= argc || !o.out || !o.targets) usage();
    o.nvcc = argv + i + 1;
    if (o.jobs < 1) o.jobs = 1;
    if (o.nvrtc_lib && *o.nvrtc_lib) {
        if (!o.nvrtc_arch) usage();
        if (!load_nvrtc(&o.nvrtc, o.nvrtc_lib)) die("cannot load NVRTC from %s", o.nvrtc_lib);
        o.use_nvrtc = 1;
    }
    char cachedir[4096];
    snprintf(cachedir, sizeof cachedir, "%s/cache", o.out);
    mkdir(o.out, 0777);
    mkdir(cachedir, 0777);
    /* The cache key: what decides the images (not --out, not --jobs). */
    char *key_args[8 + 256] = {0};
    int nk = 0;
    key_args[nk++] = (char *)o.targets;
    key_args[nk++] = o.use_nvrtc ? (char *)o.nvrtc_lib : "nvcc front end";
    key_args[nk++] = o.use_nvrtc ? (char *)o.nvrtc_arch : "";
    for (char **a = o.nvcc; *a && nk < 8 + 255; a++)
        key_args[nk++] = *a;
    kernels ks = {0};
    collect(&ks);
    compile_all(&ks, cachedir, &o, key_args);
    prune_cache(&ks, cachedir);
    write_table(&ks, o.out, cachedir, o.targets);
    for (size_t k = 0; k < ks.n; k++) {
        free(ks.k[k].source);
        free(ks.k[k].image);
    }
    free(ks.k);
    return 0;
}
