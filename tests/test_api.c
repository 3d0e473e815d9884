/*
 * test_api.c — what bindings read from kp.h instead of copying it:
 * kp_constant (values and struct layout equal to the header's), kp_status_name, kp_dtype_name,
 * the reduction table queries (names parse back, flags agree with the
 * formula's outputs), kp_exec_options versions (struct_size 0, the current
 * size, a larger size with zero or non-zero tail), and kp_plan_output_shape
 * against the shapes kp_plan_exec accepts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_test_util.h"

static int64_t constant(const char *name) {
    int64_t v = -12345;
    assert_int_equal(kp_constant(name, &v), KP_OK);
    return v;
}

static void test_constants(void **state) {
    (void)state;
    assert_int_equal(constant("KP_MAX_DIMS"), KP_MAX_DIMS);
    assert_int_equal(constant("KP_MAX_JOINT"), KP_MAX_JOINT);
    assert_int_equal(constant("KP_MAX_ARGS"), KP_MAX_ARGS);
    assert_int_equal(constant("KP_FLOAT64"), KP_FLOAT64);
    assert_int_equal(constant("KP_ENGINE_AUTO"), KP_ENGINE_AUTO);
    assert_int_equal(constant("KP_ERR_INTERNAL"), KP_ERR_INTERNAL);
    assert_int_equal(constant("sizeof(kp_array)"), (int64_t)sizeof(kp_array));
    assert_int_equal(constant("offsetof(kp_array,shape)"), (int64_t)offsetof(kp_array, shape));
    assert_int_equal(constant("offsetof(kp_array,device_id)"), (int64_t)offsetof(kp_array, device_id));
    assert_int_equal(constant("sizeof(kp_exec_options)"), (int64_t)sizeof(kp_exec_options));
    assert_int_equal(constant("offsetof(kp_exec_options,struct_size)"), (int64_t)offsetof(kp_exec_options, struct_size));
    int64_t v = 7;
    assert_int_equal(kp_constant("KP_NO_SUCH_THING", &v), KP_ERR_ARGUMENT);
    assert_int_equal(v, 7);
    assert_int_equal(kp_constant(NULL, &v), KP_ERR_NULL);
    assert_int_equal(kp_constant("KP_MAX_DIMS", NULL), KP_ERR_NULL);
}

static void test_status_names(void **state) {
    (void)state;
#define CHECK_NAME(name, value, text) assert_string_equal(kp_status_name(name), #name);
    KP_STATUS_LIST(CHECK_NAME)
#undef CHECK_NAME
    assert_null(kp_status_name((kp_status)1000));
    const char *const dtypes[] = {"float32", "float64", "int64", "float16", "complex64", "complex128"};
    for (int d = KP_FLOAT32; d <= KP_COMPLEX128; d++) assert_string_equal(kp_dtype_name((kp_dtype)d), dtypes[d]);
    assert_null(kp_dtype_name((kp_dtype)6));
}

static void test_reductions(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    const char *const al[] = {"x = Vi(2)", "y = Vj(2)", "g = Vj(3)"};
    assert_int_equal(kp_reduction_count(), KP_RED_KMIN_ARGKMIN + 1);
    assert_null(kp_reduction_name((kp_reduction)-1));
    assert_null(kp_reduction_name((kp_reduction)kp_reduction_count()));
    assert_int_equal(kp_reduction_flags((kp_reduction)kp_reduction_count()), 0);
    for (int r = 0; r < kp_reduction_count(); r++) {
        const char *name = kp_reduction_name((kp_reduction)r);
        unsigned fl = kp_reduction_flags((kp_reduction)r);
        assert_non_null(name);
        char text[128];
        if (fl & KP_REDUCTION_TAKES_K) snprintf(text, sizeof text, "%s_Reduction(x-y,2,1)", name);
        else if (fl & KP_REDUCTION_TAKES_G) snprintf(text, sizeof text, "%s_Reduction(SqDist(x,y),1,g)", name);
        else snprintf(text, sizeof text, "%s_Reduction(x-y,1)", name);
        kp_formula *f;
        assert_int_equal(kp_formula_parse(ctx, text, al, 3, &f), KP_OK);
        assert_int_equal((int)kp_formula_reduction(f), r);
        assert_int_equal(kp_formula_out_dim(f) > 0, (fl & KP_REDUCTION_VALUES) != 0);
        assert_int_equal(kp_formula_out_index_dim(f) > 0, (fl & KP_REDUCTION_INDICES) != 0);
        kp_formula *g = NULL;
        kp_status st = kp_formula_with_indices(ctx, f, &g);
        assert_int_equal(st == KP_OK, (fl & KP_REDUCTION_SELECTS) != 0);
        kp_formula_free(g);
        kp_formula_free(f);
    }
    kp_context_free(ctx);
}

/* A Sum over j of x_i . y_j: runs with the options given, returns the status. */
static kp_status run_with(kp_context *ctx, const kp_exec_options *opt) {
    const char *const al[] = {"x = Vi(2)", "y = Vj(2)"};
    kp_formula *f;
    kp_plan *p;
    assert_int_equal(kp_formula_parse(ctx, "Sum_Reduction((x|y),1)", al, 2, &f), KP_OK);
    assert_int_equal(kp_plan_new(ctx, f, KP_FLOAT64, &p), KP_OK);
    double x[6] = {1, 2, 3, 4, 5, 6}, y[4] = {1, 0, 0, 1}, out[3] = {0};
    kp_array args[2] = {kp_array_2d(x, KP_FLOAT64, 3, 2), kp_array_2d(y, KP_FLOAT64, 2, 2)};
    kp_array o = kp_array_2d(out, KP_FLOAT64, 3, 1);
    kp_status st = kp_plan_exec(p, args, 2, &o, NULL, opt);
    if (st == KP_OK) {
        assert_true(out[0] == 3 && out[1] == 7 && out[2] == 11);
    }
    kp_plan_free(p);
    kp_formula_free(f);
    return st;
}

static void test_options_versions(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    kp_exec_options d = KP_EXEC_OPTIONS_DEFAULT, i;
    memset(&i, 0xff, sizeof i);
    kp_exec_options_init(&i);
    assert_int_equal(i.struct_size, sizeof(kp_exec_options));
    assert_true(i.num_threads == d.num_threads && i.nx == d.nx && i.ny == d.ny && i.cuda_stream == d.cuda_stream &&
                i.struct_size == d.struct_size);
    assert_int_equal(run_with(ctx, &d), KP_OK);
    kp_exec_options old = {.num_threads = 1, .nx = -1, .ny = -1}; /* a caller filling the first fields only */
    assert_int_equal(run_with(ctx, &old), KP_OK);
    old.struct_size = 8; /* fewer bytes than the first fields */
    assert_int_equal(run_with(ctx, &old), KP_ERR_ARGUMENT);
    struct {
        kp_exec_options o;
        int64_t newer[2];
    } big;
    memset(&big, 0, sizeof big);
    kp_exec_options_init(&big.o);
    big.o.struct_size = sizeof big; /* a newer kp.h, its fields at their default 0 */
    assert_int_equal(run_with(ctx, &big.o), KP_OK);
    big.newer[1] = 1; /* a newer field set: this libkp cannot honour it */
    assert_int_equal(run_with(ctx, &big.o), KP_ERR_ARGUMENT);
    assert_non_null(strstr(kp_context_message(ctx), "newer"));
    kp_context_free(ctx);
}

static void test_output_shape(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    const char *const al[] = {"x = Vi(2)", "y = Vj(2)", "s = Pm(1)"};
    kp_formula *f, *k;
    kp_plan *p, *pk;
    assert_int_equal(kp_formula_parse(ctx, "Min_ArgMin_Reduction(s*(x-y),0)", al, 3, &f), KP_OK);
    assert_int_equal(kp_formula_parse(ctx, "KMin_Reduction(SqDist(x,y),3,1)", al, 2, &k), KP_OK);
    assert_int_equal(kp_plan_new(ctx, f, KP_FLOAT32, &p), KP_OK);
    assert_int_equal(kp_plan_new(ctx, k, KP_FLOAT32, &pk), KP_OK);
    int64_t xs[3] = {4, 5, 2}, ys[4] = {1, 7, 2}, ss[2] = {4, 1};
    kp_array args[3] = {kp_array_nd(NULL, KP_FLOAT32, 3, xs), kp_array_nd(NULL, KP_FLOAT32, 2, ys + 1),
                        kp_array_nd(NULL, KP_FLOAT32, 2, ss)};
    int nd = 0;
    int64_t sh[KP_MAX_DIMS], ish[KP_MAX_DIMS];
    assert_int_equal(kp_plan_output_shape(p, args, 3, NULL, &nd, sh, ish), KP_OK);
    assert_int_equal(nd, 3); /* batch (4), M = 7 rows, dim 2 */
    assert_true(sh[0] == 4 && sh[1] == 7 && sh[2] == 2 && ish[0] == 4 && ish[1] == 7 && ish[2] == 2);
    assert_int_equal(kp_plan_output_shape(pk, args, 2, NULL, &nd, sh, ish), KP_OK);
    assert_true(nd == 3 && sh[0] == 4 && sh[1] == 5 && sh[2] == 3 && ish[2] == 0);
    args[1] = kp_array_nd(NULL, KP_FLOAT32, 3, ys); /* batch 1 against 4: broadcast */
    assert_int_equal(kp_plan_output_shape(pk, args, 2, NULL, &nd, sh, NULL), KP_OK);
    assert_true(sh[0] == 4);
    args[1].shape[0] = 3; /* 3 against 4 */
    assert_int_equal(kp_plan_output_shape(pk, args, 2, NULL, &nd, sh, NULL), KP_ERR_SHAPE);
    assert_int_equal(kp_plan_output_shape(pk, args, 3, NULL, &nd, sh, NULL), KP_ERR_ARGUMENT);
    assert_int_equal(kp_plan_output_shape(pk, args, 2, NULL, NULL, sh, NULL), KP_ERR_NULL);
    kp_plan_free(p);
    kp_plan_free(pk);
    kp_formula_free(f);
    kp_formula_free(k);
    kp_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constants),     cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_reductions),    cmocka_unit_test(test_options_versions),
        cmocka_unit_test(test_output_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
