/* mpi_internal.h — inside libkp_mpi: one collective call's facts, the error
 * agreement and the packing of the arrays that travel. Built on kp.h only. */
#ifndef KP_MPI_INTERNAL_H
#define KP_MPI_INTERNAL_H

#include <stdint.h>

#include "kp_mpi.h"

/* Message buffer of an agreed error (the context's size). */
#define KP_MPI_MESSAGE 512

typedef struct kp_mpi_call {
    kp_plan *plan;
    kp_context *ctx; /* NULL when plan is */
    MPI_Comm comm;
    int rank, size;
    kp_mpi_layout layout;
    int axis;                 /* the plan's: 1 reduces over j */
    kp_var_category red_cat;  /* the reduced axis' variables: KP_VAR_J for axis 1 */
    const kp_array *args;
    size_t nargs;
    const kp_exec_options *options; /* the caller's */
    kp_exec_options opt;            /* read from options, without the ranges */
    const kp_ranges *ranges;        /* the caller's, of the whole problem (NULL: dense) */
} kp_mpi_call;

/* Collective: the first rank (lowest) whose st is not KP_OK sends its status
 * and message to all; every rank returns that status with the same message
 * ("rank R: ...") in its context. KP_OK everywhere: KP_OK. */
kp_status kp__mpi_agree(const kp_mpi_call *c, kp_status st);
/* Local failure with a formatted message (then agreed by the caller). */
kp_status kp__mpi_fail(const kp_mpi_call *c, kp_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* KP_ERR_INTERNAL with MPI's error string when rc is not MPI_SUCCESS. */
kp_status kp__mpi_check(const kp_mpi_call *c, int rc, const char *what);
/* Collective: KP_ERR_ARGUMENT on every rank when the ranks' calls disagree
 * (layout, argument count, dtypes, dimensions, batch shapes, replicated
 * sizes, ranges); the split row counts may differ. */
kp_status kp__mpi_same_shapes(const kp_mpi_call *c);

/* The reduced-axis variables of a call, packed contiguously to travel. */
typedef struct kp_mpi_block {
    char *data;
    size_t bytes, capacity;
    int64_t npoints;
} kp_mpi_block;

/* Bytes of a packed block of npoints points of args' reduced-axis variables. */
size_t kp__mpi_block_bytes(const kp_mpi_call *c, int64_t npoints);
/* Packs the rank's own reduced-axis variables into b (sized by the caller). */
void kp__mpi_block_pack(const kp_mpi_call *c, kp_mpi_block *b);
/* args with the reduced-axis variables read from block b (contiguous). */
void kp__mpi_block_args(const kp_mpi_call *c, const kp_mpi_block *b, kp_array *out_args);
/* Points of the reduced axis in the rank's own arguments (-1: no such variable). */
int64_t kp__mpi_local_points(const kp_mpi_call *c, kp_var_category cat);

/* Block-sparse ranges (ranges.c). */
/* Reads the caller's options into c->opt and c->ranges (libkp's rules for
 * struct_size: a struct too short to hold ranges holds none). */
kp_status kp__mpi_read_options(kp_mpi_call *c);

/* The whole problem: flat batches, output rows and reduced points per batch. */
typedef struct kp_mpi_geometry {
    int64_t nbatch, nrows, ncols;
} kp_mpi_geometry;

/* A hash of the ranges the plan reads (the triple of its axis; 0 ranges too),
 * compared between ranks by kp__mpi_same_shapes. */
uint64_t kp__mpi_ranges_hash(const kp_mpi_call *c);
/* Local: KP_ERR_ARGUMENT when the ranges are malformed for the whole problem g
 * (kp_plan_ranges_check). The ranks' ranges and g being the same (agreed by
 * kp__mpi_same_shapes), every rank gets the same status and message, so the
 * caller agrees on it with its other steps' statuses, in one agreement. */
kp_status kp__mpi_ranges_check(const kp_mpi_call *c, const kp_mpi_geometry *g);

/* The options of one part: c->opt with the ranges clipped to the part. */
typedef struct kp_mpi_part {
    kp_exec_options opt;
    kp_ranges local;
    int64_t *buf; /* the clipped triple: rows, cols, slices */
} kp_mpi_part;

kp_status kp__mpi_part_alloc(const kp_mpi_call *c, kp_mpi_part *p);
void kp__mpi_part_free(kp_mpi_part *p);
/* The options for folding the output rows [row0, row0 + nrows) against the
 * reduced points [col0, col0 + ncols) (per batch, of the whole problem g):
 * the caller's ranges clipped to them, counted from row0 and col0 (valid
 * until the next call on p). Dense calls: c->opt. */
const kp_exec_options *kp__mpi_part(const kp_mpi_call *c, kp_mpi_part *p, const kp_mpi_geometry *g, int64_t row0,
                                    int64_t nrows, int64_t col0, int64_t ncols);

#endif
