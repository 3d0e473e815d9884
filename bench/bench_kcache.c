/*
 * kp_bench_kcache — the costs of the disk cache's size bound (src/gpu/kcache.c):
 * a put that does not scan, the first put of a process (which scans the
 * directory), and the puts that evict. Fills a fresh temporary directory with
 * --files entries of 6000 bytes (the JIT's files are 1.2-18 KB, 6.4 KB on
 * average), so 40000 files is a full directory at the default 256 MiB bound.
 *   kp_bench_kcache [--files N] [--quick]      (--quick: 500 files, for CI)
 * Prints times; fails only when the cache misbehaves (no scan, no eviction).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpu/kcache.h"

#define PAYLOAD 6000

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void put_entry(kp_kcache *c, int i, const unsigned char *buf) {
    char text[32];
    snprintf(text, sizeof text, "entry %d", i);
    const void *parts[1] = {text};
    size_t lens[1] = {strlen(text)};
    kp_kcache_key k;
    kp__kcache_key(&k, 1, parts, lens);
    kp__kcache_put(c, &k, buf, PAYLOAD);
}

/* Times one put on a fresh cache (a new process, in effect) with the given bound. */
static double first_put_ms(const char *dir, uint64_t bound, int id, const unsigned char *buf, kp_kcache_stats *st) {
    kp_kcache *c = kp__kcache_open(dir);
    kp__kcache_set_max_size(c, bound);
    double t0 = now_ms();
    put_entry(c, id, buf);
    double t = now_ms() - t0;
    kp__kcache_get_stats(c, st);
    kp__kcache_close(c);
    return t;
}

int main(int argc, char **argv) {
    int nfiles = 40000;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--quick") == 0) nfiles = 500;
        else if (strcmp(argv[a], "--files") == 0 && a + 1 < argc) nfiles = atoi(argv[++a]);
        else {
            fprintf(stderr, "usage: kp_bench_kcache [--files N] [--quick]\n");
            return 2;
        }
    }
    if (nfiles < 10) nfiles = 10;
    const char *tmp = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/kp_bench_kcache_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    unsigned char *buf = calloc(1, PAYLOAD);
    int bad = !buf;

    kp_kcache *c = kp__kcache_open(dir);
    kp__kcache_set_max_size(c, 0);
    double t0 = now_ms();
    for (int i = 0; !bad && i < nfiles; i++) put_entry(c, i, buf);
    double fill = now_ms() - t0;
    kp__kcache_close(c);
    printf("%d puts of %d bytes, unbounded (no scan): %.3f ms each\n", nfiles, PAYLOAD, fill / nfiles);

    kp_kcache_stats st;
    uint64_t total = (uint64_t)nfiles * (PAYLOAD + 88), roomy = total * 2;
    for (int rep = 0; !bad && rep < 3; rep++) {
        double t = first_put_ms(dir, roomy, nfiles + rep, buf, &st);
        printf("first put of a process, scan of %d files, nothing evicted: %.2f ms\n", nfiles + rep, t);
        bad |= st.size_scans != 1 || st.evicted_files != 0;
    }
    /* a bound 10% under the total: the scan, then eviction down to 80% of it,
     * a bounded time per put, spread over the puts that follow */
    if (!bad) {
        kp_kcache *cache = kp__kcache_open(dir);
        kp__kcache_set_max_size(cache, total * 9 / 10);
        double first = 0, most = 0, all = 0;
        long evicted = -1, first_evicted = 0;
        int puts = 0;
        for (; puts < nfiles; puts++) {
            double t1 = now_ms();
            put_entry(cache, nfiles + 10 + puts, buf);
            double t = now_ms() - t1;
            kp__kcache_get_stats(cache, &st);
            if (puts == 0) first = t, first_evicted = st.evicted_files;
            if (st.evicted_files == evicted) break; /* this put had nothing left to remove */
            evicted = st.evicted_files;
            most = t > most ? t : most;
            all += t;
        }
        kp__kcache_close(cache);
        printf("past the bound: the first put (scan + eviction of %ld files) %.2f ms; eviction of %ld files spread "
               "over %d puts, %.2f ms at most, %.2f ms in all (%.3f ms per file evicted)\n",
               first_evicted, first, evicted, puts, most, all, evicted > 0 ? all / (double)evicted : 0.0);
        bad |= st.size_scans != 1 || evicted < nfiles / 5;
    }

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    bad |= system(cmd) != 0;
    free(buf);
    if (bad) fprintf(stderr, "kp_bench_kcache: the cache did not scan or evict as expected\n");
    return bad;
}
