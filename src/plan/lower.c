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
        kp_instr *code = kp__realloc(lw->ctx, p->code, (size_t)cap * sizeof *code);
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

/* ------------------------------------------------------------------ products
 * Rewrites worth doing once locations are known (the DAG does not know which
 * side is uniform). A product of tiles and row scalars, with negations, such
 * as the gradient's  (x-y) * (2 * -(g * (Exp(..) * (b * e))))  is flattened
 * and rebuilt as  tiles * (-2 g e): the row factors and the signs are
 * multiplied once per row, the per-pair work keeps one multiply per tile
 * factor (a negated product, -(16 * D), is the product D * -16), and scalar
 * (dimension-1) tile factors are combined before vector ones. */
#define MAX_FACTORS 32

typedef struct {
    const kp_node *f[MAX_FACTORS];
    int n, neg, overflow;
    int take_divisor;       /* set by the caller: a division by a ROW scalar may be taken out */
    const kp_node *divisor; /* then: the product is f[0] * ... * f[n-1] / divisor */
} factors;

static void gather_factors(lowering *lw, const kp_node *n, factors *fs) {
    if (loc_of(lw, n) != KP_LOC_ROW && (n->op == KP_OP_MUL || n->op == KP_OP_NEG)) {
        if (n->op == KP_OP_NEG) fs->neg ^= 1;
        for (int k = 0; k < n->nchild; k++) gather_factors(lw, n->child[k], fs);
        return;
    }
    /* One division at most: s1 * s2 could overflow where t / s1 / s2 does not. */
    if (fs->take_divisor && !fs->divisor && loc_of(lw, n) != KP_LOC_ROW && n->op == KP_OP_DIV &&
        loc_of(lw, n->child[1]) == KP_LOC_ROW && n->child[1]->dim == 1 && n->child[0]->dim == n->dim) {
        fs->divisor = n->child[1];
        gather_factors(lw, n->child[0], fs);
        return;
    }
    if (fs->n == MAX_FACTORS) fs->overflow = 1;
    else fs->f[fs->n++] = n;
}

static const kp_node *times(kp_context *ctx, const kp_node *acc, const kp_node *f, kp_status *st) {
    return acc ? kp__binary(ctx, KP_OP_MUL, acc, f, st) : f;
}

static const kp_node *rewrite(lowering *lw, const kp_node *n) {
    if ((n->op != KP_OP_MUL && n->op != KP_OP_NEG) || loc_of(lw, n) == KP_LOC_ROW) return n;
    factors fs;
    memset(&fs, 0, sizeof fs);
    gather_factors(lw, n, &fs);
    int nrow = 0;
    for (int k = 0; k < fs.n; k++) nrow += loc_of(lw, fs.f[k]) == KP_LOC_ROW;
    if (fs.overflow || (nrow == 0 && !fs.neg)) return n;
    kp_context *ctx = lw->ctx;
    kp_status st = KP_OK;
    const kp_node *row = NULL, *scal = NULL, *vec = NULL;
    for (int k = 0; k < fs.n; k++)
        if (loc_of(lw, fs.f[k]) == KP_LOC_ROW) row = times(ctx, row, fs.f[k], &st);
    if (fs.neg) row = row ? kp__unary(ctx, KP_OP_NEG, row, &st) : kp__const(ctx, -1, 1, &st);
    for (int k = 0; k < fs.n; k++)
        if (loc_of(lw, fs.f[k]) != KP_LOC_ROW && fs.f[k]->dim == 1) scal = times(ctx, scal, fs.f[k], &st);
    scal = times(ctx, scal, row, &st);
    for (int k = 0; k < fs.n; k++)
        if (loc_of(lw, fs.f[k]) != KP_LOC_ROW && fs.f[k]->dim > 1) vec = times(ctx, vec, fs.f[k], &st);
    const kp_node *r = vec ? times(ctx, vec, scal, &st) : scal;
    return r && st == KP_OK && r->dim == n->dim ? r : n;
}

/* For a product over tiles and row values (F not ROW): returns the product of
 * its tile factors (scalars first, as rewrite() orders them) and sets *row to
 * the product of its row factors and signs; returns NULL if there is no row
 * factor or sign to take out, or no tile factor. */
static const kp_node *split_row_factor(lowering *lw, const kp_node *F, const kp_node **row) {
    *row = NULL;
    if (loc_of(lw, F) == KP_LOC_ROW || (F->op != KP_OP_MUL && F->op != KP_OP_NEG)) return NULL;
    factors fs;
    memset(&fs, 0, sizeof fs);
    gather_factors(lw, F, &fs);
    if (fs.overflow) return NULL;
    kp_context *ctx = lw->ctx;
    kp_status st = KP_OK;
    const kp_node *r = NULL, *scal = NULL, *vec = NULL;
    for (int k = 0; k < fs.n; k++) {
        const kp_node *x = fs.f[k];
        if (loc_of(lw, x) == KP_LOC_ROW) r = times(ctx, r, x, &st);
        else if (x->dim == 1) scal = times(ctx, scal, x, &st);
        else vec = times(ctx, vec, x, &st);
    }
    if (fs.neg) r = r ? kp__unary(ctx, KP_OP_NEG, r, &st) : kp__const(ctx, -1, 1, &st);
    const kp_node *t = vec && scal ? times(ctx, vec, scal, &st) : vec ? vec : scal;
    /* the scale must broadcast onto the tiles' product, never widen it */
    if (st != KP_OK || !r || !t || t->dim != F->dim || (r->dim != 1 && r->dim != F->dim)) return NULL;
    *row = r;
    return t;
}

/* The memo covers every node id; rewrite() creates nodes one at a time while
 * lowering, so it grows geometrically (growing to the exact size made long
 * derivatives' lowering quadratic in copies). */
static int ensure_memo(lowering *lw) {
    size_t need = kp__node_store_size(lw->ctx->nodes);
    if (need <= lw->nmemo) return 1;
    size_t cap = lw->nmemo * 2 > need ? lw->nmemo * 2 : need;
    kp_operand *m = kp__realloc(lw->ctx, lw->memo, cap * sizeof *m);
    if (!m) return 0;
    memset(m + lw->nmemo, 0, (cap - lw->nmemo) * sizeof *m);
    lw->memo = m;
    lw->nmemo = cap;
    return 1;
}

/* The operands of Exp(n's child) as one fused instruction (program.h), t a
 * tile and s a row scalar: Exp(t * s) (the Gaussian's Exp(-SqDist*g)), Exp(t / s)
 * and Exp(-(t / s)) = Exp(t / -s) (the tutorials' Exp(-D / s2): 1/s would be
 * rounded, so the division stays, *divide = 1), Exp(-t) = Exp(t * -1). All
 * exact, one pass over the tile instead of two. Returns 1 if fused. */
static kp_operand lower_node(lowering *lw, const kp_node *n);
static int fused_exp(lowering *lw, const kp_node *n, kp_operand in[2], int *divide) {
    const kp_node *scaled = rewrite(lw, n->child[0]);
    if (scaled->op == KP_OP_MUL)
        for (int k = 0; k < 2; k++) {
            const kp_node *t = scaled->child[k], *sc = scaled->child[1 - k];
            if (loc_of(lw, t) != KP_LOC_ROW && loc_of(lw, sc) == KP_LOC_ROW && sc->dim == 1 && t->dim == n->dim) {
                in[0] = lower_node(lw, t);
                in[1] = lower_node(lw, sc);
                return 1;
            }
        }
    const kp_node *q = n->child[0];
    int negated = q->op == KP_OP_NEG;
    if (negated) q = q->child[0];
    kp_status st = KP_OK;
    const kp_node *t = NULL, *s = NULL;
    if (q->op == KP_OP_DIV && loc_of(lw, q->child[0]) != KP_LOC_ROW && loc_of(lw, q->child[1]) == KP_LOC_ROW &&
        q->child[1]->dim == 1 && q->child[0]->dim == n->dim) {
        t = q->child[0];
        s = negated ? kp__unary(lw->ctx, KP_OP_NEG, q->child[1], &st) : q->child[1];
        *divide = 1;
    } else if (negated && loc_of(lw, q) != KP_LOC_ROW) {
        t = q;
        s = kp__const(lw->ctx, -1, 1, &st);
    }
    if (!t) return 0;
    if (!s) {
        lw->st = st;
        return 0;
    }
    in[0] = lower_node(lw, t);
    in[1] = lower_node(lw, s);
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
    kp_loc loc = loc_of(lw, n);
    int nin = n->nchild;
    int divide = 0;
    if (n->op == KP_OP_EXP && loc != KP_LOC_ROW && fused_exp(lw, n, in, &divide)) nin = 2;
    if (lw->st != KP_OK) return none;
    for (int k = 0; nin == n->nchild && k < n->nchild; k++) in[k] = lower_node(lw, n->child[k]);
    if (lw->st != KP_OK) return none;
    kp_instr *ins = emit(lw, loc);
    if (!ins) return none;
    ins->op = n->op;
    ins->nin = nin;
    for (int k = 0; k < nin; k++) ins->in[k] = in[k];
    ins->ip[0] = n->ip[0];
    ins->ip[1] = divide ? 1 : n->ip[1];
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
    /* Node ids index the lowering's tables: they must come from ctx's store. */
    if (kp__formula_check_context(ctx, f) != KP_OK) return KP_ERR_ARGUMENT;
    lowering lw;
    memset(&lw, 0, sizeof lw);
    lw.ctx = ctx;
    prog->ctx = ctx; /* whose allocator holds the code */
    lw.prog = prog;
    prog->red = f->red;
    prog->axis = f->axis;
    prog->K = f->K;
    prog->row_cat = f->axis == 1 ? KP_VAR_I : KP_VAR_J;
    prog->col_cat = f->axis == 1 ? KP_VAR_J : KP_VAR_I;
    lw.row_dep = f->axis == 1 ? KP_DEP_I : KP_DEP_J;
    lw.col_dep = f->axis == 1 ? KP_DEP_J : KP_DEP_I;
    prog->fdim = f->f->dim;
    /* A Sum of a product of two tiles (the kernel product's K_ij * b_j) is
     * accumulated as a product: the per-pair product is never stored. */
    const kp_node *F = f->red == KP_RED_SUM ? rewrite(&lw, f->f) : NULL;
    if (F) { /* row factors of a Sum leave the per-pair product: sum_j r_i t_ij = r_i sum_j t_ij */
        const kp_node *row = NULL, *tiles = split_row_factor(&lw, F, &row);
        if (row && tiles) {
            prog->red_scale = lower_node(&lw, row);
            F = tiles;
        }
    }
    if (F && F->op == KP_OP_MUL && loc_of(&lw, F->child[0]) != KP_LOC_ROW &&
        loc_of(&lw, F->child[1]) != KP_LOC_ROW) {
        prog->red_f = lower_node(&lw, F->child[0]);
        prog->red_f2 = lower_node(&lw, F->child[1]);
    } else {
        prog->red_f = as_tile(&lw, lower_node(&lw, F ? F : f->f));
    }
    if (f->g) prog->red_g = as_tile(&lw, lower_node(&lw, f->g));
    kp__free(ctx, lw.memo);
    if (lw.st != KP_OK) kp__program_free(prog);
    return lw.st;
}

void kp__program_free(kp_program *prog) {
    kp__free(prog->ctx, prog->row.code);
    kp__free(prog->ctx, prog->col.code);
    kp__free(prog->ctx, prog->pair.code);
    memset(prog, 0, sizeof *prog);
}

/* ------------------------------------------------------------------ joint programs
 * Every formula of a joint plan is lowered into one program with row = i and
 * col = j, so a value that several formulas use (the kernel K(x_i, y_j) of a
 * forward's gradients) is computed once per pair. Each reduced formula becomes
 * a term: its product factors, flattened as in rewrite(). A term over j takes
 * its ROW factors out of the sum as a scale, and a division by a ROW scalar
 * as its divisor: the gradient of Exp(-D / s) * b in x carries
 * ((e_i * b_j) * K_ij) / s, which becomes (sum_j b_j K_ij ...) * e_i / s, the
 * division last as written, one product per pair fewer. A term over i keeps
 * its ROW factors as a per-row factor of the accumulation. */
static int by_dim(const void *a, const void *b) {
    const kp_node *x = *(const kp_node *const *)a, *y = *(const kp_node *const *)b;
    return (x->dim > y->dim) - (x->dim < y->dim);
}

static void lower_term(lowering *lw, const kp_formula *f, int index, kp_sum_term *t) {
    kp_context *ctx = lw->ctx;
    kp_status st = KP_OK;
    int over_rows = f->axis == 0; /* reduced over i: one value per j */
    memset(t, 0, sizeof *t);
    t->dim = f->f->dim;
    t->formula = index;
    factors fs;
    memset(&fs, 0, sizeof fs);
    fs.take_divisor = !over_rows;
    if (loc_of(lw, f->f) != KP_LOC_ROW) gather_factors(lw, f->f, &fs);
    const kp_node *tiles[MAX_FACTORS], *row = NULL;
    int ntiles = 0;
    for (int k = 0; !fs.overflow && k < fs.n; k++) {
        if (loc_of(lw, fs.f[k]) == KP_LOC_ROW) row = times(ctx, row, fs.f[k], &st);
        else tiles[ntiles++] = fs.f[k];
    }
    if (fs.overflow || ntiles == 0) { /* not a product of tiles: F itself, as a tile */
        t->factor[0] = as_tile(lw, lower_node(lw, f->f));
        t->nfactors = 1;
        return;
    }
    if (fs.neg) row = row ? kp__unary(ctx, KP_OP_NEG, row, &st) : kp__const(ctx, -1, 1, &st);
    /* A term over i multiplies its per-row factor in as one of the tiles. */
    int max_tiles = over_rows && row ? KP_TERM_TILES - 1 : KP_TERM_TILES;
    qsort(tiles, (size_t)ntiles, sizeof *tiles, by_dim); /* scalars first: cheapest to combine */
    while (ntiles > max_tiles && st == KP_OK) {
        tiles[1] = times(ctx, tiles[0], tiles[1], &st);
        memmove(tiles, tiles + 1, (size_t)(--ntiles) * sizeof *tiles);
    }
    if (st != KP_OK) {
        lw->st = kp__fail(ctx, st, "out of memory while lowering the formula");
        return;
    }
    for (int k = 0; k < ntiles; k++) t->factor[k] = lower_node(lw, tiles[k]);
    t->nfactors = ntiles;
    if (row) {
        if (over_rows) t->factor[t->nfactors++] = lower_node(lw, row);
        else t->scale = lower_node(lw, row);
    }
    if (fs.divisor) t->divisor = lower_node(lw, fs.divisor);
}

kp_status kp__lower_joint(kp_context *ctx, const kp_formula *const *fs, int n, kp_program *prog) {
    memset(prog, 0, sizeof *prog);
    lowering lw;
    memset(&lw, 0, sizeof lw);
    lw.ctx = ctx;
    prog->ctx = ctx; /* whose allocator holds the code */
    lw.prog = prog;
    prog->red = KP_RED_SUM;
    prog->axis = 1;
    prog->row_cat = KP_VAR_I;
    prog->col_cat = KP_VAR_J;
    lw.row_dep = KP_DEP_I;
    lw.col_dep = KP_DEP_J;
    for (int k = 0; k < n && lw.st == KP_OK; k++) {
        int side = fs[k]->axis == 1 ? 0 : 1;
        lower_term(&lw, fs[k], k, &prog->terms[side][prog->nterms[side]++]);
    }
    kp__free(ctx, lw.memo);
    if (lw.st != KP_OK) kp__program_free(prog);
    return lw.st;
}
