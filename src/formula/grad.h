/* grad.h — symbolic derivatives of formula DAGs (see grad.c). */
#ifndef KP_FORMULA_GRAD_H
#define KP_FORMULA_GRAD_H

#include "formula/node.h"

/* sum_c e_c dF_c/dv: dimension of v. v must be a variable, dim e == dim F. */
const kp_node *kp__grad(kp_context *ctx, const kp_node *f, const kp_node *v, const kp_node *e, kp_status *st);

/* dF/dv . u (Jacobian-vector product): dimension of F; dim u == dim v. */
const kp_node *kp__diff(kp_context *ctx, const kp_node *f, const kp_node *v, const kp_node *u, kp_status *st);
/* sum_d dF_d/dv_d, for dim F == dim v. */
const kp_node *kp__divergence(kp_context *ctx, const kp_node *f, const kp_node *v, kp_status *st);
/* sum_d d^2F/dv_d^2, for a scalar F. */
const kp_node *kp__laplacian(kp_context *ctx, const kp_node *f, const kp_node *v, kp_status *st);

#endif
