/* codegen.c — kp_program to CUDA C++ / OpenCL C kernel source (contract in codegen.h). */
#include "gpu/codegen.h"
#include "gpu/device_sources.h"
#include "plan/reduction.h"
#include "core/alloc.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ string builder */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
    kp_context *ctx; /* whose allocator holds p: the program's */
} sbuf;

static void sb_printf(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *s, const char *fmt, ...) {
    if (s->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(s->p ? s->p + s->n : NULL, s->p ? s->cap - s->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            s->oom = 1;
            return;
        }
        if (s->p && s->n + (size_t)k < s->cap) {
            s->n += (size_t)k;
            return;
        }
        size_t cap = s->cap ? s->cap : 4096;
        while (cap <= s->n + (size_t)k) cap *= 2;
        char *q = kp__realloc(s->ctx, s->p, cap);
        if (!q) {
            s->oom = 1;
            return;
        }
        s->p = q;
        s->cap = cap;
    }
}

/* ------------------------------------------------------------ state sizes */


/* Reals per point in the shared tile: the COL values padded to a multiple of
 * 16 bytes (from 3 values on; 1 and 2 stay as they are), so that the pair loop
 * reads a point with vector loads (ld.shared.v4 / v2) broadcast to the warp. */
static int tile_stride(const kp_program *prog, kp_dtype dtype) {
    int per16 = dtype == KP_FLOAT32 ? 4 : 2, n = prog->col_size;
    return n <= 2 ? n : (n + per16 - 1) / per16 * per16;
}

int kp__gpu_default_block(const kp_program *prog, kp_dtype dtype) {
    int b = 128;
    size_t esz = dtype == KP_FLOAT32 ? 4 : 8;
    while (b > 16 && (size_t)tile_stride(prog, dtype) * (size_t)b * esz > 16384) b /= 2;
    return b;
}

/* ------------------------------------------------------------ device prelude */

/* The dialect's part of the prelude: qualifiers, the real type, and the math
 * library (libm names, fast-math approximations); the ops and monoid steps
 * that follow are the shared device sources (device/ops.h, device/monoid.h). */
static void emit_prelude(sbuf *s, kp_dtype dtype, kp_gpu_dialect dia, const char *name, int fast) {
    int f32 = dtype == KP_FLOAT32;
    if (dia == KP_GPU_OPENCL) {
        if (!f32) sb_printf(s, "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n");
        sb_printf(s,
                  "#define KP_KERNEL __kernel\n#define KP_GLOBAL __global\n#define KP_LOCAL __local\n"
                  "#define KP_BARRIER() barrier(CLK_LOCAL_MEM_FENCE)\n"
                  "#define KP_LID ((int)get_local_id(0))\n#define KP_GROUP(d) ((long)get_group_id(d))\n"
                  "#define KP_GSIZE(d) ((long)get_global_size(d))\n#define KP_GLOBAL_ID(d) ((long)get_global_id(d))\n"
                  "#define KP_FN static inline\n#define KP_DEVICE KP_FN\n#define KP_REAL real\n"
                  "typedef %s real;\ntypedef long kp_i64;\n"
                  "#define KP_INF ((real)INFINITY)\n#define KP_NAN ((real)NAN)\n",
                  f32 ? "float" : "double");
    } else {
        sb_printf(s, "#ifndef KP_PRELUDE_CUDA\n#define KP_PRELUDE_CUDA\n"
                     "#define KP_KERNEL extern \"C\" __global__\n#define KP_GLOBAL\n#define KP_LOCAL __shared__\n"
                     "#define KP_BARRIER() __syncthreads()\n#define KP_LID ((int)threadIdx.x)\n"
                     "#define KP_GROUP(d) ((long long)((d) == 0 ? blockIdx.x : (d) == 1 ? blockIdx.y : blockIdx.z))\n"
                     "#define KP_FN static __device__ __forceinline__\n#define KP_DEVICE KP_FN\n#define KP_REAL real\n"
                     "#define KP_INF ((real)__int_as_float(0x7f800000))\n"
                     "#define KP_NAN ((real)__int_as_float(0x7fffffff))\n#endif\n");
        sb_printf(s, "namespace %s {\ntypedef %s real;\ntypedef long long kp_i64;\n", name, f32 ? "float" : "double");
    }
    /* Math functions: OpenCL overloads by type; CUDA takes the f-suffixed names for float. */
    const char *sfx = (dia == KP_GPU_CUDA && f32) ? "f" : "";
    static const char *const unary[] = {"exp", "log", "sqrt", "sin", "cos", "asin", "acos", "atan",
                                        "tanh", "erf", "fabs", "floor", "round"};
    for (size_t k = 0; k < sizeof unary / sizeof unary[0]; k++)
        if (!fast || (strcmp(unary[k], "exp") != 0 && strcmp(unary[k], "log") != 0))
            sb_printf(s, "KP_FN real kp__d_%s(real a) { return %s%s(a); }\n", unary[k], unary[k], sfx);
    if (fast && dia == KP_GPU_CUDA) /* KP_MATH_FAST (kp.h): the special-function unit, flushing subnormals */
        sb_printf(s, "KP_FN real kp__d_exp2(real a) { real r; asm(\"ex2.approx.ftz.f32 %%0, %%1;\" : \"=f\"(r) : \"f\"(a)); "
                     "return r; }\n"
                     "KP_FN real kp__d_exp(real a) { return kp__d_exp2(a * 1.44269504f); }\n"
                     "KP_FN real kp__d_log(real a) { return __logf(a); }\n"
                     "KP_FN real kp__d_rsqrt_raw(real a) { return rsqrtf(a); }\n");
    else if (fast)
        sb_printf(s, "KP_FN real kp__d_exp2(real a) { return native_exp2(a); }\n"
                     "KP_FN real kp__d_exp(real a) { return native_exp(a); }\n"
                     "KP_FN real kp__d_log(real a) { return native_log(a); }\n"
                     "KP_FN real kp__d_rsqrt_raw(real a) { return native_rsqrt(a); }\n");
    else sb_printf(s, "KP_FN real kp__d_rsqrt_raw(real a) { return (real)1 / kp__d_sqrt(a); }\n");
    /* A fused Exp(a * s) or Exp(a / s) (s: a row value or constant, program.h): under fast math
       2^(a * (s log2 e)) and 2^(a * (log2 e / s)), whose factor the compiler hoists out of the pair loop. */
    if (fast) sb_printf(s, "KP_FN real kp__d_exps(real a, real s) { return kp__d_exp2(a * (s * (real)1.44269504f)); }\n"
                           "KP_FN real kp__d_expd(real a, real s) { return kp__d_exp2(a * ((real)1.44269504f / s)); }\n");
    else sb_printf(s, "KP_FN real kp__d_exps(real a, real s) { return kp__d_exp(a * s); }\n"
                      "KP_FN real kp__d_expd(real a, real s) { return kp__d_exp(a / s); }\n");
    sb_printf(s, "KP_FN real kp__d_pow(real a, real b) { return pow%s(a, b); }\n", sfx);
    sb_printf(s, "KP_FN real kp__d_atan2(real a, real b) { return atan2%s(a, b); }\n", sfx);
    sb_printf(s, "%s%s", kp__device_ops_source, kp__device_monoid_source);
}

/* ------------------------------------------------------------ operands */

typedef struct gen {
    sbuf *s;
    const kp_program *prog;
    kp_dtype dtype;
    int B;
    int W;       /* reals per point in the shared tile (col_size padded for vector loads) */
    int grouped; /* Sum / LogSumExp terms summed plainly per group of KP_GPU_GROUP points */
    int plain;   /* float32 KP_SUM_PLAIN: group sums added without compensation */
    int states;  /* partial states: no row factor in the states, global indices (kp_gpu_settings) */
    int in_pair; /* COL operands: from the shared tile (pair part) or private cv (col part) */
    const char *rrow; /* which of the thread's rows ROW operands come from: "rq", or "0" in the COL
                         part (which reads only uniform ROW values: parameters, constants) */
    /* The kernels being printed (kp__gpu_codegen). */
    kp_gpu_dialect dia;
    const char *name;                /* kernel prefix */
    const kp_gpu_kernel_info *info;
    int R;                           /* rows per thread */
    int NR, NX, NT;                  /* array sizes: state reals, state indices, group sums */
    int G;                           /* points per inner loop: a group, or a whole tile when B is smaller */
    int rg;                          /* block-sparse ranges (kp_gpu_settings.ranges) */
    const char *rlim;                /* the end of the work-group's rows: "nrows", or "rend_" with ranges */
} gen;

/* The group sums of the current row rq (an array of the reduce kernel). */
#define TS "ts[rq]"

/* Prints the operand's component c (an expression string; "0" for dim 1). */
static void opnd(gen *g, kp_operand o, const char *c) {
    const char *cc = o.dim == 1 ? "0" : c;
    switch (o.loc) {
    case KP_LOC_ROW: sb_printf(g->s, "rv[%s][%d + (%s)]", g->rrow, o.off, cc); break;
    case KP_LOC_COL:
        if (g->in_pair) sb_printf(g->s, "cp[%d + (%s)]", o.off, cc);
        else sb_printf(g->s, "cv[%d + (%s)]", o.off, cc);
        break;
    case KP_LOC_PAIR: sb_printf(g->s, "pv[%d + (%s)]", o.off, cc); break;
    }
}

static void print_real(gen *g, double v) {
    if (v != v) sb_printf(g->s, "KP_NAN");
    else if (isinf(v)) sb_printf(g->s, "%sKP_INF", v < 0 ? "-" : "");
    else if (g->dtype == KP_FLOAT32) sb_printf(g->s, "(real)%.9ef", (double)(float)v);
    else sb_printf(g->s, "(real)%.17e", v);
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
static void emit_elementwise(gen *g, const kp_instr *ins, const char *fn) {
    sbuf *s = g->s;
    kp_operand o = ins->out, a = ins->in[0], b = ins->in[1], c = ins->in[2];
    sb_printf(s, "      for (int c_ = 0; c_ < %d; c_++) ", o.dim);
    opnd(g, o, "c_");
    int fused = ins->op == KP_OP_EXP && ins->nin == 2; /* Exp(a * s) or Exp(a / s), see program.h */
    sb_printf(s, " = %s(", fused ? (ins->ip[1] ? "kp__d_expd" : "kp__d_exps") : fn);
    opnd(g, a, "c_");
    if (fused) {
        sb_printf(s, ", ");
        opnd(g, b, "0");
    } else if (ins->nin > 1) {
        sb_printf(s, ", ");
        opnd(g, b, "c_");
    }
    if (ins->nin > 2) {
        sb_printf(s, ", ");
        opnd(g, c, "c_");
    }
    if (ins->op == KP_OP_POW || ins->op == KP_OP_ROUND) sb_printf(s, ", %d", ins->ip[0]);
    sb_printf(s, ");\n    }\n");
}

/* Var (an argument's components: parameter, row or point), Const, IndexI/IndexJ. */
static void emit_var(gen *g, const kp_instr *ins, kp_loc part) {
    sbuf *s = g->s;
    kp_operand o = ins->out;
    int p = ins->ip[1];
    kp_var_category cat = (kp_var_category)ins->ip[0];
    sb_printf(s, "      for (int c_ = 0; c_ < %d; c_++) ", o.dim);
    opnd(g, o, "c_");
    if (cat == KP_VAR_PARAM) sb_printf(s, " = a%d[bz * bs%d + c_];\n", p, p);
    else if (part == KP_LOC_ROW) sb_printf(s, " = active ? a%d[bz * bs%d + r * %d + c_] : (real)0;\n", p, p, o.dim);
    else sb_printf(s, " = a%d[bz * bs%d + j * %d + c_];\n", p, p, o.dim);
}

static void emit_const(gen *g, const kp_instr *ins) {
    sb_printf(g->s, "      for (int c_ = 0; c_ < %d; c_++) ", ins->out.dim);
    opnd(g, ins->out, "c_");
    sb_printf(g->s, " = ");
    print_real(g, ins->value);
    sb_printf(g->s, ";\n");
}

static void emit_index(gen *g, const kp_instr *ins, kp_loc part) {
    sb_printf(g->s, "      ");
    opnd(g, ins->out, "0");
    if (g->states) sb_printf(g->s, " = (real)(%s);\n", part == KP_LOC_ROW ? "r + row_off" : "j + col_off");
    else sb_printf(g->s, " = (real)%s;\n", part == KP_LOC_ROW ? "r" : "j");
}

/* Reductions over components: Dot, SqDist, Sum, Max/Min and their Arg. */
static void emit_over_components(gen *g, const kp_instr *ins) {
    sbuf *s = g->s;
    kp_operand o = ins->out, a = ins->in[0], b = ins->in[1];
    if (ins->op == KP_OP_DOT || ins->op == KP_OP_SQDIST) {
        sb_printf(s, "      real s_ = 0;\n      for (int c_ = 0; c_ < %d; c_++) { real x_ = ", a.dim);
        opnd(g, a, "c_");
        sb_printf(s, ", y_ = ");
        opnd(g, b, "c_");
        sb_printf(s, "; s_ += %s; }\n      ", ins->op == KP_OP_DOT ? "x_ * y_" : "(x_ - y_) * (x_ - y_)");
        opnd(g, o, "0");
        sb_printf(s, " = s_;\n");
    } else if (ins->op == KP_OP_SUM) {
        sb_printf(s, "      real s_ = 0;\n      for (int c_ = 0; c_ < %d; c_++) s_ += ", a.dim);
        opnd(g, a, "c_");
        sb_printf(s, ";\n      ");
        opnd(g, o, "0");
        sb_printf(s, " = s_;\n");
    } else {
        int is_max = ins->op == KP_OP_MAXC || ins->op == KP_OP_ARGMAXC;
        int is_arg = ins->op == KP_OP_ARGMAXC || ins->op == KP_OP_ARGMINC;
        sb_printf(s, "      real best_ = ");
        opnd(g, a, "0");
        sb_printf(s, ";\n      int arg_ = 0;\n      for (int c_ = 1; c_ < %d; c_++) { real v_ = ", a.dim);
        opnd(g, a, "c_");
        sb_printf(s, "; if (%s(v_, best_)) { best_ = v_; arg_ = c_; } }\n      ",
                  is_max ? "KP_BETTER_MAX" : "KP_BETTER_MIN");
        opnd(g, o, "0");
        sb_printf(s, " = %s;\n", is_arg ? "(real)arg_" : "best_");
    }
}

/* Moves of components: Extract, Concat, OneHot, broadcast. */
static void emit_layout(gen *g, const kp_instr *ins) {
    sbuf *s = g->s;
    kp_operand o = ins->out, a = ins->in[0], b = ins->in[1];
    char e[32];
    if (ins->op == KP_OP_EXTRACT || ins->op == KP_OP_BCAST) { /* a broadcast copies from component 0 */
        snprintf(e, sizeof e, "c_ + %d", ins->ip[0]);
        sb_printf(s, "      for (int c_ = 0; c_ < %d; c_++) ", o.dim);
        opnd(g, o, "c_");
        sb_printf(s, " = ");
        opnd(g, a, ins->op == KP_OP_EXTRACT ? e : "c_");
        sb_printf(s, ";\n");
    } else if (ins->op == KP_OP_CONCAT) {
        snprintf(e, sizeof e, "%d + c_", a.dim);
        sb_printf(s, "      for (int c_ = 0; c_ < %d; c_++) ", a.dim);
        opnd(g, o, "c_");
        sb_printf(s, " = ");
        opnd(g, a, "c_");
        sb_printf(s, ";\n      for (int c_ = 0; c_ < %d; c_++) ", b.dim);
        kp_operand o2 = o;
        o2.dim = 2; /* never broadcast the output */
        opnd(g, o2, e);
        sb_printf(s, " = ");
        opnd(g, b, "c_");
        sb_printf(s, ";\n");
    } else { /* KP_OP_ONEHOT */
        sb_printf(s, "      real r_ = kp__d_round(");
        opnd(g, a, "0");
        sb_printf(s, ");\n      for (int c_ = 0; c_ < %d; c_++) ", o.dim);
        opnd(g, o, "c_");
        sb_printf(s, " = r_ == (real)c_ ? (real)1 : (real)0;\n");
    }
}

/* o[i] = sum over k < n of x[xi] * y[yi], for i < m (loop variables iv, kv). */
static void emit_sum_of_products(gen *g, kp_operand o, const char *iv, int m, const char *kv, int n, kp_operand x,
                                 const char *xi, kp_operand y, const char *yi) {
    sbuf *s = g->s;
    sb_printf(s, "      for (int %s = 0; %s < %d; %s++) { real s_ = 0;\n        for (int %s = 0; %s < %d; %s++) s_ += ", iv,
              iv, m, iv, kv, kv, n, kv);
    opnd(g, x, xi);
    sb_printf(s, " * ");
    opnd(g, y, yi);
    sb_printf(s, ";\n        ");
    opnd(g, o, iv);
    sb_printf(s, " = s_; }\n");
}

/* Products of matrices and vectors: MatVecMult, VecMatMult, TensorProd. */
static void emit_products(gen *g, const kp_instr *ins) {
    sbuf *s = g->s;
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
        sb_printf(s, "      for (int r_ = 0; r_ < %d; r_++) for (int l_ = 0; l_ < %d; l_++) ", a.dim, b.dim);
        opnd(g, o2, e);
        sb_printf(s, " = ");
        opnd(g, a, "r_");
        sb_printf(s, " * ");
        opnd(g, b, "l_");
        sb_printf(s, ";\n");
    }
}

/* One instruction, in its own block. */
static void emit_instr(gen *g, const kp_instr *ins, kp_loc part) {
    sb_printf(g->s, "    { /* %s */\n", kp__op_name(ins->op));
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
    sb_printf(g->s, "    }\n");
}

static void emit_part(gen *g, const kp_program_part *P, kp_loc part) {
    for (int i = 0; i < P->n; i++) emit_instr(g, &P->code[i], part);
}

/* ------------------------------------------------------------ reductions */

static int kof(const kp_program *prog) { return kp__kept_per_component(prog); }

/* State arrays st (reals) and sx (indices) set to the monoid identity. */
static void emit_init(sbuf *s, const kp_program *prog, const char *st, const char *sx) {
    int nreal, nidx, D = prog->fdim;
    kp__state_size(prog, &nreal, &nidx);
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM: sb_printf(s, "    for (int q_ = 0; q_ < %d; q_++) %s[q_] = 0;\n", nreal, st); break;
    case KP_FAMILY_LOGSUMEXP:
        sb_printf(s, "    for (int q_ = 0; q_ < %d; q_++) %s[q_] = q_ < %d ? -KP_INF : (real)0;\n", nreal, st, D);
        break;
    case KP_FAMILY_SOFTMAX:
        sb_printf(s, "    for (int q_ = 0; q_ < %d; q_++) %s[q_] = q_ == 0 ? -KP_INF : (real)0;\n", nreal, st);
        break;
    case KP_FAMILY_SELECT:
        sb_printf(s, "    for (int q_ = 0; q_ < %d; q_++) { %s[q_] = %sKP_INF; %s[q_] = -1; }\n", nreal, st,
                  kp__red(prog->red)->is_max ? "-" : "", sx);
        break;
    }
}

/* Inserts (x, jj) into the sorted K-list of component d (stride D); earlier entries win ties. */
static void emit_insert(sbuf *s, const kp_program *prog, const char *st, const char *sx, const char *x,
                        const char *jj) {
    int K = kof(prog), D = prog->fdim;
    const char *better = kp__red(prog->red)->is_max ? "KP_BETTER_MAX" : "KP_BETTER_MIN";
    if (K == 1) {
        sb_printf(s, "      if (%s[d_] < 0 || %s(%s, %s[d_])) { %s[d_] = %s; %s[d_] = %s; }\n", sx, better, x, st, st,
                  x, sx, jj);
        return;
    }
    sb_printf(s,
              "      if (!(%s[%d + d_] >= 0 && !%s(%s, %s[%d + d_]))) {\n"
              "        int p_ = %d;\n"
              "        while (p_ > 0) { int q_ = (p_ - 1) * %d + d_;\n"
              "          if (%s[q_] >= 0 && !%s(%s, %s[q_])) break;\n"
              "          %s[p_ * %d + d_] = %s[q_]; %s[p_ * %d + d_] = %s[q_]; p_--; }\n"
              "        %s[p_ * %d + d_] = %s; %s[p_ * %d + d_] = %s;\n      }\n",
              sx, (K - 1) * D, better, x, st, (K - 1) * D, K - 1, D, sx, better, x, st, st, D, st, sx, D, sx, st, D, x,
              sx, D, jj);
}

/* Folds the current pair (point index j, values in pv / cb) into state (st, sx). */
static void emit_accumulate(gen *g, const char *st, const char *sx) {
    sbuf *s = g->s;
    const kp_program *prog = g->prog;
    int D = prog->fdim;
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM:
        sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) { real t_ = ", D);
        opnd(g, prog->red_f, "d_");
        if (prog->red_f2.dim) {
            sb_printf(s, " * ");
            opnd(g, prog->red_f2, "d_");
        }
        if (prog->red_scale.dim && !g->grouped && !g->states) { /* per pair: the merge kernel has no row values */
            sb_printf(s, " * ");
            opnd(g, prog->red_scale, "d_");
        }
        if (g->grouped) sb_printf(s, "; %s[d_] += t_; }\n", TS);
        else sb_printf(s, "; KP_KAHAN(%s[d_], %s[%d + d_], t_); }\n", st, st, D);
        break;
    case KP_FAMILY_LOGSUMEXP:
        if (g->grouped)
            sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) KP_LSE_ACCG(%s[d_], %s[%d + d_], %s[%d + d_], %s[d_], ", D,
                      st, st, D, st, 2 * D, TS);
        else
            sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) KP_LSE_ACC(%s[d_], %s[%d + d_], %s[%d + d_], ", D, st, st,
                      D, st, 2 * D);
        opnd(g, prog->red_f, "d_");
        sb_printf(s, ");\n");
        break;
    case KP_FAMILY_SOFTMAX: {
        int DG = prog->red_g.dim;
        sb_printf(s, "    { real f_ = ");
        opnd(g, prog->red_f, "0");
        if (g->grouped) { /* as KP_LSE_ACCG: weights summed in ts[0], weighted values in ts[1 + d] */
            sb_printf(s,
                      ";\n      const real df_ = f_ - %s[0];\n      const int ok_ = df_ <= 0;\n"
                      "      const real w_ = ok_ ? kp__d_exp(df_) : (real)0;\n      %s[0] += w_;\n"
                      "      for (int d_ = 0; d_ < %d; d_++) %s[1 + d_] += w_ * ",
                      st, TS, DG, TS);
            opnd(g, prog->red_g, "d_");
            sb_printf(s,
                      ";\n      if (ok_) { }\n"
                      "      else if (f_ != f_ || %s[0] != %s[0]) { if (f_ != f_) %s[0] = f_; }\n"
                      "      else if (f_ == -KP_INF) { }\n"
                      "      else if (f_ == KP_INF || %s[0] == KP_INF) { %s[0] = KP_NAN; }\n"
                      "      else { real fc_ = %s[0] == -KP_INF ? (real)0 : kp__d_exp(%s[0] - f_);\n"
                      "        for (int q_ = 1; q_ < %d; q_++) %s[q_] *= fc_;\n"
                      "        for (int q_ = 0; q_ < %d; q_++) %s[q_] *= fc_;\n"
                      "        %s[0] = f_; %s[0] += (real)1;\n"
                      "        for (int d_ = 0; d_ < %d; d_++) %s[1 + d_] += ",
                      st, st, st, st, st, st, st, 3 + 2 * DG, st, 1 + DG, TS, st, TS, DG, TS);
            opnd(g, prog->red_g, "d_");
            sb_printf(s, "; }\n    }\n");
            break;
        }
        sb_printf(s,
                  ";\n      if (f_ != f_ || %s[0] != %s[0]) { if (f_ != f_) %s[0] = f_; }\n"
                  "      else if (f_ == -KP_INF) { }\n"
                  "      else if (f_ == KP_INF || %s[0] == KP_INF) { %s[0] = KP_NAN; }\n"
                  "      else {\n"
                  "        if (f_ > %s[0]) { real fc_ = %s[0] == -KP_INF ? (real)0 : kp__d_exp(%s[0] - f_);\n"
                  "          for (int q_ = 1; q_ < %d; q_++) %s[q_] *= fc_;\n          %s[0] = f_; }\n"
                  "        real w_ = kp__d_exp(f_ - %s[0]);\n        KP_KAHAN(%s[1], %s[2], w_);\n"
                  "        for (int d_ = 0; d_ < %d; d_++) { real t_ = w_ * ",
                  st, st, st, st, st, st, st, st, 3 + 2 * DG, st, st, st, st, st, DG);
        opnd(g, prog->red_g, "d_");
        sb_printf(s, "; KP_KAHAN(%s[3 + d_], %s[%d + d_], t_); }\n      }\n    }\n", st, st, 3 + DG);
        break;
    }
    case KP_FAMILY_SELECT:
        sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) {\n      real x_ = ", D);
        opnd(g, prog->red_f, "d_");
        sb_printf(s, ";\n");
        emit_insert(s, prog, st, sx, "x_", "j");
        sb_printf(s, "    }\n");
        break;
    }
}

/* Adds the group sums ts into state st and clears them (grouped Sum, LogSumExp, SumSoftMaxWeight). */
static void emit_flush(gen *g, const char *st) {
    int D = g->prog->fdim;
    if (kp__red(g->prog->red)->family == KP_FAMILY_SOFTMAX)
        sb_printf(g->s, "        { KP_KAHAN(%s[1], %s[2], %s[0]); %s[0] = 0;\n" /* one statement: it may follow an if */
                        "          for (int d_ = 0; d_ < %d; d_++) { KP_KAHAN(%s[3 + d_], %s[%d + d_], %s[1 + d_]); "
                        "%s[1 + d_] = 0; } }\n",
                  st, st, TS, TS, g->prog->red_g.dim, st, st, 3 + g->prog->red_g.dim, TS, TS);
    else if (kp__red(g->prog->red)->family == KP_FAMILY_LOGSUMEXP)
        sb_printf(g->s, "        for (int d_ = 0; d_ < %d; d_++) KP_LSE_FLUSH(%s[%d + d_], %s[%d + d_], %s[d_]);\n", D, st,
                  D, st, 2 * D, TS);
    else { /* Sum: a row factor (red_scale) multiplies the group sum, not every term */
        sb_printf(g->s, "        for (int d_ = 0; d_ < %d; d_++) { real g_ = %s[d_]", D, TS);
        if (g->prog->red_scale.dim && !g->states) {
            sb_printf(g->s, " * ");
            opnd(g, g->prog->red_scale, "d_");
        }
        if (g->plain) sb_printf(g->s, "; %s[d_] += g_; %s[d_] = 0; }\n", st, TS);
        else sb_printf(g->s, "; KP_KAHAN(%s[d_], %s[%d + d_], g_); %s[d_] = 0; }\n", st, st, D, TS);
    }
}

/* a <- merge(a, b), b covering larger indices (a wins ties). */
static void emit_merge(sbuf *s, const kp_program *prog, const char *a, const char *ax, const char *b, const char *bx) {
    int D = prog->fdim;
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM:
        sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) { KP_KAHAN(%s[d_], %s[%d + d_], %s[d_]); "
                     "KP_KAHAN(%s[d_], %s[%d + d_], -%s[%d + d_]); }\n",
                  D, a, a, D, b, a, a, D, b, D);
        break;
    case KP_FAMILY_LOGSUMEXP:
        sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) KP_LSE_MERGE(%s[d_], %s[%d + d_], %s[%d + d_], %s[d_], "
                     "%s[%d + d_], %s[%d + d_]);\n",
                  D, a, a, D, a, 2 * D, b, b, D, b, 2 * D);
        break;
    case KP_FAMILY_SOFTMAX: {
        int DG = prog->red_g.dim;
        sb_printf(s,
                  "    if (%s[0] != %s[0] || %s[0] != %s[0]) { if (%s[0] == %s[0]) %s[0] = %s[0]; }\n"
                  "    else if (%s[0] == -KP_INF) { }\n"
                  "    else { real mn_ = %s[0] > %s[0] ? %s[0] : %s[0];\n"
                  "      real fa_ = %s[0] == -KP_INF ? (real)0 : kp__d_exp(%s[0] - mn_), fb_ = kp__d_exp(%s[0] - mn_);\n"
                  "      %s[0] = mn_;\n      for (int q_ = 1; q_ < %d; q_++) %s[q_] *= fa_;\n"
                  "      KP_KAHAN(%s[1], %s[2], %s[1] * fb_); KP_KAHAN(%s[1], %s[2], -%s[2] * fb_);\n"
                  "      for (int d_ = 0; d_ < %d; d_++) { KP_KAHAN(%s[3 + d_], %s[%d + d_], %s[3 + d_] * fb_);\n"
                  "        KP_KAHAN(%s[3 + d_], %s[%d + d_], -%s[%d + d_] * fb_); }\n    }\n",
                  a, a, b, b, a, a, a, b, b, a, b, a, b, a, a, b, a, 3 + 2 * DG, a, a, a, b, a, a, b, DG, a, a, 3 + DG,
                  b, a, a, 3 + DG, b, 3 + DG);
        break;
    }
    case KP_FAMILY_SELECT: {
        int K = kof(prog);
        sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) for (int k_ = 0; k_ < %d && %s[k_ * %d + d_] >= 0; k_++) {\n"
                     "      real x_ = %s[k_ * %d + d_]; kp_i64 jx_ = %s[k_ * %d + d_];\n",
                  D, K, bx, D, b, D, bx, D);
        emit_insert(s, prog, a, ax, "x_", "jx_");
        sb_printf(s, "    }\n");
        break;
    }
    }
}

/* Writes the outputs of one row from (st, sx) to out + o_ and out_idx + oi_. */
static void emit_finalize(sbuf *s, const kp_program *prog, const char *st, const char *sx) {
    int D = prog->fdim, nreal, nidx;
    kp__state_size(prog, &nreal, &nidx);
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM: sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) out[o_ + d_] = %s[d_];\n", D, st); break;
    case KP_FAMILY_LOGSUMEXP:
        sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) { real m_ = %s[d_];\n"
                     "      out[o_ + d_] = (m_ != m_ || m_ == -KP_INF || m_ == KP_INF) ? m_ : m_ + kp__d_log(%s[%d + d_]); }\n",
                  D, st, st, D);
        break;
    case KP_FAMILY_SOFTMAX:
        sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) out[o_ + d_] = %s[0] != %s[0] ? %s[0] : "
                     "%s[0] == -KP_INF ? KP_NAN : %s[3 + d_] / %s[1];\n",
                  prog->red_g.dim, st, st, st, st, st, st);
        break;
    case KP_FAMILY_SELECT:
        if (kp__red(prog->red)->value != KP_WIDTH_NONE && kp__red(prog->red)->index != KP_WIDTH_NONE)
            sb_printf(s, "    for (int q_ = 0; q_ < %d; q_++) { out[o_ + q_] = %s[q_]; out_idx[oi_ + q_] = %s[q_]; }\n",
                      nreal, st, sx);
        else if (kp__red(prog->red)->value != KP_WIDTH_NONE)
            sb_printf(s, "    for (int q_ = 0; q_ < %d; q_++) out[o_ + q_] = %s[q_];\n", nreal, st);
        else
            sb_printf(s, "    for (int q_ = 0; q_ < %d; q_++) out_idx[oi_ + q_] = %s[q_];\n", nidx, sx);
        break;
    }
}

static int imax1(int a) { return a > 0 ? a : 1; }

/* Components the pair program computes: what one copy of the pair loop's body costs. */
static int pair_components(const kp_program *prog) {
    int size = 0;
    for (int i = 0; i < prog->pair.n; i++) size += prog->pair.code[i].out.dim;
    return size;
}

/* Group sums ts per row (grouped Sum, LogSumExp, SumSoftMaxWeight). */
static int group_sums(const kp_program *prog) {
    return kp__red(prog->red)->family == KP_FAMILY_SOFTMAX ? 1 + prog->red_g.dim : imax1(prog->fdim);
}

int kp__gpu_default_rows(const kp_program *prog, kp_dtype dtype) {
    int nreal, nidx, words = dtype == KP_FLOAT32 ? 1 : 2;
    kp__state_size(prog, &nreal, &nidx);
    /* 32-bit registers a row holds for the whole loop: ROW values, chunk and
       running states, group sums (64-bit indices take two). */
    int per_row = (prog->row_size + 2 * nreal + group_sums(prog)) * words + 4 * nidx;
    int size = pair_components(prog);
    if (size <= 16 && 4 * per_row <= KP_GPU_ROW_REGS) return 4;
    if (size <= 48 && 2 * per_row <= KP_GPU_ROW_REGS) return 2;
    return 1;
}

/* Unroll factor of the CUDA pair loop: KP_GPU_UNROLL copies for small pair
 * programs (the kernel products: loop overhead matters there), fewer for large
 * ones, whose body amortizes the loop anyway and whose compile time (NVRTC, on
 * the first call) grows with every copy. Each copy runs the body for R rows. */
static int pair_unroll(const kp_program *prog, int R) {
    int size = pair_components(prog);
    int u = size <= 16 ? KP_GPU_UNROLL : size <= 48 ? KP_GPU_UNROLL / 2 : KP_GPU_UNROLL / 4;
    return R >= 4 && u > 4 ? u / 2 : u;
}

/* "for (int rq = 0; rq < R; rq++)" over the thread's rows (no newline), at
 * indent, unrolled in CUDA so that the per-row arrays stay in registers. */
static void rows_loop(sbuf *s, kp_gpu_dialect dia, const char *indent, int R) {
    if (dia == KP_GPU_CUDA) sb_printf(s, "%s#pragma unroll\n", indent);
    sb_printf(s, "%sfor (int rq = 0; rq < %d; rq++)", indent, R);
}

/* ------------------------------------------------------------ kernels */

/* The launch facts of the kernels: B, R, state and output widths, and the
 * argument positions read by VAR instructions, in increasing order. */
static void kernel_info(const kp_program *prog, int B, int R, kp_gpu_kernel_info *info) {
    memset(info, 0, sizeof *info);
    info->block = B;
    info->rows = R;
    kp__state_size(prog, &info->nreal, &info->nidx);
    kp__out_widths(prog, &info->out_dim, &info->out_idx_dim);
    int dim_of[KP_MAX_ARGS];
    kp_var_category cat_of[KP_MAX_ARGS];
    for (int p = 0; p < KP_MAX_ARGS; p++) dim_of[p] = 0;
    const kp_program_part *parts[3] = {&prog->row, &prog->col, &prog->pair};
    for (int q = 0; q < 3; q++)
        for (int i = 0; i < parts[q]->n; i++)
            if (parts[q]->code[i].op == KP_OP_VAR) {
                int p = parts[q]->code[i].ip[1];
                if (p >= 0 && p < KP_MAX_ARGS) {
                    dim_of[p] = parts[q]->code[i].out.dim;
                    cat_of[p] = (kp_var_category)parts[q]->code[i].ip[0];
                }
            }
    for (int p = 0; p < KP_MAX_ARGS; p++)
        if (dim_of[p]) {
            info->used[info->nused] = p;
            info->used_dim[info->nused] = dim_of[p];
            info->used_cat[info->nused] = cat_of[p];
            info->nused++;
        }
}

/* The reduce kernel's signature, its thread's rows, per-row arrays and ROW
 * program, and the opening of the loop over chunks (or ranges). Each thread
 * keeps R rows, r0 + rq * B for rq < R (coalesced row loads), and runs the
 * pair program of every one on each point it reads from the tile; every loop
 * over rq is unrolled in CUDA so their arrays stay in registers. */
static void emit_reduce_head(gen *g) {
    sbuf *s = g->s;
    const kp_program *prog = g->prog;
    const kp_gpu_kernel_info *info = g->info;
    const int B = g->B, R = g->R, rg = g->rg;
    sb_printf(s, "KP_KERNEL void %s_reduce(", g->name);
    for (int u = 0; u < info->nused; u++)
        sb_printf(s, "const KP_GLOBAL real *a%d, kp_i64 bs%d, ", info->used[u], info->used[u]);
    /* Block-sparse ranges: the work-group's rows, batch and list of reduced
       ranges come from its entry of rg_blk; rows end at rend_, and each range
       takes the place of a chunk. */
    sb_printf(s, "KP_GLOBAL real *out, KP_GLOBAL kp_i64 *out_idx, KP_GLOBAL real *part, KP_GLOBAL kp_i64 *part_idx,\n"
                 "    kp_i64 nrows, kp_i64 ncols, kp_i64 chunk, kp_i64 nchunks, int split%s%s) {\n",
              rg ? ", const KP_GLOBAL kp_i64 *rg_blk, const KP_GLOBAL kp_i64 *rg_cols" : "",
              g->states ? ", kp_i64 row_off, kp_i64 col_off" : "");
    sb_printf(s, "  const int lid = KP_LID;\n");
    if (g->states) sb_printf(s, "  (void)row_off; (void)col_off;\n");
    if (rg)
        sb_printf(s, "  const KP_GLOBAL kp_i64 *e_ = rg_blk + KP_GROUP(0) * 5; /* rows, ranges and batch of this group */\n"
                     "  const kp_i64 r0 = e_[0] + lid, rend_ = e_[1], bz = e_[4]; /* R = %d rows, B = %d apart */\n",
                  R, B);
    else
        sb_printf(s, "  const kp_i64 r0 = KP_GROUP(0) * %d + lid; /* the thread's first row; R = %d rows, B = %d apart */\n"
                     "  const kp_i64 bz = KP_GROUP(2);\n",
                  B * R, R, B);
    sb_printf(s, "  real rv[%d][%d], pv[%d], cv[%d], ts[%d][%d];\n"
                 "  %s real cb[%d]%s;\n"
                 "  real st[%d][%d], pst[%d][%d];\n  kp_i64 sx[%d][%d], psx[%d][%d];\n"
                 "  (void)pv; (void)cv; (void)ts; (void)cb; (void)sx; (void)psx; (void)part_idx; (void)out_idx; "
                 "(void)out;\n",
              R, imax1(prog->row_size), imax1(prog->pair_size), imax1(prog->col_size), R, g->NT,
              g->dia == KP_GPU_CUDA ? "__shared__ __align__(16)" : "__local", imax1(g->W * B),
              g->dia == KP_GPU_CUDA ? "" : " __attribute__((aligned(16)))", R, g->NR, R, g->NR, R, g->NX, R, g->NX);
    sb_printf(s, "  /* ROW program (row variables guarded: the whole group computes the uniform values) */\n");
    rows_loop(s, g->dia, "  ", R);
    sb_printf(s, " {\n  const kp_i64 r = r0 + rq * %d;\n  const int active = r < %s;\n", B, g->rlim);
    emit_part(g, &prog->row, KP_LOC_ROW);
    emit_init(s, prog, "st[rq]", "sx[rq]");
    if (rg)
        sb_printf(s, "  }\n"
                     "  const kp_i64 ch0 = e_[2], ch1 = e_[3];\n"
                     "  for (kp_i64 ch = ch0; ch < ch1; ch++) {\n"
                     "    const kp_i64 jstart = rg_cols[2 * ch], jend = rg_cols[2 * ch + 1];\n");
    else
        sb_printf(s, "  }\n"
                     "  const kp_i64 ch0 = split ? KP_GROUP(1) : 0, ch1 = split ? ch0 + 1 : nchunks;\n"
                     "  for (kp_i64 ch = ch0; ch < ch1; ch++) {\n"
                     "    const kp_i64 jstart = ch * chunk, jend = jstart + chunk < ncols ? jstart + chunk : ncols;\n");
}

/* One chunk: its states at the identity, then tile by tile the COL program
 * into the shared tile and the pair loop folding each point into them. */
static void emit_chunk(gen *g) {
    sbuf *s = g->s;
    const kp_program *prog = g->prog;
    const int B = g->B, R = g->R, G = g->G;
    rows_loop(s, g->dia, "    ", R);
    sb_printf(s, " {\n");
    emit_init(s, prog, "pst[rq]", "psx[rq]");
    if (g->grouped) sb_printf(s, "    for (int d_ = 0; d_ < %d; d_++) %s[d_] = 0;\n", g->NT, TS);
    sb_printf(s, "    }\n"
                 "    for (kp_i64 j0 = jstart; j0 < jend; j0 += %d) {\n"
                 "      const int len = (int)(jend - j0 < %d ? jend - j0 : %d);\n"
                 "      if (lid < len) { /* COL program: one point of the tile per thread */\n"
                 "        const kp_i64 j = j0 + lid;\n",
              B, B, B);
    g->rrow = "0";
    emit_part(g, &prog->col, KP_LOC_COL);
    g->rrow = "rq";
    sb_printf(s, "        for (int c_ = 0; c_ < %d; c_++) cb[lid * %d + c_] = cv[c_];\n      }\n"
                 "      KP_BARRIER();\n"
                 "      if (r0 < %s) for (int k0 = 0; k0 < len; k0 += %d) {\n"
                 "        const int k1 = k0 + %d < len ? k0 + %d : len;\n",
              prog->col_size, g->W, g->rlim, G, G, G);
    /* kp_bench_gpu's static cost per pair divides by this factor and by R (read from the source). */
    if (g->dia == KP_GPU_CUDA) sb_printf(s, "        #pragma unroll %d\n", pair_unroll(prog, R));
    /* The point's COL values first, all together: one vector load, whatever the
       pair program does between its uses (an asm statement splits load chains). */
    sb_printf(s, "        for (int k = k0; k < k1; k++) {\n        const kp_i64 j = j0 + k;\n"
                 "        real cp[%d];\n        for (int c_ = 0; c_ < %d; c_++) cp[c_] = cb[k * %d + c_];\n",
              imax1(prog->col_size), prog->col_size, g->W);
    rows_loop(s, g->dia, "        ", R);
    sb_printf(s, " {\n");
    g->in_pair = 1;
    emit_part(g, &prog->pair, KP_LOC_PAIR);
    emit_accumulate(g, "pst[rq]", "psx[rq]");
    g->in_pair = 0;
    sb_printf(s, "        }\n        }\n");
    if (g->grouped) {
        /* Groups are the KP_GPU_GROUP points from the chunk's start on, whatever B:
         * with B >= KP_GPU_GROUP every inner loop ends one; below, a group spans tiles. */
        if (B < KP_GPU_GROUP)
            sb_printf(s, "        if (((j0 - jstart + k1) & %d) == 0 || j0 + k1 == jend)\n", KP_GPU_GROUP - 1);
        rows_loop(s, g->dia, "        ", R);
        sb_printf(s, "\n");
        emit_flush(g, "pst[rq]");
    }
    sb_printf(s, "      }\n      KP_BARRIER();\n    }\n");
}

/* The end of a chunk (its state written out when split, else merged into the
 * row's) and of the kernel (the rows' outputs when not split). */
static void emit_reduce_tail(gen *g) {
    sbuf *s = g->s;
    const kp_program *prog = g->prog;
    const kp_gpu_kernel_info *info = g->info;
    rows_loop(s, g->dia, "    ", g->R);
    sb_printf(s, " {\n"
                 "    const kp_i64 r = r0 + rq * %d;\n"
                 "    if (r >= %s) break;\n"
                 "    if (split) {\n"
                 "      const kp_i64 at_ = (bz * nchunks + ch) * nrows + r;\n"
                 "      for (int q_ = 0; q_ < %d; q_++) part[at_ * %d + q_] = pst[rq][q_];\n"
                 "      for (int q_ = 0; q_ < %d; q_++) part_idx[at_ * %d + q_] = psx[rq][q_];\n"
                 "    } else {\n",
              g->B, g->rlim, info->nreal, info->nreal, info->nidx, info->nidx);
    emit_merge(s, prog, "st[rq]", "sx[rq]", "pst[rq]", "psx[rq]");
    sb_printf(s, "    }\n    }\n  }\n"
                 "  if (split) return;\n");
    rows_loop(s, g->dia, "  ", g->R);
    sb_printf(s, " {\n"
                 "  const kp_i64 r = r0 + rq * %d;\n"
                 "  if (r >= %s) break;\n"
                 "  const kp_i64 o_ = (bz * nrows + r) * %d, oi_ = (bz * nrows + r) * %d;\n"
                 "  (void)o_; (void)oi_;\n",
              g->B, g->rlim, info->out_dim, info->out_idx_dim);
    emit_finalize(s, prog, "st[rq]", "sx[rq]");
    sb_printf(s, "  }\n}\n\n");
}

/* The merge kernel: a row's chunk states merged in chunk order, then its outputs. */
static void emit_merge_kernel(gen *g) {
    sbuf *s = g->s;
    const kp_program *prog = g->prog;
    const kp_gpu_kernel_info *info = g->info;
    sb_printf(s, "KP_KERNEL void %s_merge(const KP_GLOBAL real *part, const KP_GLOBAL kp_i64 *part_idx, "
                 "KP_GLOBAL real *out, KP_GLOBAL kp_i64 *out_idx,\n    kp_i64 nrows, kp_i64 nchunks, kp_i64 ntotal) {\n",
              g->name);
    if (g->dia == KP_GPU_CUDA)
        sb_printf(s, "  const kp_i64 t = (kp_i64)blockIdx.x * blockDim.x + threadIdx.x;\n");
    else sb_printf(s, "  const kp_i64 t = (kp_i64)get_global_id(0);\n");
    sb_printf(s, "  if (t >= ntotal) return;\n"
                 "  const kp_i64 bz = t / nrows, r = t %% nrows;\n"
                 "  real st[%d], pst[%d];\n  kp_i64 sx[%d], psx[%d];\n"
                 "  (void)sx; (void)psx; (void)part_idx; (void)out_idx; (void)out;\n",
              g->NR, g->NR, g->NX, g->NX);
    emit_init(s, prog, "st", "sx");
    sb_printf(s, "  for (kp_i64 ch = 0; ch < nchunks; ch++) {\n"
                 "    const kp_i64 at_ = (bz * nchunks + ch) * nrows + r;\n"
                 "    for (int q_ = 0; q_ < %d; q_++) pst[q_] = part[at_ * %d + q_];\n"
                 "    for (int q_ = 0; q_ < %d; q_++) psx[q_] = part_idx[at_ * %d + q_];\n",
              info->nreal, info->nreal, info->nidx, info->nidx);
    emit_merge(s, prog, "st", "sx", "pst", "psx");
    sb_printf(s, "  }\n  const kp_i64 o_ = t * %d, oi_ = t * %d;\n  (void)o_; (void)oi_;\n", info->out_dim,
              info->out_idx_dim);
    emit_finalize(s, prog, "st", "sx");
    sb_printf(s, "}\n");
}

char *kp__gpu_codegen(const kp_program *prog, kp_dtype dtype, const kp_gpu_settings *set, kp_gpu_dialect dialect,
                      int block, int rows, const char *name, kp_gpu_kernel_info *info) {
    sbuf sb = {0};
    sb.ctx = prog->ctx;
    if (!name) name = "kp";
    int B = block > 0 ? block : kp__gpu_default_block(prog, dtype);
    int R = rows > 0 ? rows : kp__gpu_default_rows(prog, dtype);
    kernel_info(prog, B, R, info);
    sb_printf(&sb, "/* libkp generated kernel: %s reduction, axis %d, %s, %s, B = %d */\n",
              kp__reduction_name(prog->red), prog->axis, dtype == KP_FLOAT32 ? "float32" : "float64",
              dialect == KP_GPU_CUDA ? "CUDA" : "OpenCL", B);
    emit_prelude(&sb, dtype, dialect, name, set->math == KP_MATH_FAST && dtype == KP_FLOAT32);
    kp_red_family fam = kp__red(prog->red)->family;
    int f32_kahan = dtype == KP_FLOAT32 && set->scheme == KP_SUM_KAHAN; /* float64 always sums by groups, as on the CPU */
    gen g = {
        .s = &sb,
        .prog = prog,
        .dtype = dtype,
        .B = B,
        .W = tile_stride(prog, dtype),
        .grouped = (fam == KP_FAMILY_SUM || fam == KP_FAMILY_LOGSUMEXP || fam == KP_FAMILY_SOFTMAX) && !f32_kahan,
        .plain = fam == KP_FAMILY_SUM && dtype == KP_FLOAT32 && set->scheme == KP_SUM_PLAIN,
        .states = set->states,
        .rrow = "rq",
        .dia = dialect,
        .name = name,
        .info = info,
        .R = R,
        .NR = imax1(info->nreal),
        .NX = imax1(info->nidx),
        .NT = group_sums(prog),
        .G = B < KP_GPU_GROUP ? B : KP_GPU_GROUP,
        .rg = set->ranges,
        .rlim = set->ranges ? "rend_" : "nrows",
    };
    emit_reduce_head(&g);
    emit_chunk(&g);
    emit_reduce_tail(&g);
    emit_merge_kernel(&g);
    if (dialect == KP_GPU_CUDA) sb_printf(&sb, "} /* namespace %s */\n", name);
    if (sb.oom) {
        kp__free(sb.ctx, sb.p);
        return NULL;
    }
    return sb.p;
}
