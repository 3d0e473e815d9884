/*
 * kernel_ranges.h — block-sparse ranges in the CPU tile interpreter (included
 * by kernel_impl.h after reduce_tile).
 *
 * A block of rows meets the clusters that overlap it; each cluster's rows are
 * folded over that cluster's reduced ranges, in increasing order. Tiles are
 * filled with kept points only: a range of a tile's width or more is walked
 * in contiguous tiles, and shorter ones are packed together into gathered
 * tiles (lane k holds point jmap[k]), so the pair program runs on kept pairs
 * and the cost follows their number even when ranges are a few points wide.
 * Chunks are those of the dense walk (the range pieces inside each chunk), so
 * the merge order, and results for any thread count, stay the same; the
 * packing depends on the ranges alone.
 */
#include "plan/ranges.h"

/* 1 if row r of batch b meets at least one reduced point. */
static int row_has_pairs(const kp_job *job, int64_t b, int64_t r) {
    if (!job->ranges.rows) return job->ncols > 0;
    return kp__ranges_row_has_pairs(&job->ranges, b * job->nrows + r);
}

/* Packs reduced points into whole tiles for one cluster's rows [ra, rb). */
typedef struct tile_packer {
    const block_ctx *c;
    int ra, rb, len;
    int64_t map[TILE];
} tile_packer;

static void packer_flush(tile_packer *t) {
    if (!t->len) return;
    if (t->map[t->len - 1] - t->map[0] == t->len - 1) /* contiguous after all: the cheaper gather */
        reduce_tile(t->c, t->map[0], NULL, t->len, t->ra, t->rb);
    else reduce_tile(t->c, 0, t->map, t->len, t->ra, t->rb);
    t->len = 0;
}

/* Adds the reduced points [cs, ce) (after those added before). */
static void packer_add(tile_packer *t, int64_t cs, int64_t ce) {
    while (cs < ce) {
        if (t->len == 0 && ce - cs >= TILE) { /* a whole contiguous tile */
            reduce_tile(t->c, cs, NULL, TILE, t->ra, t->rb);
            cs += TILE;
            continue;
        }
        int64_t take = ce - cs < TILE - t->len ? ce - cs : TILE - t->len;
        for (int64_t q = 0; q < take; q++) t->map[t->len + q] = cs + q;
        t->len += (int)take;
        cs += take;
        if (t->len == TILE) packer_flush(t);
    }
}

/* Folds the pairs of rows [r0, r0 + nr) of batch c->bp->batch with the
 * reduced points of [jstart, jend) that their clusters keep into c->partial. */
static void reduce_chunk_ranges(const block_ctx *c, int64_t r0, int nr, int64_t jstart, int64_t jend) {
    const kp_job *job = c->job;
    const kp_job_ranges *R = &job->ranges;
    int64_t b = c->bp->batch, row0 = b * job->nrows + r0, row1 = row0 + nr, coff = b * job->ncols;
    tile_packer t;
    t.c = c;
    t.len = 0;
    for (int64_t k = kp__ranges_first_cluster(R, row0); k < R->nclusters; k++) {
        int64_t s = kp__ranges_at(R, R->rows, 2 * k), e = kp__ranges_at(R, R->rows, 2 * k + 1);
        if (s >= row1) break;
        t.ra = (int)((s > row0 ? s : row0) - row0), t.rb = (int)((e < row1 ? e : row1) - row0);
        if (t.ra >= t.rb) continue;
        int64_t l, l1;
        kp__ranges_list(R, k, &l, &l1);
        for (; l < l1; l++) {
            int64_t cs = kp__ranges_at(R, R->cols, 2 * l) - coff, ce = kp__ranges_at(R, R->cols, 2 * l + 1) - coff;
            if (cs >= jend) break; /* sorted: the rest lie further still */
            packer_add(&t, cs > jstart ? cs : jstart, ce < jend ? ce : jend);
        }
        packer_flush(&t);
    }
}
