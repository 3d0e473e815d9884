/* ptx_loop.c — the innermost loop of a PTX text and its static cost (ptx_loop.h). */
#include "ptx_loop.h"

#include <stdlib.h>
#include <string.h>

typedef struct line {
    const char *p; /* first non-blank character */
    size_t n;      /* up to the end of the line */
} line;

static int starts(const line *l, const char *w) {
    size_t k = strlen(w);
    return l->n >= k && memcmp(l->p, w, k) == 0;
}

/* The label a line defines ("$L__BB0_21:" -> "$L__BB0_21"), or length 0. */
static size_t label_def(const line *l) {
    if (l->n < 2 || l->p[0] != '$') return 0;
    const char *c = memchr(l->p, ':', l->n);
    return c ? (size_t)(c - l->p) : 0;
}

/* The target of a branch line ("@%p1 bra $L__BB0_21;" or "bra.uni $L..;"), or NULL. */
static const char *branch_target(const line *l, size_t *len) {
    const char *b = NULL;
    for (size_t k = 0; k + 4 <= l->n; k++)
        if (memcmp(l->p + k, "bra", 3) == 0 && (k == 0 || l->p[k - 1] == ' ' || l->p[k - 1] == '\t')) {
            b = l->p + k;
            break;
        }
    if (!b) return NULL;
    const char *t = memchr(b, '$', l->n - (size_t)(b - l->p));
    if (!t) return NULL;
    const char *e = t;
    while (e < l->p + l->n && *e != ';' && *e != ' ') e++;
    *len = (size_t)(e - t);
    return t;
}

/* An instruction line (not a directive, label, brace or comment). */
static int is_instruction(const line *l) {
    if (l->n == 0 || l->p[0] == '.' || l->p[0] == '/' || l->p[0] == '{' || l->p[0] == '}' || label_def(l)) return 0;
    return 1;
}

/* The opcode of an instruction line, after an optional "@%p" guard. */
static const char *opcode(const line *l) {
    const char *p = l->p, *end = l->p + l->n;
    if (*p == '@') {
        while (p < end && *p != ' ' && *p != '\t') p++;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
    }
    return p;
}

int ptx_loop_cost_of(const char *ptx, const char *entry, ptx_loop_cost *c) {
    memset(c, 0, sizeof *c);
    if (entry) { /* from ".entry <name>(" to the next entry */
        size_t k = strlen(entry);
        const char *e = ptx;
        while ((e = strstr(e, ".entry ")) != NULL && !(strncmp(e + 7, entry, k) == 0 && e[7 + k] == '(')) e += 7;
        if (!e) return -1;
        ptx = e + 7;
    }
    const char *stop = strstr(ptx, ".entry ");
    size_t cap = 1024, n = 0;
    line *ls = malloc(cap * sizeof *ls);
    if (!ls) return -1;
    for (const char *p = ptx; *p && (!stop || p < stop);) {
        const char *e = strchr(p, '\n');
        if (!e) e = p + strlen(p);
        const char *s = p;
        while (s < e && (*s == ' ' || *s == '\t')) s++;
        if (n == cap) {
            line *q = realloc(ls, 2 * cap * sizeof *ls);
            if (!q) {
                free(ls);
                return -1;
            }
            ls = q;
            cap *= 2;
        }
        ls[n].p = s;
        ls[n].n = (size_t)(e - s);
        n++;
        p = *e ? e + 1 : e;
    }
    /* Back edges: a branch at line b to a label defined at line a < b. The
       pair loop is the longest innermost one (one that holds no other): the
       unrolled body, not a shorter remainder loop beside it. */
    size_t nr = 0, (*r)[2] = malloc(n * sizeof *r);
    if (!r) {
        free(ls);
        return -1;
    }
    for (size_t b = 0; b < n; b++) {
        size_t tl;
        const char *t = is_instruction(&ls[b]) ? branch_target(&ls[b], &tl) : NULL;
        if (!t) continue;
        for (size_t a = 0; a < b; a++)
            if (label_def(&ls[a]) == tl && memcmp(ls[a].p, t, tl) == 0) {
                r[nr][0] = a;
                r[nr][1] = b;
                nr++;
                break;
            }
    }
    size_t best_a = 0, best_b = 0;
    int found = 0;
    for (size_t k = 0; k < nr; k++) {
        int inner = 1;
        for (size_t q = 0; q < nr && inner; q++)
            if (q != k && r[q][0] >= r[k][0] && r[q][1] <= r[k][1]) inner = 0;
        if (inner && (!found || r[k][1] - r[k][0] > best_b - best_a)) {
            best_a = r[k][0];
            best_b = r[k][1];
            found = 1;
        }
    }
    free(r);
    if (!found) {
        free(ls);
        return -1;
    }
    static const char *const sfu_ops[] = {"ex2.", "lg2.", "rsqrt.", "rcp.approx", "sqrt.approx", "sin.", "cos."};
    for (size_t k = best_a + 1; k <= best_b; k++) {
        if (!is_instruction(&ls[k])) continue;
        line op = {opcode(&ls[k]), 0};
        op.n = ls[k].n - (size_t)(op.p - ls[k].p);
        if (starts(&op, "mov.") || starts(&op, "neg.") || starts(&op, "cvt.sat.f32.f32")) continue;
        c->instructions++;
        if (starts(&op, "ld.shared")) c->shared_loads++;
        if (starts(&op, "bra")) c->branches++;
        for (size_t s = 0; s < sizeof sfu_ops / sizeof sfu_ops[0]; s++)
            if (starts(&op, sfu_ops[s])) c->sfu++;
    }
    free(ls);
    return 0;
}
