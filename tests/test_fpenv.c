/*
 * test_fpenv.c — float32 kernels flush subnormal results to zero (cpu/fpenv.h).
 *
 * What it asserts, on the CPU engine:
 * - a float32 product below FLT_MIN is +0 (flush-to-zero), the same product in
 *   float64 is kept, and normal float32 results are unchanged;
 * - subnormal float32 inputs keep their value (no denormals-are-zero):
 *   Sqrt(1e-40) is 1e-20 to float32 accuracy;
 * - the calling thread's floating-point control bits are the same after the
 *   call as before (FTZ is set and cleared inside the engine's threads).
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "kp_test_util.h"

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define HAVE_MXCSR 1
#define CONTROL_BITS 0xffc0u /* DAZ, exception masks, rounding, FTZ: not the sticky flags */
#else
#define HAVE_MXCSR 0
#endif

/* Sum over one reduced point of F(p, q) for two parameters, in dtype. */
static double eval(kp_context *ctx, const char *f, double p, double q, kp_dtype dt) {
    const char *al[] = {"p = Pm(1)", "q = Pm(1)"};
    char text[256];
    snprintf(text, sizeof text, "Sum_Reduction(%s, 1)", f);
    double pq[2] = {p, q}, out = -1;
    kpt_arg args[2] = {{&pq[0], -1, 1}, {&pq[1], -1, 1}};
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.nx = 1;
    opt.ny = 1;
    KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, text, al, 2, dt, args, 2, 1, 1, &out, 0, NULL, &opt));
    return out;
}

static void test_flush_to_zero(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
#if HAVE_MXCSR
    unsigned before = _mm_getcsr() & CONTROL_BITS;
#endif
    /* 1e-20 * 1e-20 = 1e-40: subnormal in float32, normal in float64 */
    double r32 = eval(ctx, "p*q", 1e-20, 1e-20, KP_FLOAT32);
    double r64 = eval(ctx, "p*q", 1e-20, 1e-20, KP_FLOAT64);
#if HAVE_MXCSR
    assert_true(r32 == 0.0 && !signbit(r32));
#endif
    assert_true(fabs(r64 - 1e-40) <= 1e-55);
    /* normal float32 results: unchanged (the product of two floats, exact in double, rounded once) */
    double n32 = eval(ctx, "p*q", 1e-18, 1e-18, KP_FLOAT32);
    assert_true(n32 == (double)(float)((double)(float)1e-18 * (double)(float)1e-18));
    /* a subnormal input keeps its value: sqrt(1e-40) = 1e-20 */
    double s32 = eval(ctx, "Sqrt(p)+q", 1e-40, 0, KP_FLOAT32);
    assert_true(fabs(s32 - sqrt((double)(float)1e-40)) <= 1e-6 * s32);
    assert_true(FLT_MIN > 1e-40);
#if HAVE_MXCSR
    assert_int_equal(_mm_getcsr() & CONTROL_BITS, before);
#endif
    kp_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flush_to_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
