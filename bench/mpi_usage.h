/* mpi_usage.h — the MPI benchmarks' answer to an option they do not take:
 * usage on rank 0 (stdout and status 0 for --help or -h, stderr and 2 for
 * anything else), after MPI_Finalize. */
#ifndef KP_BENCH_MPI_USAGE_H
#define KP_BENCH_MPI_USAGE_H

#include <mpi.h>
#include <stdio.h>
#include <string.h>

static int mpi_bench_usage(int rank, const char *arg, const char *usage) {
    int help = strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
    if (rank == 0) fputs(usage, help ? stdout : stderr);
    MPI_Finalize();
    return help ? 0 : 2;
}

#endif
