/*
 * demo.c — kp_demo, the first thing to run (scripts/demo.sh builds and runs it).
 *
 * Two clouds of N = M = 200,000 random points in [0,1)^3 (float32, fixed seed).
 * The dense N x M float32 matrix of any pairwise quantity would need 160 GB;
 * libkp computes reductions over it in O(N + M) memory:
 *
 *   1. Gaussian kernel product   a_i = sum_j exp(-g |x_i - y_j|^2) b_j
 *   2. log-sum-exp               l_i = log sum_j exp(-g |x_i - y_j|^2)
 *   3. 5 nearest neighbours      the 5 smallest |x_i - y_j|^2 and their j
 *
 * Each formula is given as text and run through kp_formula_parse, kp_plan_new
 * and kp_plan_exec. To show progress, the i range is cut into 10 chunks: each
 * chunk is one kp_plan_exec on a row slice of x and of the outputs (plain
 * pointer offsets, no copy). A handful of rows is checked against a direct
 * double-precision loop.
 *
 * usage: kp_demo [N]    (N = M, default 200000); exit status 0 when all checks pass.
 * KP_NUM_THREADS sets the number of threads (default: all cores).
 */
#define _POSIX_C_SOURCE 200809L

#include <kp.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define DIM 3
#define KNN 5
#define N_CHUNKS 10
#define N_CHECK 8

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* splitmix64, fixed seed: the same clouds on every machine. */
static uint64_t rng_state = 42;
static float rng_uniform(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f); /* 24 random bits: exact in float */
}

static void print_bytes(double bytes)
{
    static const char *unit[] = {"B", "kB", "MB", "GB", "TB"};
    int u = 0;
    while (bytes >= 1000 && u < 4) {
        bytes /= 1000;
        u++;
    }
    printf("%.3g %s", bytes, unit[u]);
}

static double peak_rss_bytes(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return 1024.0 * (double)ru.ru_maxrss; /* Linux: kilobytes */
}

static kp_context *ctx;

static int fail(const char *what, kp_status st)
{
    fprintf(stderr, "kp_demo: %s: %s: %s\n", what, kp_status_string(st), kp_context_message(ctx));
    return 1;
}

/*
 * Runs `text` on rows [0, n) in N_CHUNKS slices with one progress line each on
 * stderr. args[] describe the full arrays; every Vi argument and the outputs
 * are offset to the slice. Returns the elapsed seconds, or -1 on error.
 */
static double run_chunked(const char *label, const char *text, const char *const *aliases,
                          size_t n_aliases, const kp_array *args, int64_t n, void *out,
                          int64_t *out_index)
{
    kp_formula *f = NULL;
    kp_plan *plan = NULL;
    kp_status st = kp_formula_parse(ctx, text, aliases, n_aliases, &f);
    if (st != KP_OK)
        return fail("kp_formula_parse", st), -1;
    st = kp_plan_new(ctx, f, KP_FLOAT32, &plan);
    if (st != KP_OK) {
        kp_formula_free(f);
        return fail("kp_plan_new", st), -1;
    }
    const int n_args = kp_formula_num_args(f);
    const int out_dim = kp_formula_out_dim(f), idx_dim = kp_formula_out_index_dim(f);
    int is_vi[8] = {0};
    for (int k = 0; k < n_args && k < 8; k++) {
        kp_var_category cat;
        int dim;
        if (kp_formula_arg(f, k, &cat, &dim) == KP_OK)
            is_vi[k] = cat == KP_VAR_I;
    }
    kp_formula_free(f); /* the plan keeps no reference to it */

    const int tty = isatty(STDERR_FILENO);
    const double t0 = now_s();
    for (int c = 0; c < N_CHUNKS && st == KP_OK; c++) {
        const int64_t i0 = n * c / N_CHUNKS, i1 = n * (c + 1) / N_CHUNKS, rows = i1 - i0;
        kp_array a[8];
        for (int k = 0; k < n_args && k < 8; k++) {
            a[k] = args[k];
            if (is_vi[k]) { /* row slice: same array, rows i0 .. i1-1 */
                a[k].data = (float *)args[k].data + i0 * args[k].shape[1];
                a[k].shape[0] = rows;
            }
        }
        kp_array o = kp_array_2d((float *)out + i0 * out_dim, KP_FLOAT32, rows, out_dim);
        kp_array oi = kp_array_2d(out_index ? out_index + i0 * idx_dim : NULL, KP_INT64, rows,
                                  idx_dim);
        st = kp_plan_exec(plan, a, (size_t)n_args, out_dim ? &o : NULL,
                          idx_dim ? &oi : NULL, NULL);
        const double t = now_s() - t0;
        char bar[N_CHUNKS + 1];
        for (int k = 0; k < N_CHUNKS; k++)
            bar[k] = k <= c ? '#' : '.';
        bar[N_CHUNKS] = '\0';
        fprintf(stderr, "%s    [%s] %s: %lld / %lld rows, %.1f s, about %.0f s left%s",
                tty ? "\r" : "", bar, label, (long long)i1, (long long)n, t,
                t / (double)i1 * (double)(n - i1), tty ? "   " : "\n");
    }
    if (tty)
        fprintf(stderr, "\r%*s\r", 78, "");
    kp_plan_free(plan);
    if (st != KP_OK)
        return fail("kp_plan_exec", st), -1;
    return now_s() - t0;
}

/* ------------------------------------------- direct double-precision loops */

static double sqdist(const float *x, const float *y)
{
    double s = 0;
    for (int d = 0; d < DIM; d++) {
        const double t = (double)x[d] - (double)y[d];
        s += t * t;
    }
    return s;
}

static double ref_gauss(const float *xi, const float *y, const float *b, int64_t m, double g)
{
    double s = 0;
    for (int64_t j = 0; j < m; j++)
        s += exp(-g * sqdist(xi, y + DIM * j)) * (double)b[j];
    return s;
}

static double ref_lse(const float *xi, const float *y, int64_t m, double g)
{
    double mx = -INFINITY, s = 0;
    for (int64_t j = 0; j < m; j++) {
        const double v = -g * sqdist(xi, y + DIM * j);
        if (v > mx) {
            s = s * exp(mx - v) + 1;
            mx = v;
        } else {
            s += exp(v - mx);
        }
    }
    return mx + log(s);
}

/* The KNN smallest squared distances from xi, ascending, and their indices. */
static void ref_knn(const float *xi, const float *y, int64_t m, double *dist, int64_t *idx)
{
    for (int k = 0; k < KNN; k++) {
        dist[k] = INFINITY;
        idx[k] = -1;
    }
    for (int64_t j = 0; j < m; j++) {
        const double d = sqdist(xi, y + DIM * j);
        if (d >= dist[KNN - 1])
            continue;
        int k = KNN - 1;
        for (; k > 0 && dist[k - 1] > d; k--) {
            dist[k] = dist[k - 1];
            idx[k] = idx[k - 1];
        }
        dist[k] = d;
        idx[k] = j;
    }
}

static void report_time(double t, int64_t n, int64_t m)
{
    printf("    time %.2f s, %.3g pairs/s (%.3g pairs)\n", t, (double)n * (double)m / t,
           (double)n * (double)m);
}

int main(int argc, char **argv)
{
    const int64_t n = argc > 1 ? atoll(argv[1]) : 200000, m = n;
    if (n < N_CHECK || n > 100000000) {
        fprintf(stderr, "usage: %s [N]   (N = M points per cloud, %d <= N <= 1e8)\n", argv[0],
                N_CHECK);
        return 2;
    }
    float g = 50.0f; /* exp(-g d^2): a Gaussian of standard deviation 0.1 */
    const char *env_threads = getenv("KP_NUM_THREADS");

    printf("libkp %d.%d.%d demo: N = M = %lld random points in [0,1)^%d, float32, seed 42\n",
           KP_VERSION_MAJOR, KP_VERSION_MINOR, KP_VERSION_PATCH, (long long)n, DIM);
    printf("threads: %s\n", env_threads ? env_threads : "all cores (set KP_NUM_THREADS to change)");
    printf("a dense N x M float32 matrix would need ");
    print_bytes(4.0 * (double)n * (double)m);
    printf("; libkp never forms it.\n\n");

    float *x = malloc(sizeof(float) * (size_t)(n * DIM));
    float *y = malloc(sizeof(float) * (size_t)(m * DIM));
    float *b = malloc(sizeof(float) * (size_t)m);
    float *a = malloc(sizeof(float) * (size_t)n);
    float *lse = malloc(sizeof(float) * (size_t)n);
    float *kd = malloc(sizeof(float) * (size_t)(n * KNN));
    int64_t *ki = malloc(sizeof(int64_t) * (size_t)(n * KNN));
    if (!x || !y || !b || !a || !lse || !kd || !ki || kp_context_new(&ctx) != KP_OK) {
        fprintf(stderr, "kp_demo: out of memory\n");
        return 1;
    }
    for (int64_t e = 0; e < n * DIM; e++)
        x[e] = rng_uniform();
    for (int64_t e = 0; e < m * DIM; e++)
        y[e] = rng_uniform();
    for (int64_t j = 0; j < m; j++)
        b[j] = rng_uniform();

    const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"};
    const kp_array args[4] = {kp_array_2d(x, KP_FLOAT32, n, DIM), kp_array_2d(y, KP_FLOAT32, m, DIM),
                              kp_array_1d(&g, KP_FLOAT32, 1),
                              kp_array_2d(b, KP_FLOAT32, m, 1)};
    int64_t check_rows[N_CHECK];
    for (int r = 0; r < N_CHECK; r++)
        check_rows[r] = (n - 1) * r / (N_CHECK - 1);
    int bad = 0;
    double max_err_all = 0;

    /* 1. Gaussian kernel product --------------------------------------------- */
    const char *f_gauss = "Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)";
    printf("[1] Gaussian kernel product  a_i = sum_j exp(-g |x_i - y_j|^2) b_j,  g = %g\n",
           (double)g);
    printf("    formula: %s\n", f_gauss);
    double t = run_chunked("gauss", f_gauss, aliases, 4, args, n, a, NULL);
    if (t < 0)
        return 1;
    report_time(t, n, m);
    double err = 0;
    for (int r = 0; r < N_CHECK; r++) {
        const int64_t i = check_rows[r];
        const double ref = ref_gauss(x + DIM * i, y, b, m, (double)g);
        const double e = fabs((double)a[i] - ref) / fabs(ref);
        err = e > err ? e : err;
        if (r < 3)
            printf("    a[%lld] = %.7g   (double loop: %.7g)\n", (long long)i, (double)a[i], ref);
    }
    printf("    check on %d rows vs a double-precision loop: max relative error %.2e\n\n",
           N_CHECK, err);
    bad |= !(err < 1e-4);
    max_err_all = err > max_err_all ? err : max_err_all;

    /* 2. LogSumExp ------------------------------------------------------------ */
    const char *f_lse = "LogSumExp_Reduction(-SqDist(x,y)*g, 1)";
    printf("[2] log-sum-exp  l_i = log sum_j exp(-g |x_i - y_j|^2)\n");
    printf("    formula: %s\n", f_lse);
    t = run_chunked("logsumexp", f_lse, aliases, 3, args, n, lse, NULL);
    if (t < 0)
        return 1;
    report_time(t, n, m);
    err = 0;
    for (int r = 0; r < N_CHECK; r++) {
        const int64_t i = check_rows[r];
        const double ref = ref_lse(x + DIM * i, y, m, (double)g);
        const double e = fabs((double)lse[i] - ref) / fmax(fabs(ref), 1.0);
        err = e > err ? e : err;
        if (r < 3)
            printf("    l[%lld] = %.7g   (double loop: %.7g)\n", (long long)i, (double)lse[i],
                   ref);
    }
    printf("    check on %d rows vs a double-precision loop: max relative error %.2e\n\n",
           N_CHECK, err);
    bad |= !(err < 1e-4);
    max_err_all = err > max_err_all ? err : max_err_all;

    /* 3. K nearest neighbours ----------------------------------------------- */
    const char *f_knn = "KMin_ArgKMin_Reduction(SqDist(x,y), 5, 1)";
    printf("[3] %d nearest neighbours in y of every x_i\n", KNN);
    printf("    formula: %s\n", f_knn);
    t = run_chunked("knn", f_knn, aliases, 2, args, n, kd, ki);
    if (t < 0)
        return 1;
    report_time(t, n, m);
    err = 0;
    int same_idx = 0;
    for (int r = 0; r < N_CHECK; r++) {
        const int64_t i = check_rows[r];
        double rd[KNN];
        int64_t ri[KNN];
        ref_knn(x + DIM * i, y, m, rd, ri);
        int same = 1;
        for (int k = 0; k < KNN; k++) {
            const double e = fabs((double)kd[i * KNN + k] - rd[k]) / fmax(rd[k], 1e-30);
            err = e > err ? e : err;
            same &= ki[i * KNN + k] == ri[k];
        }
        same_idx += same;
        if (r < 3) {
            printf("    x[%lld]: neighbours", (long long)i);
            for (int k = 0; k < KNN; k++)
                printf(" %lld", (long long)ki[i * KNN + k]);
            printf("  at distances");
            for (int k = 0; k < KNN; k++)
                printf(" %.4f", sqrt((double)kd[i * KNN + k]));
            printf("\n");
        }
    }
    printf("    check on %d rows vs a double-precision loop: same neighbours in %d rows, "
           "max relative error of the squared distances %.2e\n\n",
           N_CHECK, same_idx, err);
    /* Indices may legitimately differ on near-ties; distances may not. */
    bad |= !(err < 1e-5);
    max_err_all = err > max_err_all ? err : max_err_all;

    /* Memory ------------------------------------------------------------------ */
    printf("peak memory (getrusage ru_maxrss): ");
    print_bytes(peak_rss_bytes());
    printf("   vs the dense N x M float32 matrix: ");
    print_bytes(4.0 * (double)n * (double)m);
    printf("\nmax relative error over all checks: %.2e  %s\n", max_err_all,
           bad ? "-- CHECK FAILED" : "(ok)");

    kp_context_free(ctx);
    free(x);
    free(y);
    free(b);
    free(a);
    free(lse);
    free(kd);
    free(ki);
    return bad;
}
