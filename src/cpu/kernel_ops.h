/*
 * kernel_ops.h — evaluation of one lowered instruction, for one kernel build.
 *
 * Values are "views": element (c, k) of a value, component c and lane k, is
 * p[c' * cs + k * ls] where c' = 0 for a dimension-1 value (scalar broadcast
 * over components) and c otherwise. A tile value has cs = TILE, ls = 1; a row
 * value (uniform over the tile) has cs = 1, ls = 0. Row programs run the same
 * code with n = 1 lane.
 *
 * Hot paths (arithmetic, comparisons, exp & co, SqDist, scalar product) have
 * dedicated loops that the compiler vectorizes (over the scalar functions of
 * device/ops.h, inlined) or that call SLEEF; everything else goes through the
 * scalar dispatch of formula/scalar_eval.h over device/ops.h.
 * Included by kernel_impl.h only (after simd.h).
 */
#ifndef KP_CPU_KERNEL_OPS_H
#define KP_CPU_KERNEL_OPS_H

#include <string.h>

#include "formula/scalar_eval.h"

KP_DEFINE_SCALAR_EVAL(seval)

typedef struct view {
    REAL *p;
    int cs, ls, dim;
} view;

#define AT(v, c, k) ((v).p[((v).dim == 1 ? 0 : (c)) * (v).cs + (k) * (v).ls])

/* ---------------------------------------------------------------- elementwise */

static void ew_generic(kp_op op, int n, int dim, view o, view a, view b, view c, int ip) {
    for (int d = 0; d < dim; d++)
        for (int k = 0; k < n; k++)
            o.p[d * o.cs + k] = seval(op, AT(a, d, k), b.p ? AT(b, d, k) : (REAL)0, c.p ? AT(c, d, k) : (REAL)0, ip);
}

#if VL > 1
#define VMATH1(name)                                                       \
    static void vm_##name(REAL *o, const REAL *a, int n) {       \
        for (int k = 0; k < n; k += VL) VST(o + k, VFN(name)(VLD(a + k))); \
    }
#define VMATH2(name)                                                                        \
    static void vm_##name(REAL *o, const REAL *a, int la, const REAL *b, int lb, int n) { \
        for (int k = 0; k < n; k += VL)                                                  \
            VST(o + k, VFN(name)(la ? VLD(a + k) : VSET(*a), lb ? VLD(b + k) : VSET(*b)));   \
    }
#else
#define VMATH1(name)                                                  \
    static void vm_##name(REAL *o, const REAL *a, int n) {  \
        for (int k = 0; k < n; k++) o[k] = LM(name)(a[k]);          \
    }
#define VMATH2(name)                                                                        \
    static void vm_##name(REAL *o, const REAL *a, int la, const REAL *b, int lb, int n) { \
        for (int k = 0; k < n; k++) o[k] = LM(name)(a[k * la], b[k * lb]);             \
    }
#endif
#if KP_REAL_F32
/*
 * expf for whole tiles, written so the compiler vectorizes it for any ISA.
 * Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then the Cephes degree-5
 * minimax polynomial for (exp(r) - 1 - r) / r^2; 2^n added to the exponent
 * field. Max relative error 2.4e-7 (< 3 ulp) on [-87.3, 88.7], measured against
 * double exp in tests/test_ops.c; exp(x) is +inf above 88.7228, NaN for NaN, and
 * flushes to 0 below -87.3 (results under FLT_MIN = 1.2e-38: no denormals).
 */
typedef float vfl __attribute__((vector_size(VL * 4)));
typedef int32_t vin __attribute__((vector_size(VL * 4)));
static inline vfl vsel(vin m, vfl a, vfl b) { return (vfl)((m & (vin)a) | (~m & (vin)b)); }
/* exp(a * scale), or exp(a / scale) when divide: the scale is a row value the
 * lowering fused in (lower.c); divide is a constant where this is inlined. */
static inline __attribute__((always_inline)) void vm_exp_core(REAL *o, const REAL *a, REAL scale, int divide,
                                                              int lanes) {
    const vfl lo = (vfl){0} - 87.3f, hi = (vfl){0} + 88.72283f;
    for (int k = 0; k < lanes; k += VL) {
        vfl x;
        memcpy(&x, a + k, sizeof x);
        x = divide ? x / scale : x * scale;
        vin under = x < lo, over = x > hi, nan = x != x;
        vfl xc = vsel(under, lo, vsel(over, hi, x));
        vfl t = xc * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23: rounds to nearest */
        vin n = (vin)t - 0x4B400000;
        vfl nf = t - 12582912.0f;
        vfl r = xc - nf * 0.693359375f;
        r = r - nf * -2.12194440e-4f;
        vfl p = r * 1.9875691500e-4f + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        p = p * (r * r) + r + 1.0f;
        /* p * 2^n by adding n to the exponent field: x >= -87.3 keeps the
         * result normal (n >= -126 with p >= 1 there). */
        vfl y = (vfl)((vin)p + (n << 23));
        y = vsel(over, (vfl){0} + (float)INFINITY, vsel(under, (vfl){0}, y));
        y = vsel(nan, x, y);
        memcpy(o + k, &y, sizeof y);
    }
}
static void vm_exp_scaled(REAL *o, const REAL *a, REAL scale, int n) { vm_exp_core(o, a, scale, 0, n); }
static void vm_exp_divided(REAL *o, const REAL *a, REAL scale, int n) { vm_exp_core(o, a, scale, 1, n); }
#elif VL > 1
static void vm_exp_scaled(REAL *o, const REAL *a, REAL scale, int n) {
    for (int k = 0; k < n; k += VL) VST(o + k, VFN(exp)(VLD(a + k) * VSET(scale)));
}
static void vm_exp_divided(REAL *o, const REAL *a, REAL scale, int n) {
    for (int k = 0; k < n; k += VL) VST(o + k, VFN(exp)(VLD(a + k) / VSET(scale)));
}
#else
static void vm_exp_scaled(REAL *o, const REAL *a, REAL scale, int n) {
    for (int k = 0; k < n; k++) o[k] = LM(exp)(a[k] * scale);
}
static void vm_exp_divided(REAL *o, const REAL *a, REAL scale, int n) {
    for (int k = 0; k < n; k++) o[k] = LM(exp)(a[k] / scale);
}
#endif
static void vm_exp(REAL *o, const REAL *a, int n) { vm_exp_scaled(o, a, (REAL)1, n); }
VMATH1(log)
VMATH1(sin)
VMATH1(cos)
VMATH1(asin)
VMATH1(acos)
VMATH1(atan)
VMATH1(tanh)
VMATH1(erf)
VMATH2(pow)
VMATH2(atan2)

/* Tile loops for binary arithmetic: both tiles, tile op scalar, scalar op tile. */
#define BIN_LOOPS(EXPR)                                                  \
    if (la && lb) {                                                      \
        for (int k = 0; k < n; k++) {                                    \
            REAL x = a[k], y = b[k];                                     \
            o[k] = (EXPR);                                               \
        }                                                                \
    } else if (la) {                                                     \
        const REAL y = *b;                                               \
        for (int k = 0; k < n; k++) {                                    \
            REAL x = a[k];                                               \
            o[k] = (EXPR);                                               \
        }                                                                \
    } else {                                                             \
        const REAL x = *a;                                               \
        for (int k = 0; k < n; k++) {                                    \
            REAL y = b[k];                                               \
            o[k] = (EXPR);                                               \
        }                                                                \
    }

/* One component of a binary elementwise op on a tile; returns 0 if op has no fast path. */
static int ew2_tile(kp_op op, REAL *restrict o, const REAL *a, int la, const REAL *b, int lb, int n) {
    switch ((int)op) { /* selective: the other ops take the general path */
    case KP_OP_ADD: BIN_LOOPS(x + y) return 1;
    case KP_OP_SUB: BIN_LOOPS(x - y) return 1;
    case KP_OP_MUL: BIN_LOOPS(x * y) return 1;
    case KP_OP_DIV: BIN_LOOPS(x / y) return 1;
    case KP_OP_LT: BIN_LOOPS(kp__d_lt(x, y)) return 1;
    case KP_OP_LE: BIN_LOOPS(kp__d_le(x, y)) return 1;
    case KP_OP_GT: BIN_LOOPS(kp__d_gt(x, y)) return 1;
    case KP_OP_GE: BIN_LOOPS(kp__d_ge(x, y)) return 1;
    case KP_OP_EQ: BIN_LOOPS(kp__d_eq(x, y)) return 1;
    case KP_OP_NE: BIN_LOOPS(kp__d_ne(x, y)) return 1;
    case KP_OP_POWF: vm_pow(o, a, la, b, lb, n); return 1;
    case KP_OP_ATAN2: vm_atan2(o, a, la, b, lb, n); return 1;
    default: return 0;
    }
}

/* A unary function over a tile (device/ops.h's are inlined: the compiler vectorizes them). */
#define EW1_LOOP(fn)                                       \
    for (int k = 0; k < n; k++) o[k] = fn(a[k]);           \
    return 1;

/* One component of a unary elementwise op on a tile; returns 0 if no fast path. */
static int ew1_tile(kp_op op, REAL *restrict o, const REAL *restrict a, int n) {
    const REAL one = 1, zero = 0;
    switch ((int)op) { /* selective: the other ops take the general path */
    case KP_OP_NEG: EW1_LOOP(kp__d_neg)
    case KP_OP_INV: EW1_LOOP(kp__d_inv)
    case KP_OP_SQUARE: EW1_LOOP(kp__d_square)
    case KP_OP_SQRT: EW1_LOOP(LM(sqrt))
    case KP_OP_RSQRT:
        for (int k = 0; k < n; k++) o[k] = a[k] == zero ? zero : one / LM(sqrt)(a[k]);
        return 1;
    case KP_OP_ABS: EW1_LOOP(LM(fabs))
    case KP_OP_RELU: EW1_LOOP(kp__d_relu)
    case KP_OP_STEP: EW1_LOOP(kp__d_step)
    case KP_OP_SIGN: EW1_LOOP(kp__d_sign)
    case KP_OP_FLOOR: EW1_LOOP(LM(floor))
    case KP_OP_EXP: vm_exp(o, a, n); return 1;
    case KP_OP_LOG: vm_log(o, a, n); return 1;
    case KP_OP_SIN: vm_sin(o, a, n); return 1;
    case KP_OP_COS: vm_cos(o, a, n); return 1;
    case KP_OP_ASIN: vm_asin(o, a, n); return 1;
    case KP_OP_ACOS: vm_acos(o, a, n); return 1;
    case KP_OP_ATAN: vm_atan(o, a, n); return 1;
    case KP_OP_TANH: vm_tanh(o, a, n); return 1;
    case KP_OP_ERF: vm_erf(o, a, n); return 1;
    case KP_OP_XLOGX:
        vm_log(o, a, n);
        for (int k = 0; k < n; k++) o[k] = a[k] == zero ? zero : a[k] * o[k];
        return 1;
    case KP_OP_SINXDIVX:
        vm_sin(o, a, n);
        for (int k = 0; k < n; k++) o[k] = a[k] == zero ? one : o[k] / a[k];
        return 1;
    default: return 0;
    }
}

/* ---------------------------------------------------------------- vector ops */

/* Sum over components of a[c]*b[c] (dot) or (a[c]-b[c])^2 (sqdist), on tiles.
 * Small dimensions get unrolled single-pass loops: this is the Gaussian's hot path. */
#define SQD_TERM(c) (AV(c) - BV(c)) * (AV(c) - BV(c))
#define DOT_TERM(c) AV(c) * BV(c)
#define PAIR_LOOP(TERM, D)                                                      \
    for (int k = 0; k < n; k++) {                                               \
        REAL s = TERM(0);                                                       \
        for (int c = 1; c < (D); c++) s += TERM(c);                             \
        o[k] = s;                                                               \
    }
/* The unrolled loop for dim (1 to 4) and sqdist, with AV and BV as defined where it is used. */
#define PAIR_DISPATCH                                                           \
    switch (dim * 2 + (sqdist != 0)) {                                          \
    case 2: PAIR_LOOP(DOT_TERM, 1) return;                                      \
    case 3: PAIR_LOOP(SQD_TERM, 1) return;                                      \
    case 4: PAIR_LOOP(DOT_TERM, 2) return;                                      \
    case 5: PAIR_LOOP(SQD_TERM, 2) return;                                      \
    case 6: PAIR_LOOP(DOT_TERM, 3) return;                                      \
    case 7: PAIR_LOOP(SQD_TERM, 3) return;                                      \
    case 8: PAIR_LOOP(DOT_TERM, 4) return;                                      \
    default: PAIR_LOOP(SQD_TERM, 4) return;                                     \
    }

static void dot_like(int sqdist, int n, REAL *restrict o, view a, view b) {
    int dim = a.dim;
    if (a.ls == 0 && b.ls == 1) { /* make a the tile operand */
        view t = a;
        a = b;
        b = t;
    }
#define AV(c) a.p[(c) * a.cs + k]
    if (a.ls == 1 && b.ls == 0 && dim <= 4) {
#define BV(c) b.p[(c)]
        PAIR_DISPATCH
#undef BV
    }
    if (a.ls == 1 && b.ls == 1 && dim <= 4) {
#define BV(c) b.p[(c) * b.cs + k]
        PAIR_DISPATCH
#undef BV
    }
#undef AV
    /* Any dimension, any operand kinds: accumulate component by component. */
    for (int k = 0; k < n; k++) o[k] = 0;
    for (int c = 0; c < dim; c++)
        for (int k = 0; k < n; k++) {
            REAL x = a.p[c * a.cs + k * a.ls], y = b.p[c * b.cs + k * b.ls];
            o[k] += sqdist ? (x - y) * (x - y) : x * y;
        }
}

/* NaN ranks before every number: it is the min and the max of a set holding it. */
#define BETTER_MIN KP_BETTER_MIN /* device/monoid.h */
#define BETTER_MAX KP_BETTER_MAX

static void vec_op(kp_op op, int n, view o, view a, view b, int ip) {
    switch ((int)op) { /* selective: the other ops take the general path */
    case KP_OP_DOT: dot_like(0, n, o.p, a, b); return;
    case KP_OP_SQDIST: dot_like(1, n, o.p, a, b); return;
    case KP_OP_SUM:
        if (a.ls == 1 && a.dim > 1) { /* a tile: component by component, vectorized; the same
                                         additions in the same order as below (0 + a_0 keeps -0 out) */
            for (int k = 0; k < n; k++) o.p[k] = (REAL)0 + a.p[k];
            for (int c = 1; c < a.dim; c++)
                for (int k = 0; k < n; k++) o.p[k] += a.p[c * a.cs + k];
            return;
        }
        for (int k = 0; k < n; k++) {
            REAL s = 0;
            for (int c = 0; c < a.dim; c++) s += AT(a, c, k);
            o.p[k] = s;
        }
        return;
    case KP_OP_MAXC:
    case KP_OP_MINC:
    case KP_OP_ARGMAXC:
    case KP_OP_ARGMINC: {
        int is_max = op == KP_OP_MAXC || op == KP_OP_ARGMAXC, is_arg = op == KP_OP_ARGMAXC || op == KP_OP_ARGMINC;
        for (int k = 0; k < n; k++) {
            REAL best = AT(a, 0, k);
            int arg = 0;
            for (int c = 1; c < a.dim; c++) {
                REAL v = AT(a, c, k);
                if (is_max ? BETTER_MAX(v, best) : BETTER_MIN(v, best)) {
                    best = v;
                    arg = c;
                }
            }
            o.p[k] = is_arg ? (REAL)arg : best;
        }
        return;
    }
    case KP_OP_EXTRACT:
        for (int c = 0; c < o.dim; c++)
            for (int k = 0; k < n; k++) o.p[c * o.cs + k] = AT(a, c + ip, k);
        return;
    case KP_OP_CONCAT:
        for (int c = 0; c < a.dim; c++)
            for (int k = 0; k < n; k++) o.p[c * o.cs + k] = AT(a, c, k);
        for (int c = 0; c < b.dim; c++)
            for (int k = 0; k < n; k++) o.p[(a.dim + c) * o.cs + k] = AT(b, c, k);
        return;
    case KP_OP_ONEHOT:
        for (int k = 0; k < n; k++) {
            REAL r = LM(round)(AT(a, 0, k));
            for (int c = 0; c < o.dim; c++) o.p[c * o.cs + k] = r == (REAL)c ? (REAL)1 : (REAL)0;
        }
        return;
    case KP_OP_MATVEC: { /* o[r] = sum_l A[r*m+l] v[l], A is a, v is b */
        int m = b.dim;
        for (int r = 0; r < o.dim; r++)
            for (int k = 0; k < n; k++) {
                REAL s = 0;
                for (int l = 0; l < m; l++) s += AT(a, r * m + l, k) * AT(b, l, k);
                o.p[r * o.cs + k] = s;
            }
        return;
    }
    case KP_OP_VECMAT: { /* o[l] = sum_r v[r] A[r*m+l], v is a, A is b */
        int m = o.dim;
        for (int l = 0; l < m; l++)
            for (int k = 0; k < n; k++) {
                REAL s = 0;
                for (int r = 0; r < a.dim; r++) s += AT(a, r, k) * AT(b, r * m + l, k);
                o.p[l * o.cs + k] = s;
            }
        return;
    }
    case KP_OP_TENSORPROD:
        for (int r = 0; r < a.dim; r++)
            for (int l = 0; l < b.dim; l++)
                for (int k = 0; k < n; k++) o.p[(r * b.dim + l) * o.cs + k] = AT(a, r, k) * AT(b, l, k);
        return;
    case KP_OP_BCAST:
        for (int c = 0; c < o.dim; c++)
            for (int k = 0; k < n; k++) o.p[c * o.cs + k] = AT(a, c, k);
        return;
    default: return;
    }
}

/* The lanes the interpreter computes for a tile of len points (0 < len <=
 * TILE): whole vectors, so that a short tile (small N, a range, the last
 * tile) costs its points, not TILE lanes. Lanes len.. of the result are
 * never read (compiled kernels read whole vectors and mask them). */
static inline int tile_lanes(int len) { return (len + VL - 1) / VL * VL; }

/* Whether ew1_tile / ew2_tile compute op as the scalar code does, bit for
 * bit (IEEE's correctly rounded arithmetic, comparisons, sign tests), so
 * that ROW values may take them too. */
static int ew_tile_is_exact(kp_op op) {
    switch ((int)op) {
    case KP_OP_ADD: case KP_OP_SUB: case KP_OP_MUL: case KP_OP_DIV:
    case KP_OP_LT: case KP_OP_LE: case KP_OP_GT: case KP_OP_GE: case KP_OP_EQ: case KP_OP_NE:
    case KP_OP_NEG: case KP_OP_INV: case KP_OP_SQUARE: case KP_OP_SQRT: case KP_OP_ABS:
    case KP_OP_RELU: case KP_OP_STEP: case KP_OP_SIGN: case KP_OP_FLOOR:
        return 1;
    default: return 0;
    }
}

/* Evaluates one non-leaf instruction into o, n lanes. tile: they are the
 * first n lanes of tiles (n a multiple of VL, at most TILE), which the
 * vector paths may take; else (ROW values) every value is the scalar
 * code's, whatever n. */
static void exec_op(const kp_instr *ins, int n, int tile, view o, view a, view b, view c) {
    kp_op op = ins->op;
    if (op == KP_OP_EXP && ins->nin == 2) { /* Exp(a * s) or Exp(a / s), s a row scalar (lower.c) */
        int divide = ins->ip[1];
        for (int d = 0; d < o.dim; d++) {
            REAL *od = o.p + d * o.cs;
            if (tile) (divide ? vm_exp_divided : vm_exp_scaled)(od, &AT(a, d, 0), AT(b, d, 0), n);
            else
                for (int k = 0; k < n; k++)
                    od[k] = LM(exp)(divide ? AT(a, d, k) / AT(b, d, k) : AT(a, d, k) * AT(b, d, k));
        }
        return;
    }
    if (!kp__op_is_elementwise(op)) {
        vec_op(op, n, o, a, b, ins->ip[0]);
        return;
    }
    if (tile || ew_tile_is_exact(op)) {
        int done = 1;
        for (int d = 0; d < o.dim && done; d++) {
            REAL *od = o.p + d * o.cs;
            if (ins->nin == 1) done = ew1_tile(op, od, &AT(a, d, 0), n);
            else if (ins->nin == 2) done = ew2_tile(op, od, &AT(a, d, 0), a.ls, &AT(b, d, 0), b.ls, n);
            else done = 0;
        }
        if (done) return;
    }
    ew_generic(op, n, o.dim, o, a, b, c, ins->ip[0]);
}

#endif
