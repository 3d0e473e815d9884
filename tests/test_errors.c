/*
 * test_errors.c — bad input yields the documented status and a message, never
 * a crash.
 *
 * 1. Malformed formulas: each row gives the text, the expected status
 *    (KP_ERR_PARSE or KP_ERR_SHAPE) and the offending token as one or more
 *    acceptable markers; the test asserts the status, that *out is left
 *    untouched, and that the context message contains "col C" where C is the
 *    1-based column of a marker ("$" = one past the end, "$-1" = the last
 *    character; for a wrong number of arguments the function's name counts
 *    as the offending token). Integer arguments may be written as constant
 *    expressions that fold to integers (parse.c: "IntCst(3)", "1.0"), so only
 *    non-integral values are errors. Alias errors instead assert the message
 *    contains "alias".
 * 2. Bad arrays at exec time, NULL pointers, bad dtypes, K > M, huge shapes:
 *    the documented status, a non-empty message, and no crash (the suite also
 *    runs under ASan/UBSan).
 * 3. kp_status_string matches the KP_STATUS_LIST text for every status and is
 *    never NULL; *_free(NULL) are no-ops.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_test_util.h"

/* ================================================================ formulas */

static const char *const AL[] = {"x = Vi(3)", "y = Vj(3)", "a = Vi(2)", "s = Pm(1)", "b = Vj(1)"};
#define N_AL 5

typedef struct err_case {
    const char *text;
    kp_status status;
    const char *at[3]; /* markers of the offending token (any one may be named) */
} err_case;

static const err_case parse_cases[] = {
    /* syntax, unknown names, arity, axis, missing reduction -> KP_ERR_PARSE */
    {"Sum_Reduction(Exq(x), 1)", KP_ERR_PARSE, {"Exq"}},
    {"Sum_Reduction(x + z, 1)", KP_ERR_PARSE, {"z"}},
    {"Sum_Reduction(Exp(x), 1", KP_ERR_PARSE, {"$", "$-1", "(Exp"}},
    {"Sum_Reduction(Exp(x)), 1)", KP_ERR_PARSE, {"), 1)", ", 1)", "Sum"}},
    {"Sum_Reduction(Exp(x)*, 1)", KP_ERR_PARSE, {", 1)", "*"}},
    {"Sum_Reduction(x + , 1)", KP_ERR_PARSE, {", 1)", "+"}},
    {"Sum_Reduction(Exp(x, y), 1)", KP_ERR_PARSE, {"Exp", ", y", "y)"}},
    {"Sum_Reduction(Atan2(x), 1)", KP_ERR_PARSE, {"Atan2", "), 1)"}},
    {"Sum_Reduction(Exp(x), 2)", KP_ERR_PARSE, {"2)"}},
    {"Sum_Reduction(Exp(x), -1)", KP_ERR_PARSE, {"-1", "1)"}},
    {"Sum_Reduction(Exp(x), 0.5)", KP_ERR_PARSE, {"0.5"}},
    {"Sum_Reduction(Exp(x), axis)", KP_ERR_PARSE, {"axis"}},
    {"Exp(x)", KP_ERR_PARSE, {"Exp", "$"}},
    {"x + y", KP_ERR_PARSE, {"x", "$"}},
    {"Sum_Reduction(Exp(x))", KP_ERR_PARSE, {"$-1", "$", "Sum"}},
    {"", KP_ERR_PARSE, {"$"}},
    {"Sum_Reduction(Exp(x), 1) + x", KP_ERR_PARSE, {"+ x"}},
    {"Sum_Reduction(Exp(x) @ y, 1)", KP_ERR_PARSE, {"@"}},
    {"Sum_Reduction(Exp(x)[0], 1)", KP_ERR_PARSE, {"["}},
    {"Sum_Reduction(Pow(x, 1.5), 1)", KP_ERR_PARSE, {"1.5"}},
    {"Sum_Reduction(Pow(x, y), 1)", KP_ERR_PARSE, {"y)", "Pow"}},
    {"Foo_Reduction(x, 1)", KP_ERR_PARSE, {"Foo"}},
    {"sum_reduction(Exp(x), 1)", KP_ERR_PARSE, {"sum"}},
    {"Sum_Reduction(exp(x), 1)", KP_ERR_PARSE, {"exp"}},
    {"Sum_Reduction(x, 1, 2)", KP_ERR_PARSE, {", 2", "2)", "Sum"}},
    {"KMin_Reduction(SqDist(x,y), 1)", KP_ERR_PARSE, {"KMin", "$-1"}},
    {"KMin_Reduction(SqDist(x,y), 2.5, 1)", KP_ERR_PARSE, {"2.5"}},
    {"SumSoftMaxWeight_Reduction(-SqDist(x,y), 1)", KP_ERR_PARSE, {"SumSoftMax", "$-1"}},
    {"Sum_Reduction(Elem(x, 1.5), 1)", KP_ERR_PARSE, {"1.5"}},
    {"Sum_Reduction(IntCst(1.5)*x, 1)", KP_ERR_PARSE, {"1.5"}},
    {"Sum_Reduction(Zero(x), 1)", KP_ERR_PARSE, {"x)", "Zero"}},
    {"Sum_Reduction((x|y, 1)", KP_ERR_PARSE, {", 1)", "$", "(x|y"}},
    {"Sum_Reduction(x|y, 1)", KP_ERR_PARSE, {"|"}},
    {"Sum_Reduction(1.2.3*x, 1)", KP_ERR_PARSE, {"1.2.3", ".3"}},
    {"Sum_Reduction(Exp(), 1)", KP_ERR_PARSE, {"), 1)", "Exp"}},
    {"Sum_Reduction(Exp x, 1)", KP_ERR_PARSE, {"Exp", "x,"}},
    {"Sum_Reduction(x ** y, 1)", KP_ERR_PARSE, {"* y"}},
    {"Sum_Reduction(Exp(-SqDist(x,y)*s)*b 1)", KP_ERR_PARSE, {"1)"}},
    {"Sum_Reduction(Exp(x) y, 1)", KP_ERR_PARSE, {"y, 1)"}},
    {"Sum_Reduction(, 1)", KP_ERR_PARSE, {", 1)"}},
    {"Sum_Reduction(Exp(x), )", KP_ERR_PARSE, {"$-1"}},
    {"Sum_Reduction(Vi(x), 1)", KP_ERR_PARSE, {"x)", "Vi"}},
    {"Sum_Reduction(Extract(x, 1), 1)", KP_ERR_PARSE, {"Extract", "), 1)"}},
    {"Sum_Reduction(Round(x, 1, 2), 1)", KP_ERR_PARSE, {"Round", ", 2"}},
    /* dimension mismatches -> KP_ERR_SHAPE */
    {"Sum_Reduction(x + a, 1)", KP_ERR_SHAPE, {"+ a", "x + a"}},
    {"Sum_Reduction(x - y - a, 1)", KP_ERR_SHAPE, {"- a", "x - y"}},
    {"Min_Reduction(x - a, 0)", KP_ERR_SHAPE, {"- a", "x - a"}},
    {"Sum_Reduction(x < a, 1)", KP_ERR_SHAPE, {"< a", "x < a"}},
    {"Sum_Reduction((x|a), 1)", KP_ERR_SHAPE, {"(x|a)", "|a", "x|a"}},
    {"Sum_Reduction(Elem(x, 3), 1)", KP_ERR_SHAPE, {"Elem", "3)"}},
    {"Sum_Reduction(Extract(x, 2, 2), 1)", KP_ERR_SHAPE, {"Extract", "2, 2)"}},
    {"Sum_Reduction(MatVecMult(x, a), 1)", KP_ERR_SHAPE, {"MatVecMult"}},
    {"Sum_Reduction(VecMatMult(a, x), 1)", KP_ERR_SHAPE, {"VecMatMult"}},
    {"SumSoftMaxWeight_Reduction(x, 1, b)", KP_ERR_SHAPE, {"SumSoftMax", "x,"}},
    {"Sum_Reduction(SqDist(x, a), 1)", KP_ERR_SHAPE, {"SqDist"}},
    {"Sum_Reduction(WeightedSqNorm(a, x), 1)", KP_ERR_SHAPE, {"WeightedSqNorm"}},
    {"Sum_Reduction(WeightedSqDist(a, x, y), 1)", KP_ERR_SHAPE, {"WeightedSqDist"}},
    {"Sum_Reduction(IfElse(x, a, x), 1)", KP_ERR_SHAPE, {"IfElse"}},
    {"Sum_Reduction(Clamp(x, a, s), 1)", KP_ERR_SHAPE, {"Clamp"}},
    {"Sum_Reduction(Atan2(x, a), 1)", KP_ERR_SHAPE, {"Atan2"}},
    {"Sum_Reduction(Powf(x, a), 1)", KP_ERR_SHAPE, {"Powf"}},
    {"Sum_Reduction(OneHot(x, 3), 1)", KP_ERR_SHAPE, {"OneHot"}},
    {"Sum_Reduction(TensorProd(x, y) + x, 1)", KP_ERR_SHAPE, {"+ x", "TensorProd"}},
    {"Sum_Reduction(Concat(x, a) * y, 1)", KP_ERR_SHAPE, {"* y", "Concat"}},
    {"KMin_Reduction(x - a, 2, 1)", KP_ERR_SHAPE, {"- a", "x - a"}},
    /* a position used with another dim / category than its alias (x is Vi(0,3)) */
    {"Sum_Reduction(Vi(0,2) * y, 1)", KP_ERR_SHAPE, {"Vi(0,2)"}},
    {"Sum_Reduction(Vj(0,3) + y, 1)", KP_ERR_SHAPE, {"Vj(0,3)"}},
    {"Sum_Reduction(Vi(7,2) + Vi(7,3), 1)", KP_ERR_SHAPE, {"Vi(7,3)", "+ Vi"}},
    /* KeOps' Var(position, dimension, category) */
    {"Sum_Reduction(Var(5,3,3) * y, 1)", KP_ERR_PARSE, {"3) *", "Var"}},
    {"Sum_Reduction(Var(5,3) * y, 1)", KP_ERR_PARSE, {"Var", "(5"}},
    {"Sum_Reduction(Var(0,3,1) + y, 1)", KP_ERR_SHAPE, {"Var(0", "+ y"}},
    /* KeOps' TensorDot / Kron: tuples of integers after two formulas (x, y are 3-D) */
    {"Sum_Reduction(TensorDot(x, y, (2,2), (3,), (1,), (0,)), 1)", KP_ERR_SHAPE, {"y, (", "TensorDot"}},
    {"Sum_Reduction(TensorDot(x, y, (3,), (3,), (0,), (0,), (1,)), 1)", KP_ERR_SHAPE, {"y, (", "TensorDot"}},
    {"Sum_Reduction(TensorDot(x, y, (3,), (3,), (0,)), 1)", KP_ERR_PARSE, {"TensorDot"}},
    {"Sum_Reduction(TensorDot(x, y, (3,), (3,), (0.5,), (0,)), 1)", KP_ERR_PARSE, {"0.5"}},
    {"Sum_Reduction(TensorDot(x, y, (3,), (3,), (0,) (0,)), 1)", KP_ERR_PARSE, {"(0,))"}},
    {"Sum_Reduction(Kron(x, y, (3,)), 1)", KP_ERR_PARSE, {"Kron"}},
    {"Sum_Reduction(Kron(x, y, (3,), (1,3)), 1)", KP_ERR_SHAPE, {"y, (", "Kron"}},
};
#define N_PARSE (sizeof(parse_cases) / sizeof(parse_cases[0]))

/* 1-based column of a marker in text; 0 if absent. */
static int marker_col(const char *text, const char *m) {
    size_t len = strlen(text);
    if (strcmp(m, "$") == 0) return (int)len + 1;
    if (strcmp(m, "$-1") == 0) return (int)len;
    const char *p = strstr(text, m);
    return p ? (int)(p - text) + 1 : 0;
}

/* Non-zero if msg contains "col C" (C not followed by another digit). */
static int msg_has_col(const char *msg, int col) {
    for (const char *p = strstr(msg, "col "); p; p = strstr(p + 1, "col ")) {
        const char *q = p + 4;
        if (!isdigit((unsigned char)*q)) continue;
        long v = strtol(q, NULL, 10);
        if (v == col) return 1;
    }
    return 0;
}

static int contains_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t k = 0;
        while (k < n && hay[k] && tolower((unsigned char)hay[k]) == tolower((unsigned char)needle[k]))
            k++;
        if (k == n) return 1;
    }
    return 0;
}

static int dummy_target;

/* See the file comment, part 1. Reports every failing row, then fails. */
static void test_malformed_formulas(void **s) {
    (void)s;
    kp_context *ctx = NULL;
    size_t bad = 0;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    assert_true(N_PARSE >= 45);
    for (size_t k = 0; k < N_PARSE; k++) {
        const err_case *c = &parse_cases[k];
        kp_formula *f = (kp_formula *)(void *)&dummy_target;
        kp_status st = kp_formula_parse(ctx, c->text, AL, N_AL, &f);
        const char *msg = kp_context_message(ctx);
        int ok_col = 0;
        char cols[64] = "";
        for (int m = 0; m < 3 && c->at[m]; m++) {
            int col = marker_col(c->text, c->at[m]);
            char tmp[16];
            snprintf(tmp, sizeof tmp, "%s%d", m ? "/" : "", col);
            strncat(cols, tmp, sizeof cols - strlen(cols) - 1);
            if (col > 0 && msg && msg_has_col(msg, col)) ok_col = 1;
        }
        if (st != c->status || !ok_col || f != (kp_formula *)(void *)&dummy_target) {
            fprintf(stderr, "  [%s] status %d (want %d), message \"%s\" (want col %s)%s\n",
                    c->text, (int)st, (int)c->status, msg ? msg : "(null)", cols,
                    f != (kp_formula *)(void *)&dummy_target ? ", *out was written" : "");
            bad++;
            if (st == KP_OK && f != (kp_formula *)(void *)&dummy_target) kp_formula_free(f);
        }
    }
    kp_context_free(ctx);
    if (bad) fprintf(stderr, "  %zu of %zu malformed formulas misreported\n", bad, N_PARSE);
    assert_int_equal(bad, 0);
}

typedef struct alias_case {
    const char *aliases[2];
    size_t n;
    kp_status status, alt_status;
} alias_case;

/* Bad alias strings (KP_ERR_PARSE) and conflicting alias positions or dims
 * (KP_ERR_SHAPE; a repeated name may be either): asserts the status and that
 * the message names the alias (contains "alias"). The formula is valid. */
static void test_bad_aliases(void **s) {
    (void)s;
    static const alias_case cases[] = {
        {{"x = Vk(3)", "y = Vj(3)"}, 2, KP_ERR_PARSE, KP_ERR_PARSE},
        {{"x = Vi(3", "y = Vj(3)"}, 2, KP_ERR_PARSE, KP_ERR_PARSE},
        {{"x Vi(3)", "y = Vj(3)"}, 2, KP_ERR_PARSE, KP_ERR_PARSE},
        {{"= Vi(3)", "y = Vj(3)"}, 2, KP_ERR_PARSE, KP_ERR_PARSE},
        {{"x = Vi(3.5)", "y = Vj(3)"}, 2, KP_ERR_PARSE, KP_ERR_PARSE},
        {{"3x = Vi(3)", "y = Vj(3)"}, 2, KP_ERR_PARSE, KP_ERR_PARSE},
        {{"x = Vi(1,2,3)", "y = Vj(3)"}, 2, KP_ERR_PARSE, KP_ERR_PARSE},
        {{"x = Vi()", "y = Vj(3)"}, 2, KP_ERR_PARSE, KP_ERR_PARSE},
        {{"x = Vi(3) junk", "y = Vj(3)"}, 2, KP_ERR_PARSE, KP_ERR_PARSE},
        {{"x = Vi(3)", ""}, 2, KP_ERR_PARSE, KP_ERR_PARSE},
        {{"x = Vi(3)", "y = Vj(x)"}, 2, KP_ERR_PARSE, KP_ERR_PARSE},
        {{"x = Vi(0,3)", "y = Vj(0,3)"}, 2, KP_ERR_SHAPE, KP_ERR_SHAPE},
        {{"x = Vi(0,3)", "y = Vi(0,2)"}, 2, KP_ERR_SHAPE, KP_ERR_SHAPE},
        {{"x = Vi(3)", "x = Vj(3)"}, 2, KP_ERR_PARSE, KP_ERR_SHAPE},
    };
    kp_context *ctx = NULL;
    size_t bad = 0;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        kp_formula *f = NULL;
        kp_status st = kp_formula_parse(ctx, "Sum_Reduction(x*x, 1)", cases[k].aliases,
                                        cases[k].n, &f);
        const char *msg = kp_context_message(ctx);
        if ((st != cases[k].status && st != cases[k].alt_status) || !msg ||
            !contains_ci(msg, "alias")) {
            fprintf(stderr, "  [aliases \"%s\", \"%s\"] status %d (want %d), message \"%s\"\n",
                    cases[k].aliases[0], cases[k].aliases[1], (int)st, (int)cases[k].status,
                    msg ? msg : "(null)");
            bad++;
        }
        if (st == KP_OK) kp_formula_free(f);
    }
    kp_context_free(ctx);
    assert_int_equal(bad, 0);
}

/* ================================================================ exec-time */

enum { EN = 10, EM = 12 };

typedef struct exec_fixture {
    kp_context *ctx;
    kp_formula *f;
    kp_plan *plan;
    float x[EN * 3], y[EM * 3], sp, b[EM], out[EN], x3[3 * EN * 3], out2[2 * EN];
    kp_array args[4], o;
} exec_fixture;

static void fixture_arrays(exec_fixture *e) {
    e->args[0] = kp_array_2d(e->x, KP_FLOAT32, EN, 3);
    e->args[1] = kp_array_2d(e->y, KP_FLOAT32, EM, 3);
    e->args[2] = kp_array_1d(&e->sp, KP_FLOAT32, 1);
    e->args[3] = kp_array_2d(e->b, KP_FLOAT32, EM, 1);
    e->o = kp_array_2d(e->out, KP_FLOAT32, EN, 1);
}

/* Asserts st is one of want/alt and the plan's context has a message. */
#define EXPECT_ST(e, st, want, alt, what)                                                      \
    do {                                                                                      \
        kp_status st_ = (st);                                                                 \
        const char *m_ = kp_context_message((e)->ctx);                                        \
        if ((st_ != (want) && st_ != (alt)) || !m_ || !m_[0]) {                               \
            fprintf(stderr, "  [%s] status %d (want %d or %d), message \"%s\"\n", what,       \
                    (int)st_, (int)(want), (int)(alt), m_ ? m_ : "(null)");                   \
            bad++;                                                                            \
        }                                                                                     \
    } while (0)

/* Bad arrays passed to kp_plan_exec of a float32 Gaussian-kernel plan. Each
 * mutation of an otherwise valid call must return its documented status with
 * a non-empty message; the unmodified call must succeed. */
static void test_exec_bad_arrays(void **s) {
    (void)s;
    exec_fixture E, *e = &E;
    memset(e, 0, sizeof E);
    size_t bad = 0;
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(1)"};
    assert_int_equal(kp_context_new(&e->ctx), KP_OK);
    KPT_ASSERT_OK(e->ctx, kp_formula_parse(e->ctx, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)", al,
                                           4, &e->f));
    KPT_ASSERT_OK(e->ctx, kp_plan_new(e->ctx, e->f, KP_FLOAT32, &e->plan));
    fixture_arrays(e);
    KPT_ASSERT_OK(e->ctx, kp_plan_exec(e->plan, e->args, 4, &e->o, NULL, NULL));

#define MUTATE(stmt, want, alt, what)                                                          \
    do {                                                                                      \
        fixture_arrays(e);                                                                    \
        stmt;                                                                                 \
        EXPECT_ST(e, kp_plan_exec(e->plan, e->args, 4, &e->o, NULL, NULL), want, alt, what);  \
    } while (0)

    MUTATE(e->args[0].data = NULL, KP_ERR_NULL, KP_ERR_NULL, "NULL data");
    MUTATE(e->o.data = NULL, KP_ERR_NULL, KP_ERR_NULL, "NULL out data");
    MUTATE(e->args[1].dtype = KP_FLOAT64, KP_ERR_DTYPE, KP_ERR_DTYPE, "float64 arg to float32 plan");
    MUTATE(e->args[0].dtype = KP_INT64, KP_ERR_DTYPE, KP_ERR_DTYPE, "int64 arg");
    MUTATE(e->o.dtype = KP_FLOAT64, KP_ERR_DTYPE, KP_ERR_DTYPE, "float64 out");
    MUTATE(e->args[0].shape[1] = 2, KP_ERR_SHAPE, KP_ERR_SHAPE, "x dim 2 instead of 3");
    MUTATE(e->args[2].shape[0] = 2, KP_ERR_SHAPE, KP_ERR_SHAPE, "param dim 2 instead of 1");
    MUTATE(e->args[3].shape[0] = EM - 1, KP_ERR_SHAPE, KP_ERR_SHAPE, "M of b != M of y");
    MUTATE(e->o.shape[0] = EN - 1, KP_ERR_SHAPE, KP_ERR_SHAPE, "out rows != N");
    MUTATE(e->o.shape[1] = 2, KP_ERR_SHAPE, KP_ERR_SHAPE, "out dim 2 instead of 1");
    MUTATE(e->o.ndim = 1, KP_ERR_SHAPE, KP_ERR_SHAPE, "out ndim 1");
    MUTATE(e->args[0].ndim = 0, KP_ERR_SHAPE, KP_ERR_SHAPE, "ndim 0");
    MUTATE(e->args[0].ndim = KP_MAX_DIMS + 1, KP_ERR_SHAPE, KP_ERR_SHAPE, "ndim > KP_MAX_DIMS");
    MUTATE(e->args[0].ndim = -3, KP_ERR_SHAPE, KP_ERR_SHAPE, "negative ndim");
    MUTATE(e->args[0].shape[0] = -1, KP_ERR_SHAPE, KP_ERR_SHAPE, "negative rows");
    MUTATE(e->args[1].device = (kp_device)7, KP_ERR_UNSUPPORTED, KP_ERR_ARGUMENT, "unknown device");
    MUTATE(e->args[0].dtype = (kp_dtype)42, KP_ERR_DTYPE, KP_ERR_DTYPE, "dtype 42");
    /* batch of out (2, N, 1) vs x batched (3, N, 3) */
    {
        int64_t sx[3] = {3, EN, 3}, so[3] = {2, EN, 1};
        MUTATE((e->args[0] = kp_array_nd(e->x3, KP_FLOAT32, 3, sx),
                e->o = kp_array_nd(e->out2, KP_FLOAT32, 3, so)),
               KP_ERR_SHAPE, KP_ERR_SHAPE, "batch 3 vs out batch 2");
    }

    /* n_args wrong, NULL arrays */
    fixture_arrays(e);
    EXPECT_ST(e, kp_plan_exec(e->plan, e->args, 3, &e->o, NULL, NULL), KP_ERR_ARGUMENT,
              KP_ERR_SHAPE, "n_args 3 instead of 4");
    EXPECT_ST(e, kp_plan_exec(e->plan, e->args, 5, &e->o, NULL, NULL), KP_ERR_ARGUMENT,
              KP_ERR_SHAPE, "n_args 5 instead of 4");
    EXPECT_ST(e, kp_plan_exec(e->plan, NULL, 4, &e->o, NULL, NULL), KP_ERR_NULL, KP_ERR_NULL,
              "args NULL");
    EXPECT_ST(e, kp_plan_exec(e->plan, e->args, 4, NULL, NULL, NULL), KP_ERR_NULL,
              KP_ERR_ARGUMENT, "out NULL for Sum");
    kp_exec_options bad_opt = {.num_threads = -1, .nx = -1, .ny = -1};
    EXPECT_ST(e, kp_plan_exec(e->plan, e->args, 4, &e->o, NULL, &bad_opt), KP_ERR_ARGUMENT,
              KP_ERR_ARGUMENT, "num_threads -1");
    /* the plan still works after all that */
    fixture_arrays(e);
    KPT_ASSERT_OK(e->ctx, kp_plan_exec(e->plan, e->args, 4, &e->o, NULL, NULL));
    kp_plan_free(e->plan);
    kp_formula_free(e->f);
    kp_context_free(e->ctx);
    assert_int_equal(bad, 0);
}

/* A second Vi argument with another N, index outputs missing or wrong, K
 * larger than the reduced size, int64 / unknown plan dtypes. */
static void test_exec_bad_index_and_k(void **s) {
    (void)s;
    exec_fixture E, *e = &E;
    memset(e, 0, sizeof E);
    size_t bad = 0;
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "z = Vi(1)"};
    assert_int_equal(kp_context_new(&e->ctx), KP_OK);
    kp_formula *f = NULL;
    kp_plan *p = NULL;
    float z[EN + 1];
    memset(z, 0, sizeof z);
    int64_t idx[EM * 5];
    fixture_arrays(e);

    /* two Vi arguments with different N */
    KPT_ASSERT_OK(e->ctx, kp_formula_parse(e->ctx, "Sum_Reduction(x*z*y, 1)", al, 3, &f));
    KPT_ASSERT_OK(e->ctx, kp_plan_new(e->ctx, f, KP_FLOAT32, &p));
    kp_array a3[3] = {e->args[0], e->args[1], kp_array_2d(z, KP_FLOAT32, EN + 1, 1)};
    float o3buf[EN * 3];
    kp_array o3 = kp_array_2d(o3buf, KP_FLOAT32, EN, 3);
    EXPECT_ST(e, kp_plan_exec(p, a3, 3, &o3, NULL, NULL), KP_ERR_SHAPE, KP_ERR_SHAPE,
              "x has N=10, z has N=11");
    a3[2].shape[0] = EN;
    KPT_ASSERT_OK(e->ctx, kp_plan_exec(p, a3, 3, &o3, NULL, NULL));
    kp_plan_free(p);
    kp_formula_free(f);

    /* ArgMin: out may be NULL, out_index may not */
    KPT_ASSERT_OK(e->ctx, kp_formula_parse(e->ctx, "ArgMin_Reduction(SqDist(x,y), 1)", al, 2, &f));
    KPT_ASSERT_OK(e->ctx, kp_plan_new(e->ctx, f, KP_FLOAT32, &p));
    kp_array oi = kp_array_2d(idx, KP_INT64, EN, 1);
    KPT_ASSERT_OK(e->ctx, kp_plan_exec(p, e->args, 2, NULL, &oi, NULL));
    EXPECT_ST(e, kp_plan_exec(p, e->args, 2, NULL, NULL, NULL), KP_ERR_NULL, KP_ERR_ARGUMENT,
              "ArgMin without out_index");
    oi.dtype = KP_FLOAT32;
    EXPECT_ST(e, kp_plan_exec(p, e->args, 2, NULL, &oi, NULL), KP_ERR_DTYPE, KP_ERR_DTYPE,
              "float32 out_index");
    oi = kp_array_2d(idx, KP_INT64, EN + 1, 1);
    EXPECT_ST(e, kp_plan_exec(p, e->args, 2, NULL, &oi, NULL), KP_ERR_SHAPE, KP_ERR_SHAPE,
              "out_index rows N+1");
    oi = kp_array_2d(idx, KP_INT64, EN, 2);
    EXPECT_ST(e, kp_plan_exec(p, e->args, 2, NULL, &oi, NULL), KP_ERR_SHAPE, KP_ERR_SHAPE,
              "out_index dim 2");
    kp_plan_free(p);
    kp_formula_free(f);

    /* Min_ArgMin needs both outputs */
    KPT_ASSERT_OK(e->ctx,
                  kp_formula_parse(e->ctx, "Min_ArgMin_Reduction(SqDist(x,y), 1)", al, 2, &f));
    KPT_ASSERT_OK(e->ctx, kp_plan_new(e->ctx, f, KP_FLOAT32, &p));
    oi = kp_array_2d(idx, KP_INT64, EN, 1);
    EXPECT_ST(e, kp_plan_exec(p, e->args, 2, NULL, &oi, NULL), KP_ERR_NULL, KP_ERR_ARGUMENT,
              "Min_ArgMin without out");
    EXPECT_ST(e, kp_plan_exec(p, e->args, 2, &e->o, NULL, NULL), KP_ERR_NULL, KP_ERR_ARGUMENT,
              "Min_ArgMin without out_index");
    kp_plan_free(p);
    kp_formula_free(f);

    /* K > number of reduced points: axis 1 with M = 4 and axis 0 with N = 4 */
    for (int axis = 0; axis < 2; axis++) {
        char text[96];
        snprintf(text, sizeof text, "KMin_ArgKMin_Reduction(SqDist(x,y), 5, %d)", axis);
        KPT_ASSERT_OK(e->ctx, kp_formula_parse(e->ctx, text, al, 2, &f));
        KPT_ASSERT_OK(e->ctx, kp_plan_new(e->ctx, f, KP_FLOAT32, &p));
        kp_array a2[2] = {kp_array_2d(e->x, KP_FLOAT32, axis ? EN : 4, 3),
                          kp_array_2d(e->y, KP_FLOAT32, axis ? 4 : EM, 3)};
        int64_t rows = axis ? EN : EM;
        float ov[EM * 5];
        kp_array o = kp_array_2d(ov, KP_FLOAT32, rows, 5);
        oi = kp_array_2d(idx, KP_INT64, rows, 5);
        EXPECT_ST(e, kp_plan_exec(p, a2, 2, &o, &oi, NULL), KP_ERR_ARGUMENT, KP_ERR_ARGUMENT,
                  text);
        kp_plan_free(p);
        kp_formula_free(f);
    }

    /* plan dtypes: int64 and garbage are KP_ERR_DTYPE, also through kp_reduce */
    KPT_ASSERT_OK(e->ctx, kp_formula_parse(e->ctx, "Sum_Reduction(x*y, 1)", al, 2, &f));
    p = NULL;
    EXPECT_ST(e, kp_plan_new(e->ctx, f, KP_INT64, &p), KP_ERR_DTYPE, KP_ERR_DTYPE, "int64 plan");
    assert_null(p);
    EXPECT_ST(e, kp_plan_new(e->ctx, f, (kp_dtype)9, &p), KP_ERR_DTYPE, KP_ERR_DTYPE,
              "dtype 9 plan");
    kp_formula_free(f);
    float o2buf[EN * 3];
    kp_array o2 = kp_array_2d(o2buf, KP_FLOAT32, EN, 3);
    EXPECT_ST(e, kp_reduce(e->ctx, "Sum_Reduction(x*y, 1)", al, 2, KP_INT64, e->args, 2, &o2, NULL),
              KP_ERR_DTYPE, KP_ERR_DTYPE, "kp_reduce int64");
    kp_context_free(e->ctx);
    assert_int_equal(bad, 0);
}

/* Shapes whose element or byte count overflows int64: KP_ERR_TOO_LARGE or
 * KP_ERR_SHAPE, never a crash and never a read of the (tiny) buffers beyond
 * their end. */
static void test_exec_huge_shapes(void **s) {
    (void)s;
    exec_fixture E, *e = &E;
    memset(e, 0, sizeof E);
    size_t bad = 0;
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(1)"};
    assert_int_equal(kp_context_new(&e->ctx), KP_OK);
    KPT_ASSERT_OK(e->ctx, kp_formula_parse(e->ctx, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)", al,
                                           4, &e->f));
    KPT_ASSERT_OK(e->ctx, kp_plan_new(e->ctx, e->f, KP_FLOAT32, &e->plan));
    const int64_t H = INT64_C(1) << 62;
    /* N = 2^62 rows of x and out: 2^62 * 3 * 4 bytes overflows */
    MUTATE((e->args[0].shape[0] = H, e->args[0].strides[0] = 3, e->o.shape[0] = H),
           KP_ERR_TOO_LARGE, KP_ERR_SHAPE, "N = 2^62");
    /* M = 2^62 for y and b */
    MUTATE((e->args[1].shape[0] = H, e->args[3].shape[0] = H), KP_ERR_TOO_LARGE, KP_ERR_SHAPE,
           "M = 2^62");
    /* dim overflow of an argument: INT64_MAX columns */
    MUTATE(e->args[3].shape[1] = INT64_MAX, KP_ERR_SHAPE, KP_ERR_TOO_LARGE, "b dim INT64_MAX");
    /* batch product overflows: (2^40, 2^40, N, ...) described by hand with
     * broadcast (0) batch strides, so no stride computation overflows here */
    MUTATE((e->o.ndim = 4, e->o.shape[0] = e->o.shape[1] = INT64_C(1) << 40, e->o.shape[2] = EN,
            e->o.shape[3] = 1, e->o.strides[0] = e->o.strides[1] = 0, e->o.strides[2] = 1,
            e->o.strides[3] = 1, e->args[0].ndim = 4,
            e->args[0].shape[0] = e->args[0].shape[1] = INT64_C(1) << 40,
            e->args[0].shape[2] = EN, e->args[0].shape[3] = 3,
            e->args[0].strides[0] = e->args[0].strides[1] = 0, e->args[0].strides[2] = 3,
            e->args[0].strides[3] = 1),
           KP_ERR_TOO_LARGE, KP_ERR_SHAPE, "batch 2^80");
    /* the farthest element offset overflows: stride 2^62 over 10 rows */
    MUTATE(e->args[0].strides[0] = H, KP_ERR_TOO_LARGE, KP_ERR_SHAPE, "row stride 2^62");
    kp_plan_free(e->plan);
    kp_formula_free(e->f);
    kp_context_free(e->ctx);
    assert_int_equal(bad, 0);
}

/* kp_array_nd on a shape whose element count overflows int64 (2^40 x 2^40 x
 * N x 3) must not invoke undefined behaviour (UBSan aborts on signed
 * overflow) and the resulting descriptor must be rejected by kp_plan_exec with
 * KP_ERR_TOO_LARGE or KP_ERR_SHAPE. */
static void test_array_nd_overflow(void **s) {
    (void)s;
    exec_fixture E, *e = &E;
    memset(e, 0, sizeof E);
    size_t bad = 0;
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(1)"};
    assert_int_equal(kp_context_new(&e->ctx), KP_OK);
    KPT_ASSERT_OK(e->ctx, kp_formula_parse(e->ctx, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)", al,
                                           4, &e->f));
    KPT_ASSERT_OK(e->ctx, kp_plan_new(e->ctx, e->f, KP_FLOAT32, &e->plan));
    int64_t so[4] = {INT64_C(1) << 40, INT64_C(1) << 40, EN, 1};
    int64_t sx[4] = {INT64_C(1) << 40, INT64_C(1) << 40, EN, 3};
    MUTATE((e->o = kp_array_nd(e->out, KP_FLOAT32, 4, so),
            e->args[0] = kp_array_nd(e->x, KP_FLOAT32, 4, sx)),
           KP_ERR_TOO_LARGE, KP_ERR_SHAPE, "kp_array_nd batch 2^80");
    kp_plan_free(e->plan);
    kp_formula_free(e->f);
    kp_context_free(e->ctx);
    assert_int_equal(bad, 0);
}

/* NULL pointers everywhere give KP_ERR_NULL (with a message when a context is
 * at hand); invalid settings give KP_ERR_ARGUMENT; *_free(NULL) are no-ops;
 * a plan outlives its formula (kp.h: "f may be freed while the plan lives"). */
static void test_null_pointers(void **s) {
    (void)s;
    exec_fixture E, *e = &E;
    memset(e, 0, sizeof E);
    size_t bad = 0;
    const char *al[] = {"x = Vi(3)", "y = Vj(3)"};
    const char *al_null[] = {"x = Vi(3)", NULL};
    kp_formula *f = NULL;
    kp_plan *p = NULL;

    assert_int_equal(kp_context_new(NULL), KP_ERR_NULL);
    assert_int_equal(kp_context_new(&e->ctx), KP_OK);
    assert_non_null(kp_context_message(e->ctx));
    fixture_arrays(e);
    float obuf[EN * 3];
    kp_array o = kp_array_2d(obuf, KP_FLOAT32, EN, 3);

    assert_int_equal(kp_formula_parse(NULL, "Sum_Reduction(x*y, 1)", al, 2, &f), KP_ERR_NULL);
    EXPECT_ST(e, kp_formula_parse(e->ctx, NULL, al, 2, &f), KP_ERR_NULL, KP_ERR_NULL, "text NULL");
    EXPECT_ST(e, kp_formula_parse(e->ctx, "Sum_Reduction(x*y, 1)", al, 2, NULL), KP_ERR_NULL,
              KP_ERR_NULL, "parse out NULL");
    EXPECT_ST(e, kp_formula_parse(e->ctx, "Sum_Reduction(x*y, 1)", NULL, 2, &f), KP_ERR_NULL,
              KP_ERR_NULL, "aliases NULL, n_aliases 2");
    EXPECT_ST(e, kp_formula_parse(e->ctx, "Sum_Reduction(x*x, 1)", al_null, 2, &f), KP_ERR_NULL,
              KP_ERR_NULL, "aliases[1] NULL");
    KPT_ASSERT_OK(e->ctx, kp_formula_parse(e->ctx, "Sum_Reduction(x*y, 1)", al, 2, &f));
    assert_int_equal(kp_plan_new(NULL, f, KP_FLOAT32, &p), KP_ERR_NULL);
    EXPECT_ST(e, kp_plan_new(e->ctx, NULL, KP_FLOAT32, &p), KP_ERR_NULL, KP_ERR_NULL,
              "plan_new f NULL");
    EXPECT_ST(e, kp_plan_new(e->ctx, f, KP_FLOAT32, NULL), KP_ERR_NULL, KP_ERR_NULL,
              "plan_new out NULL");
    assert_int_equal(kp_plan_exec(NULL, e->args, 2, &o, NULL, NULL), KP_ERR_NULL);
    assert_int_equal(kp_reduce(NULL, "Sum_Reduction(x*y, 1)", al, 2, KP_FLOAT32, e->args, 2, &o,
                               NULL),
                     KP_ERR_NULL);
    EXPECT_ST(e, kp_reduce(e->ctx, NULL, al, 2, KP_FLOAT32, e->args, 2, &o, NULL), KP_ERR_NULL,
              KP_ERR_NULL, "kp_reduce text NULL");
    EXPECT_ST(e, kp_reduce(e->ctx, "Sum_Reduction(x*y, 1)", al, 2, KP_FLOAT32, NULL, 2, &o, NULL),
              KP_ERR_NULL, KP_ERR_NULL, "kp_reduce args NULL");
    EXPECT_ST(e, kp_reduce(e->ctx, "Sum_Reduction(x*y, 1)", al, 2, KP_FLOAT32, e->args, 2, NULL,
                           NULL),
              KP_ERR_NULL, KP_ERR_ARGUMENT, "kp_reduce out NULL");
    assert_int_equal(kp_context_set_num_threads(NULL, 1), KP_ERR_NULL);
    assert_int_equal(kp_context_set_sum_scheme(NULL, KP_SUM_BLOCK), KP_ERR_NULL);
    EXPECT_ST(e, kp_context_set_num_threads(e->ctx, -1), KP_ERR_ARGUMENT, KP_ERR_ARGUMENT,
              "num_threads -1");
    EXPECT_ST(e, kp_context_set_sum_scheme(e->ctx, (kp_sum_scheme)9), KP_ERR_ARGUMENT,
              KP_ERR_ARGUMENT, "sum scheme 9");
    assert_int_equal(kp_context_set_num_threads(e->ctx, 0), KP_OK);
    assert_int_equal(kp_context_set_sum_scheme(e->ctx, KP_SUM_KAHAN), KP_OK);
    assert_int_equal(kp_context_set_math_mode(NULL, KP_MATH_FAST), KP_ERR_NULL);
    EXPECT_ST(e, kp_context_set_math_mode(e->ctx, (kp_math_mode)2), KP_ERR_ARGUMENT, KP_ERR_ARGUMENT,
              "math mode 2");
    EXPECT_ST(e, kp_context_set_math_mode(e->ctx, (kp_math_mode)-1), KP_ERR_ARGUMENT, KP_ERR_ARGUMENT,
              "math mode -1");
    assert_int_equal(kp_context_set_math_mode(e->ctx, KP_MATH_FAST), KP_OK);
    assert_int_equal(kp_context_set_math_mode(e->ctx, KP_MATH_ACCURATE), KP_OK);
    kp_var_category cat;
    int dim;
    assert_int_equal(kp_formula_arg(NULL, 0, &cat, &dim), KP_ERR_NULL);

    /* *_free(NULL) are no-ops */
    kp_plan_free(NULL);
    kp_formula_free(NULL);
    kp_context_free(NULL);

    /* the plan outlives its formula */
    KPT_ASSERT_OK(e->ctx, kp_plan_new(e->ctx, f, KP_FLOAT32, &p));
    kp_formula_free(f);
    for (int k = 0; k < EN * 3; k++) e->x[k] = 1.0f;
    for (int k = 0; k < EM * 3; k++) e->y[k] = 0.5f;
    KPT_ASSERT_OK(e->ctx, kp_plan_exec(p, e->args, 2, &o, NULL, NULL));
    /* each entry is sum_j 1 * 0.5 over M = 12 points: 6 */
    for (int k = 0; k < EN * 3; k++) assert_true(obuf[k] == 6.0f);
    kp_plan_free(p);
    kp_context_free(e->ctx);
    assert_int_equal(bad, 0);
}

/* kp_status_string returns the KP_STATUS_LIST text for every status and a
 * non-NULL, non-empty string for values outside the enum. */
static void test_status_strings(void **s) {
    (void)s;
    struct {
        kp_status st;
        const char *text;
    } expect[] = {
#define X_(name, value, text) {name, text},
        KP_STATUS_LIST(X_)
#undef X_
    };
    for (size_t k = 0; k < sizeof expect / sizeof expect[0]; k++) {
        const char *got = kp_status_string(expect[k].st);
        assert_non_null(got);
        assert_string_equal(got, expect[k].text);
    }
    assert_int_equal(sizeof expect / sizeof expect[0], 11);
    const char *u = kp_status_string((kp_status)99);
    assert_non_null(u);
    assert_true(u[0] != '\0');
    u = kp_status_string((kp_status)-1);
    assert_non_null(u);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_malformed_formulas),
        cmocka_unit_test(test_bad_aliases),
        cmocka_unit_test(test_exec_bad_arrays),
        cmocka_unit_test(test_exec_bad_index_and_k),
        cmocka_unit_test(test_exec_huge_shapes),
        cmocka_unit_test(test_null_pointers),
        /* last: under UBSan a failure here aborts the process */
        cmocka_unit_test(test_array_nd_overflow),
    };
    return cmocka_run_group_tests_name("errors", tests, NULL, NULL);
}
