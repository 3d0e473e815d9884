/*
 * fuzz_parse — the formula parser with aliases.
 *
 * Input: lines; the first is the formula, the next ones (at most 8) aliases.
 * Checked for every input: no crash, leak or undefined behaviour; a failure
 * has a status and a message; an accepted formula prints to a canonical text
 * that parses again (without the aliases) into a formula of the same
 * signature, reprinting reaches a fixed point, its introspection is consistent, and it lowers to a plan or says why.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

#define MAX_ALIASES 8

static void check_introspection(const kp_formula *f, const char *text) {
    int n = kp_formula_num_args(f);
    if (n < 0) fz_fail("negative number of arguments", text);
    for (int k = -1; k <= n; k++) {
        kp_var_category cat;
        int dim = 0;
        kp_status st = kp_formula_arg(f, k, &cat, &dim);
        if ((k < 0 || k >= n) && st == KP_OK) fz_fail("kp_formula_arg accepts a position out of range", text);
        if (st == KP_OK && dim < 1) fz_fail("argument of dimension < 1", text);
    }
    if (kp_formula_out_dim(f) < 0 || kp_formula_out_index_dim(f) < 0) fz_fail("negative output width", text);
    if (kp_formula_out_dim(f) == 0 && kp_formula_out_index_dim(f) == 0) fz_fail("a formula with no output", text);
    if (kp_formula_axis(f) != 0 && kp_formula_axis(f) != 1) fz_fail("axis not 0 or 1", text);
    if (kp_formula_node_count(f) < 1) fz_fail("no nodes", text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    const char *aliases[MAX_ALIASES];
    size_t n_aliases = 0;
    for (char *p = strchr(text, '\n'); p && n_aliases < MAX_ALIASES; p = strchr(p, '\n')) {
        *p++ = 0;
        aliases[n_aliases++] = p;
    }
    kp_context *ctx = NULL;
    if (kp_context_new(&ctx) != KP_OK) fz_fail("kp_context_new", NULL);
    kp_formula *f = NULL;
    kp_status st = kp_formula_parse(ctx, text, aliases, n_aliases, &f);
    if (st != KP_OK) {
        if (f) fz_fail("*out set on failure", text);
        if (!kp_context_message(ctx)[0]) fz_fail("parse failure without a message", text);
    } else {
        check_introspection(f, text);
        size_t need = kp_formula_print(f, NULL, 0);
        char *printed = malloc(need + 1);
        if (kp_formula_print(f, printed, need + 1) != need) fz_fail("print length differs", text);
        kp_formula *g = NULL;
        if (kp_formula_parse(ctx, printed, NULL, 0, &g) != KP_OK) {
            fz_fail("the printed formula does not parse", printed);
        }
        fz_check_same_signature(f, g, printed);
        /* The printed text is canonical: reparsed, it prints the same. The
         * first print may still differ from the second (the input's aliases
         * and spelling), not the later ones. */
        size_t need2 = kp_formula_print(g, NULL, 0);
        char *p2 = malloc(need2 + 1);
        kp_formula_print(g, p2, need2 + 1);
        kp_formula *h = NULL;
        if (kp_formula_parse(ctx, p2, NULL, 0, &h) != KP_OK) fz_fail("the reprinted formula does not parse", p2);
        size_t need3 = kp_formula_print(h, NULL, 0);
        char *p3 = malloc(need3 + 1);
        kp_formula_print(h, p3, need3 + 1);
        kp_formula_free(h);
        if (strcmp(p2, p3) != 0) fz_fail("printing does not reach a fixed point", p2);
        free(p2);
        free(p3);
        kp_plan *plan = NULL;
        st = kp_plan_new(ctx, f, (data[0] & 1) ? KP_FLOAT64 : KP_FLOAT32, &plan);
        if (st != KP_OK && !kp_context_message(ctx)[0]) fz_fail("plan failure without a message", printed);
        kp_plan_free(plan);
        kp_formula_free(g);
        free(printed);
    }
    kp_formula_free(f);
    kp_context_free(ctx);
    free(text);
    return 0;
}
