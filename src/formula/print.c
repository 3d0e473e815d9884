/* print.c — the canonical text of formula nodes (see print.h). */
#include "formula/print.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

static void add_len(kp_text_sink *s, size_t n) { s->len = n > SIZE_MAX - s->len ? SIZE_MAX : s->len + n; }

void kp__text_put(kp_text_sink *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = s->len < s->size ? s->size - s->len : 0;
    int n = vsnprintf(room ? s->buf + s->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) add_len(s, (size_t)n);
}

static void print_number(kp_text_sink *s, double v) {
    if (isnan(v)) kp__text_put(s, "(0/0)");
    else if (isinf(v)) kp__text_put(s, v > 0 ? "(1/0)" : "(-1/0)");
    else if (v < 0) kp__text_put(s, "(-%.17g)", -v);
    else kp__text_put(s, "%.17g", v);
}

/* Operators printed between their operands, as the parser reads them back. */
static const char *const infix_of[KP_OP_COUNT_] = {
    [KP_OP_ADD] = "+", [KP_OP_SUB] = "-", [KP_OP_MUL] = "*", [KP_OP_DIV] = "/",  [KP_OP_LT] = "<",  [KP_OP_LE] = "<=",
    [KP_OP_GT] = ">",  [KP_OP_GE] = ">=", [KP_OP_EQ] = "==", [KP_OP_NE] = "!=", [KP_OP_DOT] = "|",
};

/* A child's text: walked only while the buffer has room for one more
 * character, else counted from its stored length. */
static void child(kp_text_sink *s, const kp_node *c) {
    if (s->len < s->size && s->size - s->len > 1) kp__print_node(s, c);
    else add_len(s, c->text_len);
}

/* Every op prints as Name(children...) but these. */
void kp__print_node(kp_text_sink *s, const kp_node *n) {
    static const char *cats[] = {"Vi", "Vj", "Pm"};
    if (n->op == KP_OP_VAR) {
        kp__text_put(s, "%s(%d,%d)", cats[n->ip[0]], n->ip[1], n->dim);
    } else if (n->op == KP_OP_INDEX) {
        kp__text_put(s, n->ip[0] == KP_VAR_I ? "IndexI()" : "IndexJ()");
    } else if (n->op == KP_OP_CONST) {
        if (n->dim == 1) print_number(s, n->value);
        else if (n->value == 0) kp__text_put(s, "Zero(%d)", n->dim);
        else {
            kp__text_put(s, "(Zero(%d)+", n->dim);
            print_number(s, n->value);
            kp__text_put(s, ")");
        }
    } else if (n->op == KP_OP_NEG) {
        kp__text_put(s, "(-");
        child(s, n->child[0]);
        kp__text_put(s, ")");
    } else if (n->op == KP_OP_POW || n->op == KP_OP_ROUND || n->op == KP_OP_ONEHOT) {
        kp__text_put(s, "%s(", kp__op_name(n->op));
        child(s, n->child[0]);
        kp__text_put(s, ",%d)", n->op == KP_OP_ONEHOT ? n->dim : n->ip[0]);
    } else if (n->op == KP_OP_EXTRACT) {
        kp__text_put(s, "Extract(");
        child(s, n->child[0]);
        kp__text_put(s, ",%d,%d)", n->ip[0], n->dim);
    } else if (infix_of[n->op]) {
        kp__text_put(s, "(");
        child(s, n->child[0]);
        kp__text_put(s, "%s", infix_of[n->op]);
        child(s, n->child[1]);
        kp__text_put(s, ")");
    } else {
        kp__text_put(s, "%s(", kp__op_name(n->op));
        for (int k = 0; k < n->nchild; k++) {
            if (k) kp__text_put(s, ",");
            child(s, n->child[k]);
        }
        kp__text_put(s, ")");
    }
}

size_t kp__node_text_len(const kp_node *n) {
    kp_text_sink s = {NULL, 0, 0};
    kp__print_node(&s, n);
    return s.len;
}
