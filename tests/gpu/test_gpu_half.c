/*
 * test_gpu_half.c — float16 CUDA device arrays (KP_FLOAT16 plans whose arrays
 * are on the device), converted on the device by the CUDA engine
 * (gpu/cuda_half.h, device/half.h) and computed in float32.
 *
 * Each case runs the same float16 call twice on the CUDA engine: with host
 * arrays (converted on the host by the plan layer) and with device arrays on
 * a stream; the two must agree bit for bit, NaN payloads aside, since both
 * run the same float32 kernel on the same converted values. The results are
 * also checked against float64 references on the rounded inputs, within
 * float16 rounding of the result plus float32 arithmetic:
 *   - every one of the 65,536 halves through Min over one point (NaN and
 *     infinities pass through, -0 + 0 = +0), overflow to infinity, a subnormal
 *     tie rounded to even;
 *   - Sum (a Gaussian kernel product), LogSumExp, ArgMin (index output),
 *     KMin, on odd sizes 37 x 301;
 *   - gradients: in x (a Vi, through the same kernels) and in the parameter s
 *     (rows summed on the device, rounded once to float32 then to float16 as
 *     the host path does);
 *   - strided, transposed and batch-broadcast arrays, a float32 device array
 *     mixed in, block-sparse ranges, a joint plan of both gradients (formula
 *     by formula, the same bits as the plans alone);
 *   - partial states of device arrays: the host arrays' state bytes (two parts
 *     folded, dense and on block-sparse ranges); finalize refuses device
 *     arrays, by name.
 * Run on the CUDA emulator (gpu_half_cuda_emul) or a GPU (gpu_half_cuda);
 * without a device: "SKIPPED" and exit 77. With the argument "compile", on the
 * fake driver with the real NVRTC (gpu_half_nvrtc): the conversion kernels and
 * the reductions' kernels compile for a GPU; only the calls' statuses are
 * checked (the fake driver records launches without running them).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "cuda_test_mem.h"
#include "gpu/cuda_driver.h"
#include "kp.h"
#include "kp_test_util.h"
#include "nvrtc_check.h"

#define N 37
#define M 301

static int compile_only; /* argument "compile": the fake driver runs nothing, only statuses are checked */

/* Bytes an array's strides reach (elements of esz bytes). */
static size_t span_bytes(const kp_array *a, size_t esz) {
    int64_t last = 0;
    for (int d = 0; d < a->ndim; d++) {
        if (a->shape[d] == 0) return 0;
        last += (a->shape[d] - 1) * a->strides[d];
    }
    return (size_t)(last + 1) * esz;
}

static size_t esz_of(kp_dtype dt) { return dt == KP_FLOAT16 ? 2 : dt == KP_FLOAT32 ? 4 : 8; }

/* ------------------------------------------------------------ one call, both ways */

/* Runs plan on the CUDA engine with the host arrays of args and outs (outs[0]
 * values, outs[1] indices, either with NULL data when absent) as they are
 * (device = 0) or with copies of them in device memory (device = 1), the
 * results read back into the host outputs. */
static kp_status exec(kp_plan *plan, const kp_array *args, int nargs, kp_array *outs, int device,
                      const kp_exec_options *base) {
    kp_exec_options opt = base ? *base : (kp_exec_options)KP_EXEC_OPTIONS_DEFAULT;
    if (!device) return kp_plan_exec(plan, args, (size_t)nargs, outs[0].data ? &outs[0] : NULL,
                                     outs[1].data ? &outs[1] : NULL, &opt);
    kp_array dargs[8], douts[2];
    void *mem[10] = {NULL};
    kp_status st = KP_OK;
    for (int k = 0; k < nargs + 2; k++) {
        const kp_array *a = k < nargs ? &args[k] : &outs[k - nargs];
        kp_array *d = k < nargs ? &dargs[k] : &douts[k - nargs];
        *d = *a;
        if (!a->data) continue;
        mem[k] = dev_upload(a->data, span_bytes(a, esz_of(a->dtype)));
        if (!mem[k]) st = KP_ERR_OOM;
        d->data = mem[k];
        d->device = KP_DEVICE_CUDA;
    }
    opt.cuda_stream = stream;
    if (st == KP_OK)
        st = kp_plan_exec(plan, dargs, (size_t)nargs, douts[0].data ? &douts[0] : NULL,
                          douts[1].data ? &douts[1] : NULL, &opt);
    cu->StreamSynchronize(stream);
    for (int w = 0; w < 2 && st == KP_OK; w++)
        if (outs[w].data && !dev_download(outs[w].data, mem[nargs + w], span_bytes(&outs[w], esz_of(outs[w].dtype))))
            st = KP_ERR_INTERNAL;
    for (int k = 0; k < nargs + 2; k++) dev_free(mem[k]);
    return st;
}

/* Halves equal, NaN matching any NaN. */
static int same_half(uint16_t a, uint16_t b) {
    int na = (a & 0x7c00u) == 0x7c00u && (a & 1023u), nb = (b & 0x7c00u) == 0x7c00u && (b & 1023u);
    return na || nb ? na && nb : a == b;
}

/* The call with host and with device arrays: the same bits. outs keeps the
 * host run's values, for the references. */
static void both_ways(kp_context *ctx, const char *label, kp_plan *plan, const kp_array *args, int nargs,
                      kp_array *outs, const kp_exec_options *opt) {
    size_t nv = outs[0].data ? span_bytes(&outs[0], 2) : 0, ni = outs[1].data ? span_bytes(&outs[1], 8) : 0;
    unsigned char *hv = malloc(nv + 1), *hi = malloc(ni + 1);
    kp_status st = exec(plan, args, nargs, outs, 0, opt);
    CHECK(st == KP_OK, "%s: host arrays: %s", label, kp_context_message(ctx));
    if (nv) memcpy(hv, outs[0].data, nv);
    if (ni) memcpy(hi, outs[1].data, ni);
    if (nv) memset(outs[0].data, 0x55, nv); /* the device run must write every value */
    if (ni) memset(outs[1].data, 0x55, ni);
    st = exec(plan, args, nargs, outs, 1, opt);
    CHECK(st == KP_OK, "%s: device arrays: %s", label, kp_context_message(ctx));
    if (compile_only) st = KP_ERR_UNSUPPORTED; /* nothing to compare */
    const uint16_t *dv = outs[0].data, *rv = (const uint16_t *)hv;
    int bad = 0;
    for (size_t k = 0; st == KP_OK && k < nv / 2; k++)
        if (!same_half(dv[k], rv[k]) && bad++ < 3)
            printf("FAIL: %s: value %zu: device %04x, host %04x\n", label, k, dv[k], rv[k]);
    if (ni && st == KP_OK && memcmp(hi, outs[1].data, ni) != 0) bad++, printf("FAIL: %s: indices differ\n", label);
    failures += bad != 0;
    if (nv) memcpy(outs[0].data, hv, nv);
    free(hv);
    free(hi);
}

/* ------------------------------------------------------------ data and references */

typedef struct data {
    double x[N * 3], y[M * 3], b[M * 2], e[N * 2], s;
    uint16_t hx[N * 3], hy[M * 3], hb[M * 2], he[N * 2], hs;
} data;

static void round_half(double *v, uint16_t *h, size_t n) {
    for (size_t k = 0; k < n; k++) {
        h[k] = kp__float_to_half((float)v[k]);
        v[k] = (double)kp__half_to_float(h[k]);
    }
}

static void data_init(data *d) {
    kpt_rng r;
    kpt_rng_seed(&r, 16);
    kpt_fill_uniform(&r, d->x, N * 3, -1, 1);
    kpt_fill_uniform(&r, d->y, M * 3, -1, 1);
    kpt_fill_uniform(&r, d->b, M * 2, -1, 1);
    kpt_fill_uniform(&r, d->e, N * 2, -1, 1);
    d->s = 1.7;
    round_half(d->x, d->hx, N * 3);
    round_half(d->y, d->hy, M * 3);
    round_half(d->b, d->hb, M * 2);
    round_half(d->e, d->he, N * 2);
    round_half(&d->s, &d->hs, 1);
}

static double d2(const data *d, int i, int j) {
    double s = 0;
    for (int c = 0; c < 3; c++) s += (d->x[i * 3 + c] - d->y[j * 3 + c]) * (d->x[i * 3 + c] - d->y[j * 3 + c]);
    return s;
}

/* got (halves) against ref: float16 rounding of the result (2^-11 relative)
 * plus float32 arithmetic relative to the largest |ref|. */
static void check_ref(const char *label, const uint16_t *got, const double *ref, size_t n) {
    if (compile_only) return;
    double scale = 0;
    for (size_t k = 0; k < n; k++) scale = fmax(scale, fabs(ref[k]));
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        double g = (double)kp__half_to_float(got[k]), tol = ldexp(fabs(ref[k]), -11) + 1e-5 * scale;
        if (!(fabs(g - ref[k]) <= tol) && bad++ < 3)
            printf("FAIL: %s[%zu]: got %.8g, want %.8g (tolerance %.3g)\n", label, k, g, ref[k], tol);
    }
    failures += bad != 0;
}

static kp_plan *plan_of(kp_context *ctx, const char *text, int grad_of) {
    static const char *const al[] = {"x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(2)"};
    kp_formula *f = NULL, *g = NULL;
    kp_plan *p = NULL;
    kp_status st = kp_formula_parse(ctx, text, al, 4, &f);
    if (st == KP_OK && grad_of >= 0) st = kp_formula_grad(ctx, f, grad_of, &g);
    if (st == KP_OK) st = kp_plan_new(ctx, g ? g : f, KP_FLOAT16, &p);
    CHECK(st == KP_OK, "%s: %s", text, kp_context_message(ctx));
    kp_formula_free(f);
    kp_formula_free(g);
    return p;
}

static void args_of(data *d, kp_array a[5]) {
    a[0] = kp_array_2d(d->hx, KP_FLOAT16, N, 3);
    a[1] = kp_array_2d(d->hy, KP_FLOAT16, M, 3);
    a[2] = kp_array_1d(&d->hs, KP_FLOAT16, 1);
    a[3] = kp_array_2d(d->hb, KP_FLOAT16, M, 2);
    a[4] = kp_array_2d(d->he, KP_FLOAT16, N, 2);
}

#define GAUSS "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)"

/* ------------------------------------------------------------ cases */

/* Every half through Min over one j of x_i + 0 * y_j, and the rounding of results. */
static void case_every_value(kp_context *ctx) {
    enum { H = 65536 };
    static uint16_t x[H], out[H];
    uint16_t y = 0;
    for (unsigned h = 0; h < H; h++) x[h] = (uint16_t)h;
    const char *al[] = {"x = Vi(1)", "y = Vj(1)"};
    kp_formula *f;
    kp_plan *p;
    if (kp_formula_parse(ctx, "Min_Reduction(x + y, 1)", al, 2, &f) != KP_OK) {
        CHECK(0, "every value: %s", kp_context_message(ctx));
        return;
    }
    CHECK(kp_plan_new(ctx, f, KP_FLOAT16, &p) == KP_OK, "every value: plan");
    kp_array args[2] = {kp_array_2d(x, KP_FLOAT16, H, 1), kp_array_2d(&y, KP_FLOAT16, 1, 1)};
    kp_array outs[2] = {kp_array_2d(out, KP_FLOAT16, H, 1), kp_array_2d(NULL, KP_INT64, H, 0)};
    both_ways(ctx, "every half", p, args, 2, outs, NULL);
    int bad = 0;
    for (unsigned h = 0; h < H; h++) {
        int nan = (h & 0x7c00u) == 0x7c00u && (h & 1023u);
        int ok = nan ? (out[h] & 0x7c00u) == 0x7c00u && (out[h] & 1023u)
                     : (h & 0x7fffu) == 0 ? (out[h] & 0x7fffu) == 0 : out[h] == h;
        if (!ok && bad++ < 3) printf("FAIL: every half: %04x became %04x\n", h, out[h]);
    }
    failures += bad != 0;
    kp_plan_free(p);
    kp_formula_free(f);
    /* 60000 * 2 overflows to infinity; 3 * 2^-24 * 0.5 is a tie, rounded to 2 * 2^-24. */
    const char *al2[] = {"x = Vi(1)", "c = Vj(1)"};
    kp_formula *g;
    if (kp_formula_parse(ctx, "Sum_Reduction(x * c, 1)", al2, 2, &g) != KP_OK) {
        CHECK(0, "rounding: %s", kp_context_message(ctx));
        return;
    }
    CHECK(kp_plan_new(ctx, g, KP_FLOAT16, &p) == KP_OK, "rounding: plan");
    uint16_t xs[3] = {kp__float_to_half(60000.0f), 0x0003u, 0x7c00u}, c = kp__float_to_half(2.0f), r[3];
    kp_array a2[2] = {kp_array_2d(xs, KP_FLOAT16, 3, 1), kp_array_2d(&c, KP_FLOAT16, 1, 1)};
    kp_array o2[2] = {kp_array_2d(r, KP_FLOAT16, 3, 1), kp_array_2d(NULL, KP_INT64, 3, 0)};
    both_ways(ctx, "overflow", p, a2, 2, o2, NULL);
    CHECK(r[0] == 0x7c00u && r[1] == 0x0006u && r[2] == 0x7c00u, "overflow: %04x %04x %04x", r[0], r[1], r[2]);
    c = kp__float_to_half(0.5f);
    both_ways(ctx, "subnormal tie", p, a2, 2, o2, NULL);
    CHECK(r[1] == 0x0002u, "subnormal tie: %04x, want 0002", r[1]);
    kp_plan_free(p);
    kp_formula_free(g);
}

static void case_reductions(kp_context *ctx, data *d) {
    kp_array a[5];
    args_of(d, a);
    uint16_t out[N * 3];
    int64_t idx[N];
    double ref[N * 3];
    kp_array none = kp_array_2d(NULL, KP_INT64, N, 0);
    /* Sum */
    kp_plan *p = plan_of(ctx, GAUSS, -1);
    kp_array o[2] = {kp_array_2d(out, KP_FLOAT16, N, 2), none};
    if (p) both_ways(ctx, "Sum", p, a, 4, o, NULL);
    for (int i = 0; i < N; i++) {
        ref[2 * i] = ref[2 * i + 1] = 0;
        for (int j = 0; j < M; j++)
            for (int c = 0; c < 2; c++) ref[2 * i + c] += exp(-d2(d, i, j) * d->s) * d->b[2 * j + c];
    }
    if (p) check_ref("Sum", out, ref, N * 2);
    kp_plan_free(p);
    /* LogSumExp */
    p = plan_of(ctx, "LogSumExp_Reduction(-SqDist(x,y)*s, 1)", -1);
    o[0] = kp_array_2d(out, KP_FLOAT16, N, 1);
    if (p) both_ways(ctx, "LogSumExp", p, a, 4, o, NULL);
    for (int i = 0; i < N; i++) {
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < M; j++) mx = fmax(mx, -d2(d, i, j) * d->s);
        for (int j = 0; j < M; j++) sum += exp(-d2(d, i, j) * d->s - mx);
        ref[i] = mx + log(sum);
    }
    if (p) check_ref("LogSumExp", out, ref, N);
    kp_plan_free(p);
    /* ArgMin: an index whose float64 distance is the smallest up to float32 rounding */
    p = plan_of(ctx, "ArgMin_Reduction(SqDist(x,y), 1)", -1);
    kp_array oi[2] = {kp_array_2d(NULL, KP_FLOAT16, N, 0), kp_array_2d(idx, KP_INT64, N, 1)};
    if (p) both_ways(ctx, "ArgMin", p, a, 4, oi, NULL);
    for (int i = 0; p && !compile_only && i < N; i++) {
        double best = INFINITY;
        for (int j = 0; j < M; j++) best = fmin(best, d2(d, i, j));
        CHECK(idx[i] >= 0 && idx[i] < M && d2(d, i, (int)idx[i]) <= best * (1 + 1e-6) + 1e-7,
              "ArgMin: row %d: index %lld", i, (long long)idx[i]);
    }
    kp_plan_free(p);
    /* KMin, K = 3 */
    p = plan_of(ctx, "KMin_Reduction(SqDist(x,y), 3, 1)", -1);
    o[0] = kp_array_2d(out, KP_FLOAT16, N, 3);
    if (p) both_ways(ctx, "KMin", p, a, 4, o, NULL);
    for (int i = 0; i < N; i++) {
        double k3[3] = {INFINITY, INFINITY, INFINITY};
        for (int j = 0; j < M; j++) {
            double v = d2(d, i, j);
            for (int q = 0; q < 3; q++)
                if (v < k3[q]) {
                    double t = k3[q];
                    k3[q] = v;
                    v = t;
                }
        }
        memcpy(ref + 3 * i, k3, sizeof k3);
    }
    if (p) check_ref("KMin", out, ref, N * 3);
    kp_plan_free(p);
}

/* d/dx and d/ds of <GAUSS, e>. */
static void case_gradients(kp_context *ctx, data *d) {
    kp_array a[5];
    args_of(d, a);
    uint16_t gx[N * 3], gs;
    double rx[N * 3] = {0}, rs = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < M; j++) {
            double k = exp(-d2(d, i, j) * d->s), eb = d->b[2 * j] * d->e[2 * i] + d->b[2 * j + 1] * d->e[2 * i + 1];
            for (int c = 0; c < 3; c++) rx[3 * i + c] += -2 * d->s * k * eb * (d->x[3 * i + c] - d->y[3 * j + c]);
            rs += -d2(d, i, j) * k * eb;
        }
    kp_plan *p = plan_of(ctx, GAUSS, 0);
    kp_array o[2] = {kp_array_2d(gx, KP_FLOAT16, N, 3), kp_array_2d(NULL, KP_INT64, N, 0)};
    if (p) both_ways(ctx, "gradient in x", p, a, 5, o, NULL);
    if (p) check_ref("gradient in x", gx, rx, N * 3);
    kp_plan_free(p);
    p = plan_of(ctx, GAUSS, 2);
    kp_array os[2] = {kp_array_2d(&gs, KP_FLOAT16, 1, 1), kp_array_2d(NULL, KP_INT64, 1, 0)};
    if (p) both_ways(ctx, "gradient in s (rows summed)", p, a, 5, os, NULL);
    if (p) check_ref("gradient in s", &gs, &rs, 1);
    kp_plan_free(p);
}

/* Layouts: x transposed, the output transposed, two batches of x with y and b
 * broadcast, a float32 device array in a float16 plan; block-sparse ranges; a
 * joint plan; partial states refused. */
static void case_layouts(kp_context *ctx, data *d) {
    kp_array a[5];
    args_of(d, a);
    kp_plan *p = plan_of(ctx, GAUSS, -1);
    if (!p) return;
    uint16_t out[N * 2], outt[N * 2], xt[N * 3], xb[2 * N * 3], outb[2 * N * 2];
    kp_array none = kp_array_2d(NULL, KP_INT64, N, 0);
    kp_array o[2] = {kp_array_2d(out, KP_FLOAT16, N, 2), none};
    both_ways(ctx, "plain", p, a, 4, o, NULL);
    for (int i = 0; i < N; i++)
        for (int c = 0; c < 3; c++) xt[c * N + i] = d->hx[i * 3 + c];
    kp_array at[4] = {a[0], a[1], a[2], a[3]};
    at[0] = kp_array_2d(xt, KP_FLOAT16, N, 3);
    at[0].strides[0] = 1, at[0].strides[1] = N;
    kp_array ot[2] = {kp_array_2d(outt, KP_FLOAT16, N, 2), none};
    ot[0].strides[0] = 1, ot[0].strides[1] = N;
    both_ways(ctx, "transposed", p, at, 4, ot, NULL);
    for (int i = 0; i < N; i++)
        for (int c = 0; c < 2; c++) CHECK(outt[c * N + i] == out[i * 2 + c], "transposed: row %d differs", i);
    memcpy(xb, d->hx, sizeof d->hx);
    for (int k = 0; k < N * 3; k++) xb[N * 3 + k] = d->hx[k] ^ 0x8000u; /* batch 1: -x */
    int64_t shx[3] = {2, N, 3}, shy[3] = {2, M, 3}, sho[3] = {2, N, 2};
    kp_array ab[4] = {kp_array_nd(xb, KP_FLOAT16, 3, shx), kp_array_nd(d->hy, KP_FLOAT16, 3, shy), a[2], a[3]};
    ab[1].strides[0] = 0;
    kp_array ob[2] = {kp_array_nd(outb, KP_FLOAT16, 3, sho), kp_array_2d(NULL, KP_INT64, N, 0)};
    both_ways(ctx, "batches", p, ab, 4, ob, NULL);
    CHECK(memcmp(outb, out, sizeof out) == 0, "batches: batch 0 differs from the plain call");
    float y32[M * 3];
    for (int k = 0; k < M * 3; k++) y32[k] = (float)d->y[k];
    kp_array am[4] = {a[0], kp_array_2d(y32, KP_FLOAT32, M, 3), a[2], a[3]};
    both_ways(ctx, "float32 y", p, am, 4, o, NULL);
    uint16_t outp[N * 2];
    memcpy(outp, out, sizeof out);
    both_ways(ctx, "plain again", p, a, 4, o, NULL);
    CHECK(memcmp(outp, out, sizeof out) == 0, "a float32 array of the same values gives other bits");
    /* ranges: rows [0, 20) over j in [0, 150), rows [20, N) over every j */
    int64_t ri[4] = {0, 20, 20, N}, si[2] = {1, 2}, rj[4] = {0, 150, 0, M};
    int64_t rjj[2] = {0, M}, sj[1] = {1}, rii[2] = {0, N};
    kp_ranges rg = {8, ri, si, rj, rjj, sj, rii, 2, 2, 2, 1, 1, 1};
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.ranges = &rg;
    both_ways(ctx, "ranges", p, a, 4, o, &opt);
    double ref[N * 2] = {0};
    for (int i = 0; i < N; i++)
        for (int j = 0; j < (i < 20 ? 150 : M); j++)
            for (int c = 0; c < 2; c++) ref[2 * i + c] += exp(-d2(d, i, j) * d->s) * d->b[2 * j + c];
    check_ref("ranges", out, ref, N * 2);
    kp_plan_free(p);
    /* joint plan of the gradients in x and in s, formula by formula on device arrays */
    static const char *const al[] = {"x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(2)"};
    kp_formula *f = NULL, *gx = NULL, *gs = NULL;
    kp_plan *joint = NULL, *px = plan_of(ctx, GAUSS, 0), *ps = plan_of(ctx, GAUSS, 2);
    kp_status st = kp_formula_parse(ctx, GAUSS, al, 4, &f);
    if (st == KP_OK) st = kp_formula_grad(ctx, f, 0, &gx);
    if (st == KP_OK) st = kp_formula_grad(ctx, f, 2, &gs);
    const kp_formula *fs[2] = {gx, gs};
    if (st == KP_OK) st = kp_plan_new_joint(ctx, fs, 2, KP_FLOAT16, &joint);
    CHECK(st == KP_OK && px && ps, "joint: %s", kp_context_message(ctx));
    uint16_t j0[N * 3], j1, r0[N * 3], r1;
    kp_array ho[2] = {kp_array_2d(j0, KP_FLOAT16, N, 3), kp_array_2d(&j1, KP_FLOAT16, 1, 1)};
    void *dm[7] = {NULL};
    kp_array dargs[5], douts[2];
    for (int k = 0; k < 7; k++) {
        const kp_array *h = k < 5 ? &a[k] : &ho[k - 5];
        kp_array *t = k < 5 ? &dargs[k] : &douts[k - 5];
        *t = *h;
        t->data = dm[k] = dev_upload(h->data, span_bytes(h, 2));
        t->device = KP_DEVICE_CUDA;
    }
    opt = (kp_exec_options)KP_EXEC_OPTIONS_DEFAULT;
    opt.cuda_stream = stream;
    if (st == KP_OK) st = kp_plan_exec_joint(joint, dargs, 5, douts, 2, &opt);
    cu->StreamSynchronize(stream);
    CHECK(st == KP_OK, "joint on device arrays: %s", kp_context_message(ctx));
    if (st == KP_OK && px && ps && dev_download(j0, dm[5], sizeof j0) && dev_download(&j1, dm[6], sizeof j1)) {
        kp_array ox[2] = {kp_array_2d(r0, KP_FLOAT16, N, 3), none}, os[2] = {kp_array_2d(&r1, KP_FLOAT16, 1, 1), none};
        exec(px, a, 5, ox, 0, NULL);
        exec(ps, a, 5, os, 0, NULL);
        CHECK(memcmp(j0, r0, sizeof r0) == 0 && j1 == r1, "joint on device arrays: other bits than the plans one by one");
    }
    for (int k = 0; k < 7; k++) dev_free(dm[k]);
    kp_plan_free(joint);
    kp_plan_free(px);
    kp_plan_free(ps);
    kp_formula_free(f);
    kp_formula_free(gx);
    kp_formula_free(gs);
}

/* Ranges of the partial states (global j): rows [0, 20) over j in [100, 250),
 * across the parts' cut; rows [20, N) over [0, 40) and [290, M). */
static const int64_t part_ri[4] = {0, 20, 20, N}, part_si[2] = {1, 3}, part_rj[6] = {100, 250, 0, 40, 290, M};

/* The ranges above for the part of points [j0, j1), in its own coordinates (kp.h); local: 6 entries. */
static kp_ranges part_ranges(int64_t j0, int64_t j1, int64_t *local) {
    for (int k = 0; k < 6; k++) local[k] = (part_rj[k] < j0 ? j0 : part_rj[k] > j1 ? j1 : part_rj[k]) - j0;
    kp_ranges rg = {8, part_ri, part_si, local, part_ri, part_si, local, 2, 2, 3, 2, 2, 3};
    return rg;
}

/* The state of p after folding points [0, 150) then [150, M) (offsets 0 and
 * 150) of args a (on the ranges above when ranged), in a new buffer of *bytes. */
static unsigned char *fold_two_parts(kp_context *ctx, kp_plan *p, const kp_array *a, int device, int ranged,
                                     size_t *bytes) {
    kp_state_info info;
    kp_status st = kp_plan_state_info(p, a, 4, NULL, &info);
    CHECK(st == KP_OK, "state info (%s arrays): %s", device ? "device" : "host", kp_context_message(ctx));
    if (st != KP_OK) return NULL;
    unsigned char *s = malloc(info.bytes);
    if (kp_plan_state_init(p, &info, s) != KP_OK) return free(s), NULL;
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.cuda_stream = device ? stream : NULL;
    const int64_t cut[3] = {0, 150, M};
    for (int k = 0; k < 2 && st == KP_OK; k++) {
        kp_array part[4] = {a[0], a[1], a[2], a[3]};
        part[1].data = (char *)a[1].data + (size_t)cut[k] * 3 * 2, part[1].shape[0] = cut[k + 1] - cut[k];
        part[3].data = (char *)a[3].data + (size_t)cut[k] * 2 * 2, part[3].shape[0] = cut[k + 1] - cut[k];
        int64_t local[6];
        kp_ranges rg = part_ranges(cut[k], cut[k + 1], local);
        opt.ranges = ranged ? &rg : NULL;
        st = kp_plan_exec_partial(p, part, 4, cut[k], s, info.bytes, &opt);
    }
    CHECK(st == KP_OK, "fold (%s arrays): %s", device ? "device" : "host", kp_context_message(ctx));
    *bytes = info.bytes;
    return s;
}

/* Partial states of float16 device arrays: the same state bytes as from host
 * arrays on the same engine, dense and ranged (the ranges change the state);
 * finalize takes host arrays only. */
static void case_partial(kp_context *ctx, data *d) {
    kp_array a[5], da[4];
    args_of(d, a);
    void *dm[4] = {NULL};
    for (int k = 0; k < 4; k++) {
        da[k] = a[k];
        da[k].data = dm[k] = dev_upload(a[k].data, span_bytes(&a[k], 2));
        da[k].device = KP_DEVICE_CUDA;
    }
    const char *const texts[] = {GAUSS, "ArgKMin_Reduction(SqDist(x,y)*s, 3, 1)", "LogSumExp_Reduction(-SqDist(x,y)*s, 1)"};
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        kp_plan *p = plan_of(ctx, texts[t], -1);
        size_t hb = 0, db = 0;
        unsigned char *hs = p ? fold_two_parts(ctx, p, a, 0, 0, &hb) : NULL;
        unsigned char *ds = p ? fold_two_parts(ctx, p, da, 1, 0, &db) : NULL;
        size_t at = 0;
        while (hs && ds && hb == db && at < hb && hs[at] == ds[at]) at++;
        CHECK(hs && ds && hb == db && at == hb, "%s: states of device arrays differ from host arrays' (byte %zu of %zu)",
              texts[t], at, hb);
        size_t rhb = 0, rdb = 0;
        unsigned char *rhs = p ? fold_two_parts(ctx, p, a, 0, 1, &rhb) : NULL;
        unsigned char *rds = p ? fold_two_parts(ctx, p, da, 1, 1, &rdb) : NULL;
        CHECK(rhs && rds && rhb == rdb && memcmp(rhs, rds, rhb) == 0,
              "%s: ranged states of device arrays differ from host arrays'", texts[t]);
        CHECK(rhs && hs && rhb == hb && memcmp(rhs, hs, hb) != 0, "%s: the ranges do not change the state", texts[t]);
        free(rhs);
        free(rds);
        if (ds) {
            uint16_t out[N * 3];
            int64_t idx[N * 3];
            kp_array o = kp_array_2d(out, KP_FLOAT16, N, t == 0 ? 2 : 1), oi = kp_array_2d(idx, KP_INT64, N, 3);
            kp_status st = kp_plan_state_finalize(p, da, 4, ds, db, t == 1 ? NULL : &o, t == 1 ? &oi : NULL, NULL);
            CHECK(st != KP_OK && strstr(kp_context_message(ctx), "device"), "finalize with device arrays: status %d '%s'",
                  (int)st, kp_context_message(ctx));
        }
        free(hs);
        free(ds);
        kp_plan_free(p);
    }
    for (int k = 0; k < 4; k++) dev_free(dm[k]);
}

int main(int argc, char **argv) {
    compile_only = argc > 1 && strcmp(argv[1], "compile") == 0;
    const char *why;
    if (compile_only && !kpt_nvrtc_available(&why)) {
        printf("SKIPPED: %s\n", why);
        return 77;
    }
    kp_context *ctx;
    if (kp_context_new(&ctx) != KP_OK) return 1;
    if (kp_context_set_engine(ctx, KP_ENGINE_CUDA) != KP_OK) {
        printf("SKIPPED: no CUDA device (%s)\n", kp_context_message(ctx));
        kp_context_free(ctx);
        return 77;
    }
    if (!cuda_test_setup()) return 1;
    data *d = malloc(sizeof *d);
    data_init(d);
    if (!compile_only) case_every_value(ctx);
    case_reductions(ctx, d);
    case_gradients(ctx, d);
    if (!compile_only) case_layouts(ctx, d);
    if (!compile_only) case_partial(ctx, d);
    free(d);
    cu->StreamDestroy(stream);
    kp_context_free(ctx);
    printf("%d failures\n", failures);
    return failures ? 1 : 0;
}
