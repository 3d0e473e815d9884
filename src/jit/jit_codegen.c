/*
 * jit_codegen.c — one compiled kernel (jit.h) as LLVM IR, in explicit vectors.
 *
 * Every value is a vector of VL lanes along the reduced index: ROW values are
 * loaded once per row and broadcast before the loop, COL values are loaded
 * from the interpreter's tile once per step and shared by the block's rows,
 * PAIR values never leave registers. Arithmetic, comparisons, selections,
 * sqrt/fabs/floor/round and the vector ops (SqDist, Scalprod, Sum, ...) are IR
 * instructions with the interpreter's order of operations; Exp calls the op
 * bitcode's vector exp; the other transcendental ops call the bitcode's
 * scalar definition lane by lane (formula/scalar_eval.h). The O3 pipeline
 * inlines all of it. A joint kernel (KP_JIT_JOINT) runs the same pair
 * program and feeds a joint program's Sum terms from it (joint_step); a
 * KP_JIT_LSE kernel takes two passes over the tile, the lanes' maxima of F,
 * then the sums of exp(F - max) (lse_two_passes).
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formula/node.h"
#include "jit/jit_internal.h"
#include "jit/jit_llvm.h"

typedef struct gen {
    LLVMContextRef C;
    LLVMModuleRef M;
    LLVMBuilderRef B, AB; /* AB: allocas, in the first block */
    const kp_jit_spec *s;
    LLVMTypeRef T, VT, PT, PVT, i32, i64;
    LLVMValueRef fn, rowv, colbuf, out, len;
    LLVMValueRef coltmp, nrows;            /* KP_JIT_JOINT */
    LLVMValueRef valid[KP_JIT_MAX_ROWS];   /* KP_JIT_JOINT: row r < nrows (i1) */
    LLVMValueRef *rowval; /* rows * row_size splats (NULL: unused) */
    LLVMValueRef *colval; /* col_size: this step's loads */
    LLVMValueRef *pv;     /* pair_size: the current row's values */
    LLVMValueRef *lse_m;  /* KP_JIT_LSE's second pass: rows * fdim lane maxima */
    LLVMValueRef k;       /* first lane of the step (i64) */
    int r;                /* current row */
    int failed;
    char *msg;
    size_t msgsz;
} gen;

static void fail(gen *g, const char *what) {
    if (!g->failed) snprintf(g->msg, g->msgsz, "%s", what);
    g->failed = 1;
}

static LLVMValueRef splat(gen *g, double v) {
    LLVMValueRef e[16];
    for (int l = 0; l < g->s->vl; l++) e[l] = kp__llvm.LLVMConstReal(g->T, v);
    return kp__llvm.LLVMConstVector(e, (unsigned)g->s->vl);
}

static LLVMValueRef intrinsic(gen *g, const char *name, LLVMValueRef *args, unsigned nargs) {
    unsigned id = kp__llvm.LLVMLookupIntrinsicID(name, strlen(name));
    LLVMTypeRef ty = g->VT;
    LLVMValueRef f = kp__llvm.LLVMGetIntrinsicDeclaration(g->M, id, &ty, 1);
    LLVMTypeRef fty = kp__llvm.LLVMIntrinsicGetType(g->C, id, &ty, 1);
    return kp__llvm.LLVMBuildCall2(g->B, fty, f, args, nargs, "");
}

static LLVMValueRef call1(gen *g, const char *name, LLVMValueRef a) { return intrinsic(g, name, &a, 1); }

static LLVMValueRef fmuladd(gen *g, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
    LLVMValueRef args[3] = {a, b, c};
    return intrinsic(g, "llvm.fmuladd", args, 3);
}

static LLVMValueRef sel(gen *g, LLVMValueRef cond, LLVMValueRef a, LLVMValueRef b) {
    return kp__llvm.LLVMBuildSelect(g->B, cond, a, b, "");
}

static LLVMValueRef cmp(gen *g, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b) {
    return kp__llvm.LLVMBuildFCmp(g->B, p, a, b, "");
}

/* Component c of operand o for the current row and step (dimension 1 broadcasts). */
static LLVMValueRef get(gen *g, kp_operand o, int c) {
    int comp = o.off + (o.dim == 1 ? 0 : c);
    switch (o.loc) {
    case KP_LOC_ROW: return g->rowval[g->r * g->s->row_size + comp];
    case KP_LOC_COL:
        if (!g->colval[comp]) {
            LLVMValueRef idx = kp__llvm.LLVMBuildAdd(g->B, g->k, kp__llvm.LLVMConstInt(g->i64, (unsigned long long)comp * (unsigned long long)g->s->tile, 0), "");
            LLVMValueRef p = kp__llvm.LLVMBuildGEP2(g->B, g->T, g->colbuf, &idx, 1, "");
            LLVMValueRef ld = kp__llvm.LLVMBuildLoad2(g->B, g->VT, kp__llvm.LLVMBuildBitCast(g->B, p, g->PVT, ""), "");
            kp__llvm.LLVMSetAlignment(ld, (unsigned)(g->s->f32 ? 4 : 8));
            g->colval[comp] = ld;
        }
        return g->colval[comp];
    case KP_LOC_PAIR:
        if (!g->pv[comp]) fail(g, "pair value read before it is computed");
        return g->pv[comp] ? g->pv[comp] : splat(g, 0);
    }
    return splat(g, 0);
}

/* Calls a bitcode function by name. */
static LLVMValueRef call_bc(gen *g, const char *name, LLVMValueRef *args, unsigned n) {
    LLVMValueRef f = kp__llvm.LLVMGetNamedFunction(g->M, name);
    if (!f) {
        fail(g, "op bitcode lacks a function");
        return NULL;
    }
    return kp__llvm.LLVMBuildCall2(g->B, kp__llvm.LLVMGlobalGetValueType(f), f, args, n, "");
}

/* The bitcode's vector function fn_{f32,f64}xVL on a, through two stack slots. */
static LLVMValueRef vcall(gen *g, const char *fn, LLVMValueRef a) {
    char name[40];
    snprintf(name, sizeof name, "%s_%sx%d", fn, g->s->f32 ? "f32" : "f64", g->s->vl);
    LLVMValueRef in = kp__llvm.LLVMBuildAlloca(g->AB, g->VT, ""), out = kp__llvm.LLVMBuildAlloca(g->AB, g->VT, "");
    kp__llvm.LLVMBuildStore(g->B, a, in);
    LLVMValueRef args[2] = {kp__llvm.LLVMBuildBitCast(g->B, out, g->PT, ""), kp__llvm.LLVMBuildBitCast(g->B, in, g->PT, "")};
    if (!call_bc(g, name, args, 2)) return a;
    return kp__llvm.LLVMBuildLoad2(g->B, g->VT, out, "");
}

static LLVMValueRef vexp(gen *g, LLVMValueRef a) { return vcall(g, "kp_jit_exp", a); }

/* exp(a) for a <= 0 or NaN, bit for bit vexp's: on AVX-512 without the clamps. */
static LLVMValueRef vexpnp(gen *g, LLVMValueRef a) { return vcall(g, "kp_jit_expnp", a); }

/* exp(a) for a <= 0, and 0 where a is NaN. */
static LLVMValueRef vexpneg(gen *g, LLVMValueRef a) { return vcall(g, "kp_jit_expneg", a); }

/* Any elementwise op, lane by lane, through the bitcode's scalar definition. */
static LLVMValueRef scalarized(gen *g, kp_op op, int ip, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
    const char *name = g->s->f32 ? "kp_jit_seval_f32" : "kp_jit_seval_f64";
    LLVMValueRef v = kp__llvm.LLVMGetUndef(g->VT);
    for (int l = 0; l < g->s->vl; l++) {
        LLVMValueRef lane = kp__llvm.LLVMConstInt(g->i32, (unsigned long long)l, 0);
        LLVMValueRef args[5] = {kp__llvm.LLVMConstInt(g->i32, (unsigned long long)op, 0), kp__llvm.LLVMBuildExtractElement(g->B, a, lane, ""),
                                b ? kp__llvm.LLVMBuildExtractElement(g->B, b, lane, "") : kp__llvm.LLVMConstReal(g->T, 0),
                                c ? kp__llvm.LLVMBuildExtractElement(g->B, c, lane, "") : kp__llvm.LLVMConstReal(g->T, 0),
                                kp__llvm.LLVMConstInt(g->i32, (unsigned long long)(long long)ip, 1)};
        LLVMValueRef r = call_bc(g, name, args, 5);
        if (!r) return a;
        v = kp__llvm.LLVMBuildInsertElement(g->B, v, r, lane, "");
    }
    return v;
}

/* Integer power by squaring, as scalar_eval.h computes it. */
static LLVMValueRef ipow(gen *g, LLVMValueRef a, int ip) {
    LLVMValueRef r = splat(g, 1), base = a;
    unsigned e = ip < 0 ? (unsigned)(-(long)ip) : (unsigned)ip;
    int first = 1;
    while (e) {
        if (e & 1u) {
            r = first ? base : kp__llvm.LLVMBuildFMul(g->B, r, base, "");
            first = 0;
        }
        e >>= 1;
        if (e) base = kp__llvm.LLVMBuildFMul(g->B, base, base, "");
    }
    return ip < 0 ? kp__llvm.LLVMBuildFDiv(g->B, splat(g, 1), r, "") : r;
}

/* a / b, b operand o of ins: when o is a ROW value the kernel takes as a
 * divisor (jit.h, row_divisors: every component's bit), a times 1 / b,
 * divided once per call in the first block. */
static LLVMValueRef quotient(gen *g, kp_operand o, LLVMValueRef a, LLVMValueRef b) {
    int reciprocal = o.loc == KP_LOC_ROW && o.dim > 0 && o.off + o.dim <= 64;
    for (int c = 0; reciprocal && c < o.dim; c++) reciprocal = (int)(g->s->row_divisors >> (o.off + c) & 1);
    if (!reciprocal) return kp__llvm.LLVMBuildFDiv(g->B, a, b, "");
    return kp__llvm.LLVMBuildFMul(g->B, a, kp__llvm.LLVMBuildFDiv(g->AB, splat(g, 1), b, ""), "");
}

/* One component of an elementwise op (ops.def classes EW1, EW2, EW3). */
static LLVMValueRef elementwise(gen *g, const kp_instr *ins, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
    LLVMValueRef one = splat(g, 1), zero = splat(g, 0);
    switch ((int)ins->op) { /* selective: the others fail or take another path */
    case KP_OP_ADD: return kp__llvm.LLVMBuildFAdd(g->B, a, b, "");
    case KP_OP_SUB: return kp__llvm.LLVMBuildFSub(g->B, a, b, "");
    case KP_OP_MUL: return kp__llvm.LLVMBuildFMul(g->B, a, b, "");
    case KP_OP_DIV: return quotient(g, ins->in[1], a, b);
    case KP_OP_NEG: return kp__llvm.LLVMBuildFNeg(g->B, a, "");
    case KP_OP_INV: return kp__llvm.LLVMBuildFDiv(g->B, one, a, "");
    case KP_OP_SQUARE: return kp__llvm.LLVMBuildFMul(g->B, a, a, "");
    case KP_OP_POW: return ipow(g, a, ins->ip[0]);
    case KP_OP_SQRT: return call1(g, "llvm.sqrt", a);
    case KP_OP_RSQRT:
        return sel(g, cmp(g, LLVMRealOEQ, a, zero), zero, kp__llvm.LLVMBuildFDiv(g->B, one, call1(g, "llvm.sqrt", a), ""));
    case KP_OP_LT: return sel(g, cmp(g, LLVMRealOLT, a, b), one, zero);
    case KP_OP_LE: return sel(g, cmp(g, LLVMRealOLE, a, b), one, zero);
    case KP_OP_GT: return sel(g, cmp(g, LLVMRealOGT, a, b), one, zero);
    case KP_OP_GE: return sel(g, cmp(g, LLVMRealOGE, a, b), one, zero);
    case KP_OP_EQ: return sel(g, cmp(g, LLVMRealOEQ, a, b), one, zero);
    case KP_OP_NE: return sel(g, cmp(g, LLVMRealUNE, a, b), one, zero);
    case KP_OP_EXP: {
        ptrdiff_t i = ins - g->s->code; /* its place in the PAIR program */
        LLVMValueRef (*exp_of)(gen *, LLVMValueRef) = i >= 0 && i < 64 && (g->s->exp_nonpos >> i & 1) ? vexpnp : vexp;
        if (ins->nin == 2) return exp_of(g, ins->ip[1] ? quotient(g, ins->in[1], a, b) : kp__llvm.LLVMBuildFMul(g->B, a, b, ""));
        return exp_of(g, a);
    }
    case KP_OP_ABS: return call1(g, "llvm.fabs", a);
    case KP_OP_FLOOR: return call1(g, "llvm.floor", a);
    case KP_OP_SIGN:
        return sel(g, cmp(g, LLVMRealOGT, a, zero), one,
                   sel(g, cmp(g, LLVMRealOLT, a, zero), splat(g, -1), kp__llvm.LLVMBuildFMul(g->B, a, zero, "")));
    case KP_OP_STEP: return sel(g, cmp(g, LLVMRealOGE, a, zero), one, sel(g, cmp(g, LLVMRealOLT, a, zero), zero, a));
    case KP_OP_RELU: return sel(g, cmp(g, LLVMRealOGT, a, zero), a, sel(g, cmp(g, LLVMRealOEQ, a, a), zero, a));
    case KP_OP_CLAMP: return sel(g, cmp(g, LLVMRealOLT, a, b), b, sel(g, cmp(g, LLVMRealOGT, a, c), c, a));
    case KP_OP_IFELSE: return sel(g, cmp(g, LLVMRealOGE, a, zero), b, c);
    case KP_OP_POWF:
    case KP_OP_LOG:
    case KP_OP_XLOGX:
    case KP_OP_SIN:
    case KP_OP_COS:
    case KP_OP_ASIN:
    case KP_OP_ACOS:
    case KP_OP_ATAN:
    case KP_OP_ATAN2:
    case KP_OP_SINXDIVX:
    case KP_OP_TANH:
    case KP_OP_ERF:
    case KP_OP_ROUND: return scalarized(g, ins->op, ins->ip[0], a, b, c);
    default: fail(g, "op not elementwise"); return a;
    }
}

/* Sum over components of a_c * b_c (dot) or (a_c - b_c)^2, in component order. */
static LLVMValueRef dot_like(gen *g, const kp_instr *ins, int sqdist) {
    LLVMValueRef s = NULL;
    for (int c = 0; c < ins->in[0].dim; c++) {
        LLVMValueRef a = get(g, ins->in[0], c), b = get(g, ins->in[1], c);
        if (sqdist) a = b = kp__llvm.LLVMBuildFSub(g->B, a, b, "");
        s = s ? fmuladd(g, a, b, s) : kp__llvm.LLVMBuildFMul(g->B, a, b, "");
    }
    return s;
}

/* Max/Min (value or index) over components; NaN ranks first, ties to the first. */
static LLVMValueRef select_comp(gen *g, const kp_instr *ins) {
    int is_max = ins->op == KP_OP_MAXC || ins->op == KP_OP_ARGMAXC;
    int is_arg = ins->op == KP_OP_ARGMAXC || ins->op == KP_OP_ARGMINC;
    LLVMValueRef best = get(g, ins->in[0], 0), arg = splat(g, 0);
    for (int c = 1; c < ins->in[0].dim; c++) {
        LLVMValueRef v = get(g, ins->in[0], c);
        LLVMValueRef better = kp__llvm.LLVMBuildOr(g->B, cmp(g, is_max ? LLVMRealOGT : LLVMRealOLT, v, best),
                                          kp__llvm.LLVMBuildAnd(g->B, cmp(g, LLVMRealUNO, v, v), cmp(g, LLVMRealORD, best, best), ""), "");
        best = sel(g, better, v, best);
        arg = sel(g, better, splat(g, c), arg);
    }
    return is_arg ? arg : best;
}

static void set_out(gen *g, const kp_instr *ins, int c, LLVMValueRef v) { g->pv[ins->out.off + c] = v; }

/* Sum_l a(r, l) * b(l, q) for matrix-vector products, from 0 as the interpreter does. */
static LLVMValueRef mac_sum(gen *g, kp_operand a, kp_operand b, int n, int a0, int astep, int b0, int bstep) {
    LLVMValueRef s = splat(g, 0);
    for (int l = 0; l < n; l++) s = fmuladd(g, get(g, a, a0 + l * astep), get(g, b, b0 + l * bstep), s);
    return s;
}

static void vector_op(gen *g, const kp_instr *ins) {
    kp_operand a = ins->in[0], b = ins->in[1];
    int od = ins->out.dim;
    switch ((int)ins->op) { /* selective: the others fail or take another path */
    case KP_OP_DOT: set_out(g, ins, 0, dot_like(g, ins, 0)); return;
    case KP_OP_SQDIST: set_out(g, ins, 0, dot_like(g, ins, 1)); return;
    case KP_OP_SUM: {
        LLVMValueRef s = kp__llvm.LLVMBuildFAdd(g->B, splat(g, 0), get(g, a, 0), ""); /* 0 + a_0: no -0 */
        for (int c = 1; c < a.dim; c++) s = kp__llvm.LLVMBuildFAdd(g->B, s, get(g, a, c), "");
        set_out(g, ins, 0, s);
        return;
    }
    case KP_OP_MAXC:
    case KP_OP_MINC:
    case KP_OP_ARGMAXC:
    case KP_OP_ARGMINC: set_out(g, ins, 0, select_comp(g, ins)); return;
    case KP_OP_EXTRACT:
        for (int c = 0; c < od; c++) set_out(g, ins, c, get(g, a, c + ins->ip[0]));
        return;
    case KP_OP_CONCAT:
        for (int c = 0; c < a.dim; c++) set_out(g, ins, c, get(g, a, c));
        for (int c = 0; c < b.dim; c++) set_out(g, ins, a.dim + c, get(g, b, c));
        return;
    case KP_OP_BCAST:
        for (int c = 0; c < od; c++) set_out(g, ins, c, get(g, a, c));
        return;
    case KP_OP_ONEHOT: {
        LLVMValueRef r = call1(g, "llvm.round", get(g, a, 0));
        for (int c = 0; c < od; c++) set_out(g, ins, c, sel(g, cmp(g, LLVMRealOEQ, r, splat(g, c)), splat(g, 1), splat(g, 0)));
        return;
    }
    case KP_OP_MATVEC:
        for (int r = 0; r < od; r++) set_out(g, ins, r, mac_sum(g, a, b, b.dim, r * b.dim, 1, 0, 1));
        return;
    case KP_OP_VECMAT:
        for (int l = 0; l < od; l++) set_out(g, ins, l, mac_sum(g, a, b, a.dim, 0, 1, l, od));
        return;
    case KP_OP_TENSORPROD:
        for (int r = 0; r < a.dim; r++)
            for (int l = 0; l < b.dim; l++)
                set_out(g, ins, r * b.dim + l, kp__llvm.LLVMBuildFMul(g->B, get(g, a, r), get(g, b, l), ""));
        return;
    default: fail(g, "op without a compiled form (a leaf in the pair program)"); return;
    }
}

/* The pair program for row g->r at lanes g->k. */
static void pair_program(gen *g) {
    memset(g->pv, 0, (size_t)g->s->pair_size * sizeof *g->pv);
    for (int i = 0; i < g->s->n && !g->failed; i++) {
        const kp_instr *ins = &g->s->code[i];
        if (ins->out.loc != KP_LOC_PAIR || ins->out.off + ins->out.dim > g->s->pair_size) {
            fail(g, "pair instruction writes outside the pair buffer");
            return;
        }
        if (kp__op_is_elementwise(ins->op))
            for (int d = 0; d < ins->out.dim; d++)
                set_out(g, ins, d, elementwise(g, ins, get(g, ins->in[0], d), ins->nin > 1 ? get(g, ins->in[1], d) : NULL,
                                               ins->nin > 2 ? get(g, ins->in[2], d) : NULL));
        else vector_op(g, ins);
    }
}

static void mark_row(char *need, int row_size, kp_operand o) {
    if (o.loc == KP_LOC_ROW)
        for (int c = 0; c < o.dim && o.off + c < row_size; c++) need[o.off + c] = 1;
}

/* Row splats, in the first block, for every ROW operand the program reads
 * (row 0's for a component that is the same in every row). */
static void load_rows(gen *g) {
    const kp_jit_spec *s = g->s;
    char *need = calloc((size_t)s->row_size + 1, 1);
    g->rowval = calloc((size_t)s->rows * (size_t)s->row_size + 1, sizeof *g->rowval);
    if (!need || !g->rowval) {
        free(need);
        fail(g, "out of memory");
        return;
    }
    for (int i = 0; i < s->n; i++)
        for (int j = 0; j < s->code[i].nin; j++) mark_row(need, s->row_size, s->code[i].in[j]);
    for (int side = 0; side < 2; side++)
        for (int t = 0; t < s->nterms[side]; t++)
            for (int f = 0; f < s->terms[side][t].nfactors; f++) mark_row(need, s->row_size, s->terms[side][t].factor[f]);
    for (int r = 0; r < s->rows; r++)
        for (int c = 0; c < s->row_size; c++) {
            if (!need[c]) continue;
            if (r > 0 && c < 64 && (s->row_uniform >> c & 1)) {
                g->rowval[r * s->row_size + c] = g->rowval[c];
                continue;
            }
            LLVMValueRef idx = kp__llvm.LLVMConstInt(g->i64, (unsigned long long)(r * s->row_size + c), 0);
            LLVMValueRef x = kp__llvm.LLVMBuildLoad2(g->AB, g->T, kp__llvm.LLVMBuildGEP2(g->AB, g->T, g->rowv, &idx, 1, ""), "");
            LLVMValueRef v = kp__llvm.LLVMBuildInsertElement(g->AB, kp__llvm.LLVMGetUndef(g->VT), x, kp__llvm.LLVMConstInt(g->i32, 0, 0), "");
            LLVMValueRef zeros = kp__llvm.LLVMConstNull(kp__llvm.LLVMVectorType(g->i32, (unsigned)s->vl));
            g->rowval[r * s->row_size + c] = kp__llvm.LLVMBuildShuffleVector(g->AB, v, kp__llvm.LLVMGetUndef(g->VT), zeros, "");
        }
    free(need);
}

/* Lanes k + l < len, as a vector of i1. */
static LLVMValueRef lane_mask(gen *g) {
    LLVMValueRef e[16];
    for (int l = 0; l < g->s->vl; l++) e[l] = kp__llvm.LLVMConstInt(g->i64, (unsigned long long)l, 0);
    LLVMTypeRef vi = kp__llvm.LLVMVectorType(g->i64, (unsigned)g->s->vl);
    LLVMValueRef kv = kp__llvm.LLVMBuildInsertElement(g->B, kp__llvm.LLVMGetUndef(vi), g->k, kp__llvm.LLVMConstInt(g->i32, 0, 0), "");
    LLVMValueRef lv = kp__llvm.LLVMBuildInsertElement(g->B, kp__llvm.LLVMGetUndef(vi), g->len, kp__llvm.LLVMConstInt(g->i32, 0, 0), "");
    LLVMValueRef zeros = kp__llvm.LLVMConstNull(kp__llvm.LLVMVectorType(g->i32, (unsigned)g->s->vl));
    kv = kp__llvm.LLVMBuildShuffleVector(g->B, kv, kp__llvm.LLVMGetUndef(vi), zeros, "");
    lv = kp__llvm.LLVMBuildShuffleVector(g->B, lv, kp__llvm.LLVMGetUndef(vi), zeros, "");
    return kp__llvm.LLVMBuildICmp(g->B, LLVMIntSLT, kp__llvm.LLVMBuildAdd(g->B, kv, kp__llvm.LLVMConstVector(e, (unsigned)g->s->vl), ""), lv, "");
}

/* ---------------------------------------------------------- joint programs */

/* acc + (the product of v[0..n)), lanes outside mask adding 0: the product
 * left to right, its last factor fused into the add where no mask intervenes
 * (the interpreter's s * a[k] * b[k] accumulated). */
static LLVMValueRef add_product(gen *g, LLVMValueRef acc, LLVMValueRef *v, int n, LLVMValueRef mask) {
    LLVMValueRef p = v[0];
    int last = mask || n == 1 ? n : n - 1;
    for (int i = 1; i < last; i++) p = kp__llvm.LLVMBuildFMul(g->B, p, v[i], "");
    if (last == n) return kp__llvm.LLVMBuildFAdd(g->B, acc, mask ? sel(g, mask, p, splat(g, 0)) : p, "");
    return fmuladd(g, p, v[n - 1], acc);
}

/* Component d of a term's factors for the current row, in the interpreter's
 * order: a column term's ROW factor first (kernel_joint.h's scalar s), then
 * its tiles. Returns how many. */
static int term_factors(gen *g, const kp_sum_term *t, int d, LLVMValueRef *v) {
    int n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int f = 0; f < t->nfactors; f++)
            if ((t->factor[f].loc == KP_LOC_ROW) == (pass == 0)) v[n++] = get(g, t->factor[f], d);
    return n;
}

/* Address of lane k of column term component c in coltmp, as a vector pointer. */
static LLVMValueRef coltmp_at(gen *g, int c) {
    LLVMValueRef idx = kp__llvm.LLVMBuildAdd(g->B, g->k, kp__llvm.LLVMConstInt(g->i64, (unsigned long long)c * (unsigned long long)g->s->tile, 0), "");
    return kp__llvm.LLVMBuildBitCast(g->B, kp__llvm.LLVMBuildGEP2(g->B, g->T, g->coltmp, &idx, 1, ""), g->PVT, "");
}

/* One step of a joint kernel: every row's pair program, its row terms into
 * acc (rows x rowdim), its column terms added into this step's coltmp lanes
 * (loaded once, stored once, rows past nrows left out). */
static void joint_step(gen *g, LLVMValueRef *acc, LLVMValueRef mask) {
    const kp_jit_spec *s = g->s;
    LLVMValueRef *cacc = calloc((size_t)s->coldim + 1, sizeof *cacc), v[KP_TERM_TILES];
    if (!cacc) {
        fail(g, "out of memory");
        return;
    }
    for (int c = 0; c < s->coldim; c++) {
        cacc[c] = kp__llvm.LLVMBuildLoad2(g->B, g->VT, coltmp_at(g, c), "");
        kp__llvm.LLVMSetAlignment(cacc[c], (unsigned)(s->f32 ? 4 : 8));
    }
    for (g->r = 0; g->r < s->rows && !g->failed; g->r++) {
        pair_program(g);
        for (int side = 0, at = 0; side < 2; side++, at = 0)
            for (int t = 0; t < s->nterms[side]; t++)
                for (int d = 0; d < s->terms[side][t].dim; d++, at++) {
                    int n = term_factors(g, &s->terms[side][t], d, v);
                    if (side == 0) {
                        LLVMValueRef *a = &acc[g->r * s->rowdim + at];
                        *a = add_product(g, *a, v, n, mask);
                        continue;
                    }
                    LLVMValueRef sum = add_product(g, cacc[at], v, n, mask);
                    cacc[at] = g->r == 0 ? sum : sel(g, g->valid[g->r], sum, cacc[at]);
                }
    }
    for (int c = 0; c < s->coldim && !g->failed; c++)
        kp__llvm.LLVMSetAlignment(kp__llvm.LLVMBuildStore(g->B, cacc[c], coltmp_at(g, c)), (unsigned)(s->f32 ? 4 : 8));
    free(cacc);
}

/* ------------------------------------------ LogSumExp and SumSoftMaxWeight */

/* The lanes of v combined into one scalar: pairwise sums, or the max with
 * NaN winning (max). */
static LLVMValueRef hreduce(gen *g, LLVMValueRef v, int max) {
    LLVMValueRef lanes[16];
    for (int l = 0; l < g->s->vl; l++)
        lanes[l] = kp__llvm.LLVMBuildExtractElement(g->B, v, kp__llvm.LLVMConstInt(g->i32, (unsigned long long)l, 0), "");
    for (int w = g->s->vl / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) {
            LLVMValueRef a = lanes[l], b = lanes[l + w];
            if (!max) {
                lanes[l] = kp__llvm.LLVMBuildFAdd(g->B, a, b, "");
                continue;
            }
            LLVMValueRef better = kp__llvm.LLVMBuildOr(g->B, cmp(g, LLVMRealOGT, a, b), cmp(g, LLVMRealUNO, a, a), "");
            lanes[l] = sel(g, better, a, b);
        }
    return lanes[0];
}

static void store_scalar(gen *g, int64_t at, LLVMValueRef v) {
    LLVMValueRef idx = kp__llvm.LLVMConstInt(g->i64, (unsigned long long)at, 0);
    kp__llvm.LLVMBuildStore(g->B, v, kp__llvm.LLVMBuildGEP2(g->B, g->T, g->out, &idx, 1, ""));
}

/* One online state's lanes st = (m, s, acc[0..nw)) combined into the tile's
 * (M, S, A): M the lanes' max, each lane rescaled by exp(m - M), then summed.
 * exp(m - M) is taken as 0 where it is NaN (lanes of -inf under M = -inf, of
 * +inf under M = +inf, or M NaN): the merge skips or overrides those states,
 * and their sums are then written as numbers. Stored at out[at_m],
 * out[at_s], out[at_a + k]. */
static void lse_combine(gen *g, const LLVMValueRef *st, int nw, int64_t at_m, int64_t at_s, int64_t at_a, int ssmw) {
    LLVMValueRef M = hreduce(g, st[0], 1);
    LLVMValueRef v = kp__llvm.LLVMBuildInsertElement(g->B, kp__llvm.LLVMGetUndef(g->VT), M, kp__llvm.LLVMConstInt(g->i32, 0, 0), "");
    LLVMValueRef zeros = kp__llvm.LLVMConstNull(kp__llvm.LLVMVectorType(g->i32, (unsigned)g->s->vl));
    LLVMValueRef d = kp__llvm.LLVMBuildFSub(g->B, st[0], kp__llvm.LLVMBuildShuffleVector(g->B, v, kp__llvm.LLVMGetUndef(g->VT), zeros, ""), "");
    LLVMValueRef w = vexpneg(g, d);
    if (ssmw) { /* a +inf F: the weights are 0/0 (ssmw_tile) */
        LLVMValueRef inf = kp__llvm.LLVMConstReal(g->T, INFINITY), nan = kp__llvm.LLVMConstReal(g->T, NAN);
        M = sel(g, cmp(g, LLVMRealOEQ, M, inf), nan, M);
    }
    store_scalar(g, at_m, M);
    store_scalar(g, at_s, hreduce(g, kp__llvm.LLVMBuildFMul(g->B, st[1], w, ""), 0));
    for (int k = 0; k < nw; k++) store_scalar(g, at_a + k, hreduce(g, kp__llvm.LLVMBuildFMul(g->B, st[2 + k], w, ""), 0));
}

/* Every row's tile state, in the interpreter's layout (kernel_reduce.h), its
 * compensations 0: LogSumExp m[D], s[D], c[D]; SumSoftMaxWeight m, s, c,
 * num[DG], c[DG]. */
static void lse_store(gen *g, LLVMValueRef *acc) {
    const kp_jit_spec *s = g->s;
    int D = s->fdim, DG = s->red_g.dim, W = kp__jit_lse_state(D, DG);
    int nreal = DG ? 3 + 2 * DG : 3 * D;
    LLVMValueRef zero = kp__llvm.LLVMConstReal(g->T, 0);
    for (int r = 0; r < s->rows; r++) {
        int64_t base = (int64_t)r * nreal;
        if (DG) {
            lse_combine(g, acc + r * W, DG, base, base + 1, base + 3, 1);
            store_scalar(g, base + 2, zero);
            for (int k = 0; k < DG; k++) store_scalar(g, base + 3 + DG + k, zero);
            continue;
        }
        for (int d = 0; d < D; d++) {
            lse_combine(g, acc + r * W + 2 * d, 0, base + d, base + D + d, 0, 0);
            store_scalar(g, base + 2 * D + d, zero);
        }
    }
}

/* One step (VL lanes at g->k) of every row: accumulates F (* F2) into acc
 * (KP_JIT_SUM; lanes outside mask add 0) or stores the reduction's PAIR
 * inputs (KP_JIT_TILES). */
static void step(gen *g, LLVMValueRef *acc, LLVMValueRef mask) {
    const kp_jit_spec *s = g->s;
    memset(g->colval, 0, (size_t)(s->col_size + 1) * sizeof *g->colval);
    if (s->mode == KP_JIT_JOINT) {
        joint_step(g, acc, mask);
        return;
    }
    for (g->r = 0; g->r < s->rows && !g->failed; g->r++) {
        pair_program(g);
        if (s->mode == KP_JIT_SUM) {
            for (int d = 0; d < s->fdim; d++) {
                LLVMValueRef *a = &acc[g->r * s->fdim + d], f = get(g, s->red_f, d);
                if (mask) {
                    if (s->red_f2.dim) f = kp__llvm.LLVMBuildFMul(g->B, f, get(g, s->red_f2, d), "");
                    *a = kp__llvm.LLVMBuildFAdd(g->B, *a, sel(g, mask, f, splat(g, 0)), "");
                } else {
                    *a = s->red_f2.dim ? fmuladd(g, f, get(g, s->red_f2, d), *a) : kp__llvm.LLVMBuildFAdd(g->B, *a, f, "");
                }
            }
            continue;
        }
        const kp_operand *ops[3] = {&s->red_f, &s->red_f2, &s->red_g};
        for (int q = 0; q < 3; q++) {
            if (ops[q]->dim == 0 || ops[q]->loc != KP_LOC_PAIR) continue;
            for (int c = 0; c < ops[q]->dim; c++) {
                unsigned long long at = (unsigned long long)(g->r * (s->pair_size + 1) + ops[q]->off + c) * (unsigned long long)s->tile;
                LLVMValueRef idx = kp__llvm.LLVMBuildAdd(g->B, g->k, kp__llvm.LLVMConstInt(g->i64, at, 0), "");
                LLVMValueRef p = kp__llvm.LLVMBuildBitCast(g->B, kp__llvm.LLVMBuildGEP2(g->B, g->T, g->out, &idx, 1, ""), g->PVT, "");
                kp__llvm.LLVMSetAlignment(kp__llvm.LLVMBuildStore(g->B, get(g, *ops[q], c), p), (unsigned)(s->f32 ? 4 : 8));
            }
        }
    }
}

/* Horizontal sums of the n accumulators, stored to out (KP_JIT_SUM, KP_JIT_JOINT). */
static void store_sums(gen *g, LLVMValueRef *acc, int n) {
    for (int i = 0; i < n; i++) store_scalar(g, i, hreduce(g, acc[i], 0));
}

typedef void (*step_fn)(gen *g, LLVMValueRef *acc, LLVMValueRef mask);

/* The loop over steps, entered from block pred (which the caller ends with a
 * branch to the returned header): full steps while k + VL <= len, then a
 * masked last one (sums), or every step that starts before len, unmasked
 * (KP_JIT_TILES). The nacc accumulators (vectors of the kernel's type)
 * start at acc[i] (values available in pred), are carried by phis and hold
 * their final values on return, with the builder at the end of the loop's
 * exit block. NULL when out of memory. */
static LLVMBasicBlockRef build_steps(gen *g, LLVMBasicBlockRef pred, int sums, int nacc, LLVMValueRef *acc, step_fn fn) {
    LLVMValueRef *init = calloc((size_t)nacc + 1, sizeof *init), *phis = calloc((size_t)nacc + 1, sizeof *phis);
    if (!init || !phis) {
        fail(g, "out of memory");
        free(init), free(phis);
        return NULL;
    }
    memcpy(init, acc, (size_t)nacc * sizeof *acc);
    LLVMBasicBlockRef head = kp__llvm.LLVMAppendBasicBlockInContext(g->C, g->fn, "head");
    LLVMBasicBlockRef body = kp__llvm.LLVMAppendBasicBlockInContext(g->C, g->fn, "body");
    LLVMBasicBlockRef tail = kp__llvm.LLVMAppendBasicBlockInContext(g->C, g->fn, "tail");
    LLVMBasicBlockRef last = kp__llvm.LLVMAppendBasicBlockInContext(g->C, g->fn, "last");
    LLVMBasicBlockRef done = kp__llvm.LLVMAppendBasicBlockInContext(g->C, g->fn, "done");
    kp__llvm.LLVMPositionBuilderAtEnd(g->B, head);
    LLVMValueRef kphi = kp__llvm.LLVMBuildPhi(g->B, g->i64, "k");
    for (int i = 0; i < nacc; i++) phis[i] = acc[i] = kp__llvm.LLVMBuildPhi(g->B, g->VT, "");
    LLVMValueRef vl = kp__llvm.LLVMConstInt(g->i64, (unsigned long long)g->s->vl, 0);
    LLVMValueRef more = sums ? kp__llvm.LLVMBuildICmp(g->B, LLVMIntSLE, kp__llvm.LLVMBuildAdd(g->B, kphi, vl, ""), g->len, "")
                             : kp__llvm.LLVMBuildICmp(g->B, LLVMIntSLT, kphi, g->len, "");
    kp__llvm.LLVMBuildCondBr(g->B, more, body, tail);
    kp__llvm.LLVMPositionBuilderAtEnd(g->B, body);
    g->k = kphi;
    fn(g, acc, NULL);
    LLVMValueRef knext = kp__llvm.LLVMBuildAdd(g->B, kphi, vl, "");
    LLVMBasicBlockRef body_end = kp__llvm.LLVMGetInsertBlock(g->B);
    kp__llvm.LLVMBuildBr(g->B, head);
    LLVMValueRef zero64 = kp__llvm.LLVMConstInt(g->i64, 0, 0);
    kp__llvm.LLVMAddIncoming(kphi, &zero64, &pred, 1);
    kp__llvm.LLVMAddIncoming(kphi, &knext, &body_end, 1);
    for (int i = 0; i < nacc; i++) {
        kp__llvm.LLVMAddIncoming(phis[i], &init[i], &pred, 1);
        kp__llvm.LLVMAddIncoming(phis[i], &acc[i], &body_end, 1);
        acc[i] = phis[i];
    }
    kp__llvm.LLVMPositionBuilderAtEnd(g->B, tail);
    kp__llvm.LLVMBuildCondBr(g->B, sums ? kp__llvm.LLVMBuildICmp(g->B, LLVMIntSLT, kphi, g->len, "") : kp__llvm.LLVMConstInt(kp__llvm.LLVMInt1TypeInContext(g->C), 0, 0), last, done);
    kp__llvm.LLVMPositionBuilderAtEnd(g->B, last);
    if (sums) fn(g, acc, lane_mask(g));
    LLVMBasicBlockRef last_end = kp__llvm.LLVMGetInsertBlock(g->B);
    kp__llvm.LLVMBuildBr(g->B, done);
    kp__llvm.LLVMPositionBuilderAtEnd(g->B, done);
    for (int i = 0; i < nacc; i++) {
        LLVMValueRef p = kp__llvm.LLVMBuildPhi(g->B, g->VT, "");
        kp__llvm.LLVMAddIncoming(p, &phis[i], &tail, 1);
        kp__llvm.LLVMAddIncoming(p, &acc[i], &last_end, 1);
        acc[i] = p;
    }
    free(init), free(phis);
    return head;
}

/* KP_JIT_LSE's scratch slot c of the current row at the step's lanes: the
 * PAIR components of F, then of G, kept by the first pass for the second
 * (jit.h, kp__jit_lse_stored: from out + 2 * tile, tile reals each). */
static LLVMValueRef lse_slot(gen *g, int c) {
    const kp_jit_spec *s = g->s;
    int per_row = kp__jit_lse_stored(s->red_f, s->fdim, s->red_g);
    unsigned long long at = (unsigned long long)(2 + g->r * per_row + c) * (unsigned long long)s->tile;
    LLVMValueRef idx = kp__llvm.LLVMBuildAdd(g->B, g->k, kp__llvm.LLVMConstInt(g->i64, at, 0), "");
    return kp__llvm.LLVMBuildBitCast(g->B, kp__llvm.LLVMBuildGEP2(g->B, g->T, g->out, &idx, 1, ""), g->PVT, "");
}

static void lse_keep(gen *g, int c, LLVMValueRef v) {
    kp__llvm.LLVMSetAlignment(kp__llvm.LLVMBuildStore(g->B, v, lse_slot(g, c)), (unsigned)(g->s->f32 ? 4 : 8));
}

static LLVMValueRef lse_kept(gen *g, int c) {
    LLVMValueRef ld = kp__llvm.LLVMBuildLoad2(g->B, g->VT, lse_slot(g, c), "");
    kp__llvm.LLVMSetAlignment(ld, (unsigned)(g->s->f32 ? 4 : 8));
    return ld;
}

/* First pass, one step: each row's F (and G) computed, their PAIR components
 * kept, and per lane and component of F the max (acc[2d]) and a NaN met
 * (acc[2d + 1]: 0 until F is NaN, then that NaN). Lanes outside mask
 * unchanged. */
static void lse_max_step(gen *g, LLVMValueRef *acc, LLVMValueRef mask) {
    const kp_jit_spec *s = g->s;
    memset(g->colval, 0, (size_t)(s->col_size + 1) * sizeof *g->colval);
    for (g->r = 0; g->r < s->rows && !g->failed; g->r++) {
        pair_program(g);
        LLVMValueRef *st = acc + 2 * g->r * s->fdim;
        int c = 0;
        for (int d = 0; d < s->fdim; d++) {
            LLVMValueRef f = get(g, s->red_f, d);
            if (s->red_f.loc == KP_LOC_PAIR) lse_keep(g, c++, f);
            LLVMValueRef m = sel(g, cmp(g, LLVMRealOGT, f, st[2 * d]), f, st[2 * d]);
            LLVMValueRef nan = sel(g, cmp(g, LLVMRealUNO, f, f), f, st[2 * d + 1]);
            st[2 * d] = mask ? sel(g, mask, m, st[2 * d]) : m;
            st[2 * d + 1] = mask ? sel(g, mask, nan, st[2 * d + 1]) : nan;
        }
        for (int k = 0; s->red_g.loc == KP_LOC_PAIR && k < s->red_g.dim; k++) lse_keep(g, c++, get(g, s->red_g, k));
    }
}

/* Second pass, one step: with each lane's max m of the first pass (g->lse_m),
 * s += exp(F - m) per component of F (LogSumExp), or s += e and acc[k] += e
 * G_k with e = exp(F - m) (SumSoftMaxWeight): acc holds, per row, s per
 * component, then acc[dim G]. One exp per pair, of an argument <= 0 (or NaN,
 * where F is NaN or an infinity meets itself: e = 0). Lanes outside mask
 * unchanged. */
static void lse_sum_step(gen *g, LLVMValueRef *acc, LLVMValueRef mask) {
    const kp_jit_spec *s = g->s;
    int D = s->fdim, DG = s->red_g.dim, per_row = DG ? 1 + DG : D;
    memset(g->colval, 0, (size_t)(s->col_size + 1) * sizeof *g->colval);
    for (g->r = 0; g->r < s->rows && !g->failed; g->r++) {
        LLVMValueRef *st = acc + g->r * per_row;
        int c = 0;
        for (int d = 0; d < D; d++) {
            LLVMValueRef f = s->red_f.loc == KP_LOC_PAIR ? lse_kept(g, c++) : get(g, s->red_f, d);
            LLVMValueRef e = vexpneg(g, kp__llvm.LLVMBuildFSub(g->B, f, g->lse_m[g->r * D + d], ""));
            LLVMValueRef sum = kp__llvm.LLVMBuildFAdd(g->B, st[d], e, "");
            st[d] = mask ? sel(g, mask, sum, st[d]) : sum;
            for (int k = 0; k < DG; k++) {
                LLVMValueRef w = s->red_g.loc == KP_LOC_PAIR ? lse_kept(g, c++) : get(g, s->red_g, k);
                LLVMValueRef a = fmuladd(g, e, w, st[1 + k]);
                st[1 + k] = mask ? sel(g, mask, a, st[1 + k]) : a;
            }
        }
    }
}

/* KP_JIT_LSE in two passes over the tile: the lanes' maxima of F first (F
 * and G kept in the scratch), then the sums of exp(F - max), with no
 * rescaling and no select per pair; the lanes' states combined and stored as
 * lse_store says. */
static void lse_two_passes(gen *g, LLVMBasicBlockRef entry) {
    const kp_jit_spec *s = g->s;
    int D = s->fdim, DG = s->red_g.dim, W = kp__jit_lse_state(D, DG), per_row = DG ? 1 + DG : D;
    int n1 = 2 * s->rows * D, n2 = s->rows * per_row;
    LLVMValueRef *a1 = calloc((size_t)n1 + 1, sizeof *a1), *a2 = calloc((size_t)n2 + 1, sizeof *a2);
    LLVMValueRef *m = calloc((size_t)(s->rows * D) + 1, sizeof *m), *st = calloc((size_t)(s->rows * W) + 1, sizeof *st);
    if (!a1 || !a2 || !m || !st) {
        fail(g, "out of memory");
        goto out;
    }
    for (int i = 0; i < n1; i++) a1[i] = splat(g, i % 2 ? 0 : -INFINITY);
    LLVMBasicBlockRef head1 = build_steps(g, entry, 1, n1, a1, lse_max_step);
    if (!head1) goto out;
    for (int i = 0; i < s->rows * D; i++) /* a NaN met is the lane's max */
        m[i] = sel(g, cmp(g, LLVMRealUNO, a1[2 * i + 1], a1[2 * i + 1]), a1[2 * i + 1], a1[2 * i]);
    g->lse_m = m;
    for (int i = 0; i < n2; i++) a2[i] = splat(g, 0);
    LLVMBasicBlockRef between = kp__llvm.LLVMGetInsertBlock(g->B);
    LLVMBasicBlockRef head2 = build_steps(g, between, 1, n2, a2, lse_sum_step);
    if (!head2) goto out;
    LLVMBasicBlockRef end = kp__llvm.LLVMGetInsertBlock(g->B);
    kp__llvm.LLVMPositionBuilderAtEnd(g->B, between);
    kp__llvm.LLVMBuildBr(g->B, head2);
    kp__llvm.LLVMPositionBuilderAtEnd(g->B, end);
    for (int r = 0; r < s->rows; r++) /* lse_store's layout: (m, s) per component, or (m, s, acc[dim G]) */
        for (int d = 0; d < D; d++) {
            LLVMValueRef *to = st + r * W + (DG ? 0 : 2 * d), *from = a2 + r * per_row;
            to[0] = m[r * D + d];
            to[1] = from[d];
            for (int k = 0; k < DG; k++) to[2 + k] = from[1 + k];
        }
    lse_store(g, st);
    kp__llvm.LLVMBuildRetVoid(g->B);
    kp__llvm.LLVMBuildBr(g->AB, head1); /* last: the entry block took allocas and row values until now */
out:
    g->lse_m = NULL;
    free(a1), free(a2), free(m), free(st);
}

/* The kernel's body after the entry block: its loop(s), the results stored. */
static void build_loop(gen *g, LLVMBasicBlockRef entry) {
    const kp_jit_spec *s = g->s;
    if (s->mode == KP_JIT_LSE) {
        lse_two_passes(g, entry);
        return;
    }
    int sums = s->mode != KP_JIT_TILES; /* SUM, JOINT: full steps, then a masked last one */
    int nacc = s->mode == KP_JIT_SUM ? s->rows * s->fdim : s->mode == KP_JIT_JOINT ? s->rows * s->rowdim : 0;
    LLVMValueRef *acc = calloc((size_t)nacc + 1, sizeof *acc);
    if (!acc) {
        fail(g, "out of memory");
        return;
    }
    for (int i = 0; i < nacc; i++) acc[i] = splat(g, 0);
    LLVMBasicBlockRef head = build_steps(g, entry, sums, nacc, acc, step);
    if (head) {
        if (sums) store_sums(g, acc, nacc);
        kp__llvm.LLVMBuildRetVoid(g->B);
        kp__llvm.LLVMBuildBr(g->AB, head); /* last: the entry block took allocas and row values until now */
    }
    free(acc);
}

static void build_function(gen *g, const char *name) {
    const kp_jit_spec *s = g->s;
    g->T = s->f32 ? kp__llvm.LLVMFloatTypeInContext(g->C) : kp__llvm.LLVMDoubleTypeInContext(g->C);
    g->VT = kp__llvm.LLVMVectorType(g->T, (unsigned)s->vl);
    g->PT = kp__llvm.LLVMPointerType(g->T, 0);
    g->PVT = kp__llvm.LLVMPointerType(g->VT, 0);
    g->i32 = kp__llvm.LLVMInt32TypeInContext(g->C);
    g->i64 = kp__llvm.LLVMInt64TypeInContext(g->C);
    /* (rowv, colbuf, out, len), or for KP_JIT_JOINT (rowv, colbuf, rowsums, coltmp, len, nrows) */
    int joint = s->mode == KP_JIT_JOINT;
    unsigned nptr = joint ? 4 : 3;
    LLVMTypeRef params[6] = {g->PT, g->PT, g->PT, g->PT, g->i64, g->i64};
    if (!joint) params[3] = g->i64;
    g->fn = kp__llvm.LLVMAddFunction(g->M, name, kp__llvm.LLVMFunctionType(kp__llvm.LLVMVoidTypeInContext(g->C), params, nptr + 1 + (unsigned)joint, 0));
    g->rowv = kp__llvm.LLVMGetParam(g->fn, 0);
    g->colbuf = kp__llvm.LLVMGetParam(g->fn, 1);
    g->out = kp__llvm.LLVMGetParam(g->fn, 2);
    if (joint) g->coltmp = kp__llvm.LLVMGetParam(g->fn, 3);
    g->len = kp__llvm.LLVMGetParam(g->fn, nptr);
    for (unsigned p = 0; p < nptr; p++) /* the buffers never alias each other */
        kp__llvm.LLVMAddAttributeAtIndex(g->fn, p + 1, kp__llvm.LLVMCreateEnumAttribute(g->C, kp__llvm.LLVMGetEnumAttributeKindForName("noalias", 7), 0));
    LLVMBasicBlockRef entry = kp__llvm.LLVMAppendBasicBlockInContext(g->C, g->fn, "entry");
    kp__llvm.LLVMPositionBuilderAtEnd(g->AB, entry);
    if (joint) {
        g->nrows = kp__llvm.LLVMGetParam(g->fn, nptr + 1);
        for (int r = 0; r < s->rows; r++)
            g->valid[r] = kp__llvm.LLVMBuildICmp(g->AB, LLVMIntSLT, kp__llvm.LLVMConstInt(g->i64, (unsigned long long)r, 0), g->nrows, "");
    }
    g->colval = calloc((size_t)s->col_size + 1, sizeof *g->colval);
    g->pv = calloc((size_t)s->pair_size + 1, sizeof *g->pv);
    if (!g->colval || !g->pv) {
        fail(g, "out of memory");
        return;
    }
    load_rows(g);
    if (!g->failed) build_loop(g, entry);
}

LLVMModuleRef kp__jit_build(LLVMContextRef C, const kp_jit_spec *s, const char *name, char *msg, size_t msgsz) {
    gen g;
    memset(&g, 0, sizeof g);
    g.C = C;
    g.s = s;
    g.msg = msg;
    g.msgsz = msgsz;
    if (s->vl > 16 || s->vl < 2 || s->rows < 1 || s->rows > KP_JIT_MAX_ROWS) {
        snprintf(msg, msgsz, "unsupported vector width or row count");
        return NULL;
    }
    if (s->mode == KP_JIT_LSE &&
        (kp__jit_lse_state(s->fdim, s->red_g.dim) > KP_JIT_LSE_MAX_STATE || (s->red_g.dim && s->fdim != 1))) {
        snprintf(msg, msgsz, "LogSumExp state too wide for a fused kernel");
        return NULL;
    }
    LLVMMemoryBufferRef buf = kp__llvm.LLVMCreateMemoryBufferWithMemoryRange((const char *)kp__jit_bitcode, kp__jit_bitcode_size, "kp_jit_ops", 0);
    if (kp__llvm.LLVMParseBitcodeInContext2(C, buf, &g.M)) {
        kp__llvm.LLVMDisposeMemoryBuffer(buf);
        snprintf(msg, msgsz, "cannot read the op bitcode (built by a newer clang than this LLVM?)");
        return NULL;
    }
    kp__llvm.LLVMDisposeMemoryBuffer(buf);
    g.B = kp__llvm.LLVMCreateBuilderInContext(C);
    g.AB = kp__llvm.LLVMCreateBuilderInContext(C);
    build_function(&g, name);
    kp__llvm.LLVMDisposeBuilder(g.B);
    kp__llvm.LLVMDisposeBuilder(g.AB);
    free(g.rowval), free(g.colval), free(g.pv);
    char *err = NULL;
    if (!g.failed && kp__llvm.LLVMVerifyModule(g.M, LLVMReturnStatusAction, &err)) fail(&g, err ? err : "invalid IR");
    if (err) kp__llvm.LLVMDisposeMessage(err);
    if (g.failed) {
        kp__llvm.LLVMDisposeModule(g.M);
        return NULL;
    }
    return g.M;
}
