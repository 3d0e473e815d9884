/*
 * kernel_impl.h — the CPU tile interpreter, written once, compiled per dtype x ISA.
 *
 * Math: for each output row r, state_r = merge over chunks of (reduce over the
 * tiles of that chunk of F(row r, tile)). Per block of KP_ROW_BLOCK rows:
 *   1. the ROW program runs once per row (row variables, parameters, constants);
 *   2. for each tile of TILE reduced points: the COL program gathers the tile's
 *      variables into structure-of-arrays form (lanes along the reduced index)
 *      and computes what depends on them alone; then for each row the PAIR
 *      program runs over the whole tile and the tile is folded into the row's
 *      state. Each instruction is one tight loop over TILE lanes, so the
 *      interpreter's dispatch costs little per pair and no compiler is needed.
 *
 * Before including: KP_REAL_F32, the ISA macro (see simd.h), KP_KERNELS_NAME.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/engine.h"
#include "cpu/simd.h"

#if KP_REAL_F32
#define KP__SCALAR_SUFFIX f
#else
#define KP__SCALAR_SUFFIX
#endif

#include "cpu/kernel_ops.h"
#include "cpu/kernel_reduce.h"
#include "jit/jit.h"

typedef struct scratch_layout {
    size_t rowbuf, colbuf, pairbuf, tmp, total, partial, total_idx, partial_idx, end;
} scratch_layout;

/* The next scratch buffer of the given size at *at, 64-byte aligned. */
static size_t take(size_t *at, size_t bytes) {
    size_t o = *at;
    *at += (bytes + 63) & ~(size_t)63;
    return o;
}

/* Reals of a block's ROW values, row by row. Compiled kernels (jit/jit.h)
 * read KP_JIT_MAX_ROWS rows from any row of the block. run_row_block's
 * component-major copy follows them in the same buffer. */
static size_t rowbuf_reals(const kp_program *prog) {
    return (size_t)(KP_ROW_BLOCK + KP_JIT_MAX_ROWS) * (size_t)(prog->row_size + 1);
}

/* The program's buffers, first in every scratch layout: ROW values of a block
 * of rows, COL and PAIR tiles. Returns where the next buffer goes. */
static size_t take_program_buffers(const kp_program *prog, size_t *rowbuf, size_t *colbuf, size_t *pairbuf) {
    size_t at = 0, R = sizeof(REAL);
    /* Compiled kernels write one pair buffer per row. */
    *rowbuf = take(&at, (rowbuf_reals(prog) + (size_t)KP_ROW_BLOCK * (size_t)(prog->row_size + 1)) * R);
    *colbuf = take(&at, (size_t)(prog->col_size + 1) * TILE * R);
    *pairbuf = take(&at, (size_t)(prog->pair_size + 1) * TILE * R * KP_JIT_MAX_ROWS);
    return at;
}

static scratch_layout layout_of(const kp_program *prog) {
    int nreal, nidx;
    state_size(prog, &nreal, &nidx);
    scratch_layout L;
    size_t R = sizeof(REAL), at = take_program_buffers(prog, &L.rowbuf, &L.colbuf, &L.pairbuf);
#define TAKE(field, bytes) L.field = take(&at, (size_t)(bytes));
    TAKE(tmp, 2 * (size_t)TILE * R)
    TAKE(total, (size_t)KP_ROW_BLOCK * (size_t)(nreal + 1) * R)
    TAKE(partial, (size_t)KP_ROW_BLOCK * (size_t)(nreal + 1) * R)
    TAKE(total_idx, (size_t)KP_ROW_BLOCK * (size_t)(nidx + 1) * sizeof(int64_t))
    TAKE(partial_idx, (size_t)KP_ROW_BLOCK * (size_t)(nidx + 1) * sizeof(int64_t))
#undef TAKE
    L.end = at;
    return L;
}

static size_t scratch_size(const kp_program *prog) { return layout_of(prog).end; }

/* Base pointers of every argument and output for batch index b. */
typedef struct batch_ptrs {
    const REAL *arg[KP_MAX_ARGS];
    REAL *out;
    int64_t *out_idx;
    int64_t batch;
} batch_ptrs;

static void batch_pointers(const kp_job *job, int64_t b, batch_ptrs *bp) {
    bp->batch = b;
    for (int k = 0; k < job->nargs; k++)
        bp->arg[k] = job->args[k].base ? (const REAL *)job->args[k].base + kp__job_batch_offset(job, &job->args[k], b) : NULL;
    bp->out = job->out.base ? (REAL *)job->out.base + kp__job_batch_offset(job, &job->out, b) : NULL;
    bp->out_idx = job->out_idx.base ? (int64_t *)job->out_idx.base + kp__job_batch_offset(job, &job->out_idx, b) : NULL;
}

static view view_of(kp_operand o, REAL *rowv, REAL *colbuf, REAL *pairbuf) {
    view v;
    v.dim = o.dim;
    if (o.dim == 0) {
        v.p = NULL;
        v.cs = v.ls = 0;
    } else if (o.loc == KP_LOC_ROW) {
        v.p = rowv + o.off;
        v.cs = 1;
        v.ls = 0;
    } else {
        v.p = (o.loc == KP_LOC_COL ? colbuf : pairbuf) + (size_t)o.off * TILE;
        v.cs = TILE;
        v.ls = 1;
    }
    return v;
}

/* Operand o of a ROW instruction in run_row_block's component-major buffer:
 * the block's rows as lanes, or (lane >= 0) that one row alone, as a row
 * value (lane stride 0). */
static view row_block_view(kp_operand o, REAL *soa, int lane) {
    view v;
    v.dim = o.dim;
    v.p = o.dim ? soa + (size_t)o.off * KP_ROW_BLOCK + (lane >= 0 ? lane : 0) : NULL;
    v.cs = KP_ROW_BLOCK;
    v.ls = lane >= 0 ? 0 : 1;
    return v;
}

/* The ROW program of rows [r0, r0 + nr) (nr <= KP_ROW_BLOCK), row r's values
 * at rowbuf + r * row_size. The rows are the lanes of each instruction
 * (component c of row r at soa[c * KP_ROW_BLOCK + r]), so that an
 * instruction is dispatched once per block, not per row. A row's values do
 * not depend on its block: elementwise ops go lane by lane through the same
 * scalar functions (exec_op told its lanes are not a tile's), the others row
 * by row. */
static void run_row_block(const kp_job *job, const batch_ptrs *bp, int64_t r0, int nr, REAL *rowbuf) {
    const kp_program *prog = job->prog;
    const kp_program_part *P = &prog->row;
    REAL *soa = rowbuf + rowbuf_reals(prog);
    for (int i = 0; i < P->n; i++) {
        const kp_instr *ins = &P->code[i];
        REAL *o = soa + (size_t)ins->out.off * KP_ROW_BLOCK;
        if (ins->op == KP_OP_VAR) {
            const kp_job_arg *a = &job->args[ins->ip[1]];
            int param = ins->ip[0] == KP_VAR_PARAM;
            for (int c = 0; c < ins->out.dim; c++)
                for (int r = 0; r < nr; r++)
                    o[c * KP_ROW_BLOCK + r] =
                        bp->arg[ins->ip[1]][(param ? 0 : (r0 + r) * a->row_stride) + c * a->comp_stride];
        } else if (ins->op == KP_OP_CONST) {
            for (int c = 0; c < ins->out.dim; c++)
                for (int r = 0; r < nr; r++) o[c * KP_ROW_BLOCK + r] = (REAL)ins->value;
        } else if (ins->op == KP_OP_INDEX) {
            for (int r = 0; r < nr; r++) o[r] = (REAL)(job->row_offset + r0 + r);
        } else if (kp__op_is_elementwise(ins->op) || ins->op == KP_OP_EXP) {
            exec_op(ins, nr, 0, row_block_view(ins->out, soa, -1), row_block_view(ins->in[0], soa, -1),
                    row_block_view(ins->in[1], soa, -1), row_block_view(ins->in[2], soa, -1));
        } else {
            for (int r = 0; r < nr; r++)
                exec_op(ins, 1, 0, row_block_view(ins->out, soa, r), row_block_view(ins->in[0], soa, r),
                        row_block_view(ins->in[1], soa, r), row_block_view(ins->in[2], soa, r));
        }
    }
    int rs = prog->row_size;
    for (int r = 0; r < nr; r++)
        for (int c = 0; c < rs; c++) rowbuf[(size_t)r * (size_t)rs + (size_t)c] = soa[(size_t)c * KP_ROW_BLOCK + (size_t)r];
}

/* The COL program on the tile of reduced points j0 + k (k < len), or jmap[k]
 * when jmap is not NULL (a tile gathered from several ranges). */
static void run_col_program(const kp_job *job, const batch_ptrs *bp, int64_t j0, const int64_t *jmap, int len,
                            REAL *rowv, REAL *colbuf) {
    const kp_program_part *P = &job->prog->col;
    for (int i = 0; i < P->n; i++) {
        const kp_instr *ins = &P->code[i];
        if (ins->op == KP_OP_VAR) { /* gather the tile, lanes along the reduced index */
            const kp_job_arg *a = &job->args[ins->ip[1]];
            const REAL *src = bp->arg[ins->ip[1]] + (jmap ? 0 : j0 * a->row_stride);
            for (int c = 0; c < ins->out.dim; c++) {
                REAL *o = colbuf + (size_t)(ins->out.off + c) * TILE;
                const REAL *s = src + c * a->comp_stride;
                if (jmap)
                    for (int k = 0; k < len; k++) o[k] = s[jmap[k] * a->row_stride];
                else if (a->row_stride == 1) memcpy(o, s, (size_t)len * sizeof(REAL));
                else
                    for (int k = 0; k < len; k++) o[k] = s[k * a->row_stride];
                for (int k = len; k < tile_lanes(len); k++) o[k] = 0;
            }
            continue;
        }
        if (ins->op == KP_OP_INDEX) {
            REAL *o = colbuf + (size_t)ins->out.off * TILE;
            for (int k = 0; k < tile_lanes(len); k++)
                o[k] = (REAL)(job->col_offset + (jmap ? (k < len ? jmap[k] : 0) : j0 + k));
            continue;
        }
        exec_op(ins, tile_lanes(len), 1, view_of(ins->out, rowv, colbuf, NULL),
                view_of(ins->in[0], rowv, colbuf, NULL), view_of(ins->in[1], rowv, colbuf, NULL),
                view_of(ins->in[2], rowv, colbuf, NULL));
    }
}

/* The PAIR program of one row on a tile of len points (tile_lanes(len) lanes). */
static void run_pair_program(const kp_program *prog, REAL *rowv, REAL *colbuf, REAL *pairbuf, int len) {
    const kp_program_part *P = &prog->pair;
    for (int i = 0; i < P->n; i++) {
        const kp_instr *ins = &P->code[i];
        exec_op(ins, tile_lanes(len), 1, view_of(ins->out, rowv, colbuf, pairbuf),
                view_of(ins->in[0], rowv, colbuf, pairbuf), view_of(ins->in[1], rowv, colbuf, pairbuf),
                view_of(ins->in[2], rowv, colbuf, pairbuf));
    }
}

/* The buffers of one block of rows (process), for the tile loops. */
typedef struct block_ctx {
    const kp_job *job;
    const batch_ptrs *bp;
    REAL *rowbuf, *colbuf, *pairbuf, *tmp, *partial;
    int64_t *partial_idx;
    const REAL *F, *F2, *G;
    int nreal, nidx, rs;
    const kp_jit_kernel *jit; /* NULL: the interpreter */
    int divide;               /* block_has_unfit_rows: rows to run on the interpreter */
} block_ctx;

/* A reduction input of the compiled kernel's row (pair buffer pb), or of the tile. */
static const REAL *jit_input(kp_operand o, const REAL *colbuf, const REAL *pb) {
    if (o.dim == 0) return NULL;
    return (o.loc == KP_LOC_COL ? colbuf : pb) + (size_t)o.off * TILE;
}

/* reduce_tile's work by the compiled kernel, jit->rows rows per call: tile
 * sums added as state_accumulate adds its own, tile states (KP_JIT_LSE)
 * merged as two chunks' states are, or F, F2, G written for the
 * interpreter's monoid. */
static void interpreted_rows(const block_ctx *c, int64_t j0, const int64_t *jmap, int len, int ra, int rb);

/* Whether row rowv's divisors (mask: the kernel's row_divisors, jit.h) have
 * normal reciprocals, so that the kernel's a * (1 / b) is within an ulp of
 * a / b. 0, +-inf and NaN divisors give the division's values as products
 * too; a subnormal b makes 1 / b inf, and b above 1 / REAL_MIN makes it
 * subnormal (flushed to 0 in float32 kernels). */
static int row_has_reciprocals(uint64_t mask, const REAL *rowv) {
    const REAL smallest = KP_REAL_F32 ? (REAL)FLT_MIN : (REAL)DBL_MIN, largest = KP_REAL_F32 ? (REAL)FLT_MAX : (REAL)DBL_MAX;
    for (; mask; mask &= mask - 1) {
        REAL b = rowv[__builtin_ctzll(mask)], a = b < 0 ? -b : b;
        if ((a > 0 && a < smallest) || (a > 1 / smallest && a <= largest)) return 0;
    }
    return 1;
}

/* Whether row rowv's components in mask have their sign bit set (negative)
 * or clear (!negative), or are NaN. */
static int row_has_signs(uint64_t mask, int negative, const REAL *rowv) {
    for (; mask; mask &= mask - 1) {
        REAL b = rowv[__builtin_ctzll(mask)];
        if (b == b && (signbit(b) != 0) != negative) return 0;
    }
    return 1;
}

/* Whether the compiled kernel K may run row rowv: its divisors have normal
 * reciprocals and the signs its exps take for granted hold (jit.h). */
static int row_fits_kernel(const kp_jit_kernel *K, const REAL *rowv) {
    return row_has_reciprocals(K->row_divisors, rowv) && row_has_signs(K->row_neg, 1, rowv) &&
           row_has_signs(K->row_pos, 0, rowv);
}

/* Whether some row of the block [0, nr) does not fit the kernel
 * (row_fits_kernel): then jit_tile looks at its rows one by one. */
static int block_has_unfit_rows(const kp_jit_kernel *K, const REAL *rowbuf, int rs, int nr) {
    uint64_t checked = K ? K->row_divisors | K->row_neg | K->row_pos : 0;
    if (!checked) return 0;
    if (!(checked & ~K->row_uniform)) nr = nr > 0 ? 1 : 0; /* parameters and constants: one row tells */
    for (int r = 0; r < nr; r++)
        if (!row_fits_kernel(K, rowbuf + (size_t)r * (size_t)rs)) return 1;
    return 0;
}

/* kp_cpu_kernels.uniform_rows_fit: row 0's ROW values of each batch, checked
 * (the checked components hold the same value in all rows of a batch). Where
 * the values do not fit a small buffer and none can be had, answers 0: the
 * caller then takes the kernel that runs every row. */
static int uniform_rows_fit(const kp_job *job, const kp_jit_kernel *jk) {
    const kp_program *prog = job->prog;
    size_t reals = rowbuf_reals(prog) + (size_t)KP_ROW_BLOCK * (size_t)(prog->row_size + 1);
    if (job->nrows == 0) return 1; /* no row to read, none to run */
    REAL small[2048];
    REAL *rowv = reals <= sizeof small / sizeof *small ? small : malloc(reals * sizeof(REAL));
    if (!rowv) return 0;
    int fits = 1;
    for (int64_t b = 0; fits && b < job->nbatch; b++) {
        batch_ptrs bp;
        batch_pointers(job, b, &bp);
        run_row_block(job, &bp, 0, 1, rowv);
        fits = row_fits_kernel(jk, rowv);
    }
    if (rowv != small) free(rowv);
    return fits;
}

static void jit_tile(const block_ctx *c, int64_t j0, const int64_t *jmap, int len, int ra, int rb) {
    const kp_jit_kernel *K = c->jit;
    const kp_program *prog = c->job->prog;
    size_t pstride = (size_t)(prog->pair_size + 1) * TILE;
    int D = prog->fdim, compensate = !(KP_REAL_F32 && c->job->scheme == KP_SUM_PLAIN);
    /* Sums to tmp; tile states (LogSumExp, with its first pass's values) and
     * F for the interpreter's monoid to the pair buffer (jit.h). */
    REAL *out = K->mode == KP_JIT_SUM ? c->tmp : c->pairbuf;
    for (int r = ra; r < rb; r += K->rows) {
        int n = rb - r < K->rows ? rb - r : K->rows, unfit = 0;
        K->fn(c->rowbuf + (size_t)r * (size_t)c->rs, c->colbuf, out, len);
        for (int q = 0; q < n; q++) {
            REAL *st = c->partial + (size_t)(r + q) * (size_t)c->nreal;
            /* Each row alone decides (not its neighbours in the call), so a
             * row's path does not depend on how rows are grouped. */
            if (c->divide && !row_fits_kernel(K, c->rowbuf + (size_t)(r + q) * (size_t)c->rs)) {
                unfit |= 1 << q;
                continue;
            }
            if (K->mode == KP_JIT_LSE) {
                state_merge(prog, st, NULL, out + (size_t)q * (size_t)c->nreal, NULL);
                continue;
            }
            if (K->mode == KP_JIT_SUM) {
                for (int d = 0; d < D; d++) {
                    if (compensate) kahan_add(&st[d], &st[D + d], out[q * D + d]);
                    else st[d] += out[q * D + d];
                }
                continue;
            }
            const REAL *pb = out + (size_t)q * pstride;
            state_accumulate(prog, c->job->scheme, st, c->partial_idx + (size_t)(r + q) * (size_t)c->nidx,
                             jit_input(prog->red_f, c->colbuf, pb), jit_input(prog->red_f2, c->colbuf, pb),
                             jit_input(prog->red_g, c->colbuf, pb), len, j0, jmap, c->tmp);
        }
        /* After the kernel's results are read: the interpreter's pair program
         * and monoid write the pair buffer and tmp. */
        for (int q = 0; q < n; q++)
            if (unfit >> q & 1) interpreted_rows(c, j0, jmap, len, r + q, r + q + 1);
    }
}

/* c's COL buffer becomes colbuf, and the reduction's inputs follow it. */
static void use_colbuf(block_ctx *c, REAL *colbuf) {
    const kp_program *prog = c->job->prog;
    c->colbuf = colbuf;
    c->F = (prog->red_f.loc == KP_LOC_COL ? colbuf : c->pairbuf) + (size_t)prog->red_f.off * TILE;
    c->F2 = prog->red_f2.dim ? (prog->red_f2.loc == KP_LOC_COL ? colbuf : c->pairbuf) + (size_t)prog->red_f2.off * TILE
                             : NULL;
    c->G = prog->red_g.dim ? (prog->red_g.loc == KP_LOC_COL ? colbuf : c->pairbuf) + (size_t)prog->red_g.off * TILE
                           : NULL;
}

/* The run's COL tile (job->engine_cache, col_tile) for a tile of the dense
 * path, tile j0 / TILE; NULL where the block computes its own. */
static REAL *cached_colbuf(const kp_job *job, int64_t b, int64_t j0, const int64_t *jmap) {
    if (!job->engine_cache || jmap || j0 % TILE) return NULL;
    int64_t ntiles = (job->ncols + TILE - 1) / TILE;
    return (REAL *)job->engine_cache + (size_t)(b * ntiles + j0 / TILE) * (size_t)job->prog->col_size * TILE;
}

/* Folds the tile [j0, j0 + len) (or the points jmap[0..len), see
 * run_col_program) into the partial states of the block's rows [ra, rb). */
static void reduce_tile(const block_ctx *c, int64_t j0, const int64_t *jmap, int len, int ra, int rb) {
    block_ctx at_cache;
    REAL *cached = cached_colbuf(c->job, c->bp->batch, j0, jmap);
    if (cached) {
        at_cache = *c;
        use_colbuf(&at_cache, cached);
        c = &at_cache;
    } else {
        run_col_program(c->job, c->bp, j0, jmap, len, c->rowbuf, c->colbuf);
    }
    if (c->jit) jit_tile(c, j0, jmap, len, ra, rb);
    else interpreted_rows(c, j0, jmap, len, ra, rb);
}

/* kp_cpu_kernels.col_tile: tile t of batch b, as reduce_tile would compute it. */
static void col_tile(const kp_job *job, int64_t b, int64_t t, void *cache, void *scratch) {
    const kp_program *prog = job->prog;
    REAL *rowv = (REAL *)((char *)scratch + layout_of(prog).rowbuf);
    batch_ptrs bp;
    batch_pointers(job, b, &bp);
    run_row_block(job, &bp, 0, 1, rowv); /* COL values read parameters only, the same in every row */
    int64_t ntiles = (job->ncols + TILE - 1) / TILE, j0 = t * TILE;
    REAL *dst = (REAL *)cache + (size_t)(b * ntiles + t) * (size_t)prog->col_size * TILE;
    run_col_program(job, &bp, j0, NULL, (int)(job->ncols - j0 < TILE ? job->ncols - j0 : TILE), rowv, dst);
}

/* The interpreter's fold of the tile (its COL values computed) into rows [ra, rb). */
static void interpreted_rows(const block_ctx *c, int64_t j0, const int64_t *jmap, int len, int ra, int rb) {
    for (int r = ra; r < rb; r++) {
        run_pair_program(c->job->prog, c->rowbuf + (size_t)r * (size_t)c->rs, c->colbuf, c->pairbuf, len);
        state_accumulate(c->job->prog, c->job->scheme, c->partial + (size_t)r * (size_t)c->nreal,
                         c->partial_idx + (size_t)r * (size_t)c->nidx, c->F, c->F2, c->G, len, j0, jmap, c->tmp);
    }
}

#include "cpu/kernel_ranges.h"

/* A Sum's output row out (stride cs) times its red_scale, read in the row's ROW values rowv. */
static void scale_sum(const kp_program *prog, REAL *out, int64_t cs, const REAL *rowv) {
    for (int d = 0; d < prog->fdim; d++) out[d * cs] *= rowv[prog->red_scale.off + (prog->red_scale.dim == 1 ? 0 : d)];
}

/* rowv: the row's ROW values, for a Sum's red_scale (applied to a non-empty sum only). */
static void write_outputs(const kp_job *job, const batch_ptrs *bp, int64_t r, const REAL *st, const int64_t *ix,
                          const REAL *rowv) {
    const kp_program *prog = job->prog;
    REAL *out = bp->out ? bp->out + r * job->out.row_stride : NULL;
    int64_t *oi = bp->out_idx ? bp->out_idx + r * job->out_idx.row_stride : NULL;
    state_finalize(prog, st, ix, out, job->out.comp_stride, oi, job->out_idx.comp_stride);
    if (prog->red == KP_RED_SUM && prog->red_scale.dim && row_has_pairs(job, bp->batch, r))
        scale_sum(prog, out, job->out.comp_stride, rowv);
}

/* write_outputs for the rows [r0, r0 + nr) of a block: st, ix and rowbuf hold
 * them one after the other. */
static void write_block_outputs(const kp_job *job, const batch_ptrs *bp, int64_t r0, int nr, const REAL *st,
                                const int64_t *ix, const REAL *rowbuf) {
    const kp_program *prog = job->prog;
    int nreal, nidx, rs = prog->row_size;
    state_size(prog, &nreal, &nidx);
    if (sums_in_reals(prog) && bp->out && !job->ranges.rows) { /* without state_finalize's dispatch per row */
        int64_t cs = job->out.comp_stride;
        int scale = prog->red == KP_RED_SUM && prog->red_scale.dim && job->ncols > 0; /* row_has_pairs */
        for (int r = 0; r < nr; r++) {
            REAL *out = bp->out + (r0 + r) * job->out.row_stride;
            for (int d = 0; d < prog->fdim; d++) out[d * cs] = st[(size_t)r * (size_t)nreal + (size_t)d];
            if (scale) scale_sum(prog, out, cs, rowbuf + (size_t)r * (size_t)rs);
        }
        return;
    }
    for (int r = 0; r < nr; r++)
        write_outputs(job, bp, r0 + r, st + (size_t)r * (size_t)nreal, ix + (size_t)r * (size_t)nidx,
                      rowbuf + (size_t)r * (size_t)rs);
}

static void states_init(const kp_program *prog, int64_t n, void *sreal, int64_t *sidx); /* kernel_partial.h */
static void states_merge(const kp_program *prog, int64_t n, void *a, int64_t *ai, const void *b, const int64_t *bi);

static void process(const kp_job *job, int64_t b, int64_t r0, int64_t r1, int64_t ch0, int64_t ch1,
                    int finalize, void *sreal, int64_t *sidx, void *scratch) {
    const kp_program *prog = job->prog;
    scratch_layout L = layout_of(prog);
    char *base = scratch;
    REAL *rowbuf = (REAL *)(base + L.rowbuf), *colbuf = (REAL *)(base + L.colbuf);
    REAL *pairbuf = (REAL *)(base + L.pairbuf), *tmp = (REAL *)(base + L.tmp);
    REAL *total = (REAL *)(base + L.total), *partial = (REAL *)(base + L.partial);
    int64_t *total_idx = (int64_t *)(base + L.total_idx), *partial_idx = (int64_t *)(base + L.partial_idx);
    int nreal, nidx;
    state_size(prog, &nreal, &nidx);
    int rs = prog->row_size;
    int nr = (int)(r1 - r0);
    batch_ptrs bp;
    batch_pointers(job, b, &bp);

    run_row_block(job, &bp, r0, nr, rowbuf);
    states_init(prog, nr, total, total_idx);

    const kp_jit_kernel *jk = job->engine_kernel;
    block_ctx bc = {job, &bp, rowbuf, colbuf, pairbuf, tmp, partial, partial_idx, NULL, NULL, NULL, nreal, nidx, rs,
                    jk, block_has_unfit_rows(jk, rowbuf, rs, nr)};
    use_colbuf(&bc, colbuf);
    for (int64_t ch = ch0; ch < ch1; ch++) {
        int64_t jstart = ch * KP_CHUNK;
        int64_t jend = jstart + KP_CHUNK < job->ncols ? jstart + KP_CHUNK : job->ncols;
        states_init(prog, nr, partial, partial_idx);
        if (job->ranges.rows) reduce_chunk_ranges(&bc, r0, nr, jstart, jend);
        else
            for (int64_t j0 = jstart; j0 < jend; j0 += TILE)
                reduce_tile(&bc, j0, NULL, (int)(jend - j0 < TILE ? jend - j0 : TILE), 0, nr);
        if (finalize && ch == ch0 && kp__red(prog->red)->family == KP_FAMILY_SELECT) {
            /* A K-list merged into the identity comes out as it went in. */
            memcpy(total, partial, (size_t)nr * (size_t)nreal * sizeof(REAL));
            memcpy(total_idx, partial_idx, (size_t)nr * (size_t)nidx * sizeof(int64_t));
        } else if (finalize) {
            states_merge(prog, nr, total, nidx ? total_idx : NULL, partial, nidx ? partial_idx : NULL);
        } else {
            memcpy(sreal, partial, (size_t)nr * (size_t)nreal * sizeof(REAL));
            if (nidx) memcpy(sidx, partial_idx, (size_t)nr * (size_t)nidx * sizeof(int64_t));
        }
    }
    if (finalize) write_block_outputs(job, &bp, r0, nr, total, total_idx, rowbuf);
}

static void merge_finalize(const kp_job *job, int64_t b, int64_t r0, int64_t r1, int64_t nchunks,
                           const void *sreal, const int64_t *sidx, size_t chunk_stride_real, size_t chunk_stride_idx,
                           void *scratch) {
    const kp_program *prog = job->prog;
    scratch_layout L = layout_of(prog);
    REAL *total = (REAL *)((char *)scratch + L.total);
    int64_t *total_idx = (int64_t *)((char *)scratch + L.total_idx);
    REAL *rowv = (REAL *)((char *)scratch + L.rowbuf);
    int need_rowv = prog->red == KP_RED_SUM && prog->red_scale.dim;
    int nreal, nidx;
    state_size(prog, &nreal, &nidx);
    batch_ptrs bp;
    batch_pointers(job, b, &bp);
    const REAL *s = sreal;
    for (int64_t r = 0; r < r1 - r0; r++) {
        state_init(prog, total, total_idx);
        for (int64_t ch = 0; ch < nchunks; ch++)
            state_merge(prog, total, total_idx, s + (size_t)ch * chunk_stride_real + (size_t)r * (size_t)nreal,
                        sidx + (size_t)ch * chunk_stride_idx + (size_t)r * (size_t)nidx);
        if (need_rowv) run_row_block(job, &bp, r0 + r, 1, rowv);
        write_outputs(job, &bp, r0 + r, total, total_idx, rowv);
    }
}

#include "cpu/kernel_joint.h"
#include "cpu/kernel_partial.h"

#if KP_REAL_F32
/* The float32 entry points run with flush-to-zero (cpu/fpenv.h). */
#include "cpu/fpenv.h"
static void process_ftz(const kp_job *job, int64_t b, int64_t r0, int64_t r1, int64_t ch0, int64_t ch1,
                        int finalize, void *sreal, int64_t *sidx, void *scratch) {
    kp_fpenv env = kp__ftz_enter();
    process(job, b, r0, r1, ch0, ch1, finalize, sreal, sidx, scratch);
    kp__ftz_leave(env);
}
static void merge_finalize_ftz(const kp_job *job, int64_t b, int64_t r0, int64_t r1, int64_t nchunks,
                               const void *sreal, const int64_t *sidx, size_t chunk_stride_real,
                               size_t chunk_stride_idx, void *scratch) {
    kp_fpenv env = kp__ftz_enter();
    merge_finalize(job, b, r0, r1, nchunks, sreal, sidx, chunk_stride_real, chunk_stride_idx, scratch);
    kp__ftz_leave(env);
}
static void joint_rows_ftz(const kp_cpu_joint_job *jj, int64_t r0, int64_t r1, void *colacc, void *scratch) {
    kp_fpenv env = kp__ftz_enter();
    joint_rows(jj, r0, r1, colacc, scratch);
    kp__ftz_leave(env);
}
static void joint_cols_ftz(const kp_cpu_joint_job *jj, int64_t j0, int64_t j1, const void *colacc,
                           size_t group_stride) {
    kp_fpenv env = kp__ftz_enter();
    joint_cols(jj, j0, j1, colacc, group_stride);
    kp__ftz_leave(env);
}
static void states_merge_ftz(const kp_program *prog, int64_t n, void *a, int64_t *ai, const void *b,
                             const int64_t *bi) {
    kp_fpenv env = kp__ftz_enter();
    states_merge(prog, n, a, ai, b, bi);
    kp__ftz_leave(env);
}
static void col_tile_ftz(const kp_job *job, int64_t b, int64_t t, void *cache, void *scratch) {
    kp_fpenv env = kp__ftz_enter();
    col_tile(job, b, t, cache, scratch);
    kp__ftz_leave(env);
}
static int uniform_rows_fit_ftz(const kp_job *job, const kp_jit_kernel *jk) {
    kp_fpenv env = kp__ftz_enter();
    int fits = uniform_rows_fit(job, jk);
    kp__ftz_leave(env);
    return fits;
}
static void states_finalize_ftz(const kp_job *job, int64_t b, int64_t r0, int64_t r1, const void *sreal,
                                const int64_t *sidx, void *scratch) {
    kp_fpenv env = kp__ftz_enter();
    states_finalize(job, b, r0, r1, sreal, sidx, scratch);
    kp__ftz_leave(env);
}
#define KP__ENTRY(f) f##_ftz
#else
#define KP__ENTRY(f) f
#endif

const kp_cpu_kernels KP_KERNELS_NAME = {
    sizeof(REAL),          TILE,                  state_size, KP__ENTRY(process), KP__ENTRY(merge_finalize),
    scratch_size,          KP__ENTRY(joint_rows), KP__ENTRY(joint_cols), joint_scratch_size,
    states_init,           KP__ENTRY(states_merge), KP__ENTRY(states_finalize), KP__ENTRY(col_tile),
    KP__ENTRY(uniform_rows_fit)};
