/*
 * ranges.c — block-sparse ranges over the ranks. The caller gives the ranges
 * of the whole problem (as one process would), the same on every rank; each
 * part (a rank's output rows against one block of reduced points) folds with
 * them clipped to its rows and its points and counted from their starts
 * (kp.h: a part's ranges are in its own coordinates). Clipping keeps exactly
 * the pairs of the whole that fall in the part, so the parts' states hold the
 * pairs of one ranged call.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/mpi_internal.h"

kp_status kp__mpi_read_options(kp_mpi_call *c) {
    kp_exec_options_init(&c->opt);
    c->ranges = NULL;
    if (!c->options) return KP_OK;
    const size_t first = offsetof(kp_exec_options, struct_size);
    const size_t with_ranges = offsetof(kp_exec_options, ranges) + sizeof c->opt.ranges;
    size_t size = c->options->struct_size;
    /* 0 or a short struct: libkp reads it as the caller built it (and refuses
     * a size below its first fields); it holds no ranges. */
    if (size < with_ranges) {
        memcpy(&c->opt, c->options, size > first ? size : first);
        return KP_OK;
    }
    const unsigned char *bytes = (const unsigned char *)c->options;
    for (size_t k = sizeof c->opt; k < size; k++)
        if (bytes[k])
            return kp__mpi_fail(c, KP_ERR_ARGUMENT,
                                "kp_exec_options.struct_size is %zu, but this libkp_mpi knows %zu bytes and the others "
                                "are set: the caller was built against a newer kp.h",
                                size, sizeof c->opt);
    memcpy(&c->opt, c->options, size < sizeof c->opt ? size : sizeof c->opt);
    c->opt.struct_size = sizeof c->opt;
    c->ranges = c->opt.ranges;
    c->opt.ranges = NULL; /* each part gets its own */
    return KP_OK;
}

/* The triple the plan's axis reads: output-row clusters, slices, reduced ranges. */
typedef struct triple {
    const void *rows, *slices, *cols;
    int64_t nrows, nslices, ncols;
    int index_size;
} triple;

static triple triple_of(const kp_mpi_call *c, const kp_ranges *r) {
    triple t = {r->ranges_i, r->slices_i, r->redranges_j, r->n_ranges_i, r->n_slices_i, r->n_redranges_j,
                r->index_size};
    if (c->axis == 0)
        t = (triple){r->ranges_j, r->slices_j, r->redranges_i, r->n_ranges_j, r->n_slices_j, r->n_redranges_i,
                     r->index_size};
    return t;
}

static int64_t at(const triple *t, const void *a, int64_t k) {
    return t->index_size == 4 ? (int64_t)((const int32_t *)a)[k] : ((const int64_t *)a)[k];
}

/* The hash runs on every call, over every entry of the triple (9 per cluster
 * of 3 ranges): four independent multiply-xor chains over whole 64-bit values
 * keep it at about a cycle per entry (a byte-wise FNV-1a, 8 dependent
 * multiplies per entry, cost up to 40% of a ranged call: docs/distributed.md).
 * Each step is a bijection of the lane (for a given value) and of the value
 * (for a given lane), and so is the final fold of the lanes: ranks whose
 * triples differ in one entry always get different hashes (the hashes are
 * compared whole, so that bits only move upwards does not matter). */
#define HASH_LANES 4
static const uint64_t HASH_PRIME = 0x9e3779b97f4a7c15ull; /* odd: multiplying by it is a bijection */

static void mix(uint64_t *lane, uint64_t v) { *lane = (*lane ^ v) * HASH_PRIME; }

/* The lanes over n entries of a (int32 or int64 per index_size), as int64. */
static void mix_array(uint64_t h[HASH_LANES], const triple *t, const void *a, int64_t n) {
    int64_t k = 0;
    if (t->index_size == 8) {
        const int64_t *v = a;
        for (; k + HASH_LANES <= n; k += HASH_LANES)
            for (int l = 0; l < HASH_LANES; l++) mix(&h[l], (uint64_t)v[k + l]);
    } else {
        const int32_t *v = a;
        for (; k + HASH_LANES <= n; k += HASH_LANES)
            for (int l = 0; l < HASH_LANES; l++) mix(&h[l], (uint64_t)(int64_t)v[k + l]);
    }
    for (; k < n; k++) mix(&h[0], (uint64_t)at(t, a, k));
    for (int l = 0; l < HASH_LANES; l++) mix(&h[l], (uint64_t)n); /* where one array ends */
}

/* A hash of the triple's values (as int64, whatever index_size) and counts;
 * a triple that cannot be read (bad counts or pointers) hashes its header. */
uint64_t kp__mpi_ranges_hash(const kp_mpi_call *c) {
    uint64_t h[HASH_LANES] = {1469598103934665603ull, 1, 2, 3};
    mix(&h[0], c->ranges != NULL);
    if (!c->ranges) return h[0];
    triple t = triple_of(c, c->ranges);
    int readable = (t.index_size == 4 || t.index_size == 8) && t.nrows >= 0 && t.nslices >= 0 && t.ncols >= 0 &&
                   (!t.nrows || t.rows) && (!t.nslices || t.slices) && (!t.ncols || t.cols);
    const int64_t head[] = {t.index_size, t.nrows, t.nslices, t.ncols, readable};
    for (size_t k = 0; k < sizeof head / sizeof *head; k++) mix(&h[0], (uint64_t)head[k]);
    if (readable) {
        mix_array(h, &t, t.rows, 2 * t.nrows);
        mix_array(h, &t, t.slices, t.nslices);
        mix_array(h, &t, t.cols, 2 * t.ncols);
    }
    uint64_t all = h[0];
    for (int l = 1; l < HASH_LANES; l++) mix(&all, h[l]);
    return all;
}

kp_status kp__mpi_ranges_check(const kp_mpi_call *c, const kp_mpi_geometry *g) {
    if (!c->ranges) return KP_OK; /* then no rank has any (kp__mpi_same_shapes) */
    return kp_plan_ranges_check(c->plan, c->ranges, g->nbatch, g->nrows, g->ncols);
}

void kp__mpi_part_free(kp_mpi_part *p) {
    free(p->buf);
    memset(p, 0, sizeof *p);
}

kp_status kp__mpi_part_alloc(const kp_mpi_call *c, kp_mpi_part *p) {
    memset(p, 0, sizeof *p);
    p->opt = c->opt;
    if (!c->ranges) return KP_OK;
    triple t = triple_of(c, c->ranges);
    size_t n = (size_t)(3 * t.nrows + 2 * t.ncols) + 1;
    p->buf = malloc(n * sizeof *p->buf);
    if (!p->buf) return kp__mpi_fail(c, KP_ERR_OOM, "out of memory for the ranges of a part (%zu indices)", n);
    return KP_OK;
}

/* Clips [s, e) of batch b (whole-problem flat indices, n per batch) to the
 * block [b0, b0 + nb) of that batch; the part's flat indices (nb per batch)
 * in *ps, *pe. 0 when they do not meet. */
static int clip(int64_t s, int64_t e, int64_t b, int64_t n, int64_t b0, int64_t nb, int64_t *ps, int64_t *pe) {
    int64_t lo = s - b * n, hi = e - b * n;
    if (lo < b0) lo = b0;
    if (hi > b0 + nb) hi = b0 + nb;
    if (lo >= hi) return 0;
    *ps = b * nb + lo - b0;
    *pe = b * nb + hi - b0;
    return 1;
}

/* The first cluster whose end is past `row` (clusters are sorted and
 * disjoint, so their ends do not decrease): t->nrows when none is. */
static int64_t first_cluster_past(const triple *t, int64_t row) {
    int64_t lo = 0, hi = t->nrows;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (at(t, t->rows, 2 * mid + 1) > row) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* Clips cluster k (of batch b) and its ranges into the part's arrays at *k2, *l2. */
static void clip_cluster(const triple *t, const kp_mpi_geometry *g, int64_t k, int64_t b, int64_t row0, int64_t nrows,
                         int64_t col0, int64_t ncols, int64_t *rows, int64_t *slices, int64_t *cols, int64_t *k2,
                         int64_t *l2) {
    int64_t s = at(t, t->rows, 2 * k), e = at(t, t->rows, 2 * k + 1);
    if (!clip(s, e, b, g->nrows, row0, nrows, &rows[2 * *k2], &rows[2 * *k2 + 1])) return;
    int64_t l0 = k ? at(t, t->slices, k - 1) : 0, l1 = at(t, t->slices, k);
    for (int64_t l = l0; l < l1 && g->ncols > 0; l++)
        *l2 += clip(at(t, t->cols, 2 * l), at(t, t->cols, 2 * l + 1), b, g->ncols, col0, ncols, &cols[2 * *l2],
                    &cols[2 * *l2 + 1]);
    slices[(*k2)++] = *l2;
}

/* Runs on every part of every call: in each batch only the clusters that meet
 * the part's rows are visited (found by bisection), so that the ring's P
 * parts of a rank cost the rank's clusters, not P times all of them. */
const kp_exec_options *kp__mpi_part(const kp_mpi_call *c, kp_mpi_part *p, const kp_mpi_geometry *g, int64_t row0,
                                    int64_t nrows, int64_t col0, int64_t ncols) {
    if (!c->ranges) return &p->opt;
    triple t = triple_of(c, c->ranges);
    int64_t *rows = p->buf, *cols = rows + 2 * t.nrows, *slices = cols + 2 * t.ncols, k2 = 0, l2 = 0;
    for (int64_t b = 0; b < g->nbatch && g->nrows > 0 && nrows > 0; b++) {
        const int64_t first = b * g->nrows + row0, end = first + nrows; /* the part's rows, whole-problem indices */
        for (int64_t k = first_cluster_past(&t, first); k < t.nrows && at(&t, t.rows, 2 * k) < end; k++)
            clip_cluster(&t, g, k, b, row0, nrows, col0, ncols, rows, slices, cols, &k2, &l2);
    }
    /* Both triples name the part's arrays: the plan reads its axis's only. */
    p->local = (kp_ranges){8, rows, slices, cols, rows, slices, cols, k2, k2, l2, k2, k2, l2};
    p->opt.ranges = &p->local;
    return &p->opt;
}
