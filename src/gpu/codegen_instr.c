/* codegen_instr.c — the ROW / COL / PAIR programs' instructions as kernel source: operands,
 * elementwise ops (device/ew_ops.def), variables, reductions over components, layout, products. */
#include <math.h>
#include <stdio.h>

#include "formula/node.h"
#include "gpu/codegen_internal.h"

/* Prints the operand's component c (an expression string; "0" for dim 1). */
void kp__cg_operand(kp_cg_gen *g, kp_operand o, const char *c) {
    const char *cc = o.dim == 1 ? "0" : c;
    switch (o.loc) {
    case KP_LOC_ROW: kp__sb_printf(g->s, "rv[%s][%d + (%s)]", g->rrow, o.off, cc); break;
    case KP_LOC_COL:
        if (g->in_pair) kp__sb_printf(g->s, "cp[%d + (%s)]", o.off, cc);
        else kp__sb_printf(g->s, "cv[%d + (%s)]", o.off, cc);
        break;
    case KP_LOC_PAIR: kp__sb_printf(g->s, "pv[%d + (%s)]", o.off, cc); break;
    }
}

static void print_real(kp_cg_gen *g, double v) {
    if (v != v) kp__sb_printf(g->s, "KP_NAN");
    else if (isinf(v)) kp__sb_printf(g->s, "%sKP_INF", v < 0 ? "-" : "");
    else if (g->dtype == KP_FLOAT32) kp__sb_printf(g->s, "(real)%.9ef", (double)(float)v);
    else kp__sb_printf(g->s, "(real)%.17e", v);
}

/* Every elementwise op of formula/ops.def has a device function in device/ew_ops.def. */
enum { KP__CLS_LEAF = 0, KP__CLS_EW1 = 1, KP__CLS_EW2 = 1, KP__CLS_EW3 = 1, KP__CLS_VEC = 0 };
enum {
    KP__N_ELEMENTWISE = 0
#define X(e, name, arity, cls) +KP__CLS_##cls
#include "formula/ops.def"
#undef X
};
enum {
    KP__N_DEVICE_OPS = 0
#define KP_DEVICE_OP(op, fn, args) +1
#include "device/ew_ops.def"
#undef KP_DEVICE_OP
};
_Static_assert((int)KP__N_ELEMENTWISE == (int)KP__N_DEVICE_OPS, "an elementwise op of ops.def lacks its row in ew_ops.def");

/* Device function of an elementwise op (NULL for the others). */
static const char *ew_name(kp_op op) {
    static const char *const names[KP_OP_COUNT_] = {
#define KP_DEVICE_OP(op, fn, args) [op] = #fn,
#include "device/ew_ops.def"
#undef KP_DEVICE_OP
    };
    return (unsigned)op < (unsigned)KP_OP_COUNT_ ? names[op] : NULL;
}

/* An elementwise op: its device function (device/ops.h) per component. */
static void emit_elementwise(kp_cg_gen *g, const kp_instr *ins, const char *fn) {
    kp_sbuf *s = g->s;
    kp_operand o = ins->out, a = ins->in[0], b = ins->in[1], c = ins->in[2];
    kp__sb_printf(s, "      for (int c_ = 0; c_ < %d; c_++) ", o.dim);
    kp__cg_operand(g, o, "c_");
    int fused = ins->op == KP_OP_EXP && ins->nin == 2; /* Exp(a * s) or Exp(a / s), see program.h */
    kp__sb_printf(s, " = %s(", fused ? (ins->ip[1] ? "kp__d_expd" : "kp__d_exps") : fn);
    kp__cg_operand(g, a, "c_");
    if (fused) {
        kp__sb_printf(s, ", ");
        kp__cg_operand(g, b, "0");
    } else if (ins->nin > 1) {
        kp__sb_printf(s, ", ");
        kp__cg_operand(g, b, "c_");
    }
    if (ins->nin > 2) {
        kp__sb_printf(s, ", ");
        kp__cg_operand(g, c, "c_");
    }
    if (ins->op == KP_OP_POW || ins->op == KP_OP_ROUND) kp__sb_printf(s, ", %d", ins->ip[0]);
    kp__sb_printf(s, ");\n    }\n");
}

/* Var (an argument's components: parameter, row or point), Const, IndexI/IndexJ. */
static void emit_var(kp_cg_gen *g, const kp_instr *ins, kp_loc part) {
    kp_sbuf *s = g->s;
    kp_operand o = ins->out;
    int p = ins->ip[1];
    kp_var_category cat = (kp_var_category)ins->ip[0];
    kp__sb_printf(s, "      for (int c_ = 0; c_ < %d; c_++) ", o.dim);
    kp__cg_operand(g, o, "c_");
    if (cat == KP_VAR_PARAM) kp__sb_printf(s, " = a%d[bz * bs%d + c_];\n", p, p);
    else if (part == KP_LOC_ROW) kp__sb_printf(s, " = active ? a%d[bz * bs%d + r * %d + c_] : (real)0;\n", p, p, o.dim);
    else kp__sb_printf(s, " = a%d[bz * bs%d + j * %d + c_];\n", p, p, o.dim);
}

static void emit_const(kp_cg_gen *g, const kp_instr *ins) {
    kp__sb_printf(g->s, "      for (int c_ = 0; c_ < %d; c_++) ", ins->out.dim);
    kp__cg_operand(g, ins->out, "c_");
    kp__sb_printf(g->s, " = ");
    print_real(g, ins->value);
    kp__sb_printf(g->s, ";\n");
}

static void emit_index(kp_cg_gen *g, const kp_instr *ins, kp_loc part) {
    kp__sb_printf(g->s, "      ");
    kp__cg_operand(g, ins->out, "0");
    if (g->states) kp__sb_printf(g->s, " = (real)(%s);\n", part == KP_LOC_ROW ? "r + row_off" : "j + col_off");
    else kp__sb_printf(g->s, " = (real)%s;\n", part == KP_LOC_ROW ? "r" : "j");
}

/* Reductions over components: Dot, SqDist, Sum, Max/Min and their Arg. */
static void emit_over_components(kp_cg_gen *g, const kp_instr *ins) {
    kp_sbuf *s = g->s;
    kp_operand o = ins->out, a = ins->in[0], b = ins->in[1];
    if (ins->op == KP_OP_DOT || ins->op == KP_OP_SQDIST) {
        kp__sb_printf(s, "      real s_ = 0;\n      for (int c_ = 0; c_ < %d; c_++) { real x_ = ", a.dim);
        kp__cg_operand(g, a, "c_");
        kp__sb_printf(s, ", y_ = ");
        kp__cg_operand(g, b, "c_");
        kp__sb_printf(s, "; s_ += %s; }\n      ", ins->op == KP_OP_DOT ? "x_ * y_" : "(x_ - y_) * (x_ - y_)");
        kp__cg_operand(g, o, "0");
        kp__sb_printf(s, " = s_;\n");
    } else if (ins->op == KP_OP_SUM) {
        kp__sb_printf(s, "      real s_ = 0;\n      for (int c_ = 0; c_ < %d; c_++) s_ += ", a.dim);
        kp__cg_operand(g, a, "c_");
        kp__sb_printf(s, ";\n      ");
        kp__cg_operand(g, o, "0");
        kp__sb_printf(s, " = s_;\n");
    } else {
        int is_max = ins->op == KP_OP_MAXC || ins->op == KP_OP_ARGMAXC;
        int is_arg = ins->op == KP_OP_ARGMAXC || ins->op == KP_OP_ARGMINC;
        kp__sb_printf(s, "      real best_ = ");
        kp__cg_operand(g, a, "0");
        kp__sb_printf(s, ";\n      int arg_ = 0;\n      for (int c_ = 1; c_ < %d; c_++) { real v_ = ", a.dim);
        kp__cg_operand(g, a, "c_");
        kp__sb_printf(s, "; if (%s(v_, best_)) { best_ = v_; arg_ = c_; } }\n      ",
                  is_max ? "KP_BETTER_MAX" : "KP_BETTER_MIN");
        kp__cg_operand(g, o, "0");
        kp__sb_printf(s, " = %s;\n", is_arg ? "(real)arg_" : "best_");
    }
}

/* Moves of components: Extract, Concat, OneHot, broadcast. */
static void emit_layout(kp_cg_gen *g, const kp_instr *ins) {
    kp_sbuf *s = g->s;
    kp_operand o = ins->out, a = ins->in[0], b = ins->in[1];
    char e[32];
    if (ins->op == KP_OP_EXTRACT || ins->op == KP_OP_BCAST) { /* a broadcast copies from component 0 */
        snprintf(e, sizeof e, "c_ + %d", ins->ip[0]);
        kp__sb_printf(s, "      for (int c_ = 0; c_ < %d; c_++) ", o.dim);
        kp__cg_operand(g, o, "c_");
        kp__sb_printf(s, " = ");
        kp__cg_operand(g, a, ins->op == KP_OP_EXTRACT ? e : "c_");
        kp__sb_printf(s, ";\n");
    } else if (ins->op == KP_OP_CONCAT) {
        snprintf(e, sizeof e, "%d + c_", a.dim);
        kp__sb_printf(s, "      for (int c_ = 0; c_ < %d; c_++) ", a.dim);
        kp__cg_operand(g, o, "c_");
        kp__sb_printf(s, " = ");
        kp__cg_operand(g, a, "c_");
        kp__sb_printf(s, ";\n      for (int c_ = 0; c_ < %d; c_++) ", b.dim);
        kp_operand o2 = o;
        o2.dim = 2; /* never broadcast the output */
        kp__cg_operand(g, o2, e);
        kp__sb_printf(s, " = ");
        kp__cg_operand(g, b, "c_");
        kp__sb_printf(s, ";\n");
    } else { /* KP_OP_ONEHOT */
        kp__sb_printf(s, "      real r_ = kp__d_round(");
        kp__cg_operand(g, a, "0");
        kp__sb_printf(s, ");\n      for (int c_ = 0; c_ < %d; c_++) ", o.dim);
        kp__cg_operand(g, o, "c_");
        kp__sb_printf(s, " = r_ == (real)c_ ? (real)1 : (real)0;\n");
    }
}

/* o[i] = sum over k < n of x[xi] * y[yi], for i < m (loop variables iv, kv). */
static void emit_sum_of_products(kp_cg_gen *g, kp_operand o, const char *iv, int m, const char *kv, int n, kp_operand x,
                                 const char *xi, kp_operand y, const char *yi) {
    kp_sbuf *s = g->s;
    kp__sb_printf(s, "      for (int %s = 0; %s < %d; %s++) { real s_ = 0;\n        for (int %s = 0; %s < %d; %s++) s_ += ", iv,
              iv, m, iv, kv, kv, n, kv);
    kp__cg_operand(g, x, xi);
    kp__sb_printf(s, " * ");
    kp__cg_operand(g, y, yi);
    kp__sb_printf(s, ";\n        ");
    kp__cg_operand(g, o, iv);
    kp__sb_printf(s, " = s_; }\n");
}

/* Products of matrices and vectors: MatVecMult, VecMatMult, TensorProd. */
static void emit_products(kp_cg_gen *g, const kp_instr *ins) {
    kp_sbuf *s = g->s;
    kp_operand o = ins->out, a = ins->in[0], b = ins->in[1];
    char e[48];
    if (ins->op == KP_OP_MATVEC) { /* o[r] = sum_l A[r*m+l] v[l] */
        snprintf(e, sizeof e, "r_ * %d + l_", b.dim);
        emit_sum_of_products(g, o, "r_", o.dim, "l_", b.dim, a, e, b, "l_");
    } else if (ins->op == KP_OP_VECMAT) { /* o[l] = sum_r v[r] A[r*m+l] */
        snprintf(e, sizeof e, "r_ * %d + l_", o.dim);
        emit_sum_of_products(g, o, "l_", o.dim, "r_", a.dim, a, "r_", b, e);
    } else { /* KP_OP_TENSORPROD */
        snprintf(e, sizeof e, "r_ * %d + l_", b.dim);
        kp_operand o2 = o;
        o2.dim = 2;
        kp__sb_printf(s, "      for (int r_ = 0; r_ < %d; r_++) for (int l_ = 0; l_ < %d; l_++) ", a.dim, b.dim);
        kp__cg_operand(g, o2, e);
        kp__sb_printf(s, " = ");
        kp__cg_operand(g, a, "r_");
        kp__sb_printf(s, " * ");
        kp__cg_operand(g, b, "l_");
        kp__sb_printf(s, ";\n");
    }
}

/* One instruction, in its own block. */
static void emit_instr(kp_cg_gen *g, const kp_instr *ins, kp_loc part) {
    kp__sb_printf(g->s, "    { /* %s */\n", kp__op_name(ins->op));
    const char *fn = ew_name(ins->op);
    if (fn) {
        emit_elementwise(g, ins, fn);
        return;
    }
    switch (ins->op) {
    case KP_OP_VAR: emit_var(g, ins, part); break;
    case KP_OP_CONST: emit_const(g, ins); break;
    case KP_OP_INDEX: emit_index(g, ins, part); break;
    case KP_OP_DOT:
    case KP_OP_SQDIST:
    case KP_OP_SUM:
    case KP_OP_MAXC:
    case KP_OP_MINC:
    case KP_OP_ARGMAXC:
    case KP_OP_ARGMINC: emit_over_components(g, ins); break;
    case KP_OP_EXTRACT:
    case KP_OP_CONCAT:
    case KP_OP_ONEHOT:
    case KP_OP_BCAST: emit_layout(g, ins); break;
    case KP_OP_MATVEC:
    case KP_OP_VECMAT:
    case KP_OP_TENSORPROD: emit_products(g, ins); break;
/* elementwise: handled above */
#include "formula/ops_elementwise_cases.h"
    case KP_OP_COUNT_: break;
    }
    kp__sb_printf(g->s, "    }\n");
}

void kp__cg_part(kp_cg_gen *g, const kp_program_part *P, kp_loc part) {
    for (int i = 0; i < P->n; i++) emit_instr(g, &P->code[i], part);
}
