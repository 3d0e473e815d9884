/* KeOps' TensorDot and Kron, written with the formula's own operations
 * (tensordot.c says how). Shape errors return NULL with the reason in why. */
#ifndef KP_FORMULA_TENSORDOT_H
#define KP_FORMULA_TENSORDOT_H

#include <stddef.h>

#include "formula/node.h"

#define KP_TENSOR_MAX_AXES 8

/* A tuple of a TensorDot / Kron call: a shape, a list of axes or a permutation. */
typedef struct kp_tensor_shape {
    int n;
    int dim[KP_TENSOR_MAX_AXES];
} kp_tensor_shape;

const kp_node *kp__tensordot(kp_context *ctx, const kp_node *a, const kp_node *b, const kp_tensor_shape *sa,
                             const kp_tensor_shape *sb, const kp_tensor_shape *ca, const kp_tensor_shape *cb,
                             const kp_tensor_shape *perm, char *why, size_t why_size, kp_status *st);
const kp_node *kp__kron(kp_context *ctx, const kp_node *a, const kp_node *b, const kp_tensor_shape *sa,
                        const kp_tensor_shape *sb, char *why, size_t why_size, kp_status *st);

#endif
