/* lower.c — formula DAG to the three-part program of program.h. */
#include "plan/program.h"

#include <stdlib.h>
#include <string.h>

#include "core/context.h"

typedef struct {
    kp_context *ctx;
    kp_program *prog;
    unsigned row_dep, col_dep;
    kp_operand *memo; /* by node id; dim 0 = not lowered yet */
    size_t nmemo;
    kp_status st;
} lowering;

static kp_loc loc_of(const lowering *lw, const kp_node *n) {
    if (n->deps & lw->col_dep) return (n->deps & lw->row_dep) ? KP_LOC_PAIR : KP_LOC_COL;
    return KP_LOC_ROW;
}

static kp_instr *emit(lowering *lw, kp_loc loc) {
    kp_program_part *p = loc == KP_LOC_ROW ? &lw->prog->row : loc == KP_LOC_COL ? &lw->prog->col : &lw->prog->pair;
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        kp_instr *code = realloc(p->code, (size_t)cap * sizeof *code);
        if (!code) {
            lw->st = kp__fail(lw->ctx, KP_ERR_OOM, "out of memory while lowering the formula");
            return NULL;
        }
        p->code = code;
        p->cap = cap;
    }
    kp_instr *in = &p->code[p->n++];
    memset(in, 0, sizeof *in);
    return in;
}

static kp_operand alloc_value(lowering *lw, kp_loc loc, int dim) {
    kp_operand o = {loc, 0, dim};
    int *size = loc == KP_LOC_ROW ? &lw->prog->row_size : loc == KP_LOC_COL ? &lw->prog->col_size : &lw->prog->pair_size;
    o.off = *size;
    *size += dim;
    return o;
}

/* Rewrites worth doing once locations are known (the DAG does not know which
 * side is uniform): (-t)*s with t a tile and s a row scalar becomes t*(-s),
 * so the negation runs once per row instead of once per pair. */
static const kp_node *rewrite(lowering *lw, const kp_node *n) {
    if (n->op != KP_OP_MUL) return n;
    for (int k = 0; k < 2; k++) {
        const kp_node *a = n->child[k], *b = n->child[1 - k];
        if (a->op == KP_OP_NEG && loc_of(lw, a->child[0]) != KP_LOC_ROW && loc_of(lw, b) == KP_LOC_ROW) {
            kp_status st = KP_OK;
            const kp_node *r = kp__binary(lw->ctx, KP_OP_MUL, a->child[0], kp__unary(lw->ctx, KP_OP_NEG, b, &st), &st);
            if (r) return r;
        }
    }
    return n;
}

static int ensure_memo(lowering *lw) {
    size_t need = kp__node_store_size(lw->ctx->nodes);
    if (need <= lw->nmemo) return 1;
    kp_operand *m = realloc(lw->memo, need * sizeof *m);
    if (!m) return 0;
    memset(m + lw->nmemo, 0, (need - lw->nmemo) * sizeof *m);
    lw->memo = m;
    lw->nmemo = need;
    return 1;
}

static kp_operand lower_node(lowering *lw, const kp_node *n) {
    kp_operand none = {KP_LOC_ROW, 0, 0};
    if (lw->st != KP_OK) return none;
    n = rewrite(lw, n);
    if (!ensure_memo(lw)) {
        lw->st = kp__fail(lw->ctx, KP_ERR_OOM, "out of memory while lowering the formula");
        return none;
    }
    if (lw->memo[n->id].dim) return lw->memo[n->id];
    kp_operand in[3];
    for (int k = 0; k < n->nchild; k++) {
        in[k] = lower_node(lw, n->child[k]);
        if (lw->st != KP_OK) return none;
    }
    kp_loc loc = loc_of(lw, n);
    kp_instr *ins = emit(lw, loc);
    if (!ins) return none;
    ins->op = n->op;
    ins->nin = n->nchild;
    for (int k = 0; k < n->nchild; k++) ins->in[k] = in[k];
    ins->ip[0] = n->ip[0];
    ins->ip[1] = n->ip[1];
    ins->value = n->value;
    ins->out = alloc_value(lw, loc, n->dim);
    if (!ensure_memo(lw)) { /* rewrite() may have created nodes */
        lw->st = kp__fail(lw->ctx, KP_ERR_OOM, "out of memory while lowering the formula");
        return none;
    }
    lw->memo[n->id] = ins->out;
    return ins->out;
}

/* Reduction inputs must be tiles: a ROW value is broadcast per pair. */
static kp_operand as_tile(lowering *lw, kp_operand o) {
    if (lw->st != KP_OK || o.loc != KP_LOC_ROW) return o;
    kp_instr *ins = emit(lw, KP_LOC_PAIR);
    if (!ins) return o;
    ins->op = KP_OP_BCAST;
    ins->nin = 1;
    ins->in[0] = o;
    ins->out = alloc_value(lw, KP_LOC_PAIR, o.dim);
    return ins->out;
}

kp_status kp__lower(kp_context *ctx, const kp_formula *f, kp_program *prog) {
    memset(prog, 0, sizeof *prog);
    lowering lw;
    memset(&lw, 0, sizeof lw);
    lw.ctx = ctx;
    lw.prog = prog;
    prog->red = f->red;
    prog->axis = f->axis;
    prog->K = f->K;
    prog->row_cat = f->axis == 1 ? KP_VAR_I : KP_VAR_J;
    prog->col_cat = f->axis == 1 ? KP_VAR_J : KP_VAR_I;
    lw.row_dep = f->axis == 1 ? KP_DEP_I : KP_DEP_J;
    lw.col_dep = f->axis == 1 ? KP_DEP_J : KP_DEP_I;
    prog->red_f = as_tile(&lw, lower_node(&lw, f->f));
    if (f->g) prog->red_g = as_tile(&lw, lower_node(&lw, f->g));
    free(lw.memo);
    if (lw.st != KP_OK) kp__program_free(prog);
    return lw.st;
}

void kp__program_free(kp_program *prog) {
    free(prog->row.code);
    free(prog->col.code);
    free(prog->pair.code);
    memset(prog, 0, sizeof *prog);
}
