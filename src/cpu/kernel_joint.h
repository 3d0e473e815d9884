/*
 * kernel_joint.h — the CPU interpreter for joint programs (several Sum
 * reductions in one pass; see kp_cpu_joint_job in engine.h). Included by
 * kernel_impl.h after the single-reduction interpreter, whose ROW, COL and
 * PAIR program runners it reuses.
 *
 * Per block of KP_ROW_BLOCK rows and per tile of TILE columns, after the PAIR
 * program of each row:
 *   row terms     are summed over the tile's lanes (tile sums added with Kahan
 *                 compensation, chunk by chunk, as a Sum reduction does);
 *   column terms  are added lane by lane into a tile accumulator shared by the
 *                 block's rows; the block's tile is then added, compensated,
 *                 into the group's column buffer.
 * So a column sum is a compensated sum of block sums of at most KP_ROW_BLOCK
 * terms: float32 keeps ~1e-6 relative accuracy at any N.
 */
#ifndef KP_CPU_KERNEL_JOINT_H
#define KP_CPU_KERNEL_JOINT_H

typedef struct joint_layout {
    size_t rowbuf, colbuf, pairbuf, coltmp, total, partial, jitsum, end;
    int rowdim; /* total dimension of the row terms */
} joint_layout;

static int terms_dim(const kp_program *prog, int side) {
    int d = 0;
    for (int t = 0; t < prog->nterms[side]; t++) d += prog->terms[side][t].dim;
    return d;
}

static joint_layout joint_layout_of(const kp_cpu_joint_job *jj) {
    const kp_program *prog = jj->job.prog;
    joint_layout L;
    size_t R = sizeof(REAL), at = take_program_buffers(prog, &L.rowbuf, &L.colbuf, &L.pairbuf);
    L.rowdim = terms_dim(prog, 0);
    L.coltmp = take(&at, (size_t)(jj->coldim + 1) * TILE * R);
    L.total = take(&at, (size_t)KP_ROW_BLOCK * (size_t)(2 * L.rowdim + 1) * R);
    L.partial = take(&at, (size_t)KP_ROW_BLOCK * (size_t)(2 * L.rowdim + 1) * R);
    L.jitsum = take(&at, (size_t)KP_JIT_MAX_ROWS * (size_t)(L.rowdim + 1) * R);
    L.end = at;
    return L;
}

static size_t joint_scratch_size(const kp_cpu_joint_job *jj) { return joint_layout_of(jj).end; }

/* Component d of a term factor: its tile (or its row value, broadcast). */
static const REAL *factor_tile(kp_operand o, int d, const REAL *rowv, const REAL *colbuf, const REAL *pairbuf) {
    size_t c = o.dim == 1 ? 0 : (size_t)d;
    if (o.loc == KP_LOC_ROW) return rowv + o.off + c;
    return (o.loc == KP_LOC_COL ? colbuf : pairbuf) + ((size_t)o.off + c) * TILE;
}

/* Adds the row terms of one tile into st (sum[rowdim], comp[rowdim]). */
static void row_terms_tile(const kp_program *prog, kp_sum_scheme scheme, REAL *st, int rowdim, const REAL *rowv,
                           const REAL *colbuf, const REAL *pairbuf, int len) {
    int lane_kahan = KP_REAL_F32 && scheme == KP_SUM_KAHAN;
    int compensate = !(KP_REAL_F32 && scheme == KP_SUM_PLAIN);
    int at = 0;
    for (int t = 0; t < prog->nterms[0]; t++) {
        const kp_sum_term *term = &prog->terms[0][t];
        for (int d = 0; d < term->dim; d++, at++) {
            const REAL *a = factor_tile(term->factor[0], d, rowv, colbuf, pairbuf);
            REAL s = term->nfactors == 1   ? tile_sum(a, len, lane_kahan)
                     : term->nfactors == 2 ? tile_dot(a, factor_tile(term->factor[1], d, rowv, colbuf, pairbuf), len,
                                                      lane_kahan)
                                           : tile_dot3(a, factor_tile(term->factor[1], d, rowv, colbuf, pairbuf),
                                                       factor_tile(term->factor[2], d, rowv, colbuf, pairbuf), len,
                                                       lane_kahan);
            if (compensate) kahan_add(&st[at], &st[rowdim + at], s);
            else st[at] += s;
        }
    }
}

/* Adds one row's column terms into the block's tile accumulator acc (coldim x TILE). */
static void col_terms_tile(const kp_program *prog, REAL *restrict acc, const REAL *rowv, const REAL *colbuf,
                           const REAL *pairbuf, int len) {
    int at = 0;
    for (int t = 0; t < prog->nterms[1]; t++) {
        const kp_sum_term *term = &prog->terms[1][t];
        for (int d = 0; d < term->dim; d++, at++) {
            REAL *restrict o = acc + (size_t)at * TILE;
            const REAL *tile[KP_TERM_TILES];
            int ntiles = 0;
            REAL s = 1;
            for (int f = 0; f < term->nfactors; f++) {
                const REAL *p = factor_tile(term->factor[f], d, rowv, colbuf, pairbuf);
                if (term->factor[f].loc == KP_LOC_ROW) s *= *p;
                else tile[ntiles++] = p;
            }
            if (ntiles == 1) {
                const REAL *restrict a = tile[0];
                for (int k = 0; k < len; k++) o[k] += s * a[k];
            } else if (ntiles == 2) {
                const REAL *restrict a = tile[0], *restrict b = tile[1];
                for (int k = 0; k < len; k++) o[k] += s * a[k] * b[k];
            } else {
                const REAL *restrict a = tile[0], *restrict b = tile[1], *restrict c = tile[2];
                for (int k = 0; k < len; k++) o[k] += s * a[k] * b[k] * c[k];
            }
        }
    }
}

/* Component d of row r of the output of terms[side][t]. */
static REAL *term_out(const kp_cpu_joint_job *jj, int side, int t, int64_t r, int d) {
    const kp_job_arg *o = &jj->out[side][t];
    return (REAL *)(uintptr_t)o->base + r * o->row_stride + d * o->comp_stride;
}

/* Writes the row terms of one row: (sum * scale) / divisor, neither over an
 * empty sum (a sum of nothing is 0, as written). */
static void write_row_terms(const kp_cpu_joint_job *jj, int64_t r, const REAL *st, const REAL *rowv) {
    const kp_program *prog = jj->job.prog;
    int at = 0;
    for (int t = 0; t < prog->nterms[0]; t++) {
        const kp_sum_term *term = &prog->terms[0][t];
        for (int d = 0; d < term->dim; d++, at++) {
            REAL v = st[at];
            if (term->scale.dim && jj->job.ncols > 0) v *= rowv[term->scale.off + (term->scale.dim == 1 ? 0 : d)];
            if (term->divisor.dim && jj->job.ncols > 0) v /= rowv[term->divisor.off];
            *term_out(jj, 0, t, r, d) = v;
        }
    }
}

/* Row rowv's terms on one tile by the interpreter: its row terms into its
 * state st, its column terms added into coltmp. */
static void joint_row_interpreted(const kp_job *job, REAL *st, int rowdim, REAL *rowv, REAL *colbuf, REAL *pairbuf,
                                  REAL *coltmp, int len) {
    run_pair_program(job->prog, rowv, colbuf, pairbuf, len);
    row_terms_tile(job->prog, job->scheme, st, rowdim, rowv, colbuf, pairbuf, len);
    col_terms_tile(job->prog, coltmp, rowv, colbuf, pairbuf, len);
}

/* Whether row r must run on the interpreter (block_has_unfit_rows, row_fits_kernel). */
static int joint_row_divides(const kp_jit_kernel *K, int divide, const REAL *rowbuf, int rs, int r) {
    return divide && !row_fits_kernel(K, rowbuf + (size_t)r * (size_t)rs);
}

/* The block's nr rows on one tile by the compiled kernel (jit.h,
 * KP_JIT_JOINT), up to K->rows at a time: column terms added into coltmp, row
 * terms' tile sums (in sums) added into partial as row_terms_tile adds its
 * own. When divide (block_has_unfit_rows), a row that does not fit the
 * kernel (row_fits_kernel) runs on the interpreter, and the kernel calls take the
 * runs of rows between such rows; column terms are added row by row in row
 * order either way. */
static void jit_joint_tile(const kp_job *job, const kp_jit_kernel *K, int divide, REAL *partial, int rowdim,
                           REAL *rowbuf, int rs, REAL *colbuf, REAL *pairbuf, REAL *coltmp, REAL *sums, int nr,
                           int len) {
    int compensate = !(KP_REAL_F32 && job->scheme == KP_SUM_PLAIN);
    for (int r = 0; r < nr;) {
        if (joint_row_divides(K, divide, rowbuf, rs, r)) {
            joint_row_interpreted(job, partial + (size_t)r * (size_t)(2 * rowdim), rowdim,
                                  rowbuf + (size_t)r * (size_t)rs, colbuf, pairbuf, coltmp, len);
            r++;
            continue;
        }
        int n = 1;
        while (n < K->rows && r + n < nr && !joint_row_divides(K, divide, rowbuf, rs, r + n)) n++;
        K->joint(rowbuf + (size_t)r * (size_t)rs, colbuf, sums, coltmp, len, n);
        for (int q = 0; q < n; q++) {
            REAL *st = partial + (size_t)(r + q) * (size_t)(2 * rowdim);
            for (int d = 0; d < rowdim; d++) {
                if (compensate) kahan_add(&st[d], &st[rowdim + d], sums[q * rowdim + d]);
                else st[d] += sums[q * rowdim + d];
            }
        }
        r += n;
    }
}

static void joint_rows(const kp_cpu_joint_job *jj, int64_t r0, int64_t r1, void *colacc_v, void *scratch) {
    const kp_job *job = &jj->job;
    const kp_program *prog = job->prog;
    joint_layout L = joint_layout_of(jj);
    char *base = scratch;
    REAL *rowbuf = (REAL *)(base + L.rowbuf), *colbuf = (REAL *)(base + L.colbuf);
    REAL *pairbuf = (REAL *)(base + L.pairbuf), *coltmp = (REAL *)(base + L.coltmp);
    REAL *total = (REAL *)(base + L.total), *partial = (REAL *)(base + L.partial);
    REAL *colacc = colacc_v;
    const kp_jit_kernel *jk = job->engine_kernel; /* NULL: the interpreter */
    int64_t M = job->ncols;
    int rs = prog->row_size, sd = 2 * L.rowdim, coldim = jj->coldim;
    memset(colacc, 0, (size_t)(2 * coldim) * (size_t)M * sizeof(REAL));
    batch_ptrs bp;
    batch_pointers(job, 0, &bp);

    for (int64_t b0 = r0; b0 < r1; b0 += KP_ROW_BLOCK) {
        if (jj->progress && kp__cpu_progress_stop(jj->progress)) return; /* cancelled: outputs unspecified */
        int nr = (int)(r1 - b0 < KP_ROW_BLOCK ? r1 - b0 : KP_ROW_BLOCK);
        run_row_block(job, &bp, b0, nr, rowbuf);
        int divide = block_has_unfit_rows(jk, rowbuf, rs, nr);
        memset(total, 0, (size_t)nr * (size_t)sd * sizeof(REAL));
        for (int64_t jstart = 0; jstart < M; jstart += KP_CHUNK) {
            int64_t jend = jstart + KP_CHUNK < M ? jstart + KP_CHUNK : M;
            memset(partial, 0, (size_t)nr * (size_t)sd * sizeof(REAL));
            for (int64_t j0 = jstart; j0 < jend; j0 += TILE) {
                int len = (int)(jend - j0 < TILE ? jend - j0 : TILE);
                REAL *cols = cached_colbuf(job, 0, j0, NULL);
                if (!cols) {
                    run_col_program(job, &bp, j0, NULL, len, rowbuf, colbuf);
                    cols = colbuf;
                }
                if (coldim) memset(coltmp, 0, (size_t)coldim * TILE * sizeof(REAL));
                if (jk)
                    jit_joint_tile(job, jk, divide, partial, L.rowdim, rowbuf, rs, cols, pairbuf, coltmp,
                                   (REAL *)(base + L.jitsum), nr, len);
                for (int r = 0; !jk && r < nr; r++)
                    joint_row_interpreted(job, partial + (size_t)r * (size_t)sd, L.rowdim, rowbuf + (size_t)r * (size_t)rs,
                                          cols, pairbuf, coltmp, len);
                for (int c = 0; c < coldim; c++) { /* compensated add of the block's tile */
                    REAL *restrict s = colacc + (size_t)c * (size_t)M + j0;
                    REAL *restrict e = colacc + (size_t)(coldim + c) * (size_t)M + j0;
                    const REAL *restrict x = coltmp + (size_t)c * TILE;
                    for (int k = 0; k < len; k++) {
                        REAL y = x[k] - e[k];
                        REAL t = s[k] + y;
                        REAL cc = (t - s[k]) - y;
                        e[k] = t - t == 0 ? cc : (REAL)0;
                        s[k] = t;
                    }
                }
            }
            for (int r = 0; r < nr; r++) /* merge the chunk, as a Sum reduction's states merge */
                for (int d = 0; d < L.rowdim; d++) {
                    REAL *a = total + (size_t)r * (size_t)sd;
                    const REAL *p = partial + (size_t)r * (size_t)sd;
                    kahan_add(&a[d], &a[L.rowdim + d], p[d]);
                    kahan_add(&a[d], &a[L.rowdim + d], -p[L.rowdim + d]);
                }
        }
        for (int r = 0; r < nr; r++)
            write_row_terms(jj, b0 + r, total + (size_t)r * (size_t)sd, rowbuf + (size_t)r * (size_t)rs);
        if (jj->progress) kp__cpu_progress_tick(jj->progress);
    }
}

/* Columns merged at a time by joint_cols: their sums stay in L1 while the
 * groups' buffers stream past. */
enum { JOINT_COL_SPAN = 256 };

static void joint_cols(const kp_cpu_joint_job *jj, int64_t j0, int64_t j1, const void *colacc_v, size_t group_stride) {
    const kp_program *prog = jj->job.prog;
    const REAL *colacc = colacc_v;
    int64_t M = jj->job.ncols;
    int coldim = jj->coldim;
    REAL s[JOINT_COL_SPAN], c[JOINT_COL_SPAN];
    /* Each column's sum takes the groups in order, as ever; the columns side
     * by side, so that the compensated adds run in vectors, not as one
     * latency chain per column. */
    for (int64_t jb = j0; jb < j1; jb += JOINT_COL_SPAN) {
        int n = (int)(j1 - jb < JOINT_COL_SPAN ? j1 - jb : JOINT_COL_SPAN);
        int at = 0;
        for (int t = 0; t < prog->nterms[1]; t++) {
            const kp_sum_term *term = &prog->terms[1][t];
            for (int d = 0; d < term->dim; d++, at++) {
                for (int k = 0; k < n; k++) s[k] = c[k] = 0;
                for (int64_t g = 0; g < jj->ngroups; g++) {
                    const REAL *restrict sum = colacc + (size_t)g * group_stride + (size_t)at * (size_t)M + (size_t)jb;
                    const REAL *restrict comp = sum + (size_t)coldim * (size_t)M;
                    for (int k = 0; k < n; k++) {
                        kahan_add(&s[k], &c[k], sum[k]);
                        kahan_add(&s[k], &c[k], -comp[k]);
                    }
                }
                for (int k = 0; k < n; k++) *term_out(jj, 1, t, jb + k, d) = s[k];
            }
        }
    }
}

#endif
