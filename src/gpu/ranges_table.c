/* ranges_table.c — the GPU kernels' table of block-sparse ranges (contract in ranges_table.h). */
#include "gpu/ranges_table.h"

#include "core/alloc.h"
#include "plan/ranges.h"

/* Appends entries for rows [r0, r1) of batch b with ranges [l0, l1), in pieces of rpb rows. */
static void add_rows(kp_gpu_ranges_table *t, int64_t b, int64_t r0, int64_t r1, int64_t l0, int64_t l1, int64_t rpb) {
    for (int64_t r = r0; r < r1; r += rpb) {
        int64_t *e = t->blk + 5 * t->nblk++;
        e[0] = r, e[1] = r + rpb < r1 ? r + rpb : r1, e[2] = l0, e[3] = l1, e[4] = b;
    }
}

/* Appends cluster k's ranges, batch-local (offset coff), touching ones joined; returns where they start. */
static int64_t add_cols(kp_gpu_ranges_table *t, const kp_job_ranges *R, int64_t k, int64_t coff) {
    int64_t l, l1, first = t->ncols;
    kp__ranges_list(R, k, &l, &l1);
    for (; l < l1; l++) {
        int64_t s = kp__ranges_at(R, R->cols, 2 * l) - coff, e = kp__ranges_at(R, R->cols, 2 * l + 1) - coff;
        if (s == e) continue;
        if (t->ncols > first && t->cols[2 * t->ncols - 1] == s) t->cols[2 * t->ncols - 1] = e;
        else t->cols[2 * t->ncols] = s, t->cols[2 * t->ncols + 1] = e, t->ncols++;
    }
    return first;
}

int kp__gpu_ranges_table(kp_context *ctx, const kp_job *job, int64_t rpb, kp_gpu_ranges_table *t) {
    const kp_job_ranges *R = &job->ranges;
    int64_t nranges = R->nclusters ? kp__ranges_at(R, R->slices, R->nclusters - 1) : 0;
    /* entries: the row pieces of every batch, plus at most two more pieces per cluster (its cuts) */
    int64_t cap = job->nbatch * ((job->nrows + rpb - 1) / rpb + 1) + 2 * R->nclusters + 1;
    t->blk = kp__alloc(ctx, (size_t)cap * 5 * sizeof *t->blk);
    t->cols = kp__alloc(ctx, (size_t)(nranges + 1) * 2 * sizeof *t->cols);
    t->nblk = t->ncols = 0;
    if (!t->blk || !t->cols) {
        kp__gpu_ranges_table_free(ctx, t);
        return 0;
    }
    int64_t N = job->nrows;
    for (int64_t b = 0; b < job->nbatch; b++) {
        int64_t r = 0;
        for (int64_t k = kp__ranges_first_cluster(R, b * N); k < R->nclusters; k++) {
            int64_t s = kp__ranges_at(R, R->rows, 2 * k) - b * N, e = kp__ranges_at(R, R->rows, 2 * k + 1) - b * N;
            if (s >= N) break;
            if (s == e) continue;
            add_rows(t, b, r, s, 0, 0, rpb); /* rows in no cluster */
            int64_t c0 = add_cols(t, R, k, b * job->ncols);
            add_rows(t, b, s, e, c0, t->ncols, rpb);
            r = e;
        }
        add_rows(t, b, r, N, 0, 0, rpb);
    }
    return 1;
}

void kp__gpu_ranges_table_free(kp_context *ctx, kp_gpu_ranges_table *t) {
    kp__free(ctx, t->blk);
    kp__free(ctx, t->cols);
    t->blk = t->cols = NULL;
}

/* Appends the pieces of ranges [*l, l1) of t (sorted, disjoint) that fall in
 * [c0, c1), clipped; *l moves past the ranges that end in it, so that walking
 * the chunks in order reads each range once (plus once per chunk it crosses). */
static void add_clipped(kp_gpu_ranges_table *out, const kp_gpu_ranges_table *t, int64_t *l, int64_t l1, int64_t c0,
                        int64_t c1) {
    for (int64_t k = *l; k < l1 && t->cols[2 * k] < c1; k++) {
        int64_t s = t->cols[2 * k] > c0 ? t->cols[2 * k] : c0, e = t->cols[2 * k + 1] < c1 ? t->cols[2 * k + 1] : c1;
        if (s < e) out->cols[2 * out->ncols] = s, out->cols[2 * out->ncols + 1] = e, out->ncols++;
        if (t->cols[2 * k + 1] <= c1) *l = k + 1;
    }
}

int kp__gpu_ranges_table_chunks(kp_context *ctx, kp_gpu_ranges_table *t, int64_t chunk, int64_t nchunks) {
    kp_gpu_ranges_table out;
    out.nblk = out.ncols = 0;
    /* a range meets at most every chunk; the clipped lists of entries that share
       their ranges (one cluster's row pieces) are written once */
    int64_t lists = 0;
    for (int64_t g = 0; g < t->nblk; g++)
        if (t->blk[5 * g + 2] < t->blk[5 * g + 3]) lists++;
    out.blk = kp__alloc(ctx, (size_t)(t->nblk * nchunks + 1) * 6 * sizeof *out.blk);
    out.cols = kp__alloc(ctx, (size_t)(t->ncols + lists * nchunks + 1) * 2 * sizeof *out.cols);
    int ok = out.blk && out.cols;
    int64_t prev0 = -1, prev1 = -1, first = 0; /* the last clipped list: t's ranges and where it starts in out */
    for (int64_t g = 0; ok && g < t->nblk; g++) {
        const int64_t *e = t->blk + 5 * g, l0 = e[2], l1 = e[3];
        int fresh = l0 < l1 && (l0 != prev0 || l1 != prev1);
        if (fresh) prev0 = l0, prev1 = l1, first = out.ncols;
        int64_t at = first, cur = l0; /* chunk ch's clipped ranges start at at; t's next range: cur */
        for (int64_t ch = 0; ch < nchunks; ch++) {
            int64_t c0 = ch * chunk, c1 = c0 + chunk, end = at;
            if (fresh) add_clipped(&out, t, &cur, l1, c0, c1), end = out.ncols;
            else if (l0 < l1) /* the same list again: its pieces of this chunk are those already written */
                while (end < out.ncols && out.cols[2 * end] < c1 && out.cols[2 * end] >= c0) end++;
            int64_t *o = out.blk + 6 * out.nblk++;
            o[0] = e[0], o[1] = e[1], o[2] = l0 < l1 ? at : 0, o[3] = l0 < l1 ? end : 0, o[4] = e[4], o[5] = ch;
            at = end;
        }
    }
    kp__gpu_ranges_table_free(ctx, t);
    if (!ok) {
        kp__gpu_ranges_table_free(ctx, &out);
        return 0;
    }
    *t = out;
    return 1;
}
