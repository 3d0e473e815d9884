/* fuzz_common.c — byte reader, formula generator and execution checks (see fuzz_common.h). */
#include "fuzz_common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned fz_byte(fz_reader *r) { return r->i < r->n ? r->p[r->i++] : 0u; }

unsigned fz_pick(fz_reader *r, unsigned n) { return n <= 1 ? 0u : fz_byte(r) % n; }

void fz_fail(const char *what, const char *detail) {
    fprintf(stderr, "fuzz check failed: %s\n%s\n", what, detail ? detail : "");
    __builtin_trap();
}

void fz_check_same_signature(const kp_formula *f, const kp_formula *g, const char *text) {
    if (kp_formula_reduction(f) != kp_formula_reduction(g) || kp_formula_axis(f) != kp_formula_axis(g) ||
        kp_formula_out_dim(f) != kp_formula_out_dim(g) ||
        kp_formula_out_index_dim(f) != kp_formula_out_index_dim(g) ||
        kp_formula_sums_rows(f) != kp_formula_sums_rows(g))
        fz_fail("the reparsed formula has another reduction or output", text);
    /* The text names used arguments only: an alias declared but unused is
     * lost on printing, but no argument may appear or change. */
    int n = kp_formula_num_args(f);
    for (int k = 0; k < n; k++) {
        kp_var_category c1, c2;
        int d1, d2;
        kp_status s1 = kp_formula_arg(f, k, &c1, &d1), s2 = kp_formula_arg(g, k, &c2, &d2);
        if ((s2 == KP_OK && s1 != KP_OK) || (s1 == KP_OK && s2 == KP_OK && (c1 != c2 || d1 != d2)))
            fz_fail("the reparsed formula has other arguments", text);
    }
}

void fz_aliases(int D, int E, char store[FZ_N_ALIASES][24], const char *out[FZ_N_ALIASES]) {
    snprintf(store[0], 24, "x = Vi(%d)", D);
    snprintf(store[1], 24, "y = Vj(%d)", D);
    snprintf(store[2], 24, "s = Pm(1)");
    snprintf(store[3], 24, "b = Vj(%d)", E);
    snprintf(store[4], 24, "z = Vi(9)");
    snprintf(store[5], 24, "w = Vj(9)");
    snprintf(store[6], 24, "a=Vi(1)");
    for (int k = 0; k < FZ_N_ALIASES; k++) out[k] = store[k];
}

/* ------------------------------------------------------------ generator */

typedef struct sb {
    char *buf;
    size_t size, len;
    int overflow;
} sb;

static void put(sb *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = s->len < s->size ? s->size - s->len : 0;
    int n = vsnprintf(s->buf + s->len, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) {
        s->overflow = 1;
        s->len = s->size ? s->size - 1 : 0;
    } else {
        s->len += (size_t)n;
    }
}

/* order_left: the derivative order still allowed below this point. A formula's
 * DAG grows by a factor of 2-3 per order of nested differentiation, more for a
 * Laplacian of a function of every component (four nested around
 * Atan2(Sum(x),SqNorm2(x)), x of dimension 3: 119,145 nodes; five: 1,770,765
 * and 22 s to parse in Release), so nested Grad, Diff, Divergence (order 1
 * each) and Laplacian (order 2) are capped at order 6 in all: three nested
 * Laplacians. */
typedef struct genv {
    fz_reader *r;
    sb *s;
    int D, E;
    int order_left;
} genv;

#define FZ_MAX_NESTED_ORDER 6

#define MAXD 9

/* A variable of dimension d, if the aliases have one (NULL otherwise). */
static const char *var_of_dim(genv *g, int d) {
    unsigned c = fz_pick(g->r, 2);
    if (d == g->D) return c ? "x" : "y";
    if (d == g->E) return "b";
    if (d == 1) return c ? "s" : "a";
    if (d == 9) return c ? "z" : "w";
    return NULL;
}

static void leaf(genv *g, int d) {
    unsigned c = fz_pick(g->r, 8);
    if (c < 3) {
        const char *v = var_of_dim(g, d);
        if (v) {
            put(g->s, "%s", v);
            return;
        }
    }
    if (d == g->D && c == 3) {
        put(g->s, fz_pick(g->r, 2) ? "Vi(0,%d)" : "Vj(1,%d)", d); /* positional, same as x / y */
        return;
    }
    if (d == 1 && c >= 4) {
        static const char *consts[] = {"0.5", "2", "-1.5", "IntCst(3)", "1e-3", "IndexJ()", "IndexI()", "Elem(x,0)"};
        put(g->s, "%s", consts[fz_pick(g->r, 8)]);
        return;
    }
    if (c == 7 && fz_pick(g->r, 4) == 0) {
        put(g->s, "Zero(%d)", d);
        return;
    }
    put(g->s, "Extract(%s,%u,%d)", fz_pick(g->r, 2) ? "z" : "w", fz_pick(g->r, (unsigned)(MAXD + 1 - d)), d);
}

static void gen(genv *g, int d, int depth);

static void gen_scalar_of_vector(genv *g, int depth) {
    int k = 1 + (int)fz_pick(g->r, 4);
    static const char *unary[] = {"Sum", "Max", "Min", "ArgMax", "ArgMin", "Norm2", "SqNorm2"};
    unsigned c = fz_pick(g->r, 8);
    if (c < 7) {
        put(g->s, "%s(", unary[c]);
        gen(g, k, depth - 1);
        put(g->s, ")");
        return;
    }
    c = fz_pick(g->r, 6);
    switch (c) {
    case 0:
    case 1:
        put(g->s, c == 0 ? "SqDist(" : "(");
        gen(g, k, depth - 1);
        put(g->s, c == 0 ? "," : "|");
        gen(g, k, depth - 1);
        put(g->s, ")");
        return;
    case 2: /* isotropic, diagonal or full weight */
    case 3: {
        int wd = fz_pick(g->r, 3) == 0 ? 1 : fz_pick(g->r, 2) ? k : k * k;
        if (wd > MAXD) wd = k;
        put(g->s, c == 2 ? "WeightedSqNorm(" : "WeightedSqDist(");
        gen(g, wd, depth - 1);
        put(g->s, ",");
        gen(g, k, depth - 1);
        if (c == 3) {
            put(g->s, ",");
            gen(g, k, depth - 1);
        }
        put(g->s, ")");
        return;
    }
    default: { /* Divergence(f, v) with dim f = dim v; Laplacian(f, v) with f scalar */
        int vd = fz_pick(g->r, 2) ? g->D : 1;
        const char *v = var_of_dim(g, vd);
        int order = c == 4 ? 1 : 2;
        if (order > g->order_left) {
            leaf(g, 1);
            return;
        }
        g->order_left -= order;
        if (c == 4) {
            put(g->s, "Divergence(");
            gen(g, vd, depth - 1);
        } else {
            put(g->s, "Laplacian(");
            gen(g, 1, depth - 1);
        }
        g->order_left += order;
        put(g->s, ",%s)", v);
        return;
    }
    }
}

static int divisor_of(genv *g, int d) {
    int divs[MAXD], n = 0;
    for (int k = 1; k <= d; k++)
        if (d % k == 0) divs[n++] = k;
    return divs[fz_pick(g->r, (unsigned)n)];
}

static void gen(genv *g, int d, int depth) {
    fz_reader *r = g->r;
    if (depth <= 0 || g->s->overflow || fz_pick(r, 5) == 0) {
        leaf(g, d);
        return;
    }
    static const char *unary[] = {"Exp", "Log", "XLogX", "Sin", "Cos", "Asin", "Acos", "Atan", "SinXDivX",
                                  "Tanh", "Erf", "Abs", "Sign", "Step", "ReLU", "Floor", "Inv", "Square",
                                  "Sqrt", "Rsqrt", "Minus"};
    static const char *infix[] = {"+", "-", "*", "/", "<", "<=", ">", ">=", "==", "!="};
    unsigned op = fz_pick(r, 14);
    switch (op) {
    case 0:
    case 1:
        put(g->s, "%s(", unary[fz_pick(r, sizeof unary / sizeof unary[0])]);
        gen(g, d, depth - 1);
        put(g->s, ")");
        return;
    case 2:
    case 3: { /* infix, with scalar broadcast on either side */
        unsigned form = fz_pick(r, 4);
        put(g->s, "(");
        gen(g, form == 1 ? 1 : d, depth - 1);
        put(g->s, "%s", infix[fz_pick(r, op == 2 ? 4 : 10)]);
        gen(g, form == 2 ? 1 : d, depth - 1);
        put(g->s, ")");
        return;
    }
    case 4: {
        static const char *fn2[] = {"Powf", "Atan2", "Mod"};
        put(g->s, "%s(", fn2[fz_pick(r, 3)]);
        gen(g, d, depth - 1);
        put(g->s, ",");
        gen(g, fz_pick(r, 2) ? d : 1, depth - 1);
        put(g->s, ")");
        return;
    }
    case 5:
        put(g->s, fz_pick(r, 2) ? "Clamp(" : "IfElse(");
        gen(g, d, depth - 1);
        put(g->s, ",");
        gen(g, d, depth - 1);
        put(g->s, ",");
        gen(g, d, depth - 1);
        put(g->s, ")");
        return;
    case 6:
        put(g->s, fz_pick(r, 2) ? "Pow(" : "Round(");
        gen(g, d, depth - 1);
        put(g->s, ",%d)", (int)fz_pick(r, 6) - 2);
        return;
    case 7:
        if (d == 1) {
            gen_scalar_of_vector(g, depth);
        } else {
            put(g->s, "Normalize(");
            gen(g, d, depth - 1);
            put(g->s, ")");
        }
        return;
    case 8:
        if (d >= 2) {
            int d1 = 1 + (int)fz_pick(r, (unsigned)(d - 1));
            put(g->s, "Concat(");
            gen(g, d1, depth - 1);
            put(g->s, ",");
            gen(g, d - d1, depth - 1);
            put(g->s, ")");
            return;
        }
        break;
    case 9:
        if (d < MAXD) {
            int e = 1 + (int)fz_pick(r, (unsigned)(MAXD - d));
            put(g->s, "Extract(");
            gen(g, d + e, depth - 1);
            put(g->s, ",%u,%d)", fz_pick(r, (unsigned)e + 1), d);
            return;
        }
        break;
    case 10:
        put(g->s, "OneHot(");
        gen(g, 1, depth - 1);
        put(g->s, ",%d)", d);
        return;
    case 11: { /* MatVecMult(A: d*m, v: m), VecMatMult(v: m, A: m*d), TensorProd(d1, d/d1) */
        unsigned c = fz_pick(r, 3);
        if (c == 2) {
            int d1 = divisor_of(g, d);
            put(g->s, "TensorProd(");
            gen(g, d1, depth - 1);
            put(g->s, ",");
            gen(g, d / d1, depth - 1);
            put(g->s, ")");
            return;
        }
        int m = 1 + (int)fz_pick(r, (unsigned)(MAXD / d));
        put(g->s, c == 0 ? "MatVecMult(" : "VecMatMult(");
        gen(g, c == 0 ? d * m : m, depth - 1);
        put(g->s, ",");
        gen(g, c == 0 ? m : m * d, depth - 1);
        put(g->s, ")");
        return;
    }
    case 12: { /* Grad(f, v, e): dim v; Diff(f, v, u): dim f */
        if (g->order_left < 1) break;
        int k = 1 + (int)fz_pick(r, 3);
        const char *v = var_of_dim(g, d);
        if (v && fz_pick(r, 2)) {
            put(g->s, "Grad(");
            g->order_left--;
            gen(g, k, depth - 1);
            g->order_left++;
            put(g->s, ",%s,", v);
            gen(g, k, depth - 1);
            put(g->s, ")");
            return;
        }
        int vd = fz_pick(r, 2) ? g->D : 1;
        put(g->s, "Diff(");
        g->order_left--;
        gen(g, d, depth - 1);
        g->order_left++;
        put(g->s, ",%s,", var_of_dim(g, vd));
        gen(g, vd, depth - 1);
        put(g->s, ")");
        return;
    }
    default: break;
    }
    leaf(g, d);
}

int fz_gen_reduction(fz_reader *r, char *buf, size_t size, int *D, int *E) {
    sb s = {buf, size, 0, 0};
    if (size) buf[0] = 0;
    genv g = {r, &s, 1 + (int)fz_pick(r, 4), 1 + (int)fz_pick(r, 3), FZ_MAX_NESTED_ORDER};
    *D = g.D;
    *E = g.E;
    static const char *names[] = {"Sum", "LogSumExp", "SumSoftMaxWeight", "Min", "Max", "ArgMin",
                                  "ArgMax", "Min_ArgMin", "Max_ArgMax", "KMin", "ArgKMin", "KMin_ArgKMin"};
    unsigned red = fz_pick(r, 12);
    int axis = (int)fz_pick(r, 2);
    int depth = 1 + (int)fz_pick(r, 5);
    int d = 1 + (int)fz_pick(r, 4);
    int rowsum = fz_pick(r, 16) == 15;
    if (rowsum) put(&s, "RowSum(");
    put(&s, "%s_Reduction(", names[red]);
    if (red == 1 || red == 2) d = fz_pick(r, 8) != 7 ? 1 : d; /* LogSumExp, SumSoftMaxWeight: scalar F */
    gen(&g, d, depth);
    if (red == 2) {
        put(&s, ",%d,", axis);
        gen(&g, 1 + (int)fz_pick(r, 4), depth);
        put(&s, ")");
    } else if (red >= 9) {
        put(&s, ",%d,%d)", 1 + (int)fz_pick(r, 6), axis);
    } else {
        put(&s, ",%d)", axis);
    }
    if (rowsum) put(&s, ")");
    return !s.overflow;
}

/* ------------------------------------------------------------ execution */

typedef struct fz_buf {
    kp_array a;
    unsigned char *mem; /* the allocation a.data points into */
    size_t bytes;
    unsigned char *mask; /* 1 for bytes that belong to an element of a */
} fz_buf;

static size_t dsize(kp_dtype t) { return t == KP_FLOAT32 ? 4 : 8; }

static double value(fz_reader *r, uint64_t *rng) {
    unsigned b;
    if (r->i < r->n) {
        b = fz_byte(r);
    } else { /* splitmix64 once the input is used up */
        uint64_t z = (*rng += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        b = (unsigned)((z ^ (z >> 31)) & 0xff);
    }
    switch (b) {
    case 0xff: return NAN;
    case 0xfe: return INFINITY;
    case 0xfd: return -INFINITY;
    case 0xfc: return 1e30;
    default: return ((double)b - 128.0) / 32.0;
    }
}

/*
 * A descriptor with nb batch dimensions of extents ext (when batched), then
 * rows (if rows >= 0) and dim, with strides drawn from r: a padded row, every
 * other column, a batch stride of 0 (broadcast) or with a gap.
 */
static int make_array(fz_buf *b, fz_reader *r, kp_dtype dtype, int nb, const int64_t *ext, int64_t rows,
                      int64_t dim, int is_output) {
    memset(b, 0, sizeof *b);
    int nd = 0;
    int64_t shape[KP_MAX_DIMS];
    for (int k = 0; k < nb; k++) shape[nd++] = ext[k];
    if (rows >= 0) shape[nd++] = rows;
    shape[nd++] = dim;
    int64_t strides[KP_MAX_DIMS], span = 1;
    for (int k = nd - 1; k >= 0; k--) {
        unsigned c = fz_pick(r, 6);
        if (k < nb && c == 0 && !is_output) {
            strides[k] = 0; /* broadcast */
        } else {
            strides[k] = span * (c == 1 && k == nd - 1 ? 2 : 1) + (c == 2 && k < nd - 1 ? 1 + (int64_t)fz_pick(r, 3) : 0);
        }
        span = strides[k] * shape[k] > span ? strides[k] * shape[k] : span;
        if (span < 1) span = 1;
    }
    size_t n = 1;
    for (int k = 0; k < nd; k++)
        if (shape[k] > 0) n += (size_t)((shape[k] - 1) * strides[k]);
    b->bytes = n * dsize(dtype);
    b->mem = malloc(b->bytes);
    b->mask = calloc(b->bytes, 1);
    if (!b->mem || !b->mask) return 0;
    b->a.data = b->mem;
    b->a.dtype = dtype;
    b->a.device = KP_DEVICE_CPU;
    b->a.ndim = nd;
    b->a.device_id = 0;
    for (int k = 0; k < nd; k++) {
        b->a.shape[k] = shape[k];
        b->a.strides[k] = strides[k];
    }
    /* Mark every element's bytes (empty arrays have none). */
    int64_t idx[KP_MAX_DIMS] = {0};
    for (int k = 0; k < nd; k++)
        if (shape[k] == 0) return 1;
    for (;;) {
        int64_t off = 0;
        for (int k = 0; k < nd; k++) off += idx[k] * strides[k];
        memset(b->mask + (size_t)off * dsize(dtype), 1, dsize(dtype));
        int k = nd - 1;
        while (k >= 0 && ++idx[k] == shape[k]) idx[k--] = 0;
        if (k < 0) break;
    }
    return 1;
}

static void fill(fz_buf *b, fz_reader *r, uint64_t *rng) {
    size_t es = dsize(b->a.dtype), n = b->bytes / es;
    for (size_t k = 0; k < n; k++) {
        double v = value(r, rng);
        if (b->a.dtype == KP_FLOAT32) {
            float x = (float)v;
            memcpy(b->mem + k * es, &x, es);
        } else {
            memcpy(b->mem + k * es, &v, es);
        }
    }
}

static void buf_free(fz_buf *b) {
    free(b->mem);
    free(b->mask);
}

#define SENTINEL 0x5a

static void check_untouched(const fz_buf *b, const char *what, const char *formula) {
    for (size_t k = 0; k < b->bytes; k++)
        if (!b->mask[k] && b->mem[k] != SENTINEL) fz_fail(what, formula);
}

typedef struct fz_call {
    int nb;
    int64_t ext[KP_MAX_BATCH_DIMS];
    int64_t N, M;
    fz_buf args[16];
    int nargs;
} fz_call;

static int build_args(fz_call *c, const kp_formula *f, kp_dtype dtype, fz_reader *r, uint64_t *rng) {
    c->nargs = kp_formula_num_args(f);
    if (c->nargs < 0 || c->nargs > 16) return 0;
    for (int k = 0; k < c->nargs; k++) {
        kp_var_category cat;
        int dim;
        if (kp_formula_arg(f, k, &cat, &dim) != KP_OK) { /* unused position: any array will do */
            cat = KP_VAR_PARAM;
            dim = 1;
        }
        int batched = c->nb > 0 && fz_pick(r, 3) != 0;
        int64_t rows = cat == KP_VAR_I ? c->N : cat == KP_VAR_J ? c->M : -1;
        if (!make_array(&c->args[k], r, dtype, batched ? c->nb : 0, c->ext, rows, dim, 0)) return 0;
        fill(&c->args[k], r, rng);
    }
    return 1;
}

static void call_free(fz_call *c) {
    for (int k = 0; k < c->nargs; k++) buf_free(&c->args[k]);
}

/* The large case is for formulas of at most this many nodes: its work is
 * pairs times program length, and the sanitized, coverage-instrumented
 * interpreter takes about 0.3 us per pair and ~0.1 us per instruction, so a
 * third derivative (hundreds of nodes) over 2.7 million pairs (500 x 650 x 9
 * batches) ran for 5-17 s per input. */
#define FZ_BIG_MAX_NODES 24

static void draw_sizes(fz_call *c, fz_reader *r, int big_ok) {
    memset(c, 0, sizeof *c);
    /* Rare choices are the largest values: an exhausted input reads zeros and
     * gets the common, cheap case. */
    c->N = fz_pick(r, 16) == 15 ? 0 : 1 + (int64_t)fz_pick(r, 7);
    c->M = fz_pick(r, 16) == 15 ? 0 : 1 + (int64_t)fz_pick(r, 7);
    if (fz_pick(r, 8) == 7) c->M += 30 + (int64_t)fz_pick(r, 40); /* several SIMD blocks */
    int big = fz_pick(r, 32) == 31 && big_ok;
    if (big) { /* enough pairs (> 2 x 2^16) that two threads really split the work, one batch */
        c->N = 300 + (int64_t)fz_pick(r, 100);
        c->M = 450 + (int64_t)fz_pick(r, 100);
    }
    c->nb = (int)fz_pick(r, 3);
    for (int k = 0; k < c->nb; k++) c->ext[k] = 1 + (int64_t)fz_pick(r, 3);
    if (big) c->nb = 0; /* batches would only multiply the work: the split needs few row blocks */
}

/* The output pair for f: values (if out_dim > 0) and indices (if any). */
static int make_outputs(const kp_formula *f, kp_dtype dtype, const fz_call *c, fz_reader *r, fz_buf *out,
                        fz_buf *idx) {
    int64_t rows = kp_formula_sums_rows(f) ? 1 : kp_formula_axis(f) == 1 ? c->N : c->M;
    int od = kp_formula_out_dim(f), id = kp_formula_out_index_dim(f);
    memset(out, 0, sizeof *out);
    memset(idx, 0, sizeof *idx);
    if (od > 0 && !make_array(out, r, dtype, c->nb, c->ext, rows, od, 1)) return 0;
    if (id > 0 && !make_array(idx, r, KP_INT64, c->nb, c->ext, rows, id, 1)) return 0;
    return 1;
}

static void reset(fz_buf *b) {
    if (b->mem) memset(b->mem, SENTINEL, b->bytes);
}

static void check_indices(const fz_buf *idx, int64_t reduced, const char *formula) {
    if (!idx->mem) return;
    for (size_t k = 0; k < idx->bytes; k += 8) {
        if (!idx->mask[k]) continue;
        int64_t v;
        memcpy(&v, idx->mem + k, 8);
        if (v < -1 || v >= (reduced > 0 ? reduced : 1)) fz_fail("index output out of the reduced range", formula);
    }
}

kp_status fz_exec_check(kp_context *ctx, const kp_formula *f, kp_dtype dtype, fz_reader *r, int allow_large) {
    char text[4096];
    kp_formula_print(f, text, sizeof text);
    kp_plan *plan = NULL;
    kp_status st = kp_plan_new(ctx, f, dtype, &plan);
    if (st != KP_OK) return st;
    fz_call c;
    draw_sizes(&c, r, allow_large && kp_formula_node_count(f) <= FZ_BIG_MAX_NODES);
    if (getenv("FZ_VERBOSE"))
        fprintf(stderr, "exec %s: N = %lld, M = %lld, batch dims %d (%lld %lld), %s\n", text, (long long)c.N,
                (long long)c.M, c.nb, (long long)c.ext[0], (long long)c.ext[1], dtype == KP_FLOAT32 ? "float32" : "float64");
    uint64_t rng = r->n;
    fz_buf out, idx;
    kp_array *args = NULL;
    if (!build_args(&c, f, dtype, r, &rng) || !make_outputs(f, dtype, &c, r, &out, &idx)) {
        call_free(&c);
        kp_plan_free(plan);
        return KP_ERR_OOM;
    }
    args = calloc((size_t)c.nargs + 1, sizeof *args);
    for (int k = 0; k < c.nargs; k++) args[k] = c.args[k].a;
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.num_threads = 1;
    if (fz_pick(r, 2)) {
        opt.nx = c.N;
        opt.ny = c.M;
    }
    reset(&out);
    reset(&idx);
    st = kp_plan_exec(plan, args, (size_t)c.nargs, out.mem ? &out.a : NULL, idx.mem ? &idx.a : NULL, &opt);
    if (st == KP_OK) {
        check_untouched(&out, "value output written outside its elements", text);
        check_untouched(&idx, "index output written outside its elements", text);
        check_indices(&idx, kp_formula_axis(f) == 1 ? c.M : c.N, text);
        /* Same bits for any thread count (kp.h's promise). */
        unsigned char *v1 = out.mem ? malloc(out.bytes) : NULL, *i1 = idx.mem ? malloc(idx.bytes) : NULL;
        if (v1) memcpy(v1, out.mem, out.bytes);
        if (i1) memcpy(i1, idx.mem, idx.bytes);
        reset(&out);
        reset(&idx);
        opt.num_threads = 2;
        kp_status st2 =
            kp_plan_exec(plan, args, (size_t)c.nargs, out.mem ? &out.a : NULL, idx.mem ? &idx.a : NULL, &opt);
        if (st2 != KP_OK) fz_fail("status differs between 1 and 2 threads", text);
        if ((v1 && memcmp(v1, out.mem, out.bytes)) || (i1 && memcmp(i1, idx.mem, idx.bytes)))
            fz_fail("results differ between 1 and 2 threads", text);
        free(v1);
        free(i1);
    } else if (kp_context_message(ctx)[0] == 0) {
        fz_fail("failed execution without a message", text);
    }
    free(args);
    buf_free(&out);
    buf_free(&idx);
    call_free(&c);
    kp_plan_free(plan);
    return st;
}
