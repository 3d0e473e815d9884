/*
 * bench_mpi_ranges.c — kp_bench_mpi_ranges: what block-sparse ranges cost
 * kp_mpi_exec on every call besides the reduction itself, run under mpirun
 * (docs/distributed.md: `mpirun -np 2 build/bench/kp_bench_mpi_ranges`).
 *
 * Case: the Gaussian kernel product a_i = sum_j exp(-|x_i - y_j|^2) b_j, D = 3,
 * float32, one thread per rank, axis 1, N = M points in all. The rows are cut
 * into C clusters of N / C rows, the points into C blocks of M / C; cluster k
 * keeps blocks k - 2, k and k + 2 (3 C ranges, 3 N M / C pairs).
 * Per call, libkp_mpi:
 *   - hashes the triple (compared between ranks with the other arguments, in
 *     the Allreduces that already compare them);
 *   - checks it against the whole problem (kp_plan_ranges_check) and agrees on
 *     the result (an Allreduce of one int, kp__mpi_ranges_check);
 *   - clips it to each part it folds (one part in layout "rows", P in "ring").
 * Printed, per layout: the best call time (max over ranks), each step's time
 * (best of many on rank 0; the Allreduce of one int best over ranks' maxima),
 * and their sum as a fraction of the call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_usage.h"

#include "mpi/mpi_internal.h"

static int rank, size;

static void die(kp_context *ctx, const char *what) {
    fprintf(stderr, "rank %d: %s: %s\n", rank, what, ctx ? kp_context_message(ctx) : "");
    MPI_Abort(MPI_COMM_WORLD, 1);
}

/* var = the best time per run of the statements over reps batches of inner runs. */
#define TIME_BEST(var, reps, inner, ...)                    \
    do {                                                    \
        (var) = 1e30;                                       \
        for (int r_ = 0; r_ < (reps); r_++) {               \
            double t0_ = MPI_Wtime();                       \
            for (int k_ = 0; k_ < (inner); k_++) {          \
                __VA_ARGS__;                                \
            }                                               \
            double t_ = (MPI_Wtime() - t0_) / (inner);      \
            if (t_ < (var)) (var) = t_;                     \
        }                                                   \
    } while (0)

/* The ranges of the case: C clusters, 3 blocks each (fewer at the edges). */
static kp_ranges make_ranges(int64_t n, int64_t m, int64_t C, int64_t **rows, int64_t **slices, int64_t **cols) {
    *rows = malloc((size_t)(2 * C) * sizeof **rows);
    *slices = malloc((size_t)C * sizeof **slices);
    *cols = malloc((size_t)(6 * C) * sizeof **cols);
    int64_t l = 0;
    for (int64_t k = 0; k < C; k++) {
        (*rows)[2 * k] = k * n / C, (*rows)[2 * k + 1] = (k + 1) * n / C;
        for (int64_t d = -2; d <= 2; d += 2) {
            int64_t b = k + d;
            if (b < 0 || b >= C) continue;
            (*cols)[2 * l] = b * m / C, (*cols)[2 * l + 1] = (b + 1) * m / C;
            l++;
        }
        (*slices)[k] = l;
    }
    kp_ranges r = {8, *rows, *slices, *cols, *rows, *slices, *cols, C, C, l, C, C, l};
    return r;
}

static double call_time(kp_plan *plan, kp_mpi_layout layout, kp_array *args, kp_array *out,
                        const kp_exec_options *opt, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        if (kp_mpi_exec(plan, MPI_COMM_WORLD, layout, args, 3, out, NULL, opt) != KP_OK)
            die(kp_plan_context(plan), "kp_mpi_exec");
        double t = MPI_Wtime() - t0, tmax;
        MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        best = tmax < best ? tmax : best;
    }
    return best;
}

/* The Allreduce of one int that agrees on a status: best of reps maxima over ranks. */
static double agree_time(int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        int mine = rank, first;
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int k = 0; k < 100; k++) MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        double t = (MPI_Wtime() - t0) / 100, tmax;
        MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        best = tmax < best ? tmax : best;
    }
    return best;
}

static void run(kp_plan *plan, int64_t n, int64_t C, int reps) {
    const int64_t m = n, i0 = n * rank / size, ni = n * (rank + 1) / size - i0;
    const int64_t j0 = m * rank / size, nj = m * (rank + 1) / size - j0;
    float *x = malloc((size_t)(ni + 1) * 3 * sizeof *x), *a = malloc((size_t)(ni + 1) * sizeof *a);
    float *y = malloc((size_t)m * 3 * sizeof *y), *b = malloc((size_t)m * sizeof *b);
    for (int64_t k = 0; k < ni * 3; k++) x[k] = (float)(k + 3 * i0) / (float)(3 * n);
    for (int64_t k = 0; k < m * 3; k++) y[k] = (float)k / (float)(3 * m);
    for (int64_t k = 0; k < m; k++) b[k] = 1.0f;
    int64_t *rows, *slices, *cols;
    kp_ranges r = make_ranges(n, m, C, &rows, &slices, &cols);
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.ranges = &r;
    kp_array out = kp_array_2d(a, KP_FLOAT32, ni, 1);
    const int inner = C >= 10000 ? 10 : 100;
    for (int layout = 0; layout <= 1; layout++) {
        int64_t first = layout == KP_MPI_RING ? j0 : 0, count = layout == KP_MPI_RING ? nj : m;
        kp_array args[3] = {kp_array_2d(x, KP_FLOAT32, ni, 3), kp_array_2d(y + 3 * first, KP_FLOAT32, count, 3),
                            kp_array_2d(b + first, KP_FLOAT32, count, 1)};
        double t_call = call_time(plan, (kp_mpi_layout)layout, args, &out, &opt, reps);
        /* The steps alone, on a call as kp_mpi_exec builds it. */
        kp_mpi_call c;
        memset(&c, 0, sizeof c);
        c.plan = plan, c.ctx = kp_plan_context(plan), c.comm = MPI_COMM_WORLD, c.rank = rank, c.size = size;
        c.layout = (kp_mpi_layout)layout, c.axis = 1, c.red_cat = KP_VAR_J, c.args = args, c.nargs = 3;
        c.options = &opt;
        if (kp__mpi_read_options(&c) != KP_OK) die(c.ctx, "kp__mpi_read_options");
        kp_mpi_part part;
        if (kp__mpi_part_alloc(&c, &part) != KP_OK) die(c.ctx, "kp__mpi_part_alloc");
        kp_mpi_geometry g = {1, n, m};
        volatile uint64_t sink = 0;
        kp_status st = KP_OK;
        double t_hash, t_check, t_clip;
        TIME_BEST(t_hash, reps, inner, sink += kp__mpi_ranges_hash(&c));
        TIME_BEST(t_check, reps, inner, st = (kp_status)(st | kp_plan_ranges_check(plan, c.ranges, 1, n, m)));
        if (st != KP_OK) die(c.ctx, "kp_plan_ranges_check");
        /* The parts of rank 0's rows: all points (rows) or each rank's block (ring). */
        int nparts = layout == KP_MPI_RING ? size : 1;
        TIME_BEST(t_clip, reps, inner, for (int p = 0; p < nparts; p++) {
            int64_t c0 = layout == KP_MPI_RING ? m * p / size : 0;
            int64_t nc = layout == KP_MPI_RING ? m * (p + 1) / size - c0 : m;
            sink += (uint64_t)kp__mpi_part(&c, &part, &g, i0, ni, c0, nc)->struct_size;
        });
        kp__mpi_part_free(&part);
        double t_agree = agree_time(reps);
        double steps = t_hash + t_check + t_agree + t_clip;
        if (rank == 0)
            printf("| %s | %d | %lld | %lld | %lld | %.3g | %.2e | %.2e | %.2e | %.2e | %.2f%% |\n",
                   layout == KP_MPI_RING ? "ring" : "rows", size, (long long)n, (long long)C, (long long)r.n_redranges_j,
                   t_call, t_hash, t_check, t_agree, t_clip, 100 * steps / t_call);
    }
    free(rows), free(slices), free(cols);
    free(x), free(y), free(a), free(b);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int reps = 5, quick = 0;
    for (int k = 1; k < argc; k++) {
        if (!strcmp(argv[k], "--reps") && k + 1 < argc) reps = atoi(argv[++k]);
        else if (!strcmp(argv[k], "--quick")) quick = 1;
        else
            return mpi_bench_usage(rank, argv[k],
                                   "usage: mpirun -np P kp_bench_mpi_ranges [--reps R] [--quick]\n"
                                   "What block-sparse ranges cost kp_mpi_exec per call besides the reduction\n"
                                   "(hash, check, agreement, clipping), as a table; --quick: smaller sizes.\n");
    }
    kp_context *ctx;
    kp_formula *f;
    kp_plan *plan;
    if (kp_context_new(&ctx) != KP_OK) die(NULL, "kp_context_new");
    kp_context_set_num_threads(ctx, 1);
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "b = Vj(1)"};
    if (kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y))*b, 1)", al, 3, &f) != KP_OK ||
        kp_plan_new(ctx, f, KP_FLOAT32, &plan) != KP_OK)
        die(ctx, "plan");
    if (rank == 0)
        printf("| layout | P | N = M | clusters | ranges | call (s) | hash (s) | check (s) | agree (s) | clip, all "
               "parts (s) | steps / call |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    const int64_t sizes[] = {10000, 100000}, clusters[] = {1000, 10000, 100000};
    for (int s = 0; s < (quick ? 1 : 2); s++)
        for (int k = 0; k < 3; k++)
            if (clusters[k] <= sizes[s]) run(plan, sizes[s], clusters[k], reps);
    kp_plan_free(plan);
    kp_formula_free(f);
    kp_context_free(ctx);
    MPI_Finalize();
    return 0;
}
