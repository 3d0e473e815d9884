/*
 * jit.c — compiled kernels: the per-process cache, background compilation,
 * and LLVM's ORC JIT (C API only, LLVM 14 to 19).
 *
 * The cache and the JIT are process-wide and outlive every kp_context, so
 * their memory comes from malloc, not from a context's allocator. Entries are
 * never removed: a process sees few distinct programs, and a kernel's code
 * lives in the JIT until exit. One compile runs at a time (one mutex). In the
 * background mode libLLVM is loaded and started in the compiling thread too,
 * and exit() waits for both (see "Starting LLVM, exit() and fork()"), so
 * LLVM's static destructors never run under them. Compiled objects are also
 * kept on disk (gpu/kcache.h's directory and rules), so another process
 * loads them instead of compiling.
 */
#define _GNU_SOURCE /* dladdr */
#include "jit/jit.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/context.h"
#include "cpu/engine.h"
#include "gpu/kcache.h"
#include "jit/jit_internal.h"
#include "jit/jit_llvm.h"

/* COLD: counting the pairs its calls reduce, not compiling yet. */
enum { COLD = 0, PENDING = 1, READY = 2, FAILED = 3 };

/* Pairs a formula's calls reduce on the interpreter before a background
 * compile starts (~0.05 s of the Gaussian on one core): compiling costs about
 * 0.1 s of one core, which small and one-off calls never repay, and short
 * processes then rarely start LLVM at all. $KP_JIT_THRESHOLD overrides it. */
#define KP_JIT_THRESHOLD 134217728.0

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    int64_t *key;
    size_t nkey;
    kp_jit_spec spec;
    kp_instr *code;
    int state; /* atomic; COLD -> PENDING under cache_mu */
    int warm_up; /* warm_up's kernel: always compiled, never cached on disk */
    double pairs; /* reduced on the interpreter while COLD */
    kp_jit_kernel kernel;
    char msg[256];
} entry;

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER, compile_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cv = PTHREAD_COND_INITIALIZER;
static entry *cache_head;
static int inflight;
static kp_jit_stats stats;

static LLVMOrcLLJITRef jit;
static LLVMTargetMachineRef tm;
static char *host_cpu, *host_features;
static char init_msg[256];
static int init_ok;
static pthread_once_t init_once = PTHREAD_ONCE_INIT, warm_once = PTHREAD_ONCE_INIT;
static int kernel_count;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void error_message(LLVMErrorRef e, char *msg, size_t n, const char *what) {
    char *m = kp__llvm.LLVMGetErrorMessage(e);
    snprintf(msg, n, "%s: %s", what, m);
    kp__llvm.LLVMDisposeErrorMessage(m);
}

static void wait_idle(void) {
    pthread_mutex_lock(&cache_mu);
    while (inflight > 0) pthread_cond_wait(&idle_cv, &cache_mu);
    pthread_mutex_unlock(&cache_mu);
}

static void init_disk_cache(void);

static void start_llvm(void) {
    if (!kp__llvm_load(init_msg, sizeof init_msg)) return;
    LLVMOrcJITTargetMachineBuilderRef jtmb;
    LLVMErrorRef e = kp__llvm.LLVMOrcJITTargetMachineBuilderDetectHost(&jtmb);
    if (e) return error_message(e, init_msg, sizeof init_msg, "LLVM cannot describe the host");
    LLVMOrcLLJITBuilderRef builder = kp__llvm.LLVMOrcCreateLLJITBuilder();
    kp__llvm.LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, jtmb);
    if ((e = kp__llvm.LLVMOrcCreateLLJIT(&jit, builder))) return error_message(e, init_msg, sizeof init_msg, "LLVM's JIT");
    /* libm (logf, sinf, ...) for the ops compiled lane by lane. */
    LLVMOrcDefinitionGeneratorRef gen;
    if ((e = kp__llvm.LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, kp__llvm.LLVMOrcLLJITGetGlobalPrefix(jit), NULL, NULL)))
        return error_message(e, init_msg, sizeof init_msg, "LLVM's JIT symbol search");
    kp__llvm.LLVMOrcJITDylibAddGenerator(kp__llvm.LLVMOrcLLJITGetMainJITDylib(jit), gen);
    char *triple = kp__llvm.LLVMGetDefaultTargetTriple(), *err = NULL;
    LLVMTargetRef target;
    if (kp__llvm.LLVMGetTargetFromTriple(triple, &target, &err)) {
        snprintf(init_msg, sizeof init_msg, "LLVM target: %s", err ? err : "unknown");
        kp__llvm.LLVMDisposeMessage(err);
        kp__llvm.LLVMDisposeMessage(triple);
        return;
    }
    host_cpu = kp__llvm.LLVMGetHostCPUName();
    host_features = kp__llvm.LLVMGetHostCPUFeatures();
    tm = kp__llvm.LLVMCreateTargetMachine(target, triple, host_cpu, host_features, LLVMCodeGenLevelAggressive, LLVMRelocDefault,
                                 LLVMCodeModelJITDefault);
    kp__llvm.LLVMDisposeMessage(triple);
    init_ok = tm != NULL;
    if (!init_ok) snprintf(init_msg, sizeof init_msg, "LLVM cannot make a target machine for the host");
}

/* Loads libLLVM, makes the JIT and opens the disk cache (once per process). */
static void init_llvm(void) {
    double t0 = now_seconds();
    start_llvm();
    if (init_ok) init_disk_cache();
    pthread_mutex_lock(&cache_mu);
    stats.llvm_load_seconds = now_seconds() - t0;
    pthread_mutex_unlock(&cache_mu);
}

/* Bytes of one of s's vectors. */
static int spec_vec_bytes(const kp_jit_spec *s) { return s->vl * (s->f32 ? 4 : 8); }

/* The CPU a kernel of s is compiled for: the host, or, for vectors narrower
 * than the host's ($KP_CPU_ISA=avx2|generic), a CPU with that ISA and no
 * more, so that the kernel is the one an AVX2 machine (16 vector registers,
 * no masks) or a plain x86-64 one would run. */
static void kernel_target(const kp_jit_spec *s, const char **cpu, const char **features) {
    int bytes = spec_vec_bytes(s);
    *cpu = host_cpu, *features = host_features;
    if (bytes >= kp__cpu_native_vec_bytes() || !strstr(kp__llvm.LLVMOrcLLJITGetTripleString(jit), "x86_64")) return;
    *cpu = bytes == 32 ? "haswell" : "x86-64";
    *features = "";
}

/* The kernel's target CPU and features on every function, so the bitcode
 * inlines into the kernel; the bitcode's functions become internal, to
 * vanish once inlined. */
static void prepare_module(LLVMModuleRef M, const char *name, const kp_jit_spec *s) {
    const char *cpu, *features;
    kernel_target(s, &cpu, &features);
    kp__llvm.LLVMSetTarget(M, kp__llvm.LLVMOrcLLJITGetTripleString(jit));
    kp__llvm.LLVMSetDataLayout(M, kp__llvm.LLVMOrcLLJITGetDataLayoutStr(jit));
    for (LLVMValueRef f = kp__llvm.LLVMGetFirstFunction(M); f; f = kp__llvm.LLVMGetNextFunction(f)) {
        if (kp__llvm.LLVMIsDeclaration(f)) continue;
        kp__llvm.LLVMRemoveStringAttributeAtIndex(f, (LLVMAttributeIndex)LLVMAttributeFunctionIndex, "target-cpu", 10);
        kp__llvm.LLVMRemoveStringAttributeAtIndex(f, (LLVMAttributeIndex)LLVMAttributeFunctionIndex, "target-features", 15);
        kp__llvm.LLVMRemoveStringAttributeAtIndex(f, (LLVMAttributeIndex)LLVMAttributeFunctionIndex, "tune-cpu", 8);
        kp__llvm.LLVMAddTargetDependentFunctionAttr(f, "target-cpu", cpu);
        kp__llvm.LLVMAddTargetDependentFunctionAttr(f, "target-features", features);
        kp__llvm.LLVMAddTargetDependentFunctionAttr(f, "min-legal-vector-width", "512");
        kp__llvm.LLVMAddTargetDependentFunctionAttr(f, "prefer-vector-width", "512");
        size_t n;
        if (strcmp(kp__llvm.LLVMGetValueName2(f, &n), name) != 0) kp__llvm.LLVMSetLinkage(f, LLVMInternalLinkage);
    }
}

/* ------------------------------------------------------------- the disk cache
 *
 * A kernel's object file is stored under the SHA-256 of its entry's key
 * (make_key) and of everything else its code depends on (process_key): the
 * format below, LLVM's version and the libLLVM file loaded, libkp's own
 * binary (the code generator, the op bitcode's semantics, the kernels'
 * contract with the interpreter), the op bitcode, the target triple, data
 * layout, host CPU name and features. The payload is the kernel's symbol name
 * (one length byte, the name) then the object. Names are NAME_PREFIX and the
 * key's first 16 bytes in hex: the same in every process for one key, and
 * distinct for distinct kernels of a process. */

/* Bump when the payload's layout or the meaning of a key changes without
 * libkp's binary changing. */
#define JIT_CACHE_FORMAT 1
#define NAME_PREFIX "kp_jit_"
#define NAME_MAX_LEN 96

static kp_kcache *disk; /* NULL: memory only (KP_CACHE_DIR=off, a refused directory, an unidentified binary) */
static unsigned char process_key[KP_SHA256_SIZE];

/* "path device inode size mtime" of the file holding code address fn, or 0. */
static int binary_identity(const void *fn, char *out, size_t n) {
    Dl_info info;
    struct link_map *lm = NULL;
    struct stat st;
    if (!dladdr1(fn, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm) return 0;
    /* The main program has no name in its link map (dladdr then answers argv[0], which may be any string). */
    const char *path = lm->l_name && *lm->l_name ? lm->l_name : "/proc/self/exe";
    if (stat(path, &st) != 0) return 0;
    return snprintf(out, n, "%s %llu %llu %lld %lld.%09ld", path, (unsigned long long)st.st_dev,
                    (unsigned long long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                    st.st_mtim.tv_nsec) < (int)n;
}

/* Called once LLVM is up: the process's part of every kernel's key, and the
 * disk cache when both binaries can be identified. */
static void init_disk_cache(void) {
    char llvm_id[4200] = "", kp_id[4200] = "", format[64];
    void *llvm_fn, *kp_fn;
    memcpy(&llvm_fn, &kp__llvm.LLVMRunPasses, sizeof llvm_fn); /* function pointers are not void *: their bits */
    const kp_jit_kernel *(*self)(kp_context *, const kp_program *, kp_dtype, int, int, kp_jit_mode, int, double,
                                 int *) = kp__jit_kernel;
    memcpy(&kp_fn, &self, sizeof kp_fn);
    int identified = binary_identity(llvm_fn, llvm_id, sizeof llvm_id) && binary_identity(kp_fn, kp_id, sizeof kp_id);
    unsigned char bitcode[KP_SHA256_SIZE];
    kp__sha256(kp__jit_bitcode, kp__jit_bitcode_size, bitcode);
    snprintf(format, sizeof format, "libkp CPU kernel %d %s<16 key bytes in hex>", JIT_CACHE_FORMAT, NAME_PREFIX);
    const char *triple = kp__llvm.LLVMOrcLLJITGetTripleString(jit);
    const char *layout = kp__llvm.LLVMOrcLLJITGetDataLayoutStr(jit);
    const void *parts[] = {format, LLVM_VERSION_STRING, llvm_id, kp_id, triple, layout, host_cpu, host_features,
                           bitcode};
    size_t lens[] = {strlen(format), strlen(LLVM_VERSION_STRING), strlen(llvm_id), strlen(kp_id), strlen(triple),
                     strlen(layout), strlen(host_cpu), strlen(host_features), sizeof bitcode};
    kp_kcache_key k;
    kp__kcache_key(&k, sizeof parts / sizeof *parts, parts, lens);
    memcpy(process_key, k.d, sizeof process_key);
    if (!identified) return;
    kp_kcache *c = kp__kcache_open(NULL);
    if (c && kp__kcache_disabled_reason(c)) {
        kp__kcache_close(c);
        c = NULL;
    }
    disk = c;
}

static void kernel_key(const entry *e, kp_kcache_key *key) {
    const void *parts[] = {process_key, e->key};
    size_t lens[] = {sizeof process_key, e->nkey * sizeof *e->key};
    kp__kcache_key(key, 2, parts, lens);
}

static void kernel_name(const kp_kcache_key *key, char name[NAME_MAX_LEN]) {
    static const char digits[] = "0123456789abcdef";
    size_t n = strlen(NAME_PREFIX);
    memcpy(name, NAME_PREFIX, n);
    for (int b = 0; b < 16; b++) {
        name[n++] = digits[key->d[b] >> 4];
        name[n++] = digits[key->d[b] & 15];
    }
    name[n] = 0;
}

/* Adds the object file (copied) to the JIT and finds name in it: its address, or 0 with a message. */
static LLVMOrcExecutorAddress add_object(const char *name, const void *obj, size_t len, char *msg, size_t msgsz) {
    LLVMMemoryBufferRef b = kp__llvm.LLVMCreateMemoryBufferWithMemoryRangeCopy(obj, len, name);
    LLVMOrcExecutorAddress addr = 0;
    /* The JIT owns b from here, error or not. */
    LLVMErrorRef err = kp__llvm.LLVMOrcLLJITAddObjectFile(jit, kp__llvm.LLVMOrcLLJITGetMainJITDylib(jit), b);
    if (!err) err = kp__llvm.LLVMOrcLLJITLookup(jit, &addr, name);
    if (err) {
        error_message(err, msg, msgsz, "LLVM's JIT");
        return 0;
    }
    return addr;
}

/* The kernel from the disk cache: its address; 0 on a miss (*refused: the
 * file checked out but LLVM would not load it, or it names no kernel). */
static LLVMOrcExecutorAddress load_cached(const kp_kcache_key *key, int *refused) {
    void *data;
    size_t len;
    *refused = 0;
    if (!kp__kcache_get(disk, key, &data, &len)) return 0;
    const unsigned char *p = data;
    size_t nl = len > 0 ? p[0] : 0;
    char name[NAME_MAX_LEN], msg[256];
    LLVMOrcExecutorAddress addr = 0;
    if (nl > strlen(NAME_PREFIX) && nl < NAME_MAX_LEN && len > 1 + nl && !memchr(p + 1, 0, nl) &&
        memcmp(p + 1, NAME_PREFIX, strlen(NAME_PREFIX)) == 0) {
        memcpy(name, p + 1, nl);
        name[nl] = 0;
        addr = add_object(name, p + 1 + nl, len - 1 - nl, msg, sizeof msg);
    }
    free(data);
    *refused = addr == 0;
    return addr;
}

/* Stores name and the object under key (a failed write only costs the next process a compile). */
static void store_cached(const kp_kcache_key *key, const char *name, const void *obj, size_t len) {
    size_t nl = strlen(name);
    unsigned char *payload = malloc(1 + nl + len);
    if (!payload) return;
    payload[0] = (unsigned char)nl;
    memcpy(payload + 1, name, nl);
    memcpy(payload + 1 + nl, obj, len);
    kp__kcache_put(disk, key, payload, 1 + nl + len);
    free(payload);
}

/* Builds e's kernel as `name`, optimizes it and generates its object file:
 * the object, or NULL with a message in e->msg. */
static LLVMMemoryBufferRef compile_object(entry *e, const char *name) {
    LLVMOrcThreadSafeContextRef tsc = kp__llvm.LLVMOrcCreateNewThreadSafeContext();
    LLVMModuleRef M = NULL;
    LLVMMemoryBufferRef obj = NULL;
    if (__atomic_load_n(&kp__jit_fail_compiles, __ATOMIC_RELAXED))
        snprintf(e->msg, sizeof e->msg, "compile failure injected (kp__jit_fail_compiles)");
    else M = kp__jit_build(kp__llvm.LLVMOrcThreadSafeContextGetContext(tsc), &e->spec, name, e->msg, sizeof e->msg);
    if (M) {
        prepare_module(M, name, &e->spec);
        LLVMPassBuilderOptionsRef opts = kp__llvm.LLVMCreatePassBuilderOptions();
        LLVMErrorRef err = kp__llvm.LLVMRunPasses(M, "default<O3>", tm, opts);
        kp__llvm.LLVMDisposePassBuilderOptions(opts);
        char *cg_msg = NULL;
        if (err) {
            error_message(err, e->msg, sizeof e->msg, "LLVM optimizer");
        } else if (kp__llvm.LLVMTargetMachineEmitToMemoryBuffer(tm, M, LLVMObjectFile, &cg_msg, &obj)) {
            snprintf(e->msg, sizeof e->msg, "LLVM code generator: %s", cg_msg ? cg_msg : "unknown error");
            obj = NULL;
        }
        kp__llvm.LLVMDisposeMessage(cg_msg);
        kp__llvm.LLVMDisposeModule(M);
    }
    kp__llvm.LLVMOrcDisposeThreadSafeContext(tsc);
    return obj;
}

/* Makes e's kernel ready (under compile_mu): loaded from the disk cache if
 * there, else compiled (and stored). */
static void compile(entry *e) {
    pthread_mutex_lock(&compile_mu);
    double t0 = now_seconds();
    kp_kcache_key key;
    char name[NAME_MAX_LEN];
    int use_disk = disk && !e->warm_up && !__atomic_load_n(&kp__jit_fail_compiles, __ATOMIC_RELAXED), refused = 0;
    if (e->warm_up) {
        snprintf(name, sizeof name, "%swarm_up", NAME_PREFIX);
    } else {
        kernel_key(e, &key);
        kernel_name(&key, name);
    }
    LLVMOrcExecutorAddress addr = use_disk ? load_cached(&key, &refused) : 0;
    int loaded = addr != 0;
    double t1 = now_seconds();
    if (!loaded) {
        /* A refused object may have defined its name in the JIT: compile under another. */
        if (refused) snprintf(name + strlen(name), sizeof name - strlen(name), "_r%d", kernel_count++);
        LLVMMemoryBufferRef obj = compile_object(e, name);
        if (obj) {
            const void *bytes = kp__llvm.LLVMGetBufferStart(obj);
            size_t len = kp__llvm.LLVMGetBufferSize(obj);
            addr = add_object(name, bytes, len, e->msg, sizeof e->msg);
            if (addr && use_disk) store_cached(&key, name, bytes, len);
            kp__llvm.LLVMDisposeMemoryBuffer(obj);
        }
    }
    pthread_mutex_unlock(&compile_mu);
    double t2 = now_seconds();
    int ok = addr != 0;
    if (ok) {
        uintptr_t a = (uintptr_t)addr; /* an address from the JIT is code */
        if (e->spec.mode == KP_JIT_JOINT) memcpy(&e->kernel.joint, &a, sizeof e->kernel.joint);
        else memcpy(&e->kernel.fn, &a, sizeof e->kernel.fn);
    }
    pthread_mutex_lock(&cache_mu);
    if (ok) {
        stats.compiled++;
        stats.disk_hits += loaded;
        stats.joint += e->spec.mode == KP_JIT_JOINT;
        stats.lse += e->spec.mode == KP_JIT_LSE;
    } else {
        stats.failed++;
    }
    if (use_disk) stats.load_seconds += t1 - t0;
    if (!loaded && !e->warm_up) stats.compile_seconds += t2 - t1; /* warm_up counts its own */
    pthread_mutex_unlock(&cache_mu);
    __atomic_store_n(&e->state, ok ? READY : FAILED, __ATOMIC_RELEASE);
}

/* A background compile has ended (wait_idle may return). */
static void compile_done(void) {
    pthread_mutex_lock(&cache_mu);
    if (--inflight == 0) pthread_cond_broadcast(&idle_cv);
    pthread_mutex_unlock(&cache_mu);
}

/* One small kernel through every stage (bitcode, vector exp, an op lane by
 * lane, O3, code generation), compiled once, right after libLLVM is loaded.
 * LLVM creates function-local statics on first use, and exit() destroys them
 * before the handlers registered earlier: with them all made here, the
 * wait_idle registered after this runs first at exit, and a background
 * compile never meets a destroyed static. */
static void warm_up(void) {
    kp_instr code[3];
    memset(code, 0, sizeof code);
    code[0].op = KP_OP_SQDIST;
    code[0].nin = 2;
    code[0].in[0] = (kp_operand){KP_LOC_ROW, 0, 1};
    code[0].in[1] = (kp_operand){KP_LOC_COL, 0, 1};
    code[0].out = (kp_operand){KP_LOC_PAIR, 0, 1};
    code[1].op = KP_OP_EXP;
    code[1].nin = 1;
    code[1].in[0] = code[0].out;
    code[1].out = (kp_operand){KP_LOC_PAIR, 1, 1};
    code[2].op = KP_OP_LOG;
    code[2].nin = 1;
    code[2].in[0] = code[1].out;
    code[2].out = (kp_operand){KP_LOC_PAIR, 2, 1};
    double t0 = now_seconds();
    entry e;
    memset(&e, 0, sizeof e);
    e.warm_up = 1;
    /* 8 floats: a width every x86-64 host with LLVM compiles (16-float kernels
     * call the AVX-512 exp, which only AVX-512 hosts can). */
    e.spec = (kp_jit_spec){.f32 = 1, .tile = 64, .vl = 8, .rows = 1, .mode = KP_JIT_SUM, .row_size = 1,
                           .col_size = 1, .pair_size = 3, .fdim = 1, .red_f = code[2].out, .n = 3, .code = code};
    compile(&e);
    pthread_mutex_lock(&cache_mu);
    stats.compiled -= e.state == READY; /* not a formula's */
    stats.failed -= e.state == FAILED;
    stats.warm_up_seconds = now_seconds() - t0;
    pthread_mutex_unlock(&cache_mu);
    atexit(wait_idle);
}

/* ------------------------------------------ starting LLVM, exit() and fork()
 *
 * Loading libLLVM and the warm-up take 35-95 ms once per process. In the
 * background mode they run in the compiling thread, so no call waits for
 * them. Until the warm-up has registered wait_idle, an exit() would destroy
 * LLVM's statics under them; what stands in the way is an exit guard: a
 * destructor of the thread's thread-local objects, which exit() runs before
 * any atexit handler (C++'s rule for thread_local, glibc's
 * __cxa_thread_atexit_impl). It waits for the start to end. A thread gets one
 * when it loads libkp and when it first asks for a kernel, except while the
 * start runs (registering takes the dynamic loader's lock, which the start's
 * dlopen holds). Where there is no such destructor, the call that starts LLVM
 * waits for it, as the force and require modes do.
 *
 * A child forked while LLVM starts or compiles in another thread has neither
 * that thread nor a usable LLVM: it compiles nothing, and never waits for the
 * thread (at exit or in a call). */

enum { START_IDLE, START_RUNNING, START_DONE };
static int start_state; /* under cache_mu */
static pthread_cond_t start_cv = PTHREAD_COND_INITIALIZER;
static int forked_busy; /* under cache_mu: this process forked while LLVM was busy */

#if defined(__GLIBC__)
#if __GLIBC_PREREQ(2, 18)
#define HAVE_EXIT_GUARD 1
#endif
#endif
#ifdef HAVE_EXIT_GUARD
enum { EXIT_GUARDS = 1 };
#else
enum { EXIT_GUARDS = 0 };
#endif

#ifdef HAVE_EXIT_GUARD
extern int __cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso);
extern void *__dso_handle;
static _Thread_local int thread_guarded;

static void wait_start(void *unused) {
    (void)unused;
    pthread_mutex_lock(&cache_mu);
    while (start_state == START_RUNNING) pthread_cond_wait(&start_cv, &cache_mu);
    pthread_mutex_unlock(&cache_mu);
}

/* Gives the calling thread its exit guard. */
static void guard_thread(void) {
    if (!thread_guarded) thread_guarded = __cxa_thread_atexit_impl(wait_start, NULL, &__dso_handle) == 0;
}

/* Guards the calling thread unless the start runs now (see above). */
static void guard_if_idle(void) {
    if (thread_guarded) return;
    pthread_mutex_lock(&cache_mu);
    int running = start_state == START_RUNNING;
    pthread_mutex_unlock(&cache_mu);
    if (!running) guard_thread();
}
#else
static void guard_thread(void) {}
static void guard_if_idle(void) {}
#endif

/* Loads libLLVM, makes the JIT and warms it up (once per process); whether
 * the JIT works. */
static int start_llvm_once(void) {
    pthread_mutex_lock(&cache_mu);
    if (start_state == START_IDLE) start_state = START_RUNNING;
    pthread_mutex_unlock(&cache_mu);
    while (__atomic_load_n(&kp__jit_hold_start, __ATOMIC_ACQUIRE)) nanosleep(&(struct timespec){0, 1000000}, NULL);
    pthread_once(&init_once, init_llvm);
    if (init_ok) pthread_once(&warm_once, warm_up);
    pthread_mutex_lock(&cache_mu);
    start_state = START_DONE;
    pthread_cond_broadcast(&start_cv);
    pthread_mutex_unlock(&cache_mu);
    return init_ok;
}

/* Compiles e (after starting LLVM), or fails it with LLVM's start message. */
static void start_and_compile(entry *e) {
    if (start_llvm_once()) {
        compile(e);
    } else {
        snprintf(e->msg, sizeof e->msg, "%s", init_msg);
        __atomic_store_n(&e->state, FAILED, __ATOMIC_RELEASE);
    }
}

static void *compile_thread(void *arg) {
    start_and_compile(arg);
    if (init_ok) atexit(wait_idle); /* after any static this compile made (see warm_up) */
    compile_done();
    return NULL;
}

static void before_fork(void) { pthread_mutex_lock(&cache_mu); }

static void after_fork_parent(void) { pthread_mutex_unlock(&cache_mu); }

static void after_fork_child(void) {
    /* The child has only the forking thread: a compile mutex held now is held forever. */
    int busy = start_state == START_RUNNING || inflight > 0 || pthread_mutex_trylock(&compile_mu) != 0;
    if (!busy) pthread_mutex_unlock(&compile_mu);
    if (busy) {
        forked_busy = 1;
        inflight = 0;
        start_state = START_DONE;
    }
    pthread_mutex_unlock(&cache_mu);
}

__attribute__((constructor)) static void guard_loading_thread(void) {
    guard_thread();
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* ------------------------------------------------------------- the cache key */

static void put_operand(int64_t *k, size_t *n, kp_operand o) {
    k[(*n)++] = o.loc;
    k[(*n)++] = o.off;
    k[(*n)++] = o.dim;
}

#define KEY_HEAD (24 + 2 + 11 * 2 * KP_MAX_JOINT)
#define KEY_PER_INSTR 17

/* Writes the key of s into k (KEY_HEAD + KEY_PER_INSTR * s->n entries); returns its length. */
static size_t make_key(const kp_jit_spec *s, int64_t *k) {
    size_t n = 0;
    int64_t head[] = {s->f32,      s->tile,      s->vl,   s->rows, s->mode, s->row_size, s->col_size, s->pair_size,
                      s->fdim,     s->n,         (int64_t)s->row_uniform, (int64_t)s->row_divisors,
                      (int64_t)s->exp_nonpos, (int64_t)s->row_neg, (int64_t)s->row_pos};
    for (size_t i = 0; i < sizeof head / sizeof *head; i++) k[n++] = head[i];
    put_operand(k, &n, s->red_f);
    put_operand(k, &n, s->red_f2);
    put_operand(k, &n, s->red_g);
    for (int side = 0; side < 2; side++) { /* joint terms (none otherwise); scales are not the kernel's */
        k[n++] = s->nterms[side];
        for (int t = 0; t < s->nterms[side]; t++) {
            const kp_sum_term *term = &s->terms[side][t];
            k[n++] = term->nfactors;
            k[n++] = term->dim;
            for (int f = 0; f < KP_TERM_TILES; f++)
                put_operand(k, &n, f < term->nfactors ? term->factor[f] : (kp_operand){0, 0, 0});
        }
    }
    for (int i = 0; i < s->n; i++) {
        const kp_instr *ins = &s->code[i];
        k[n++] = ins->op;
        k[n++] = ins->nin;
        put_operand(k, &n, ins->out);
        for (int j = 0; j < 3; j++) put_operand(k, &n, j < ins->nin ? ins->in[j] : (kp_operand){0, 0, 0});
        k[n++] = ins->ip[0];
        k[n++] = ins->ip[1];
        memcpy(&k[n++], &ins->value, sizeof ins->value);
    }
    return n;
}

static uint64_t hash_key(const int64_t *k, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint64_t)k[i]) * 1099511628211ull;
    return h;
}

static entry *find(uint64_t h, const int64_t *k, size_t n) {
    for (entry *e = cache_head; e; e = e->next)
        if (e->hash == h && e->nkey == n && memcmp(e->key, k, n * sizeof *k) == 0) return e;
    return NULL;
}

/* A new COLD entry owning copies of the key and the code, or NULL. */
static entry *new_entry(const kp_jit_spec *s, const int64_t *k, size_t n, uint64_t h) {
    entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->key = malloc(n * sizeof *k);
    e->code = malloc((size_t)(s->n + 1) * sizeof *e->code);
    if (!e->key || !e->code) {
        free(e->key), free(e->code), free(e);
        return NULL;
    }
    memcpy(e->key, k, n * sizeof *k);
    memcpy(e->code, s->code, (size_t)s->n * sizeof *e->code);
    e->nkey = n;
    e->hash = h;
    e->spec = *s;
    e->spec.code = e->code;
    e->kernel.rows = s->rows;
    e->kernel.row_divisors = s->row_divisors;
    e->kernel.row_neg = s->row_neg;
    e->kernel.row_pos = s->row_pos;
    e->kernel.row_uniform = s->row_uniform;
    e->kernel.mode = s->mode;
    return e;
}

/* ------------------------------------------------------------- entry point */

typedef enum { MODE_OFF, MODE_BACKGROUND, MODE_FORCE, MODE_REQUIRE } jit_mode;

static jit_mode env_mode(void) {
    const char *v = getenv("KP_JIT");
    if (!v || !*v || strcmp(v, "on") == 0) return MODE_BACKGROUND;
    if (strcmp(v, "force") == 0) return MODE_FORCE;
    if (strcmp(v, "require") == 0) return MODE_REQUIRE;
    return MODE_OFF;
}

/* Rows per block: enough independent chains to hide latencies, few enough
 * that the accumulators (KP_JIT_SUM, KP_JIT_JOINT) stay in registers. */
static int rows_for(const kp_jit_spec *s) {
    if (s->mode == KP_JIT_TILES) return 4;
    /* KP_JIT_LSE: two rows share the first pass's COL loads.
     * kp_bench_formula --threads 1 --n 3000 'LogSumExp_Reduction(-SqDist(x,y)*g,0)',
     * 1 / 2 / 4 rows: float32 2709 / 2465 / 2459 us (AVX2: 3961 / 3854 /
     * 3932), float64 6348 / 5816 / 5675 us (AVX2: 9995 / 9368 / 9275). */
    if (s->mode == KP_JIT_LSE) return kp__jit_lse_rows >= 1 && kp__jit_lse_rows <= KP_JIT_MAX_ROWS ? kp__jit_lse_rows : 2;
    int acc = s->mode == KP_JIT_JOINT ? s->rowdim + s->coldim : s->fdim;
    int r = 16 / (acc > 0 ? acc : 1);
    /* Fewer rows for float32 Sum kernels: the AVX-512 exp's constants and
     * four rows' values outgrew the 32 registers, and LLVM's register
     * allocator then spilled and shuffled registers in the loop (the
     * compiled Gaussian, float32, one thread: 2.24e9 pairs/s with 2 rows,
     * 2.04e9 with 4). float64 keeps 4 rows: its exp is twice as long, and
     * more independent rows hide its latency (8.2e8 with 4, 7.85e8 with 2). */
    int most = s->f32 && s->mode == KP_JIT_SUM ? 2 : 4;
    /* With 16 vector registers (AVX2, SSE), 4 rows' coordinates alone take
     * most of them: 2 rows (float64 Sum kernels, AVX2, N = 10^4, 2 threads:
     * Gaussian 1.21-1.23e9 pairs/s with 2 rows, 1.17-1.18e9 with 4; Laplacian,
     * L1 and anisotropic 3-6% faster too). */
    if (spec_vec_bytes(s) <= 32) most = 2;
    /* Joint kernels hold each row's values and row accumulators besides the
     * exp's constants: with 4 rows LLVM spilled accumulators to the stack in
     * the loop. The Gaussian's gradients in x and b, one thread, N = 10^4,
     * backward alone as Exp(-SqDist(x,y)*g)*b: float32 0.050 s with 4 rows,
     * 0.047 with 2; float64 0.136 s with 4, 0.130 with 2, 0.120 with 1.
     * Forward + backward in the LazyTensor spelling (-D / s).exp() @ b:
     * float32 0.084-0.086 s with 4, 0.079-0.082 with 2, 0.081 with 1;
     * float64 0.224-0.232 s with 4, 0.225 with 2, 0.213-0.217 with 1. */
    if (s->mode == KP_JIT_JOINT) most = s->f32 ? 2 : 1;
    return r > most ? most : r < 1 ? 1 : r;
}

/* Which ROW components (below 64) hold the same value in every row: those
 * the ROW program computes from parameters and constants only. */
static uint64_t row_uniform(const kp_program *prog) {
    uint64_t u = 0;
    for (int i = 0; i < prog->row.n; i++) {
        const kp_instr *ins = &prog->row.code[i];
        /* Leaves: parameters and constants (no inputs) are; variables of the
         * rows and indices are not. Other ops: when all their inputs are. */
        int same = ins->op == KP_OP_VAR ? ins->ip[0] == KP_VAR_PARAM : ins->op != KP_OP_INDEX;
        for (int j = 0; j < ins->nin; j++)
            for (int c = 0; c < ins->in[j].dim; c++) {
                int k = ins->in[j].off + c;
                same &= ins->in[j].loc == KP_LOC_ROW && k < 64 && (u >> k & 1);
            }
        for (int c = 0; c < ins->out.dim; c++) {
            int k = ins->out.off + c;
            if (k >= 64) continue;
            u = same ? u | (uint64_t)1 << k : u & ~((uint64_t)1 << k);
        }
    }
    return u;
}

/* The ROW components (below 64) that divide PAIR values in the pair
 * program: the divisor of Div, and of the fused Exp(a / b). */
static uint64_t row_divisors(const kp_program *prog) {
    uint64_t m = 0;
    for (int i = 0; i < prog->pair.n; i++) {
        const kp_instr *ins = &prog->pair.code[i];
        int divides = ins->op == KP_OP_DIV || (ins->op == KP_OP_EXP && ins->nin == 2 && ins->ip[1]);
        if (!divides || ins->in[1].loc != KP_LOC_ROW) continue;
        for (int c = 0; c < ins->in[1].dim; c++)
            if (ins->in[1].off + c < 64) m |= (uint64_t)1 << (ins->in[1].off + c);
    }
    return m;
}

/* Sign facts about PAIR values: >= 0 or NaN, <= 0 or NaN (a zero of either
 * sign is both), or neither known. */
enum { SIGN_ANY = 0, SIGN_NONNEG = 1, SIGN_NONPOS = 2 };

/* What operand o is known to be, from sign[] (the PAIR components' facts, the
 * first nsign of them): ROW and COL values are not known. */
static int operand_sign(const unsigned char *sign, int nsign, kp_operand o) {
    if (o.loc != KP_LOC_PAIR || o.dim < 1 || o.off + o.dim > nsign) return SIGN_ANY;
    int s = SIGN_NONNEG | SIGN_NONPOS; /* narrowed by each component: unknown or mixed end at SIGN_ANY */
    for (int c = 0; c < o.dim; c++) s &= sign[o.off + c];
    return s;
}

/* The sign fact of instruction ins's output. Division is left out: a
 * divisor -0 turns a nonnegative quotient into -inf. */
static int instr_sign(const unsigned char *sign, int nsign, const kp_instr *ins) {
    int a = ins->nin > 0 ? operand_sign(sign, nsign, ins->in[0]) : SIGN_ANY;
    int b = ins->nin > 1 ? operand_sign(sign, nsign, ins->in[1]) : SIGN_ANY;
    switch ((int)ins->op) {
    case KP_OP_SQDIST: case KP_OP_SQUARE: case KP_OP_ABS: case KP_OP_SQRT: case KP_OP_EXP: return SIGN_NONNEG;
    case KP_OP_NEG: return a == SIGN_NONNEG ? SIGN_NONPOS : a == SIGN_NONPOS ? SIGN_NONNEG : SIGN_ANY;
    case KP_OP_SUM: return a;
    case KP_OP_ADD: return a == b ? a : SIGN_ANY;
    case KP_OP_MUL: return a == SIGN_ANY || b == SIGN_ANY ? SIGN_ANY : a == b ? SIGN_NONNEG : SIGN_NONPOS;
    default: return SIGN_ANY;
    }
}

/* Which PAIR Exps (s->exp_nonpos) take an argument <= 0 or NaN, and what
 * that asks of the rows (s->row_neg, s->row_pos): Exp(a) with a known <= 0;
 * the fused Exp(a * b) and Exp(a / b) (lower.c) with a known >= 0 and the
 * ROW scalar b of sign bit set, or a known <= 0 and b of sign bit clear
 * (NaN either way: the product or quotient is NaN, which the exp keeps).
 * Only AVX-512 exps have a cheaper form for it (jit_ops.c). */
static void exp_signs(const kp_program *prog, kp_jit_spec *s) {
    if (kp__jit_no_exp_signs || s->vl * (s->f32 ? 4 : 8) != 64) return;
    enum { TRACKED = 256 }; /* PAIR components followed; the others count as unknown */
    unsigned char sign[TRACKED];
    int nsign = prog->pair_size < TRACKED ? prog->pair_size : TRACKED;
    memset(sign, 0, sizeof sign);
    for (int i = 0; i < prog->pair.n; i++) {
        const kp_instr *ins = &prog->pair.code[i];
        if (ins->op == KP_OP_EXP && i < 64) {
            int a = operand_sign(sign, nsign, ins->in[0]);
            if (ins->nin == 1 && a == SIGN_NONPOS) s->exp_nonpos |= (uint64_t)1 << i;
            kp_operand b = ins->in[1];
            if (ins->nin == 2 && a != SIGN_ANY && b.loc == KP_LOC_ROW && b.dim == 1 && b.off < 64) {
                s->exp_nonpos |= (uint64_t)1 << i;
                *(a == SIGN_NONNEG ? &s->row_neg : &s->row_pos) |= (uint64_t)1 << b.off;
            }
        }
        int out = instr_sign(sign, nsign, ins);
        for (int c = 0; ins->out.loc == KP_LOC_PAIR && c < ins->out.dim; c++)
            if (ins->out.off + c < nsign) sign[ins->out.off + c] = (unsigned char)out;
    }
    if (s->row_neg & s->row_pos) s->exp_nonpos = s->row_neg = s->row_pos = 0; /* one scalar, both ways: no row fits */
}

/* The kernel's description for prog (the joint terms for KP_JIT_JOINT). */
static kp_jit_spec spec_of(const kp_program *prog, kp_dtype dtype, int tile, int vec_bytes, kp_jit_mode mode,
                          int signs) {
    kp_jit_spec s;
    memset(&s, 0, sizeof s);
    s.f32 = dtype == KP_FLOAT32;
    s.tile = tile;
    s.vl = vec_bytes / (dtype == KP_FLOAT32 ? 4 : 8);
    s.mode = mode;
    s.row_size = prog->row_size;
    s.col_size = prog->col_size;
    s.pair_size = prog->pair_size;
    s.row_uniform = row_uniform(prog);
    s.row_divisors = row_divisors(prog);
    if (signs) exp_signs(prog, &s);
    s.n = prog->pair.n;
    s.code = prog->pair.code;
    if (mode == KP_JIT_JOINT) {
        for (int side = 0; side < 2; side++) {
            s.nterms[side] = prog->nterms[side];
            for (int t = 0; t < prog->nterms[side]; t++) {
                s.terms[side][t] = prog->terms[side][t];
                *(side ? &s.coldim : &s.rowdim) += prog->terms[side][t].dim;
            }
        }
    } else {
        s.fdim = prog->fdim;
        s.red_f = prog->red_f;
        s.red_f2 = prog->red_f2;
        s.red_g = prog->red_g;
    }
    s.rows = rows_for(&s);
    return s;
}

static double threshold(void) {
    const char *v = getenv("KP_JIT_THRESHOLD");
    return v && *v ? strtod(v, NULL) : KP_JIT_THRESHOLD;
}

const kp_jit_kernel *kp__jit_kernel(kp_context *ctx, const kp_program *prog, kp_dtype dtype, int tile, int vec_bytes,
                                    kp_jit_mode mode, int signs, double pairs, int *failed) {
    jit_mode m = env_mode();
    if (m == MODE_OFF || prog->pair.n == 0 || (dtype != KP_FLOAT32 && dtype != KP_FLOAT64)) return NULL;
    if (m == MODE_BACKGROUND) guard_if_idle();
    kp_jit_spec s = spec_of(prog, dtype, tile, vec_bytes, mode, signs);
    int64_t stack_key[KEY_HEAD + KEY_PER_INSTR * 32];
    size_t cap = KEY_HEAD + KEY_PER_INSTR * (size_t)s.n;
    int64_t *k = cap <= sizeof stack_key / sizeof *stack_key ? stack_key : malloc(cap * sizeof *k);
    if (!k) return NULL;
    size_t n = make_key(&s, k);
    uint64_t h = hash_key(k, n);
    pthread_mutex_lock(&cache_mu);
    entry *e = find(h, k, n);
    if (!e && (e = new_entry(&s, k, n, h))) {
        e->next = cache_head;
        cache_head = e;
    }
    int start = 0;
    if (e && forked_busy && e->state <= PENDING) {
        snprintf(e->msg, sizeof e->msg, "this process was forked while LLVM was busy in another thread");
        __atomic_store_n(&e->state, FAILED, __ATOMIC_RELEASE);
    } else if (e && e->state == COLD) {
        e->pairs += pairs;
        if (m != MODE_BACKGROUND || e->pairs >= threshold()) {
            __atomic_store_n(&e->state, PENDING, __ATOMIC_RELEASE);
            start = 1;
            if (m == MODE_BACKGROUND) inflight++;
        }
    } else if (e) {
        stats.hits++;
    }
    pthread_mutex_unlock(&cache_mu);
    if (k != stack_key) free(k);
    if (!e) return NULL;
    if (start && m == MODE_BACKGROUND) {
        if (!EXIT_GUARDS) start_llvm_once(); /* no exit guard: start LLVM here */
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, compile_thread, e);
        pthread_attr_destroy(&attr);
        if (rc == 0) return NULL;
        compile_thread(e); /* no thread to spare: compile here */
    } else if (start) {
        start_and_compile(e);
    } else if (m != MODE_BACKGROUND) {
        /* Another thread compiles it: force and require wait for it. */
        while (__atomic_load_n(&e->state, __ATOMIC_ACQUIRE) <= PENDING) {
            pthread_mutex_lock(&compile_mu);
            pthread_mutex_unlock(&compile_mu);
        }
    }
    int st = __atomic_load_n(&e->state, __ATOMIC_ACQUIRE);
    if (st == READY) return &e->kernel;
    if (st == FAILED && m == MODE_REQUIRE) {
        *failed = 1;
        kp__fail(ctx, KP_ERR_INTERNAL, "KP_JIT=require: the kernel did not compile: %s", e->msg);
    }
    return NULL;
}

int kp__jit_built(void) { return 1; }

int kp__jit_fail_compiles;
int kp__jit_lse_rows;
int kp__jit_no_exp_signs;
int kp__jit_hold_start;

void kp__jit_stats(kp_jit_stats *out) {
    pthread_mutex_lock(&cache_mu);
    *out = stats;
    pthread_mutex_unlock(&cache_mu);
}
