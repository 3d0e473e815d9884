/* solve.c — kp_plan_solve: conjugate gradients on (alpha I + K) x = b, K a Sum plan.
 *
 * Math: K v = Sum_Reduction(F(..., v, ...)) with F linear in v, so K is the
 * n x n (block-diagonal over the d columns) matrix the plan applies; CG on
 * A = alpha I + K, A symmetric positive definite:
 *     x0 = 0, r0 = p0 = b;   a_k = <r_k,r_k> / <p_k,A p_k>;
 *     x_{k+1} = x_k + a_k p_k;   r_{k+1} = r_k - a_k A p_k;
 *     p_{k+1} = r_{k+1} + (<r_{k+1},r_{k+1}> / <r_k,r_k>) p_k.
 * Iterates live in double whatever the plan's dtype: the float32 round-off
 * then comes from the matrix-vector products alone, and the dot products of
 * n*d terms do not limit the reachable residual.
 * Layering: built on kp_plan_exec only (one call per iteration), so every
 * engine the plan can run on serves the solve unchanged. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "core/half.h"
#include "plan/io.h"
#include "plan/plan_internal.h"

/* One solve's buffers and fixed inputs. */
typedef struct solve_ws {
    kp_plan *plan;
    kp_array args[KP_MAX_ARGS];
    size_t n_args;
    int varinv;
    int64_t n, d;
    size_t len;  /* n * d */
    double alpha;
    const kp_exec_options *exec;
    double *x, *r, *p, *q; /* double iterates, n*d each */
    void *pv, *kv;         /* p and K p in the plan's dtype, contiguous (n, d) */
} solve_ws;

static size_t dtype_size(kp_dtype t) { return t == KP_FLOAT32 ? 4 : 8; }

/* Strided (n, d) array a -> contiguous double buffer. */
static void load(const kp_array *a, int64_t n, int64_t d, double *dst) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < d; c++) {
            int64_t off = i * a->strides[0] + c * a->strides[1];
            dst[i * d + c] = a->dtype == KP_FLOAT32   ? (double)((const float *)a->data)[off]
                             : a->dtype == KP_FLOAT16 ? (double)kp__half_to_float(((const uint16_t *)a->data)[off])
                                                      : ((const double *)a->data)[off];
        }
}

/* Contiguous double buffer -> strided (n, d) array a. */
static void store(kp_array *a, int64_t n, int64_t d, const double *src) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < d; c++) {
            int64_t off = i * a->strides[0] + c * a->strides[1];
            if (a->dtype == KP_FLOAT32)
                ((float *)a->data)[off] = (float)src[i * d + c];
            else if (a->dtype == KP_FLOAT16) /* through float32: what a float16 plan's outputs get */
                ((uint16_t *)a->data)[off] = kp__float_to_half((float)src[i * d + c]);
            else
                ((double *)a->data)[off] = src[i * d + c];
        }
}

static double dot(const double *a, const double *b, size_t len) {
    double s = 0;
    for (size_t k = 0; k < len; k++) s += a[k] * b[k];
    return s;
}

/* q = alpha p + K p, through one kp_plan_exec. */
static kp_status apply(solve_ws *w) {
    size_t len = w->len;
    if (w->plan->dtype == KP_FLOAT32)
        for (size_t k = 0; k < len; k++) ((float *)w->pv)[k] = (float)w->p[k];
    else
        memcpy(w->pv, w->p, len * sizeof(double));
    w->args[w->varinv] = kp_array_2d(w->pv, w->plan->dtype, w->n, w->d);
    kp_array out = kp_array_2d(w->kv, w->plan->dtype, w->n, w->d);
    kp_status st = kp_plan_exec(w->plan, w->args, w->n_args, &out, NULL, w->exec);
    if (st != KP_OK) return st;
    for (size_t k = 0; k < len; k++) {
        double kp = w->plan->dtype == KP_FLOAT32 ? (double)((float *)w->kv)[k] : ((double *)w->kv)[k];
        w->q[k] = w->alpha * w->p[k] + kp;
    }
    return KP_OK;
}

/* b or x as a real (n, d) array v: complex arrays of a complex plan as their reals. */
static kp_status check_vector(const kp_plan *plan, const kp_array *a, const char *name, int64_t d, kp_array *v) {
    kp_context *ctx = plan->ctx;
    if (!a || (!a->data && a->ndim == 2 && a->shape[0] * a->shape[1] > 0))
        return kp__fail(ctx, KP_ERR_NULL, "kp_plan_solve: %s is NULL", name);
    if (a->device != KP_DEVICE_CPU)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "kp_plan_solve: %s must be a host array", name);
    if (a->dtype != plan->dtype && a->dtype != plan->io_dtype)
        return kp__fail(ctx, KP_ERR_DTYPE, "kp_plan_solve: %s has dtype %s, the plan takes %s", name,
                        kp__dtype_name(a->dtype), kp__dtype_name(plan->io_dtype));
    *v = *a;
    if (a->dtype == KP_COMPLEX64 || a->dtype == KP_COMPLEX128) {
        if (a->ndim != 2)
            return kp__fail(ctx, KP_ERR_SHAPE, "kp_plan_solve: %s must have shape (n, %lld) (no batch dimensions)",
                            name, (long long)d / 2);
        kp_status st = kp__complex_view(ctx, a, plan->dtype, v, name);
        if (st != KP_OK) return st;
        a = v;
    }
    if (a->ndim != 2 || a->shape[1] != d || a->shape[0] < 0)
        return kp__fail(ctx, KP_ERR_SHAPE, "kp_plan_solve: %s must have shape (n, %lld) (no batch dimensions)", name,
                        (long long)d);
    return KP_OK;
}

/* The plan's reduction, varinv and options. */
static kp_status check_plan(kp_plan *plan, int varinv, const kp_solve_options *o) {
    kp_context *ctx = plan->ctx;
    const kp_program *prog = &plan->prog;
    if (plan->nparts) return kp__fail(ctx, KP_ERR_ARGUMENT, "kp_plan_solve: a joint plan cannot be solved");
    if (prog->red != KP_RED_SUM)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "kp_plan_solve: the plan must be a Sum reduction (K v a kernel product)");
    if (plan->sum_rows)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "kp_plan_solve: the plan sums its output rows (a parameter gradient)");
    if (varinv < 0 || varinv >= plan->nargs || !plan->args[varinv].used)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "kp_plan_solve: varinv = %d is not an argument of the formula", varinv);
    kp_var_category want = prog->axis == 1 ? KP_VAR_J : KP_VAR_I;
    if (plan->args[varinv].cat != want || plan->args[varinv].dim != plan->out_dim)
        return kp__fail(ctx, KP_ERR_ARGUMENT,
                        "kp_plan_solve: varinv (argument %d) must be a %s variable of the output's dimension %d "
                        "(the reduced axis)", varinv, want == KP_VAR_J ? "Vj" : "Vi", plan->out_dim);
    if (o->size < sizeof(kp_solve_options))
        return kp__fail(ctx, KP_ERR_ARGUMENT, "kp_plan_solve: options->size is %zu, expected %zu", o->size,
                        sizeof(kp_solve_options));
    if (!(o->alpha >= 0) || !isfinite(o->alpha))
        return kp__fail(ctx, KP_ERR_ARGUMENT, "kp_plan_solve: alpha must be finite and >= 0, got %g", o->alpha);
    if (!(o->tol > 0)) return kp__fail(ctx, KP_ERR_ARGUMENT, "kp_plan_solve: tol must be > 0, got %g", o->tol);
    return KP_OK;
}

/* K must be square: every argument indexed by the output's rows has n rows. */
static kp_status check_square(kp_plan *plan, const kp_array *args, size_t n_args, int varinv, int64_t n,
                              const kp_exec_options *exec) {
    kp_context *ctx = plan->ctx;
    kp_var_category rowcat = plan->prog.axis == 1 ? KP_VAR_I : KP_VAR_J;
    if (n_args != (size_t)plan->nargs)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "kp_plan_solve: %zu arguments given, the formula takes %d", n_args,
                        plan->nargs);
    if (exec) { /* an explicit count of the output's rows must be n too */
        int64_t rows = plan->prog.axis == 1 ? exec->nx : exec->ny;
        if (rows >= 0 && rows != n)
            return kp__fail(ctx, KP_ERR_SHAPE, "kp_plan_solve: K is not square: the options give %lld rows, b has %lld",
                            (long long)rows, (long long)n);
    }
    for (int k = 0; k < plan->nargs; k++) {
        if (!plan->args[k].used || k == varinv) continue;
        const kp_array *a = &args[k];
        if (plan->args[k].cat == KP_VAR_PARAM) continue;
        if (a->ndim != 2)
            return kp__fail(ctx, KP_ERR_ARGUMENT, "kp_plan_solve: argument %d has batch dimensions (not supported)", k);
        if (plan->args[k].cat == rowcat && a->shape[0] != n)
            return kp__fail(ctx, KP_ERR_SHAPE,
                            "kp_plan_solve: K is not square: argument %d has %lld rows but b has %lld (N != M)", k,
                            (long long)a->shape[0], (long long)n);
    }
    return KP_OK;
}

static void ws_free(solve_ws *w) {
    kp__free(w->plan->ctx, w->x);
    kp__free(w->plan->ctx, w->r);
    kp__free(w->plan->ctx, w->p);
    kp__free(w->plan->ctx, w->q);
    kp__free(w->plan->ctx, w->pv);
    kp__free(w->plan->ctx, w->kv);
}

static kp_status ws_init(solve_ws *w, kp_plan *plan, const kp_array *args, size_t n_args, int varinv, int64_t n,
                         int64_t d, const kp_solve_options *o) {
    memset(w, 0, sizeof *w);
    w->plan = plan;
    memcpy(w->args, args, n_args * sizeof *args);
    w->n_args = n_args;
    w->varinv = varinv;
    w->n = n;
    w->d = d;
    w->len = (size_t)(n * d);
    w->alpha = o->alpha;
    w->exec = o->exec;
    size_t m = w->len ? w->len : 1;
    w->x = kp__calloc(plan->ctx, m, sizeof(double));
    w->r = kp__alloc(plan->ctx, m * sizeof(double));
    w->p = kp__alloc(plan->ctx, m * sizeof(double));
    w->q = kp__alloc(plan->ctx, m * sizeof(double));
    w->pv = kp__alloc(plan->ctx, m * dtype_size(plan->dtype));
    w->kv = kp__alloc(plan->ctx, m * dtype_size(plan->dtype));
    if (!w->x || !w->r || !w->p || !w->q || !w->pv || !w->kv) {
        ws_free(w);
        return kp__fail(plan->ctx, KP_ERR_OOM, "kp_plan_solve: out of memory (%zu unknowns)", w->len);
    }
    return KP_OK;
}

/* The CG loop on w (r = b on entry); fills info. */
static kp_status cg(solve_ws *w, const kp_solve_options *o, kp_solve_info *info) {
    size_t len = w->len;
    double bnorm = sqrt(dot(w->r, w->r, len));
    int max_iter = o->max_iter > 0 ? o->max_iter : (len > 10 ? (len > INT32_MAX ? INT32_MAX : (int)len) : 10);
    info->iterations = 0;
    info->residual = 0;
    info->converged = 1;
    if (bnorm == 0) return KP_OK; /* x = 0 exactly */
    if (!isfinite(bnorm)) return kp__fail(w->plan->ctx, KP_ERR_ARGUMENT, "kp_plan_solve: b holds NaN or Inf");
    memcpy(w->p, w->r, len * sizeof(double));
    double rr = bnorm * bnorm;
    for (int it = 1; it <= max_iter; it++) {
        kp_status st = apply(w);
        if (st != KP_OK) return st;
        double pq = dot(w->p, w->q, len);
        if (!(pq > 0))
            return kp__fail(w->plan->ctx, KP_ERR_ARGUMENT,
                            "kp_plan_solve: alpha I + K is not positive definite (p^T A p = %g at iteration %d)", pq,
                            it);
        double a = rr / pq;
        for (size_t k = 0; k < len; k++) {
            w->x[k] += a * w->p[k];
            w->r[k] -= a * w->q[k];
        }
        double rr_new = dot(w->r, w->r, len);
        info->iterations = it;
        info->residual = sqrt(rr_new) / bnorm;
        if (info->residual <= o->tol) return KP_OK;
        for (size_t k = 0; k < len; k++) w->p[k] = w->r[k] + (rr_new / rr) * w->p[k];
        rr = rr_new;
    }
    info->converged = 0;
    return KP_OK;
}

kp_status kp_plan_solve(kp_plan *plan, const kp_array *args, size_t n_args, int varinv, const kp_array *b,
                        kp_array *x, const kp_solve_options *options, kp_solve_info *info) {
    if (!plan) return KP_ERR_NULL;
    kp_context *ctx = plan->ctx;
    if (!info) return kp__fail(ctx, KP_ERR_NULL, "kp_plan_solve: info is NULL (it reports non-convergence)");
    if (!args && n_args) return kp__fail(ctx, KP_ERR_NULL, "kp_plan_solve: args is NULL");
    kp_solve_options o = KP_SOLVE_OPTIONS_DEFAULT;
    if (options) o = *options;
    kp_status st = check_plan(plan, varinv, &o);
    int64_t d = plan->out_dim;
    kp_array bv, xv; /* b and x as reals */
    if (st == KP_OK) st = check_vector(plan, b, "b", d, &bv);
    if (st == KP_OK) st = check_vector(plan, x, "x", d, &xv);
    if (st != KP_OK) return st;
    b = &bv;
    x = &xv;
    int64_t n = b->shape[0];
    if (x->shape[0] != n)
        return kp__fail(ctx, KP_ERR_SHAPE, "kp_plan_solve: x has %lld rows, b has %lld", (long long)x->shape[0],
                        (long long)n);
    st = check_square(plan, args, n_args, varinv, n, o.exec);
    if (st != KP_OK) return st;
    solve_ws *w = kp__alloc(ctx, sizeof *w); /* ~40 KB of argument descriptors: not on the stack */
    if (!w) return kp__fail(ctx, KP_ERR_OOM, "kp_plan_solve: out of memory");
    st = ws_init(w, plan, args, n_args, varinv, n, d, &o);
    if (st == KP_OK) {
        load(b, n, d, w->r);
        st = cg(w, &o, info);
        if (st == KP_OK) store(x, n, d, w->x);
        ws_free(w);
    }
    kp__free(ctx, w);
    return st;
}
