/* node.c — hash-consed formula DAG nodes, with simplification at construction. */
#include "formula/node.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "formula/canon.h"
#include "formula/print.h"
#define KP_REAL_F32 0 /* constants fold in double */
#include "formula/scalar_eval.h"

KP_DEFINE_SCALAR_EVAL(fold_scalar)

/* The largest dimension of one formula value: well past any sensible formula,
 * and small enough that dims times tile sizes never overflow an int. */
#define KP_MAX_FORMULA_DIM 65536

#define NODES_PER_BLOCK 256

typedef struct node_block {
    struct node_block *prev;
    int used;
    kp_node nodes[NODES_PER_BLOCK];
} node_block;

struct kp_node_store {
    kp_node **buckets;
    size_t nbuckets;
    size_t count;
    node_block *blocks;
    kp_context *ctx; /* whose allocator the store uses */
};

static const struct {
    const char *name;
    int arity;
    int elementwise;
} op_info[] = {
#define LEAF 0
#define EW1 1
#define EW2 1
#define EW3 1
#define VEC 0
#define X(e, name, arity, cls) {name, arity, cls},
#include "formula/ops.def"
#undef X
#undef LEAF
#undef EW1
#undef EW2
#undef EW3
#undef VEC
};

const char *kp__op_name(kp_op op) { return (unsigned)op < KP_OP_COUNT_ ? op_info[op].name : "?"; }
int kp__op_is_elementwise(kp_op op) { return (unsigned)op < KP_OP_COUNT_ && op_info[op].elementwise; }

kp_node_store *kp__node_store_new(kp_context *ctx) {
    kp_node_store *s = kp__calloc(ctx, 1, sizeof *s);
    if (!s) return NULL;
    s->nbuckets = 256;
    s->ctx = ctx;
    s->buckets = kp__calloc(ctx, s->nbuckets, sizeof *s->buckets);
    if (!s->buckets) {
        kp__free(ctx, s);
        return NULL;
    }
    return s;
}

void kp__node_store_free(kp_node_store *s) {
    if (!s) return;
    node_block *b = s->blocks;
    while (b) {
        node_block *prev = b->prev;
        kp__free(s->ctx, b);
        b = prev;
    }
    kp__free(s->ctx, s->buckets);
    kp__free(s->ctx, s);
}

size_t kp__node_store_size(const kp_node_store *s) { return s ? s->count : 0; }

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

static uint64_t hash_node(const kp_node *n) {
    uint64_t h = mix(0x12345, (uint64_t)n->op);
    h = mix(h, (uint64_t)n->dim);
    for (int k = 0; k < n->nchild; k++) h = mix(h, n->child[k]->hash);
    h = mix(h, (uint64_t)(int64_t)n->ip[0]);
    h = mix(h, (uint64_t)(int64_t)n->ip[1]);
    uint64_t bits;
    memcpy(&bits, &n->value, sizeof bits);
    return mix(h, bits);
}

int kp__node_cmp(const kp_node *a, const kp_node *b) {
    if (a == b) return 0;
#define KP_CMP_BY(x, y) \
    if ((x) != (y)) return (x) < (y) ? -1 : 1
    KP_CMP_BY(a->height, b->height);
    KP_CMP_BY((int)a->op, (int)b->op);
    KP_CMP_BY(a->ip[0], b->ip[0]);
    KP_CMP_BY(a->ip[1], b->ip[1]);
    KP_CMP_BY(a->dim, b->dim);
    uint64_t va, vb; /* bits: a total order, NaN included */
    memcpy(&va, &a->value, sizeof va);
    memcpy(&vb, &b->value, sizeof vb);
    KP_CMP_BY(va, vb);
    KP_CMP_BY(a->hash, b->hash);
    KP_CMP_BY(a->id, b->id);
#undef KP_CMP_BY
    return 0;
}

static int same_node(const kp_node *a, const kp_node *b) {
    if (a->op != b->op || a->dim != b->dim || a->nchild != b->nchild || a->ip[0] != b->ip[0] ||
        a->ip[1] != b->ip[1] || memcmp(&a->value, &b->value, sizeof a->value) != 0)
        return 0;
    for (int k = 0; k < a->nchild; k++)
        if (a->child[k] != b->child[k]) return 0;
    return 1;
}

static int grow(kp_node_store *s) {
    size_t nb = s->nbuckets * 2;
    kp_node **buckets = kp__calloc(s->ctx, nb, sizeof *buckets);
    if (!buckets) return 0;
    for (size_t i = 0; i < s->nbuckets; i++) {
        kp_node *n = s->buckets[i];
        while (n) {
            kp_node *next = n->next;
            size_t slot = (size_t)(n->hash & (nb - 1));
            n->next = buckets[slot];
            buckets[slot] = n;
            n = next;
        }
    }
    kp__free(s->ctx, s->buckets);
    s->buckets = buckets;
    s->nbuckets = nb;
    return 1;
}

/* Returns the unique node equal to proto, creating it if needed. */
static const kp_node *intern(kp_context *ctx, kp_node proto, kp_status *st) {
    kp_node_store *s = ctx->nodes;
    proto.deps = 0;
    proto.height = 0;
    for (int k = 0; k < proto.nchild; k++) {
        proto.deps |= proto.child[k]->deps;
        if (proto.child[k]->height + 1 > proto.height) proto.height = proto.child[k]->height + 1;
    }
    if (proto.op == KP_OP_VAR || proto.op == KP_OP_INDEX)
        proto.deps = proto.ip[0] == KP_VAR_I ? KP_DEP_I : proto.ip[0] == KP_VAR_J ? KP_DEP_J : KP_DEP_P;
    proto.hash = hash_node(&proto);
    size_t slot = (size_t)(proto.hash & (s->nbuckets - 1));
    for (kp_node *n = s->buckets[slot]; n; n = n->next)
        if (n->hash == proto.hash && same_node(n, &proto)) return n;
    if (s->count + 1 > s->nbuckets && !grow(s)) goto oom;
    if (!s->blocks || s->blocks->used == NODES_PER_BLOCK) {
        node_block *b = kp__alloc(ctx, sizeof *b);
        if (!b) goto oom;
        b->prev = s->blocks;
        b->used = 0;
        s->blocks = b;
    }
    kp_node *n = &s->blocks->nodes[s->blocks->used++];
    *n = proto;
    n->id = (uint32_t)s->count++;
    n->text_len = kp__node_text_len(n);
    slot = (size_t)(n->hash & (s->nbuckets - 1));
    n->next = s->buckets[slot];
    s->buckets[slot] = n;
    return n;
oom:
    *st = kp__fail(ctx, KP_ERR_OOM, "out of memory while building the formula");
    return NULL;
}

static kp_node proto_of(kp_op op, int dim) {
    kp_node p;
    memset(&p, 0, sizeof p);
    p.op = op;
    p.dim = dim;
    return p;
}

static const kp_node *shape_error(kp_context *ctx, kp_status *st, const char *fmt, int a, int b) {
    *st = kp__fail(ctx, KP_ERR_SHAPE, fmt, a, b);
    return NULL;
}

int kp__is_const(const kp_node *n, double value) { return n->op == KP_OP_CONST && n->value == value; }

const kp_node *kp__var(kp_context *ctx, kp_var_category cat, int pos, int dim, kp_status *st) {
    if (dim < 1 || dim > KP_MAX_FORMULA_DIM)
        return shape_error(ctx, st, "variable dimension must be in [1, %d], got %d", KP_MAX_FORMULA_DIM, dim);
    kp_node p = proto_of(KP_OP_VAR, dim);
    p.ip[0] = (int)cat;
    p.ip[1] = pos;
    return intern(ctx, p, st);
}

const kp_node *kp__const(kp_context *ctx, double value, int dim, kp_status *st) {
    if (dim < 1 || dim > KP_MAX_FORMULA_DIM)
        return shape_error(ctx, st, "dimension must be in [1, %d], got %d", KP_MAX_FORMULA_DIM, dim);
    kp_node p = proto_of(KP_OP_CONST, dim);
    p.value = value == 0 ? 0.0 : value; /* one zero: -0.0 folds to +0.0 */
    return intern(ctx, p, st);
}

const kp_node *kp__index(kp_context *ctx, kp_var_category cat, kp_status *st) {
    kp_node p = proto_of(KP_OP_INDEX, 1);
    p.ip[0] = (int)cat;
    return intern(ctx, p, st);
}

static const kp_node *make(kp_context *ctx, kp_op op, int dim, const kp_node *a, const kp_node *b,
                           const kp_node *c, int ip0, kp_status *st) {
    kp_node p = proto_of(op, dim);
    p.child[0] = a;
    p.child[1] = b;
    p.child[2] = c;
    p.nchild = c ? 3 : b ? 2 : a ? 1 : 0;
    p.ip[0] = ip0;
    return intern(ctx, p, st);
}

/* Folds an elementwise op whose operands are all constants. */
static const kp_node *fold(kp_context *ctx, kp_op op, int dim, const kp_node *a, const kp_node *b,
                           const kp_node *c, int ip, kp_status *st) {
    double v = fold_scalar(op, a->value, b ? b->value : 0, c ? c->value : 0, ip);
    return kp__const(ctx, v, dim, st);
}

/* The outcome of a canonical rewrite (canon.h): the node, or NULL with the status. */
static const kp_node *canon_result(const kp_node *c, kp_status cst, kp_status *st) {
    if (cst != KP_OK) {
        *st = cst;
        return NULL;
    }
    return c;
}

const kp_node *kp__unary(kp_context *ctx, kp_op op, const kp_node *a, kp_status *st) {
    if (!a) return NULL;
    switch ((int)op) { /* selective: the other ops take the general path */
    case KP_OP_SUM:
    case KP_OP_MAXC:
    case KP_OP_MINC:
    case KP_OP_ARGMAXC:
    case KP_OP_ARGMINC:
        if (a->dim == 1) {
            if (op == KP_OP_ARGMAXC || op == KP_OP_ARGMINC) return kp__const(ctx, 0, 1, st);
            return a;
        }
        if (op == KP_OP_SUM) {
            kp_status cst = KP_OK;
            const kp_node *c = kp__canon_sum(ctx, a, &cst);
            if (c || cst != KP_OK) return canon_result(c, cst, st);
        }
        return make(ctx, op, 1, a, NULL, NULL, 0, st);
    case KP_OP_BCAST:
        return make(ctx, op, a->dim, a, NULL, NULL, 0, st);
    default:
        break;
    }
    if (a->op == KP_OP_CONST) return fold(ctx, op, a->dim, a, NULL, NULL, 0, st);
    if (op == KP_OP_NEG && a->op == KP_OP_NEG) return a->child[0];
    if (op == KP_OP_NEG) {
        kp_status cst = KP_OK;
        const kp_node *c = kp__canon_neg(ctx, a, &cst);
        if (c || cst != KP_OK) return canon_result(c, cst, st);
    }
    if (op == KP_OP_INV && a->op == KP_OP_INV) return a->child[0];
    return make(ctx, op, a->dim, a, NULL, NULL, 0, st);
}

static int is_commutative(kp_op op) {
    return op == KP_OP_ADD || op == KP_OP_MUL || op == KP_OP_EQ || op == KP_OP_NE;
}

/* Result dimension of a broadcasting elementwise op, or -1. */
static int broadcast_dim(int a, int b) { return a == b ? a : a == 1 ? b : b == 1 ? a : -1; }

const kp_node *kp__binary(kp_context *ctx, kp_op op, const kp_node *a, const kp_node *b, kp_status *st) {
    if (!a || !b) return NULL;
    int dim;
    switch ((int)op) { /* selective: the other ops take the general path */
    case KP_OP_DOT:
    case KP_OP_SQDIST:
        if (a->dim != b->dim) {
            *st = kp__fail(ctx, KP_ERR_SHAPE, "%s needs operands of equal dimension, got %d and %d",
                           op == KP_OP_DOT ? "scalar product (f|g)" : "SqDist", a->dim, b->dim);
            return NULL;
        }
        if (op == KP_OP_SQDIST && a == b) return kp__const(ctx, 0, 1, st);
        if (op == KP_OP_DOT) {
            kp_status cst = KP_OK;
            const kp_node *c = kp__canon_dot(ctx, a, b, &cst);
            if (c || cst != KP_OK) return canon_result(c, cst, st);
        }
        if (kp__node_cmp(a, b) > 0) { const kp_node *t = a; a = b; b = t; }
        return make(ctx, op, 1, a, b, NULL, 0, st);
    case KP_OP_CONCAT:
        if (a->dim + b->dim > KP_MAX_FORMULA_DIM)
            return shape_error(ctx, st, "Concat result too large (%d + %d)", a->dim, b->dim);
        return make(ctx, op, a->dim + b->dim, a, b, NULL, 0, st);
    case KP_OP_MATVEC:
        if (a->dim % b->dim != 0)
            return shape_error(ctx, st, "MatVecMult: matrix dimension %d is not a multiple of vector dimension %d",
                               a->dim, b->dim);
        return make(ctx, op, a->dim / b->dim, a, b, NULL, 0, st);
    case KP_OP_VECMAT:
        if (b->dim % a->dim != 0)
            return shape_error(ctx, st, "VecMatMult: vector dimension %d does not divide matrix dimension %d",
                               a->dim, b->dim);
        return make(ctx, op, b->dim / a->dim, a, b, NULL, 0, st);
    case KP_OP_TENSORPROD:
        if ((int64_t)a->dim * b->dim > KP_MAX_FORMULA_DIM)
            return shape_error(ctx, st, "TensorProd result too large (%d x %d)", a->dim, b->dim);
        return make(ctx, op, a->dim * b->dim, a, b, NULL, 0, st);
    default:
        break;
    }
    dim = broadcast_dim(a->dim, b->dim);
    if (dim < 0)
        return shape_error(ctx, st, "operands of dimensions %d and %d do not match (equal, or one of them 1)",
                           a->dim, b->dim);
    if (a->op == KP_OP_CONST && b->op == KP_OP_CONST) return fold(ctx, op, dim, a, b, NULL, 0, st);
    /* Neutral and absorbing elements; only when the kept operand already has
     * the result's dimension (else the broadcast would be lost). */
    switch ((int)op) { /* selective: the other ops take the general path */
    case KP_OP_ADD:
        if (kp__is_const(a, 0) && b->dim == dim) return b;
        if (kp__is_const(b, 0) && a->dim == dim) return a;
        if (a == b) return kp__binary(ctx, KP_OP_MUL, kp__const(ctx, 2, 1, st), a, st);
        if (b->op == KP_OP_NEG) return kp__binary(ctx, KP_OP_SUB, a, b->child[0], st);
        /* and (-a) + b = b - a, or the operand order below could print b + (-a) */
        if (a->op == KP_OP_NEG) return kp__binary(ctx, KP_OP_SUB, b, a->child[0], st);
        break;
    case KP_OP_SUB:
        if (kp__is_const(b, 0) && a->dim == dim) return a;
        if (kp__is_const(a, 0) && b->dim == dim) return kp__unary(ctx, KP_OP_NEG, b, st);
        if (a == b) return kp__const(ctx, 0, dim, st);
        if (b->op == KP_OP_NEG) return kp__binary(ctx, KP_OP_ADD, a, b->child[0], st);
        break;
    case KP_OP_MUL:
        if (kp__is_const(a, 0) || kp__is_const(b, 0)) return kp__const(ctx, 0, dim, st);
        if (kp__is_const(a, 1) && b->dim == dim) return b;
        if (kp__is_const(b, 1) && a->dim == dim) return a;
        if (kp__is_const(a, -1) && b->dim == dim) return kp__unary(ctx, KP_OP_NEG, b, st);
        if (kp__is_const(b, -1) && a->dim == dim) return kp__unary(ctx, KP_OP_NEG, a, st);
        if (a == b) return kp__unary(ctx, KP_OP_SQUARE, a, st);
        /* Constants to the left, and fold c1*(c2*x) = (c1*c2)*x. */
        if (b->op == KP_OP_CONST) { const kp_node *t = a; a = b; b = t; }
        {
            kp_status cst = KP_OK;
            const kp_node *c = kp__canon_mul(ctx, a, b, &cst);
            if (c || cst != KP_OK) return canon_result(c, cst, st);
        }
        if (a->op == KP_OP_CONST && b->op == KP_OP_MUL && b->child[0]->op == KP_OP_CONST &&
            a->dim == 1 && b->child[0]->dim == 1)
            return kp__binary(ctx, KP_OP_MUL, kp__const(ctx, a->value * b->child[0]->value, 1, st),
                              b->child[1], st);
        break;
    case KP_OP_DIV:
        if (kp__is_const(a, 0) && !kp__is_const(b, 0)) return kp__const(ctx, 0, dim, st);
        if (kp__is_const(b, 1) && a->dim == dim) return a;
        {
            kp_status cst = KP_OK;
            const kp_node *c = kp__canon_div(ctx, a, b, &cst);
            if (c || cst != KP_OK) return canon_result(c, cst, st);
        }
        break;
    default:
        break;
    }
    if (is_commutative(op) && kp__node_cmp(a, b) > 0 && a->op != KP_OP_CONST) {
        const kp_node *t = a;
        a = b;
        b = t;
    }
    return make(ctx, op, dim, a, b, NULL, 0, st);
}

const kp_node *kp__ternary(kp_context *ctx, kp_op op, const kp_node *a, const kp_node *b,
                           const kp_node *c, kp_status *st) {
    if (!a || !b || !c) return NULL;
    int dim = broadcast_dim(broadcast_dim(a->dim, b->dim), c->dim);
    if (broadcast_dim(a->dim, b->dim) < 0 || dim < 0)
        return shape_error(ctx, st, "operands of dimensions %d and %d do not match (equal, or one of them 1)",
                           broadcast_dim(a->dim, b->dim) < 0 ? a->dim : b->dim, c->dim);
    if (a->op == KP_OP_CONST && b->op == KP_OP_CONST && c->op == KP_OP_CONST)
        return fold(ctx, op, dim, a, b, c, 0, st);
    if (op == KP_OP_IFELSE && a->op == KP_OP_CONST && a->dim == 1) {
        const kp_node *pick = a->value >= 0 ? b : c;
        if (pick->dim == dim) return pick;
    }
    return make(ctx, op, dim, a, b, c, 0, st);
}

const kp_node *kp__pow(kp_context *ctx, const kp_node *a, int n, kp_status *st) {
    if (!a) return NULL;
    if (n == 0) return kp__const(ctx, 1, a->dim, st);
    if (n == 1) return a;
    if (n == 2) return kp__unary(ctx, KP_OP_SQUARE, a, st);
    if (n == -1) return kp__unary(ctx, KP_OP_INV, a, st);
    if (a->op == KP_OP_CONST) return fold(ctx, KP_OP_POW, a->dim, a, NULL, NULL, n, st);
    return make(ctx, KP_OP_POW, a->dim, a, NULL, NULL, n, st);
}

const kp_node *kp__round(kp_context *ctx, const kp_node *a, int decimals, kp_status *st) {
    if (!a) return NULL;
    if (decimals < 0 || decimals > 15)
        {
            *st = kp__fail(ctx, KP_ERR_SHAPE, "Round: number of decimals must be in [0, 15], got %d", decimals);
            return NULL;
        }
    if (a->op == KP_OP_CONST) return fold(ctx, KP_OP_ROUND, a->dim, a, NULL, NULL, decimals, st);
    return make(ctx, KP_OP_ROUND, a->dim, a, NULL, NULL, decimals, st);
}

const kp_node *kp__extract(kp_context *ctx, const kp_node *a, int first, int count, kp_status *st) {
    if (!a) return NULL;
    if (first < 0 || count < 1 || first > a->dim - count) {
        *st = kp__fail(ctx, KP_ERR_SHAPE, "components %d..%d out of range for a value of dimension %d",
                       first, first + count - 1, a->dim);
        return NULL;
    }
    if (first == 0 && count == a->dim) return a;
    if (a->op == KP_OP_CONST) return kp__const(ctx, a->value, count, st);
    if (a->op == KP_OP_EXTRACT) return kp__extract(ctx, a->child[0], a->ip[0] + first, count, st);
    if (a->op == KP_OP_CONCAT) { /* components within one operand: that operand's */
        int d0 = a->child[0]->dim;
        if (first + count <= d0) return kp__extract(ctx, a->child[0], first, count, st);
        if (first >= d0) return kp__extract(ctx, a->child[1], first - d0, count, st);
    }
    return make(ctx, KP_OP_EXTRACT, count, a, NULL, NULL, first, st);
}

const kp_node *kp__onehot(kp_context *ctx, const kp_node *a, int classes, kp_status *st) {
    if (!a) return NULL;
    if (a->dim != 1) {
        *st = kp__fail(ctx, KP_ERR_SHAPE, "OneHot needs a scalar (dimension 1) argument, got dimension %d", a->dim);
        return NULL;
    }
    if (classes < 1 || classes > KP_MAX_FORMULA_DIM)
        return shape_error(ctx, st, "OneHot: number of classes must be in [1, %d], got %d", KP_MAX_FORMULA_DIM,
                           classes);
    return make(ctx, KP_OP_ONEHOT, classes, a, NULL, NULL, 0, st);
}

/* Marks n and everything below it in a bitmap indexed by node id; returns the
 * number of nodes newly marked. Ids are unique in the store, so one bit each
 * makes the walk linear in the DAG's size. */
static size_t mark_rec(uint64_t *seen, const kp_node *n) {
    uint64_t bit = (uint64_t)1 << (n->id & 63);
    if (seen[n->id >> 6] & bit) return 0;
    seen[n->id >> 6] |= bit;
    size_t c = 1;
    for (int k = 0; k < n->nchild; k++) c += mark_rec(seen, n->child[k]);
    return c;
}

kp_status kp__node_count(kp_context *ctx, const kp_node *const *roots, int nroots, size_t *count) {
    *count = 0;
    uint32_t top = 0; /* children have smaller ids than their parents */
    for (int r = 0; r < nroots; r++)
        if (roots[r] && roots[r]->id > top) top = roots[r]->id;
    uint64_t *seen = kp__calloc(ctx, (size_t)(top >> 6) + 1, sizeof *seen);
    if (!seen) return KP_ERR_OOM;
    for (int r = 0; r < nroots; r++)
        if (roots[r]) *count += mark_rec(seen, roots[r]);
    kp__free(ctx, seen);
    return KP_OK;
}
