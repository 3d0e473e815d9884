/*
 * bench_gauss.c — kp_bench: libkp against the plain C loop a user would write.
 *
 * Prints one Markdown table (paste it into docs/benchmarks.md). Each row is a
 * case (a formula given as text, exactly as a user passes it to
 * kp_formula_parse) x a dtype x a size N = M, and reports
 *
 *     pairs/s = N * M / (best time of one call)
 *
 * for libkp (kp_plan_exec through the public API, parse and plan done once
 * outside the timing, as a user would in a loop) and for the plain loop of
 * bench/plain_loop.c (OpenMP over i, plain loop over j, compiled with
 * -O3 -march=native -ffast-math -fopenmp), both on the same number of threads
 * (2 by default), plus the ratio and the normalized difference of the two
 * results, max_i |kp_i - plain_i| / max_i |plain_i|, as a sanity check.
 *
 * Timing: one warm-up call, then the best of `reps` (3) repetitions, each
 * running enough calls to last at least `min_time` (0.3 s); libkp's and the
 * plain loop's repetitions alternate. A measurement stops repeating once it has
 * taken `rep_cap` (5 s), and a single call longer than rep_cap / 2 is the
 * measurement by itself (N = M = 1e5: noise is then negligible, and 3 runs would
 * push the table past 3 minutes); the "runs" column says how many
 * repetitions x calls were timed, the "CPU/wall" column whether another process
 * took the CPU meanwhile (--retry-busy K measures such a row again).
 *
 * Adding rows: append a bench_case to one of the case tables below (a new
 * section, e.g. gradients, is a new table plus one line in main). Data is
 * allocated from the formula's own introspection (kp_formula_arg), so a case
 * only states its formula, its aliases, its parameter values and the plain
 * loop that computes the same thing.
 *
 * Exit status: 0 when every run succeeded and libkp agrees with the plain loop
 * (rel. diff <= 1e-3 in float32, 1e-9 in float64); 1 otherwise. Timing never
 * fails the run. `kp_bench --quick` (N <= 1e4, short timings) is the CI smoke
 * run.
 */
#define _POSIX_C_SOURCE 200809L

#include <kp.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plain_loop.h"

#define BENCH_MAX_ARGS 8

/* ------------------------------------------------------------------ data */

/* The arguments of one case at one size and dtype, laid out as kp_array. */
typedef struct bench_data {
    int64_t n, m;
    kp_dtype dtype;
    int n_args;
    kp_array args[BENCH_MAX_ARGS];
    void *buf[BENCH_MAX_ARGS];
    int64_t out_rows; /* n for axis 1, m for axis 0 */
    int out_dim;
} bench_data;

/* The plain loop of a case: computes the same reduction into out (out_rows x out_dim). */
typedef void (*plain_fn)(const bench_data *d, void *out, int num_threads);

typedef struct bench_case {
    const char *name;     /* row label */
    const char *formula;  /* as a user writes it */
    const char *aliases[BENCH_MAX_ARGS];
    size_t n_aliases;
    double params[BENCH_MAX_ARGS]; /* value of each Pm argument, by position */
    plain_fn plain_f32;
    plain_fn plain_f64;
} bench_case;

/* ------------------------------------------------------------- plain loops */

static void plain_gauss_b1_f32(const bench_data *d, void *out, int t)
{
    plain_gauss3d_b1_f32(d->n, d->m, d->buf[0], d->buf[1], *(const float *)d->buf[2], d->buf[3],
                         out, t);
}
static void plain_gauss_b3_f32(const bench_data *d, void *out, int t)
{
    plain_gauss3d_b3_f32(d->n, d->m, d->buf[0], d->buf[1], *(const float *)d->buf[2], d->buf[3],
                         out, t);
}
static void plain_gauss_b1_f64(const bench_data *d, void *out, int t)
{
    plain_gauss3d_b1_f64(d->n, d->m, d->buf[0], d->buf[1], *(const double *)d->buf[2], d->buf[3],
                         out, t);
}
static void plain_gauss_b3_f64(const bench_data *d, void *out, int t)
{
    plain_gauss3d_b3_f64(d->n, d->m, d->buf[0], d->buf[1], *(const double *)d->buf[2], d->buf[3],
                         out, t);
}

/* ------------------------------------------------------------------ cases */

/* g = 8 is a Gaussian of standard deviation 0.25 on points uniform in [0,1)^3:
 * kernel values span e^0 .. e^-24, all normal floats. */
static const bench_case gauss_cases[] = {
    {"Gaussian, b dim 1",
     "Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)",
     {"x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"},
     4,
     {0, 0, 8.0, 0},
     plain_gauss_b1_f32,
     plain_gauss_b1_f64},
    {"Gaussian, b dim 3",
     "Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)",
     {"x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(3)"},
     4,
     {0, 0, 8.0, 0},
     plain_gauss_b3_f32,
     plain_gauss_b3_f64},
};

/* A later section (e.g. gradients of the Gaussian kernel product) is one more
 * table like gauss_cases and one more run_section() call in main. */

/* --------------------------------------------------------------- options */

typedef struct bench_options {
    int threads;
    int reps;
    double min_time; /* seconds per repetition, at least */
    double rep_cap;  /* stop repeating once a measurement has taken this long */
    int retry_busy;  /* times a row is measured again when another process disturbed it */
    int quick;
    kp_sum_scheme scheme; /* libkp's sum scheme (--sum-scheme) */
} bench_options;

/* ------------------------------------------------------------- utilities */

static void sleep_s(double s)
{
    struct timespec t = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    nanosleep(&t, NULL);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* splitmix64: a fixed, portable stream, so every run sees the same points. */
static uint64_t rng_state = 0x5eed0fba5eULL;
static double rng_uniform(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static size_t dtype_size(kp_dtype t)
{
    return t == KP_FLOAT32 ? sizeof(float) : sizeof(double);
}

static const char *dtype_name(kp_dtype t)
{
    return t == KP_FLOAT32 ? "float32" : "float64";
}

static void free_data(bench_data *d)
{
    for (int k = 0; k < d->n_args; k++)
        free(d->buf[k]);
    memset(d, 0, sizeof *d);
}

/* Allocates and fills every argument of f for sizes n, m: Vi/Vj uniform in
 * [0,1), Pm from c->params. Returns 0 on success. */
static int make_data(const kp_formula *f, const bench_case *c, kp_dtype dtype, int64_t n,
                     int64_t m, bench_data *d)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    d->m = m;
    d->dtype = dtype;
    d->n_args = kp_formula_num_args(f);
    d->out_dim = kp_formula_out_dim(f);
    d->out_rows = kp_formula_axis(f) == 0 ? m : n;
    if (d->n_args > BENCH_MAX_ARGS)
        return 1;
    rng_state = 0x5eed0fba5eULL; /* same data for both dtypes and every case */
    for (int k = 0; k < d->n_args; k++) {
        kp_var_category cat;
        int dim;
        if (kp_formula_arg(f, k, &cat, &dim) != KP_OK)
            return 1;
        const int64_t rows = cat == KP_VAR_I ? n : cat == KP_VAR_J ? m : 1;
        const size_t count = (size_t)(rows * dim);
        d->buf[k] = malloc(count * dtype_size(dtype));
        if (!d->buf[k])
            return 1;
        for (size_t e = 0; e < count; e++) {
            const double v = cat == KP_VAR_PARAM ? c->params[k] : rng_uniform();
            if (dtype == KP_FLOAT32)
                ((float *)d->buf[k])[e] = (float)v;
            else
                ((double *)d->buf[k])[e] = v;
        }
        d->args[k] = cat == KP_VAR_PARAM ? kp_array_1d(d->buf[k], dtype, dim)
                                         : kp_array_2d(d->buf[k], dtype, rows, dim);
    }
    return 0;
}

/* ---------------------------------------------------------------- timing */

typedef int (*call_fn)(void *state); /* one call; returns 0 on success */

typedef struct timing {
    double best;     /* seconds per call, best repetition */
    double cpu;      /* process CPU seconds / wall seconds during that repetition */
    int reps, calls; /* repetitions x calls per repetition actually timed */
    int failed;
    int done;
    call_fn call;
    void *state;
} timing;

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Runs `calls` calls; returns their wall time and sets *cpu (CPU/wall), or -1. */
static double run_calls(timing *r, int calls, double *cpu)
{
    const double c0 = cpu_s(), s = now_s();
    for (int c = 0; c < calls; c++)
        if (r->call(r->state)) {
            r->failed = 1;
            return -1;
        }
    const double t = now_s() - s;
    *cpu = t > 0 ? (cpu_s() - c0) / t : 0;
    return t;
}

static void keep_best(timing *r, double t, int calls, double cpu)
{
    if (t / calls < r->best) {
        r->best = t / calls;
        r->cpu = cpu;
    }
    r->calls = calls;
    r->reps++;
}

/*
 * Times the contenders a and b (libkp and the plain loop) on the same row.
 * Their repetitions alternate (a, b, a, b, ...), so a background process that
 * steals the CPU for a while hurts both rather than one: the ratio is steadier
 * than the absolute numbers. Each contender: one warm-up call, calibrated to
 * min_time per repetition, best of o->reps repetitions; no more repetitions once
 * its measurement has taken rep_cap seconds, and a single call longer than
 * rep_cap / 2 (warm-up included) is the measurement by itself.
 */
static void time_pair(timing *ab, const bench_options *o)
{
    int calls[2];
    for (int k = 0; k < 2; k++) {
        timing *r = &ab[k];
        double cpu, t = run_calls(r, 1, &cpu); /* warm-up: first touch, thread pool */
        if (t < 0)
            return;
        calls[k] = 1;
        if (t > o->rep_cap / 2) {
            keep_best(r, t, 1, cpu);
            r->done = 1;
            continue;
        }
        /* calibrate: enough calls for min_time */
        while (t < o->min_time) {
            calls[k] = (int)((double)calls[k] * 1.2 * o->min_time / (t > 1e-7 ? t : 1e-7)) + 1;
            t = run_calls(r, calls[k], &cpu);
            if (t < 0)
                return;
        }
    }
    double spent[2] = {0, 0};
    for (int rep = 0; rep < o->reps; rep++)
        for (int k = 0; k < 2; k++) {
            timing *r = &ab[k];
            if (r->done)
                continue;
            double cpu;
            const double t = run_calls(r, calls[k], &cpu);
            if (t < 0)
                return;
            keep_best(r, t, calls[k], cpu);
            spent[k] += t;
            if (spent[k] + t > o->rep_cap)
                r->done = 1;
        }
}

typedef struct kp_call {
    kp_plan *plan;
    const bench_data *d;
    kp_array out;
    kp_context *ctx;
} kp_call;

static int call_kp(void *state)
{
    kp_call *s = state;
    kp_status st = kp_plan_exec(s->plan, s->d->args, (size_t)s->d->n_args, &s->out, NULL, NULL);
    if (st != KP_OK) {
        fprintf(stderr, "kp_plan_exec: %s: %s\n", kp_status_string(st),
                kp_context_message(s->ctx));
        return 1;
    }
    return 0;
}

typedef struct plain_call {
    plain_fn fn;
    const bench_data *d;
    void *out;
    int threads;
} plain_call;

static int call_plain(void *state)
{
    plain_call *s = state;
    s->fn(s->d, s->out, s->threads);
    return 0;
}

/* max_i |a_i - b_i| / max_i |b_i| over n entries of dtype t. */
static double rel_diff(const void *a, const void *b, size_t n, kp_dtype t)
{
    double num = 0, den = 0;
    for (size_t e = 0; e < n; e++) {
        const double x = t == KP_FLOAT32 ? (double)((const float *)a)[e] : ((const double *)a)[e];
        const double y = t == KP_FLOAT32 ? (double)((const float *)b)[e] : ((const double *)b)[e];
        const double diff = fabs(x - y);
        if (!(diff <= num)) /* also catches NaN */
            num = diff;
        if (fabs(y) > den)
            den = fabs(y);
    }
    return den > 0 ? num / den : num;
}

/* ------------------------------------------------------------------ table */

/* 1.41e9 rather than printf's 1.41e+09: shorter in a table. */
static void fmt_rate(char *buf, size_t size, double v)
{
    if (!(v > 0) || !isfinite(v)) {
        snprintf(buf, size, "%g", v);
        return;
    }
    int e = (int)floor(log10(v));
    double mant = v / pow(10.0, e);
    if (mant >= 9.995) {
        mant /= 10;
        e++;
    }
    snprintf(buf, size, "%.2fe%d", mant, e);
}

static void print_header(void)
{
    printf("| case | dtype | N = M | libkp pairs/s | plain loop pairs/s | libkp / plain "
           "| rel. diff | CPU/wall (libkp; plain) | runs (libkp; plain) |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---|---|\n");
    fflush(stdout);
}

/* Runs one row; returns 0 when it ran and agreed. */
static int run_row(kp_context *ctx, const bench_case *c, kp_dtype dtype, int64_t n,
                   const bench_options *o, double *plan_time)
{
    kp_formula *f = NULL;
    kp_plan *plan = NULL;
    bench_data d;
    void *out_kp = NULL, *out_plain = NULL;
    int bad = 1;
    memset(&d, 0, sizeof d);

    double t0 = now_s();
    kp_status st = kp_formula_parse(ctx, c->formula, c->aliases, c->n_aliases, &f);
    if (st == KP_OK)
        st = kp_plan_new(ctx, f, dtype, &plan);
    const double tp = now_s() - t0;
    if (tp > *plan_time)
        *plan_time = tp;
    if (st != KP_OK) {
        fprintf(stderr, "%s (%s): %s: %s\n", c->name, dtype_name(dtype), kp_status_string(st),
                kp_context_message(ctx));
        printf("| %s | %s | %lld | error | | | | |\n", c->name, dtype_name(dtype), (long long)n);
        goto done;
    }
    if (make_data(f, c, dtype, n, n, &d)) {
        fprintf(stderr, "%s: cannot allocate the data\n", c->name);
        goto done;
    }
    const size_t out_count = (size_t)d.out_rows * (size_t)d.out_dim;
    out_kp = calloc(out_count, dtype_size(dtype));
    out_plain = calloc(out_count, dtype_size(dtype));
    if (!out_kp || !out_plain)
        goto done;

    kp_call kc = {plan, &d, kp_array_2d(out_kp, dtype, d.out_rows, d.out_dim), ctx};
    plain_call pc = {dtype == KP_FLOAT32 ? c->plain_f32 : c->plain_f64, &d, out_plain, o->threads};
    timing ab[2];
    for (int attempt = 0;; attempt++) {
        const timing fresh[2] = {{1e300, 0, 0, 0, 0, 0, call_kp, &kc},
                                 {1e300, 0, 0, 0, 0, 0, call_plain, &pc}};
        memcpy(ab, fresh, sizeof ab);
        time_pair(ab, o);
        /* Disturbed: a contender got well under one core per thread. */
        const double busy = 0.85 * o->threads;
        if (ab[0].failed || ab[1].failed || attempt >= o->retry_busy ||
            (ab[0].cpu >= busy && ab[1].cpu >= busy))
            break;
        fprintf(stderr, "kp_bench: %s %s N=%lld disturbed (CPU/wall %.1f; %.1f), again in 10 s\n",
                c->name, dtype_name(dtype), (long long)n, ab[0].cpu, ab[1].cpu);
        sleep_s(10);
    }
    const timing tk = ab[0], tpl = ab[1];
    const double pairs = (double)n * (double)n;
    const double diff = tk.failed || tpl.failed ? NAN : rel_diff(out_kp, out_plain, out_count, dtype);
    const double tol = dtype == KP_FLOAT32 ? 1e-3 : 1e-9;

    const int failed = tk.failed || tpl.failed;
    char rk[32], rp[32];
    fmt_rate(rk, sizeof rk, pairs / tk.best);
    fmt_rate(rp, sizeof rp, pairs / tpl.best);
    if (failed)
        printf("| %s | %s | %lld | error | | | | | |\n", c->name, dtype_name(dtype), (long long)n);
    else
        printf("| %s | %s | %lld | %s | %s | %.2f | %.1e%s | %.1f; %.1f | %dx%d; %dx%d |\n",
               c->name, dtype_name(dtype), (long long)n, rk, rp, tpl.best / tk.best, diff,
               diff <= tol ? "" : " (!)", tk.cpu, tpl.cpu, tk.reps, tk.calls, tpl.reps,
               tpl.calls);
    fflush(stdout);
    bad = failed || !(diff <= tol);

done:
    free(out_kp);
    free(out_plain);
    free_data(&d);
    kp_plan_free(plan);
    kp_formula_free(f);
    return bad;
}

static int run_section(kp_context *ctx, const bench_case *cases, size_t n_cases,
                       const int64_t *sizes, size_t n_sizes, const bench_options *o,
                       double *plan_time)
{
    static const kp_dtype dtypes[] = {KP_FLOAT32, KP_FLOAT64};
    int bad = 0;
    for (size_t c = 0; c < n_cases; c++)
        for (size_t t = 0; t < 2; t++)
            for (size_t s = 0; s < n_sizes; s++)
                bad |= run_row(ctx, &cases[c], dtypes[t], sizes[s], o, plan_time);
    return bad;
}

/* ---------------------------------------------------------- machine info */

static void cpuinfo_field(const char *key, char *buf, size_t size)
{
    snprintf(buf, size, "unknown");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp)
        return;
    char line[4096];
    const size_t klen = strlen(key);
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, key, klen) == 0 && (line[klen] == ' ' || line[klen] == '\t')) {
            const char *v = strchr(line, ':');
            if (v) {
                v++;
                while (*v == ' ')
                    v++;
                snprintf(buf, size, "%s", v);
                buf[strcspn(buf, "\n")] = '\0';
            }
            break;
        }
    }
    fclose(fp);
}

static int has_flag(const char *flags, const char *flag)
{
    const size_t len = strlen(flag);
    for (const char *p = strstr(flags, flag); p; p = strstr(p + 1, flag))
        if ((p == flags || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
            return 1;
    return 0;
}

static void print_machine(const bench_options *o)
{
    char model[256], vendor[64], family[16], modelno[16], flags[4096];
    cpuinfo_field("model name", model, sizeof model);
    cpuinfo_field("vendor_id", vendor, sizeof vendor);
    cpuinfo_field("cpu family", family, sizeof family);
    cpuinfo_field("model", modelno, sizeof modelno);
    cpuinfo_field("flags", flags, sizeof flags);
    const char *isa = has_flag(flags, "avx512f") ? "AVX-512"
                      : has_flag(flags, "avx2")  ? "AVX2"
                      : has_flag(flags, "avx")   ? "AVX"
                                                 : "SSE";
    printf("CPU: %s (%s, family %s, model %s), widest SIMD: %s\n", model, vendor, family, modelno,
           isa);
    printf("Cores available: %d; threads used: %d (libkp and plain loop)\n", omp_get_num_procs(),
           o->threads);
    printf("libkp %d.%d.%d; compiler: gcc %s\n", KP_VERSION_MAJOR, KP_VERSION_MINOR,
           KP_VERSION_PATCH, __VERSION__);
    double load = -1;
    FILE *fp = fopen("/proc/loadavg", "r");
    if (fp) {
        if (fscanf(fp, "%lf", &load) != 1)
            load = -1;
        fclose(fp);
    }
    if (load >= 0)
        printf("Load average (1 min) before the run: %.2f%s\n", load,
               load > 0.5 ? "  -- WARNING: the machine is busy, timings are unreliable" : "");
    printf("Timing: best of %d repetition%s of >= %.2g s each (fewer when one measurement "
           "passes %.3g s)\n\n",
           o->reps, o->reps == 1 ? "" : "s", o->min_time, o->rep_cap);
}

/* ------------------------------------------------------------------ main */

static void usage(const char *argv0)
{
    printf("usage: %s [--quick] [--threads T] [--reps R] [--min-time S] [--retry-busy K]\n"
           "          [--sum-scheme block|kahan|plain|exact]\n"
           "  --quick       N = M in {1e3, 1e4}, one short repetition (CI smoke run)\n"
           "  --threads T   threads for libkp and the plain loop (default 2)\n"
           "  --reps R      repetitions, best is kept (default 3)\n"
           "  --min-time S  seconds per repetition, at least (default 0.3)\n"
           "  --retry-busy K  measure a row again, up to K times, when its CPU/wall shows\n"
           "                another process took the CPU (default 0; for shared machines)\n"
           "  --sum-scheme S  libkp's summation (kp_sum_scheme; default block); exact: the\n"
           "                order-independent sums of KP_SUM_EXACT\n",
           argv0);
}

int main(int argc, char **argv)
{
    bench_options o = {2, 3, 0.3, 5.0, 0, 0, KP_SUM_BLOCK};
    static const char *const schemes[] = {[KP_SUM_BLOCK] = "block", [KP_SUM_KAHAN] = "kahan",
                                          [KP_SUM_PLAIN] = "plain", [KP_SUM_EXACT] = "exact"};
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--quick") == 0) {
            o.quick = 1;
        } else if (strcmp(argv[a], "--threads") == 0 && a + 1 < argc) {
            o.threads = atoi(argv[++a]);
        } else if (strcmp(argv[a], "--reps") == 0 && a + 1 < argc) {
            o.reps = atoi(argv[++a]);
        } else if (strcmp(argv[a], "--retry-busy") == 0 && a + 1 < argc) {
            o.retry_busy = atoi(argv[++a]);
        } else if (strcmp(argv[a], "--min-time") == 0 && a + 1 < argc) {
            o.min_time = atof(argv[++a]);
        } else if (strcmp(argv[a], "--sum-scheme") == 0 && a + 1 < argc) {
            const char *name = argv[++a];
            int found = -1;
            for (int k = 0; k < (int)(sizeof schemes / sizeof *schemes); k++)
                if (strcmp(name, schemes[k]) == 0) found = k;
            if (found < 0) {
                usage(argv[0]);
                return 2;
            }
            o.scheme = (kp_sum_scheme)found;
        } else {
            usage(argv[0]);
            return strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0 ? 0 : 2;
        }
    }
    if (o.quick) {
        o.reps = 1;
        o.min_time = 0.02;
    }
    if (o.threads < 1 || o.reps < 1 || !(o.min_time >= 0) || o.retry_busy < 0) {
        usage(argv[0]);
        return 2;
    }

    static const int64_t sizes_full[] = {1000, 10000, 100000};
    static const int64_t sizes_quick[] = {1000, 10000};
    const int64_t *sizes = o.quick ? sizes_quick : sizes_full;
    const size_t n_sizes = o.quick ? 2 : 3;

    kp_context *ctx = NULL;
    if (kp_context_new(&ctx) != KP_OK || kp_context_set_num_threads(ctx, o.threads) != KP_OK ||
        kp_context_set_sum_scheme(ctx, o.scheme) != KP_OK) {
        fprintf(stderr, "kp_bench: cannot create a libkp context\n");
        kp_context_free(ctx);
        return 1;
    }

    print_machine(&o);
    printf("libkp's sum scheme: %s\n\n", schemes[o.scheme]);
    double plan_time = 0;
    const double t0 = now_s();
    printf("### Gaussian kernel product in 3D: a_i = sum_j exp(-g |x_i - y_j|^2) b_j\n\n");
    print_header();
    int bad = run_section(ctx, gauss_cases, sizeof gauss_cases / sizeof gauss_cases[0], sizes,
                          n_sizes, &o, &plan_time);
    printf("\nrel. diff = max_i |libkp_i - plain_i| / max_i |plain_i|; CPU/wall = process CPU time\n"
           "/ wall time of the best repetition (%d = every thread on a core all the time, spin-waits\n"
           "included; less = threads slept or another process took the CPU);\n"
           "runs = repetitions x calls.\n",
           o.threads);
    printf("Parse + plan (not timed above): at most %.3g ms per formula.\n", 1e3 * plan_time);
    printf("Total wall time: %.1f s\n", now_s() - t0);

    kp_context_free(ctx);
    if (bad)
        fprintf(stderr, "kp_bench: some rows failed or disagreed with the plain loop\n");
    return bad ? 1 : 0;
}
