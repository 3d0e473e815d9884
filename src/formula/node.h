/*
 * node.h — the formula DAG: immutable, hash-consed nodes.
 *
 * Every node is created through kp__node_make (or a constructor below), which
 * simplifies (constant folding, neutral elements, x+x = 2*x, ...) and then
 * interns the node: two structurally equal subexpressions are the same pointer.
 * So equality is pointer equality and derived formulas stay small. Nodes live
 * in the context's store until the context is freed.
 */
#ifndef KP_FORMULA_NODE_H
#define KP_FORMULA_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "kp.h"

typedef enum kp_op {
#define X(e, name, arity, cls) e,
#include "formula/ops.def"
#undef X
    KP_OP_COUNT_
} kp_op;

/* Dependency bits: which kinds of variable a node reads. */
enum { KP_DEP_I = 1, KP_DEP_J = 2, KP_DEP_P = 4 };

typedef struct kp_node kp_node;
struct kp_node {
    kp_op op;
    int dim;               /* number of components of the value */
    int nchild;
    const kp_node *child[3];
    int ip[2];             /* integer parameters (see ops.def) */
    double value;          /* KP_OP_CONST */
    unsigned deps;         /* KP_DEP_* bits */
    uint32_t id;           /* creation order: children have smaller ids */
    uint32_t height;       /* longest path down to a leaf (leaves: 0): parents are higher */
    uint64_t hash;
    size_t text_len;       /* length of the printed text (formula/print.h; saturates at SIZE_MAX) */
    kp_node *next;         /* hash bucket chain */
};

typedef struct kp_node_store kp_node_store;
kp_node_store *kp__node_store_new(kp_context *ctx);
void kp__node_store_free(kp_node_store *store);
size_t kp__node_store_size(const kp_node_store *store);

const char *kp__op_name(kp_op op);

/* Canonical order of two nodes (<0, 0, >0), a function of their structure only,
 * never of the order the context created them in: lower nodes first, then op,
 * integer parameters (variable category, position), dimension, constant
 * value, structural hash; the creation id only on a hash collision. Used for
 * the operands of commutative ops and for the order of reverse accumulation,
 * so that a formula's DAG, gradients, printed text and generated kernel source
 * do not depend on what the context built before (the ahead-of-time CUDA
 * kernels are looked up by that source). */
int kp__node_cmp(const kp_node *a, const kp_node *b);

/* Constructors. On failure they return NULL and leave a message (without a
 * position) in ctx with the status in *status (KP_ERR_SHAPE or KP_ERR_OOM). */
const kp_node *kp__var(kp_context *ctx, kp_var_category cat, int pos, int dim, kp_status *st);
const kp_node *kp__const(kp_context *ctx, double value, int dim, kp_status *st);
/* The index of the current point of category cat (KP_VAR_I or KP_VAR_J), as a number. */
const kp_node *kp__index(kp_context *ctx, kp_var_category cat, kp_status *st);
const kp_node *kp__unary(kp_context *ctx, kp_op op, const kp_node *a, kp_status *st);
const kp_node *kp__binary(kp_context *ctx, kp_op op, const kp_node *a, const kp_node *b, kp_status *st);
const kp_node *kp__ternary(kp_context *ctx, kp_op op, const kp_node *a, const kp_node *b,
                           const kp_node *c, kp_status *st);
const kp_node *kp__pow(kp_context *ctx, const kp_node *a, int n, kp_status *st);
const kp_node *kp__round(kp_context *ctx, const kp_node *a, int decimals, kp_status *st);
const kp_node *kp__extract(kp_context *ctx, const kp_node *a, int first, int count, kp_status *st);
const kp_node *kp__onehot(kp_context *ctx, const kp_node *a, int classes, kp_status *st);

int kp__is_const(const kp_node *n, double value);

/* Counts the distinct nodes reachable from the given (possibly NULL) roots into
 * *count, with a temporary bitmap from ctx's allocator: KP_ERR_OOM, without a
 * message (the caller may not own ctx), if it cannot be had. */
kp_status kp__node_count(kp_context *ctx, const kp_node *const *roots, int nroots, size_t *count);

/* Is op evaluated component by component (class EW1, EW2, EW3)? */
int kp__op_is_elementwise(kp_op op);

#endif
