/*
 * kernel_ranges.h — block-sparse ranges in the CPU tile interpreter (included
 * by kernel_impl.h after reduce_tile).
 *
 * A block of rows meets the clusters that overlap it; each cluster's rows are
 * folded over that cluster's reduced ranges, tile by tile, with tiles starting
 * at each range's start (touching ranges are walked as one): the pairs outside
 * the ranges cost nothing, and a range narrower than a tile costs one tile.
 * Chunks are those of the dense walk (the range pieces inside each chunk), so
 * the merge order, and results for any thread count, stay the same.
 */
#include "plan/ranges.h"

/* 1 if row r of batch b meets at least one reduced point. */
static int row_has_pairs(const kp_job *job, int64_t b, int64_t r) {
    if (!job->ranges.rows) return job->ncols > 0;
    return kp__ranges_row_has_pairs(&job->ranges, b * job->nrows + r);
}

/* Folds the pairs of rows [r0, r0 + nr) of batch c->bp->batch with the
 * reduced points of [jstart, jend) that their clusters keep into c->partial. */
static void reduce_chunk_ranges(const block_ctx *c, int64_t r0, int nr, int64_t jstart, int64_t jend) {
    const kp_job *job = c->job;
    const kp_job_ranges *R = &job->ranges;
    int64_t b = c->bp->batch, row0 = b * job->nrows + r0, row1 = row0 + nr, coff = b * job->ncols;
    for (int64_t k = kp__ranges_first_cluster(R, row0); k < R->nclusters; k++) {
        int64_t s = kp__ranges_at(R, R->rows, 2 * k), e = kp__ranges_at(R, R->rows, 2 * k + 1);
        if (s >= row1) break;
        int ra = (int)((s > row0 ? s : row0) - row0), rb = (int)((e < row1 ? e : row1) - row0);
        if (ra >= rb) continue;
        int64_t l, l1;
        kp__ranges_list(R, k, &l, &l1);
        while (l < l1) {
            int64_t cs = kp__ranges_at(R, R->cols, 2 * l) - coff, ce = kp__ranges_at(R, R->cols, 2 * l + 1) - coff;
            for (l++; l < l1 && kp__ranges_at(R, R->cols, 2 * l) - coff == ce; l++)
                ce = kp__ranges_at(R, R->cols, 2 * l + 1) - coff;
            if (cs >= jend) break; /* sorted: the rest lie further still */
            if (cs < jstart) cs = jstart;
            if (ce > jend) ce = jend;
            for (int64_t j0 = cs; j0 < ce; j0 += TILE) reduce_tile(c, j0, (int)(ce - j0 < TILE ? ce - j0 : TILE), ra, rb);
        }
    }
}
