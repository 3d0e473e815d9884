/*
 * test_grad.c — symbolic gradients of reductions (kp_formula_grad, Grad(F,v,e)).
 *
 * What it asserts:
 * - for a broad set of formulas (every differentiable op), for Sum, LogSumExp and
 *   SumSoftMaxWeight on both axes, in float64: the gradient w.r.t. every argument
 *   (i-, j-variables and parameters) matches central finite differences of
 *   <out, E> with relative error < 1e-6 (errors normalized by the gradient's norm);
 * - second order: the gradient of a gradient (Hessian-vector product) of the
 *   Gaussian kernel product and of a LogSumExp reduction against finite
 *   differences of the first gradient;
 * - LogSumExp with |F| ~ 1e4 gives finite gradients equal to the dense softmax ones;
 * - the derived formulas stay small (node counts printed and bounded);
 * - the Hamiltonian of the talk that started the field, H = 1/2 sum_ij k(q_i,q_j)<p_i,p_j>,
 *   dH/dq and dH/dp at N = 100,000 in 3D (no N x N memory), against a direct
 *   float64 sum on a subset of rows;
 * - Grad(F,v,e) written in a formula equals the C API's gradient;
 * - Diff(F,v,u) (forward mode) against finite differences along u; Laplacian and
 *   Divergence of Gaussian-type formulas against their closed forms.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kp_test_util.h"

#define MAXA 16

/* Data of one problem: argument arrays by position, sizes. */
typedef struct problem {
    int64_t N, M;
    double *data[MAXA];
} problem;

static int64_t arg_rows(const problem *p, kp_var_category cat) { return cat == KP_VAR_I ? p->N : cat == KP_VAR_J ? p->M : 1; }

/* Output rows of f: N (axis 1), M (axis 0), 1 when summing rows. */
static int64_t out_rows(const problem *p, const kp_formula *f) {
    if (kp_formula_sums_rows(f)) return 1;
    return kp_formula_axis(f) == 1 ? p->N : p->M;
}

/* Runs f in float64 on p's arrays; returns the values (rows x out_dim), or with
 * want_index the int64 indices converted to doubles; malloc'd. */
static double *run_any(kp_context *ctx, const kp_formula *f, const problem *p, int want_index) {
    kp_plan *plan = NULL;
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, KP_FLOAT64, &plan));
    int na = kp_formula_num_args(f);
    kp_array args[MAXA];
    for (int k = 0; k < na; k++) {
        kp_var_category cat;
        int dim;
        KPT_ASSERT_OK(ctx, kp_formula_arg(f, k, &cat, &dim));
        args[k] = cat == KP_VAR_PARAM ? kp_array_1d(p->data[k], KP_FLOAT64, dim)
                                      : kp_array_2d(p->data[k], KP_FLOAT64, arg_rows(p, cat), dim);
    }
    int64_t rows = out_rows(p, f);
    int dim = kp_formula_out_dim(f), idim = kp_formula_out_index_dim(f);
    double *out = calloc((size_t)(rows * (dim > idim ? dim : idim) + 1), sizeof *out);
    int64_t *idx = calloc((size_t)(rows * idim + 1), sizeof *idx);
    kp_array o = kp_array_2d(out, KP_FLOAT64, rows, dim), oi = kp_array_2d(idx, KP_INT64, rows, idim);
    KPT_ASSERT_OK(ctx, kp_plan_exec(plan, args, (size_t)na, dim ? &o : NULL, idim ? &oi : NULL, NULL));
    if (want_index)
        for (int64_t e = 0; e < rows * idim; e++) out[e] = (double)idx[e];
    free(idx);
    kp_plan_free(plan);
    return out;
}

static double *run(kp_context *ctx, const kp_formula *f, const problem *p) { return run_any(ctx, f, p, 0); }

static int is_selection(kp_reduction r) {
    return r != KP_RED_SUM && r != KP_RED_LOGSUMEXP && r != KP_RED_SUMSOFTMAXWEIGHT;
}

static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t k = 0; k < n; k++) s += a[k] * b[k];
    return s;
}

/* <f(p), E> */
static double loss(kp_context *ctx, const kp_formula *f, const problem *p, const double *E) {
    double *out = run(ctx, f, p);
    double l = dot(out, E, (size_t)(out_rows(p, f) * kp_formula_out_dim(f)));
    free(out);
    return l;
}

/* Sets up the extra inputs of gradient formula g of f: E, the forward output, lse. */
static void grad_inputs(kp_context *ctx, const kp_formula *f, const kp_formula *g, problem *p, double *E) {
    int n = kp_formula_num_args(f);
    p->data[n] = E;
    int ng = kp_formula_num_args(g);
    if (ng > n + 1 && is_selection(kp_formula_reduction(f))) {
        kp_formula *fi; /* the forward with its indices */
        KPT_ASSERT_OK(ctx, kp_formula_with_indices(ctx, f, &fi));
        p->data[n + 1] = run_any(ctx, fi, p, 1);
        kp_formula_free(fi);
    } else if (ng > n + 1) {
        p->data[n + 1] = run(ctx, f, p);
    }
    if (ng > n + 2) {
        kp_formula *lse;
        KPT_ASSERT_OK(ctx, kp_formula_softmax_lse(ctx, f, &lse));
        p->data[n + 2] = run(ctx, lse, p);
        kp_formula_free(lse);
    }
}

static void free_grad_inputs(const kp_formula *f, const kp_formula *g, problem *p) {
    int n = kp_formula_num_args(f), ng = kp_formula_num_args(g);
    for (int k = n + 1; k < ng; k++) {
        free(p->data[k]);
        p->data[k] = NULL;
    }
    p->data[n] = NULL;
}

/*
 * Checks d<f, E>/d(arg k) from kp_formula_grad against central differences on
 * every element of arg k. Error normalized by the gradient's largest entry.
 */
static double check_grad_fd(kp_context *ctx, const kp_formula *f, problem *p, int k, const char *label) {
    kpt_rng rng;
    kpt_rng_seed(&rng, 99u + (uint64_t)k);
    int64_t rows = out_rows(p, f);
    size_t nout = (size_t)(rows * kp_formula_out_dim(f));
    double *E = kpt_random_array(&rng, nout, -1, 1);
    kp_formula *g = NULL;
    KPT_ASSERT_OK(ctx, kp_formula_grad(ctx, f, k, &g));
    grad_inputs(ctx, f, g, p, E);
    double *G = run(ctx, g, p);
    free_grad_inputs(f, g, p);
    kp_var_category cat;
    int dim;
    KPT_ASSERT_OK(ctx, kp_formula_arg(f, k, &cat, &dim));
    size_t n = (size_t)(arg_rows(p, cat) * dim);
    /* Normalize by the gradient's scale, but not below the finite differences'
     * own noise (a gradient that is exactly 0, e.g. softmax shift invariance). */
    double maxg = 1e-3, maxerr = 0;
    for (size_t e = 0; e < n; e++) maxg = fmax(maxg, fabs(G[e]));
    for (size_t e = 0; e < n; e++) {
        double x0 = p->data[k][e], h = 1e-6 * fmax(1.0, fabs(x0));
        p->data[k][e] = x0 + h;
        double lp = loss(ctx, f, p, E);
        p->data[k][e] = x0 - h;
        double lm = loss(ctx, f, p, E);
        p->data[k][e] = x0;
        double fd = (lp - lm) / (2 * h);
        maxerr = fmax(maxerr, fabs(fd - G[e]) / maxg);
        if (getenv("KPT_DEBUG_GRAD")) /* debugging aid: every element, finite difference vs symbolic */
            printf("    e=%zu fd=%g G=%g\n", e, fd, G[e]);
    }
    if (maxerr > 1e-6) print_message("  [%s] arg %d: finite-difference error %.3g (max |grad| %.3g)\n", label, k, maxerr, maxg);
    kp_formula_free(g);
    free(G);
    free(E);
    return maxerr;
}

typedef struct grad_case {
    const char *text; /* the reduction, with aliases x, y (dim 3), u (Vi 1), b (Vj 1), s (Pm 1) */
    double lo, hi;    /* input range */
} grad_case;

static const char *aliases5[] = {"x = Vi(3)", "y = Vj(3)", "u = Vi(1)", "b = Vj(1)", "s = Pm(1)"};

/* One formula, every argument, both axes. */
static void check_case(kp_context *ctx, const char *text, double lo, double hi, int64_t N, int64_t M) {
    kp_formula *f = NULL;
    kp_status st = kp_formula_parse(ctx, text, aliases5, 5, &f);
    if (st != KP_OK) print_error("%s: %s\n", text, kp_context_message(ctx));
    assert_int_equal(st, KP_OK);
    problem p;
    memset(&p, 0, sizeof p);
    p.N = N;
    p.M = M;
    kpt_rng rng;
    kpt_rng_seed(&rng, 7);
    int dims[5] = {3, 3, 1, 1, 1};
    int64_t rows[5] = {N, M, N, M, 1};
    for (int k = 0; k < 5; k++) p.data[k] = kpt_random_array(&rng, (size_t)(rows[k] * dims[k]), lo, hi);
    p.data[4][0] = 0.7; /* the parameter s */
    int fails = 0;
    for (int k = 0; k < 5; k++) {
        kp_var_category cat;
        if (kp_formula_arg(f, k, &cat, NULL) != KP_OK) continue;
        fails += check_grad_fd(ctx, f, &p, k, text) > 1e-6;
    }
    for (int k = 0; k < 5; k++) free(p.data[k]);
    kp_formula_free(f);
    assert_int_equal(fails, 0);
}

/* Formulas covering every differentiable op; %d is the axis. */
static const grad_case sum_cases[] = {
    {"Sum_Reduction(Exp(-SqDist(x,y)*s)*b, %d)", -1, 1},
    {"Sum_Reduction(Exp(-SqDist(x,y)*s)*y, %d)", -1, 1},
    {"Sum_Reduction((x|y)*u + b/u - u*u*b, %d)", 0.5, 1.5},
    {"Sum_Reduction(Inv(u+b) + Square(x-y) + Pow(x*b,3) + Pow(u,-2), %d)", 0.5, 1.5},
    {"Sum_Reduction(Powf(u+b, s) + Sqrt(u*b) + Rsqrt(u+b*s), %d)", 0.5, 1.5},
    {"Sum_Reduction(Log(u+b) + XLogX(u*b) + Exp(x-y), %d)", 0.5, 1.5},
    {"Sum_Reduction(Sin(x*b) + Cos(y*u) + Tanh(x-y) + Erf(x*s), %d)", -1, 1},
    {"Sum_Reduction(Asin(u*b*0.5) + Acos(u-b) * 0.3 + Atan(x+y) + Atan2(x, y+3), %d)", -0.5, 0.5},
    {"Sum_Reduction(SinXDivX(x-y) + Abs(x-y) + ReLU(x-y) + Sign(x)*b + Step(x-y)*u, %d)", -1, 1},
    {"Sum_Reduction(Clamp(x-y, -0.3, 0.4)*b + IfElse(x-y, x*b, y*u) + Floor(x)*b + Round(x,1)*u, %d)", -1, 1},
    {"Sum_Reduction(Norm2(x-y) + Normalize(x+y)*b + SqNorm2(x*b), %d)", 0.5, 1.5},
    {"Sum_Reduction(WeightedSqNorm(s, x-y) + WeightedSqDist(y, x, y*u) + WeightedSqNorm(TensorProd(y,y), x), %d)", -1, 1},
    {"Sum_Reduction(Sum(x*y) + Max(x-y)*b + Min(x*y)*u + Elem(x,1)*Elem(y,2) + Extract(x*y,1,2), %d)", -1, 1},
    {"Sum_Reduction(Concat(x*b, y*u) + OneHot(u*0+1, 6)*b, %d)", -1, 1},
    {"Sum_Reduction(MatVecMult(TensorProd(x,y), y) + VecMatMult(x, TensorProd(y,x)) + TensorProd(x*b,u), %d)", -1, 1},
    {"Sum_Reduction(Mod(x*b, 0.7, 0.1) + ArgMax(x)*b + ArgMin(y)*u + (x<y)*u + (x>=y)*b, %d)", -1, 1},
    /* spellings that canonical forms rewrite (formula/canon.c): SqDist, scalar products, exact divisions */
    {"Sum_Reduction(Exp(-Sum(Square(x-y))/s)*b + Sum(x*y)*u + IntCst(1)/(IntCst(1)+Sum(Square(x*u))/IntCst(4)), %d)",
     -1, 1},
    {"Sum_Reduction(Exp(-Sqrt(Sum(Square(x-y)))*s)*b + Sum(Square(x-y)*y)*u - (-x)/(-s) + Sum(Square(x-b)), %d)",
     0.5, 1.5},
    {"LogSumExp_Reduction(-SqDist(x,y)*s + b, %d)", -1, 1},
    {"LogSumExp_Reduction(x*y*s + u, %d)", -1, 1},
    {"SumSoftMaxWeight_Reduction(-SqDist(x,y)*s + b, %d, y*u)", -1, 1},
    {"Min_Reduction(SqDist(x,y)*b + u*s, %d)", -1, 1},
    {"Max_ArgMax_Reduction(x*y + b*s, %d)", -1, 1},
    {"Min_ArgMin_Reduction(Exp(x-y)*u, %d)", -1, 1},
    {"KMin_Reduction(SqDist(x,y) + u*b*s, 3, %d)", -1, 1},
    {"KMin_ArgKMin_Reduction(x - y*b, 2, %d)", -1, 1},
    {"ArgMin_Reduction(SqDist(x,y)*b, %d)", -1, 1},
    {"ArgKMin_Reduction(SqDist(x,y)*b, 2, %d)", -1, 1},
};

static void test_fd_all_ops(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    char text[512];
    for (size_t c = 0; c < sizeof sum_cases / sizeof sum_cases[0]; c++)
        for (int axis = 0; axis <= 1; axis++) {
            snprintf(text, sizeof text, sum_cases[c].text, axis);
            check_case(ctx, text, sum_cases[c].lo, sum_cases[c].hi, 5, 7);
        }
    kp_context_free(ctx);
}

/* Hessian-vector product: gradient of (the gradient w.r.t. arg k) w.r.t. arg k,
 * against finite differences of the first gradient along a direction. The first
 * gradient's extra inputs (E, and O for LogSumExp) are held fixed, as an autodiff
 * framework holds saved tensors: it chains through O with its own graph. */
static void check_hvp(kp_context *ctx, const char *text, int k) {
    kp_formula *f = NULL, *g = NULL, *h = NULL;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, text, aliases5, 5, &f));
    problem p;
    memset(&p, 0, sizeof p);
    p.N = 6;
    p.M = 9;
    kpt_rng rng;
    kpt_rng_seed(&rng, 3);
    int dims[5] = {3, 3, 1, 1, 1};
    int64_t rows[5] = {p.N, p.M, p.N, p.M, 1};
    for (int a = 0; a < 5; a++) p.data[a] = kpt_random_array(&rng, (size_t)(rows[a] * dims[a]), -1, 1);
    p.data[4][0] = 0.8;
    KPT_ASSERT_OK(ctx, kp_formula_grad(ctx, f, k, &g));
    double *E = kpt_random_array(&rng, (size_t)(out_rows(&p, f) * kp_formula_out_dim(f)), -1, 1);
    grad_inputs(ctx, f, g, &p, E); /* g's extra inputs stay fixed: d/dx at fixed E and O */
    KPT_ASSERT_OK(ctx, kp_formula_grad(ctx, g, k, &h));
    printf("  [%s] nodes: f %zu, grad %zu, grad of grad %zu\n", text, kp_formula_node_count(f),
           kp_formula_node_count(g), kp_formula_node_count(h));
    assert_true(kp_formula_node_count(h) < 80);
    int ng = kp_formula_num_args(g);
    kp_var_category cat;
    int dim;
    KPT_ASSERT_OK(ctx, kp_formula_arg(f, k, &cat, &dim));
    size_t nk = (size_t)(arg_rows(&p, cat) * dim), ngo = (size_t)(out_rows(&p, g) * kp_formula_out_dim(g));
    double *W = kpt_random_array(&rng, ngo, -1, 1); /* direction on g's output */
    p.data[ng] = W;
    double *HW = run(ctx, h, &p); /* d<g, W>/d arg k */
    p.data[ng] = NULL;
    double maxh = 1e-300, maxerr = 0;
    for (size_t e = 0; e < nk; e++) maxh = fmax(maxh, fabs(HW[e]));
    for (size_t e = 0; e < nk; e++) {
        double x0 = p.data[k][e], hh = 1e-5;
        p.data[k][e] = x0 + hh;
        double *gp = run(ctx, g, &p);
        p.data[k][e] = x0 - hh;
        double *gm = run(ctx, g, &p);
        p.data[k][e] = x0;
        double fd = (dot(gp, W, ngo) - dot(gm, W, ngo)) / (2 * hh);
        maxerr = fmax(maxerr, fabs(fd - HW[e]) / maxh);
        free(gp);
        free(gm);
    }
    printf("  [%s] Hessian-vector product vs finite differences: %.3g\n", text, maxerr);
    assert_true(maxerr < 1e-6);
    free(HW);
    free(W);
    free_grad_inputs(f, g, &p); /* the forward output O held for LogSumExp */
    free(E);
    for (int a = 0; a < 5; a++) free(p.data[a]);
    kp_formula_free(h);
    kp_formula_free(g);
    kp_formula_free(f);
}

static void test_hessian_vector(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    check_hvp(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)", 0);
    check_hvp(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)", 1);
    check_hvp(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 0)", 0);
    check_hvp(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)", 4);
    check_hvp(ctx, "LogSumExp_Reduction(-SqDist(x,y)*s + b, 1)", 0);
    check_hvp(ctx, "LogSumExp_Reduction(-SqDist(x,y)*s + b, 0)", 1);
    kp_context_free(ctx);
}

/* LogSumExp at |F| ~ 1e4: the gradient is the softmax-weighted sum, finite. */
static void test_lse_large_magnitude(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    kp_formula *f = NULL, *g = NULL;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "LogSumExp_Reduction((x|y)*s, 1)", aliases5, 5, &f));
    problem p;
    memset(&p, 0, sizeof p);
    p.N = 4;
    p.M = 50;
    kpt_rng rng;
    kpt_rng_seed(&rng, 5);
    p.data[0] = kpt_random_array(&rng, (size_t)p.N * 3, -100, 100);
    p.data[1] = kpt_random_array(&rng, (size_t)p.M * 3, -1, 1);
    p.data[2] = kpt_random_array(&rng, (size_t)p.N, 0, 1);
    p.data[3] = kpt_random_array(&rng, (size_t)p.M, 0, 1);
    p.data[4] = kpt_random_array(&rng, 1, 0, 1);
    p.data[4][0] = 50; /* |F| up to ~1e4 */
    double E[4] = {1, -1, 0.5, 2};
    KPT_ASSERT_OK(ctx, kp_formula_grad(ctx, f, 0, &g));
    grad_inputs(ctx, f, g, &p, E);
    double *G = run(ctx, g, &p);
    free_grad_inputs(f, g, &p);
    for (int64_t i = 0; i < p.N; i++) {
        double m = -INFINITY, z = 0, ref[3] = {0, 0, 0};
        double F[50];
        for (int64_t j = 0; j < p.M; j++) {
            F[j] = 50 * dot(p.data[0] + 3 * i, p.data[1] + 3 * j, 3);
            m = fmax(m, F[j]);
        }
        assert_true(fabs(m) > 1e3);
        for (int64_t j = 0; j < p.M; j++) z += exp(F[j] - m);
        for (int64_t j = 0; j < p.M; j++)
            for (int d = 0; d < 3; d++) ref[d] += E[i] * exp(F[j] - m) / z * 50 * p.data[1][3 * j + d];
        for (int d = 0; d < 3; d++) {
            assert_true(isfinite(G[3 * i + d]));
            assert_true(fabs(G[3 * i + d] - ref[d]) <= 1e-9 * (1 + fabs(ref[d])));
        }
    }
    free(G);
    for (int a = 0; a < 5; a++) free(p.data[a]);
    kp_formula_free(g);
    kp_formula_free(f);
    kp_context_free(ctx);
}

/* Grad(F, x, e) written in the formula equals the C API gradient. */
static void test_grad_in_formula(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "u = Vi(1)", "b = Vj(1)", "s = Pm(1)", "e = Vi(1)"};
    kp_formula *f = NULL, *g = NULL, *h = NULL;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)", al, 5, &f));
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(Grad(Exp(-SqDist(x,y)*s)*b, x, e), 1)", al, 6, &h));
    KPT_ASSERT_OK(ctx, kp_formula_grad(ctx, f, 0, &g));
    char a[1024], b[1024];
    kp_formula_print(g, a, sizeof a);
    kp_formula_print(h, b, sizeof b);
    printf("  grad: %s\n", a);
    assert_string_equal(a, b);
    /* Not a variable: an error that names the column. */
    kp_formula *bad = NULL;
    assert_int_equal(kp_formula_parse(ctx, "Sum_Reduction(Grad(Exp(x), x*2, e), 1)", al, 6, &bad), KP_ERR_PARSE);
    assert_non_null(strstr(kp_context_message(ctx), "col 28"));
    assert_int_equal(kp_formula_parse(ctx, "Sum_Reduction(Grad(Exp(x), x, u), 1)", al, 6, &bad), KP_ERR_SHAPE);
    /* Indices for Min-type gradients; none for a Sum; unused arguments are refused. */
    kp_formula *m = NULL, *mi = NULL;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "KMin_Reduction(SqDist(x,y), 2, 1)", al, 5, &m));
    KPT_ASSERT_OK(ctx, kp_formula_with_indices(ctx, m, &mi));
    assert_int_equal(kp_formula_reduction(mi), KP_RED_KMIN_ARGKMIN);
    assert_int_equal(kp_formula_out_index_dim(mi), 2);
    assert_int_equal(kp_formula_with_indices(ctx, f, &bad), KP_ERR_ARGUMENT);
    assert_int_equal(kp_formula_grad(ctx, f, 9, &bad), KP_ERR_ARGUMENT);
    kp_formula_free(mi);
    kp_formula_free(m);
    /* A parameter gradient sums its rows; unsummed gives them back, and prints without RowSum. */
    kp_formula *gs = NULL, *gu = NULL;
    KPT_ASSERT_OK(ctx, kp_formula_grad(ctx, f, 4, &gs));
    assert_int_equal(kp_formula_sums_rows(gs), 1);
    KPT_ASSERT_OK(ctx, kp_formula_unsummed(ctx, gs, &gu));
    assert_int_equal(kp_formula_sums_rows(gu), 0);
    kp_formula_print(gs, a, sizeof a);
    kp_formula_print(gu, b, sizeof b);
    assert_true(strncmp(a, "RowSum(", 7) == 0);
    assert_true(strncmp(b, "RowSum(", 7) != 0 && strstr(a, b) == a + 7);
    kp_formula_free(gu);
    kp_formula_free(gs);
    kp_formula_free(g);
    kp_formula_free(h);
    kp_formula_free(f);
    kp_context_free(ctx);
}

/*
 * The seed case: H(q,p) = 1/2 sum_ij exp(-|q_i-q_j|^2 g) <p_i,p_j>, written as the
 * Sum over j of F = Exp(-SqDist(q_i,q_j) g) (p_i|p_j) with q and p passed both as
 * i- and j-variables; dH/dq = grad w.r.t. arg 0 + grad w.r.t. arg 1 with
 * E = 1/2, and likewise for p. N = 100,000 in 3D in float32 (no N x N memory),
 * checked on 20 rows against a direct float64 sum.
 */
static void test_hamiltonian_seed(void **state) {
    (void)state;
    if (kpt_skip_large()) {
        skip();
    }
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    const int64_t N = 100000;
    const char *al[] = {"qi = Vi(3)", "qj = Vj(3)", "pi = Vi(3)", "pj = Vj(3)", "g = Pm(1)"};
    kp_formula *f = NULL, *gr[4] = {NULL, NULL, NULL, NULL};
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(qi,qj)*g)*(pi|pj), 1)", al, 5, &f));
    for (int k = 0; k < 4; k++) KPT_ASSERT_OK(ctx, kp_formula_grad(ctx, f, k, &gr[k]));
    kpt_rng rng;
    kpt_rng_seed(&rng, 11);
    double *q = kpt_random_array(&rng, (size_t)N * 3, 0, 10), *pd = kpt_random_array(&rng, (size_t)N * 3, -1, 1);
    float *qf = kpt_to_dtype(q, (size_t)N * 3, KP_FLOAT32), *pf = kpt_to_dtype(pd, (size_t)N * 3, KP_FLOAT32);
    float gval = 4.0f, *ones = malloc((size_t)N * sizeof *ones);
    for (int64_t i = 0; i < N; i++) ones[i] = 0.5f; /* E = dH/dout_i = 1/2 */
    kp_array args[6] = {kp_array_2d(qf, KP_FLOAT32, N, 3), kp_array_2d(qf, KP_FLOAT32, N, 3),
                        kp_array_2d(pf, KP_FLOAT32, N, 3), kp_array_2d(pf, KP_FLOAT32, N, 3),
                        kp_array_1d(&gval, KP_FLOAT32, 1),  kp_array_2d(ones, KP_FLOAT32, N, 1)};
    float *res[4];
    for (int k = 0; k < 4; k++) {
        kp_plan *plan = NULL;
        KPT_ASSERT_OK(ctx, kp_plan_new(ctx, gr[k], KP_FLOAT32, &plan));
        res[k] = malloc((size_t)N * 3 * sizeof(float));
        kp_array o = kp_array_2d(res[k], KP_FLOAT32, N, 3);
        KPT_ASSERT_OK(ctx, kp_plan_exec(plan, args, 6, &o, NULL, NULL));
        kp_plan_free(plan);
    }
    /* Direct float64 sums: dH/dq_i = sum_j -2 g (q_i - q_j) k_ij <p_i,p_j>, dH/dp_i = sum_j k_ij p_j. */
    double maxerr_q = 0, maxerr_p = 0;
    for (int t = 0; t < 20; t++) {
        int64_t i = kpt_rng_int(&rng, 0, N - 1);
        double dq[3] = {0, 0, 0}, dp[3] = {0, 0, 0};
        for (int64_t j = 0; j < N; j++) {
            double d2 = 0;
            for (int c = 0; c < 3; c++) d2 += (q[3 * i + c] - q[3 * j + c]) * (q[3 * i + c] - q[3 * j + c]);
            double kij = exp(-d2 * gval), pp = dot(pd + 3 * i, pd + 3 * j, 3);
            for (int c = 0; c < 3; c++) {
                dq[c] += -2 * gval * (q[3 * i + c] - q[3 * j + c]) * kij * pp;
                dp[c] += kij * pd[3 * j + c];
            }
        }
        for (int c = 0; c < 3; c++) {
            double gq = (double)res[0][3 * i + c] + (double)res[1][3 * i + c]; /* E = 1/2 holds the 1/2 */
            double gp = (double)res[2][3 * i + c] + (double)res[3][3 * i + c];
            maxerr_q = fmax(maxerr_q, fabs(gq - dq[c]) / (fabs(dq[0]) + fabs(dq[1]) + fabs(dq[2]) + 1e-12));
            maxerr_p = fmax(maxerr_p, fabs(gp - dp[c]) / (fabs(dp[0]) + fabs(dp[1]) + fabs(dp[2]) + 1e-12));
        }
    }
    printf("  Hamiltonian N=%lld: dH/dq rel err %.3g, dH/dp rel err %.3g (float32 vs float64)\n", (long long)N, maxerr_q,
           maxerr_p);
    assert_true(maxerr_q < 1e-4);
    assert_true(maxerr_p < 1e-4);
    for (int k = 0; k < 4; k++) {
        free(res[k]);
        kp_formula_free(gr[k]);
    }
    free(ones);
    free(qf);
    free(pf);
    free(q);
    free(pd);
    kp_formula_free(f);
    kp_context_free(ctx);
}

/* Forward mode and second-order operators, against finite differences and closed forms. */
static void test_diff_laplacian_divergence(void **state) {
    (void)state;
    kp_context *ctx;
    assert_int_equal(kpt_context_new(&ctx), KP_OK);
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "w = Vi(3)"};
    const int64_t N = 5, M = 8;
    kpt_rng rng;
    kpt_rng_seed(&rng, 21);
    double *x = kpt_random_array(&rng, (size_t)N * 3, -1, 1), *y = kpt_random_array(&rng, (size_t)M * 3, -1, 1);
    double *w = kpt_random_array(&rng, (size_t)N * 3, -1, 1), s = 0.9;
    double diff[15], fp[15], fm[15], lap[5], div[5];
    kpt_arg args[4] = {{x, N, 3}, {y, M, 3}, {&s, -1, 1}, {w, N, 3}};
    KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, "Sum_Reduction(Diff(Exp(-SqDist(x,y)*s)*y, x, w), 1)", al, 4,
                               KP_FLOAT64, args, 4, N, 3, diff, 0, NULL, NULL));
    const double h = 1e-6;
    double *xs = malloc((size_t)N * 3 * sizeof *xs);
    for (int sign = -1; sign <= 1; sign += 2) {
        for (int64_t e = 0; e < N * 3; e++) xs[e] = x[e] + sign * h * w[e];
        kpt_arg a2[3] = {{xs, N, 3}, {y, M, 3}, {&s, -1, 1}};
        KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, "Sum_Reduction(Exp(-SqDist(x,y)*s)*y, 1)", al, 3, KP_FLOAT64,
                                   a2, 3, N, 3, sign > 0 ? fp : fm, 0, NULL, NULL));
    }
    for (int64_t e = 0; e < N * 3; e++) assert_true(fabs(diff[e] - (fp[e] - fm[e]) / (2 * h)) < 1e-7);
    KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, "Sum_Reduction(Laplacian(Exp(-SqDist(x,y)*s), x), 1)", al, 3,
                               KP_FLOAT64, args, 3, N, 1, lap, 0, NULL, NULL));
    KPT_ASSERT_OK(ctx, kpt_run(ctx, KPT_VIA_PLAN, "Sum_Reduction(Divergence((x-y)*Exp(-SqDist(x,y)*s), x), 1)", al, 3,
                               KP_FLOAT64, args, 3, N, 1, div, 0, NULL, NULL));
    for (int64_t i = 0; i < N; i++) {
        double rl = 0, rd = 0; /* closed forms: (4 s^2 r^2 - 2 s D) e^{-s r^2} and (D - 2 s r^2) e^{-s r^2} */
        for (int64_t j = 0; j < M; j++) {
            double r2 = 0;
            for (int c = 0; c < 3; c++) r2 += (x[3 * i + c] - y[3 * j + c]) * (x[3 * i + c] - y[3 * j + c]);
            rl += (4 * s * s * r2 - 2 * s * 3) * exp(-s * r2);
            rd += (3 - 2 * s * r2) * exp(-s * r2);
        }
        assert_true(fabs(lap[i] - rl) < 1e-12 * (1 + fabs(rl)));
        assert_true(fabs(div[i] - rd) < 1e-12 * (1 + fabs(rd)));
    }
    kp_formula *f = NULL;
    assert_int_equal(kp_formula_parse(ctx, "Sum_Reduction(Laplacian(x, x), 1)", al, 3, &f), KP_ERR_SHAPE);
    assert_non_null(strstr(kp_context_message(ctx), "col 15"));
    assert_int_equal(kp_formula_parse(ctx, "Sum_Reduction(Diff(x, x, s), 1)", al, 3, &f), KP_ERR_SHAPE);
    free(xs);
    free(x);
    free(y);
    free(w);
    kp_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_in_formula),      cmocka_unit_test(test_fd_all_ops),
        cmocka_unit_test(test_hessian_vector),       cmocka_unit_test(test_lse_large_magnitude),
        cmocka_unit_test(test_diff_laplacian_divergence), cmocka_unit_test(test_hamiltonian_seed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
