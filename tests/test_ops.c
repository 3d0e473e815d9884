/*
 * test_ops.c — every op of the formula language, forward, against a dense
 * float64 reference written by hand.
 *
 * Each table row gives a formula F over the aliases x = Vi(dx), y = Vj(dy) and
 * (optionally) p = Pm(dp), and a C function computing F(x_i, y_j, p) in double.
 * The test runs Sum_Reduction(F, 1) and Sum_Reduction(F, 0) on N = 19, M = 41
 * points (both cross SIMD widths 8/16 with a ragged tail) and asserts, for
 * every output entry,
 *     |got - ref| <= tol * sum_j |F(x_i, y_j, p)|     (axis 1; axis 0 alike)
 * with ref = sum_j F computed by a double loop. Inputs are first rounded to the
 * run's dtype, so the reference sees exactly the numbers libkp sees; tol is
 * 1e-12 in float64 and 1e-5 in float32 unless a row says otherwise.
 * float64 runs go through kp_formula_parse + kp_plan_new + kp_plan_exec,
 * float32 runs through kp_reduce, so both entry points are exercised.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_test_util.h"

enum {
    SP_NONE = 0,
    SP_ZEROS,    /* every third element of x and y is exactly 0 */
    SP_SIGNED,   /* every other element is negated */
    SP_DISCRETE, /* values in {-1, -0.5, 0, 0.5, 1}: exact ties and boundaries */
    SP_HALVES,   /* every other element is a tie case of rounding (+-0.5, 2.5, 0.125, ...) */
    SP_INTS      /* every third element is an exact integer in [-4, 4] */
};

typedef struct op_case op_case;
typedef void (*ref_fn)(const op_case *c, const double *x, const double *y, const double *p,
                       double *out);

struct op_case {
    const char *name;
    const char *formula; /* F, over x, y, p */
    int dx, dy, dp;      /* alias dims; dp = 0: no parameter */
    int dout;
    double xlo, xhi, ylo, yhi, plo, phi;
    int special;
    ref_fn ref;
    double (*fn)(double); /* unary rows: F = fn(x) + fn(y), elementwise */
    double tol64, tol32;  /* 0: defaults */
};

enum { N_I = 19, N_J = 41 };

/* ------------------------------------------------------------ scalar refs */

static double f_inv(double v) { return 1.0 / v; }
static double f_square(double v) { return v * v; }
static double f_sqrt(double v) { return sqrt(v); }
static double f_rsqrt(double v) { return v == 0.0 ? 0.0 : 1.0 / sqrt(v); }
static double f_exp(double v) { return exp(v); }
static double f_log(double v) { return log(v); }
static double f_xlogx(double v) { return v == 0.0 ? 0.0 : v * log(v); }
static double f_sin(double v) { return sin(v); }
static double f_cos(double v) { return cos(v); }
static double f_asin(double v) { return asin(v); }
static double f_acos(double v) { return acos(v); }
static double f_atan(double v) { return atan(v); }
static double f_sinxdivx(double v) { return v == 0.0 ? 1.0 : sin(v) / v; }
static double f_tanh(double v) { return tanh(v); }
static double f_erf(double v) { return erf(v); }
static double f_abs(double v) { return fabs(v); }
static double f_sign(double v) { return v > 0.0 ? 1.0 : (v < 0.0 ? -1.0 : 0.0); }
static double f_step(double v) { return v >= 0.0 ? 1.0 : 0.0; }
static double f_relu(double v) { return v > 0.0 ? v : 0.0; }
static double f_floor(double v) { return floor(v); }

static void ref_unary(const op_case *c, const double *x, const double *y, const double *p,
                      double *o) {
    (void)p;
    for (int d = 0; d < c->dout; d++) o[d] = c->fn(x[d]) + c->fn(y[d]);
}

/* Broadcast accessor: a dim-1 operand is read at component 0. */
#define B(v, dv, d) ((dv) == 1 ? (v)[0] : (v)[d])

#define EW_REF(NAME, EXPR)                                                               \
    static void NAME(const op_case *c, const double *x, const double *y, const double *p, \
                     double *o) {                                                        \
        (void)p;                                                                         \
        for (int d = 0; d < c->dout; d++) {                                              \
            double a = B(x, c->dx, d), b = B(y, c->dy, d);                               \
            (void)a;                                                                     \
            (void)b;                                                                     \
            o[d] = (EXPR);                                                               \
        }                                                                                \
    }
/* Elementwise with the parameter too (pp = p broadcast). */
#define EWP_REF(NAME, EXPR)                                                              \
    static void NAME(const op_case *c, const double *x, const double *y, const double *p, \
                     double *o) {                                                        \
        for (int d = 0; d < c->dout; d++) {                                              \
            double a = B(x, c->dx, d), b = B(y, c->dy, d), pp = B(p, c->dp, d);          \
            (void)a;                                                                     \
            (void)b;                                                                     \
            (void)pp;                                                                    \
            o[d] = (EXPR);                                                               \
        }                                                                                \
    }

static double mod3(double f, double a, double b) { return f - a * floor((f - b) / a); }
static double round_d(double v, int d) {
    double s = pow(10.0, d);
    return round(v * s) / s;
}

EW_REF(ref_add, a + b)
EW_REF(ref_sub, a - b)
EW_REF(ref_mul, a *b)
EW_REF(ref_div, a / b)
EW_REF(ref_neg, -a + b)
EW_REF(ref_negsq, -(a * a) + b)
EW_REF(ref_pow3_2, a *a *a + b * b)
EW_REF(ref_powm2_0, 1.0 / (a * a) + 1.0)
EW_REF(ref_pow1, a + b)
EW_REF(ref_powf, pow(a, b))
EW_REF(ref_lt, a < b ? 1.0 : 0.0)
EW_REF(ref_le, a <= b ? 1.0 : 0.0)
EW_REF(ref_gt, a > b ? 1.0 : 0.0)
EW_REF(ref_ge, a >= b ? 1.0 : 0.0)
EW_REF(ref_eq, a == b ? 1.0 : 0.0)
EW_REF(ref_ne, a != b ? 1.0 : 0.0)
EW_REF(ref_atan2, atan2(a, b))
EW_REF(ref_clamp, fmin(fmax(a - b, -0.5), 0.7))
EW_REF(ref_ifelse, (a - b) >= 0.0 ? a * b : a + b)
EW_REF(ref_round, round_d(a, 2) + round_d(b, 0))
EW_REF(ref_mod, mod3(a, 1.5, 0.25) + mod3(b, 2.0, 0.0))
EWP_REF(ref_modvar, mod3(a, b, pp))
EW_REF(ref_literals, a * 2.5 + b / 4.0 - 1e-1)
EW_REF(ref_literals2, 3.0 + 2.0 * a * b - 1.5e1)
EW_REF(ref_intcst, a * 3.0 + b)
EW_REF(ref_zero, a - b)
EWP_REF(ref_bcast_xp, a * pp + b)
EWP_REF(ref_bcast_pxy, pp - a / b)
EWP_REF(ref_left_assoc_sub, a - b + pp)
EWP_REF(ref_left_assoc_div, a / b / pp)
EWP_REF(ref_prec, a + b * pp - a / b)
EWP_REF(ref_paren, (a + b) * pp)
EWP_REF(ref_direct_vars, a * b + pp)
EWP_REF(ref_param_vec, a * pp - b)
EWP_REF(ref_clamp_var, fmin(fmax(a, b), b + pp))

static double dot(const double *u, const double *v, int n) {
    double s = 0.0;
    for (int k = 0; k < n; k++) s += u[k] * v[k];
    return s;
}

static void ref_dot(const op_case *c, const double *x, const double *y, const double *p,
                    double *o) {
    (void)p;
    o[0] = dot(x, y, c->dx);
}
static void ref_dot_expr(const op_case *c, const double *x, const double *y, const double *p,
                         double *o) {
    (void)p;
    double s = 0.0;
    for (int k = 0; k < c->dx; k++) s += (x[k] - y[k]) * (x[k] + y[k]);
    o[0] = s;
}
static void ref_sqdist(const op_case *c, const double *x, const double *y, const double *p,
                       double *o) {
    (void)p;
    double s = 0.0;
    for (int k = 0; k < c->dx; k++) s += (x[k] - y[k]) * (x[k] - y[k]);
    o[0] = s;
}
static void ref_norm2(const op_case *c, const double *x, const double *y, const double *p,
                      double *o) {
    ref_sqdist(c, x, y, p, o);
    o[0] = sqrt(o[0]);
}
static void ref_normalize(const op_case *c, const double *x, const double *y, const double *p,
                          double *o) {
    double s;
    ref_sqdist(c, x, y, p, &s);
    for (int k = 0; k < c->dx; k++) o[k] = (x[k] - y[k]) * f_rsqrt(s);
}
/* WeightedSqNorm(p, x - y) / WeightedSqDist(p, x, y): p of dim 1, D or D*D. */
static void ref_wsq(const op_case *c, const double *x, const double *y, const double *p,
                    double *o) {
    int D = c->dx;
    double f[16], s = 0.0;
    for (int k = 0; k < D; k++) f[k] = x[k] - y[k];
    if (c->dp == 1)
        s = p[0] * dot(f, f, D);
    else if (c->dp == D)
        for (int k = 0; k < D; k++) s += p[k] * f[k] * f[k];
    else
        for (int k = 0; k < D; k++)
            for (int l = 0; l < D; l++) s += f[k] * p[k * D + l] * f[l];
    o[0] = s;
}
static void ref_sum(const op_case *c, const double *x, const double *y, const double *p,
                    double *o) {
    (void)p;
    o[0] = dot(x, y, c->dx);
}
static void ref_maxc(const op_case *c, const double *x, const double *y, const double *p,
                     double *o) {
    (void)p;
    double m = x[0] - y[0];
    for (int k = 1; k < c->dx; k++) m = fmax(m, x[k] - y[k]);
    o[0] = m;
}
static void ref_minc(const op_case *c, const double *x, const double *y, const double *p,
                     double *o) {
    (void)p;
    double m = x[0] - y[0];
    for (int k = 1; k < c->dx; k++) m = fmin(m, x[k] - y[k]);
    o[0] = m;
}
static void ref_argmaxc(const op_case *c, const double *x, const double *y, const double *p,
                        double *o) {
    (void)p;
    int best = 0;
    for (int k = 1; k < c->dx; k++)
        if (x[k] - y[k] > x[best] - y[best]) best = k;
    o[0] = best;
}
static void ref_argminc(const op_case *c, const double *x, const double *y, const double *p,
                        double *o) {
    (void)p;
    int best = 0;
    for (int k = 1; k < c->dx; k++)
        if (x[k] - y[k] < x[best] - y[best]) best = k;
    o[0] = best;
}
static void ref_elem(const op_case *c, const double *x, const double *y, const double *p,
                     double *o) {
    (void)c;
    (void)p;
    o[0] = x[2] * y[0];
}
static void ref_extract(const op_case *c, const double *x, const double *y, const double *p,
                        double *o) {
    (void)c;
    (void)p;
    o[0] = x[1] - y[0];
    o[1] = x[2] - y[1];
}
static void ref_concat(const op_case *c, const double *x, const double *y, const double *p,
                       double *o) {
    (void)p;
    for (int k = 0; k < c->dx; k++) o[k] = x[k];
    for (int k = 0; k < c->dy; k++) o[c->dx + k] = y[k];
}
static void ref_onehot(const op_case *c, const double *x, const double *y, const double *p,
                       double *o) {
    (void)p;
    for (int k = 0; k < c->dout; k++)
        o[k] = (round(x[0]) == (double)k ? 1.0 : 0.0) + (round(y[0]) == (double)k ? 1.0 : 0.0);
}
/* MatVecMult(x, y): x of dim n*m row-major, y of dim m. */
static void ref_matvec(const op_case *c, const double *x, const double *y, const double *p,
                       double *o) {
    (void)p;
    int m = c->dy, n = c->dx / m;
    for (int k = 0; k < n; k++) o[k] = dot(x + k * m, y, m);
}
/* VecMatMult(y, x): y of dim n, x of dim n*m row-major. */
static void ref_vecmat(const op_case *c, const double *x, const double *y, const double *p,
                       double *o) {
    (void)p;
    int n = c->dy, m = c->dx / n;
    for (int l = 0; l < m; l++) {
        double s = 0.0;
        for (int k = 0; k < n; k++) s += y[k] * x[k * m + l];
        o[l] = s;
    }
}
static void ref_tensorprod(const op_case *c, const double *x, const double *y,
                           const double *p, double *o) {
    (void)p;
    for (int k = 0; k < c->dx; k++)
        for (int l = 0; l < c->dy; l++) o[k * c->dy + l] = x[k] * y[l];
}
static void ref_gauss(const op_case *c, const double *x, const double *y, const double *p,
                      double *o) {
    double s;
    ref_sqdist(c, x, y, p, &s);
    o[0] = exp(-s * p[0]) * (y[0] + y[1] + y[2]);
}
static void ref_nested(const op_case *c, const double *x, const double *y, const double *p,
                       double *o) {
    (void)p;
    for (int d = 0; d < c->dout; d++) o[d] = sqrt(fabs(sin(x[d]) * cos(y[d]))) + exp(-(x[d] * x[d]));
}

/* ------------------------------------------------------------ the table */

#define U1(OP, FN, LO, HI, SP, D)                                                       \
    {#OP "_dim" #D, #OP "(x) + " #OP "(y)", D, D, 0, D, LO, HI, LO, HI, 0, 0, SP,       \
     ref_unary, FN, 0, 0}
#define UNARY(OP, FN, LO, HI, SP) U1(OP, FN, LO, HI, SP, 1), U1(OP, FN, LO, HI, SP, 3)
/* Custom row: NAME, F, dx, dy, dp, dout, x range, y range, p range, special, ref. */
#define ROW(NAME, F, DX, DY, DP, DOUT, XLO, XHI, YLO, YHI, PLO, PHI, SP, REF)             \
    {NAME, F, DX, DY, DP, DOUT, XLO, XHI, YLO, YHI, PLO, PHI, SP, REF, NULL, 0, 0}

static const op_case cases[] = {
    /* arithmetic */
    ROW("add_dim3", "x + y", 3, 3, 0, 3, -3, 3, -3, 3, 0, 0, SP_NONE, ref_add),
    ROW("sub_dim3", "x - y", 3, 3, 0, 3, -3, 3, -3, 3, 0, 0, SP_NONE, ref_sub),
    ROW("mul_dim3", "x * y", 3, 3, 0, 3, -3, 3, -3, 3, 0, 0, SP_NONE, ref_mul),
    ROW("div_dim3", "x / y", 3, 3, 0, 3, -3, 3, 0.5, 2, 0, 0, SP_SIGNED, ref_div),
    ROW("div_dim1", "x / y", 1, 1, 0, 1, -3, 3, 0.5, 2, 0, 0, SP_SIGNED, ref_div),
    ROW("unary_minus", "-x + y", 3, 3, 0, 3, -3, 3, -3, 3, 0, 0, SP_NONE, ref_neg),
    ROW("unary_minus_binds_tight", "-Square(x) + y", 3, 3, 0, 3, -3, 3, -3, 3, 0, 0, SP_NONE,
        ref_negsq),
    ROW("left_assoc_sub_add", "x - y + p", 3, 3, 1, 3, -3, 3, -3, 3, -2, 2, SP_NONE,
        ref_left_assoc_sub),
    ROW("left_assoc_div", "x / y / p", 3, 3, 1, 3, -3, 3, 0.5, 2, 0.5, 2, SP_SIGNED,
        ref_left_assoc_div),
    ROW("precedence", "x + y * p - x / y", 3, 3, 1, 3, -3, 3, 0.5, 2, -2, 2, SP_NONE, ref_prec),
    ROW("parentheses", "(x + y) * p", 3, 3, 1, 3, -3, 3, -3, 3, -2, 2, SP_NONE, ref_paren),
    /* unary math, scalar and dim 3 */
    UNARY(Inv, f_inv, 0.2, 3, SP_SIGNED),
    UNARY(Square, f_square, -3, 3, SP_NONE),
    UNARY(Sqrt, f_sqrt, 0, 4, SP_ZEROS),
    UNARY(Rsqrt, f_rsqrt, 0.1, 4, SP_ZEROS),
    UNARY(Exp, f_exp, -5, 5, SP_NONE),
    UNARY(Log, f_log, 0.01, 10, SP_NONE),
    UNARY(XLogX, f_xlogx, 0, 3, SP_ZEROS),
    UNARY(Sin, f_sin, -10, 10, SP_NONE),
    UNARY(Cos, f_cos, -10, 10, SP_NONE),
    UNARY(Asin, f_asin, -0.99, 0.99, SP_NONE),
    UNARY(Acos, f_acos, -0.99, 0.99, SP_NONE),
    UNARY(Atan, f_atan, -10, 10, SP_NONE),
    UNARY(SinXDivX, f_sinxdivx, -10, 10, SP_ZEROS),
    UNARY(Tanh, f_tanh, -5, 5, SP_NONE),
    UNARY(Erf, f_erf, -3, 3, SP_NONE),
    UNARY(Abs, f_abs, -3, 3, SP_ZEROS),
    UNARY(Sign, f_sign, -3, 3, SP_ZEROS),
    UNARY(Step, f_step, -3, 3, SP_ZEROS),
    UNARY(ReLU, f_relu, -3, 3, SP_ZEROS),
    UNARY(Floor, f_floor, -5, 5, SP_INTS),
    /* powers */
    ROW("Pow_3_2", "Pow(x, 3) + Pow(y, 2)", 3, 3, 0, 3, -2, 2, -2, 2, 0, 0, SP_NONE,
        ref_pow3_2),
    ROW("Pow_neg2_0", "Pow(x, -2) + Pow(y, 0)", 3, 3, 0, 3, 0.5, 2, 0.5, 2, 0, 0, SP_SIGNED,
        ref_powm2_0),
    ROW("Pow_1", "Pow(x, 1) + Pow(y, 1)", 3, 3, 0, 3, -2, 2, -2, 2, 0, 0, SP_NONE, ref_pow1),
    ROW("Powf_dim3", "Powf(x, y)", 3, 3, 0, 3, 0.1, 4, -2, 3, 0, 0, SP_NONE, ref_powf),
    ROW("Powf_scalar_exponent", "Powf(x, y)", 3, 1, 0, 3, 0.1, 4, -2, 3, 0, 0, SP_NONE,
        ref_powf),
    /* comparisons (1.0 / 0.0), on discrete values so ties occur */
    ROW("less", "(x < y)", 3, 3, 0, 3, 0, 0, 0, 0, 0, 0, SP_DISCRETE, ref_lt),
    ROW("less_eq", "(x <= y)", 3, 3, 0, 3, 0, 0, 0, 0, 0, 0, SP_DISCRETE, ref_le),
    ROW("greater", "(x > y)", 3, 3, 0, 3, 0, 0, 0, 0, 0, 0, SP_DISCRETE, ref_gt),
    ROW("greater_eq", "(x >= y)", 3, 3, 0, 3, 0, 0, 0, 0, 0, 0, SP_DISCRETE, ref_ge),
    ROW("equal", "(x == y)", 3, 3, 0, 3, 0, 0, 0, 0, 0, 0, SP_DISCRETE, ref_eq),
    ROW("not_equal", "(x != y)", 3, 3, 0, 3, 0, 0, 0, 0, 0, 0, SP_DISCRETE, ref_ne),
    ROW("less_scalar", "(x < y)", 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, SP_DISCRETE, ref_lt),
    /* binary and ternary elementwise */
    ROW("Atan2_dim3", "Atan2(x, y)", 3, 3, 0, 3, -3, 3, 0.1, 3, 0, 0, SP_SIGNED, ref_atan2),
    ROW("Atan2_dim1", "Atan2(x, y)", 1, 1, 0, 1, -3, 3, 0.1, 3, 0, 0, SP_SIGNED, ref_atan2),
    ROW("Clamp_literals", "Clamp(x - y, -0.5, 0.7)", 3, 3, 0, 3, 0, 0, 0, 0, 0, 0, SP_DISCRETE,
        ref_clamp),
    ROW("Clamp_formulas", "Clamp(x, y, y + p)", 3, 3, 1, 3, -3, 3, -1, 1, 0, 2, SP_NONE,
        ref_clamp_var),
    ROW("IfElse", "IfElse(x - y, x * y, x + y)", 3, 3, 0, 3, 0, 0, 0, 0, 0, 0, SP_DISCRETE,
        ref_ifelse),
    ROW("Round_2_0", "Round(x, 2) + Round(y, 0)", 3, 3, 0, 3, -3, 3, -3, 3, 0, 0, SP_HALVES,
        ref_round),
    ROW("Mod_3args_2args", "Mod(x, 1.5, 0.25) + Mod(y, 2)", 3, 3, 0, 3, -5, 5, -5, 5, 0, 0,
        SP_NONE, ref_mod),
    ROW("Mod_formulas", "Mod(x, y, p)", 3, 3, 1, 3, -5, 5, 0.5, 2, -1, 1, SP_NONE, ref_modvar),
    /* vector ops */
    ROW("scalar_product_dim3", "(x|y)", 3, 3, 0, 1, -3, 3, -3, 3, 0, 0, SP_NONE, ref_dot),
    ROW("scalar_product_dim1", "(x|y)", 1, 1, 0, 1, -3, 3, -3, 3, 0, 0, SP_NONE, ref_dot),
    ROW("scalar_product_exprs", "(x - y|x + y)", 3, 3, 0, 1, -3, 3, -3, 3, 0, 0, SP_NONE,
        ref_dot_expr),
    ROW("SqDist", "SqDist(x, y)", 3, 3, 0, 1, -3, 3, -3, 3, 0, 0, SP_NONE, ref_sqdist),
    ROW("SqNorm2", "SqNorm2(x - y)", 3, 3, 0, 1, -3, 3, -3, 3, 0, 0, SP_NONE, ref_sqdist),
    ROW("Norm2", "Norm2(x - y)", 3, 3, 0, 1, -3, 3, -3, 3, 0, 0, SP_NONE, ref_norm2),
    ROW("Normalize", "Normalize(x - y)", 3, 3, 0, 3, -3, 3, -3, 3, 0, 0, SP_NONE, ref_normalize),
    ROW("WeightedSqNorm_iso", "WeightedSqNorm(p, x - y)", 3, 3, 1, 1, -2, 2, -2, 2, 0.5, 2,
        SP_NONE, ref_wsq),
    ROW("WeightedSqNorm_diag", "WeightedSqNorm(p, x - y)", 3, 3, 3, 1, -2, 2, -2, 2, 0.5, 2,
        SP_NONE, ref_wsq),
    ROW("WeightedSqNorm_full", "WeightedSqNorm(p, x - y)", 3, 3, 9, 1, -2, 2, -2, 2, -1, 1,
        SP_NONE, ref_wsq),
    ROW("WeightedSqDist_iso", "WeightedSqDist(p, x, y)", 3, 3, 1, 1, -2, 2, -2, 2, 0.5, 2,
        SP_NONE, ref_wsq),
    ROW("WeightedSqDist_diag", "WeightedSqDist(p, x, y)", 3, 3, 3, 1, -2, 2, -2, 2, 0.5, 2,
        SP_NONE, ref_wsq),
    ROW("WeightedSqDist_full", "WeightedSqDist(p, x, y)", 3, 3, 9, 1, -2, 2, -2, 2, -1, 1,
        SP_NONE, ref_wsq),
    ROW("Sum_components", "Sum(x * y)", 3, 3, 0, 1, -3, 3, -3, 3, 0, 0, SP_NONE, ref_sum),
    ROW("Max_components", "Max(x - y)", 3, 3, 0, 1, -3, 3, -3, 3, 0, 0, SP_NONE, ref_maxc),
    ROW("Min_components", "Min(x - y)", 3, 3, 0, 1, -3, 3, -3, 3, 0, 0, SP_NONE, ref_minc),
    ROW("ArgMax_components", "ArgMax(x - y)", 3, 3, 0, 1, -3, 3, -3, 3, 0, 0, SP_NONE,
        ref_argmaxc),
    ROW("ArgMin_components", "ArgMin(x - y)", 3, 3, 0, 1, -3, 3, -3, 3, 0, 0, SP_NONE,
        ref_argminc),
    ROW("Elem", "Elem(x, 2) * Elem(y, 0)", 3, 3, 0, 1, -3, 3, -3, 3, 0, 0, SP_NONE, ref_elem),
    ROW("Extract", "Extract(x, 1, 2) - Extract(y, 0, 2)", 3, 3, 0, 2, -3, 3, -3, 3, 0, 0,
        SP_NONE, ref_extract),
    ROW("Concat", "Concat(x, y)", 3, 2, 0, 5, -3, 3, -3, 3, 0, 0, SP_NONE, ref_concat),
    ROW("OneHot", "OneHot(x, 4) + OneHot(y, 4)", 1, 1, 0, 4, -0.45, 3.45, -0.45, 3.45, 0, 0,
        SP_NONE, ref_onehot),
    ROW("MatVecMult", "MatVecMult(x, y)", 6, 3, 0, 2, -3, 3, -3, 3, 0, 0, SP_NONE, ref_matvec),
    ROW("VecMatMult", "VecMatMult(y, x)", 6, 2, 0, 3, -3, 3, -3, 3, 0, 0, SP_NONE, ref_vecmat),
    ROW("TensorProd", "TensorProd(x, y)", 2, 3, 0, 6, -3, 3, -3, 3, 0, 0, SP_NONE,
        ref_tensorprod),
    /* constants */
    ROW("literals_float", "x * 2.5 + y / 4 - 1e-1", 3, 3, 0, 3, -3, 3, -3, 3, 0, 0, SP_NONE,
        ref_literals),
    ROW("literals_int_first", "3 + 2 * x * y - 1.5e1", 3, 3, 0, 3, -3, 3, -3, 3, 0, 0, SP_NONE,
        ref_literals2),
    ROW("IntCst", "x * IntCst(3) + y", 3, 3, 0, 3, -3, 3, -3, 3, 0, 0, SP_NONE, ref_intcst),
    ROW("Zero", "x + Zero(3) - y", 3, 3, 0, 3, -3, 3, -3, 3, 0, 0, SP_NONE, ref_zero),
    /* scalar-to-vector broadcasting (dim-1 operand with a dim-3 one) */
    ROW("bcast_vec_times_param", "x * p + y", 3, 3, 1, 3, -3, 3, -3, 3, -2, 2, SP_NONE,
        ref_bcast_xp),
    ROW("bcast_param_minus_vec_div_scalar", "p - x / y", 3, 1, 1, 3, -3, 3, 0.5, 2, -2, 2,
        SP_SIGNED, ref_bcast_pxy),
    ROW("bcast_scalar_i_plus_vec_j", "x + y", 1, 3, 0, 3, -3, 3, -3, 3, 0, 0, SP_NONE, ref_add),
    ROW("bcast_vec_i_times_scalar_j", "x * y", 3, 1, 0, 3, -3, 3, -3, 3, 0, 0, SP_NONE, ref_mul),
    ROW("bcast_Atan2", "Atan2(x, y)", 3, 1, 0, 3, -3, 3, 0.1, 3, 0, 0, SP_SIGNED, ref_atan2),
    /* variables */
    ROW("param_vector", "x * p - y", 3, 3, 3, 3, -3, 3, -3, 3, -2, 2, SP_NONE, ref_param_vec),
    ROW("direct_Vi_Vj_Pm", "Vi(0,3) * Vj(1,3) + Pm(2,1)", 3, 3, 1, 3, -3, 3, -3, 3, -2, 2,
        SP_NONE, ref_direct_vars),
    /* compositions */
    ROW("gaussian_kernel", "Exp(-SqDist(x, y) * p) * Sum(y)", 3, 3, 1, 1, -1, 1, -1, 1, 0.5, 2,
        SP_NONE, ref_gauss),
    ROW("nested_functions", "Sqrt(Abs(Sin(x) * Cos(y))) + Exp(-Square(x))", 3, 3, 0, 3, -3, 3,
        -3, 3, 0, 0, SP_NONE, ref_nested),
};

#define N_CASES (sizeof(cases) / sizeof(cases[0]))

/* ------------------------------------------------------------ data */

static const double discrete_vals[] = {-1.0, -0.5, 0.0, 0.5, 1.0};
static const double halves_vals[] = {-2.5, -1.5, -0.5, 0.5, 1.5, 2.5,
                                     0.125, -0.125, 0.375, -0.375, 1.625, -2.875};

static void fill(kpt_rng *r, double *a, size_t n, double lo, double hi, int special) {
    kpt_fill_uniform(r, a, n, lo, hi);
    for (size_t k = 0; k < n; k++) {
        switch (special) {
        case SP_ZEROS:
            if (k % 3 == 1) a[k] = 0.0;
            break;
        case SP_SIGNED:
            if (k % 2 == 1) a[k] = -a[k];
            break;
        case SP_DISCRETE: a[k] = discrete_vals[kpt_rng_int(r, 0, 4)]; break;
        case SP_HALVES:
            if (k % 2 == 1) a[k] = halves_vals[kpt_rng_int(r, 0, 11)];
            break;
        case SP_INTS:
            if (k % 3 == 1) a[k] = (double)kpt_rng_int(r, -4, 4);
            break;
        default: break;
        }
    }
}

static uint64_t name_seed(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* ------------------------------------------------------------ the test */

typedef struct op_test {
    const op_case *c;
    kp_dtype dtype;
} op_test;

/* Asserts that Sum_Reduction(F, 1) and Sum_Reduction(F, 0) match the double
 * reference (see top): axis 1 sums over the M = 41 j points, axis 0 over the
 * N = 19 i points (both with a ragged SIMD tail). */
static void test_op(void **state) {
    const op_test *t = (const op_test *)*state;
    const op_case *c = t->c;
    kp_dtype dt = t->dtype;
    kpt_rng rng;
    kpt_rng_seed(&rng, name_seed(c->name));

    size_t nx = (size_t)(N_I * c->dx), ny = (size_t)(N_J * c->dy), np = (size_t)c->dp;
    size_t nout = (size_t)((N_I > N_J ? N_I : N_J) * c->dout);
    double *x = calloc(nx, sizeof(double)), *y = calloc(ny, sizeof(double));
    double *p = calloc(np ? np : 1, sizeof(double));
    double *F = calloc((size_t)(N_I * N_J * c->dout), sizeof(double));
    double *ref = calloc(nout, sizeof(double)), *scale = calloc(nout, sizeof(double));
    double *got = calloc(nout, sizeof(double));
    assert_non_null(x);
    assert_non_null(y);
    assert_non_null(F);
    assert_non_null(got);

    fill(&rng, x, nx, c->xlo, c->xhi, c->special);
    fill(&rng, y, ny, c->ylo, c->yhi, c->special);
    if (np) fill(&rng, p, np, c->plo, c->phi, SP_NONE);
    kpt_round_to_dtype(x, nx, dt);
    kpt_round_to_dtype(y, ny, dt);
    kpt_round_to_dtype(p, np, dt);
    for (int i = 0; i < N_I; i++)
        for (int j = 0; j < N_J; j++) c->ref(c, x + i * c->dx, y + j * c->dy, p, F + (i * N_J + j) * c->dout);

    char ax[32], ay[32], ap[32];
    snprintf(ax, sizeof ax, "x = Vi(%d)", c->dx);
    snprintf(ay, sizeof ay, "y = Vj(%d)", c->dy);
    snprintf(ap, sizeof ap, "p = Pm(%d)", c->dp);
    const char *aliases[3] = {ax, ay, ap};
    kpt_arg args[3] = {{x, N_I, c->dx}, {y, N_J, c->dy}, {p, -1, c->dp}};
    size_t n_args = c->dp ? 3 : 2, bad = 0;
    double tol = dt == KP_FLOAT64 ? (c->tol64 > 0 ? c->tol64 : 1e-12)
                                  : (c->tol32 > 0 ? c->tol32 : 1e-5);
    kp_context *ctx = NULL;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    for (int axis = 1; axis >= 0; axis--) {
        int rows = axis ? N_I : N_J, red = axis ? N_J : N_I;
        char text[256];
        snprintf(text, sizeof text, "Sum_Reduction(%s, %d)", c->formula, axis);
        memset(ref, 0, nout * sizeof(double));
        memset(scale, 0, nout * sizeof(double));
        for (int r = 0; r < rows; r++)
            for (int q = 0; q < red; q++) {
                const double *f = F + ((axis ? r * N_J + q : q * N_J + r) * c->dout);
                for (int d = 0; d < c->dout; d++) {
                    ref[r * c->dout + d] += f[d];
                    scale[r * c->dout + d] += fabs(f[d]);
                }
            }
        kp_status st = kpt_run(ctx, dt == KP_FLOAT64 ? KPT_VIA_PLAN : KPT_VIA_REDUCE, text,
                               aliases, n_args, dt, args, n_args, rows, c->dout, got, 0, NULL, NULL);
        if (st != KP_OK) {
            print_error("%s: status %d: %s\n", text, (int)st, kp_context_message(ctx));
            bad++;
            continue;
        }
        bad += kpt_check(text, got, ref, scale, (size_t)(rows * c->dout), tol, 1e-300);
    }
    kp_context_free(ctx);
    free(x);
    free(y);
    free(p);
    free(F);
    free(ref);
    free(scale);
    free(got);
    assert_int_equal(bad, 0);
}

/* ============================================================ pointwise */

/*
 * Pointwise accuracy over wide domains. Sums hide the error of small terms, so
 * here each output is ONE value of the op: with x = Vi(1) holding i, z = Vj(1)
 * holding j and y = Vj(dy) the inputs,
 *     Sum_Reduction(IfElse(-Square(x - z), OP(y), 0), 1)
 * gives out_i = OP(y_i) (every other term is the literal 0, selected, not
 * multiplied), and OP still runs along j in SIMD lanes. Asserts
 *     |got - ref| <= rtol |ref| + atol
 * per element, ref = the C library's double result on the dtype-rounded input;
 * rtol is 5e-6 (float32) / 1e-13 (float64) unless the row says otherwise; atol
 * is non-zero only for ops whose zeros lie between representable inputs.
 */
enum { PW_N = 1024 };

enum {
    D_EXP,        /* [-87, 88] and |v| < 1e-3 */
    D_POS_LOG,    /* log-uniform [1e-30, 1e30] and 1 +- 1e-3 */
    D_SIGNED_LOG, /* +- log-uniform [1e-15, 1e15] */
    D_TRIG,       /* [-100, 100] and |v| < 1e-4 */
    D_UNIT,       /* [-1, 1] with -1, 0, 1 and +-1e-6 */
    D_SMALL_ODD,  /* [-20, 20] and +- log-uniform [1e-8, 1] */
    D_XLOGX,      /* 0 and log-uniform [1e-30, 1e10] */
    D_POWF,       /* y0 log-uniform [1e-3, 1e3], y1 in [-5, 5] */
    D_PAIR_LOG,   /* y0, y1 both +- log-uniform [1e-10, 1e10] */
    D_POWINT      /* +- [0.1, 10] */
};

typedef struct pw_case {
    const char *name;
    const char *expr; /* over y */
    int dy;
    double (*f1)(double);
    double (*f2)(double, double);
    int dom;
    double rtol32, atol32, rtol64, atol64; /* 0: defaults (atol 0) */
} pw_case;

static double f2_powf(double a, double b) { return pow(a, b); }
static double f2_atan2(double a, double b) { return atan2(a, b); }
static double f2_div(double a, double b) { return a / b; }
static double f_pow7(double v) { return v * v * v * v * v * v * v; }
static double f_powm3(double v) { return 1.0 / (v * v * v); }

static const pw_case pw_cases[] = {
    {"Exp", "Exp(y)", 1, f_exp, NULL, D_EXP, 0, 0, 0, 0},
    {"Log", "Log(y)", 1, f_log, NULL, D_POS_LOG, 0, 1e-7, 0, 1e-16},
    {"Sqrt", "Sqrt(y)", 1, f_sqrt, NULL, D_POS_LOG, 0, 0, 0, 0},
    {"Rsqrt", "Rsqrt(y)", 1, f_rsqrt, NULL, D_POS_LOG, 0, 0, 0, 0},
    {"Inv", "Inv(y)", 1, f_inv, NULL, D_SIGNED_LOG, 0, 0, 0, 0},
    {"Square", "Square(y)", 1, f_square, NULL, D_SIGNED_LOG, 0, 0, 0, 0},
    {"Sin", "Sin(y)", 1, f_sin, NULL, D_TRIG, 0, 2e-7, 0, 1e-15},
    {"Cos", "Cos(y)", 1, f_cos, NULL, D_TRIG, 0, 2e-7, 0, 1e-15},
    {"Asin", "Asin(y)", 1, f_asin, NULL, D_UNIT, 0, 0, 0, 0},
    {"Acos", "Acos(y)", 1, f_acos, NULL, D_UNIT, 0, 1e-7, 0, 1e-16},
    {"Atan", "Atan(y)", 1, f_atan, NULL, D_SIGNED_LOG, 0, 0, 0, 0},
    {"Tanh", "Tanh(y)", 1, f_tanh, NULL, D_SMALL_ODD, 1e-5, 0, 0, 0},
    {"Erf", "Erf(y)", 1, f_erf, NULL, D_SMALL_ODD, 1e-5, 0, 0, 0},
    {"SinXDivX", "SinXDivX(y)", 1, f_sinxdivx, NULL, D_TRIG, 0, 2e-7, 0, 1e-15},
    {"XLogX", "XLogX(y)", 1, f_xlogx, NULL, D_XLOGX, 0, 1e-7, 0, 1e-16},
    {"Pow7", "Pow(y, 7)", 1, f_pow7, NULL, D_POWINT, 0, 0, 0, 0},
    {"Pow_neg3", "Pow(y, -3)", 1, f_powm3, NULL, D_POWINT, 0, 0, 0, 0},
    {"Powf", "Powf(Elem(y, 0), Elem(y, 1))", 2, NULL, f2_powf, D_POWF, 1e-5, 0, 1e-12, 0},
    {"Atan2", "Atan2(Elem(y, 0), Elem(y, 1))", 2, NULL, f2_atan2, D_PAIR_LOG, 0, 0, 0, 0},
    {"Divide", "Elem(y, 0) / Elem(y, 1)", 2, NULL, f2_div, D_PAIR_LOG, 0, 0, 0, 0},
};
#define N_PW (sizeof(pw_cases) / sizeof(pw_cases[0]))

static double log_uniform(kpt_rng *r, double lo, double hi) {
    return exp(kpt_rng_uniform(r, log(lo), log(hi)));
}
static double rsign(kpt_rng *r, double v) { return (kpt_rng_u64(r) & 1u) ? -v : v; }

static void pw_fill(kpt_rng *r, int dom, double *y, int dy, size_t n) {
    static const double unit_special[] = {-1.0, 0.0, 1.0, 1e-6, -1e-6};
    for (size_t k = 0; k < n; k++) {
        int alt = k % 4 == 3;
        double *v = y + k * (size_t)dy;
        switch (dom) {
        case D_EXP: v[0] = alt ? kpt_rng_uniform(r, -1e-3, 1e-3) : kpt_rng_uniform(r, -87, 88); break;
        case D_POS_LOG: v[0] = alt ? 1.0 + kpt_rng_uniform(r, -1e-3, 1e-3) : log_uniform(r, 1e-30, 1e30); break;
        case D_SIGNED_LOG: v[0] = rsign(r, log_uniform(r, 1e-15, 1e15)); break;
        case D_TRIG: v[0] = alt ? kpt_rng_uniform(r, -1e-4, 1e-4) : kpt_rng_uniform(r, -100, 100); break;
        case D_UNIT: v[0] = k % 8 == 7 ? unit_special[(k / 8) % 5] : kpt_rng_uniform(r, -1, 1); break;
        case D_SMALL_ODD: v[0] = alt ? rsign(r, log_uniform(r, 1e-8, 1)) : kpt_rng_uniform(r, -20, 20); break;
        case D_XLOGX: v[0] = k % 16 == 5 ? 0.0 : log_uniform(r, 1e-30, 1e10); break;
        case D_POWF:
            v[0] = log_uniform(r, 1e-3, 1e3);
            v[1] = kpt_rng_uniform(r, -5, 5);
            break;
        case D_PAIR_LOG:
            v[0] = rsign(r, log_uniform(r, 1e-10, 1e10));
            v[1] = rsign(r, log_uniform(r, 1e-10, 1e10));
            break;
        default: v[0] = rsign(r, kpt_rng_uniform(r, 0.1, 10)); break;
        }
    }
}

/* Runs out_i = EXPR(y_i) for n points through the IfElse selection above. */
static kp_status pw_run(kp_context *ctx, const char *expr, int dy, kp_dtype dt, const double *y,
                        size_t n, double *out) {
    double *ids = calloc(n, sizeof(double));
    char text[256], ay[32];
    if (!ids) return KP_ERR_OOM;
    for (size_t k = 0; k < n; k++) ids[k] = (double)k;
    snprintf(text, sizeof text, "Sum_Reduction(IfElse(-Square(x - z), %s, 0), 1)", expr);
    snprintf(ay, sizeof ay, "y = Vj(%d)", dy);
    const char *al[] = {"x = Vi(1)", "z = Vj(1)", ay};
    kpt_arg args[3] = {{ids, (int64_t)n, 1}, {ids, (int64_t)n, 1}, {y, (int64_t)n, dy}};
    kp_status st = kpt_run(ctx, KPT_VIA_PLAN, text, al, 3, dt, args, 3, (int64_t)n, 1, out, 0,
                           NULL, NULL);
    free(ids);
    return st;
}

static void test_pointwise(void **state) {
    const op_test *t = (const op_test *)*state;
    const pw_case *c = (const pw_case *)(const void *)t->c;
    kp_dtype dt = t->dtype;
    kpt_rng rng;
    kpt_rng_seed(&rng, name_seed(c->name) ^ 0x5eedu);
    double *y = calloc(PW_N * 2, sizeof(double)), *got = calloc(PW_N, sizeof(double));
    double *ref = calloc(PW_N, sizeof(double));
    assert_non_null(y);
    assert_non_null(got);
    assert_non_null(ref);
    pw_fill(&rng, c->dom, y, c->dy, PW_N);
    kpt_round_to_dtype(y, (size_t)(PW_N * c->dy), dt);
    for (size_t k = 0; k < PW_N; k++)
        ref[k] = c->dy == 1 ? c->f1(y[k]) : c->f2(y[2 * k], y[2 * k + 1]);
    kp_context *ctx = NULL;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    kp_status st = pw_run(ctx, c->expr, c->dy, dt, y, PW_N, got);
    if (st != KP_OK) print_error("%s: %s\n", c->expr, kp_context_message(ctx));
    assert_int_equal(st, KP_OK);
    double rtol = dt == KP_FLOAT32 ? (c->rtol32 > 0 ? c->rtol32 : 5e-6)
                                   : (c->rtol64 > 0 ? c->rtol64 : 1e-13);
    double atol = dt == KP_FLOAT32 ? c->atol32 : c->atol64;
    size_t bad = kpt_check(c->expr, got, ref, NULL, PW_N, rtol, atol > 0 ? atol : 1e-300);
    if (bad)
        for (size_t k = 0, shown = 0; k < PW_N && shown < 5; k++)
            if (fabs(got[k] - ref[k]) > rtol * fabs(ref[k]) + atol) {
                fprintf(stderr, "    input %.9g%s%.9g\n", y[k * (size_t)c->dy],
                        c->dy == 2 ? ", " : "", c->dy == 2 ? y[2 * k + 1] : 0.0);
                shown++;
            }
    kp_context_free(ctx);
    free(y);
    free(got);
    free(ref);
    assert_int_equal(bad, 0);
}

/* ============================================================ special values */

/*
 * IEEE special inputs (kp.h: NaN and Inf propagate as IEEE arithmetic says).
 * Expected values are those of C99 Annex F libm (exp(inf) = inf, exp(-inf) = 0,
 * log(0) = -inf, sqrt(-1) = NaN, tanh(+-inf) = +-1, atan(inf) = pi/2, ...),
 * through the KeOps definitions for Rsqrt, XLogX, Sign, Step, ReLU. Overflow
 * of a finite input (Exp(1000)) must give inf, and Tanh/Erf of large finite
 * inputs must give +-1, not NaN. Evaluated pointwise as in test_pointwise, with
 * the list repeated to 40 entries so the SIMD body runs too; asserts exact
 * equality for non-finite results and rtol 1e-6 otherwise.
 */
typedef struct sv_case {
    const char *expr;
    double (*f)(double);
    double in[6];
    int n;
} sv_case;

#define INF_ INFINITY
static const sv_case sv_cases[] = {
    {"Exp(y)", f_exp, {INF_, -INF_, NAN, 1000, -1000, 0}, 6},
    {"Log(y)", f_log, {0, INF_, -1, NAN, 1}, 5},
    {"Sqrt(y)", f_sqrt, {-1, INF_, 0, NAN}, 4},
    {"Rsqrt(y)", f_rsqrt, {INF_, -1, NAN, 0}, 4},
    {"Inv(y)", f_inv, {0, INF_, -INF_, NAN}, 4},
    {"Sin(y)", f_sin, {INF_, -INF_, NAN}, 3},
    {"Cos(y)", f_cos, {INF_, -INF_, NAN}, 3},
    {"Tanh(y)", f_tanh, {INF_, -INF_, 100, -100, NAN}, 5},
    {"Erf(y)", f_erf, {INF_, -INF_, 10, -10, NAN}, 5},
    {"Atan(y)", f_atan, {INF_, -INF_, NAN}, 3},
    {"Asin(y)", f_asin, {2, -2, NAN}, 3},
    {"Acos(y)", f_acos, {2, -2, NAN}, 3},
    {"Abs(y)", f_abs, {-INF_, NAN, INF_}, 3},
    {"Square(y)", f_square, {INF_, -INF_, NAN}, 3},
    {"Sign(y)", f_sign, {INF_, -INF_}, 2},
    {"Step(y)", f_step, {INF_, -INF_}, 2},
    {"ReLU(y)", f_relu, {INF_, -INF_}, 2},
    {"Floor(y)", f_floor, {INF_, -INF_, NAN}, 3},
    {"XLogX(y)", f_xlogx, {INF_, NAN}, 2},
};
#define N_SV (sizeof(sv_cases) / sizeof(sv_cases[0]))

static void test_special_values(void **state) {
    kp_dtype dt = *(const kp_dtype *)*state;
    enum { L = 40 };
    double y[L], got[L], ref[L];
    size_t bad = 0;
    kp_context *ctx = NULL;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    for (size_t c = 0; c < N_SV; c++) {
        for (int k = 0; k < L; k++) {
            y[k] = sv_cases[c].in[k % sv_cases[c].n];
            ref[k] = sv_cases[c].f(y[k]);
        }
        kp_status st = pw_run(ctx, sv_cases[c].expr, 1, dt, y, L, got);
        if (st != KP_OK) {
            fprintf(stderr, "  [%s] status %d: %s\n", sv_cases[c].expr, (int)st,
                    kp_context_message(ctx));
            bad++;
            continue;
        }
        char label[64];
        snprintf(label, sizeof label, "%s %s", sv_cases[c].expr, kpt_dtype_name(dt));
        size_t b = kpt_check(label, got, ref, NULL, (size_t)sv_cases[c].n, 1e-6, 0);
        if (b) {
            for (int k = 0; k < sv_cases[c].n; k++)
                fprintf(stderr, "    %s(%g) = %g, expected %g\n", sv_cases[c].expr, y[k], got[k], ref[k]);
        } else {
            /* the SIMD body sees the same inputs: all repetitions must agree too */
            b = kpt_check(label, got, ref, NULL, L, 1e-6, 0);
        }
        bad += b;
    }
    kp_context_free(ctx);
    assert_int_equal(bad, 0);
}

int main(void) {
    static const kp_dtype dts[2] = {KP_FLOAT64, KP_FLOAT32};
    size_t n = 2 * N_CASES + 2 * N_PW + 2;
    struct CMUnitTest *tests = calloc(n, sizeof *tests);
    op_test *states = calloc(n, sizeof *states);
    char **names = calloc(n, sizeof *names);
    if (!tests || !states || !names) return 1;
    for (size_t k = 0; k < n; k++) {
        names[k] = malloc(128);
        if (!names[k]) return 1;
        states[k].dtype = dts[k % 2];
        if (k < 2 * N_CASES) {
            states[k].c = &cases[k / 2];
            snprintf(names[k], 128, "%s_%s", cases[k / 2].name, kpt_dtype_name(dts[k % 2]));
            tests[k].test_func = test_op;
            tests[k].initial_state = &states[k];
        } else if (k < 2 * N_CASES + 2 * N_PW) {
            size_t q = (k - 2 * N_CASES) / 2;
            states[k].c = (const op_case *)(const void *)&pw_cases[q];
            snprintf(names[k], 128, "pointwise_%s_%s", pw_cases[q].name, kpt_dtype_name(dts[k % 2]));
            tests[k].test_func = test_pointwise;
            tests[k].initial_state = &states[k];
        } else {
            snprintf(names[k], 128, "special_values_%s", kpt_dtype_name(dts[k % 2]));
            tests[k].test_func = test_special_values;
            tests[k].initial_state = (void *)(uintptr_t)&dts[k % 2];
        }
        tests[k].name = names[k];
    }
    int failed = _cmocka_run_group_tests("ops", tests, n, NULL, NULL);
    for (size_t k = 0; k < n; k++) free(names[k]);
    free(names);
    free(states);
    free(tests);
    return failed;
}
