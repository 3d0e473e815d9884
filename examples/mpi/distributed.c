/*
 * distributed.c — a Gaussian kernel product over MPI ranks with libkp_mpi.
 *
 *   mpirun -np 4 ./kp_example_mpi            (add --oversubscribe on a small machine)
 *
 * Every rank owns N_LOCAL points x_i and M_LOCAL points y_j (with weights b_j)
 * and computes a_i = sum_j exp(-|x_i - y_j|^2) b_j for its own x_i over all
 * ranks' y_j, with the y blocks passed around a ring (KP_MPI_RING): no rank
 * ever holds all of them. Rank 0 then checks its rows against a direct loop
 * over all points (it can rebuild them: the data are a function of the rank).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kp_mpi.h"

#define N_LOCAL 1000
#define M_LOCAL 1500

/* The points of rank r (the same function on every rank). */
static void points(int r, double *x, double *y, double *b) {
    for (int k = 0; k < N_LOCAL * 3; k++) x[k] = sin(0.37 * (k + 11 * r));
    for (int k = 0; k < M_LOCAL * 3; k++) y[k] = cos(0.23 * (k + 7 * r));
    for (int k = 0; k < M_LOCAL; k++) b[k] = 1.0 + 0.5 * sin(0.11 * (k + r));
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    double *x = malloc(N_LOCAL * 3 * sizeof *x), *y = malloc(M_LOCAL * 3 * sizeof *y);
    double *b = malloc(M_LOCAL * sizeof *b), *a = malloc(N_LOCAL * sizeof *a);
    points(rank, x, y, b);

    kp_context *ctx;
    kp_formula *f;
    kp_plan *plan;
    kp_context_new(&ctx);
    const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "b = Vj(1)"};
    kp_status st = kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y))*b, 1)", aliases, 3, &f);
    if (st == KP_OK) st = kp_plan_new(ctx, f, KP_FLOAT64, &plan);
    kp_array args[3] = {kp_array_2d(x, KP_FLOAT64, N_LOCAL, 3), kp_array_2d(y, KP_FLOAT64, M_LOCAL, 3),
                        kp_array_2d(b, KP_FLOAT64, M_LOCAL, 1)};
    kp_array out = kp_array_2d(a, KP_FLOAT64, N_LOCAL, 1);
    double t0 = MPI_Wtime();
    if (st == KP_OK) st = kp_mpi_exec(plan, MPI_COMM_WORLD, KP_MPI_RING, args, 3, &out, NULL, NULL);
    double t1 = MPI_Wtime();
    if (st != KP_OK) { /* every rank gets the same status and message */
        fprintf(stderr, "rank %d: %s\n", rank, kp_context_message(ctx));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int ok = 1;
    if (rank == 0) { /* rank 0's rows against a direct loop over every rank's points */
        double *yr = malloc(M_LOCAL * 3 * sizeof *yr), *br = malloc(M_LOCAL * sizeof *br), *xr = malloc(N_LOCAL * 3 * sizeof *xr);
        double worst = 0;
        for (int i = 0; i < 20; i++) {
            double s = 0;
            for (int r = 0; r < size; r++) {
                points(r, xr, yr, br);
                for (int j = 0; j < M_LOCAL; j++) {
                    double d = 0;
                    for (int c = 0; c < 3; c++) d += (x[3 * i + c] - yr[3 * j + c]) * (x[3 * i + c] - yr[3 * j + c]);
                    s += exp(-d) * br[j];
                }
            }
            worst = fmax(worst, fabs(a[i] - s) / fabs(s));
        }
        ok = worst < 1e-12;
        printf("%d ranks, %d x %d points: %.3f ms, relative error %.1e: %s\n", size, N_LOCAL * size,
               M_LOCAL * size, 1e3 * (t1 - t0), worst, ok ? "ok" : "WRONG");
        free(xr), free(yr), free(br);
    }
    kp_plan_free(plan);
    kp_formula_free(f);
    kp_context_free(ctx);
    free(x), free(y), free(b), free(a);
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return ok ? 0 : 1;
}
