/* KeOps' complex operations on interleaved (real, imaginary) components,
 * written with the formula's own real operations (complex.c says how). */
#ifndef KP_FORMULA_COMPLEX_H
#define KP_FORMULA_COMPLEX_H

#include <stddef.h>

#include "formula/node.h"

typedef enum kp_complex_op {
    KP_CX_REAL,        /* ComplexReal(z): real parts, dim D */
    KP_CX_IMAG,        /* ComplexImag(z) */
    KP_CX_REAL2COMPLEX,/* Real2Complex(x): x + 0i, dim 2 D */
    KP_CX_IMAG2COMPLEX,/* Imag2Complex(x): 0 + x i */
    KP_CX_CONJ,        /* Conj(z) */
    KP_CX_ABS,         /* ComplexAbs(z): |z_k|, dim D */
    KP_CX_SQUAREABS,   /* ComplexSquareAbs(z): |z_k|^2 */
    KP_CX_ANGLE,       /* ComplexAngle(z): atan2(im, re) */
    KP_CX_SUM,         /* ComplexSum(z): sum of the D numbers, dim 2 */
    KP_CX_SUMT,        /* ComplexSumT(z, D): one number repeated D times */
    KP_CX_MULT,        /* ComplexMult(z, w) */
    KP_CX_SCAL,        /* ComplexScal(z, w): z one number */
    KP_CX_REALSCAL,    /* ComplexRealScal(x, w): x real, dim 1 or D */
    KP_CX_DIVIDE,      /* ComplexDivide(z, w) */
    KP_CX_ADD,         /* ComplexAdd(z, w) */
    KP_CX_SUBTRACT,    /* ComplexSubtract(z, w) */
    KP_CX_EXP,         /* ComplexExp(z) */
    KP_CX_EXP1J        /* ComplexExp1j(x): cos x + i sin x, x real */
} kp_complex_op;

/* The operation on a (and b for binary ones; n for ComplexSumT). A shape
 * error (odd dimension, dimensions that do not match) returns NULL with the
 * reason in why and *st untouched; other failures NULL with *st set. */
const kp_node *kp__complex(kp_context *ctx, kp_complex_op op, const kp_node *a, const kp_node *b, int n, char *why,
                           size_t why_size, kp_status *st);

/* The operation of a KeOps name ("ComplexMult", name[0 .. len)) and its number
 * of formula arguments (ComplexSumT takes an integer after its one); 0 when
 * the name is none. */
int kp__complex_lookup(const char *name, int len, kp_complex_op *op, int *nargs);

#endif
