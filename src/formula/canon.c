/* canon.c — canonical forms of sums of components and of divisions (see canon.h). */
#include "formula/canon.h"

#include <math.h>

/* Sum(Square(a - b)) = SqDist(a, b); Sum(Square(a)) = (a|a); Sum(a * b) = (a|b).
 * The vector ops add the same terms in the same component order; they may
 * contract a product and the running sum into one fused multiply-add, which
 * rounds once where the op-by-op form rounds twice (docs/formulas.md). */
const kp_node *kp__canon_sum(kp_context *ctx, const kp_node *a, kp_status *st) {
    if (a->op == KP_OP_SQUARE) return kp__binary(ctx, KP_OP_DOT, a->child[0], a->child[0], st);
    if (a->op == KP_OP_MUL && a->child[0]->dim == a->child[1]->dim)
        return kp__binary(ctx, KP_OP_DOT, a->child[0], a->child[1], st);
    return NULL;
}

/* (a - b | a - b) = SqDist(a, b) (Norm2(x - y) is Sqrt of it): the difference
 * is rounded the same way whether a tile holds it or a register. */
const kp_node *kp__canon_dot(kp_context *ctx, const kp_node *a, const kp_node *b, kp_status *st) {
    if (a == b && a->op == KP_OP_SUB && a->child[0]->dim == a->child[1]->dim)
        return kp__binary(ctx, KP_OP_SQDIST, a->child[0], a->child[1], st);
    return NULL;
}

/* One place for a constant's sign: -(c * a) = (-c) * a and c * (-a) = (-c) * a,
 * so that -(16 * D), (-D) * 16 and D * -16 are one node, Mult(-16, D). Exact. */
const kp_node *kp__canon_neg(kp_context *ctx, const kp_node *a, kp_status *st) {
    if (a->op == KP_OP_MUL && a->child[0]->op == KP_OP_CONST && a->child[0]->dim == 1)
        return kp__binary(ctx, KP_OP_MUL, kp__const(ctx, -a->child[0]->value, 1, st), a->child[1], st);
    return NULL;
}

const kp_node *kp__canon_mul(kp_context *ctx, const kp_node *a, const kp_node *b, kp_status *st) {
    if (a->op == KP_OP_CONST && a->dim == 1 && b->op == KP_OP_NEG)
        return kp__binary(ctx, KP_OP_MUL, kp__const(ctx, -a->value, 1, st), b->child[0], st);
    return NULL;
}

/* The inverse of c if c is +-2^k with 2^-k a normal float32, else 0: then
 * x / c and x * (1/c) are the same correctly rounded number in float32 and
 * float64 (the plan's dtype is not known here), for every x, NaN and
 * infinities included. Any other divisor's inverse is rounded, and x * (1/c)
 * may differ from x / c in the last place: such divisions are kept. */
static double exact_inverse(double c) {
    int e;
    double m = frexp(c, &e); /* c = m 2^e, |m| in [0.5, 1) */
    if (fabs(m) != 0.5) return 0;
    int k = e - 1; /* c = +-2^k */
    if (k < -126 || k > 126) return 0;
    return 1.0 / c;
}

/* a / c (c a power of two) = (1/c) * a; 1 / b = Inv(b); -a / b = a / -b = -(a / b).
 * All exact: sign changes and scaling by an exact inverse round nothing new. */
const kp_node *kp__canon_div(kp_context *ctx, const kp_node *a, const kp_node *b, kp_status *st) {
    if (b->op == KP_OP_CONST) {
        double inv = exact_inverse(b->value);
        if (inv != 0) return kp__binary(ctx, KP_OP_MUL, kp__const(ctx, inv, b->dim, st), a, st);
        return NULL;
    }
    if (kp__is_const(a, 1) && (a->dim == 1 || a->dim == b->dim)) return kp__unary(ctx, KP_OP_INV, b, st);
    if (a->op == KP_OP_NEG && b->op == KP_OP_NEG) return kp__binary(ctx, KP_OP_DIV, a->child[0], b->child[0], st);
    if (a->op == KP_OP_NEG || b->op == KP_OP_NEG) {
        const kp_node *q = kp__binary(ctx, KP_OP_DIV, a->op == KP_OP_NEG ? a->child[0] : a,
                                      b->op == KP_OP_NEG ? b->child[0] : b, st);
        return kp__unary(ctx, KP_OP_NEG, q, st);
    }
    return NULL;
}
