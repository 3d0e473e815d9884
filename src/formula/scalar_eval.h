/*
 * scalar_eval.h — the meaning of every elementwise op, on one scalar.
 *
 * This is the single definition of each elementwise op's semantics (special
 * values included). It is used for constant folding (double), by the CPU engine
 * for values that are uniform over a tile (row values and parameters), and as
 * the scalar fallback of the vector kernels. KP_DEFINE_SCALAR_EVAL(name, T, F)
 * defines `static inline T name(kp_op op, T a, T b, T c, int ip)`, where F is the
 * libm suffix for T ("" for double, f for float).
 *
 * Conventions (KeOps-compatible where KeOps defines them):
 *   Rsqrt(0) = 0, XLogX(0) = 0, SinXDivX(0) = 1, Step(x) = x >= 0,
 *   Sign(0) = 0, IfElse(f,g,h) = f >= 0 ? g : h, comparisons give 1 or 0.
 *   NaN propagates through Sign, Step, ReLU, Clamp, Abs (never turned into a number).
 */
#ifndef KP_FORMULA_SCALAR_EVAL_H
#define KP_FORMULA_SCALAR_EVAL_H

#include <math.h>

#include "formula/node.h"

#define KP__CAT(a, b) a##b
#define KP__M(fn, F) KP__CAT(fn, F)

#define KP_DEFINE_SCALAR_EVAL(name, T, F)                                             \
    static inline T name(kp_op op, T a, T b, T c, int ip) {                           \
        (void)c;                                                                      \
        switch (op) {                                                                 \
        case KP_OP_ADD: return a + b;                                                 \
        case KP_OP_SUB: return a - b;                                                 \
        case KP_OP_MUL: return a * b;                                                 \
        case KP_OP_DIV: return a / b;                                                 \
        case KP_OP_NEG: return -a;                                                    \
        case KP_OP_INV: return (T)1 / a;                                              \
        case KP_OP_SQUARE: return a * a;                                              \
        case KP_OP_POW: {                                                             \
            T r = 1, base = a;                                                        \
            unsigned e = ip < 0 ? (unsigned)(-(long)ip) : (unsigned)ip;               \
            while (e) {                                                               \
                if (e & 1u) r *= base;                                                \
                base *= base;                                                         \
                e >>= 1;                                                              \
            }                                                                         \
            return ip < 0 ? (T)1 / r : r;                                             \
        }                                                                             \
        case KP_OP_POWF: return KP__M(pow, F)(a, b);                                  \
        case KP_OP_SQRT: return KP__M(sqrt, F)(a);                                    \
        case KP_OP_RSQRT: return a == 0 ? (T)0 : (T)1 / KP__M(sqrt, F)(a);            \
        case KP_OP_LT: return a < b ? (T)1 : (T)0;                                    \
        case KP_OP_LE: return a <= b ? (T)1 : (T)0;                                   \
        case KP_OP_GT: return a > b ? (T)1 : (T)0;                                    \
        case KP_OP_GE: return a >= b ? (T)1 : (T)0;                                   \
        case KP_OP_EQ: return a == b ? (T)1 : (T)0;                                   \
        case KP_OP_NE: return a != b ? (T)1 : (T)0;                                   \
        case KP_OP_EXP: return KP__M(exp, F)(a);                                      \
        case KP_OP_LOG: return KP__M(log, F)(a);                                      \
        case KP_OP_XLOGX: return a == 0 ? (T)0 : a * KP__M(log, F)(a);                \
        case KP_OP_SIN: return KP__M(sin, F)(a);                                      \
        case KP_OP_COS: return KP__M(cos, F)(a);                                      \
        case KP_OP_ASIN: return KP__M(asin, F)(a);                                    \
        case KP_OP_ACOS: return KP__M(acos, F)(a);                                    \
        case KP_OP_ATAN: return KP__M(atan, F)(a);                                    \
        case KP_OP_ATAN2: return KP__M(atan2, F)(a, b);                               \
        case KP_OP_SINXDIVX: return a == 0 ? (T)1 : KP__M(sin, F)(a) / a;             \
        case KP_OP_TANH: return KP__M(tanh, F)(a);                                    \
        case KP_OP_ERF: return KP__M(erf, F)(a);                                      \
        case KP_OP_ABS: return KP__M(fabs, F)(a);                                     \
        case KP_OP_SIGN: return a > 0 ? (T)1 : (a < 0 ? (T)-1 : a * (T)0);            \
        case KP_OP_STEP: return a >= 0 ? (T)1 : (a < 0 ? (T)0 : a);                   \
        case KP_OP_RELU: return a > 0 ? a : (a == a ? (T)0 : a);                           \
        case KP_OP_FLOOR: return KP__M(floor, F)(a);                                  \
        case KP_OP_ROUND: {                                                           \
            T scale = (T)1;                                                           \
            for (int k_ = 0; k_ < ip; k_++) scale *= (T)10;                           \
            return KP__M(round, F)(a * scale) / scale;                                \
        }                                                                             \
        case KP_OP_CLAMP: return a < b ? b : (a > c ? c : a);                         \
        case KP_OP_IFELSE: return a >= 0 ? b : c;                                     \
        case KP_OP_VAR:                                                               \
        case KP_OP_CONST:                                                             \
        case KP_OP_INDEX:                                                             \
        case KP_OP_DOT:                                                               \
        case KP_OP_SQDIST:                                                            \
        case KP_OP_SUM:                                                               \
        case KP_OP_MAXC:                                                              \
        case KP_OP_MINC:                                                              \
        case KP_OP_ARGMAXC:                                                           \
        case KP_OP_ARGMINC:                                                           \
        case KP_OP_EXTRACT:                                                           \
        case KP_OP_CONCAT:                                                            \
        case KP_OP_ONEHOT:                                                            \
        case KP_OP_MATVEC:                                                            \
        case KP_OP_VECMAT:                                                            \
        case KP_OP_TENSORPROD:                                                        \
        case KP_OP_BCAST:                                                             \
        case KP_OP_COUNT_: break;                                                     \
        }                                                                             \
        return (T)NAN;                                                                \
    }

/* Is op evaluated component by component (class EW1, EW2, EW3)? */
int kp__op_is_elementwise(kp_op op);

#endif
