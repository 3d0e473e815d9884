/*
 * grad.c — symbolic differentiation of formula DAGs.
 *
 * kp__grad(F, v, e) is the vector-Jacobian product  sum_c e_c dF_c/dv  (a value
 * of v's dimension), by reverse accumulation over the DAG: adjoints start at
 * adj(F) = e and flow from each node to its children, in decreasing canonical
 * order (kp__node_cmp: by height first, so parents come before their children;
 * a function of the structure only, so the gradient does not depend on what the
 * context built before). Every rule is a few lines written with the
 * same simplifying constructors users reach through the parser, so zeros
 * vanish, constants fold and shared subexpressions stay shared: derived
 * formulas stay small, and a derivative of a derivative is just another DAG.
 *
 * kp__diff(F, v, u) is the Jacobian-vector product  dF/dv . u  (forward mode),
 * obtained as the gradient of the linear map e -> J^T e; kp__divergence and
 * kp__laplacian are built from it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "formula/grad.h"

typedef struct {
    kp_context *ctx;
    kp_status *st;
} rules;

#define ADD(a, b) kp__binary(R->ctx, KP_OP_ADD, (a), (b), R->st)
#define SUB(a, b) kp__binary(R->ctx, KP_OP_SUB, (a), (b), R->st)
#define MUL(a, b) kp__binary(R->ctx, KP_OP_MUL, (a), (b), R->st)
#define DIV(a, b) kp__binary(R->ctx, KP_OP_DIV, (a), (b), R->st)
#define NEG(a) kp__unary(R->ctx, KP_OP_NEG, (a), R->st)
#define UN(op, a) kp__unary(R->ctx, (op), (a), R->st)
#define BIN(op, a, b) kp__binary(R->ctx, (op), (a), (b), R->st)
#define CST(v) kp__const(R->ctx, (v), 1, R->st)
#define ZERO(d) kp__const(R->ctx, 0, (d), R->st)

/* Contribution g (dimension of the parent) to a child of dimension d: a
 * dimension-1 child was broadcast, so its adjoint sums over components; a
 * dimension-1 g feeding a vector child is broadcast explicitly. */
static const kp_node *fit(rules *R, const kp_node *g, int d) {
    if (!g) return NULL;
    if (g->dim == d) return g;
    if (d == 1) return UN(KP_OP_SUM, g);
    return MUL(g, kp__const(R->ctx, 1, d, R->st));
}

/* Mask of "x is in [a, b]" as 0/1. */
static const kp_node *between(rules *R, const kp_node *x, const kp_node *a, const kp_node *b) {
    return MUL(BIN(KP_OP_GE, x, a), BIN(KP_OP_LE, x, b));
}

/* Adjoint contribution of node n (value n, adjoint g) to its child k. NULL with
 * *st == KP_OK means "no contribution" (zero gradient). */
static const kp_node *vjp_rule(rules *R, const kp_node *n, int k, const kp_node *g) {
    const kp_node *a = n->child[0], *b = n->nchild > 1 ? n->child[1] : NULL, *c = n->nchild > 2 ? n->child[2] : NULL;
    switch (n->op) {
    case KP_OP_VAR:
    case KP_OP_CONST:
    case KP_OP_INDEX: return NULL;
    case KP_OP_ADD: return g;
    case KP_OP_SUB: return k == 0 ? g : NEG(g);
    case KP_OP_MUL: return MUL(g, k == 0 ? b : a);
    case KP_OP_DIV: return k == 0 ? DIV(g, b) : NEG(DIV(MUL(g, n), b));
    case KP_OP_NEG: return NEG(g);
    case KP_OP_INV: return NEG(MUL(g, UN(KP_OP_SQUARE, n)));
    case KP_OP_SQUARE: return MUL(MUL(CST(2), a), g);
    case KP_OP_POW: return MUL(g, MUL(CST(n->ip[0]), kp__pow(R->ctx, a, n->ip[0] - 1, R->st)));
    case KP_OP_POWF:
        if (k == 0) return MUL(g, MUL(b, BIN(KP_OP_POWF, a, SUB(b, CST(1)))));
        return MUL(g, MUL(UN(KP_OP_LOG, a), n));
    case KP_OP_SQRT: return MUL(g, MUL(CST(0.5), UN(KP_OP_RSQRT, a)));
    case KP_OP_RSQRT: return MUL(g, MUL(CST(-0.5), kp__pow(R->ctx, n, 3, R->st)));
    case KP_OP_EXP: return MUL(g, n);
    case KP_OP_LOG: return DIV(g, a);
    case KP_OP_XLOGX: return MUL(g, ADD(UN(KP_OP_LOG, a), CST(1)));
    case KP_OP_SIN: return MUL(g, UN(KP_OP_COS, a));
    case KP_OP_COS: return NEG(MUL(g, UN(KP_OP_SIN, a)));
    case KP_OP_ASIN: return MUL(g, UN(KP_OP_RSQRT, SUB(CST(1), UN(KP_OP_SQUARE, a))));
    case KP_OP_ACOS: return NEG(MUL(g, UN(KP_OP_RSQRT, SUB(CST(1), UN(KP_OP_SQUARE, a)))));
    case KP_OP_ATAN: return DIV(g, ADD(CST(1), UN(KP_OP_SQUARE, a)));
    case KP_OP_ATAN2: { /* atan2(a, b): d/da = b / (a^2 + b^2), d/db = -a / (a^2 + b^2) */
        const kp_node *r2 = ADD(UN(KP_OP_SQUARE, a), UN(KP_OP_SQUARE, b));
        return k == 0 ? MUL(g, DIV(b, r2)) : NEG(MUL(g, DIV(a, r2)));
    }
    case KP_OP_SINXDIVX: /* (cos a - sin a / a) / a, and 0 at a = 0 (IfElse picks 0 where -|a| >= 0) */
        return MUL(g, kp__ternary(R->ctx, KP_OP_IFELSE, NEG(UN(KP_OP_ABS, a)), CST(0),
                                 DIV(SUB(UN(KP_OP_COS, a), n), a), R->st));
    case KP_OP_TANH: return MUL(g, SUB(CST(1), UN(KP_OP_SQUARE, n)));
    case KP_OP_ERF:
        return MUL(g, MUL(CST(1.1283791670955126), UN(KP_OP_EXP, NEG(UN(KP_OP_SQUARE, a))))); /* 2/sqrt(pi) */
    case KP_OP_ABS: return MUL(g, UN(KP_OP_SIGN, a));
    case KP_OP_RELU: return MUL(g, BIN(KP_OP_GT, a, CST(0)));
    case KP_OP_CLAMP: /* inside [b, c]: flows to a; below: to b; above: to c */
        if (k == 0) return MUL(g, between(R, a, b, c));
        if (k == 1) return MUL(g, BIN(KP_OP_LT, a, b));
        return MUL(g, BIN(KP_OP_GT, a, c));
    case KP_OP_IFELSE:
        if (k == 0) return NULL;
        return MUL(g, k == 1 ? BIN(KP_OP_GE, a, CST(0)) : BIN(KP_OP_LT, a, CST(0)));
    /* Piecewise constant: zero almost everywhere. */
    case KP_OP_LT:
    case KP_OP_LE:
    case KP_OP_GT:
    case KP_OP_GE:
    case KP_OP_EQ:
    case KP_OP_NE:
    case KP_OP_SIGN:
    case KP_OP_STEP:
    case KP_OP_FLOOR:
    case KP_OP_ROUND:
    case KP_OP_ARGMAXC:
    case KP_OP_ARGMINC:
    case KP_OP_ONEHOT: return NULL;
    case KP_OP_DOT: return MUL(g, k == 0 ? b : a);
    case KP_OP_SQDIST: {
        const kp_node *d = MUL(MUL(CST(2), g), SUB(a, b));
        return k == 0 ? d : NEG(d);
    }
    case KP_OP_SUM: return fit(R, g, a->dim);
    case KP_OP_MAXC: return MUL(g, kp__onehot(R->ctx, UN(KP_OP_ARGMAXC, a), a->dim, R->st));
    case KP_OP_MINC: return MUL(g, kp__onehot(R->ctx, UN(KP_OP_ARGMINC, a), a->dim, R->st));
    case KP_OP_EXTRACT: {
        const kp_node *r = g;
        int first = n->ip[0], after = a->dim - first - n->dim;
        if (first > 0) r = BIN(KP_OP_CONCAT, ZERO(first), r);
        if (after > 0) r = BIN(KP_OP_CONCAT, r, ZERO(after));
        return r;
    }
    case KP_OP_CONCAT:
        return k == 0 ? kp__extract(R->ctx, g, 0, a->dim, R->st) : kp__extract(R->ctx, g, a->dim, b->dim, R->st);
    case KP_OP_MATVEC: /* out_r = sum_l A[r m + l] v_l */
        return k == 0 ? BIN(KP_OP_TENSORPROD, g, b) : BIN(KP_OP_VECMAT, g, a);
    case KP_OP_VECMAT: /* out_l = sum_r v_r A[r m + l] */
        return k == 0 ? BIN(KP_OP_MATVEC, b, g) : BIN(KP_OP_TENSORPROD, a, g);
    case KP_OP_TENSORPROD: /* out[r m + l] = a_r b_l */
        return k == 0 ? BIN(KP_OP_MATVEC, g, b) : BIN(KP_OP_VECMAT, a, g);
    case KP_OP_BCAST: return g;
    case KP_OP_COUNT_: break;
    }
    *R->st = kp__fail(R->ctx, KP_ERR_INTERNAL, "no derivative rule for %s", kp__op_name(n->op));
    return NULL;
}

/* The nodes reachable from f, in decreasing canonical order (parents before children), and
 * for each whether it depends on v. pos_of maps a node id to its index + 1. */
typedef struct {
    const kp_node **order;
    unsigned char *dep;
    size_t n;
    size_t *pos_of;
    kp_context *ctx; /* whose allocator holds the arrays */
} walk;

static void walk_free(walk *w) {
    kp__free(w->ctx, w->order);
    kp__free(w->ctx, w->dep);
    kp__free(w->ctx, w->pos_of);
}

/* Reverse topological order: parents are higher than their children; the
 * canonical node order (kp__node_cmp, height first) decreasing, so the order of
 * accumulation, hence the gradient's DAG, does not depend on creation ids. */
static int cmp_topo_desc(const void *x, const void *y) {
    const kp_node *a = *(const kp_node *const *)x, *b = *(const kp_node *const *)y;
    return -kp__node_cmp(a, b);
}

static int walk_new(kp_context *ctx, const kp_node *f, const kp_node *v, walk *w) {
    memset(w, 0, sizeof *w);
    w->ctx = ctx;
    size_t nids = kp__node_store_size(ctx->nodes);
    size_t cap = 64, top = 0;
    const kp_node **stack = kp__alloc(ctx, cap * sizeof *stack);
    w->pos_of = kp__calloc(ctx, nids, sizeof *w->pos_of);
    w->order = kp__alloc(ctx, cap * sizeof *w->order);
    size_t ocap = cap;
    if (!stack || !w->pos_of || !w->order) goto oom;
    stack[top++] = f;
    w->pos_of[f->id] = 1;
    while (top) {
        const kp_node *x = stack[--top];
        if (w->n == ocap) {
            const kp_node **o = kp__realloc(ctx, w->order, 2 * ocap * sizeof *o);
            if (!o) goto oom;
            w->order = o;
            ocap *= 2;
        }
        w->order[w->n++] = x;
        for (int k = 0; k < x->nchild; k++) {
            const kp_node *ch = x->child[k];
            if (w->pos_of[ch->id]) continue;
            w->pos_of[ch->id] = 1; /* seen; the real position is set below */
            if (top == cap) {
                const kp_node **s = kp__realloc(ctx, stack, 2 * cap * sizeof *s);
                if (!s) goto oom;
                stack = s;
                cap *= 2;
            }
            stack[top++] = ch;
        }
    }
    kp__free(ctx, stack);
    stack = NULL;
    qsort(w->order, w->n, sizeof *w->order, cmp_topo_desc);
    w->dep = kp__calloc(ctx, w->n ? w->n : 1, 1);
    if (!w->dep) goto oom;
    for (size_t i = 0; i < w->n; i++) w->pos_of[w->order[i]->id] = i + 1;
    for (size_t i = w->n; i-- > 0;) { /* children first */
        const kp_node *x = w->order[i];
        int d = x == v;
        for (int k = 0; k < x->nchild && !d; k++) d = w->dep[w->pos_of[x->child[k]->id] - 1];
        w->dep[i] = (unsigned char)d;
    }
    return 1;
oom:
    kp__free(ctx, stack);
    walk_free(w);
    return 0;
}

const kp_node *kp__grad(kp_context *ctx, const kp_node *f, const kp_node *v, const kp_node *e, kp_status *st) {
    if (!f || !v || !e) return NULL;
    if (v->op != KP_OP_VAR) {
        *st = kp__fail(ctx, KP_ERR_PARSE, "Grad: the second argument must be a variable");
        return NULL;
    }
    if (e->dim != f->dim) {
        *st = kp__fail(ctx, KP_ERR_SHAPE, "Grad: the gradient input has dimension %d, the formula %d", e->dim, f->dim);
        return NULL;
    }
    walk w;
    if (!walk_new(ctx, f, v, &w)) {
        *st = kp__fail(ctx, KP_ERR_OOM, "out of memory while differentiating");
        return NULL;
    }
    const kp_node **adj = kp__calloc(ctx, w.n, sizeof *adj);
    if (!adj) {
        walk_free(&w);
        *st = kp__fail(ctx, KP_ERR_OOM, "out of memory while differentiating");
        return NULL;
    }
    rules rl = {ctx, st}, *R = &rl;
    adj[0] = e; /* order[0] is f: it has the largest id */
    const kp_node *result = NULL;
    for (size_t i = 0; i < w.n && *st == KP_OK; i++) {
        const kp_node *x = w.order[i];
        if (!adj[i] || !w.dep[i]) continue;
        if (x == v) {
            result = adj[i];
            continue;
        }
        for (int k = 0; k < x->nchild && *st == KP_OK; k++) {
            const kp_node *ch = x->child[k];
            size_t j = w.pos_of[ch->id] - 1;
            if (!w.dep[j]) continue;
            const kp_node *contrib = fit(R, vjp_rule(R, x, k, adj[i]), ch->dim);
            if (contrib) adj[j] = adj[j] ? ADD(adj[j], contrib) : contrib;
        }
    }
    kp__free(ctx, adj);
    walk_free(&w);
    if (*st != KP_OK) return NULL;
    return result ? result : kp__const(ctx, 0, v->dim, st);
}

/* Position of the dummy variable of kp__diff: never a real argument. */
#define KP_DUMMY_POSITION (1 << 20)

/* J u = d/de <J^T e, u>: the gradient of the (linear in e) vector-Jacobian
 * product with respect to a dummy e, in direction u. e cancels out. */
const kp_node *kp__diff(kp_context *ctx, const kp_node *f, const kp_node *v, const kp_node *u, kp_status *st) {
    if (!f || !v || !u) return NULL;
    if (u->dim != v->dim) {
        *st = kp__fail(ctx, KP_ERR_SHAPE, "Diff: the direction has dimension %d, the variable %d", u->dim, v->dim);
        return NULL;
    }
    const kp_node *e = kp__var(ctx, KP_VAR_PARAM, KP_DUMMY_POSITION, f->dim, st);
    const kp_node *jte = kp__grad(ctx, f, v, e, st);
    const kp_node *ju = jte ? kp__grad(ctx, jte, e, u, st) : NULL;
    if (!ju) return NULL;
    walk w;
    if (!walk_new(ctx, ju, e, &w)) {
        *st = kp__fail(ctx, KP_ERR_OOM, "out of memory while differentiating");
        return NULL;
    }
    int has_dummy = w.dep[0];
    walk_free(&w);
    if (has_dummy) {
        *st = kp__fail(ctx, KP_ERR_INTERNAL, "Diff: the derivative did not simplify (dummy variable left)");
        return NULL;
    }
    return ju;
}

/* Unit vector d of dimension n, as a constant expression. */
static const kp_node *unit(kp_context *ctx, int d, int n, kp_status *st) {
    const kp_node *one = kp__const(ctx, 1, 1, st);
    if (n == 1) return one;
    if (d == 0) return kp__binary(ctx, KP_OP_CONCAT, one, kp__const(ctx, 0, n - 1, st), st);
    const kp_node *r = kp__binary(ctx, KP_OP_CONCAT, kp__const(ctx, 0, d, st), one, st);
    return d == n - 1 ? r : kp__binary(ctx, KP_OP_CONCAT, r, kp__const(ctx, 0, n - 1 - d, st), st);
}

/* sum_d dF_d/dv_d (dim F == dim v). */
const kp_node *kp__divergence(kp_context *ctx, const kp_node *f, const kp_node *v, kp_status *st) {
    if (!f || !v) return NULL;
    if (f->dim != v->dim) {
        *st = kp__fail(ctx, KP_ERR_SHAPE, "Divergence needs dim F == dim of the variable, got %d and %d", f->dim, v->dim);
        return NULL;
    }
    const kp_node *sum = NULL;
    for (int d = 0; d < v->dim && *st == KP_OK; d++) {
        const kp_node *term = kp__extract(ctx, kp__diff(ctx, f, v, unit(ctx, d, v->dim, st), st), d, 1, st);
        sum = sum ? kp__binary(ctx, KP_OP_ADD, sum, term, st) : term;
    }
    return *st == KP_OK ? sum : NULL;
}

/* sum_d d^2 F / dv_d^2 for a scalar F: the divergence of the gradient. */
const kp_node *kp__laplacian(kp_context *ctx, const kp_node *f, const kp_node *v, kp_status *st) {
    if (!f || !v) return NULL;
    if (f->dim != 1) {
        *st = kp__fail(ctx, KP_ERR_SHAPE, "Laplacian needs a scalar formula, got dimension %d", f->dim);
        return NULL;
    }
    return kp__divergence(ctx, kp__grad(ctx, f, v, kp__const(ctx, 1, 1, st), st), v, st);
}
