/*
 * ranges_table.h — block-sparse ranges (kp_job_ranges) as the GPU kernels
 * walk them (codegen.h, kp_gpu_settings.ranges): one entry per work-group,
 * {first row, end row, first range, end range, batch}, covering every row of
 * every batch in pieces of at most rows_per_block rows that never straddle a
 * cluster (rows in no cluster get entries with no range: the neutral value),
 * and the clusters' reduced ranges, batch-local, touching ones joined.
 */
#ifndef KP_GPU_RANGES_TABLE_H
#define KP_GPU_RANGES_TABLE_H

#include "plan/engine.h"

typedef struct kp_gpu_ranges_table {
    int64_t *blk; /* 5 per entry */
    int64_t nblk;
    int64_t *cols; /* 2 per range */
    int64_t ncols;
} kp_gpu_ranges_table;

/* Builds the table of job (job->ranges.rows set); 0 when out of memory
 * (nothing to free then). Both allocate and free through ctx's allocator. */
int kp__gpu_ranges_table(kp_context *ctx, const kp_job *job, int64_t rows_per_block, kp_gpu_ranges_table *t);
void kp__gpu_ranges_table_free(kp_context *ctx, kp_gpu_ranges_table *t);

/* Partial states (codegen.h, kp_gpu_settings.states with ranges): t's entries
 * again, one per (entry, chunk) for the nchunks chunks of chunk points that
 * cut a batch's reduced axis, 6 numbers each: t's 5, the ranges clipped to
 * the chunk, then the chunk. Every (rows, chunk) has its entry, with no range
 * where the cluster keeps no point of the chunk (its state: the identity), so
 * every chunk state is written. t is freed either way; 0 when out of memory. */
int kp__gpu_ranges_table_chunks(kp_context *ctx, kp_gpu_ranges_table *t, int64_t chunk, int64_t nchunks);

#endif
