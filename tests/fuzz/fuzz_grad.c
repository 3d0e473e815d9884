/*
 * fuzz_grad — gradient construction to order 3.
 *
 * Input: a generated reduction (as fuzz_exec), then a chain of up to three
 * kp_formula_grad calls, each with respect to a position drawn from the bytes
 * (sometimes out of range), with kp_formula_with_indices, _softmax_lse and
 * _unsummed along the way; every formula built is lowered (float64), some are
 * run on tiny arrays with fuzz_exec's checks, and the first-order gradients of
 * the forward go through a joint plan.
 * Checked: no crash, leak, undefined behaviour or timeout; every failure has a
 * message; a gradient built is a valid formula (it prints and reparses).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

/* The largest formula (in distinct nodes) that is lowered and differentiated:
 * each order of derivative multiplies the DAG by 2-3 and its joint gradients
 * by the number of arguments, so past this a formula ends the input (its
 * parse was checked) instead of costing seconds under the sanitizers. */
#define FZ_GRAD_MAX_NODES 8192

static void check_reparse(kp_context *ctx, const kp_formula *g) {
    size_t need = kp_formula_print(g, NULL, 0);
    /* The text is the DAG written as a tree: its length grows exponentially
     * with nested sharing (a third derivative of nested Normalize: 380 nodes,
     * 29 MB). Measuring it is O(1); only the texts small enough to reparse
     * quickly are printed and reparsed. */
    if (need > 65536) return;
    char *text = malloc(need + 1);
    kp_formula_print(g, text, need + 1);
    kp_formula *h = NULL;
    if (kp_formula_parse(ctx, text, NULL, 0, &h) != KP_OK) fz_fail("a built gradient does not reparse", text);
    fz_check_same_signature(g, h, text);
    kp_formula_free(h);
    free(text);
}

static void lower(kp_context *ctx, const kp_formula *g) {
    kp_plan *p = NULL;
    if (kp_plan_new(ctx, g, KP_FLOAT64, &p) != KP_OK && !kp_context_message(ctx)[0])
        fz_fail("plan failure without a message", NULL);
    kp_plan_free(p);
}

/* The extra formulas a binding builds for gradients, each lowered and freed. */
static void extras(kp_context *ctx, const kp_formula *f) {
    kp_formula *e = NULL;
    if (kp_formula_with_indices(ctx, f, &e) == KP_OK) lower(ctx, e);
    kp_formula_free(e);
    e = NULL;
    if (kp_formula_softmax_lse(ctx, f, &e) == KP_OK) lower(ctx, e);
    kp_formula_free(e);
    e = NULL;
    if (kp_formula_unsummed(ctx, f, &e) == KP_OK) lower(ctx, e);
    kp_formula_free(e);
}

/* Gradients of f with respect to each of its (at most 8) arguments in one joint plan. */
static void joint(kp_context *ctx, const kp_formula *f) {
    kp_formula *g[8];
    size_t n = 0;
    int na = kp_formula_num_args(f);
    for (int k = 0; k < na && n < 8; k++)
        if (kp_formula_grad(ctx, f, k, &g[n]) == KP_OK) n++;
    kp_plan *p = NULL;
    if (n && kp_plan_new_joint(ctx, (const kp_formula *const *)g, n, KP_FLOAT64, &p) != KP_OK &&
        !kp_context_message(ctx)[0])
        fz_fail("joint plan failure without a message", NULL);
    kp_plan_free(p);
    for (size_t k = 0; k < n; k++) kp_formula_free(g[k]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_reader r = {data, size, 0};
    char text[4096], store[FZ_N_ALIASES][24];
    const char *aliases[FZ_N_ALIASES];
    int D, E;
    if (!fz_gen_reduction(&r, text, sizeof text, &D, &E)) return 0;
    fz_aliases(D, E, store, aliases);
    if (getenv("FZ_VERBOSE")) fprintf(stderr, "formula: %s (D = %d, E = %d)\n", text, D, E);
    kp_context *ctx = NULL;
    if (kp_context_new(&ctx) != KP_OK) fz_fail("kp_context_new", NULL);
    kp_formula *chain[4] = {NULL, NULL, NULL, NULL};
    if (kp_formula_parse(ctx, text, aliases, FZ_N_ALIASES, &chain[0]) != KP_OK) {
        kp_context_free(ctx);
        return 0;
    }
    if (kp_formula_node_count(chain[0]) > FZ_GRAD_MAX_NODES) {
        kp_formula_free(chain[0]);
        kp_context_free(ctx);
        return 0;
    }
    extras(ctx, chain[0]);
    if (fz_pick(&r, 4) == 3) joint(ctx, chain[0]);
    for (int order = 1; order <= 3; order++) {
        const kp_formula *f = chain[order - 1];
        int n = kp_formula_num_args(f);
        int k = (int)fz_pick(&r, (unsigned)n + 1) - (fz_pick(&r, 16) == 15); /* -1 and n are refused */
        if (kp_formula_grad(ctx, f, k, &chain[order]) != KP_OK) {
            if (!kp_context_message(ctx)[0]) fz_fail("grad failure without a message", text);
            if (k >= 0 && k < n) {
                kp_var_category cat;
                int dim;
                /* A used argument of a valid formula always has a gradient. */
                if (kp_formula_arg(f, k, &cat, &dim) == KP_OK && order == 1)
                    fz_fail("no gradient for a used argument", kp_context_message(ctx));
            }
            break;
        }
        if (kp_formula_node_count(chain[order]) > FZ_GRAD_MAX_NODES) break;
        check_reparse(ctx, chain[order]);
        lower(ctx, chain[order]);
        extras(ctx, chain[order]);
        /* Tiny sizes only: a derivative's program is long, and the thread split is fuzz_exec's. */
        if (fz_pick(&r, 3) == 2) fz_exec_check(ctx, chain[order], KP_FLOAT64, &r, 0);
    }
    for (int k = 3; k >= 0; k--) kp_formula_free(chain[k]);
    kp_context_free(ctx);
    return 0;
}
