/*
 * bench_mpi.c — kp_bench_mpi: strong and weak scaling of kp_mpi_exec
 * (bench/mpi_scaling.sh runs it under mpirun -np 1..4 and prints the table).
 *
 * Case: the Gaussian kernel product a_i = sum_j exp(-|x_i - y_j|^2) b_j, D = 3,
 * float32, one thread per rank, axis 1, for both layouts:
 *   strong: N = M = --n points in all, split over the ranks;
 *   weak:   --n points per rank (N = M = P * n).
 * Reports, per layout: the best wall time of `reps` calls (max over ranks),
 * pairs/s over all ranks, and what the ring moves: bytes each rank sends,
 * and the time of the same ring of MPI_Sendrecv without any compute (so the
 * compute/communication split of the model in docs/distributed.md can be
 * checked against it). The ratios to P = 1 come from mpi_scaling.sh, which
 * runs every P in the same session.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_usage.h"

#include "kp_mpi.h"

static int rank, size;

static double best_time(kp_plan *plan, kp_mpi_layout layout, kp_array *args, kp_array *out, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        if (kp_mpi_exec(plan, MPI_COMM_WORLD, layout, args, 3, out, NULL, NULL) != KP_OK) {
            fprintf(stderr, "rank %d: %s\n", rank, kp_context_message(kp_plan_context(plan)));
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        double t = MPI_Wtime() - t0, tmax;
        MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        best = tmax < best ? tmax : best;
    }
    return best;
}

/* The ring's transfers alone: P - 1 MPI_Sendrecv of a block of `bytes`. */
static double ring_time(size_t bytes, int reps) {
    char *a = calloc(bytes + 1, 1), *b = calloc(bytes + 1, 1);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int s = 0; s + 1 < size; s++)
            MPI_Sendrecv(a, (int)bytes, MPI_BYTE, (rank + size - 1) % size, 0, b, (int)bytes, MPI_BYTE,
                         (rank + 1) % size, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        double t = MPI_Wtime() - t0, tmax;
        MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        best = tmax < best ? tmax : best;
    }
    free(a), free(b);
    return best;
}

static void run(kp_plan *plan, const char *mode, int64_t n_all_i, int64_t n_all_j, int reps) {
    int64_t i0 = n_all_i * rank / size, ni = n_all_i * (rank + 1) / size - i0;
    int64_t j0 = n_all_j * rank / size, nj = n_all_j * (rank + 1) / size - j0;
    float *x = malloc((size_t)(ni + 1) * 3 * sizeof *x), *a = malloc((size_t)(ni + 1) * sizeof *a);
    float *y = malloc((size_t)n_all_j * 3 * sizeof *y), *b = malloc((size_t)n_all_j * sizeof *b);
    for (int64_t k = 0; k < ni * 3; k++) x[k] = (float)sin(0.1 * (double)(k + 3 * i0));
    for (int64_t k = 0; k < n_all_j * 3; k++) y[k] = (float)cos(0.07 * (double)k);
    for (int64_t k = 0; k < n_all_j; k++) b[k] = 1.0f;
    kp_array out = kp_array_2d(a, KP_FLOAT32, ni, 1);
    for (int layout = 0; layout <= 1; layout++) {
        /* rows: every rank passes all y; ring: its own block */
        int64_t first = layout == KP_MPI_RING ? j0 : 0, count = layout == KP_MPI_RING ? nj : n_all_j;
        kp_array args[3] = {kp_array_2d(x, KP_FLOAT32, ni, 3), kp_array_2d(y + 3 * first, KP_FLOAT32, count, 3),
                            kp_array_2d(b + first, KP_FLOAT32, count, 1)};
        double t = best_time(plan, (kp_mpi_layout)layout, args, &out, reps);
        size_t block = (size_t)((n_all_j + size - 1) / size) * 4 * sizeof(float);
        double comm = layout == KP_MPI_RING ? ring_time(block, reps) : 0;
        if (rank == 0)
            printf("| %s | %s | %d | %lld x %lld | %.4f | %.3g | %.3g | %.2e |\n", mode,
                   layout == KP_MPI_RING ? "ring" : "rows", size, (long long)n_all_i, (long long)n_all_j, t,
                   (double)n_all_i * (double)n_all_j / t,
                   layout == KP_MPI_RING ? (double)block * (size - 1) : 0.0, comm);
    }
    free(x), free(y), free(a), free(b);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int64_t n = 8192;
    int reps = 3, header = 0;
    for (int k = 1; k < argc; k++) {
        if (!strcmp(argv[k], "--n") && k + 1 < argc) n = atoll(argv[++k]);
        else if (!strcmp(argv[k], "--reps") && k + 1 < argc) reps = atoi(argv[++k]);
        else if (!strcmp(argv[k], "--header")) header = 1;
        else
            return mpi_bench_usage(rank, argv[k],
                                   "usage: mpirun -np P kp_bench_mpi [--n N] [--reps R] [--header]\n"
                                   "Strong and weak scaling of kp_mpi_exec (the Gaussian kernel product, float32,\n"
                                   "one thread per rank): one table row per layout; bench/mpi_scaling.sh runs P = 1..4.\n");
    }
    kp_context *ctx;
    kp_formula *f;
    kp_plan *plan;
    kp_context_new(&ctx);
    kp_context_set_num_threads(ctx, 1);
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "b = Vj(1)"};
    if (kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y))*b, 1)", al, 3, &f) != KP_OK ||
        kp_plan_new(ctx, f, KP_FLOAT32, &plan) != KP_OK) {
        fprintf(stderr, "%s\n", kp_context_message(ctx));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (rank == 0 && header)
        printf("| scaling | layout | P | N x M | time (s) | pairs/s | bytes sent per rank | ring transfers alone (s) |\n"
               "|---|---|---|---|---|---|---|---|\n");
    run(plan, "strong", n, n, reps);
    run(plan, "weak", n * size, n * size, reps);
    kp_plan_free(plan);
    kp_formula_free(f);
    kp_context_free(ctx);
    MPI_Finalize();
    return 0;
}
