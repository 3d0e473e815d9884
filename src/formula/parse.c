/*
 * parse.c — text to formula DAG (KeOps syntax), with errors that name the column.
 *
 * Grammar (recursive descent, one function per rule):
 *
 *   reduction  := NAME_Reduction '(' args ')'
 *   expr       := additive [ ('<' | '<=' | '>' | '>=' | '==' | '!=') additive ]
 *   additive   := term { ('+' | '-') term }
 *   term       := unary { ('*' | '/') unary }
 *   unary      := '-' unary | primary
 *   primary    := NUMBER | ALIAS | NAME '(' args ')' | '(' expr [ '|' expr ] ')'
 *   args       := expr { ',' expr }
 *
 * Integer arguments (Pow's exponent, Vi's position, axis, K, ...) are parsed as
 * expressions and must fold to integral constants: "Pow(x,-2)" and
 * "IntCst(3)" both work. Aliases ("x = Vi(3)") are parsed with the same lexer.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "formula/complex.h"
#include "formula/formula.h"
#include "formula/grad.h"
#include "formula/tensordot.h"

typedef enum {
    T_END,
    T_NUM,
    T_NAME,
    T_LPAR,
    T_RPAR,
    T_COMMA,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_SLASH,
    T_BAR,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_EQEQ,
    T_NE,
    T_ASSIGN,
    T_BAD
} tok_kind;

typedef struct {
    tok_kind kind;
    int col; /* 1-based column of the first character */
    const char *start;
    int len;
    double num;
} token;

#define MAX_ALIASES 256
#define MAX_CALL_ARGS 4
#define MAX_DEPTH 200

typedef struct {
    char name[64];
    const kp_node *node;
} alias_entry;

typedef struct {
    kp_context *ctx;
    kp_formula *f;
    const char *text;
    const char *where; /* "formula" or "alias 2 ('x = Vq(3)')" for messages */
    const char *p;
    token tok;
    kp_status st;
    int depth;
    alias_entry *aliases;
    int naliases;
} parser;

/* ------------------------------------------------------------------ lexer */

static void next(parser *ps) {
    const char *p = ps->p;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    token t;
    t.start = p;
    t.col = (int)(p - ps->text) + 1;
    t.len = 1;
    t.num = 0;
    char c = *p;
    if (c == '\0') {
        t.kind = T_END;
        t.len = 0;
    } else if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)p[1]))) {
        char *end = NULL;
        t.num = strtod(p, &end);
        t.kind = T_NUM;
        t.len = (int)(end - p);
    } else if (isalpha((unsigned char)c) || c == '_') {
        const char *q = p;
        while (isalnum((unsigned char)*q) || *q == '_') q++;
        t.kind = T_NAME;
        t.len = (int)(q - p);
    } else {
        t.kind = T_BAD;
        switch (c) {
        case '(': t.kind = T_LPAR; break;
        case ')': t.kind = T_RPAR; break;
        case ',': t.kind = T_COMMA; break;
        case '+': t.kind = T_PLUS; break;
        case '-': t.kind = T_MINUS; break;
        case '*': t.kind = T_STAR; break;
        case '/': t.kind = T_SLASH; break;
        case '|': t.kind = T_BAR; break;
        case '<':
            t.kind = p[1] == '=' ? T_LE : T_LT;
            t.len = p[1] == '=' ? 2 : 1;
            break;
        case '>':
            t.kind = p[1] == '=' ? T_GE : T_GT;
            t.len = p[1] == '=' ? 2 : 1;
            break;
        case '=':
            t.kind = p[1] == '=' ? T_EQEQ : T_ASSIGN;
            t.len = p[1] == '=' ? 2 : 1;
            break;
        case '!':
            if (p[1] == '=') {
                t.kind = T_NE;
                t.len = 2;
            }
            break;
        default: break;
        }
    }
    ps->tok = t;
    ps->p = p + t.len;
}

static int tok_is(const token *t, const char *name) {
    return t->kind == T_NAME && (int)strlen(name) == t->len && strncmp(t->start, name, (size_t)t->len) == 0;
}

/* Fails at column col with a formatted message; always returns NULL. */
__attribute__((format(printf, 4, 5))) static const kp_node *error_at(parser *ps, kp_status st, int col,
                                                                     const char *fmt, ...) {
    if (ps->st != KP_OK) return NULL; /* keep the first error */
    char msg[KP_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ps->st = kp__fail(ps->ctx, st, "%s col %d: %s", ps->where, col, msg);
    return NULL;
}

/* A constructor failed (shape error, out of memory): add the position. */
static const kp_node *constructor_failed(parser *ps, kp_status st, int col) {
    if (ps->st != KP_OK) return NULL;
    ps->st = st;
    kp__prefix_message(ps->ctx, "%s col %d: ", ps->where, col);
    return NULL;
}

static const char *tok_desc(const token *t, char *buf, size_t size) {
    if (t->kind == T_END) return "end of text";
    snprintf(buf, size, "'%.*s'", t->len > 40 ? 40 : t->len, t->start);
    return buf;
}

static int expect(parser *ps, tok_kind kind, const char *what) {
    if (ps->tok.kind == kind) {
        next(ps);
        return 1;
    }
    char buf[64];
    error_at(ps, KP_ERR_PARSE, ps->tok.col, "expected %s, found %s", what, tok_desc(&ps->tok, buf, sizeof buf));
    return 0;
}

/* ------------------------------------------------------------------ arguments table */

/* Registers argument pos as (cat, dim), or fails if it was used differently. */
static const kp_node *use_arg(parser *ps, kp_var_category cat, int pos, int dim, int col) {
    static const char *cats[] = {"Vi", "Vj", "Pm"};
    if (pos < 0 || pos >= KP_MAX_ARGS)
        return error_at(ps, KP_ERR_PARSE, col, "argument position must be in [0, %d], got %d", KP_MAX_ARGS - 1, pos);
    if (dim < 1) return error_at(ps, KP_ERR_SHAPE, col, "variable dimension must be at least 1, got %d", dim);
    kp_arg_info *a = &ps->f->args[pos];
    if (a->used && (a->cat != cat || a->dim != dim))
        return error_at(ps, KP_ERR_SHAPE, col, "argument %d used as %s(%d,%d) and as %s(%d,%d)", pos, cats[a->cat],
                        pos, a->dim, cats[cat], pos, dim);
    a->used = 1;
    a->cat = cat;
    a->dim = dim;
    if (pos + 1 > ps->f->nargs) ps->f->nargs = pos + 1;
    kp_status st = KP_OK;
    const kp_node *n = kp__var(ps->ctx, cat, pos, dim, &st);
    return n ? n : constructor_failed(ps, st, col);
}

/* ------------------------------------------------------------------ grammar */

static const kp_node *parse_expr(parser *ps);

typedef struct {
    const kp_node *node[MAX_CALL_ARGS];
    int col[MAX_CALL_ARGS];
    int n;
    int close_col; /* column of the closing ')' */
} call_args;

/* args := expr { ',' expr } ')' — the '(' is already consumed. */
static int parse_call_args(parser *ps, call_args *a, const char *fname) {
    a->n = 0;
    if (ps->tok.kind == T_RPAR) {
        a->close_col = ps->tok.col;
        next(ps);
        return 1;
    }
    for (;;) {
        if (a->n == MAX_CALL_ARGS) {
            error_at(ps, KP_ERR_PARSE, ps->tok.col, "too many arguments to %s", fname);
            return 0;
        }
        a->col[a->n] = ps->tok.col;
        a->node[a->n] = parse_expr(ps);
        if (!a->node[a->n]) return 0;
        a->n++;
        if (ps->tok.kind == T_COMMA) {
            next(ps);
            continue;
        }
        a->close_col = ps->tok.col;
        return expect(ps, T_RPAR, "',' or ')'");
    }
}

/* Is the text at col an integer literal ("3", "-2") or IntCst(n), alone in its argument? */
static int is_integer_text(const parser *ps, int col) {
    const char *p = ps->text + col - 1;
    if (strncmp(p, "IntCst", 6) == 0) return 1;
    if (*p == '-') p++;
    while (*p == ' ') p++;
    if (!isdigit((unsigned char)*p)) return 0;
    while (isdigit((unsigned char)*p)) p++;
    while (*p == ' ') p++;
    return *p == ',' || *p == ')';
}

/* The integer value of argument k, which must be written as an integer, or fails. */
static int int_arg(parser *ps, const call_args *a, int k, const char *fname, const char *what, int *out) {
    const kp_node *n = a->node[k];
    if (n->op != KP_OP_CONST || n->dim != 1 || n->value != floor(n->value) || fabs(n->value) > 1e9 ||
        !is_integer_text(ps, a->col[k])) {
        error_at(ps, KP_ERR_PARSE, a->col[k], "%s expects an integer %s here", fname, what);
        return 0;
    }
    *out = (int)n->value;
    return 1;
}

typedef enum {
    F_UNARY,      /* op(f) */
    F_BINARY,     /* op(f,g) */
    F_TERNARY,    /* op(f,g,h) */
    F_POW,        /* Pow(f,n) */
    F_ROUND,      /* Round(f[,d]) */
    F_ELEM,       /* Elem(f,m) */
    F_EXTRACT,    /* Extract(f,m,d) */
    F_ONEHOT,     /* OneHot(f,d) */
    F_INTCST,     /* IntCst(n) */
    F_ZERO,       /* Zero(d) */
    F_VAR,        /* Vi/Vj/Pm(k,d), Var(k,d,cat) */
    F_TENSORDOT,  /* TensorDot(a, b, (shape a), (shape b), (axes a), (axes b) [, (perm)]) */
    F_KRON,       /* Kron(a, b, (shape a), (shape b)) */
    F_MOD,        /* Mod(f,a[,b]) */
    F_SQNORM2,    /* SqNorm2(f) */
    F_NORM2,      /* Norm2(f) */
    F_NORMALIZE,  /* Normalize(f) */
    F_WSQNORM,    /* WeightedSqNorm(s,f) */
    F_WSQDIST,    /* WeightedSqDist(s,f,g) */
    F_GRAD,       /* Grad(f,v,e): vector-Jacobian product */
    F_INDEX,      /* IndexI(), IndexJ(): the current point's index (gradients of Min/Max) */
    F_DIFF,       /* Diff(f,v,u): Jacobian-vector product */
    F_DIVERGENCE, /* Divergence(f,v) */
    F_LAPLACIAN   /* Laplacian(f,v) */
} fkind;

/* The integer arguments of a kind (constants in the text), read before the
 * node is built: their names, consecutive from position `at`. */
static const struct {
    int at;
    const char *name[2];
} int_args[F_LAPLACIAN + 1] = { /* every kind: the others have none */
    [F_POW] = {1, {"exponent"}},
    [F_ROUND] = {1, {"number of decimals"}},
    [F_ELEM] = {1, {"component index"}},
    [F_EXTRACT] = {1, {"first component", "count"}},
    [F_ONEHOT] = {1, {"number of classes"}},
    [F_INTCST] = {0, {"value"}},
    [F_ZERO] = {0, {"dimension"}},
    [F_VAR] = {0, {"position", "dimension"}},
};

static const struct {
    const char *name;
    fkind kind;
    kp_op op;
    int min_args, max_args;
} functions[] = {
    {"Exp", F_UNARY, KP_OP_EXP, 1, 1},
    {"Log", F_UNARY, KP_OP_LOG, 1, 1},
    {"XLogX", F_UNARY, KP_OP_XLOGX, 1, 1},
    {"Sin", F_UNARY, KP_OP_SIN, 1, 1},
    {"Cos", F_UNARY, KP_OP_COS, 1, 1},
    {"Asin", F_UNARY, KP_OP_ASIN, 1, 1},
    {"Acos", F_UNARY, KP_OP_ACOS, 1, 1},
    {"Atan", F_UNARY, KP_OP_ATAN, 1, 1},
    {"SinXDivX", F_UNARY, KP_OP_SINXDIVX, 1, 1},
    {"Tanh", F_UNARY, KP_OP_TANH, 1, 1},
    {"Erf", F_UNARY, KP_OP_ERF, 1, 1},
    {"Abs", F_UNARY, KP_OP_ABS, 1, 1},
    {"Sign", F_UNARY, KP_OP_SIGN, 1, 1},
    {"Step", F_UNARY, KP_OP_STEP, 1, 1},
    {"ReLU", F_UNARY, KP_OP_RELU, 1, 1},
    {"Floor", F_UNARY, KP_OP_FLOOR, 1, 1},
    {"Inv", F_UNARY, KP_OP_INV, 1, 1},
    {"Square", F_UNARY, KP_OP_SQUARE, 1, 1},
    {"Sqrt", F_UNARY, KP_OP_SQRT, 1, 1},
    {"Rsqrt", F_UNARY, KP_OP_RSQRT, 1, 1},
    {"Minus", F_UNARY, KP_OP_NEG, 1, 1},
    {"Sum", F_UNARY, KP_OP_SUM, 1, 1},
    {"Max", F_UNARY, KP_OP_MAXC, 1, 1},
    {"Min", F_UNARY, KP_OP_MINC, 1, 1},
    {"ArgMax", F_UNARY, KP_OP_ARGMAXC, 1, 1},
    {"ArgMin", F_UNARY, KP_OP_ARGMINC, 1, 1},
    {"Powf", F_BINARY, KP_OP_POWF, 2, 2},
    {"Atan2", F_BINARY, KP_OP_ATAN2, 2, 2},
    {"SqDist", F_BINARY, KP_OP_SQDIST, 2, 2},
    {"Scalprod", F_BINARY, KP_OP_DOT, 2, 2},
    {"Concat", F_BINARY, KP_OP_CONCAT, 2, 2},
    {"MatVecMult", F_BINARY, KP_OP_MATVEC, 2, 2},
    {"VecMatMult", F_BINARY, KP_OP_VECMAT, 2, 2},
    {"TensorProd", F_BINARY, KP_OP_TENSORPROD, 2, 2},
    {"Add", F_BINARY, KP_OP_ADD, 2, 2},
    {"Subtract", F_BINARY, KP_OP_SUB, 2, 2},
    {"Mult", F_BINARY, KP_OP_MUL, 2, 2},
    {"Divide", F_BINARY, KP_OP_DIV, 2, 2},
    {"Clamp", F_TERNARY, KP_OP_CLAMP, 3, 3},
    {"IfElse", F_TERNARY, KP_OP_IFELSE, 3, 3},
    {"Pow", F_POW, KP_OP_POW, 2, 2},
    {"Round", F_ROUND, KP_OP_ROUND, 2, 2},
    {"Elem", F_ELEM, KP_OP_EXTRACT, 2, 2},
    {"Extract", F_EXTRACT, KP_OP_EXTRACT, 3, 3},
    {"OneHot", F_ONEHOT, KP_OP_ONEHOT, 2, 2},
    {"IntCst", F_INTCST, KP_OP_CONST, 1, 1},
    {"Zero", F_ZERO, KP_OP_CONST, 1, 1},
    {"Vi", F_VAR, KP_OP_VAR, 2, 2},
    {"Vj", F_VAR, KP_OP_VAR, 2, 2},
    {"Pm", F_VAR, KP_OP_VAR, 2, 2},
    {"Var", F_VAR, KP_OP_VAR, 3, 3},
    {"TensorDot", F_TENSORDOT, KP_OP_CONCAT, 6, 7},
    {"Kron", F_KRON, KP_OP_CONCAT, 4, 4},
    {"Mod", F_MOD, KP_OP_FLOOR, 2, 3},
    {"SqNorm2", F_SQNORM2, KP_OP_DOT, 1, 1},
    {"Norm2", F_NORM2, KP_OP_DOT, 1, 1},
    {"Normalize", F_NORMALIZE, KP_OP_DOT, 1, 1},
    {"WeightedSqNorm", F_WSQNORM, KP_OP_DOT, 2, 2},
    {"WeightedSqDist", F_WSQDIST, KP_OP_DOT, 3, 3},
    {"Grad", F_GRAD, KP_OP_DOT, 3, 3},
    {"Diff", F_DIFF, KP_OP_DOT, 3, 3},
    {"Divergence", F_DIVERGENCE, KP_OP_DOT, 2, 2},
    {"Laplacian", F_LAPLACIAN, KP_OP_DOT, 2, 2},
    {"IndexI", F_INDEX, KP_OP_INDEX, 0, 0},
    {"IndexJ", F_INDEX, KP_OP_INDEX, 0, 0},
};

/* s-weighted squared norm of f: isotropic (dim s = 1), diagonal (dim s = dim f)
 * or full symmetric (dim s = dim f ^ 2, row-major). */
static const kp_node *weighted_sqnorm(parser *ps, const kp_node *s, const kp_node *f, int col, kp_status *st) {
    if (s->dim == 1) return kp__binary(ps->ctx, KP_OP_MUL, s, kp__binary(ps->ctx, KP_OP_DOT, f, f, st), st);
    if (s->dim == f->dim)
        return kp__unary(ps->ctx, KP_OP_SUM,
                         kp__binary(ps->ctx, KP_OP_MUL, s, kp__unary(ps->ctx, KP_OP_SQUARE, f, st), st), st);
    if (s->dim == f->dim * f->dim)
        return kp__binary(ps->ctx, KP_OP_DOT, f, kp__binary(ps->ctx, KP_OP_MATVEC, s, f, st), st);
    return error_at(ps, KP_ERR_SHAPE, col,
                    "weight of dimension %d does not fit a vector of dimension %d (expected 1, %d or %d)", s->dim,
                    f->dim, f->dim, f->dim * f->dim);
}

/* "(3, 3)", "(2,)" or "()": a tuple of non-negative integers (TensorDot and Kron). */
static int parse_int_tuple(parser *ps, kp_tensor_shape *t) {
    char buf[64];
    t->n = 0;
    if (!expect(ps, T_LPAR, "'(' opening a tuple of integers")) return 0;
    while (ps->tok.kind != T_RPAR) {
        token v = ps->tok;
        if (v.kind != T_NUM || v.num != floor(v.num) || v.num > 1e6 || memchr(v.start, '.', (size_t)v.len)) {
            error_at(ps, KP_ERR_PARSE, v.col, "expected an integer in the tuple, found %s", tok_desc(&v, buf, sizeof buf));
            return 0;
        }
        if (t->n == KP_TENSOR_MAX_AXES) {
            error_at(ps, KP_ERR_PARSE, v.col, "a tuple holds at most %d integers", KP_TENSOR_MAX_AXES);
            return 0;
        }
        t->dim[t->n++] = (int)v.num;
        next(ps);
        if (ps->tok.kind == T_COMMA) next(ps);
        else if (ps->tok.kind != T_RPAR) return expect(ps, T_RPAR, "',' or ')'");
    }
    next(ps);
    return 1;
}

/* TensorDot / Kron: two formulas, then tuples of integers. */
static const kp_node *parse_tensor_call(parser *ps, int is_kron, int col) {
    const char *fname = is_kron ? "Kron" : "TensorDot";
    const kp_node *a = parse_expr(ps), *b = NULL;
    int b_col = 0;
    if (a && expect(ps, T_COMMA, "','")) {
        b_col = ps->tok.col;
        b = parse_expr(ps);
    }
    if (!b) return NULL;
    kp_tensor_shape t[5] = {{0}};
    int n = 0;
    while (ps->tok.kind == T_COMMA && n < 5) {
        next(ps);
        if (!parse_int_tuple(ps, &t[n++])) return NULL;
    }
    if (!expect(ps, T_RPAR, "',' or ')'")) return NULL;
    if (is_kron ? n != 2 : n < 4 || n > 5)
        return error_at(ps, KP_ERR_PARSE, col, "%s takes two formulas and %s tuples of integers, got %d tuples", fname,
                        is_kron ? "2" : "4 or 5", n);
    char why[160] = "";
    kp_status st = KP_OK;
    const kp_node *r = is_kron ? kp__kron(ps->ctx, a, b, &t[0], &t[1], why, sizeof why, &st)
                               : kp__tensordot(ps->ctx, a, b, &t[0], &t[1], &t[2], &t[3], n == 5 ? &t[4] : NULL, why,
                                               sizeof why, &st);
    if (!r && why[0]) return error_at(ps, KP_ERR_SHAPE, b_col, "%s: %s", fname, why);
    return r ? r : constructor_failed(ps, st, col);
}

/* ComplexMult(z, w), ComplexSumT(z, n), ...: formula/complex.c. */
static const kp_node *parse_complex_call(parser *ps, token name, kp_complex_op op, int nargs) {
    call_args a;
    char fname[32], why[160] = "";
    snprintf(fname, sizeof fname, "%.*s", name.len, name.start);
    if (!parse_call_args(ps, &a, fname)) return NULL;
    int want = nargs + (op == KP_CX_SUMT);
    if (a.n != want)
        return error_at(ps, KP_ERR_PARSE, name.col, "%s takes %d argument%s, got %d", fname, want, want == 1 ? "" : "s",
                        a.n);
    int n = 0;
    if (op == KP_CX_SUMT && !int_arg(ps, &a, 1, fname, "number of copies", &n)) return NULL;
    kp_status st = KP_OK;
    const kp_node *r = kp__complex(ps->ctx, op, a.node[0], nargs == 2 ? a.node[1] : NULL, n, why, sizeof why, &st);
    if (!r && why[0]) return error_at(ps, KP_ERR_SHAPE, name.col, "%s: %s", fname, why);
    return r ? r : constructor_failed(ps, st, name.col);
}

static const kp_node *parse_call(parser *ps, token name) {
    int col = name.col;
    size_t nf = sizeof functions / sizeof functions[0], k;
    for (k = 0; k < nf; k++)
        if (tok_is(&name, functions[k].name)) break;
    kp_complex_op cop;
    int cnargs;
    if (k == nf && kp__complex_lookup(name.start, name.len, &cop, &cnargs))
        return parse_complex_call(ps, name, cop, cnargs);
    if (k == nf) {
        if (name.len > 10 && strncmp(name.start + name.len - 10, "_Reduction", 10) == 0)
            return error_at(ps, KP_ERR_PARSE, col, "a reduction (%.*s) may only appear at the top level", name.len,
                            name.start);
        return error_at(ps, KP_ERR_PARSE, col, "unknown function '%.*s'", name.len, name.start);
    }
    const char *fname = functions[k].name;
    if (functions[k].kind == F_TENSORDOT || functions[k].kind == F_KRON)
        return parse_tensor_call(ps, functions[k].kind == F_KRON, col);
    call_args a;
    if (!parse_call_args(ps, &a, fname)) return NULL;
    if (a.n < functions[k].min_args || a.n > functions[k].max_args) {
        if (functions[k].min_args == functions[k].max_args)
            return error_at(ps, KP_ERR_PARSE, col, "%s takes %d argument%s, got %d", fname, functions[k].min_args,
                            functions[k].min_args == 1 ? "" : "s", a.n);
        return error_at(ps, KP_ERR_PARSE, col, "%s takes %d to %d arguments, got %d", fname, functions[k].min_args,
                        functions[k].max_args, a.n);
    }
    kp_context *ctx = ps->ctx;
    kp_status st = KP_OK;
    const kp_node *r = NULL;
    int n[2] = {0, 0};
    fkind kind = functions[k].kind;
    for (int q = 0; q < 2 && int_args[kind].name[q]; q++)
        if (!int_arg(ps, &a, int_args[kind].at + q, fname, int_args[kind].name[q], &n[q])) return NULL;
    switch (kind) {
    case F_UNARY: r = kp__unary(ctx, functions[k].op, a.node[0], &st); break;
    case F_BINARY: r = kp__binary(ctx, functions[k].op, a.node[0], a.node[1], &st); break;
    case F_TERNARY: r = kp__ternary(ctx, functions[k].op, a.node[0], a.node[1], a.node[2], &st); break;
    case F_POW: r = kp__pow(ctx, a.node[0], n[0], &st); break;
    case F_ROUND: r = kp__round(ctx, a.node[0], n[0], &st); break;
    case F_ELEM: r = kp__extract(ctx, a.node[0], n[0], 1, &st); break;
    case F_EXTRACT: r = kp__extract(ctx, a.node[0], n[0], n[1], &st); break;
    case F_ONEHOT: r = kp__onehot(ctx, a.node[0], n[0], &st); break;
    case F_INTCST: r = kp__const(ctx, n[0], 1, &st); break;
    case F_ZERO: r = kp__const(ctx, 0, n[0], &st); break;
    case F_VAR: {
        kp_var_category cat = fname[0] == 'P' ? KP_VAR_PARAM : fname[1] == 'i' ? KP_VAR_I : KP_VAR_J;
        if (a.n == 3) { /* KeOps' Var(position, dimension, category): 0 = i, 1 = j, 2 = parameter */
            int c;
            if (!int_arg(ps, &a, 2, fname, "category", &c)) return NULL;
            if (c < 0 || c > 2)
                return error_at(ps, KP_ERR_PARSE, a.col[2], "Var: the category must be 0 (i), 1 (j) or 2 (parameter), got %d", c);
            cat = c == 0 ? KP_VAR_I : c == 1 ? KP_VAR_J : KP_VAR_PARAM;
        }
        return use_arg(ps, cat, n[0], n[1], col);
    }
    case F_MOD: {
        /* Mod(f,a,b) = f - a * Floor((f - b) / a) */
        const kp_node *f = a.node[0], *m = a.node[1];
        const kp_node *off = a.n == 3 ? a.node[2] : kp__const(ctx, 0, 1, &st);
        const kp_node *q = kp__unary(ctx, KP_OP_FLOOR,
                                     kp__binary(ctx, KP_OP_DIV, kp__binary(ctx, KP_OP_SUB, f, off, &st), m, &st), &st);
        r = kp__binary(ctx, KP_OP_SUB, f, kp__binary(ctx, KP_OP_MUL, m, q, &st), &st);
        break;
    }
    case F_SQNORM2: r = kp__binary(ctx, KP_OP_DOT, a.node[0], a.node[0], &st); break;
    case F_NORM2: r = kp__unary(ctx, KP_OP_SQRT, kp__binary(ctx, KP_OP_DOT, a.node[0], a.node[0], &st), &st); break;
    case F_NORMALIZE:
        r = kp__binary(ctx, KP_OP_MUL, a.node[0],
                       kp__unary(ctx, KP_OP_RSQRT, kp__binary(ctx, KP_OP_DOT, a.node[0], a.node[0], &st), &st), &st);
        break;
    case F_WSQNORM: r = weighted_sqnorm(ps, a.node[0], a.node[1], col, &st); break;
    case F_INDEX: r = kp__index(ctx, fname[5] == 'I' ? KP_VAR_I : KP_VAR_J, &st); break;
    case F_GRAD:
    case F_DIFF:
    case F_DIVERGENCE:
    case F_LAPLACIAN:
        if (a.node[1]->op != KP_OP_VAR)
            return error_at(ps, KP_ERR_PARSE, a.col[1], "%s: the second argument must be a variable", fname);
        if (functions[k].kind == F_GRAD) r = kp__grad(ctx, a.node[0], a.node[1], a.node[2], &st);
        else if (functions[k].kind == F_DIFF) r = kp__diff(ctx, a.node[0], a.node[1], a.node[2], &st);
        else if (functions[k].kind == F_DIVERGENCE) r = kp__divergence(ctx, a.node[0], a.node[1], &st);
        else r = kp__laplacian(ctx, a.node[0], a.node[1], &st);
        break;
    case F_WSQDIST: {
        const kp_node *d = kp__binary(ctx, KP_OP_SUB, a.node[1], a.node[2], &st);
        r = d ? weighted_sqnorm(ps, a.node[0], d, col, &st) : NULL;
        break;
    }
    case F_TENSORDOT:
    case F_KRON: break; /* parse_tensor_call */
    }
    if (!r) return ps->st != KP_OK ? NULL : constructor_failed(ps, st, col);
    return r;
}

static const kp_node *parse_primary(parser *ps) {
    token t = ps->tok;
    char buf[64];
    if (++ps->depth > MAX_DEPTH) return error_at(ps, KP_ERR_PARSE, t.col, "formula nested too deeply");
    const kp_node *r = NULL;
    kp_status st = KP_OK;
    switch (t.kind) {
    case T_NUM:
        next(ps);
        r = kp__const(ps->ctx, t.num, 1, &st);
        if (!r) constructor_failed(ps, st, t.col);
        break;
    case T_NAME:
        next(ps);
        if (ps->tok.kind == T_LPAR) {
            next(ps);
            r = parse_call(ps, t);
            break;
        }
        for (int k = 0; k < ps->naliases; k++)
            if ((int)strlen(ps->aliases[k].name) == t.len && strncmp(ps->aliases[k].name, t.start, (size_t)t.len) == 0)
                r = ps->aliases[k].node;
        if (!r) error_at(ps, KP_ERR_PARSE, t.col, "unknown variable '%.*s' (no alias of that name)", t.len, t.start);
        break;
    case T_LPAR: {
        next(ps);
        const kp_node *a = parse_expr(ps);
        if (!a) break;
        if (ps->tok.kind == T_BAR) {
            int col = ps->tok.col;
            next(ps);
            const kp_node *b = parse_expr(ps);
            if (!b) break;
            r = kp__binary(ps->ctx, KP_OP_DOT, a, b, &st);
            if (!r) {
                constructor_failed(ps, st, col);
                break;
            }
        } else {
            r = a;
        }
        if (!expect(ps, T_RPAR, "')'")) r = NULL;
        break;
    }
    case T_RPAR: error_at(ps, KP_ERR_PARSE, t.col, "unexpected ')'"); break;
    case T_END: error_at(ps, KP_ERR_PARSE, t.col, "unexpected end of formula"); break;
    case T_BAD: error_at(ps, KP_ERR_PARSE, t.col, "unexpected character %s", tok_desc(&t, buf, sizeof buf)); break;
    case T_COMMA:
    case T_PLUS:
    case T_MINUS:
    case T_STAR:
    case T_SLASH:
    case T_BAR:
    case T_LT:
    case T_LE:
    case T_GT:
    case T_GE:
    case T_EQEQ:
    case T_NE:
    case T_ASSIGN:
        error_at(ps, KP_ERR_PARSE, t.col, "expected an operand, found %s", tok_desc(&t, buf, sizeof buf));
        break;
    }
    ps->depth--;
    return r;
}

static const kp_node *parse_unary(parser *ps) {
    if (ps->tok.kind == T_MINUS) {
        int col = ps->tok.col;
        next(ps);
        if (++ps->depth > MAX_DEPTH) return error_at(ps, KP_ERR_PARSE, col, "formula nested too deeply");
        const kp_node *a = parse_unary(ps);
        ps->depth--;
        if (!a) return NULL;
        kp_status st = KP_OK;
        const kp_node *r = kp__unary(ps->ctx, KP_OP_NEG, a, &st);
        return r ? r : constructor_failed(ps, st, col);
    }
    return parse_primary(ps);
}

static const kp_node *binary_at(parser *ps, kp_op op, const kp_node *a, const kp_node *b, int col) {
    if (!a || !b) return NULL;
    kp_status st = KP_OK;
    const kp_node *r = kp__binary(ps->ctx, op, a, b, &st);
    return r ? r : constructor_failed(ps, st, col);
}

/* A binary operator token's op and precedence (higher binds tighter; 0: not
 * a binary operator, which ends the expression). */
typedef struct binop {
    kp_op op;
    int prec;
} binop;

static binop binop_of(int kind) {
    switch (kind) {
    case T_STAR: return (binop){KP_OP_MUL, 3};
    case T_SLASH: return (binop){KP_OP_DIV, 3};
    case T_PLUS: return (binop){KP_OP_ADD, 2};
    case T_MINUS: return (binop){KP_OP_SUB, 2};
    case T_LT: return (binop){KP_OP_LT, 1};
    case T_LE: return (binop){KP_OP_LE, 1};
    case T_GT: return (binop){KP_OP_GT, 1};
    case T_GE: return (binop){KP_OP_GE, 1};
    case T_EQEQ: return (binop){KP_OP_EQ, 1};
    case T_NE: return (binop){KP_OP_NE, 1};
    default: return (binop){KP_OP_COUNT_, 0};
    }
}

/* Operands joined by the operators that bind tighter than `above`, by
 * precedence climbing: + - * / associate to the left; a comparison takes one
 * operand on each side and does not chain (a second one is left to the caller,
 * which reports it). */
static const kp_node *parse_binary(parser *ps, int above) {
    const kp_node *a = parse_unary(ps);
    for (binop b = binop_of((int)ps->tok.kind); a && b.prec > above; b = binop_of((int)ps->tok.kind)) {
        int col = ps->tok.col;
        next(ps);
        a = binary_at(ps, b.op, a, parse_binary(ps, b.prec), col);
        if (b.prec == 1) break;
    }
    return a;
}

static const kp_node *parse_expr(parser *ps) { return parse_binary(ps, 0); }

/* ------------------------------------------------------------------ reductions */

static int parse_reduction(parser *ps, int nested);

/* RowSum(reduction): the rows of the reduction summed into one (how parameter
 * gradients are printed; not in KeOps). */
static int parse_top(parser *ps) {
    if (!tok_is(&ps->tok, "RowSum")) return parse_reduction(ps, 0);
    next(ps);
    if (!expect(ps, T_LPAR, "'(' after RowSum")) return 0;
    ps->f->sum_rows = 1;
    int col = ps->tok.col;
    if (!parse_reduction(ps, 1)) return 0;
    if (kp_formula_out_index_dim(ps->f) > 0) { /* indices of different rows do not add up */
        error_at(ps, KP_ERR_PARSE, col, "RowSum of %s: a reduction with index outputs cannot sum its rows",
                 kp__reduction_name(ps->f->red));
        return 0;
    }
    if (!expect(ps, T_RPAR, "')' closing RowSum")) return 0;
    if (ps->tok.kind != T_END) {
        char buf[64];
        error_at(ps, KP_ERR_PARSE, ps->tok.col, "unexpected %s after RowSum(...)", tok_desc(&ps->tok, buf, sizeof buf));
        return 0;
    }
    return 1;
}

/* The reduction whose text name (Name_Reduction) t is, or -1. */
static int reduction_named(const token *t) {
    for (int r = 0; r < KP_RED_COUNT; r++)
        if (tok_is(t, kp__reduction_name((kp_reduction)r))) return r;
    return -1;
}

static int parse_reduction(parser *ps, int nested) {
    token t = ps->tok;
    char buf[64];
    if (t.kind != T_NAME) {
        error_at(ps, KP_ERR_PARSE, t.col, "expected a reduction such as Sum_Reduction(F,1), found %s",
                 tok_desc(&t, buf, sizeof buf));
        return 0;
    }
    int r = reduction_named(&t);
    if (r < 0) {
        if (t.len > 10 && strncmp(t.start + t.len - 10, "_Reduction", 10) == 0)
            error_at(ps, KP_ERR_PARSE, t.col, "unknown reduction '%.*s'", t.len, t.start);
        else
            error_at(ps, KP_ERR_PARSE, t.col, "expected a reduction such as Sum_Reduction(F,1), found %s",
                     tok_desc(&t, buf, sizeof buf));
        return 0;
    }
    const kp_red_info *R = kp__red((kp_reduction)r);
    const char *name = kp__reduction_name((kp_reduction)r);
    int nargs = 2 + R->takes_k + R->takes_g; /* F, [K,] axis [, G] */
    next(ps);
    if (!expect(ps, T_LPAR, "'(' after the reduction name")) return 0;
    call_args a;
    if (!parse_call_args(ps, &a, name)) return 0;
    if (a.n != nargs) {
        const char *form = R->takes_k ? "(F, K, axis)" : R->takes_g ? "(F, axis, G)" : "(F, axis)";
        /* Point at the first extra argument, or at the ')' that came too early. */
        int col = a.n > nargs ? a.col[nargs] : a.close_col;
        error_at(ps, KP_ERR_PARSE, col, "%s takes %d arguments %s, got %d", name, nargs, form, a.n);
        return 0;
    }
    kp_formula *f = ps->f;
    f->red = (kp_reduction)r;
    f->f = a.node[0];
    int axis_arg = 1;
    if (R->takes_k) {
        if (!int_arg(ps, &a, 1, name, "K", &f->K)) return 0;
        if (f->K < 1) {
            error_at(ps, KP_ERR_PARSE, a.col[1], "K must be at least 1, got %d", f->K);
            return 0;
        }
        if ((int64_t)f->K * f->f->dim > 65536) {
            error_at(ps, KP_ERR_SHAPE, a.col[1], "K x dim(F) = %d x %d is too large", f->K, f->f->dim);
            return 0;
        }
        axis_arg = 2;
    }
    if (!int_arg(ps, &a, axis_arg, name, "axis", &f->axis)) return 0;
    if (f->axis != 0 && f->axis != 1) {
        error_at(ps, KP_ERR_PARSE, a.col[axis_arg], "axis must be 0 or 1, got %d", f->axis);
        return 0;
    }
    if (R->takes_g) {
        f->g = a.node[2];
        if (f->f->dim != 1) {
            error_at(ps, KP_ERR_SHAPE, a.col[0], "SumSoftMaxWeight needs a scalar F (dimension 1), got dimension %d",
                     f->f->dim);
            return 0;
        }
    }
    if (!nested && ps->tok.kind != T_END) {
        error_at(ps, KP_ERR_PARSE, ps->tok.col, "unexpected %s after the reduction", tok_desc(&ps->tok, buf, sizeof buf));
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ aliases */

/* "name = Vi(d)" or "name = Vi(k,d)". Positions left out are assigned later. */
static int parse_alias(parser *ps, alias_entry *e, kp_var_category *cat, int *pos, int *dim, int *col) {
    char buf[64];
    token name = ps->tok;
    if (name.kind != T_NAME) {
        error_at(ps, KP_ERR_PARSE, name.col, "expected an alias name, found %s", tok_desc(&name, buf, sizeof buf));
        return 0;
    }
    if (name.len >= (int)sizeof e->name) {
        error_at(ps, KP_ERR_PARSE, name.col, "alias name too long");
        return 0;
    }
    memcpy(e->name, name.start, (size_t)name.len);
    e->name[name.len] = '\0';
    next(ps);
    if (!expect(ps, T_ASSIGN, "'='")) return 0;
    token v = ps->tok;
    *col = v.col;
    if (tok_is(&v, "Vi")) *cat = KP_VAR_I;
    else if (tok_is(&v, "Vj")) *cat = KP_VAR_J;
    else if (tok_is(&v, "Pm")) *cat = KP_VAR_PARAM;
    else {
        error_at(ps, KP_ERR_PARSE, v.col, "expected Vi, Vj or Pm, found %s", tok_desc(&v, buf, sizeof buf));
        return 0;
    }
    next(ps);
    if (!expect(ps, T_LPAR, "'('")) return 0;
    call_args a;
    if (!parse_call_args(ps, &a, "alias")) return 0;
    if (a.n == 1) {
        *pos = -1;
        if (!int_arg(ps, &a, 0, "alias", "dimension", dim)) return 0;
    } else if (a.n == 2) {
        if (!int_arg(ps, &a, 0, "alias", "position", pos) || !int_arg(ps, &a, 1, "alias", "dimension", dim)) return 0;
        if (*pos < 0 || *pos >= KP_MAX_ARGS) {
            error_at(ps, KP_ERR_PARSE, a.col[0], "argument position must be in [0, %d], got %d", KP_MAX_ARGS - 1, *pos);
            return 0;
        }
    } else {
        error_at(ps, KP_ERR_PARSE, v.col, "expected (dimension) or (position, dimension), got %d arguments", a.n);
        return 0;
    }
    if (ps->tok.kind != T_END) {
        error_at(ps, KP_ERR_PARSE, ps->tok.col, "unexpected %s after the alias", tok_desc(&ps->tok, buf, sizeof buf));
        return 0;
    }
    return 1;
}

static kp_status parse_aliases(parser *ps, const char *const *aliases, size_t n) {
    kp_var_category cats[MAX_ALIASES];
    int pos[MAX_ALIASES], dims[MAX_ALIASES], cols[MAX_ALIASES];
    char where[96];
    unsigned char taken[KP_MAX_ARGS];
    memset(taken, 0, sizeof taken);
    if (n > MAX_ALIASES) return kp__fail(ps->ctx, KP_ERR_PARSE, "too many aliases (%zu, at most %d)", n, MAX_ALIASES);
    if (n > 0 && !aliases) return kp__fail(ps->ctx, KP_ERR_NULL, "aliases is NULL but n_aliases is %zu", n);
    for (size_t k = 0; k < n; k++) {
        if (!aliases[k]) return kp__fail(ps->ctx, KP_ERR_NULL, "alias %zu is NULL", k);
        snprintf(where, sizeof where, "alias %zu ('%.40s')", k, aliases[k]);
        ps->where = where;
        ps->text = ps->p = aliases[k];
        next(ps);
        if (!parse_alias(ps, &ps->aliases[k], &cats[k], &pos[k], &dims[k], &cols[k])) return ps->st;
        for (size_t q = 0; q < k; q++)
            if (strcmp(ps->aliases[q].name, ps->aliases[k].name) == 0) {
                error_at(ps, KP_ERR_PARSE, 1, "alias name '%s' defined twice", ps->aliases[k].name);
                return ps->st;
            }
        if (pos[k] >= 0) taken[pos[k]] = 1;
    }
    int free_pos = 0;
    for (size_t k = 0; k < n; k++) {
        snprintf(where, sizeof where, "alias %zu ('%.40s')", k, aliases[k]);
        ps->where = where;
        if (pos[k] < 0) {
            while (free_pos < KP_MAX_ARGS && taken[free_pos]) free_pos++;
            if (free_pos == KP_MAX_ARGS) {
                error_at(ps, KP_ERR_PARSE, 1, "no free argument position left");
                return ps->st;
            }
            pos[k] = free_pos;
            taken[free_pos] = 1;
        }
        ps->aliases[k].node = use_arg(ps, cats[k], pos[k], dims[k], cols[k]);
        if (!ps->aliases[k].node) return ps->st;
        ps->naliases = (int)k + 1;
    }
    return KP_OK;
}

/* ------------------------------------------------------------------ entry point */

kp_status kp_formula_parse(kp_context *ctx, const char *text, const char *const *aliases, size_t n_aliases,
                           kp_formula **out) {
    if (!ctx) return KP_ERR_NULL;
    if (!out) return kp__fail(ctx, KP_ERR_NULL, "out is NULL");

    if (!text) return kp__fail(ctx, KP_ERR_NULL, "formula text is NULL");
    kp_formula *f = kp__calloc(ctx, 1, sizeof *f);
    alias_entry *al = kp__calloc(ctx, n_aliases ? n_aliases : 1, sizeof *al);
    if (!f || !al) {
        kp__free(ctx, f);
        kp__free(ctx, al);
        return kp__fail(ctx, KP_ERR_OOM, "out of memory");
    }
    f->ctx = ctx;
    parser ps;
    memset(&ps, 0, sizeof ps);
    ps.ctx = ctx;
    ps.f = f;
    ps.aliases = al;
    kp_status st = parse_aliases(&ps, aliases, n_aliases);
    if (st == KP_OK) {
        ps.where = "formula";
        ps.text = ps.p = text;
        next(&ps);
        if (!parse_top(&ps)) st = ps.st != KP_OK ? ps.st : KP_ERR_PARSE;
    }
    kp__free(ctx, al);
    if (st != KP_OK) {
        kp__free(ctx, f);
        return st;
    }
    ctx->message[0] = '\0';
    *out = f;
    return KP_OK;
}
