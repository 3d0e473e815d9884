/*
 * test_kcache.c — the compiled-kernel cache (src/gpu/kcache.c) and the NVRTC
 * path through it (src/gpu/cuda_compile.c). Needs no GPU. Asserts:
 *   - SHA-256 matches the FIPS 180-4 test vectors;
 *   - bytes put under a key come back identical, from memory (a memory hit)
 *     and from disk (a fresh cache on the same directory: a disk hit);
 *   - several processes writing the same and different keys at once leave
 *     every file intact and no temporary behind;
 *   - a truncated file, a flipped byte, a wrong magic, another key's file and
 *     a symbolic link are each rejected (a miss, counted), and the next put
 *     replaces them;
 *   - a directory writable by group or others (0777, 0770), or (when run as
 *     root, so it can be simulated) owned by another user, is refused with a
 *     reason, and the cache still works in memory; KP_CACHE_DIR=off disables it;
 *   - the size bound: KP_CACHE_MAX_SIZE's values (K/M/G, 0, malformed ones
 *     falling back to the default); a put past the bound removes the least
 *     recently used files (a file read from disk since survives, an older
 *     untouched one goes) down to 80%; the total stays under the bound after
 *     every put; 0 keeps everything; names that are not keys, key-named links
 *     and directories, and fresh temporaries are never removed, temporaries
 *     2 hours old are; processes evicting at once read only intact hits or
 *     plain misses;
 *   - NVRTC output goes through the cache: a generated kernel compiled for
 *     sm_90 comes back byte-identical from the cache; the helper kernels
 *     compile; a device newer than NVRTC gets PTX; a compile error carries the
 *     NVRTC log (skipped without NVRTC).
 * The internal sources are compiled into this test (libkp exports kp_* only).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "gpu/cuda_compile.h"
#include "gpu/cuda_helpers.h"
#include "gpu/kcache.h"
#include "gpu/sha256.h"
#include "kp.h"

/* No built-in kernels in this test: it checks the NVRTC + cache path. */
const void *kp__cuda_aot_image(const char *source, size_t source_len) {
    (void)source;
    (void)source_len;
    return NULL;
}

static char root[256];

static void make_dir(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", root, name);
    assert_int_equal(mkdir(out, 0700), 0);
}

static void key_of(kp_kcache_key *k, const char *text) {
    const void *parts[1] = {text};
    size_t lens[1] = {strlen(text)};
    kp__kcache_key(k, 1, parts, lens);
}

/* Deterministic payload of a key: every writer of a key writes the same bytes. */
static unsigned char *payload(const char *text, size_t n) {
    unsigned char *p = malloc(n);
    uint32_t h = 2166136261u;
    for (const char *c = text; *c; c++) h = (h ^ (unsigned char)*c) * 16777619u;
    for (size_t k = 0; k < n; k++) {
        h = h * 1103515245u + 12345u;
        p[k] = (unsigned char)(h >> 16);
    }
    return p;
}

static void expect_hit(kp_kcache *c, const char *text, size_t n) {
    kp_kcache_key k;
    key_of(&k, text);
    void *data = NULL;
    size_t len = 0;
    assert_int_equal(kp__kcache_get(c, &k, &data, &len), 1);
    unsigned char *want = payload(text, n);
    assert_int_equal(len, n);
    assert_memory_equal(data, want, n);
    free(want);
    free(data);
}

static void put(kp_kcache *c, const char *text, size_t n) {
    kp_kcache_key k;
    key_of(&k, text);
    unsigned char *p = payload(text, n);
    kp__kcache_put(c, &k, p, n);
    free(p);
}

static void test_sha256_vectors(void **state) {
    (void)state;
    static const struct {
        const char *in;
        const char *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t t = 0; t < sizeof v / sizeof v[0]; t++) {
        unsigned char d[32];
        char h[65];
        kp__sha256(v[t].in, strlen(v[t].in), d);
        for (int k = 0; k < 32; k++) snprintf(h + 2 * k, 3, "%02x", d[k]);
        assert_string_equal(h, v[t].hex);
    }
    /* one million 'a', fed in uneven pieces */
    kp_sha256 s;
    kp__sha256_init(&s);
    char a[1000];
    memset(a, 'a', sizeof a);
    size_t done = 0, step = 1;
    while (done < 1000000) {
        size_t n = step < 1000000 - done ? step : 1000000 - done;
        if (n > sizeof a) n = sizeof a;
        kp__sha256_update(&s, a, n);
        done += n;
        step = step * 7 % 997 + 1;
    }
    unsigned char d[32];
    char h[65];
    kp__sha256_final(&s, d);
    for (int k = 0; k < 32; k++) snprintf(h + 2 * k, 3, "%02x", d[k]);
    assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_roundtrip_memory_and_disk(void **state) {
    (void)state;
    char dir[300];
    make_dir(dir, sizeof dir, "roundtrip");
    kp_kcache *c = kp__kcache_open(dir);
    assert_non_null(c);
    assert_null(kp__kcache_disabled_reason(c));
    put(c, "kernel A", 1000);
    put(c, "kernel B", 0); /* empty payloads are fine */
    expect_hit(c, "kernel A", 1000);
    expect_hit(c, "kernel B", 0);
    kp_kcache_stats st;
    kp__kcache_get_stats(c, &st);
    assert_int_equal(st.memory_hits, 2);
    assert_int_equal(st.disk_writes, 2);
    kp_kcache_key k;
    key_of(&k, "never stored");
    void *d = NULL;
    size_t n = 0;
    assert_int_equal(kp__kcache_get(c, &k, &d, &n), 0);
    kp__kcache_close(c);

    c = kp__kcache_open(dir); /* a new process, in effect */
    expect_hit(c, "kernel A", 1000);
    expect_hit(c, "kernel A", 1000);
    kp__kcache_get_stats(c, &st);
    assert_int_equal(st.disk_hits, 1);
    assert_int_equal(st.memory_hits, 1);
    /* key parts are length-prefixed: ("ab","c") and ("a","bc") differ */
    kp_kcache_key k1, k2;
    const void *p1[2] = {"ab", "c"}, *p2[2] = {"a", "bc"};
    size_t l1[2] = {2, 1}, l2[2] = {1, 2};
    kp__kcache_key(&k1, 2, p1, l1);
    kp__kcache_key(&k2, 2, p2, l2);
    assert_memory_not_equal(k1.d, k2.d, 32);
    /* the files are private */
    char path[512];
    key_of(&k, "kernel A");
    kp__kcache_path(c, &k, path, sizeof path);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 077, 0);
    kp__kcache_close(c);
}

#define NWRITERS 6
#define NSHARED 8

static void test_concurrent_writers(void **state) {
    (void)state;
    char dir[300];
    make_dir(dir, sizeof dir, "concurrent");
    pid_t pids[NWRITERS];
    for (int w = 0; w < NWRITERS; w++) {
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) {
            kp_kcache *c = kp__kcache_open(dir);
            if (!c || kp__kcache_disabled_reason(c)) _exit(2);
            char text[64];
            for (int round = 0; round < 5; round++) {
                for (int k = 0; k < NSHARED; k++) {
                    snprintf(text, sizeof text, "shared %d", k);
                    put(c, text, 50000 + (size_t)k * 1000);
                }
                snprintf(text, sizeof text, "own %d round %d", w, round);
                put(c, text, 30000);
            }
            kp__kcache_close(c);
            _exit(0);
        }
    }
    for (int w = 0; w < NWRITERS; w++) {
        int status = 0;
        assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    kp_kcache *c = kp__kcache_open(dir);
    char text[64];
    for (int k = 0; k < NSHARED; k++) {
        snprintf(text, sizeof text, "shared %d", k);
        expect_hit(c, text, 50000 + (size_t)k * 1000);
    }
    for (int w = 0; w < NWRITERS; w++)
        for (int round = 0; round < 5; round++) {
            snprintf(text, sizeof text, "own %d round %d", w, round);
            expect_hit(c, text, 30000);
        }
    kp_kcache_stats st;
    kp__kcache_get_stats(c, &st);
    assert_int_equal(st.rejected_files, 0);
    kp__kcache_close(c);
    DIR *d = opendir(dir);
    int files = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.' && (e->d_name[1] == 0 || e->d_name[1] == '.')) continue;
        assert_true(strncmp(e->d_name, ".tmp", 4) != 0); /* no temporary left behind */
        files++;
    }
    closedir(d);
    assert_int_equal(files, NSHARED + NWRITERS * 5);
}

/* Damages key text's file with fn, then asserts a fresh cache rejects it and a put repairs it. */
static void damage_and_repair(const char *dir, const char *text, void (*fn)(const char *path, const char *dir)) {
    kp_kcache *c = kp__kcache_open(dir);
    put(c, text, 5000);
    kp_kcache_key k;
    key_of(&k, text);
    char path[512];
    kp__kcache_path(c, &k, path, sizeof path);
    kp__kcache_close(c);
    fn(path, dir);
    c = kp__kcache_open(dir);
    void *d = NULL;
    size_t n = 0;
    assert_int_equal(kp__kcache_get(c, &k, &d, &n), 0);
    kp_kcache_stats st;
    kp__kcache_get_stats(c, &st);
    assert_int_equal(st.rejected_files, 1);
    put(c, text, 5000); /* what a caller does after a miss: compile and store */
    kp__kcache_close(c);
    c = kp__kcache_open(dir);
    expect_hit(c, text, 5000);
    kp__kcache_get_stats(c, &st);
    assert_int_equal(st.disk_hits, 1);
    kp__kcache_close(c);
}

static void truncate_half(const char *path, const char *dir) {
    (void)dir;
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size / 2), 0);
}
static void truncate_header(const char *path, const char *dir) {
    (void)dir;
    assert_int_equal(truncate(path, 20), 0);
}
static void flip_at(const char *path, off_t at) {
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);
}
static void flip_payload(const char *path, const char *dir) {
    (void)dir;
    flip_at(path, 88 + 1234);
}
static void flip_magic(const char *path, const char *dir) {
    (void)dir;
    flip_at(path, 0);
}
static void flip_length(const char *path, const char *dir) {
    (void)dir;
    flip_at(path, 48);
}
static void other_keys_file(const char *path, const char *dir) {
    /* a valid file, but of another key, under this key's name */
    kp_kcache *c = kp__kcache_open(dir);
    put(c, "another kernel", 5000);
    kp_kcache_key k;
    key_of(&k, "another kernel");
    char other[512];
    kp__kcache_path(c, &k, other, sizeof other);
    kp__kcache_close(c);
    assert_int_equal(rename(other, path), 0);
}
static void symlink_to_valid(const char *path, const char *dir) {
    /* a link to a valid copy of the file: links are never followed */
    char copy[600];
    snprintf(copy, sizeof copy, "%s/../copy-of-entry", dir);
    assert_int_equal(rename(path, copy), 0);
    assert_int_equal(symlink(copy, path), 0);
}

static void test_corrupted_files(void **state) {
    (void)state;
    char dir[300];
    make_dir(dir, sizeof dir, "corrupt");
    damage_and_repair(dir, "truncated", truncate_half);
    damage_and_repair(dir, "header only", truncate_header);
    damage_and_repair(dir, "flipped payload", flip_payload);
    damage_and_repair(dir, "wrong magic", flip_magic);
    damage_and_repair(dir, "wrong length", flip_length);
    damage_and_repair(dir, "other key", other_keys_file);
    damage_and_repair(dir, "symlink", symlink_to_valid);
}

static void expect_refused(const char *dir, const char *why) {
    kp_kcache *c = kp__kcache_open(dir);
    assert_non_null(c);
    const char *r = kp__kcache_disabled_reason(c);
    assert_non_null(r);
    if (!strstr(r, why)) fail_msg("reason '%s' lacks '%s'", r, why);
    /* still a working (memory) cache; nothing written to the refused directory */
    put(c, "in memory", 100);
    expect_hit(c, "in memory", 100);
    kp_kcache_key k;
    key_of(&k, "in memory");
    char path[512];
    kp__kcache_path(c, &k, path, sizeof path);
    assert_string_equal(path, "");
    kp__kcache_close(c);
    DIR *d = opendir(dir);
    if (d) {
        int n = 0;
        for (struct dirent *e; (e = readdir(d)) != NULL;) n += e->d_name[0] != '.';
        closedir(d);
        assert_int_equal(n, 0);
    }
}

static void test_directory_permissions(void **state) {
    (void)state;
    char dir[300];
    make_dir(dir, sizeof dir, "open to all");
    assert_int_equal(chmod(dir, 0777), 0);
    expect_refused(dir, "writable by group or others");
    assert_int_equal(chmod(dir, 0770), 0);
    expect_refused(dir, "writable by group or others");
    assert_int_equal(chmod(dir, 0755), 0); /* readable by others is fine: kernels are not secret */
    kp_kcache *c = kp__kcache_open(dir);
    assert_null(kp__kcache_disabled_reason(c));
    kp__kcache_close(c);
    char file[320];
    snprintf(file, sizeof file, "%s/plain-file", root);
    int fd = open(file, O_CREAT | O_WRONLY, 0600);
    close(fd);
    expect_refused(file, "cannot open cache directory");
    if (geteuid() == 0) { /* root can simulate another user's directory and file */
        char theirs[300];
        make_dir(theirs, sizeof theirs, "theirs");
        assert_int_equal(chown(theirs, 65534, 65534), 0);
        expect_refused(theirs, "not owned by the current user");
        char mine[300];
        make_dir(mine, sizeof mine, "planted");
        c = kp__kcache_open(mine);
        put(c, "planted", 100);
        kp_kcache_key k;
        key_of(&k, "planted");
        char path[512];
        kp__kcache_path(c, &k, path, sizeof path);
        kp__kcache_close(c);
        assert_int_equal(chown(path, 65534, 65534), 0);
        c = kp__kcache_open(mine);
        void *d = NULL;
        size_t n = 0;
        assert_int_equal(kp__kcache_get(c, &k, &d, &n), 0);
        kp__kcache_close(c);
    } else {
        printf("(not root: the other-owner directory and file cases are not simulated)\n");
    }
    /* the default location honours KP_CACHE_DIR, including off */
    setenv("KP_CACHE_DIR", "off", 1);
    c = kp__kcache_open(NULL);
    assert_non_null(kp__kcache_disabled_reason(c));
    assert_non_null(strstr(kp__kcache_disabled_reason(c), "KP_CACHE_DIR=off"));
    kp__kcache_close(c);
    char def[300];
    snprintf(def, sizeof def, "%s/xdg", root);
    unsetenv("KP_CACHE_DIR");
    setenv("XDG_CACHE_HOME", def, 1); /* created, with libkp below it, 0700 */
    c = kp__kcache_open(NULL);
    assert_null(kp__kcache_disabled_reason(c));
    char want[320];
    snprintf(want, sizeof want, "%s/libkp", def);
    assert_string_equal(kp__kcache_dir(c), want);
    struct stat sb;
    assert_int_equal(stat(want, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    kp__kcache_close(c);
}

/* ------------------------------------------------------------ size bound */

#define ENTRY 1000                   /* payload bytes of the size tests' entries */
#define ENTRY_FILE (ENTRY + 88)      /* with kcache's header */

static int is_key_name(const char *name) {
    if (strlen(name) != 64) return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

/* Total bytes of the key-named regular files in dir, and their count. */
static long long cache_bytes(const char *dir, int *count) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    long long total = 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        struct stat sb;
        if (!is_key_name(e->d_name) || fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(sb.st_mode))
            continue;
        total += sb.st_size;
        n++;
    }
    closedir(d);
    if (count) *count = n;
    return total;
}

static int entry_on_disk(kp_kcache *c, const char *text) {
    kp_kcache_key k;
    char path[512];
    key_of(&k, text);
    kp__kcache_path(c, &k, path, sizeof path);
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* Sets text's file's modification time to `ago` seconds in the past. */
static void age_entry(kp_kcache *c, const char *text, int ago) {
    kp_kcache_key k;
    char path[512];
    key_of(&k, text);
    kp__kcache_path(c, &k, path, sizeof path);
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= ago;
    t[1] = t[0];
    assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

static void test_max_size_parsing(void **state) {
    (void)state;
    static const struct {
        const char *text;
        unsigned long long bytes;
    } good[] = {{"0", 0}, {"4096", 4096}, {"4K", 4096}, {"4k", 4096}, {"3M", 3u << 20}, {"2g", 2ull << 30},
                {"18446744073709551615", 18446744073709551615ull}, {"16777215G", 16777215ull << 30}};
    for (size_t t = 0; t < sizeof good / sizeof good[0]; t++) {
        uint64_t v = 1;
        assert_int_equal(kp__kcache_parse_size(good[t].text, &v), 1);
        assert_true(v == good[t].bytes);
    }
    static const char *bad[] = {"", " 5", "5 ", "-5", "+5", "abc", "12X", "1.5G", "4KB", "4KK", "G",
                                "18446744073709551616", "17179869184G", "99999999999999999999999"};
    for (size_t t = 0; t < sizeof bad / sizeof bad[0]; t++) {
        uint64_t v = 7;
        assert_int_equal(kp__kcache_parse_size(bad[t], &v), 0);
        assert_true(v == 7);
    }
    assert_int_equal(kp__kcache_parse_size(NULL, &(uint64_t){0}), 0);

    /* The variable, read at open: unset, valid, malformed (the default, and the cache works). */
    char dir[300];
    make_dir(dir, sizeof dir, "maxsize_env");
    unsetenv("KP_CACHE_MAX_SIZE");
    kp_kcache *c = kp__kcache_open(dir);
    assert_true(kp__kcache_max_size(c) == KP_KCACHE_DEFAULT_MAX_SIZE);
    assert_true(KP_KCACHE_DEFAULT_MAX_SIZE == 256u << 20);
    kp__kcache_close(c);
    setenv("KP_CACHE_MAX_SIZE", "64K", 1);
    c = kp__kcache_open(dir);
    assert_true(kp__kcache_max_size(c) == 65536);
    kp__kcache_close(c);
    for (size_t t = 0; t < sizeof bad / sizeof bad[0]; t++) {
        setenv("KP_CACHE_MAX_SIZE", bad[t], 1);
        c = kp__kcache_open(dir);
        assert_true(kp__kcache_max_size(c) == KP_KCACHE_DEFAULT_MAX_SIZE);
        put(c, bad[t], ENTRY);
        kp__kcache_close(c);
        c = kp__kcache_open(dir);
        expect_hit(c, bad[t], ENTRY);
        kp__kcache_close(c);
    }
    unsetenv("KP_CACHE_MAX_SIZE");
}

/* An eviction spread over puts: with no time to spare, each put removes two
 * files and leaves the rest of the listing to the next puts, without listing
 * the directory again; a file read from disk meanwhile is kept. */
static void test_eviction_spread_over_puts(void **state) {
    (void)state;
    char dir[300], name[16];
    make_dir(dir, sizeof dir, "evict_budget");
    kp_kcache *c = kp__kcache_open(dir);
    kp__kcache_set_max_size(c, 0);
    for (int k = 0; k < 20; k++) {
        snprintf(name, sizeof name, "e%d", k);
        put(c, name, ENTRY);
        age_entry(c, name, 2000 - 60 * k); /* e0 oldest ... e19 newest */
    }
    kp__kcache_close(c);
    c = kp__kcache_open(dir);
    kp__kcache_set_max_size(c, 20 * ENTRY_FILE); /* down to 80%: 16 files */
    kp__kcache_set_evict_budget(c, 0);
    kp_kcache_stats st;
    put(c, "n0", ENTRY); /* 21 files: listed; e0, e1 removed */
    kp__kcache_get_stats(c, &st);
    assert_int_equal(st.size_scans, 1);
    assert_int_equal(st.evicted_files, 2);
    assert_false(entry_on_disk(c, "e0"));
    assert_false(entry_on_disk(c, "e1"));
    assert_true(entry_on_disk(c, "e2"));

    kp_kcache *reader = kp__kcache_open(dir); /* e2 read from disk: used since the listing */
    expect_hit(reader, "e2", ENTRY);
    kp__kcache_close(reader);
    put(c, "n1", ENTRY); /* e2 skipped; e3, e4 removed */
    put(c, "n2", ENTRY); /* e5 removed: the listing's total is down to 16 files */
    put(c, "n3", ENTRY); /* nothing left to do; 19 files fit the bound */
    kp__kcache_get_stats(c, &st);
    assert_int_equal(st.size_scans, 1);
    assert_int_equal(st.evicted_files, 5);
    for (int k = 0; k < 20; k++) {
        snprintf(name, sizeof name, "e%d", k);
        assert_int_equal(entry_on_disk(c, name), k == 2 || k > 5);
    }
    int n = 0;
    assert_true(cache_bytes(dir, &n) == 19 * ENTRY_FILE);
    assert_int_equal(n, 19);
    kp__kcache_close(c);
}

static void test_evicts_least_recently_used(void **state) {
    (void)state;
    char dir[300];
    make_dir(dir, sizeof dir, "lru");
    setenv("KP_CACHE_MAX_SIZE", "8K", 1); /* through the variable, as a user sets it */
    kp_kcache *c = kp__kcache_open(dir);
    unsetenv("KP_CACHE_MAX_SIZE");
    assert_true(kp__kcache_max_size(c) == 8192);
    const char *names[] = {"A", "B", "C", "D", "E", "F"};
    for (int k = 0; k < 6; k++) put(c, names[k], ENTRY);
    for (int k = 0; k < 6; k++) age_entry(c, names[k], 600 - 60 * k); /* A oldest ... F newest */
    kp_kcache_stats st;
    kp__kcache_get_stats(c, &st);
    assert_int_equal(st.size_scans, 1); /* the first put's; the others fit the estimate */
    assert_int_equal(st.evicted_files, 0);

    kp_kcache *reader = kp__kcache_open(dir); /* another process reads A from disk: A is now recent */
    expect_hit(reader, "A", ENTRY);
    kp__kcache_get_stats(reader, &st);
    assert_int_equal(st.disk_hits, 1);
    kp__kcache_close(reader);

    put(c, "G", ENTRY); /* 7 files, 7616 bytes: fits */
    kp__kcache_get_stats(c, &st);
    assert_int_equal(st.evicted_files, 0);
    put(c, "H", ENTRY); /* 8704 > 8192: scan, evict the oldest down to 80% (6553): B then C */
    kp__kcache_get_stats(c, &st);
    assert_int_equal(st.size_scans, 2);
    assert_int_equal(st.evicted_files, 2);
    assert_false(entry_on_disk(c, "B"));
    assert_false(entry_on_disk(c, "C"));
    const char *kept[] = {"A", "D", "E", "F", "G", "H"};
    for (int k = 0; k < 6; k++) assert_true(entry_on_disk(c, kept[k]));
    int n = 0;
    assert_true(cache_bytes(dir, &n) == 6 * ENTRY_FILE);
    assert_int_equal(n, 6);
    kp__kcache_close(c);

    /* Evicted entries are plain misses for a fresh cache; the kept ones hit. */
    c = kp__kcache_open(dir);
    kp_kcache_key k;
    void *d = NULL;
    size_t len = 0;
    key_of(&k, "B");
    assert_int_equal(kp__kcache_get(c, &k, &d, &len), 0);
    for (int j = 0; j < 6; j++) expect_hit(c, kept[j], ENTRY);
    kp__kcache_get_stats(c, &st);
    assert_int_equal(st.rejected_files, 0);
    kp__kcache_close(c);
}

static void test_total_stays_under_bound(void **state) {
    (void)state;
    char dir[300];
    make_dir(dir, sizeof dir, "bound");
    kp_kcache *c = kp__kcache_open(dir);
    kp__kcache_set_max_size(c, 65536);
    char text[32];
    for (int k = 0; k < 200; k++) {
        snprintf(text, sizeof text, "entry %d", k);
        put(c, text, ENTRY + (size_t)(k % 5) * 100);
        assert_true(cache_bytes(dir, NULL) <= 65536);
        assert_true(entry_on_disk(c, text)); /* a put is never undone by its own eviction */
    }
    kp_kcache_stats st;
    kp__kcache_get_stats(c, &st);
    assert_int_equal(st.disk_writes, 200);
    /* 257 KB written through a 64 KB bound: a scan at the first put, then one
     * per ~13 KB (the 20% left free by eviction), ~17 in all, not one per put */
    assert_true(st.size_scans >= 10 && st.size_scans <= 25);
    assert_true(st.evicted_files >= 140);
    /* an entry larger than 80% of the bound evicts all others, not itself */
    kp__kcache_set_max_size(c, 4096);
    put(c, "big", 3500);
    int n = 0;
    assert_true(cache_bytes(dir, &n) == 3500 + 88);
    assert_int_equal(n, 1);
    assert_true(entry_on_disk(c, "big"));
    kp__kcache_close(c);
}

static void test_unbounded(void **state) {
    (void)state;
    char dir[300];
    make_dir(dir, sizeof dir, "unbounded");
    setenv("KP_CACHE_MAX_SIZE", "0", 1);
    kp_kcache *c = kp__kcache_open(dir);
    unsetenv("KP_CACHE_MAX_SIZE");
    assert_true(kp__kcache_max_size(c) == 0);
    char text[32];
    for (int k = 0; k < 50; k++) {
        snprintf(text, sizeof text, "entry %d", k);
        put(c, text, ENTRY);
    }
    int n = 0;
    assert_true(cache_bytes(dir, &n) == 50 * ENTRY_FILE);
    assert_int_equal(n, 50);
    kp_kcache_stats st;
    kp__kcache_get_stats(c, &st);
    assert_int_equal(st.size_scans, 0);
    assert_int_equal(st.evicted_files, 0);
    kp__kcache_close(c);
}

static void write_file(const char *dir, const char *name, size_t n, int ago) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (size_t k = 0; k < n; k++) fputc('x', f);
    fclose(f);
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= ago;
    t[1] = t[0];
    assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

static int exists(const char *dir, const char *name) {
    char path[512];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return lstat(path, &sb) == 0;
}

static void test_foreign_files_kept(void **state) {
    (void)state;
    char dir[300], outside[300], sub[400], path[512];
    make_dir(dir, sizeof dir, "foreign");
    make_dir(outside, sizeof outside, "foreign_target");
    const char *hex64 = "00000000000000000000000000000000000000000000000000000000000000aa";
    const char *foreign[] = {
        "README",                                                             /* the user's note */
        "00000000000000000000000000000000000000000000000000000000000000AA", /* upper case: not ours */
        "0000000000000000000000000000000000000000000000000000000000000a",   /* 62 hex digits */
        "00000000000000000000000000000000000000000000000000000000000000aa.bak",
        ".tmp-0123456789abcdef-0123456789abcdeX", /* not quite a temporary's name */
    };
    for (size_t k = 0; k < sizeof foreign / sizeof foreign[0]; k++) write_file(dir, foreign[k], 4000, 7200);
    /* a key-named link to a file outside, and a key-named directory: neither followed nor removed */
    write_file(outside, "target", 4000, 7200);
    snprintf(path, sizeof path, "%s/%s", dir, hex64);
    char target[400];
    snprintf(target, sizeof target, "%s/target", outside);
    assert_int_equal(symlink(target, path), 0);
    snprintf(sub, sizeof sub, "%s/00000000000000000000000000000000000000000000000000000000000000bb", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    /* a writer's temporary in flight (fresh) stays; a dead writer's (2 hours old) goes */
    const char *live_tmp = ".tmp-0123456789abcdef-0123456789abcdef";
    const char *dead_tmp = ".tmp-fedcba9876543210-fedcba9876543210";
    write_file(dir, live_tmp, 3000, 0);
    write_file(dir, dead_tmp, 3000, 7200);

    kp_kcache *c = kp__kcache_open(dir);
    kp__kcache_set_max_size(c, 4096);
    char text[32];
    for (int k = 0; k < 20; k++) {
        snprintf(text, sizeof text, "entry %d", k);
        put(c, text, ENTRY);
    }
    kp_kcache_stats st;
    kp__kcache_get_stats(c, &st);
    assert_true(st.evicted_files >= 15);
    kp__kcache_close(c);
    assert_true(cache_bytes(dir, NULL) <= 4096); /* foreign files are not counted */
    for (size_t k = 0; k < sizeof foreign / sizeof foreign[0]; k++) assert_true(exists(dir, foreign[k]));
    assert_true(exists(dir, hex64));
    assert_true(exists(outside, "target"));
    struct stat sb;
    assert_int_equal(stat(target, &sb), 0);
    assert_int_equal(sb.st_size, 4000);
    assert_int_equal(stat(sub, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_true(exists(dir, live_tmp));
    assert_false(exists(dir, dead_tmp));
}

#define NEVICTORS 4
#define NEVICT_PUTS 60

/* Each child writes its own entries and reads everyone's while all evict
 * under a small bound: every read is an intact hit or a plain miss. */
static void test_concurrent_eviction(void **state) {
    (void)state;
    char dir[300];
    make_dir(dir, sizeof dir, "concurrent_evict");
    pid_t pids[NEVICTORS];
    for (int w = 0; w < NEVICTORS; w++) {
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) {
            kp_kcache *c = kp__kcache_open(dir);
            if (!c || kp__kcache_disabled_reason(c)) _exit(2);
            kp__kcache_set_max_size(c, 16384);
            char text[64];
            for (int k = 0; k < NEVICT_PUTS; k++) {
                snprintf(text, sizeof text, "writer %d entry %d", w, k);
                put(c, text, ENTRY);
                for (int o = 0; o < NEVICTORS; o++) {
                    kp_kcache *fresh = kp__kcache_open(dir); /* empty memory: reads go to disk */
                    snprintf(text, sizeof text, "writer %d entry %d", o, k > 3 ? k - 3 : 0);
                    kp_kcache_key key;
                    key_of(&key, text);
                    void *d = NULL;
                    size_t len = 0;
                    if (kp__kcache_get(fresh, &key, &d, &len)) {
                        unsigned char *want = payload(text, ENTRY);
                        int same = len == ENTRY && memcmp(d, want, ENTRY) == 0;
                        free(want);
                        free(d);
                        if (!same) _exit(3);
                    }
                    kp_kcache_stats st;
                    kp__kcache_get_stats(fresh, &st);
                    kp__kcache_close(fresh);
                    if (st.rejected_files != 0) _exit(4);
                }
            }
            kp_kcache_stats st;
            kp__kcache_get_stats(c, &st);
            kp__kcache_close(c);
            _exit(st.disk_writes == NEVICT_PUTS && st.evicted_files > 0 ? 0 : 5);
        }
    }
    for (int w = 0; w < NEVICTORS; w++) {
        int status = 0;
        assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    /* Everything left is intact, no temporary is left behind, and the next
     * process's first put brings the total under the bound. */
    kp_kcache *c = kp__kcache_open(dir);
    kp__kcache_set_max_size(c, 16384);
    DIR *d = opendir(dir);
    int files = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.' && (e->d_name[1] == 0 || e->d_name[1] == '.')) continue;
        assert_true(strncmp(e->d_name, ".tmp", 4) != 0);
        assert_true(is_key_name(e->d_name));
        files++;
    }
    closedir(d);
    assert_true(files > 0 && files < NEVICTORS * NEVICT_PUTS);
    char text[64];
    int hits = 0;
    for (int w = 0; w < NEVICTORS; w++)
        for (int k = 0; k < NEVICT_PUTS; k++) {
            snprintf(text, sizeof text, "writer %d entry %d", w, k);
            if (entry_on_disk(c, text)) {
                expect_hit(c, text, ENTRY);
                hits++;
            }
        }
    assert_int_equal(hits, files);
    put(c, "after", ENTRY);
    assert_true(cache_bytes(dir, NULL) <= 16384);
    kp_kcache_stats st;
    kp__kcache_get_stats(c, &st);
    assert_int_equal(st.rejected_files, 0);
    kp__kcache_close(c);
}

static void test_nvrtc_through_cache(void **state) {
    (void)state;
    const char *why = NULL;
    const kp_nvrtc_api *nv = kp__nvrtc_api(&why);
    if (!nv) {
        printf("SKIPPED: %s\n", why);
        skip();
    }
    printf("NVRTC %d.%d\n", nv->major, nv->minor);
    kp_context *ctx;
    kp_formula *f;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(1)"};
    assert_int_equal(kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)", aliases, 4, &f), KP_OK);
    size_t need = 0;
    assert_int_equal(kp_formula_gpu_source(ctx, f, KP_FLOAT32, KP_ENGINE_CUDA, NULL, 0, &need), KP_OK);
    char *src = malloc(need + 1);
    assert_int_equal(kp_formula_gpu_source(ctx, f, KP_FLOAT32, KP_ENGINE_CUDA, src, need + 1, NULL), KP_OK);

    char dir[300], msg[2048];
    make_dir(dir, sizeof dir, "nvrtc");
    kp_kcache *c = kp__kcache_open(dir);
    kp_cuda_image a, b;
    assert_int_equal(kp__cuda_image(c, src, 90, &a, msg, sizeof msg), KP_OK);
    assert_int_equal(a.source, KP_IMAGE_NVRTC);
    assert_string_equal(a.arch, "sm_90");
    assert_int_equal(a.is_ptx, 0);
    assert_true(a.len > 100);
    assert_memory_equal(a.data, "\177ELF", 4); /* a cubin */
    kp__kcache_close(c);
    c = kp__kcache_open(dir); /* another process: from disk */
    assert_int_equal(kp__cuda_image(c, src, 90, &b, msg, sizeof msg), KP_OK);
    assert_int_equal(b.source, KP_IMAGE_CACHE);
    assert_int_equal(b.len, a.len);
    assert_memory_equal(b.data, a.data, a.len);
    kp__cuda_image_free(&b);
    /* another architecture is another key */
    assert_int_equal(kp__cuda_image(c, src, 80, &b, msg, sizeof msg), KP_OK);
    assert_int_equal(b.source, KP_IMAGE_NVRTC);
    assert_string_equal(b.arch, "sm_80");
    kp__cuda_image_free(&b);
    kp__cuda_image_free(&a);

    /* the helper kernels of the CUDA engine compile */
    assert_int_equal(kp__cuda_image(c, kp__cuda_helpers_source, 80, &a, msg, sizeof msg), KP_OK);
    kp__cuda_image_free(&a);
    /* a device newer than this NVRTC: PTX of the newest architecture it knows */
    char arch[32];
    int is_ptx = 0;
    assert_int_equal(kp__nvrtc_target(nv, 999, arch, sizeof arch, &is_ptx), 1);
    assert_int_equal(is_ptx, 1);
    assert_memory_equal(arch, "compute_", 8);
    assert_int_equal(kp__cuda_image(c, src, 999, &a, msg, sizeof msg), KP_OK);
    assert_true(a.is_ptx && strstr((const char *)a.data, ".entry kp_reduce") != NULL);
    assert_int_equal(((const char *)a.data)[a.len - 1], 0); /* PTX stored with its NUL, loadable as is */
    kp__cuda_image_free(&a);
    /* a device older than any architecture NVRTC knows */
    assert_int_equal(kp__nvrtc_target(nv, 10, arch, sizeof arch, &is_ptx), 0);
    assert_int_equal(kp__cuda_image(c, src, 10, &a, msg, sizeof msg), KP_ERR_UNSUPPORTED);
    assert_non_null(strstr(msg, "compute capability 1.0"));
    /* a compile error reports NVRTC's log */
    assert_int_equal(kp__cuda_image(c, "this is not C++;", 80, &a, msg, sizeof msg), KP_ERR_INTERNAL);
    if (!strstr(msg, "error")) fail_msg("no log in '%s'", msg);
    kp__kcache_close(c);
    free(src);
    kp_formula_free(f);
    kp_context_free(ctx);
}

static int setup(void **state) {
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/kp_kcache_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    unsetenv("KP_CACHE_MAX_SIZE"); /* the tests choose their bounds */
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", root, root);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_roundtrip_memory_and_disk),
        cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_corrupted_files),
        cmocka_unit_test(test_directory_permissions),
        cmocka_unit_test(test_max_size_parsing),
        cmocka_unit_test(test_evicts_least_recently_used),
        cmocka_unit_test(test_eviction_spread_over_puts),
        cmocka_unit_test(test_total_stays_under_bound),
        cmocka_unit_test(test_unbounded),
        cmocka_unit_test(test_foreign_files_kept),
        cmocka_unit_test(test_concurrent_eviction),
        cmocka_unit_test(test_nvrtc_through_cache),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
