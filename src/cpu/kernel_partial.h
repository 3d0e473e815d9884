/*
 * kernel_partial.h — partial reduction states (kp_plan_exec_partial and
 * friends) on top of the monoid of kernel_reduce.h: init, merge and finalize
 * whole arrays of row states. Included by kernel_impl.h only.
 *
 * The states are the very ones the tile interpreter folds (process() with
 * finalize unset hands out one chunk's state), so a state folded chunk by
 * chunk here and finalized is what kp_plan_exec computes.
 */
#ifndef KP_CPU_KERNEL_PARTIAL_H
#define KP_CPU_KERNEL_PARTIAL_H

/* n row states at the monoid's identity: the first one made, the others
 * copies of it. */
static void states_init(const kp_program *prog, int64_t n, void *sreal, int64_t *sidx) {
    if (n <= 0) return;
    int nreal, nidx;
    state_size(prog, &nreal, &nidx);
    REAL *s = sreal;
    if (sums_in_reals(prog)) { /* the identity is all zeros */
        memset(s, 0, (size_t)n * (size_t)nreal * sizeof *s);
        return;
    }
    state_init(prog, s, sidx);
    for (int64_t r = 1; r < n; r++) { /* a few words each: loops, not calls to memcpy */
        for (int k = 0; k < nreal; k++) s[(size_t)r * (size_t)nreal + (size_t)k] = s[k];
        for (int k = 0; sidx && k < nidx; k++) sidx[(size_t)r * (size_t)nidx + (size_t)k] = sidx[k];
    }
}

/* a[r] <- a[r] (+) b[r] for n rows; b's points come after a's. */
static void states_merge(const kp_program *prog, int64_t n, void *a, int64_t *ai, const void *b, const int64_t *bi) {
    int nreal, nidx;
    state_size(prog, &nreal, &nidx);
    if (sums_in_reals(prog)) { /* without state_merge's dispatch per row */
        for (int64_t r = 0; r < n; r++)
            sum_state_merge(prog->fdim, (REAL *)a + (size_t)r * (size_t)nreal, (const REAL *)b + (size_t)r * (size_t)nreal);
        return;
    }
    for (int64_t r = 0; r < n; r++)
        state_merge(prog, (REAL *)a + (size_t)r * (size_t)nreal, ai ? ai + (size_t)r * (size_t)nidx : NULL,
                    (const REAL *)b + (size_t)r * (size_t)nreal, bi ? bi + (size_t)r * (size_t)nidx : NULL);
}

/* Writes the outputs of rows [r0,r1) of batch b from their states (row r0 at
 * sreal[0]). job->ncols is the number of points folded into the states. */
static void states_finalize(const kp_job *job, int64_t b, int64_t r0, int64_t r1, const void *sreal,
                            const int64_t *sidx, void *scratch) {
    const kp_program *prog = job->prog;
    scratch_layout L = layout_of(prog);
    REAL *rowv = (REAL *)((char *)scratch + L.rowbuf);
    int need_rowv = prog->red == KP_RED_SUM && prog->red_scale.dim;
    int nreal, nidx;
    state_size(prog, &nreal, &nidx);
    batch_ptrs bp;
    batch_pointers(job, b, &bp);
    for (int64_t r = 0; r < r1 - r0; r++) {
        if (need_rowv) run_row_block(job, &bp, r0 + r, 1, rowv);
        write_outputs(job, &bp, r0 + r, (const REAL *)sreal + (size_t)r * (size_t)nreal,
                      sidx ? sidx + (size_t)r * (size_t)nidx : NULL, rowv);
    }
}

#endif
