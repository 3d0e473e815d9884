/*
 * test_formula_size.c — derivative formulas stay small and their text stays
 * cheap to measure and print.
 *
 * The nth derivative of nested Normalize refers to each level's input several
 * times: as a DAG (hash-consed, shared) it grows linearly with the nesting
 * depth, but its text, the DAG written as a tree, grows about 12 times per
 * level (a third derivative: 131 KB at depth 1, 357 MB at depth 4, ~10^15
 * bytes at depth 10). Checked: node counts stay linear; kp_formula_print
 * measures any of these texts in constant time and prints a prefix in time
 * bounded by the buffer (a printer that walks the tree would not finish the
 * depth-10 case); the measured length is the printed one; the printed text
 * reparses; kp_formula_count_nodes and kp_formula_node_count agree; nested
 * Laplacians of a function of one component are as small in dimension 3 as in
 * dimension 1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "kp.h"
#include "kp_test_util.h"

static const char *const aliases[] = {"x = Vi(0,3)", "z = Vj(1,8)"};

#define TEXT_SIZE 1024

/* text wrapped depth times in before ... after. */
static void nest(char text[TEXT_SIZE], const char *before, const char *after, int depth) {
    size_t a = strlen(before), b = strlen(after);
    for (int d = 0; d < depth; d++) {
        size_t t = strlen(text);
        assert_true(a + t + b < TEXT_SIZE);
        memmove(text + a, text, t);
        memcpy(text, before, a);
        memcpy(text + a + t, after, b + 1);
    }
}

/* chain[0]: LogSumExp of Norm2 of `depth` nested Normalize; chain[k]: the
 * gradient of chain[k-1] with respect to x. */
static void nested_normalize(kp_context *ctx, int depth, kp_formula *chain[4]) {
    char text[TEXT_SIZE] = "x+Extract(z,5,3)", tmp[TEXT_SIZE + 32];
    nest(text, "Normalize(", ")", depth);
    snprintf(tmp, sizeof tmp, "LogSumExp_Reduction(Norm2(%s),1)", text);
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, tmp, aliases, 2, &chain[0]));
    for (int o = 1; o <= 3; o++) KPT_ASSERT_OK(ctx, kp_formula_grad(ctx, chain[o - 1], 0, &chain[o]));
}

static void free_chain(kp_formula *chain[4]) {
    for (int o = 3; o >= 0; o--) kp_formula_free(chain[o]);
}

static size_t nodes(kp_context *ctx, const kp_formula *f) {
    size_t n = 0;
    KPT_ASSERT_OK(ctx, kp_formula_count_nodes(ctx, f, &n));
    assert_int_equal(n, kp_formula_node_count(f));
    return n;
}

/* Shared subexpressions stay shared: each level of nesting adds a bounded
 * number of nodes to the third derivative (about 108 here). */
static void test_node_count_linear(void **state) {
    (void)state;
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    size_t prev = 0;
    for (int depth = 1; depth <= 8; depth++) {
        kp_formula *c[4] = {NULL};
        nested_normalize(ctx, depth, c);
        size_t n3 = nodes(ctx, c[3]);
        printf("  depth %d: nodes %zu %zu %zu %zu, text of the third derivative %zu bytes\n", depth, nodes(ctx, c[0]),
               nodes(ctx, c[1]), nodes(ctx, c[2]), n3, kp_formula_print(c[3], NULL, 0));
        assert_true(n3 <= 120 * (size_t)depth + 60);
        if (depth > 1) assert_true(n3 - prev <= 120);
        prev = n3;
        free_chain(c);
    }
    kp_context_free(ctx);
}

/* The measured length is the printed one, a truncated print is a prefix with
 * the same returned length, and the text reparses into a formula of the same
 * signature. */
static void test_print_matches_length(void **state) {
    (void)state;
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    kp_formula *c[4] = {NULL};
    nested_normalize(ctx, 1, c);
    for (int o = 0; o <= 3; o++) {
        size_t need = kp_formula_print(c[o], NULL, 0);
        char *full = malloc(need + 1);
        assert_non_null(full);
        assert_int_equal(kp_formula_print(c[o], full, need + 1), need);
        assert_int_equal(strlen(full), need);
        size_t cuts[] = {1, 2, 7, 100, need / 3, need};
        for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
            char *part = malloc(cuts[k]);
            assert_non_null(part);
            assert_int_equal(kp_formula_print(c[o], part, cuts[k]), need);
            assert_int_equal(strlen(part), cuts[k] - 1);
            assert_memory_equal(part, full, cuts[k] - 1);
            free(part);
        }
        kp_formula *h = NULL;
        KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, full, NULL, 0, &h));
        assert_int_equal(kp_formula_out_dim(h), kp_formula_out_dim(c[o]));
        assert_int_equal(kp_formula_num_args(h), kp_formula_num_args(c[o]));
        kp_formula_free(h);
        free(full);
    }
    free_chain(c);
    kp_context_free(ctx);
}

/* Depth 10: the third derivative's text is about 10^15 bytes. Measuring it
 * and printing 4 KB of it take microseconds (a tree walk would take days). */
static void test_huge_text_is_cheap(void **state) {
    (void)state;
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    kp_formula *c[4] = {NULL};
    nested_normalize(ctx, 10, c);
    char buf[4096];
    clock_t t0 = clock();
    size_t need = kp_formula_print(c[3], NULL, 0);
    size_t again = kp_formula_print(c[3], buf, sizeof buf);
    double cpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
    printf("  depth 10, third derivative: %zu nodes, text %zu bytes, measured and 4 KB printed in %.6f s CPU\n",
           nodes(ctx, c[3]), need, cpu);
    assert_true(need > (size_t)1 << 40);
    assert_int_equal(again, need);
    assert_int_equal(strlen(buf), sizeof buf - 1);
    assert_true(strncmp(buf, "LogSumExp_Reduction(", 20) == 0 || strncmp(buf, "Sum_Reduction(", 14) == 0);
    assert_true(cpu < 0.5);
    free_chain(c);
    kp_context_free(ctx);
}

static void test_count_nodes_errors(void **state) {
    (void)state;
    kp_context *ctx = NULL, *other = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    assert_int_equal(kp_context_new(&other), KP_OK);
    kp_formula *f = NULL;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,z)),1)", (const char *[]){"x = Vi(0,3)", "z = Vj(1,3)"}, 2, &f));
    size_t n = 99;
    assert_int_equal(kp_formula_count_nodes(ctx, NULL, &n), KP_ERR_NULL);
    assert_int_equal(n, 0);
    assert_non_null(strstr(kp_context_message(ctx), "f is NULL"));
    assert_int_equal(kp_formula_count_nodes(ctx, f, NULL), KP_ERR_NULL);
    assert_int_equal(kp_formula_count_nodes(NULL, f, &n), KP_ERR_NULL);
    assert_int_equal(kp_formula_node_count(NULL), 0);
    /* Another context may count (its memory, its message). */
    KPT_ASSERT_OK(other, kp_formula_count_nodes(other, f, &n));
    assert_int_equal(n, kp_formula_node_count(f));
    assert_true(n >= 5);
    kp_formula_free(f);
    kp_context_free(other);
    kp_context_free(ctx);
}

/* Laplacian(f, v) in dimension D takes D directional derivatives of the
 * gradient and keeps component d of the d-th: when f depends on one component
 * of v, the gradient is that component's derivative beside zeros (a Concat),
 * and each Extract of a Concat's operand is that operand, so the other D - 1
 * terms vanish and the result is as small as in dimension 1 (without that
 * rule: 42, 290, 3,170, 41,070 nodes in dimension 3 for depth 1 to 4). */
static size_t nested_laplacian_nodes(kp_context *ctx, const char *var, const char *of, int depth) {
    char text[TEXT_SIZE], tmp[TEXT_SIZE + 32], after[64];
    snprintf(text, sizeof text, "Atan2(1e-3,%s)", of);
    snprintf(after, sizeof after, ",%s)", var);
    nest(text, "Laplacian(", after, depth);
    snprintf(tmp, sizeof tmp, "Sum_Reduction(%s,0)", text);
    kp_formula *f = NULL;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, tmp, NULL, 0, &f));
    size_t n = nodes(ctx, f);
    kp_formula_free(f);
    return n;
}

static void test_laplacian_of_one_component(void **state) {
    (void)state;
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    for (int depth = 1; depth <= 4; depth++) {
        size_t one = nested_laplacian_nodes(ctx, "Vi(0,1)", "Vi(0,1)", depth);
        size_t three = nested_laplacian_nodes(ctx, "Vi(0,3)", "Elem(Vi(0,3),0)", depth);
        printf("  %d nested Laplacians of Atan2(1e-3,Elem(x,0)): %zu nodes with x of dimension 3, %zu of dimension 1\n",
               depth, three, one);
        /* a few more: Extract(x,0,1), and from depth 3 one node where the two build equal terms in
         * different forms */
        assert_true(three <= one + 4);
    }
    kp_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_count_linear),
        cmocka_unit_test(test_print_matches_length),
        cmocka_unit_test(test_huge_text_is_cheap),
        cmocka_unit_test(test_count_nodes_errors),
        cmocka_unit_test(test_laplacian_of_one_component),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
