/* ranges.c — checks of a block-sparse ranges 6-tuple (kp_ranges) against a call's sizes. */
#include "plan/ranges.h"

#include <string.h>

#include "core/context.h"

/* Names of one axis's triple, for messages. */
typedef struct triple_names {
    const char *rows, *slices, *cols;
} triple_names;

/* Range k of a (n, 2) array: start <= end, both in [lo, hi], start >= *prev
 * (sorted and disjoint after the previous one). */
static kp_status check_range(kp_context *ctx, const kp_job_ranges *r, const void *a, const char *name, int64_t k,
                             int64_t lo, int64_t hi, int64_t *prev) {
    int64_t s = kp__ranges_at(r, a, 2 * k), e = kp__ranges_at(r, a, 2 * k + 1);
    if (s > e)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "ranges: %s[%lld] = [%lld, %lld) starts after its end", name,
                        (long long)k, (long long)s, (long long)e);
    if (s < lo || e > hi)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "ranges: %s[%lld] = [%lld, %lld) is outside [%lld, %lld]", name,
                        (long long)k, (long long)s, (long long)e, (long long)lo, (long long)hi);
    if (s < *prev)
        return kp__fail(ctx, KP_ERR_ARGUMENT,
                        "ranges: %s[%lld] = [%lld, %lld) starts before the end %lld of the range before it (ranges "
                        "must be sorted and disjoint)",
                        name, (long long)k, (long long)s, (long long)e, (long long)*prev);
    *prev = e;
    return KP_OK;
}

/* Cluster k: its rows in one batch (*batch), its slice after the previous one. */
static kp_status check_cluster(kp_context *ctx, const kp_job *job, const triple_names *nm, int64_t k, int64_t ncols_ranges,
                               int64_t *batch) {
    const kp_job_ranges *r = &job->ranges;
    int64_t s = kp__ranges_at(r, r->rows, 2 * k), e = kp__ranges_at(r, r->rows, 2 * k + 1);
    *batch = job->nrows ? s / job->nrows : 0;
    if (e > s && (e - 1) / job->nrows != *batch)
        return kp__fail(ctx, KP_ERR_ARGUMENT,
                        "ranges: %s[%lld] = [%lld, %lld) spans batches %lld and %lld (%lld rows each): a cluster "
                        "lies in one batch",
                        nm->rows, (long long)k, (long long)s, (long long)e, (long long)*batch,
                        (long long)((e - 1) / job->nrows), (long long)job->nrows);
    int64_t l0 = k == 0 ? 0 : kp__ranges_at(r, r->slices, k - 1), l1 = kp__ranges_at(r, r->slices, k);
    if (l0 < 0 || l1 < l0 || l1 > ncols_ranges)
        return kp__fail(ctx, KP_ERR_ARGUMENT,
                        "ranges: %s[%lld] = %lld: slices must be non-decreasing, from 0 to the %lld entries of %s "
                        "(the entry before is %lld)",
                        nm->slices, (long long)k, (long long)l1, (long long)ncols_ranges, nm->cols, (long long)l0);
    return KP_OK;
}

static kp_status check_triple(kp_context *ctx, const kp_job *job, const triple_names *nm, int64_t nslices,
                              int64_t ncols_ranges) {
    const kp_job_ranges *r = &job->ranges;
    if (nslices != r->nclusters)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "ranges: %s has %lld entries, but %s has %lld clusters (one slice each)",
                        nm->slices, (long long)nslices, nm->rows, (long long)r->nclusters);
    if ((r->nclusters && (!r->rows || !r->slices)) || (ncols_ranges && !r->cols))
        return kp__fail(ctx, KP_ERR_NULL, "ranges: %s, %s or %s is NULL but has entries", nm->rows, nm->slices,
                        nm->cols);
    int64_t prev_row = 0;
    for (int64_t k = 0; k < r->nclusters; k++) {
        int64_t batch, l0, l1;
        kp_status st = check_range(ctx, r, r->rows, nm->rows, k, 0, job->nbatch * job->nrows, &prev_row);
        if (st == KP_OK) st = check_cluster(ctx, job, nm, k, ncols_ranges, &batch);
        if (st != KP_OK) return st;
        kp__ranges_list(r, k, &l0, &l1);
        int64_t prev_col = batch * job->ncols;
        for (int64_t l = l0; l < l1; l++)
            if ((st = check_range(ctx, r, r->cols, nm->cols, l, batch * job->ncols, (batch + 1) * job->ncols,
                                  &prev_col)) != KP_OK) {
                kp__prefix_message(ctx, "%s[%lld] (batch %lld): ", nm->rows, (long long)k, (long long)batch);
                return st;
            }
    }
    return KP_OK;
}

kp_status kp__ranges_prepare(kp_context *ctx, const kp_ranges *r, kp_job *job) {
    memset(&job->ranges, 0, sizeof job->ranges);
    if (!r) return KP_OK;
    if (r->index_size != 4 && r->index_size != 8)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "ranges: index_size is %d, expected 4 (int32) or 8 (int64)",
                        r->index_size);
    int over_j = job->prog->axis == 1;
    static const triple_names names[2] = {{"ranges_j", "slices_j", "redranges_i"}, {"ranges_i", "slices_i", "redranges_j"}};
    int64_t nrows_ranges = over_j ? r->n_ranges_i : r->n_ranges_j;
    int64_t nslices = over_j ? r->n_slices_i : r->n_slices_j, ncols_ranges = over_j ? r->n_redranges_j : r->n_redranges_i;
    if (nrows_ranges < 0 || nslices < 0 || ncols_ranges < 0)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "ranges: a negative count of %s, %s or %s", names[over_j].rows,
                        names[over_j].slices, names[over_j].cols);
    job->ranges.rows = over_j ? r->ranges_i : r->ranges_j;
    job->ranges.slices = over_j ? r->slices_i : r->slices_j;
    job->ranges.cols = over_j ? r->redranges_j : r->redranges_i;
    job->ranges.nclusters = nrows_ranges;
    job->ranges.index_size = r->index_size;
    kp_status st = check_triple(ctx, job, &names[over_j], nslices, ncols_ranges);
    if (st != KP_OK) memset(&job->ranges, 0, sizeof job->ranges);
    else if (!job->ranges.rows) job->ranges.rows = job->ranges.slices = job->ranges.cols = ""; /* no cluster: every row empty */
    return st;
}
