/*
 * ranges.h — block-sparse ranges (kp_ranges in kp.h): the checks that turn a
 * caller's 6-tuple into a job's kp_job_ranges (ranges.c), and the lookups the
 * engines walk them with.
 */
#ifndef KP_PLAN_RANGES_H
#define KP_PLAN_RANGES_H

#include "plan/engine.h"

/* Validates r for a job whose axis, batch count and sizes are set (job->prog,
 * nbatch, nrows, ncols) and fills job->ranges with the triple of the job's
 * axis. r NULL: dense. KP_ERR_ARGUMENT (or KP_ERR_NULL) naming the array and
 * its first bad entry. */
kp_status kp__ranges_prepare(kp_context *ctx, const kp_ranges *r, kp_job *job);

/* The first cluster whose end is after flattened row `row` (nclusters if none):
 * clusters are sorted and disjoint, so their ends are non-decreasing. */
static inline int64_t kp__ranges_first_cluster(const kp_job_ranges *r, int64_t row) {
    int64_t lo = 0, hi = r->nclusters;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (kp__ranges_at(r, r->rows, 2 * mid + 1) > row) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* Cluster k's reduced ranges: cols[2l], cols[2l+1] for *l0 <= l < *l1. */
static inline void kp__ranges_list(const kp_job_ranges *r, int64_t k, int64_t *l0, int64_t *l1) {
    *l0 = k == 0 ? 0 : kp__ranges_at(r, r->slices, k - 1);
    *l1 = kp__ranges_at(r, r->slices, k);
}

/* 1 if flattened row `row` meets at least one reduced point. */
static inline int kp__ranges_row_has_pairs(const kp_job_ranges *r, int64_t row) {
    int64_t k = kp__ranges_first_cluster(r, row), l0, l1;
    if (k >= r->nclusters || kp__ranges_at(r, r->rows, 2 * k) > row) return 0;
    kp__ranges_list(r, k, &l0, &l1);
    for (int64_t l = l0; l < l1; l++)
        if (kp__ranges_at(r, r->cols, 2 * l + 1) > kp__ranges_at(r, r->cols, 2 * l)) return 1;
    return 0;
}

#endif
