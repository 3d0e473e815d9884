/*
 * KeOps' complex operations. A formula value of dimension 2 D holds D complex
 * numbers as interleaved (real, imaginary) pairs, which is how kp.h's complex
 * dtypes are read. Each operation is written component by component with the
 * real operations of ops.def (Elem, +, *, Exp, Cos, Atan2, ..., Concat), so
 * every engine runs it, and Grad / Diff differentiate it as a function of the
 * real and imaginary parts (the real-linear derivative KeOps uses: for a real
 * output L, the gradient in z is dL/dRe z + i dL/dIm z) with no rule of its own.
 * Meant for the few complex components of kernel formulas: the node count
 * grows like D.
 */
#include "formula/complex.h"

#include <stdio.h>
#include <string.h>

enum { MAX_COMPLEX = 2048 }; /* components a complex operation writes out one by one */

typedef struct cx {
    kp_context *ctx;
    kp_status *st;
} cx;

static const kp_node *el(cx *c, const kp_node *a, int k) { return a ? kp__extract(c->ctx, a, k, 1, c->st) : NULL; }
static const kp_node *bin(cx *c, kp_op op, const kp_node *a, const kp_node *b) {
    return a && b ? kp__binary(c->ctx, op, a, b, c->st) : NULL;
}
static const kp_node *un(cx *c, kp_op op, const kp_node *a) { return a ? kp__unary(c->ctx, op, a, c->st) : NULL; }
static const kp_node *cat(cx *c, const kp_node *out, const kp_node *t) {
    if (!t) return NULL;
    return out ? bin(c, KP_OP_CONCAT, out, t) : t;
}

/* Real and imaginary parts of number k of z (a single number broadcasts). */
static const kp_node *re(cx *c, const kp_node *z, int k) { return el(c, z, z->dim == 2 ? 0 : 2 * k); }
static const kp_node *im(cx *c, const kp_node *z, int k) { return el(c, z, z->dim == 2 ? 1 : 2 * k + 1); }

/* (a + b i)(p + q i) and (a + b i) / (p + q i), as (real, imaginary) pairs. */
static const kp_node *mult(cx *c, const kp_node *a, const kp_node *b, const kp_node *p, const kp_node *q) {
    const kp_node *r = bin(c, KP_OP_SUB, bin(c, KP_OP_MUL, a, p), bin(c, KP_OP_MUL, b, q));
    const kp_node *i = bin(c, KP_OP_ADD, bin(c, KP_OP_MUL, a, q), bin(c, KP_OP_MUL, b, p));
    return bin(c, KP_OP_CONCAT, r, i);
}

static const kp_node *divide(cx *c, const kp_node *a, const kp_node *b, const kp_node *p, const kp_node *q) {
    const kp_node *den = bin(c, KP_OP_ADD, un(c, KP_OP_SQUARE, p), un(c, KP_OP_SQUARE, q));
    const kp_node *r = bin(c, KP_OP_ADD, bin(c, KP_OP_MUL, a, p), bin(c, KP_OP_MUL, b, q));
    const kp_node *i = bin(c, KP_OP_SUB, bin(c, KP_OP_MUL, b, p), bin(c, KP_OP_MUL, a, q));
    return bin(c, KP_OP_CONCAT, bin(c, KP_OP_DIV, r, den), bin(c, KP_OP_DIV, i, den));
}

/* Number k of a unary operation on z (complex) or x (real). */
static const kp_node *unary_at(cx *c, kp_complex_op op, const kp_node *a, int k) {
    if (op == KP_CX_REAL) return re(c, a, k);
    if (op == KP_CX_IMAG) return im(c, a, k);
    if (op == KP_CX_REAL2COMPLEX) return bin(c, KP_OP_CONCAT, el(c, a, k), kp__const(c->ctx, 0, 1, c->st));
    if (op == KP_CX_IMAG2COMPLEX) return bin(c, KP_OP_CONCAT, kp__const(c->ctx, 0, 1, c->st), el(c, a, k));
    if (op == KP_CX_CONJ) return bin(c, KP_OP_CONCAT, re(c, a, k), un(c, KP_OP_NEG, im(c, a, k)));
    if (op == KP_CX_SQUAREABS)
        return bin(c, KP_OP_ADD, un(c, KP_OP_SQUARE, re(c, a, k)), un(c, KP_OP_SQUARE, im(c, a, k)));
    if (op == KP_CX_ABS) return un(c, KP_OP_SQRT, unary_at(c, KP_CX_SQUAREABS, a, k));
    if (op == KP_CX_ANGLE) return bin(c, KP_OP_ATAN2, im(c, a, k), re(c, a, k));
    if (op == KP_CX_EXP) {
        const kp_node *e = un(c, KP_OP_EXP, re(c, a, k)), *b = im(c, a, k);
        return bin(c, KP_OP_CONCAT, bin(c, KP_OP_MUL, e, un(c, KP_OP_COS, b)), bin(c, KP_OP_MUL, e, un(c, KP_OP_SIN, b)));
    }
    /* KP_CX_EXP1J */
    return bin(c, KP_OP_CONCAT, un(c, KP_OP_COS, el(c, a, k)), un(c, KP_OP_SIN, el(c, a, k)));
}

/* Number k of a binary operation (the dimension checks done). */
static const kp_node *binary_at(cx *c, kp_complex_op op, const kp_node *a, const kp_node *b, int k) {
    if (op == KP_CX_MULT || op == KP_CX_SCAL) return mult(c, re(c, a, k), im(c, a, k), re(c, b, k), im(c, b, k));
    if (op == KP_CX_DIVIDE) return divide(c, re(c, a, k), im(c, a, k), re(c, b, k), im(c, b, k));
    if (op == KP_CX_REALSCAL) {
        const kp_node *x = el(c, a, a->dim == 1 ? 0 : k);
        return bin(c, KP_OP_CONCAT, bin(c, KP_OP_MUL, x, re(c, b, k)), bin(c, KP_OP_MUL, x, im(c, b, k)));
    }
    /* KP_CX_ADD, KP_CX_SUBTRACT */
    kp_op o = op == KP_CX_ADD ? KP_OP_ADD : KP_OP_SUB;
    return bin(c, KP_OP_CONCAT, bin(c, o, re(c, a, k), re(c, b, k)), bin(c, o, im(c, a, k), im(c, b, k)));
}

static int is_binary(kp_complex_op op) {
    return op == KP_CX_MULT || op == KP_CX_SCAL || op == KP_CX_REALSCAL || op == KP_CX_DIVIDE || op == KP_CX_ADD ||
           op == KP_CX_SUBTRACT;
}

/* Input of a real argument: Real2Complex, Imag2Complex, Exp1j. */
static int takes_real(kp_complex_op op) {
    return op == KP_CX_REAL2COMPLEX || op == KP_CX_IMAG2COMPLEX || op == KP_CX_EXP1J;
}

/* How many numbers the result has, or -1 (why set) when the shapes do not fit. */
static int count_of(kp_complex_op op, const kp_node *a, const kp_node *b, int n, char *why, size_t ws) {
    if (!takes_real(op) && op != KP_CX_REALSCAL && a->dim % 2)
        return snprintf(why, ws, "a complex argument has an even dimension (interleaved real and imaginary parts), "
                                 "got %d", a->dim), -1;
    if (is_binary(op) && b->dim % 2)
        return snprintf(why, ws, "a complex argument has an even dimension, got %d", b->dim), -1;
    if (op == KP_CX_SUMT) {
        if (a->dim != 2) return snprintf(why, ws, "the first argument is one complex number (dimension 2), got %d", a->dim), -1;
        if (n < 1) return snprintf(why, ws, "the number of copies must be >= 1, got %d", n), -1;
        return n;
    }
    if (op == KP_CX_SUM) return 1;
    if (takes_real(op)) return a->dim;
    if (!is_binary(op)) return a->dim / 2;
    if (op == KP_CX_REALSCAL) {
        if (a->dim != 1 && 2 * a->dim != b->dim)
            return snprintf(why, ws, "the real factor has dimension %d, expected 1 or %d", a->dim, b->dim / 2), -1;
        return b->dim / 2;
    }
    if (op == KP_CX_SCAL && a->dim != 2)
        return snprintf(why, ws, "the first argument is one complex number (dimension 2), got %d", a->dim), -1;
    if (a->dim != b->dim && a->dim != 2 && b->dim != 2)
        return snprintf(why, ws, "complex arguments of dimensions %d and %d (expected equal, or one of them 2)",
                        a->dim, b->dim), -1;
    return (a->dim > b->dim ? a->dim : b->dim) / 2;
}

const kp_node *kp__complex(kp_context *ctx, kp_complex_op op, const kp_node *a, const kp_node *b, int n, char *why,
                           size_t why_size, kp_status *st) {
    int count = count_of(op, a, b, n, why, why_size);
    if (count < 0) return NULL;
    if (count > MAX_COMPLEX) {
        snprintf(why, why_size, "%d numbers: complex operations are written out number by number, at most %d",
                 count, MAX_COMPLEX);
        return NULL;
    }
    cx c = {ctx, st};
    const kp_node *out = NULL;
    if (op == KP_CX_SUM) {
        const kp_node *r = NULL, *i = NULL;
        for (int k = 0; k < a->dim / 2; k++) {
            r = r ? bin(&c, KP_OP_ADD, r, re(&c, a, k)) : re(&c, a, k);
            i = i ? bin(&c, KP_OP_ADD, i, im(&c, a, k)) : im(&c, a, k);
        }
        return bin(&c, KP_OP_CONCAT, r, i);
    }
    for (int k = 0; k < count; k++) {
        const kp_node *t = op == KP_CX_SUMT   ? a
                           : is_binary(op)    ? binary_at(&c, op, a, b, k)
                                              : unary_at(&c, op, a, k);
        out = cat(&c, out, t);
        if (!out) return NULL;
    }
    return out;
}

static const struct {
    const char *name;
    kp_complex_op op;
    int nargs; /* formula arguments; ComplexSumT also takes an integer */
} names[] = {
    {"ComplexReal", KP_CX_REAL, 1},         {"ComplexImag", KP_CX_IMAG, 1},
    {"Real2Complex", KP_CX_REAL2COMPLEX, 1}, {"Imag2Complex", KP_CX_IMAG2COMPLEX, 1},
    {"Conj", KP_CX_CONJ, 1},                {"ComplexAbs", KP_CX_ABS, 1},
    {"ComplexSquareAbs", KP_CX_SQUAREABS, 1}, {"ComplexAngle", KP_CX_ANGLE, 1},
    {"ComplexSum", KP_CX_SUM, 1},           {"ComplexSumT", KP_CX_SUMT, 1},
    {"ComplexMult", KP_CX_MULT, 2},         {"ComplexScal", KP_CX_SCAL, 2},
    {"ComplexRealScal", KP_CX_REALSCAL, 2}, {"ComplexDivide", KP_CX_DIVIDE, 2},
    {"ComplexAdd", KP_CX_ADD, 2},           {"ComplexSubtract", KP_CX_SUBTRACT, 2},
    {"ComplexExp", KP_CX_EXP, 1},           {"ComplexExp1j", KP_CX_EXP1J, 1},
};

int kp__complex_lookup(const char *name, int len, kp_complex_op *op, int *nargs) {
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if ((int)strlen(names[k].name) == len && strncmp(names[k].name, name, (size_t)len) == 0) {
            *op = names[k].op;
            *nargs = names[k].nargs;
            return 1;
        }
    return 0;
}
