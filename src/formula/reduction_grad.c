/*
 * reduction_grad.c — gradients of reductions are reductions (see kp_formula_grad in kp.h).
 *
 * Notation: out_i = Red_j F_ij, E_i = d loss / d out_i (a new row variable),
 * v = the argument differentiated, of category R (row: Vi for axis 1), C
 * (reduced: Vj for axis 1) or P (parameter).
 *
 *   Sum:        d<out,E>/dv = sum_j Grad(F_ij, v, E_i)
 *   LogSumExp:  out = log sum_j exp F  =>  sum_j Grad(F_ij, v, E_i * exp(F_ij - out_i))
 *   SumSoftMaxWeight, out_i = sum_j s_ij G_ij with s_ij = softmax_j(F_ij):
 *               d<out,E> = sum_j s_ij [ <dG_ij, E_i> + (G_ij - out_i | E_i) dF_ij ]
 *               = SumSoftMaxWeight_j(F, H) with H = Grad(G,v,E) + Grad(F,v,(G-O|E)) for R and P;
 *               for C the sum runs over i, so s_ij = exp(F_ij - lse_i) is written out.
 *   Min, Max, KMin (values): sum_j Grad(F_ij, v, sum_k E_ik [j == J_ik]), J the forward's
 *               indices: the gradient flows to the selected points (a subgradient at ties,
 *               where the smallest index was selected). Arg-only reductions: zero.
 *
 * A sum over j keeps i-indexed rows (R: reduce on f's axis); a C variable
 * collects over i (reduce on the other axis); a parameter sums everything
 * (reduce on f's axis, then sum the rows: sum_rows).
 */
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "formula/formula.h"
#include "formula/grad.h"

static kp_formula *copy_header(kp_context *ctx, const kp_formula *f) {
    kp_formula *g = kp__calloc(ctx, 1, sizeof *g);
    if (!g) return NULL;
    g->ctx = ctx;
    g->nargs = f->nargs;
    memcpy(g->args, f->args, sizeof g->args);
    return g;
}

/* Adds argument position pos as (cat, dim) to g and returns its variable node. */
static const kp_node *add_arg(kp_context *ctx, kp_formula *g, int pos, kp_var_category cat, int dim, kp_status *st) {
    if (pos >= KP_MAX_ARGS) {
        *st = kp__fail(ctx, KP_ERR_ARGUMENT, "too many arguments for a gradient formula (at most %d)", KP_MAX_ARGS);
        return NULL;
    }
    g->args[pos].used = 1;
    g->args[pos].cat = cat;
    g->args[pos].dim = dim;
    if (pos + 1 > g->nargs) g->nargs = pos + 1;
    return kp__var(ctx, cat, pos, dim, st);
}

kp_status kp_formula_softmax_lse(kp_context *ctx, const kp_formula *f, kp_formula **out) {
    if (!ctx) return KP_ERR_NULL;
    if (!f || !out) return kp__fail(ctx, KP_ERR_NULL, "formula or out is NULL");
    if (kp__formula_check_context(ctx, f) != KP_OK) return KP_ERR_ARGUMENT;
    kp_formula *g = copy_header(ctx, f);
    if (!g) return kp__fail(ctx, KP_ERR_OOM, "out of memory");
    g->red = KP_RED_LOGSUMEXP;
    g->axis = f->axis;
    g->f = f->f;
    *out = g;
    return KP_OK;
}

kp_status kp_formula_unsummed(kp_context *ctx, const kp_formula *f, kp_formula **out) {
    if (!ctx) return KP_ERR_NULL;
    if (!f || !out) return kp__fail(ctx, KP_ERR_NULL, "formula or out is NULL");
    if (kp__formula_check_context(ctx, f) != KP_OK) return KP_ERR_ARGUMENT;
    kp_formula *g = kp__alloc(ctx, sizeof *g);
    if (!g) return kp__fail(ctx, KP_ERR_OOM, "out of memory");
    *g = *f;
    g->sum_rows = 0;
    *out = g;
    return KP_OK;
}

kp_status kp_formula_with_indices(kp_context *ctx, const kp_formula *f, kp_formula **out) {
    if (!ctx) return KP_ERR_NULL;
    if (!f || !out) return kp__fail(ctx, KP_ERR_NULL, "formula or out is NULL");
    if (kp__formula_check_context(ctx, f) != KP_OK) return KP_ERR_ARGUMENT;
    kp_reduction r = kp__red(f->red)->with_indices;
    if (kp__red(r)->index == KP_WIDTH_NONE)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "%s selects no indices", kp__reduction_name(f->red));
    if (f->sum_rows) /* indices of different rows do not add up */
        return kp__fail(ctx, KP_ERR_ARGUMENT, "%s sums its rows: it has no indices to select",
                        kp__reduction_name(f->red));
    kp_formula *g = kp__alloc(ctx, sizeof *g);
    if (!g) return kp__fail(ctx, KP_ERR_OOM, "out of memory");
    *g = *f;
    g->red = r;
    *out = g;
    return KP_OK;
}

kp_status kp_formula_grad(kp_context *ctx, const kp_formula *f, int k, kp_formula **out) {
    if (!ctx) return KP_ERR_NULL;
    if (!f || !out) return kp__fail(ctx, KP_ERR_NULL, "formula or out is NULL");
    if (kp__formula_check_context(ctx, f) != KP_OK) return KP_ERR_ARGUMENT;
    if (k < 0 || k >= f->nargs || !f->args[k].used)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "argument %d is not used by the formula", k);
    kp_var_category row_cat = f->axis == 1 ? KP_VAR_I : KP_VAR_J;
    kp_var_category vcat = f->args[k].cat;
    kp_status st = KP_OK;
    kp_formula *g = copy_header(ctx, f);
    if (!g) return kp__fail(ctx, KP_ERR_OOM, "out of memory");
    int n = f->nargs, out_dim = kp_formula_out_dim(f);
    const kp_node *v = kp__var(ctx, vcat, k, f->args[k].dim, &st);
    g->red = KP_RED_SUM;
    g->axis = vcat == row_cat || vcat == KP_VAR_PARAM ? f->axis : 1 - f->axis;
    g->sum_rows = vcat == KP_VAR_PARAM;
    if (out_dim == 0) { /* ArgMin, ArgMax, ArgKMin: indices are piecewise constant */
        g->f = kp__const(ctx, 0, f->args[k].dim, &st);
        if (st != KP_OK) {
            kp__free(ctx, g);
            return st;
        }
        *out = g;
        return KP_OK;
    }
    /* A row-summed f has one output row for all rows: its gradient E is the
     * same for every row, a parameter. */
    const kp_node *E = add_arg(ctx, g, n, f->sum_rows ? KP_VAR_PARAM : row_cat, out_dim, &st);
    const kp_node *F = f->f, *H = NULL;
    if (st != KP_OK) {
    } else if (f->red == KP_RED_SUM) {
        H = kp__grad(ctx, F, v, E, &st);
    } else if (f->red == KP_RED_LOGSUMEXP) {
        {
            const kp_node *O = add_arg(ctx, g, n + 1, row_cat, out_dim, &st);
            const kp_node *w = kp__unary(ctx, KP_OP_EXP, kp__binary(ctx, KP_OP_SUB, F, O, &st), &st);
            H = kp__grad(ctx, F, v, kp__binary(ctx, KP_OP_MUL, E, w, &st), &st);
        }
    } else if (f->red != KP_RED_SUMSOFTMAXWEIGHT) { /* Min, Max, KMin and their Arg variants */
        /* The gradient flows to the selected points only: seed_ij = sum_k E_i,k [j == J_i,k],
         * with J the forward's indices (ties already resolved to the smallest index). */
        int D = F->dim, K = out_dim / D;
        const kp_node *J = add_arg(ctx, g, n + 1, row_cat, out_dim, &st);
        const kp_node *idx = kp__index(ctx, f->axis == 1 ? KP_VAR_J : KP_VAR_I, &st), *seed = NULL;
        for (int q = 0; q < K && st == KP_OK; q++) {
            const kp_node *hit = kp__binary(ctx, KP_OP_EQ, idx, kp__extract(ctx, J, q * D, D, &st), &st);
            const kp_node *term = kp__binary(ctx, KP_OP_MUL, kp__extract(ctx, E, q * D, D, &st), hit, &st);
            seed = seed ? kp__binary(ctx, KP_OP_ADD, seed, term, &st) : term;
        }
        H = kp__grad(ctx, F, v, seed, &st);
    } else { /* SumSoftMaxWeight */
        {
            const kp_node *G = f->g;
            const kp_node *O = add_arg(ctx, g, n + 1, row_cat, out_dim, &st);
            const kp_node *seed = kp__binary(ctx, KP_OP_DOT, kp__binary(ctx, KP_OP_SUB, G, O, &st), E, &st);
            H = kp__binary(ctx, KP_OP_ADD, kp__grad(ctx, G, v, E, &st), kp__grad(ctx, F, v, seed, &st), &st);
            if (vcat == row_cat || vcat == KP_VAR_PARAM) {
                g->red = KP_RED_SUMSOFTMAXWEIGHT;
                g->f = F;
                g->g = H;
            } else {
                const kp_node *L = add_arg(ctx, g, n + 2, row_cat, 1, &st);
                H = kp__binary(ctx, KP_OP_MUL, kp__unary(ctx, KP_OP_EXP, kp__binary(ctx, KP_OP_SUB, F, L, &st), &st),
                               H, &st);
            }
        }
    }
    if (st != KP_OK || !H) {
        kp__free(ctx, g);
        return st != KP_OK ? st : kp__fail(ctx, KP_ERR_INTERNAL, "gradient construction failed");
    }
    if (g->red == KP_RED_SUM) g->f = H;
    *out = g;
    return KP_OK;
}
