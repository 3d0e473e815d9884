/*
 * kp_mpi.h — libkp_mpi: a libkp reduction over the processes of an MPI
 * communicator. A separate library (libkp itself never links MPI), built on
 * kp.h's partial reduction states.
 *
 * Points are numbered globally in rank order: rank 0's i points come first,
 * then rank 1's, and so on (likewise j points where they are split).
 *
 * Layouts (kp_mpi_layout), for a plan reducing over either axis:
 *
 *   KP_MPI_ROWS   i points split over the ranks, j points replicated (every
 *                 rank passes all of them, the same on every rank).
 *                 Axis 1 (reduce over j): each rank computes the rows of its
 *                 own i points with kp_plan_exec: no communication, results
 *                 bit-identical to one process.
 *                 Axis 0 (reduce over i: a column-side reduction, e.g. the
 *                 gradient with respect to a Vj variable): each rank folds its
 *                 i points into the states of all M rows, the states are
 *                 merged in rank order (a fixed binary tree) and every rank
 *                 gets all M rows.
 *   KP_MPI_RING   i and j points both split. The rank's output rows are its
 *                 own points of the output axis (i for axis 1, j for axis 0);
 *                 the reduced-axis variables travel around the ring in blocks
 *                 (rank r receives from r + 1 and sends to r - 1 with
 *                 nonblocking MPI while its engine folds the previous block),
 *                 so no rank ever holds more than two blocks. Each rank folds
 *                 blocks in increasing global order into two states (blocks
 *                 from its own rank up, blocks below its rank) merged at the
 *                 end.
 *
 * Bits: KP_MPI_ROWS with axis 1 equals kp_plan_exec exactly. Min/Max/ArgMin/
 * ... /KMin-type reductions give kp_plan_exec's values and indices exactly in
 * every layout. Sum, LogSumExp and SumSoftMaxWeight merge states in a fixed
 * order: the same bits for the same numbers of points per rank (and any
 * thread counts), within 1e-6 of the largest output (float32) or 1e-13
 * (float64) of one process (tests/test_mpi.c); rank 0's rows of KP_MPI_RING are bit-identical when every rank's
 * block of reduced points is a multiple of KP_STATE_CHUNK (the last may be
 * shorter). Under the KP_SUM_EXACT sum scheme (kp.h) they are one process's
 * bits in every layout, for any number of ranks and points per rank.
 *
 * Formulas that sum their rows (parameter gradients) give each rank the sum
 * over the rows it outputs; add those with MPI_Allreduce.
 *
 * Block-sparse ranges (options->ranges): those of the whole problem, in
 * global indices, as kp_plan_exec over all points would take them, the same
 * on every rank. Each rank clips them to its output rows and to the reduced
 * points of each part it folds, counted from their starts (kp.h's partial
 * states), so results are those of one ranged kp_plan_exec with the bits
 * above. The triple of the plan's axis is read (gradient plans: the
 * transposed one). On every engine, as ranged partial states.
 */
#ifndef KP_MPI_H
#define KP_MPI_H

#include <mpi.h>

#include "kp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kp_mpi_layout { KP_MPI_ROWS = 0, KP_MPI_RING = 1 } kp_mpi_layout;

/*
 * Runs plan over comm, a collective call: every rank of comm calls it with a
 * plan of the same formula and dtype, the same layout, and its own arguments
 * (as for kp_plan_exec; the split variables hold the rank's points, possibly
 * 0). out and out_index: the rank's output rows (KP_MPI_ROWS axis 0: all M
 * rows on every rank).
 *
 * Errors reach every rank: all ranks return the same status with the same
 * message (in the plan's context), prefixed with the rank that failed first.
 * Arguments that disagree between ranks (count, dtype, dimensions, batch
 * shape, the number of replicated points, layout, the ranges) make every rank
 * return KP_ERR_ARGUMENT before any work, and so do ranges malformed for the
 * whole problem (kp_plan_ranges_check). A failure of MPI itself is KP_ERR_INTERNAL
 * with MPI's error string (the communicator's error handler is used as set:
 * set MPI_ERRORS_RETURN on comm to receive it). No rank waits forever on a
 * rank that failed.
 * Thread-safety: as MPI and kp_plan_exec; one call at a time per comm.
 */
kp_status kp_mpi_exec(kp_plan *plan, MPI_Comm comm, kp_mpi_layout layout, const kp_array *args, size_t n_args,
                      kp_array *out, kp_array *out_index, const kp_exec_options *options);

#ifdef __cplusplus
}
#endif
#endif /* KP_MPI_H */
