/*
 * canon.h — canonical forms: equal math, equal DAG.
 *
 * The node constructors (node.c) call these after their own folding, so that
 * the spellings users write reach the ops the engines evaluate in one pass:
 * Sum(Square(a - b)) is SqDist(a, b), Sum(a * b) is (a|b), and so on
 * (docs/formulas.md, "Canonical forms", lists every rule with its rounding).
 * Each returns the rewritten node, or NULL with *st untouched when no rule
 * applies; on failure NULL with *st set (message in ctx).
 */
#ifndef KP_FORMULA_CANON_H
#define KP_FORMULA_CANON_H

#include "formula/node.h"

/* Sum over the components of a (a->dim > 1). */
const kp_node *kp__canon_sum(kp_context *ctx, const kp_node *a, kp_status *st);
/* (a|b), a and b of equal dimension. */
const kp_node *kp__canon_dot(kp_context *ctx, const kp_node *a, const kp_node *b, kp_status *st);
/* -a, a not a constant. */
const kp_node *kp__canon_neg(kp_context *ctx, const kp_node *a, kp_status *st);
/* a * b, with a constant a moved to the left already. */
const kp_node *kp__canon_mul(kp_context *ctx, const kp_node *a, const kp_node *b, kp_status *st);
/* a / b, for operands that are not both constants. */
const kp_node *kp__canon_div(kp_context *ctx, const kp_node *a, const kp_node *b, kp_status *st);

#endif
