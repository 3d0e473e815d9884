/*
 * KeOps' TensorDot and Kron: products of small tensors stored flat (row-major)
 * in a formula's vector components.
 *
 *   TensorDot(a, b, sa, sb, ca, cb [, perm])   numpy.tensordot(A, B, axes=(ca, cb)),
 *       A = a viewed with shape sa, B = b with shape sb; the result's axes are
 *       A's free axes then B's, optionally transposed by perm (numpy.transpose).
 *   Kron(a, b, sa, sb)                         torch.kron(A, B): shape sa[k] * sb[k].
 *
 * Both are written with the formula's own operations (Elem, *, +, Concat), one
 * product per term, so every engine runs them and Grad / Diff differentiate
 * them with no rule of their own. The number of terms is bounded so a formula
 * stays small: these are for the 3x3 and 4x4 tensors of kernel formulas, not
 * for large contractions.
 */
#include "formula/tensordot.h"

#include <stdio.h>

#include "formula/node.h"

enum { MAX_TERMS = 4096 };

static int product(const kp_tensor_shape *s) {
    int p = 1;
    for (int k = 0; k < s->n; k++) p *= s->dim[k];
    return p;
}

static int flat_index(const kp_tensor_shape *s, const int *idx) {
    int f = 0;
    for (int k = 0; k < s->n; k++) f = f * s->dim[k] + idx[k];
    return f;
}

/* Advances a row-major multi-index; returns 0 after the last one. */
static int next_index(const int *dims, int n, int *idx) {
    for (int k = n - 1; k >= 0; k--) {
        if (++idx[k] < dims[k]) return 1;
        idx[k] = 0;
    }
    return 0;
}

static int check_shape(const kp_tensor_shape *s, const kp_node *f, const char *name, char *why, size_t n) {
    for (int k = 0; k < s->n; k++)
        if (s->dim[k] < 1) return snprintf(why, n, "the shape of %s has a dimension < 1", name), 0;
    if (product(s) != f->dim)
        return snprintf(why, n, "the shape of %s holds %d values but %s has dimension %d", name, product(s), name,
                        f->dim),
               0;
    return 1;
}

/* Appends term to the running Concat (out == NULL: the first component). */
static const kp_node *append(kp_context *ctx, const kp_node *out, const kp_node *term, kp_status *st) {
    if (!term) return NULL;
    return out ? kp__binary(ctx, KP_OP_CONCAT, out, term, st) : term;
}

static const kp_node *elem_product(kp_context *ctx, const kp_node *a, int ia, const kp_node *b, int ib,
                                   kp_status *st) {
    const kp_node *x = kp__extract(ctx, a, ia, 1, st), *y = x ? kp__extract(ctx, b, ib, 1, st) : NULL;
    return y ? kp__binary(ctx, KP_OP_MUL, x, y, st) : NULL;
}

typedef struct contraction {
    const kp_tensor_shape *sa, *sb;
    int free_a[KP_TENSOR_MAX_AXES], free_b[KP_TENSOR_MAX_AXES], nfa, nfb;
    const kp_tensor_shape *ca, *cb;
    int cdims[KP_TENSOR_MAX_AXES];
} contraction;

static int set_up(contraction *c, char *why, size_t n) {
    int used_a[KP_TENSOR_MAX_AXES] = {0}, used_b[KP_TENSOR_MAX_AXES] = {0};
    if (c->ca->n != c->cb->n) return snprintf(why, n, "the contracted axes of a and b differ in number"), 0;
    for (int k = 0; k < c->ca->n; k++) {
        int i = c->ca->dim[k], j = c->cb->dim[k];
        if (i < 0 || i >= c->sa->n || j < 0 || j >= c->sb->n || used_a[i]++ || used_b[j]++)
            return snprintf(why, n, "contracted axis pair %d (%d, %d) is out of range or repeated", k, i, j), 0;
        if (c->sa->dim[i] != c->sb->dim[j])
            return snprintf(why, n, "contracted axes %d of a and %d of b have lengths %d and %d", i, j,
                            c->sa->dim[i], c->sb->dim[j]),
                   0;
        c->cdims[k] = c->sa->dim[i];
    }
    c->nfa = c->nfb = 0;
    for (int k = 0; k < c->sa->n; k++)
        if (!used_a[k]) c->free_a[c->nfa++] = k;
    for (int k = 0; k < c->sb->n; k++)
        if (!used_b[k]) c->free_b[c->nfb++] = k;
    return 1;
}

/* The output shape before perm, and perm checked (identity when absent). */
static int output_shape(const contraction *c, const kp_tensor_shape *perm, kp_tensor_shape *out, int *p, char *why,
                        size_t n) {
    out->n = c->nfa + c->nfb;
    for (int k = 0; k < c->nfa; k++) out->dim[k] = c->sa->dim[c->free_a[k]];
    for (int k = 0; k < c->nfb; k++) out->dim[c->nfa + k] = c->sb->dim[c->free_b[k]];
    int seen[KP_TENSOR_MAX_AXES] = {0};
    if (perm && perm->n != out->n) return snprintf(why, n, "the permutation has %d axes, the result %d", perm->n, out->n), 0;
    for (int k = 0; k < out->n; k++) {
        p[k] = perm ? perm->dim[k] : k;
        if (p[k] < 0 || p[k] >= out->n || seen[p[k]]++) return snprintf(why, n, "the permutation is not one"), 0;
    }
    return 1;
}

/* One output component: the sum over the contracted indices, u the result's index. */
static const kp_node *contract_at(kp_context *ctx, const contraction *c, const kp_node *a, const kp_node *b,
                                  const int *u, kp_status *st) {
    int ia[KP_TENSOR_MAX_AXES] = {0}, ib[KP_TENSOR_MAX_AXES] = {0}, ci[KP_TENSOR_MAX_AXES] = {0};
    for (int k = 0; k < c->nfa; k++) ia[c->free_a[k]] = u[k];
    for (int k = 0; k < c->nfb; k++) ib[c->free_b[k]] = u[c->nfa + k];
    const kp_node *sum = NULL;
    do {
        for (int k = 0; k < c->ca->n; k++) ia[c->ca->dim[k]] = ib[c->cb->dim[k]] = ci[k];
        const kp_node *t = elem_product(ctx, a, flat_index(c->sa, ia), b, flat_index(c->sb, ib), st);
        sum = !t ? NULL : sum ? kp__binary(ctx, KP_OP_ADD, sum, t, st) : t;
    } while (sum && next_index(c->cdims, c->ca->n, ci));
    return sum;
}

const kp_node *kp__tensordot(kp_context *ctx, const kp_node *a, const kp_node *b, const kp_tensor_shape *sa,
                             const kp_tensor_shape *sb, const kp_tensor_shape *ca, const kp_tensor_shape *cb,
                             const kp_tensor_shape *perm, char *why, size_t why_size, kp_status *st) {
    contraction c = {.sa = sa, .sb = sb, .ca = ca, .cb = cb};
    kp_tensor_shape out, shown;
    int p[KP_TENSOR_MAX_AXES];
    if (!check_shape(sa, a, "a", why, why_size) || !check_shape(sb, b, "b", why, why_size) ||
        !set_up(&c, why, why_size) || !output_shape(&c, perm, &out, p, why, why_size))
        return NULL;
    long long total = (long long)product(&out);
    for (int k = 0; k < ca->n; k++) total *= c.cdims[k];
    if (total > MAX_TERMS) return snprintf(why, why_size, "%lld products, more than %d", total, MAX_TERMS), NULL;
    shown.n = out.n;
    for (int k = 0; k < out.n; k++) shown.dim[k] = out.dim[p[k]];
    int idx[KP_TENSOR_MAX_AXES] = {0}, u[KP_TENSOR_MAX_AXES];
    const kp_node *r = NULL;
    do {
        for (int k = 0; k < out.n; k++) u[p[k]] = idx[k];
        r = append(ctx, r, contract_at(ctx, &c, a, b, u, st), st);
    } while (r && next_index(shown.dim, shown.n, idx));
    return r;
}

const kp_node *kp__kron(kp_context *ctx, const kp_node *a, const kp_node *b, const kp_tensor_shape *sa,
                        const kp_tensor_shape *sb, char *why, size_t why_size, kp_status *st) {
    if (!check_shape(sa, a, "a", why, why_size) || !check_shape(sb, b, "b", why, why_size)) return NULL;
    if (sa->n != sb->n) return snprintf(why, why_size, "a and b have %d and %d axes", sa->n, sb->n), NULL;
    if ((long long)a->dim * b->dim > MAX_TERMS)
        return snprintf(why, why_size, "%d products, more than %d", a->dim * b->dim, MAX_TERMS), NULL;
    int dims[KP_TENSOR_MAX_AXES], idx[KP_TENSOR_MAX_AXES] = {0}, ia[KP_TENSOR_MAX_AXES] = {0}, ib[KP_TENSOR_MAX_AXES] = {0};
    for (int k = 0; k < sa->n; k++) dims[k] = sa->dim[k] * sb->dim[k];
    const kp_node *r = NULL;
    do {
        for (int k = 0; k < sa->n; k++) ia[k] = idx[k] / sb->dim[k], ib[k] = idx[k] % sb->dim[k];
        r = append(ctx, r, elem_product(ctx, a, flat_index(sa, ia), b, flat_index(sb, ib), st), st);
    } while (r && next_index(dims, sa->n, idx));
    return r;
}
