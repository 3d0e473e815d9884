/*
 * replay_main.c — runs a fuzz target over saved inputs without libFuzzer, so
 * that any compiler's build (the Release and sanitizer suites) replays the
 * corpus and every crash ever found: usage: fuzz_<target>_replay FILE|DIR...
 * Prints the number of inputs and the slowest one with its time (wall clock,
 * in this process: what libFuzzer's -timeout measures, without start-up).
 * Exit status 0 when every input ran (a failed check traps).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static double slowest = 0;
static char slowest_name[1024];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int run_file(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 1;
    }
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(fp);
                return 1;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        if (got == 0) break;
        n += got;
    }
    fclose(fp);
    double t0 = now();
    LLVMFuzzerTestOneInput(buf, n);
    double dt = now() - t0;
    if (dt > slowest) {
        slowest = dt;
        snprintf(slowest_name, sizeof slowest_name, "%s", path);
    }
    free(buf);
    return 0;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    int failed = 0;
    long count = 0;
    for (int a = 1; a < argc; a++) {
        struct stat stb;
        if (stat(argv[a], &stb) != 0) {
            fprintf(stderr, "replay: no such file or directory: %s\n", argv[a]);
            return 1;
        }
        if (!S_ISDIR(stb.st_mode)) {
            failed |= run_file(argv[a]);
            count++;
            continue;
        }
        DIR *d = opendir(argv[a]);
        if (!d) return 1;
        char **names = NULL;
        size_t n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char **nn = realloc(names, (n + 1) * sizeof *names);
            if (!nn) return 1;
            names = nn;
            size_t len = strlen(argv[a]) + strlen(e->d_name) + 2;
            names[n] = malloc(len);
            snprintf(names[n++], len, "%s/%s", argv[a], e->d_name);
        }
        closedir(d);
        if (n) qsort(names, n, sizeof *names, cmp); /* a fixed order */
        for (size_t k = 0; k < n; k++) {
            failed |= run_file(names[k]);
            count++;
            free(names[k]);
        }
        free(names);
    }
    printf("replay: %ld inputs; slowest %.3f s (%s)\n", count, slowest, slowest_name);
    return failed;
}
