/* gpu_cases.c — see gpu_cases.h. */
#include "gpu_cases.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_test_util.h"

const char *const kpt_gpu_aliases[] = {"x = Vi(0,3)", "y = Vj(1,3)", "b = Vj(2,2)", "s = Pm(3,1)",
                                       "u = Vi(4,1)", "v = Vj(5,1)", "A = Vj(6,9)"};
const int kpt_gpu_naliases = 7;

#define NG {-1, -1}
const kpt_gpu_case kpt_gpu_cases[] = {
    /* ops */
    {"Sum_Reduction(Exp(-SqDist(x,y)*s)*b, %d)", NG}, /* fused Sum of a product */
    {"Sum_Reduction(x*y + x/(y+3) - (x-y) + Inv(2+y)*Square(x) - Minus(y), %d)", NG},
    {"Sum_Reduction(Pow(x-y,3) + Pow(y+2,-2) + Powf(2+Square(x), 1+Square(y)), %d)", NG},
    {"Sum_Reduction(Sqrt(1+Square(x-y)) + Rsqrt(1+Square(x-y)) + Rsqrt(u-u+Square(v)-Square(v)), %d)", NG},
    {"Sum_Reduction((u<v) + (u<=v)*2 + (u>v)*3 + (u>=v)*4 + (u==v)*5 + (u!=v)*6 + (Floor(3*u)==Floor(3*v)), %d)", NG},
    {"Sum_Reduction(Log(2+x*y) + XLogX(Abs(x-y)) + XLogX(Step(u)*Step(v)*0*u), %d)", NG},
    {"Sum_Reduction(Sin(x)*Cos(y) + Asin(x*0.5) + Acos(y*0.5) + Atan(x-y) + Atan2(x,y), %d)", NG},
    {"Sum_Reduction(SinXDivX(x-y) + Tanh(x*y) + Erf(x-y) + SinXDivX(Floor(u*v+1)), %d)", NG},
    {"Sum_Reduction(Abs(x-y) + Sign(x-y) + Step(x-y) + ReLU(x-y) + Floor(3*x*y) + Round(x*y, 2) + Sign(Floor(u*v)), %d)", NG},
    {"Sum_Reduction(Clamp(x-y, -0.5, 0.5) + IfElse(x-y, x, y) + Clamp(u, v, v+1), %d)", NG},
    {"Sum_Reduction((x|y) + Sum(x*y) + Max(x-y) + Min(x+y) + ArgMax(x-y) + ArgMin(x+y), %d)", NG},
    {"Sum_Reduction(Extract(Concat(x,y), 2, 3) + Elem(b, 1) + OneHot(Floor(3*Abs(u)*v*v), 3), %d)", NG},
    {"Sum_Reduction(Concat(MatVecMult(A, x) + VecMatMult(x, A), TensorProd(x, b)), %d)", NG},
    {"Sum_Reduction(Norm2(x-y)*Normalize(x+y+3) + WeightedSqNorm(s, x-y) + Mod(x*y*5, 2), %d)", NG},
    {"Sum_Reduction(y*s, %d)", NG},                 /* F depends on the reduced axis only */
    {"Sum_Reduction(x + Exp(s), %d)", NG},           /* F uniform over the reduced axis */
    {"Sum_Reduction(Divide(Add(Subtract(x, y), Mult(x, y)), 4), %d)", NG},
    /* reductions */
    {"LogSumExp_Reduction(b - SqDist(x,y)*2, %d)", NG},
    {"SumSoftMaxWeight_Reduction(-SqDist(x,y)*2, %d, Concat(b, y))", NG},
    {"Min_Reduction(x-y, %d)", NG},
    {"Max_Reduction(SqDist(x,y), %d)", NG},
    {"ArgMin_Reduction(SqDist(x,y), %d)", NG},
    {"ArgMax_Reduction(x*y, %d)", NG},
    {"Min_ArgMin_Reduction(x-y, %d)", NG},
    {"Max_ArgMax_Reduction(-SqDist(x,y), %d)", NG},
    {"ArgMin_Reduction(Floor(2*u*v), %d)", NG}, /* many ties: smallest index */
    {"Max_ArgMax_Reduction(Floor(3*u*v), %d)", NG},
    {"KMin_Reduction(SqDist(x,y), 3, %d)", NG},
    {"ArgKMin_Reduction(x-y, 2, %d)", NG},
    {"KMin_ArgKMin_Reduction(SqDist(x,y), 4, %d)", NG},
    {"KMin_ArgKMin_Reduction(Floor(2*u*v), 3, %d)", NG},
    /* gradients */
    {"Sum_Reduction(Exp(-SqDist(x,y)*s)*b, %d)", {0, -1}},
    {"Sum_Reduction(Exp(-SqDist(x,y)*s)*b, %d)", {1, -1}},
    {"Sum_Reduction(Exp(-SqDist(x,y)*s)*b, %d)", {3, -1}},
    {"Sum_Reduction(Exp(-SqDist(x,y)*s)*b, %d)", {0, 1}},
    {"LogSumExp_Reduction(b - SqDist(x,y)*2, %d)", {0, -1}},
    {"SumSoftMaxWeight_Reduction(-SqDist(x,y)*2, %d, Concat(b, y))", {0, -1}},
    {"Min_ArgMin_Reduction(x-y, %d)", {1, -1}},
    {"KMin_Reduction(SqDist(x,y), 3, %d)", {0, -1}},
    {"Sum_Reduction(Sin(x)*Cos(y) + Log(2+x*y) + Sqrt(1+Square(x-y)), %d)", {1, -1}},
};
const int kpt_gpu_ncases = (int)(sizeof kpt_gpu_cases / sizeof kpt_gpu_cases[0]);

kp_status kpt_gpu_case_formula(kp_context *ctx, int c, int axis, kp_formula **out, const char **label) {
    static char buf[512], text[400];
    const kpt_gpu_case *k = &kpt_gpu_cases[c];
    snprintf(text, sizeof text, k->fmt, axis);
    snprintf(buf, sizeof buf, "case %d axis %d: %s grad %d %d", c, axis, text, k->grad[0], k->grad[1]);
    if (label) *label = buf;
    kp_formula *f = NULL;
    kp_status st = kp_formula_parse(ctx, text, kpt_gpu_aliases, (size_t)kpt_gpu_naliases, &f);
    for (int g = 0; g < 2 && st == KP_OK && k->grad[g] >= 0; g++) {
        kp_formula *fg = NULL;
        if (g == 0 && kp_formula_out_index_dim(f) && kp_formula_out_dim(f) == 0) break;
        st = kp_formula_grad(ctx, f, k->grad[g], &fg);
        kp_formula_free(f);
        f = fg;
    }
    if (st != KP_OK) {
        kp_formula_free(f);
        return st;
    }
    *out = f;
    return KP_OK;
}

void kpt_gpu_fill(struct kpt_rng *rng, double *a, size_t n, int pos, int base_nargs) {
    if (pos >= base_nargs) kpt_fill_int(rng, a, n, 0, 5); /* gradient extras: E, outputs, indices */
    else if (pos == 3) kpt_fill_uniform(rng, a, n, 0.5, 1.5);
    else kpt_fill_uniform(rng, a, n, -1, 1);
}

size_t kpt_gpu_compare(const char *label, kp_dtype dt, const double *got, const double *ref, size_t n,
                       const int64_t *gi, const int64_t *ri, size_t ni) {
    double mx = 0;
    for (size_t k = 0; k < n; k++)
        if (isfinite(ref[k]) && fabs(ref[k]) > mx) mx = fabs(ref[k]);
    double *scale = malloc((n ? n : 1) * sizeof *scale);
    for (size_t k = 0; k < n; k++) scale[k] = mx > 0 ? mx : 1;
    size_t bad = kpt_check(label, got, ref, scale, n, dt == KP_FLOAT32 ? 1e-5 : 1e-12, 0);
    free(scale);
    bad += kpt_check_index(label, gi, ri, ni);
    if (bad) printf("FAIL: %s (%zu mismatches)\n", label, bad);
    return bad;
}

kp_status kpt_gpu_batched_new(kp_context *ctx, kp_dtype dt, kpt_gpu_batched *bt) {
    const char *aliases[] = {"x = Vi(0,3)", "y = Vj(1,3)", "b = Vj(2,2)"};
    enum { N = KPT_BATCHED_N, M = KPT_BATCHED_M };
    memset(bt, 0, sizeof *bt);
    bt->dt = dt;
    kpt_rng rng;
    kpt_rng_seed(&rng, 99);
    bt->nx = 3 * N;
    bt->ny = 3 * M * 3;
    bt->nb = 2 * 3 * M * 2;
    double *xd = malloc(bt->nx * sizeof *xd), *yd = malloc(bt->ny * sizeof *yd), *bd = malloc(bt->nb * sizeof *bd);
    kpt_fill_uniform(&rng, xd, bt->nx, -1, 1);
    kpt_fill_uniform(&rng, yd, bt->ny, -1, 1);
    kpt_fill_uniform(&rng, bd, bt->nb, -1, 1);
    bt->x = kpt_to_dtype(xd, bt->nx, dt);
    bt->y = kpt_to_dtype(yd, bt->ny, dt);
    bt->b = kpt_to_dtype(bd, bt->nb, dt);
    free(xd);
    free(yd);
    free(bd);
    bt->args[0] = kp_array_2d(bt->x, dt, N, 3); /* x: (N,3) stored as (3,N) */
    bt->args[0].strides[0] = 1;
    bt->args[0].strides[1] = N;
    int64_t ys[4] = {1, 3, M, 3}, bs[4] = {2, 3, M, 2};
    bt->args[1] = kp_array_nd(bt->y, dt, 4, ys);
    bt->args[1].strides[0] = 0; /* broadcast over the first batch dimension */
    bt->args[2] = kp_array_nd(bt->b, dt, 4, bs);
    int64_t os[4] = {2, 3, N, 2};
    memcpy(bt->out_shape, os, sizeof os);
    bt->n = 2 * 3 * N * 2;
    void *o = kpt_alloc_dtype(bt->n, dt);
    kp_array out = kp_array_nd(o, dt, 4, os);
    kp_status st = kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y))*b, 1)", aliases, 3, &bt->f);
    if (st == KP_OK) st = kp_plan_new(ctx, bt->f, dt, &bt->plan);
    if (st == KP_OK) st = kp_context_set_engine(ctx, KP_ENGINE_CPU);
    if (st == KP_OK) st = kp_plan_exec(bt->plan, bt->args, 3, &out, NULL, NULL);
    bt->ref = malloc(bt->n * sizeof *bt->ref);
    if (st == KP_OK) kpt_from_dtype(o, dt, bt->n, bt->ref);
    free(o);
    return st;
}

void kpt_gpu_batched_free(kpt_gpu_batched *bt) {
    kp_plan_free(bt->plan);
    kp_formula_free(bt->f);
    free(bt->x);
    free(bt->y);
    free(bt->b);
    free(bt->ref);
    memset(bt, 0, sizeof *bt);
}
