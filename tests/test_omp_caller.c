/*
 * test_omp_caller.c — libkp called from inside the caller's own OpenMP
 * parallel region, each thread with its own context and arrays (kp.h: one
 * context per thread). Small calls run on one thread; the engine must then
 * not share its work loops with the caller's team (an orphaned worksharing
 * loop binds to the innermost enclosing team), or each caller thread would
 * compute only part of its own reduction. Every thread's results must equal,
 * bit for bit, those computed before the region.
 */
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kp_test_util.h"

enum { T = 4, NI = 150, NJ = 40, ROUNDS = 20 };

static const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "b = Vj(1)"};

/* Caller thread t's reduction (rows of 64 and a last shorter block: 3 items). */
static kp_status reduce(kp_context *ctx, const char *text, kp_dtype dt, int t, double *out) {
    double x[NI * 3], y[NJ * 3], b[NJ];
    kpt_rng rng;
    kpt_rng_seed(&rng, 40 + (uint64_t)t);
    kpt_fill_uniform(&rng, x, NI * 3, 0, 1);
    kpt_fill_uniform(&rng, y, NJ * 3, 0, 1);
    kpt_fill_uniform(&rng, b, NJ, -1, 1);
    kpt_arg args[3] = {{x, NI, 3}, {y, NJ, 3}, {b, NJ, 1}};
    return kpt_run(ctx, KPT_VIA_PLAN, text, aliases, 3, dt, args, 3, NI, 1, out, 0, NULL, NULL);
}

static void test_inside_callers_region(void **state) {
    (void)state;
    static const char *texts[] = {"Sum_Reduction(Exp(-SqDist(x,y)*IntCst(4))*b, 1)",
                                  "LogSumExp_Reduction(-SqDist(x,y)*IntCst(4), 1)"};
    static double ref[2][2][T][NI], got[T][NI];
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    for (int f = 0; f < 2; f++)
        for (int d = 0; d < 2; d++)
            for (int t = 0; t < T; t++)
                KPT_ASSERT_OK(ctx, reduce(ctx, texts[f], d ? KP_FLOAT64 : KP_FLOAT32, t, ref[f][d][t]));
    kp_context_free(ctx);
    int bad[T] = {0};
    omp_set_dynamic(0);
#pragma omp parallel num_threads(T)
    {
        int t = omp_get_thread_num();
        kp_context *own = NULL;
        if (kp_context_new(&own) != KP_OK) bad[t] = 1;
        for (int r = 0; r < ROUNDS && !bad[t]; r++)
            for (int f = 0; f < 2 && !bad[t]; f++)
                for (int d = 0; d < 2 && !bad[t]; d++) {
                    memset(got[t], 0, sizeof got[t]);
                    if (reduce(own, texts[f], d ? KP_FLOAT64 : KP_FLOAT32, t, got[t]) != KP_OK ||
                        memcmp(got[t], ref[f][d][t], sizeof got[t]) != 0)
                        bad[t] = 1;
                }
        kp_context_free(own);
    }
    for (int t = 0; t < T; t++)
        if (bad[t]) fail_msg("caller thread %d: results differ from those computed outside the region", t);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_inside_callers_region)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
