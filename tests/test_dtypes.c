/*
 * test_dtypes.c — the storage dtypes of kp.h (KP_FLOAT16, KP_COMPLEX64,
 * KP_COMPLEX128) on the engine of kpt_context_new (CPU, or KP_TEST_ENGINE):
 *   - binary16 <-> binary32 conversions on all 65,536 halves and on floats
 *     around every rounding boundary, against a reference written with double
 *     arithmetic (rint: ties to even) and a table of every half's value;
 *   - float16 plans end to end: every half through a reduction and back
 *     (bit-exact but NaN payloads and the sign of zero), overflow to
 *     infinity, a Gaussian kernel product and its gradient against float64
 *     references on the same rounded inputs, strided and broadcast arrays,
 *     batches, float32 arrays in a float16 plan, joint plans, partial states,
 *     kp_plan_solve;
 *   - complex arrays read as interleaved reals, mixed with real ones;
 *   - every complex formula op (ComplexMult, ..., ComplexExp1j) against C99
 *     complex arithmetic in double, and a gradient through them against
 *     finite differences;
 *   - errors: a dtype the plan does not take, float16 arrays on an unknown
 *     device or mixed with host arrays, complex arrays whose components are
 *     not contiguous.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <complex.h>

#include "core/half.h"
#include "kp_test_util.h"

/* ------------------------------------------------------------ references */

/* The value of half h, from its fields with double arithmetic. */
static double half_value(uint16_t h) {
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexp((double)m, -24);
    else v = ldexp(1024.0 + m, e - 25);
    return sign ? -v : v;
}

/* Half bits of the value v (exactly representable, non-NaN) by binary search
 * over the positive halves, whose values increase with their bits. */
static uint16_t half_of_value(double v) {
    uint16_t sign = signbit(v) ? 0x8000u : 0;
    double a = fabs(v);
    unsigned lo = 0, hi = 0x7c00u;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (half_value((uint16_t)mid) < a) lo = mid + 1;
        else hi = mid;
    }
    assert_true(half_value((uint16_t)lo) == a);
    return (uint16_t)(sign | lo);
}

/* IEEE rounding of f to binary16, written independently: scale by the ulp
 * of f's binade (exact), rint (ties to even), scale back. */
static uint16_t ref_to_half(float f) {
    if (isnan(f)) return 0x7e00u;
    double a = fabs((double)f);
    int e;
    frexp(a, &e); /* a = m 2^e, m in [0.5, 1): binade 2^(e-1) */
    int binade = e - 1 < -14 ? -14 : e - 1;
    double ulp = ldexp(1.0, binade - 10), q = rint(a / ulp) * ulp;
    if (a == 0) q = 0;
    if (q >= 65536.0) q = INFINITY;
    return half_of_value(signbit(f) ? -q : q);
}

static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float ffrom(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ------------------------------------------------------------ conversions */

static void test_half_to_float_all(void **state) {
    (void)state;
    for (unsigned h = 0; h < 65536; h++) {
        float f = kp__half_to_float((uint16_t)h);
        double v = half_value((uint16_t)h);
        if (isnan(v)) {
            assert_true(isnan(f));
            assert_int_equal(fbits(f) >> 31, h >> 15); /* sign kept */
            assert_int_equal((fbits(f) >> 13) & 1023u, h & 1023u); /* payload kept */
            assert_int_equal(kp__float_to_half(f) & 0x7c00u, 0x7c00u);
            assert_true((kp__float_to_half(f) & 1023u) != 0); /* still a NaN */
            continue;
        }
        assert_true((double)f == v);
        assert_int_equal(signbit(f) != 0, (h >> 15) != 0);
        assert_int_equal(kp__float_to_half(f), h); /* round trip */
    }
}

static void check_round(float f) {
    uint16_t got = kp__float_to_half(f), want = ref_to_half(f);
    if (isnan(f)) {
        assert_true((got & 0x7c00u) == 0x7c00u && (got & 1023u));
        return;
    }
    if (got != want) print_error("float %a (bits %08x): got half %04x, want %04x\n", (double)f, fbits(f), got, want);
    assert_int_equal(got, want);
}

static void test_float_to_half_boundaries(void **state) {
    (void)state;
    /* Every half h, the floats at the midpoints to its neighbours and one
     * float ulp either side: where rounding decides. */
    for (unsigned h = 0; h < 0x7c00u; h++)
        for (int s = 0; s < 2; s++) {
            double v = half_value((uint16_t)h), next = half_value((uint16_t)(h + 1));
            float mid = (float)((v + next) / 2); /* exact: 12 significant bits */
            float pts[5] = {(float)v, mid, nextafterf(mid, 0), nextafterf(mid, INFINITY), (float)next};
            for (int k = 0; k < 5; k++) check_round(s ? -pts[k] : pts[k]);
        }
    const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 65504.0f, 65519.99f, 65520.0f, 1e30f,
                              5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f, 1e-40f, -1e-45f, 3.0e-8f};
    for (size_t k = 0; k < sizeof specials / sizeof *specials; k++) check_round(specials[k]);
    kpt_rng r;
    kpt_rng_seed(&r, 16);
    for (int k = 0; k < 1000000; k++) check_round(ffrom((uint32_t)kpt_rng_u64(&r)));
}

/* ------------------------------------------------------------ plans */

static uint16_t *to_half(const double *a, size_t n) {
    uint16_t *h = malloc(n * 2 + 2);
    for (size_t k = 0; k < n; k++) h[k] = kp__float_to_half((float)a[k]);
    return h;
}

/* The double values of the float16 array h (n values). */
static void from_half(const uint16_t *h, size_t n, double *out) {
    for (size_t k = 0; k < n; k++) out[k] = (double)kp__half_to_float(h[k]);
}

/* Every half through a float16 plan: Min over one j of x_i + 0 * y_j. */
static void test_float16_every_value(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    enum { N = 65536 };
    uint16_t *x = malloc(N * 2), *out = malloc(N * 2), y = 0;
    for (unsigned h = 0; h < N; h++) x[h] = (uint16_t)h;
    const char *al[] = {"x = Vi(1)", "y = Vj(1)"};
    kp_formula *f;
    kp_plan *p;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Min_Reduction(x + y, 1)", al, 2, &f));
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, KP_FLOAT16, &p));
    kp_array args[2] = {kp_array_2d(x, KP_FLOAT16, N, 1), kp_array_2d(&y, KP_FLOAT16, 1, 1)};
    kp_array o = kp_array_2d(out, KP_FLOAT16, N, 1);
    KPT_ASSERT_OK(ctx, kp_plan_exec(p, args, 2, &o, NULL, NULL));
    for (unsigned h = 0; h < N; h++) {
        int nan = (h & 0x7c00u) == 0x7c00u && (h & 1023u);
        if (nan) assert_true((out[h] & 0x7c00u) == 0x7c00u && (out[h] & 1023u));
        else if ((h & 0x7fffu) == 0) assert_int_equal(out[h] & 0x7fffu, 0); /* -0 + 0 = +0 */
        else assert_int_equal(out[h], h);
    }
    /* Results beyond 65504 round to infinity, tiny ones to subnormals. */
    uint16_t two = kp__float_to_half(2.0f), big = kp__float_to_half(60000.0f), tiny = 0x0003; /* 3 * 2^-24 */
    uint16_t xs[2] = {big, tiny}, r[2];
    const char *al2[] = {"x = Vi(1)", "c = Vj(1)"};
    kp_formula *g;
    kp_plan *q;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(x * c, 1)", al2, 2, &g));
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, g, KP_FLOAT16, &q));
    uint16_t half_c = kp__float_to_half(0.5f);
    kp_array a2[2] = {kp_array_2d(xs, KP_FLOAT16, 2, 1), kp_array_2d(&two, KP_FLOAT16, 1, 1)};
    kp_array o2 = kp_array_2d(r, KP_FLOAT16, 2, 1);
    KPT_ASSERT_OK(ctx, kp_plan_exec(q, a2, 2, &o2, NULL, NULL));
    assert_int_equal(r[0], 0x7c00u);
    assert_int_equal(r[1], 0x0006u);
    a2[1] = kp_array_2d(&half_c, KP_FLOAT16, 1, 1);
    KPT_ASSERT_OK(ctx, kp_plan_exec(q, a2, 2, &o2, NULL, NULL));
    assert_int_equal(r[1], 0x0002u); /* 1.5 * 2^-24 -> 2 * 2^-24 (ties to even) */
    kp_plan_free(q);
    kp_formula_free(g);
    kp_plan_free(p);
    kp_formula_free(f);
    kp_context_free(ctx);
    free(x);
    free(out);
}

#define GN 300
#define GM 257
#define GAUSS "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)"
static const char *const GAL[] = {"x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(2)"};

/* float64 reference of GAUSS on double inputs (already rounded to float16). */
static void gauss_ref(const double *x, const double *y, double s, const double *b, int64_t n, int64_t m, double *out) {
    for (int64_t i = 0; i < n; i++) {
        double acc[2] = {0, 0};
        for (int64_t j = 0; j < m; j++) {
            double d2 = 0;
            for (int c = 0; c < 3; c++) d2 += (x[i * 3 + c] - y[j * 3 + c]) * (x[i * 3 + c] - y[j * 3 + c]);
            double k = exp(-d2 * s);
            acc[0] += k * b[j * 2];
            acc[1] += k * b[j * 2 + 1];
        }
        out[i * 2] = acc[0];
        out[i * 2 + 1] = acc[1];
    }
}

/* |got - ref| within float16 rounding of the result (2^-11 relative) plus
 * float32 arithmetic, relative to the largest |ref|. */
static void check_half_result(const char *label, const double *got, const double *ref, size_t n) {
    double scale = 0;
    for (size_t k = 0; k < n; k++) scale = fmax(scale, fabs(ref[k]));
    for (size_t k = 0; k < n; k++) {
        double tol = ldexp(fabs(ref[k]), -11) + 1e-5 * scale;
        if (!(fabs(got[k] - ref[k]) <= tol))
            fail_msg("%s[%zu]: got %.8g, want %.8g (tolerance %.3g)", label, k, got[k], ref[k], tol);
    }
}

typedef struct gdata {
    double x[GN * 3], y[GM * 3], b[GM * 2], s;
    uint16_t *hx, *hy, *hb, hs;
} gdata;

static void gdata_init(gdata *d) {
    kpt_rng r;
    kpt_rng_seed(&r, 7);
    kpt_fill_uniform(&r, d->x, GN * 3, -1, 1);
    kpt_fill_uniform(&r, d->y, GM * 3, -1, 1);
    kpt_fill_uniform(&r, d->b, GM * 2, -1, 1);
    d->s = 1.7;
    d->hx = to_half(d->x, GN * 3);
    d->hy = to_half(d->y, GM * 3);
    d->hb = to_half(d->b, GM * 2);
    d->hs = kp__float_to_half((float)d->s);
    from_half(d->hx, GN * 3, d->x); /* the reference sees the rounded inputs */
    from_half(d->hy, GM * 3, d->y);
    from_half(d->hb, GM * 2, d->b);
    d->s = (double)kp__half_to_float(d->hs);
}

static void gdata_free(gdata *d) {
    free(d->hx);
    free(d->hy);
    free(d->hb);
}

static void test_float16_gaussian(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    gdata *d = malloc(sizeof *d);
    gdata_init(d);
    kp_formula *f;
    kp_plan *p;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, GAUSS, GAL, 4, &f));
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, KP_FLOAT16, &p));
    double ref[GN * 2], got[GN * 2];
    gauss_ref(d->x, d->y, d->s, d->b, GN, GM, ref);
    uint16_t out[GN * 2];
    kp_array args[4] = {kp_array_2d(d->hx, KP_FLOAT16, GN, 3), kp_array_2d(d->hy, KP_FLOAT16, GM, 3),
                        kp_array_1d(&d->hs, KP_FLOAT16, 1), kp_array_2d(d->hb, KP_FLOAT16, GM, 2)};
    kp_array o = kp_array_2d(out, KP_FLOAT16, GN, 2);
    KPT_ASSERT_OK(ctx, kp_plan_exec(p, args, 4, &o, NULL, NULL));
    from_half(out, GN * 2, got);
    check_half_result("gaussian", got, ref, GN * 2);

    /* Strided: x's columns read backwards from a transposed buffer, the output
     * transposed: (GN, 2) with strides (1, GN). */
    uint16_t *xt = malloc(GN * 3 * 2), outt[GN * 2];
    for (int i = 0; i < GN; i++)
        for (int c = 0; c < 3; c++) xt[c * GN + i] = d->hx[i * 3 + c];
    kp_array xs = kp_array_2d(xt, KP_FLOAT16, GN, 3);
    xs.strides[0] = 1;
    xs.strides[1] = GN;
    kp_array os = kp_array_2d(outt, KP_FLOAT16, GN, 2);
    os.strides[0] = 1;
    os.strides[1] = GN;
    args[0] = xs;
    KPT_ASSERT_OK(ctx, kp_plan_exec(p, args, 4, &os, NULL, NULL));
    for (int i = 0; i < GN; i++)
        for (int c = 0; c < 2; c++) assert_int_equal(outt[c * GN + i], out[i * 2 + c]);

    /* float32 arrays in a float16 plan: computed alike (x here, out too). */
    float x32[GN * 3], out32[GN * 2];
    for (int k = 0; k < GN * 3; k++) x32[k] = (float)d->x[k];
    args[0] = kp_array_2d(x32, KP_FLOAT32, GN, 3);
    kp_array o32 = kp_array_2d(out32, KP_FLOAT32, GN, 2);
    KPT_ASSERT_OK(ctx, kp_plan_exec(p, args, 4, &o32, NULL, NULL));
    for (int k = 0; k < GN * 2; k++) assert_int_equal(kp__float_to_half(out32[k]), out[k]);

    /* Batches: 2 batches of x, y and b broadcast (stride 0 on the batch). */
    uint16_t *xb = malloc(2 * GN * 3 * 2), outb[2 * GN * 2];
    memcpy(xb, d->hx, GN * 3 * 2);
    memcpy(xb + GN * 3, d->hx, GN * 3 * 2);
    for (int k = 0; k < GN * 3; k++) xb[GN * 3 + k] ^= 0x8000u; /* batch 1: -x */
    int64_t shx[3] = {2, GN, 3}, shy[3] = {2, GM, 3}, sho[3] = {2, GN, 2};
    args[0] = kp_array_nd(xb, KP_FLOAT16, 3, shx);
    args[1] = kp_array_nd(d->hy, KP_FLOAT16, 3, shy);
    args[1].strides[0] = 0;
    kp_array ob = kp_array_nd(outb, KP_FLOAT16, 3, sho);
    KPT_ASSERT_OK(ctx, kp_plan_exec(p, args, 4, &ob, NULL, NULL));
    for (int k = 0; k < GN * 2; k++) assert_int_equal(outb[k], out[k]);
    double xneg[GN * 3];
    for (int k = 0; k < GN * 3; k++) xneg[k] = -d->x[k];
    gauss_ref(xneg, d->y, d->s, d->b, GN, GM, ref);
    from_half(outb + GN * 2, GN * 2, got);
    check_half_result("gaussian batch 1", got, ref, GN * 2);
    free(xb);
    free(xt);
    kp_plan_free(p);
    kp_formula_free(f);
    gdata_free(d);
    free(d);
    kp_context_free(ctx);
}

/* d/dx of <GAUSS, e>: -2 s sum_j K_ij (b_j . e_i) (x_i - y_j), float16 plans throughout. */
static void test_float16_gradient(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    gdata *d = malloc(sizeof *d);
    gdata_init(d);
    double e[GN * 2];
    kpt_rng r;
    kpt_rng_seed(&r, 9);
    kpt_fill_uniform(&r, e, GN * 2, -1, 1);
    uint16_t *he = to_half(e, GN * 2);
    from_half(he, GN * 2, e);
    kp_formula *f, *g;
    kp_plan *p;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, GAUSS, GAL, 4, &f));
    KPT_ASSERT_OK(ctx, kp_formula_grad(ctx, f, 0, &g));
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, g, KP_FLOAT16, &p));
    uint16_t out[GN * 3];
    kp_array args[5] = {kp_array_2d(d->hx, KP_FLOAT16, GN, 3), kp_array_2d(d->hy, KP_FLOAT16, GM, 3),
                        kp_array_1d(&d->hs, KP_FLOAT16, 1), kp_array_2d(d->hb, KP_FLOAT16, GM, 2),
                        kp_array_2d(he, KP_FLOAT16, GN, 2)};
    kp_array o = kp_array_2d(out, KP_FLOAT16, GN, 3);
    KPT_ASSERT_OK(ctx, kp_plan_exec(p, args, 5, &o, NULL, NULL));
    double ref[GN * 3], got[GN * 3];
    for (int i = 0; i < GN; i++) {
        double acc[3] = {0, 0, 0};
        for (int j = 0; j < GM; j++) {
            double d2 = 0;
            for (int c = 0; c < 3; c++) d2 += pow(d->x[i * 3 + c] - d->y[j * 3 + c], 2);
            double w = exp(-d2 * d->s) * (d->b[j * 2] * e[i * 2] + d->b[j * 2 + 1] * e[i * 2 + 1]);
            for (int c = 0; c < 3; c++) acc[c] += -2 * d->s * w * (d->x[i * 3 + c] - d->y[j * 3 + c]);
        }
        for (int c = 0; c < 3; c++) ref[i * 3 + c] = acc[c];
    }
    from_half(out, GN * 3, got);
    check_half_result("gradient in x", got, ref, GN * 3);
    free(he);
    kp_plan_free(p);
    kp_formula_free(g);
    kp_formula_free(f);
    gdata_free(d);
    free(d);
    kp_context_free(ctx);
}

/* Joint plans and partial states take float16 arrays too: the same bits as
 * kp_plan_exec (joint, aligned partial fold). */
static void test_float16_other_calls(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    gdata *d = malloc(sizeof *d);
    gdata_init(d);
    kp_formula *f;
    kp_plan *p, *joint;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, GAUSS, GAL, 4, &f));
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, KP_FLOAT16, &p));
    uint16_t out[GN * 2], outj[GN * 2], outp[GN * 2];
    kp_array args[4] = {kp_array_2d(d->hx, KP_FLOAT16, GN, 3), kp_array_2d(d->hy, KP_FLOAT16, GM, 3),
                        kp_array_1d(&d->hs, KP_FLOAT16, 1), kp_array_2d(d->hb, KP_FLOAT16, GM, 2)};
    kp_array o = kp_array_2d(out, KP_FLOAT16, GN, 2);
    KPT_ASSERT_OK(ctx, kp_plan_exec(p, args, 4, &o, NULL, NULL));

    const kp_formula *fs[1] = {f};
    KPT_ASSERT_OK(ctx, kp_plan_new_joint(ctx, fs, 1, KP_FLOAT16, &joint));
    kp_array oj = kp_array_2d(outj, KP_FLOAT16, GN, 2);
    KPT_ASSERT_OK(ctx, kp_plan_exec_joint(joint, args, 4, &oj, 1, NULL));
    assert_memory_equal(outj, out, sizeof out);

    if (kp_engine_available(ctx, KP_ENGINE_CPU) == KP_OK) {
        kp_context *cpu;
        assert_int_equal(kp_context_new(&cpu), KP_OK);
        kp_formula *fc;
        kp_plan *pc;
        KPT_ASSERT_OK(cpu, kp_formula_parse(cpu, GAUSS, GAL, 4, &fc));
        KPT_ASSERT_OK(cpu, kp_plan_new(cpu, fc, KP_FLOAT16, &pc));
        kp_state_info info;
        KPT_ASSERT_OK(cpu, kp_plan_state_info(pc, args, 4, NULL, &info));
        void *st = malloc(info.bytes);
        KPT_ASSERT_OK(cpu, kp_plan_state_init(pc, &info, st));
        KPT_ASSERT_OK(cpu, kp_plan_exec_partial(pc, args, 4, 0, st, info.bytes, NULL));
        kp_array op = kp_array_2d(outp, KP_FLOAT16, GN, 2);
        KPT_ASSERT_OK(cpu, kp_plan_state_finalize(pc, args, 4, st, info.bytes, &op, NULL, NULL));
        uint16_t outc[GN * 2];
        kp_array oc = kp_array_2d(outc, KP_FLOAT16, GN, 2);
        KPT_ASSERT_OK(cpu, kp_plan_exec(pc, args, 4, &oc, NULL, NULL));
        assert_memory_equal(outp, outc, sizeof outc);
        free(st);
        kp_plan_free(pc);
        kp_formula_free(fc);
        kp_context_free(cpu);
    }

    kp_plan_free(joint);
    kp_plan_free(p);
    kp_formula_free(f);
    gdata_free(d);
    free(d);
    kp_context_free(ctx);
}

/* kp_plan_solve with float16 b and x: the residual of the float16 solution in float64. */
static void test_float16_solve(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    gdata *d = malloc(sizeof *d);
    gdata_init(d);
    kp_formula *gb;
    /* Solve (0.5 I + K) v = b with K the Gaussian kernel of y against itself. */
    const char *sal[] = {"x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(1)"};
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)", sal, 4, &gb));
    kp_plan *ps;
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, gb, KP_FLOAT16, &ps));
    uint16_t rhs[GM], sol[GM];
    for (int k = 0; k < GM; k++) rhs[k] = d->hb[2 * k];
    kp_array sargs[4] = {kp_array_2d(d->hy, KP_FLOAT16, GM, 3), kp_array_2d(d->hy, KP_FLOAT16, GM, 3),
                         kp_array_1d(&d->hs, KP_FLOAT16, 1), kp_array_2d(NULL, KP_FLOAT16, GM, 1)};
    kp_array bb = kp_array_2d(rhs, KP_FLOAT16, GM, 1), xx = kp_array_2d(sol, KP_FLOAT16, GM, 1);
    kp_solve_options so = KP_SOLVE_OPTIONS_DEFAULT;
    so.alpha = 0.5;
    so.tol = 1e-3;
    kp_solve_info si;
    KPT_ASSERT_OK(ctx, kp_plan_solve(ps, sargs, 4, 3, &bb, &xx, &so, &si));
    assert_true(si.converged);
    /* Residual in float64: |0.5 v + K v - b| <= 1e-2 |b| (float16 storage of v). */
    double v[GM], res = 0, nb = 0;
    from_half(sol, GM, v);
    for (int i = 0; i < GM; i++) {
        double kv = 0;
        for (int j = 0; j < GM; j++) {
            double d2 = 0;
            for (int c = 0; c < 3; c++) d2 += pow(d->y[i * 3 + c] - d->y[j * 3 + c], 2);
            kv += exp(-d2 * d->s) * v[j];
        }
        double bi = d->b[2 * i];
        res += pow(0.5 * v[i] + kv - bi, 2);
        nb += bi * bi;
    }
    assert_true(sqrt(res) <= 1e-2 * sqrt(nb));
    kp_plan_free(ps);
    kp_formula_free(gb);
    gdata_free(d);
    free(d);
    kp_context_free(ctx);
}

/* Complex arrays as interleaved reals: z_j complex (Vj(2) in the formula),
 * x, y real, the output complex; the same plan takes real views alike. */
static void run_complex(kp_dtype cdt, kp_dtype rdt) {
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    enum { N = 40, M = 33 };
    double x[N * 2], y[M * 2], z[M * 2], ref[N * 2], got[N * 2];
    kpt_rng r;
    kpt_rng_seed(&r, 3);
    kpt_fill_uniform(&r, x, N * 2, -1, 1);
    kpt_fill_uniform(&r, y, M * 2, -1, 1);
    kpt_fill_uniform(&r, z, M * 2, -1, 1);
    kpt_round_to_dtype(x, N * 2, rdt);
    kpt_round_to_dtype(y, M * 2, rdt);
    kpt_round_to_dtype(z, M * 2, rdt);
    for (int i = 0; i < N; i++) {
        double acc[2] = {0, 0};
        for (int j = 0; j < M; j++) {
            double k = exp(-(pow(x[2 * i] - y[2 * j], 2) + pow(x[2 * i + 1] - y[2 * j + 1], 2)));
            acc[0] += k * z[2 * j];
            acc[1] += k * z[2 * j + 1];
        }
        ref[2 * i] = acc[0];
        ref[2 * i + 1] = acc[1];
    }
    const char *al[] = {"x = Vi(2)", "y = Vj(2)", "z = Vj(2)"};
    kp_formula *f;
    kp_plan *p;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y))*z, 1)", al, 3, &f));
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, cdt, &p));
    void *xa = kpt_to_dtype(x, N * 2, rdt), *ya = kpt_to_dtype(y, M * 2, rdt), *za = kpt_to_dtype(z, M * 2, rdt);
    void *oa = kpt_alloc_dtype(N * 2, rdt);
    /* y given as complex too: M x 1 complex numbers are M x 2 reals. */
    kp_array args[3] = {kp_array_2d(xa, rdt, N, 2), kp_array_2d(ya, cdt, M, 1), kp_array_2d(za, cdt, M, 1)};
    kp_array o = kp_array_2d(oa, cdt, N, 1);
    KPT_ASSERT_OK(ctx, kp_plan_exec(p, args, 3, &o, NULL, NULL));
    kpt_from_dtype(oa, rdt, N * 2, got);
    double tol = rdt == KP_FLOAT32 ? 1e-5 : 1e-12;
    assert_int_equal(kpt_check("complex", got, ref, NULL, N * 2, tol, tol), 0);
    /* Complex arrays whose components are not contiguous cannot be read as reals. */
    kp_array bad = kp_array_2d(za, cdt, M / 2, 2);
    bad.strides[0] = 4;
    bad.strides[1] = 2;
    args[2] = bad;
    kp_status st = kp_plan_exec(p, args, 3, &o, NULL, NULL);
    assert_int_equal(st, KP_ERR_SHAPE);
    assert_non_null(strstr(kp_context_message(ctx), "stride 1"));
    /* A complex array in a real plan is refused by name. */
    kp_plan *pr;
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, rdt, &pr));
    args[2] = kp_array_2d(za, cdt, M, 1);
    assert_int_equal(kp_plan_exec(pr, args, 3, &o, NULL, NULL), KP_ERR_DTYPE);
    kp_plan_free(pr);
    free(xa);
    free(ya);
    free(za);
    free(oa);
    kp_plan_free(p);
    kp_formula_free(f);
    kp_context_free(ctx);
}

static void test_complex64(void **state) {
    (void)state;
    run_complex(KP_COMPLEX64, KP_FLOAT32);
}

static void test_complex128(void **state) {
    (void)state;
    run_complex(KP_COMPLEX128, KP_FLOAT64);
}


/* ------------------------------------------------------------ complex ops */

#define CN 7
#define CM 5
#define CD 2
/* z_i, w_j complex (CD numbers), x_j real (CD), s_i real (1). */
typedef struct cdata {
    double complex z[CN][CD], w[CM][CD];
    double x[CM][CD], s[CN];
} cdata;

typedef void (*cref_fn)(const cdata *d, int i, int j, double *out); /* adds term (i, j) to out */

static void r_mult(const cdata *d, int i, int j, double *o) {
    for (int k = 0; k < CD; k++) {
        double complex v = d->z[i][k] * d->w[j][k];
        o[2 * k] += creal(v), o[2 * k + 1] += cimag(v);
    }
}
static void r_div(const cdata *d, int i, int j, double *o) {
    for (int k = 0; k < CD; k++) {
        double complex v = d->z[i][k] / d->w[j][k];
        o[2 * k] += creal(v), o[2 * k + 1] += cimag(v);
    }
}
static void r_addsub(const cdata *d, int i, int j, double *o) { /* (z + w) - conj(w) */
    for (int k = 0; k < CD; k++) {
        double complex v = d->z[i][k] + d->w[j][k] - conj(d->w[j][k]);
        o[2 * k] += creal(v), o[2 * k + 1] += cimag(v);
    }
}
static void r_exp(const cdata *d, int i, int j, double *o) { /* exp(z w) exp(1j x) */
    for (int k = 0; k < CD; k++) {
        double complex v = cexp(d->z[i][k] * d->w[j][k]) * cexp(I * d->x[j][k]);
        o[2 * k] += creal(v), o[2 * k + 1] += cimag(v);
    }
}
static void r_parts(const cdata *d, int i, int j, double *o) { /* Re(zw), Im(zw), |w - z|, |w|^2, arg(w) */
    for (int k = 0; k < CD; k++) {
        double complex v = d->z[i][k] * d->w[j][k];
        o[k] += creal(v);
        o[CD + k] += cimag(v);
        o[2 * CD + k] += cabs(d->w[j][k] - d->z[i][k]);
        o[3 * CD + k] += creal(d->w[j][k] * conj(d->w[j][k]));
        o[4 * CD + k] += carg(d->w[j][k]);
    }
}
static void r_sums(const cdata *d, int i, int j, double *o) { /* ComplexSumT(ComplexSum(z w), CD) */
    double complex t = 0;
    for (int k = 0; k < CD; k++) t += d->z[i][k] * d->w[j][k];
    for (int k = 0; k < CD; k++) o[2 * k] += creal(t), o[2 * k + 1] += cimag(t);
}
static void r_scal(const cdata *d, int i, int j, double *o) { /* sum(z) w + s w + x z */
    double complex t = 0;
    for (int k = 0; k < CD; k++) t += d->z[i][k];
    for (int k = 0; k < CD; k++) {
        double complex v = t * d->w[j][k] + d->s[i] * d->w[j][k] + d->x[j][k] * d->z[i][k];
        o[2 * k] += creal(v), o[2 * k + 1] += cimag(v);
    }
}
static void r_real2(const cdata *d, int i, int j, double *o) { /* x + 1j s x */
    for (int k = 0; k < CD; k++) o[2 * k] += d->x[j][k], o[2 * k + 1] += d->s[i] * d->x[j][k];
}

static const struct {
    const char *text;
    int out_dim;
    cref_fn ref;
} CASES[] = {
    {"ComplexMult(z,w)", 2 * CD, r_mult},
    {"ComplexDivide(z,w)", 2 * CD, r_div},
    {"ComplexSubtract(ComplexAdd(z,w),Conj(w))", 2 * CD, r_addsub},
    {"ComplexMult(ComplexExp(ComplexMult(z,w)),ComplexExp1j(x))", 2 * CD, r_exp},
    {"Concat(Concat(Concat(ComplexReal(ComplexMult(z,w)),ComplexImag(ComplexMult(w,z))),"
     "Concat(ComplexAbs(ComplexSubtract(w,z)),ComplexSquareAbs(w))),ComplexAngle(w))",
     5 * CD, r_parts},
    {"ComplexSumT(ComplexSum(ComplexMult(z,w)),2)", 2 * CD, r_sums},
    {"ComplexAdd(ComplexAdd(ComplexScal(ComplexSum(z),w),ComplexRealScal(s,w)),ComplexRealScal(x,z))", 2 * CD,
     r_scal},
    {"ComplexAdd(Real2Complex(x),ComplexRealScal(s,Imag2Complex(x)))", 2 * CD, r_real2},
};

static void cdata_init(cdata *d) {
    kpt_rng r;
    kpt_rng_seed(&r, 11);
    for (int i = 0; i < CN; i++) {
        for (int k = 0; k < CD; k++) d->z[i][k] = kpt_rng_uniform(&r, -1, 1) + I * kpt_rng_uniform(&r, -1, 1);
        d->s[i] = kpt_rng_uniform(&r, -1, 1);
    }
    for (int j = 0; j < CM; j++)
        for (int k = 0; k < CD; k++) {
            d->w[j][k] = kpt_rng_uniform(&r, 0.5, 1) + I * kpt_rng_uniform(&r, -1, 1); /* away from 0 (Divide) */
            d->x[j][k] = kpt_rng_uniform(&r, -1, 1);
        }
}

static const char *const CAL[] = {"z = Vi(0,4)", "w = Vj(1,4)", "x = Vj(2,2)", "s = Vi(3,1)"};

static void cargs(cdata *d, kp_array a[4]) {
    a[0] = kp_array_2d(d->z, KP_COMPLEX128, CN, CD);
    a[1] = kp_array_2d(d->w, KP_COMPLEX128, CM, CD);
    a[2] = kp_array_2d(d->x, KP_FLOAT64, CM, CD);
    a[3] = kp_array_2d(d->s, KP_FLOAT64, CN, 1);
}

static void test_complex_ops(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    cdata d;
    cdata_init(&d);
    kp_array args[4];
    cargs(&d, args);
    for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
        char text[512];
        snprintf(text, sizeof text, "Sum_Reduction(%s, 1)", CASES[c].text);
        kp_formula *f;
        kp_plan *p;
        KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, text, CAL, 4, &f));
        assert_int_equal(kp_formula_out_dim(f), CASES[c].out_dim);
        KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, KP_COMPLEX128, &p));
        double out[CN * 5 * CD], ref[CN * 5 * CD];
        int od = CASES[c].out_dim;
        memset(ref, 0, sizeof ref);
        for (int i = 0; i < CN; i++)
            for (int j = 0; j < CM; j++) CASES[c].ref(&d, i, j, ref + i * od);
        kp_array o = kp_array_2d(out, KP_FLOAT64, CN, od); /* real output of a complex plan */
        KPT_ASSERT_OK(ctx, kp_plan_exec(p, args, 4, &o, NULL, NULL));
        assert_int_equal(kpt_check(CASES[c].text, out, ref, NULL, (size_t)(CN * od), 1e-12, 1e-12), 0);
        if (od == 2 * CD) { /* and as a complex output */
            double complex oc[CN * CD];
            kp_array ocx = kp_array_2d(oc, KP_COMPLEX128, CN, CD);
            KPT_ASSERT_OK(ctx, kp_plan_exec(p, args, 4, &ocx, NULL, NULL));
            assert_memory_equal(oc, out, sizeof oc);
        }
        kp_plan_free(p);
        kp_formula_free(f);
    }
    /* Shapes: odd dimensions and mismatched numbers are errors naming the op. */
    kp_formula *f;
    assert_int_equal(kp_formula_parse(ctx, "Sum_Reduction(ComplexMult(z,Concat(z,x)), 1)", CAL, 4, &f), KP_ERR_SHAPE);
    assert_int_equal(kp_formula_parse(ctx, "Sum_Reduction(Conj(s), 1)", CAL, 4, &f), KP_ERR_SHAPE);
    assert_non_null(strstr(kp_context_message(ctx), "Conj: a complex argument has an even dimension"));
    assert_int_equal(kp_formula_parse(ctx, "Sum_Reduction(ComplexSumT(z, 3), 1)", CAL, 4, &f), KP_ERR_SHAPE);
    assert_int_equal(kp_formula_parse(ctx, "Sum_Reduction(ComplexMult(z), 1)", CAL, 4, &f), KP_ERR_PARSE);
    kp_context_free(ctx);
}

/* Gradient in z (complex, 2 CD reals) of <Sum_j F, e> with F mixing every
 * kind of op, against central differences in float64 on z's real and
 * imaginary parts: KeOps' real-linear gradient, a complex output array. */
static void test_complex_gradient(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    cdata d;
    cdata_init(&d);
    const char *text = "Sum_Reduction(Concat(ComplexDivide(ComplexExp(ComplexMult(z,Conj(w))),ComplexAdd(w,z)),"
                       "Concat(ComplexAbs(z),ComplexAngle(ComplexMult(z,w)))), 1)";
    kp_formula *f, *g;
    kp_plan *pf, *pg;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, text, CAL, 4, &f));
    int od = kp_formula_out_dim(f);
    assert_int_equal(od, 4 * CD);
    KPT_ASSERT_OK(ctx, kp_formula_grad(ctx, f, 0, &g));
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, KP_COMPLEX128, &pf));
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, g, KP_COMPLEX128, &pg));
    double e[CN * 4 * CD];
    kpt_rng r;
    kpt_rng_seed(&r, 5);
    kpt_fill_uniform(&r, e, CN * 4 * CD, -1, 1);
    kp_array args[5];
    cargs(&d, args);
    args[4] = kp_array_2d(e, KP_FLOAT64, CN, od);
    double complex grad[CN * CD];
    kp_array go = kp_array_2d(grad, KP_COMPLEX128, CN, CD);
    KPT_ASSERT_OK(ctx, kp_plan_exec(pg, args, 5, &go, NULL, NULL));
    double fd[CN * 2 * CD], got[CN * 2 * CD], out[CN * 4 * CD];
    const double h = 1e-6;
    for (int i = 0; i < CN; i++)
        for (int c = 0; c < 2 * CD; c++) {
            double *comp = (double *)&d.z[i][c / 2] + (c % 2), keep = *comp, lr[2];
            for (int side = 0; side < 2; side++) {
                *comp = keep + (side ? h : -h);
                kp_array o = kp_array_2d(out, KP_FLOAT64, CN, od);
                KPT_ASSERT_OK(ctx, kp_plan_exec(pf, args, 4, &o, NULL, NULL));
                lr[side] = 0;
                for (int k = 0; k < CN * od; k++) lr[side] += out[k] * e[k];
            }
            *comp = keep;
            fd[i * 2 * CD + c] = (lr[1] - lr[0]) / (2 * h);
            got[i * 2 * CD + c] = c % 2 ? cimag(grad[i * CD + c / 2]) : creal(grad[i * CD + c / 2]);
        }
    assert_int_equal(kpt_check("complex gradient", got, fd, NULL, CN * 2 * CD, 1e-6, 1e-6), 0);
    kp_plan_free(pg);
    kp_plan_free(pf);
    kp_formula_free(g);
    kp_formula_free(f);
    kp_context_free(ctx);
}

static void test_errors(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    const char *al[] = {"x = Vi(1)", "y = Vj(1)"};
    kp_formula *f;
    kp_plan *p;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(x * y, 1)", al, 2, &f));
    assert_int_equal(kp_plan_new(ctx, f, KP_INT64, &p), KP_ERR_DTYPE);
    assert_int_equal(kp_plan_new(ctx, f, (kp_dtype)77, &p), KP_ERR_DTYPE);
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, KP_FLOAT16, &p));
    uint16_t x[4] = {0x3c00, 0x3c00, 0x3c00, 0x3c00}, out[4];
    double y64[2] = {1, 2};
    kp_array args[2] = {kp_array_2d(x, KP_FLOAT16, 4, 1), kp_array_2d(y64, KP_FLOAT64, 2, 1)};
    kp_array o = kp_array_2d(out, KP_FLOAT16, 4, 1);
    assert_int_equal(kp_plan_exec(p, args, 2, &o, NULL, NULL), KP_ERR_DTYPE);
    assert_non_null(strstr(kp_context_message(ctx), "argument 1: dtype float64, expected float16 or float32"));
    args[1] = kp_array_2d(x, KP_FLOAT16, 2, 1);
    args[1].device = KP_DEVICE_CUDA; /* float16 device arrays: gpu/test_gpu_half.c */
    assert_int_equal(kp_plan_exec(p, args, 2, &o, NULL, NULL), KP_ERR_ARGUMENT);
    assert_non_null(strstr(kp_context_message(ctx), "one device"));
    args[1].device = (kp_device)5;
    assert_int_equal(kp_plan_exec(p, args, 2, &o, NULL, NULL), KP_ERR_ARGUMENT);
    assert_non_null(strstr(kp_context_message(ctx), "unknown device 5"));
    args[1].device = KP_DEVICE_CPU;
    args[1].data = NULL;
    assert_int_equal(kp_plan_exec(p, args, 2, &o, NULL, NULL), KP_ERR_NULL);
    args[1].data = x;
    o.shape[1] = 2; /* shape errors are the plan's, on the float32 copy */
    assert_int_equal(kp_plan_exec(p, args, 2, &o, NULL, NULL), KP_ERR_SHAPE);
    o.shape[1] = 1;
    KPT_ASSERT_OK(ctx, kp_plan_exec(p, args, 2, &o, NULL, NULL));
    for (int k = 0; k < 4; k++) assert_int_equal(out[k], kp__float_to_half(2.0f));
    int64_t v;
    assert_int_equal(kp_constant("KP_FLOAT16", &v), KP_OK);
    assert_int_equal(v, KP_FLOAT16);
    assert_int_equal(kp_constant("KP_COMPLEX128", &v), KP_OK);
    assert_int_equal(v, KP_COMPLEX128);
    kp_plan_free(p);
    kp_formula_free(f);
    kp_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_to_float_all),   cmocka_unit_test(test_float_to_half_boundaries),
        cmocka_unit_test(test_float16_every_value), cmocka_unit_test(test_float16_gaussian),
        cmocka_unit_test(test_float16_gradient),    cmocka_unit_test(test_float16_other_calls),
        cmocka_unit_test(test_float16_solve),
        cmocka_unit_test(test_complex64),           cmocka_unit_test(test_complex128),
        cmocka_unit_test(test_complex_ops),         cmocka_unit_test(test_complex_gradient),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
