/*
 * test_jit_cache.c — the CPU engine's compiled kernels on disk (src/jit/jit.c,
 * through gpu/kcache.c), and exit() while a kernel compiles in the background.
 *
 * Every scenario runs the formulas below in child processes (this binary,
 * "child OUT"), each with the environment the scenario gives it; a child
 * compiles (KP_JIT=require) every formula, checks it against the interpreter
 * (within 1e-5 / 1e-12 of the largest output, indices identical) and writes
 * its JIT counters and outputs to OUT. The cache directories are temporary
 * (never the user's ~/.cache). Asserts:
 *   - a kernel compiled in one process is a disk hit in the next: every
 *     formula loaded, none compiled, outputs bit-identical to the compiling
 *     process's (prints compile and load seconds per formula);
 *   - a cache file with a flipped byte, and one truncated, are misses: those
 *     kernels are compiled (same outputs) and their files replaced (the next
 *     process loads all of them);
 *   - a file that passes the cache's checks but holds no valid object (LLVM
 *     refuses it) falls back to compiling, and is replaced;
 *   - a cache directory writable by its group is refused: kernels compile,
 *     nothing is written there, the next process compiles again;
 *   - KP_CACHE_DIR=off writes nothing (neither $XDG_CACHE_HOME nor $HOME);
 *   - exit() from main right after the call that starts a background compile
 *     (KP_JIT unset, KP_JIT_THRESHOLD=1), made by main or by another thread:
 *     25 processes each, every one exits normally within 60 s, and at least
 *     half of them called exit() before the compile was done;
 *   - that call returns while LLVM's start is held (kp__jit_hold_start); a
 *     child forked then computes on the interpreter, fails KP_JIT=require
 *     with a message, and exits; once released, the kernel compiles and runs.
 * Without the compiler (KP_JIT=OFF builds) it prints SKIPPED and exits 77.
 */
#define _GNU_SOURCE /* mkdtemp, dirent */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpu/kcache.h"
#include "jit/jit.h"
#include "kp_test_util.h"

#include "jit_data.h"

enum { NF = 4, MAXOUT = M * 4 };

typedef struct formula {
    const char *text;
    kp_dtype dtype;
    int dout, didx;
} formula;

/* One of each kernel mode but joint: KP_JIT_SUM, KP_JIT_LSE (float64), KP_JIT_TILES (selected indices). */
static const formula formulas[NF] = {
    {"Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)", KP_FLOAT32, 2, 0},
    {"Sum_Reduction(Inv(IntCst(1)+SqDist(x,y)*g)*b, 0)", KP_FLOAT64, 2, 0},
    {"LogSumExp_Reduction(Log(1 + SqDist(x,y)) - (x|y)*b, 1)", KP_FLOAT64, 2, 0},
    {"ArgKMin_Reduction(SqDist(x,y), 4, 1)", KP_FLOAT32, 0, 4},
};

/* What a child writes: its counters, each formula's compile and load seconds, its outputs. */
typedef struct report {
    kp_jit_stats stats;
    double compile_s[NF], load_s[NF];
    double out[NF][MAXOUT];
    int64_t idx[NF][MAXOUT];
} report;

static kp_status run(kp_context *ctx, const formula *f, const data *d, double *out, int64_t *idx) {
    kpt_arg args[4] = {{d->x, N, 3}, {d->y, M, 3}, {&d->g, -1, 1}, {d->b, M, 2}};
    int axis = f->text[strlen(f->text) - 2] - '0';
    return kpt_run(ctx, KPT_VIA_PLAN, f->text, aliases, 4, f->dtype, args, 4, axis == 1 ? N : M, f->dout,
                   f->dout ? out : NULL, f->didx, f->didx ? idx : NULL, NULL);
}

static size_t rows_of(const formula *f) { return f->text[strlen(f->text) - 2] == '1' ? N : M; }

/* ------------------------------------------------------------- children */

/* Every formula on the interpreter, then compiled; 0 when all agree. */
static int child(const char *out_path) {
    static report r;
    static data d;
    static double ref[MAXOUT], scale[MAXOUT];
    static int64_t iref[MAXOUT];
    fill(&d);
    kp_context *ctx = NULL;
    if (kp_context_new(&ctx) != KP_OK) return 3;
    int bad = 0;
    for (int k = 0; k < NF; k++) {
        const formula *f = &formulas[k];
        size_t nout = rows_of(f) * (size_t)f->dout, nidx = rows_of(f) * (size_t)f->didx;
        setenv("KP_JIT", "off", 1);
        if (run(ctx, f, &d, ref, iref) != KP_OK) return 4;
        kp_jit_stats s0, s1;
        kp__jit_stats(&s0);
        setenv("KP_JIT", "require", 1);
        if (run(ctx, f, &d, r.out[k], r.idx[k]) != KP_OK) {
            fprintf(stderr, "%s: %s\n", f->text, kp_context_message(ctx));
            return 5;
        }
        kp__jit_stats(&s1);
        r.compile_s[k] = s1.compile_seconds - s0.compile_seconds;
        r.load_s[k] = s1.load_seconds - s0.load_seconds;
        double m = 1;
        for (size_t i = 0; i < nout; i++) m = fabs(ref[i]) > m ? fabs(ref[i]) : m;
        for (size_t i = 0; i < nout; i++) scale[i] = m;
        bad += kpt_check(f->text, r.out[k], ref, scale, nout, f->dtype == KP_FLOAT32 ? 1e-5 : 1e-12, 0) != 0;
        bad += kpt_check_index(f->text, r.idx[k], iref, nidx) != 0;
    }
    kp__jit_stats(&r.stats);
    kp_context_free(ctx);
    FILE *fp = fopen(out_path, "wb");
    if (!fp || fwrite(&r, sizeof r, 1, fp) != 1 || fclose(fp) != 0) return 6;
    return bad ? 2 : 0;
}

enum { EXIT_LATE = 9 };

static int exit_code;
static data exit_data;

/* One call on the first formula; 0 if it went well. */
static void *call_once(void *arg) {
    static double out[N * 2];
    kp_context *ctx = NULL;
    int bad = kp_context_new(&ctx) != KP_OK || run(ctx, &formulas[0], &exit_data, out, NULL) != KP_OK;
    kp_context_free(ctx);
    *(int *)arg = bad;
    return NULL;
}

/* One call that starts a background compile, made by main or by another
 * thread, then exit() from main. */
static int child_exit(int from_thread) {
    fill(&exit_data);
    int bad = 0;
    pthread_t t;
    if (!from_thread) call_once(&bad);
    else if (pthread_create(&t, NULL, call_once, &bad) != 0 || pthread_join(t, NULL) != 0) return 6;
    if (bad) return 4;
    kp_jit_stats s;
    kp__jit_stats(&s);
    /* 0: exit() called while LLVM was starting or compiling; EXIT_LATE: it was already done (a loaded machine). */
    exit_code = s.compiled == 0 ? 0 : EXIT_LATE;
    exit(exit_code);
}

/* The first formula on the interpreter and as ctx's calls run it; 0 if they agree. */
static int agrees(kp_context *ctx) {
    static double ref[N * 2], out[N * 2], scale[N * 2];
    const char *mode = getenv("KP_JIT");
    char saved[16];
    snprintf(saved, sizeof saved, "%s", mode ? mode : "");
    setenv("KP_JIT", "off", 1);
    if (run(ctx, &formulas[0], &exit_data, ref, NULL) != KP_OK) return 1;
    setenv("KP_JIT", saved, 1);
    if (run(ctx, &formulas[0], &exit_data, out, NULL) != KP_OK) return 1;
    for (size_t i = 0; i < N * 2; i++) scale[i] = 1;
    return kpt_check(formulas[0].text, out, ref, scale, N * 2, 1e-5, 0) != 0;
}

/* A child forked while LLVM's start is pending: it compiles nothing (require
 * says why), computes on the interpreter, and exits without waiting. */
static int forked_child(void) {
    alarm(20);
    kp_context *ctx = NULL;
    if (kp_context_new(&ctx) != KP_OK || agrees(ctx)) _exit(20);
    setenv("KP_JIT", "require", 1);
    static double out[MAXOUT];
    kp_status st = run(ctx, &formulas[1], &exit_data, out, NULL);
    if (st == KP_OK || !strstr(kp_context_message(ctx), "forked")) _exit(21);
    kp_jit_stats s;
    kp__jit_stats(&s);
    if (s.compiled != 0 || s.llvm_load_seconds != 0) _exit(22);
    kp_context_free(ctx);
    exit(0);
}

/* The steps of child_no_wait taken while LLVM's start is held: the call that
 * crosses the threshold returns (were it to wait, it would never return),
 * nothing is loaded yet, and a child forked then exits; 0 if all went so. */
static int while_held(kp_context *ctx) {
    if (agrees(ctx)) return 3;
    kp_jit_stats s;
    kp__jit_stats(&s);
    if (s.compiled != 0 || s.llvm_load_seconds != 0) return 4;
    pid_t pid = fork();
    if (pid < 0) return 5;
    if (pid == 0) forked_child();
    int status;
    if (waitpid(pid, &status, 0) != pid) return 6;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "forked child: %s %d\n", WIFEXITED(status) ? "exit" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return 7;
    }
    return 0;
}

/* while_held's steps; then, released, the kernel compiles and the next call runs it. */
static int child_no_wait(void) {
    fill(&exit_data);
    kp_context *ctx = NULL;
    if (kp_context_new(&ctx) != KP_OK) return 2;
    kp__jit_hold_start = 1;
    int bad = while_held(ctx);
    /* released even after a failure: exit() waits for the start */
    __atomic_store_n(&kp__jit_hold_start, 0, __ATOMIC_RELEASE);
    if (bad) return bad;
    kp_jit_stats s;
    kp__jit_stats(&s);
    for (int waited = 0; s.compiled == 0 && waited < 30000; waited++) {
        nanosleep(&(struct timespec){0, 1000000}, NULL);
        kp__jit_stats(&s);
    }
    if (s.compiled != 1) return 8;
    if (agrees(ctx)) return 9;
    kp_jit_stats after;
    kp__jit_stats(&after);
    kp_context_free(ctx);
    return after.hits > s.hits ? 0 : 10;
}

/* ------------------------------------------------------------- the parent */

/* Runs this binary as "child OUT" (or "exit_main", "exit_worker", "no_wait") with env
 * (NAME=VALUE, NAME= unsets); returns its wait status. */
static int spawn(const char *what, const char *out, const char *const *env) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (const char *const *e = env; e && *e; e++) {
            char name[256];
            const char *eq = strchr(*e, '=');
            snprintf(name, sizeof name, "%.*s", (int)(eq - *e), *e);
            if (eq[1]) setenv(name, eq + 1, 1);
            else unsetenv(name);
        }
        alarm(60); /* a hang ends as SIGALRM */
        execl("/proc/self/exe", "test_jit_cache", what, out ? out : "", (char *)NULL);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static char out_path[] = "/tmp/kp_jit_cache_out_XXXXXX";

/* A child run on cache directory dir (env as spawn's, KP_CACHE_DIR first); its report in *r. */
static void run_child(const char *const *env, report *r) {
    int status = spawn("child", out_path, env);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        print_error("child failed: %s %d\n", WIFEXITED(status) ? "exit" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    FILE *fp = fopen(out_path, "rb");
    assert_non_null(fp);
    assert_int_equal(fread(r, sizeof *r, 1, fp), 1);
    fclose(fp);
}

static void run_in(const char *dir, report *r) {
    char v[512];
    snprintf(v, sizeof v, "KP_CACHE_DIR=%s", dir);
    const char *env[] = {v, NULL};
    run_child(env, r);
}

static void same_outputs(const report *a, const report *b) {
    for (int k = 0; k < NF; k++) {
        size_t nout = rows_of(&formulas[k]) * (size_t)formulas[k].dout;
        size_t nidx = rows_of(&formulas[k]) * (size_t)formulas[k].didx;
        if (memcmp(a->out[k], b->out[k], nout * sizeof(double)) != 0 ||
            memcmp(a->idx[k], b->idx[k], nidx * sizeof(int64_t)) != 0)
            print_error("%s: outputs differ between the processes\n", formulas[k].text);
        assert_memory_equal(a->out[k], b->out[k], nout * sizeof(double));
        assert_memory_equal(a->idx[k], b->idx[k], nidx * sizeof(int64_t));
    }
}

static char *new_dir(mode_t mode) {
    char *dir = strdup("/tmp/kp_jit_cache_XXXXXX");
    assert_non_null(dir);
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chmod(dir, mode), 0);
    return dir;
}

/* The regular files of dir (cache files; no temporaries), sorted; how many. */
static int list_files(const char *dir, char names[][256], int max) {
    DIR *dd = opendir(dir);
    assert_non_null(dd);
    int n = 0;
    for (struct dirent *de; (de = readdir(dd)) != NULL;) {
        if (de->d_name[0] == '.') continue;
        assert_true(n < max);
        snprintf(names[n++], 256, "%s", de->d_name);
    }
    closedir(dd);
    for (int i = 1; i < n; i++) /* insertion sort: a stable order for "the first file" */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char t[256];
            memcpy(t, names[j], 256), memcpy(names[j], names[j - 1], 256), memcpy(names[j - 1], t, 256);
        }
    return n;
}

/* Entries of dir, recursively, counting directories too. */
static int count_entries(const char *dir) {
    DIR *dd = opendir(dir);
    assert_non_null(dd);
    int n = 0;
    for (struct dirent *de; (de = readdir(dd)) != NULL;) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        n++;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) n += count_entries(sub);
    }
    closedir(dd);
    return n;
}

static void remove_tree(const char *dir) {
    DIR *dd = opendir(dir);
    if (!dd) return;
    for (struct dirent *de; (de = readdir(dd)) != NULL;) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(sub);
        else unlink(sub);
    }
    closedir(dd);
    rmdir(dir);
}

static off_t file_size(const char *dir, const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return st.st_size;
}

static report ra, rb, rc;

static void test_disk_hit(void **state) {
    (void)state;
    char *dir = new_dir(0700), names[16][256];
    run_in(dir, &ra);
    assert_int_equal(ra.stats.compiled, NF);
    assert_int_equal(ra.stats.disk_hits, 0);
    assert_int_equal(list_files(dir, names, 16), NF);
    run_in(dir, &rb);
    assert_int_equal(rb.stats.compiled, NF);
    assert_int_equal(rb.stats.disk_hits, NF);
    same_outputs(&ra, &rb);
    for (int k = 0; k < NF; k++)
        print_message("%-55s %s: compiled in %6.1f ms, loaded in %5.2f ms\n", formulas[k].text,
                      kpt_dtype_name(formulas[k].dtype), 1e3 * ra.compile_s[k], 1e3 * rb.load_s[k]);
    print_message("once per process: libLLVM loaded and the JIT made in %.1f ms, warm-up %.1f ms\n",
                  1e3 * rb.stats.llvm_load_seconds, 1e3 * rb.stats.warm_up_seconds);
    remove_tree(dir);
    free(dir);
}

/* Flip a byte of the payload of file 0, truncate file 1 (both then fail the cache's checks). */
static void test_corrupt_files(void **state) {
    (void)state;
    char *dir = new_dir(0700), names[16][256], p[1024];
    run_in(dir, &ra);
    assert_int_equal(list_files(dir, names, 16), NF);
    off_t size0 = file_size(dir, names[0]), size1 = file_size(dir, names[1]);
    snprintf(p, sizeof p, "%s/%s", dir, names[0]);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    unsigned char byte;
    assert_int_equal(pread(fd, &byte, 1, size0 / 2), 1);
    byte ^= 0x40;
    assert_int_equal(pwrite(fd, &byte, 1, size0 / 2), 1);
    close(fd);
    snprintf(p, sizeof p, "%s/%s", dir, names[1]);
    assert_int_equal(truncate(p, size1 / 2), 0);
    run_in(dir, &rb);
    assert_int_equal(rb.stats.compiled, NF);
    assert_int_equal(rb.stats.disk_hits, NF - 2);
    same_outputs(&ra, &rb);
    assert_int_equal(file_size(dir, names[1]), size1); /* replaced */
    run_in(dir, &rc);
    assert_int_equal(rc.stats.disk_hits, NF);
    same_outputs(&ra, &rc);
    remove_tree(dir);
    free(dir);
}

/* File 0 rewritten through the cache (valid header and checksum): its kernel's name, then bytes that are no object. */
static void test_refused_object(void **state) {
    (void)state;
    char *dir = new_dir(0700), names[16][256], p[1024];
    run_in(dir, &ra);
    assert_int_equal(list_files(dir, names, 16), NF);
    snprintf(p, sizeof p, "%s/%s", dir, names[0]);
    FILE *fp = fopen(p, "rb");
    assert_non_null(fp);
    unsigned char head[88 + 1 + 255];
    assert_int_equal(fread(head, 1, sizeof head, fp), sizeof head);
    fclose(fp);
    kp_kcache_key key;
    memcpy(key.d, head + 16, sizeof key.d); /* kcache's header: magic 8, format 4, size 4, key 32 */
    size_t nl = head[88];
    unsigned char payload[1 + 255 + 512];
    memcpy(payload, head + 88, 1 + nl);
    memset(payload + 1 + nl, 0xab, 512);
    kp_kcache *c = kp__kcache_open(dir);
    assert_non_null(c);
    assert_null(kp__kcache_disabled_reason(c));
    assert_int_equal(kp__kcache_put(c, &key, payload, 1 + nl + 512), 1);
    kp__kcache_close(c);
    run_in(dir, &rb);
    assert_int_equal(rb.stats.compiled, NF);
    assert_int_equal(rb.stats.disk_hits, NF - 1);
    assert_int_equal(rb.stats.failed, 0);
    same_outputs(&ra, &rb);
    run_in(dir, &rc);
    assert_int_equal(rc.stats.disk_hits, NF);
    same_outputs(&ra, &rc);
    remove_tree(dir);
    free(dir);
}

static void test_group_writable_dir(void **state) {
    (void)state;
    char *dir = new_dir(0770);
    run_in(dir, &ra);
    assert_int_equal(ra.stats.compiled, NF);
    assert_int_equal(ra.stats.disk_hits, 0);
    assert_int_equal(count_entries(dir), 0);
    run_in(dir, &rb);
    assert_int_equal(rb.stats.disk_hits, 0);
    assert_int_equal(count_entries(dir), 0);
    same_outputs(&ra, &rb);
    remove_tree(dir);
    free(dir);
}

static void test_cache_off(void **state) {
    (void)state;
    char *home = new_dir(0700), v_xdg[512], v_home[512];
    snprintf(v_xdg, sizeof v_xdg, "XDG_CACHE_HOME=%s", home);
    snprintf(v_home, sizeof v_home, "HOME=%s", home);
    const char *env[] = {"KP_CACHE_DIR=off", v_xdg, v_home, NULL};
    run_child(env, &ra);
    assert_int_equal(ra.stats.compiled, NF);
    assert_int_equal(ra.stats.disk_hits, 0);
    run_child(env, &rb);
    assert_int_equal(rb.stats.disk_hits, 0);
    assert_int_equal(count_entries(home), 0);
    /* The same environment without "off" does write there: the check above can fail. */
    const char *on[] = {"KP_CACHE_DIR=", v_xdg, v_home, NULL};
    run_child(on, &rc);
    assert_true(count_entries(home) > 0);
    remove_tree(home);
    free(home);
}

static void exit_loop(const char *what) {
    const char *env[] = {"KP_JIT=", "KP_JIT_THRESHOLD=1", "KP_CACHE_DIR=off", NULL};
    int in_flight = 0;
    for (int k = 0; k < 25; k++) {
        int status = spawn(what, NULL, env);
        int ok = WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == EXIT_LATE);
        if (!ok)
            print_error("%s, process %d: %s %d\n", what, k, WIFEXITED(status) ? "exit" : "signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        assert_true(ok);
        in_flight += WEXITSTATUS(status) == 0;
    }
    print_message("%s: %d of 25 processes called exit() with the compile in flight\n", what, in_flight);
    assert_true(in_flight >= 12); /* else the test did not test what it says */
}

static void test_exit_during_compile(void **state) {
    (void)state;
    exit_loop("exit_main");
    exit_loop("exit_worker");
}

static void test_no_wait(void **state) {
    (void)state;
    const char *env[] = {"KP_JIT=", "KP_JIT_THRESHOLD=1", "KP_CACHE_DIR=off", NULL};
    int status = spawn("no_wait", NULL, env);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        print_error("no_wait: %s %d\n", WIFEXITED(status) ? "exit" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(int argc, char **argv) {
    if (!kp__jit_built()) {
        printf("SKIPPED: libkp built without the compiler (KP_JIT=OFF)\n");
        return 77;
    }
    if (argc > 2 && strcmp(argv[1], "child") == 0) return child(argv[2]);
    if (argc > 1 && strcmp(argv[1], "exit_main") == 0) return child_exit(0);
    if (argc > 1 && strcmp(argv[1], "exit_worker") == 0) return child_exit(1);
    if (argc > 1 && strcmp(argv[1], "no_wait") == 0) return child_no_wait();
    int fd = mkstemp(out_path);
    if (fd < 0) return 1;
    close(fd);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disk_hit),         cmocka_unit_test(test_corrupt_files),
        cmocka_unit_test(test_refused_object),   cmocka_unit_test(test_group_writable_dir),
        cmocka_unit_test(test_cache_off),        cmocka_unit_test(test_exit_during_compile),
        cmocka_unit_test(test_no_wait),
    };
    int failures = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(out_path);
    return failures;
}
