/* formula.c — kp_formula accessors and the canonical printer. */
#include "formula/formula.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "formula/print.h"

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

kp_status kp_formula_count_nodes(kp_context *ctx, const kp_formula *f, size_t *count) {
    if (count) *count = 0;
    if (!ctx) return KP_ERR_NULL;
    if (!f || !count) return kp__fail(ctx, KP_ERR_NULL, "kp_formula_count_nodes: %s is NULL", f ? "count" : "f");
    const kp_node *roots[2] = {f->f, f->g};
    kp_status st = kp__node_count(ctx, roots, 2, count);
    return st == KP_OK ? st : kp__fail(ctx, st, "out of memory while counting the nodes of a formula");
}

/* No message on failure (this call takes no context and must not write into
 * the formula's): 0, which no formula has, says it failed. */
size_t kp_formula_node_count(const kp_formula *f) {
    if (!f) return 0;
    const kp_node *roots[2] = {f->f, f->g};
    size_t n = 0;
    kp_status st = kp__node_count(f->ctx, roots, 2, &n);
    return st == KP_OK ? n : 0;
}

/* ------------------------------------------------------------------ printer */

size_t kp_formula_print(const kp_formula *f, char *buf, size_t size) {
    kp_text_sink s = {buf, size, 0};
    if (size) buf[0] = '\0';
    if (!f) return 0;
    if (f->sum_rows) kp__text_put(&s, "RowSum(");
    kp__text_put(&s, "%s(", kp__reduction_name(f->red));
    kp__print_node(&s, f->f);
    if (kp__red(f->red)->takes_k) kp__text_put(&s, ",%d", f->K);
    kp__text_put(&s, ",%d", f->axis);
    if (f->g) {
        kp__text_put(&s, ",");
        kp__print_node(&s, f->g);
    }
    kp__text_put(&s, f->sum_rows ? "))" : ")");
    return s.len;
}
