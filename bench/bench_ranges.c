/*
 * bench_ranges.c — block-sparse ranges: time against the kept fraction of pairs.
 *
 *   a_i = sum_j exp(-|x_i - y_j|^2 / (2 s^2)) b_j     (x, y uniform in the unit cube, 3D)
 *
 * Points are binned in a grid of cells of side r (as pykp.cluster.grid_cluster)
 * and sorted by cell; cell pairs whose boxes are closer than r = 4 s are kept
 * (exact truncation at 4 sigma: no pair closer than r is dropped). For each
 * truncation radius, the same call runs dense and with the ranges in the same
 * run: the table gives the kept fraction of pairs, both times, their ratio,
 * the ratio over the kept fraction (1 = the cost follows the kept pairs
 * exactly) and the relative error of the truncated result against the dense
 * one (max_i |a_i - a_i^dense| / max_i |a_i^dense|). Timing is reported,
 * never checked; the run fails only when a call errors or the error exceeds
 * what the truncation at 4 sigma allows (1e-3).
 *
 * usage: kp_bench_ranges [--quick] [--n N] [--sigma S] [--threads T] [--reps R]
 *   --sigma S: that truncation width only (default: 0.01, 0.02, 0.04, 0.08)
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <kp.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Cell of point p in a grid of g^3 cells of side 1/g, lexicographic. */
static int64_t cell_of(const float *p, int64_t g) {
    int64_t c[3];
    for (int d = 0; d < 3; d++) {
        c[d] = (int64_t)(p[d] * (float)g);
        c[d] = c[d] < 0 ? 0 : c[d] >= g ? g - 1 : c[d];
    }
    return (c[0] * g + c[1]) * g + c[2];
}

/* Sorts n points (and weights) by cell; start[c]..start[c+1]: cell c's points. */
static void sort_by_cell(float *p, float *w, int64_t n, int64_t g, int64_t *start) {
    int64_t nc = g * g * g, *cell = malloc((size_t)n * sizeof *cell);
    float *tp = malloc((size_t)n * 3 * sizeof *tp), *tw = w ? malloc((size_t)n * sizeof *tw) : NULL;
    memset(start, 0, (size_t)(nc + 1) * sizeof *start);
    for (int64_t k = 0; k < n; k++) start[(cell[k] = cell_of(p + 3 * k, g)) + 1]++;
    for (int64_t c = 0; c < nc; c++) start[c + 1] += start[c];
    int64_t *at = malloc((size_t)nc * sizeof *at);
    memcpy(at, start, (size_t)nc * sizeof *at);
    for (int64_t k = 0; k < n; k++) {
        int64_t q = at[cell[k]]++;
        memcpy(tp + 3 * q, p + 3 * k, 3 * sizeof *p);
        if (w) tw[q] = w[k];
    }
    memcpy(p, tp, (size_t)n * 3 * sizeof *p);
    if (w) memcpy(w, tw, (size_t)n * sizeof *w);
    free(cell), free(tp), free(tw), free(at);
}

/* The axis-1 triple: i cell c reduces over the j cells whose box is within r
 * of its box (in increasing cell order). Returns the kept pairs. */
static int64_t build_ranges(int64_t g, double r, const int64_t *si, const int64_t *sj, int64_t *ri, int64_t *sl,
                            int64_t **rj, int64_t *nrj) {
    int64_t nc = g * g * g, k = (int64_t)ceil(r * (double)g), cap = 1024, n = 0, kept = 0;
    int64_t *cols = malloc((size_t)cap * 2 * sizeof *cols);
    double side = 1.0 / (double)g;
    for (int64_t c = 0; c < nc; c++) {
        int64_t cx = c / (g * g), cy = c / g % g, cz = c % g;
        ri[2 * c] = si[c], ri[2 * c + 1] = si[c + 1];
        for (int64_t dx = -k; dx <= k; dx++)
            for (int64_t dy = -k; dy <= k; dy++)
                for (int64_t dz = -k; dz <= k; dz++) {
                    int64_t x = cx + dx, y = cy + dy, z = cz + dz;
                    if (x < 0 || y < 0 || z < 0 || x >= g || y >= g || z >= g) continue;
                    double gap[3] = {(double)(llabs(dx) - 1), (double)(llabs(dy) - 1), (double)(llabs(dz) - 1)};
                    double d2 = 0;
                    for (int q = 0; q < 3; q++) d2 += gap[q] > 0 ? gap[q] * side * gap[q] * side : 0;
                    if (d2 >= r * r) continue;
                    int64_t cj = (x * g + y) * g + z;
                    if (n == cap) cols = realloc(cols, (size_t)(cap *= 2) * 2 * sizeof *cols);
                    cols[2 * n] = sj[cj], cols[2 * n + 1] = sj[cj + 1], n++;
                    kept += (si[c + 1] - si[c]) * (sj[cj + 1] - sj[cj]);
                }
        sl[c] = n;
    }
    *rj = cols;
    *nrj = n;
    return kept;
}

int main(int argc, char **argv) {
    int quick = 0, threads = 2, reps = 2;
    int64_t n = 100000;
    double only_sigma = 0;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--quick") == 0) quick = 1, n = 20000, reps = 1;
        else if (strcmp(argv[a], "--n") == 0 && a + 1 < argc) n = atoll(argv[++a]);
        else if (strcmp(argv[a], "--sigma") == 0 && a + 1 < argc) only_sigma = atof(argv[++a]);
        else if (strcmp(argv[a], "--threads") == 0 && a + 1 < argc) threads = atoi(argv[++a]);
        else if (strcmp(argv[a], "--reps") == 0 && a + 1 < argc) reps = atoi(argv[++a]);
        else {
            int help = strcmp(argv[a], "--help") == 0;
            fprintf(help ? stdout : stderr, "usage: %s [--quick] [--n N] [--sigma S] [--threads T] [--reps R]\n", argv[0]);
            return help ? 0 : 2;
        }
    }
    kp_context *ctx = NULL;
    kp_formula *f = NULL;
    kp_plan *p = NULL;
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"};
    if (kp_context_new(&ctx) != KP_OK) return 1;
    kp_context_set_num_threads(ctx, threads);
    if (kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)", al, 4, &f) != KP_OK ||
        kp_plan_new(ctx, f, KP_FLOAT32, &p) != KP_OK) {
        fprintf(stderr, "kp_bench_ranges: %s\n", kp_context_message(ctx));
        return 1;
    }
    float *x = malloc((size_t)n * 3 * sizeof *x), *y = malloc((size_t)n * 3 * sizeof *y);
    float *b = malloc((size_t)n * sizeof *b), *od = malloc((size_t)n * sizeof *od), *orr = malloc((size_t)n * sizeof *orr);
    uint64_t st = 0x5eed;
    for (int64_t k = 0; k < 3 * n; k++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        x[k] = (float)(st >> 40) / 16777216.0f;
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        y[k] = (float)(st >> 40) / 16777216.0f;
    }
    for (int64_t k = 0; k < n; k++) b[k] = 0.5f + (float)(k % 7) / 7.0f;
    printf("Gaussian kernel product, float32, N = M = %lld, %d threads: ranges from a grid of cells of side r = 4 "
           "sigma, against the dense call\n\n",
           (long long)n, threads);
    printf("| sigma | cells | kept pairs | dense | ranges | time ratio | ratio / kept | rel. error |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    int bad = 0;
    double sigmas[] = {0.01, 0.02, 0.04, 0.08};
    int first = quick ? 2 : 0, count = 4;
    if (only_sigma > 0) sigmas[0] = only_sigma, first = 0, count = 1;
    for (int s = first; s < count; s++) {
        double r = 4 * sigmas[s];
        int64_t g = (int64_t)floor(1.0 / r), nc = g * g * g;
        int64_t *si = malloc((size_t)(nc + 1) * sizeof *si), *sj = malloc((size_t)(nc + 1) * sizeof *sj);
        float *xs = malloc((size_t)n * 3 * sizeof *xs), *ys = malloc((size_t)n * 3 * sizeof *ys);
        float *bs = malloc((size_t)n * sizeof *bs), gam = (float)(1.0 / (2 * sigmas[s] * sigmas[s]));
        memcpy(xs, x, (size_t)n * 3 * sizeof *x), memcpy(ys, y, (size_t)n * 3 * sizeof *y);
        memcpy(bs, b, (size_t)n * sizeof *b);
        sort_by_cell(xs, NULL, n, g, si);
        sort_by_cell(ys, bs, n, g, sj);
        int64_t *ri = malloc((size_t)nc * 2 * sizeof *ri), *sl = malloc((size_t)nc * sizeof *sl), *rj = NULL, nrj = 0;
        int64_t kept = build_ranges(g, r, si, sj, ri, sl, &rj, &nrj);
        kp_ranges rg = {0};
        rg.index_size = 8;
        rg.ranges_i = ri, rg.slices_i = sl, rg.redranges_j = rj;
        rg.n_ranges_i = rg.n_slices_i = nc, rg.n_redranges_j = nrj;
        kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
        kp_array args[4] = {kp_array_2d(xs, KP_FLOAT32, n, 3), kp_array_2d(ys, KP_FLOAT32, n, 3),
                            kp_array_1d(&gam, KP_FLOAT32, 1), kp_array_2d(bs, KP_FLOAT32, n, 1)};
        kp_array outd = kp_array_2d(od, KP_FLOAT32, n, 1), outr = kp_array_2d(orr, KP_FLOAT32, n, 1);
        double td = 1e300, tr = 1e300;
        for (int k = 0; k < reps; k++) {
            double t0 = now_s();
            opt.ranges = NULL;
            bad |= kp_plan_exec(p, args, 4, &outd, NULL, &opt) != KP_OK;
            double t1 = now_s();
            opt.ranges = &rg;
            bad |= kp_plan_exec(p, args, 4, &outr, NULL, &opt) != KP_OK;
            double t2 = now_s();
            td = t1 - t0 < td ? t1 - t0 : td;
            tr = t2 - t1 < tr ? t2 - t1 : tr;
        }
        if (bad) fprintf(stderr, "kp_bench_ranges: %s\n", kp_context_message(ctx));
        double err = 0, scale = 0;
        for (int64_t k = 0; k < n; k++) {
            err = fmax(err, fabs((double)orr[k] - (double)od[k]));
            scale = fmax(scale, fabs((double)od[k]));
        }
        double frac = (double)kept / ((double)n * (double)n);
        bad |= !(err <= 1e-3 * scale);
        printf("| %.2f | %lld | %.4f | %.3f s | %.3f s | %.4f | %.2f | %.1e |\n", sigmas[s], (long long)nc, frac, td, tr,
               tr / td, tr / td / frac, err / scale);
        free(si), free(sj), free(xs), free(ys), free(bs), free(ri), free(sl), free(rj);
    }
    free(x), free(y), free(b), free(od), free(orr);
    kp_plan_free(p);
    kp_formula_free(f);
    kp_context_free(ctx);
    return bad;
}
