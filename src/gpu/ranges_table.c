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
