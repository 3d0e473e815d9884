/*
 * program.h — the lowered program that every engine executes.
 *
 * Lowering splits the formula DAG by what each node depends on, for a given
 * axis ("row" = the non-reduced index, i for axis 1; "col" = the reduced one):
 *
 *   ROW   depends on row variables and/or parameters only: one scalar per
 *         component, computed once per output row.
 *   COL   depends on col variables (and parameters): a tile of values, computed
 *         once per tile of reduced points and shared by all rows.
 *   PAIR  depends on both: a tile of values per (row, tile).
 *
 * Each value lives at a component offset in the buffer of its location
 * (ROW: scalars; COL and PAIR: tiles of KP_TILE lanes per component). The
 * reduction reads F (and G for SumSoftMaxWeight) from a COL or PAIR operand.
 */
#ifndef KP_PLAN_PROGRAM_H
#define KP_PLAN_PROGRAM_H

#include "formula/formula.h"

typedef enum { KP_LOC_ROW = 0, KP_LOC_COL = 1, KP_LOC_PAIR = 2 } kp_loc;

typedef struct kp_operand {
    kp_loc loc;
    int off; /* first component in the buffer of loc */
    int dim;
} kp_operand;

/* An instruction applies op to its inputs, as ops.def says, with one fused
 * form: KP_OP_EXP with nin == 2 computes Exp(in[0] * in[1]), or
 * Exp(in[0] / in[1]) when ip[1] == 1, in[1] a row scalar (dimension 1). */
typedef struct kp_instr {
    kp_op op;
    kp_operand out;
    int nin;
    kp_operand in[3];
    int ip[2];    /* integer parameters; VAR: ip[0] = category, ip[1] = position */
    double value; /* CONST */
} kp_instr;

typedef struct kp_program_part {
    kp_instr *code;
    int n, cap;
} kp_program_part;

/* Joint programs (kp_plan_new_joint) hold several Sum reductions at once, each a
 * term: the product of up to KP_TERM_TILES factors (COL or PAIR tiles, or ROW
 * values for terms reduced over the rows), dims broadcast to dim, times an
 * optional ROW scale that a term reduced over the columns takes out of the sum
 * (applied once per row at the end, not once per pair), then divided by an
 * optional ROW scalar the same way: (sum * scale) / divisor. */
#define KP_TERM_TILES 3


typedef struct kp_sum_term {
    kp_operand factor[KP_TERM_TILES];
    int nfactors;
    kp_operand scale;   /* dim 0: none */
    kp_operand divisor; /* dim 0: none; dim 1, terms reduced over the columns only */
    int dim;
    int formula; /* index in the plan's list of formulas */
} kp_sum_term;

typedef struct kp_program {
    kp_program_part row, col, pair;
    int row_size, col_size, pair_size; /* components per buffer */
    int fdim;                          /* dimension of F */
    kp_operand red_f, red_g;           /* reduction inputs; red_g.dim == 0 if none */
    kp_operand red_f2;                 /* Sum of a product of tiles: F = red_f * red_f2
                                          (dims broadcast to fdim), fused into the
                                          accumulation; dim 0 if unused */
    kp_operand red_scale;              /* Sum only: F = (red_f [* red_f2]) * red_scale, a
                                          ROW value (dim 1 or fdim) that the CPU applies
                                          once per row to the sum (none over an empty
                                          sum), GPUs once per group of points
                                          (per pair under KP_SUM_KAHAN); dim 0 if unused */
    kp_reduction red;
    int axis, K;
    int exact; /* a Sum, LogSumExp or SumSoftMaxWeight under KP_SUM_EXACT: exact_sum.h's accumulators */
    kp_var_category row_cat, col_cat;
    /* Joint programs only (red is then KP_RED_SUM, fdim 0, red_f unused); row
     * = i and col = j: terms[0] are reduced over j (one value per i, "row
     * terms"), terms[1] over i (one value per j, "column terms"). */
    int nterms[2];
    kp_sum_term terms[2][KP_MAX_JOINT];
    struct kp_context *ctx; /* the context whose allocator holds the code arrays */
} kp_program;

/* Lowers f for f->axis. Returns KP_OK or KP_ERR_OOM (message in ctx). */
kp_status kp__lower(kp_context *ctx, const kp_formula *f, kp_program *prog);
/* Lowers n Sum formulas (axis 1 or 0, same arguments) into one joint program
 * in which they share every value they have in common. */
kp_status kp__lower_joint(kp_context *ctx, const kp_formula *const *fs, int n, kp_program *prog);
void kp__program_free(kp_program *prog);

#endif
