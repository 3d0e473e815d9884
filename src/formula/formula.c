/* formula.c — kp_formula accessors and the canonical printer. */
#include "formula/formula.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"

void kp_formula_free(kp_formula *f) { if (f) kp__free(f->ctx, f); }

kp_reduction kp_formula_reduction(const kp_formula *f) { return f ? f->red : KP_RED_SUM; }
int kp_formula_axis(const kp_formula *f) { return f ? f->axis : -1; }
int kp_formula_num_args(const kp_formula *f) { return f ? f->nargs : 0; }
int kp_formula_sums_rows(const kp_formula *f) { return f ? f->sum_rows : 0; }

kp_status kp__formula_check_context(kp_context *ctx, const kp_formula *f) {
    if (f->ctx == ctx) return KP_OK;
    return kp__fail(ctx, KP_ERR_ARGUMENT,
                    "the formula was made in another context: use it with the context it was made in");
}

/* No message: this call takes no context, and writing into the formula's
 * would race with the thread that uses that context. */
kp_status kp_formula_arg(const kp_formula *f, int k, kp_var_category *category, int *dim) {
    if (!f) return KP_ERR_NULL;
    if (k < 0 || k >= f->nargs || !f->args[k].used) return KP_ERR_ARGUMENT;
    if (category) *category = f->args[k].cat;
    if (dim) *dim = f->args[k].dim;
    return KP_OK;
}

int kp_formula_out_dim(const kp_formula *f) {
    return f ? kp__red_width(kp__red(f->red)->value, f->f->dim, f->g ? f->g->dim : 0, f->K) : 0;
}

int kp_formula_out_index_dim(const kp_formula *f) {
    return f ? kp__red_width(kp__red(f->red)->index, f->f->dim, f->g ? f->g->dim : 0, f->K) : 0;
}

size_t kp_formula_node_count(const kp_formula *f) {
    if (!f) return 0;
    const kp_node *roots[2] = {f->f, f->g};
    return kp__node_count(f->ctx, roots, 2);
}

/* ------------------------------------------------------------------ printer */

typedef struct {
    char *buf;
    size_t size, len;
} sink;

__attribute__((format(printf, 2, 3))) static void put(sink *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = s->len < s->size ? s->size - s->len : 0;
    int n = vsnprintf(room ? s->buf + s->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) s->len += (size_t)n;
}

static void print_number(sink *s, double v) {
    if (isnan(v)) put(s, "(0/0)");
    else if (isinf(v)) put(s, v > 0 ? "(1/0)" : "(-1/0)");
    else if (v < 0) put(s, "(-%.17g)", -v);
    else put(s, "%.17g", v);
}

/* Operators printed between their operands, as the parser reads them back. */
static const char *const infix_of[KP_OP_COUNT_] = {
    [KP_OP_ADD] = "+", [KP_OP_SUB] = "-", [KP_OP_MUL] = "*", [KP_OP_DIV] = "/",  [KP_OP_LT] = "<",  [KP_OP_LE] = "<=",
    [KP_OP_GT] = ">",  [KP_OP_GE] = ">=", [KP_OP_EQ] = "==", [KP_OP_NE] = "!=", [KP_OP_DOT] = "|",
};

/* Every op prints as Name(children...) but these. */
static void print_node(sink *s, const kp_node *n) {
    static const char *cats[] = {"Vi", "Vj", "Pm"};
    if (n->op == KP_OP_VAR) {
        put(s, "%s(%d,%d)", cats[n->ip[0]], n->ip[1], n->dim);
    } else if (n->op == KP_OP_INDEX) {
        put(s, n->ip[0] == KP_VAR_I ? "IndexI()" : "IndexJ()");
    } else if (n->op == KP_OP_CONST) {
        if (n->dim == 1) print_number(s, n->value);
        else if (n->value == 0) put(s, "Zero(%d)", n->dim);
        else {
            put(s, "(Zero(%d)+", n->dim);
            print_number(s, n->value);
            put(s, ")");
        }
    } else if (n->op == KP_OP_NEG) {
        put(s, "(-");
        print_node(s, n->child[0]);
        put(s, ")");
    } else if (n->op == KP_OP_POW || n->op == KP_OP_ROUND || n->op == KP_OP_ONEHOT) {
        put(s, "%s(", kp__op_name(n->op));
        print_node(s, n->child[0]);
        put(s, ",%d)", n->op == KP_OP_ONEHOT ? n->dim : n->ip[0]);
    } else if (n->op == KP_OP_EXTRACT) {
        put(s, "Extract(");
        print_node(s, n->child[0]);
        put(s, ",%d,%d)", n->ip[0], n->dim);
    } else if (infix_of[n->op]) {
        put(s, "(");
        print_node(s, n->child[0]);
        put(s, "%s", infix_of[n->op]);
        print_node(s, n->child[1]);
        put(s, ")");
    } else {
        put(s, "%s(", kp__op_name(n->op));
        for (int k = 0; k < n->nchild; k++) {
            if (k) put(s, ",");
            print_node(s, n->child[k]);
        }
        put(s, ")");
    }
}

size_t kp_formula_print(const kp_formula *f, char *buf, size_t size) {
    sink s = {buf, size, 0};
    if (size) buf[0] = '\0';
    if (!f) return 0;
    if (f->sum_rows) put(&s, "RowSum(");
    put(&s, "%s(", kp__reduction_name(f->red));
    print_node(&s, f->f);
    if (kp__red(f->red)->takes_k) put(&s, ",%d", f->K);
    put(&s, ",%d", f->axis);
    if (f->g) {
        put(&s, ",");
        print_node(&s, f->g);
    }
    put(&s, f->sum_rows ? "))" : ")");
    return s.len;
}
