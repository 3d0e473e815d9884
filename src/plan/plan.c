/* plan.c — kp_plan: a lowered formula for one dtype; validation of the arrays of a call. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "plan/exact_sum.h"
#include "plan/io.h"
#include "plan/plan_internal.h"
#include "plan/ranges.h"

static unsigned index_categories(const kp_program *prog) {
    const kp_program_part *parts[3] = {&prog->row, &prog->col, &prog->pair};
    unsigned m = 0;
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < parts[p]->n; i++)
            if (parts[p]->code[i].op == KP_OP_INDEX) m |= 1u << parts[p]->code[i].ip[0];
    return m;
}

kp_status kp_plan_new(kp_context *ctx, const kp_formula *f, kp_dtype dtype, kp_plan **out) {
    if (!ctx) return KP_ERR_NULL;
    if (!out) return kp__fail(ctx, KP_ERR_NULL, "out is NULL");

    if (!f) return kp__fail(ctx, KP_ERR_NULL, "formula is NULL");
    int compute = kp__dtype_compute(dtype);
    if (compute < 0)
        return kp__fail(ctx, KP_ERR_DTYPE,
                        "plans take float32, float64, float16, complex64 or complex128, not dtype %d (%s)", (int)dtype,
                        kp__dtype_name(dtype));
    kp_plan *p = kp__calloc(ctx, 1, sizeof *p);
    if (!p) return kp__fail(ctx, KP_ERR_OOM, "out of memory");
    kp_status st = kp__lower(ctx, f, &p->prog);
    if (st != KP_OK) {
        kp__free(ctx, p);
        return st;
    }
    p->ctx = ctx;
    p->dtype = (kp_dtype)compute;
    p->io_dtype = dtype;
    p->nargs = f->nargs;
    memcpy(p->args, f->args, sizeof p->args);
    p->out_dim = kp_formula_out_dim(f);
    p->out_index_dim = kp_formula_out_index_dim(f);
    p->sum_rows = f->sum_rows;
    p->index_cats = index_categories(&p->prog);
    p->prog_exact = p->prog;
    kp_red_family family = kp__red(p->prog.red)->family;
    p->prog_exact.exact = family == KP_FAMILY_SUM || family == KP_FAMILY_LOGSUMEXP || family == KP_FAMILY_SOFTMAX;
    *out = p;
    return KP_OK;
}

void kp_plan_free(kp_plan *plan) {
    if (!plan) return;
    for (int k = 0; k < plan->nparts; k++) kp_plan_free(plan->parts[k]);
    kp__program_free(&plan->prog);
    kp__free(plan->ctx, plan);
}

const kp_program *kp__plan_program(const kp_plan *plan) {
    return plan->ctx->sum_scheme == KP_SUM_EXACT ? &plan->prog_exact : &plan->prog;
}

static const char *dtype_name(kp_dtype d) { return kp__dtype_name(d); }

static const char *cat_name(kp_var_category c) { return c == KP_VAR_I ? "Vi" : c == KP_VAR_J ? "Vj" : "Pm"; }

/* Checks that every element the strides can reach has an int64 byte offset. */
static kp_status check_extent(kp_context *ctx, const kp_array *a, const char *what) {
    int64_t span = 0, elem = (int64_t)kp__dtype_size(a->dtype);
    for (int d = 0; d < a->ndim; d++) {
        int64_t s = a->strides[d] < 0 ? -a->strides[d] : a->strides[d], t;
        if (a->shape[d] == 0) return KP_OK;
        if (!kp__mul_size(a->shape[d] - 1, s, &t) || __builtin_add_overflow(span, t, &span))
            return kp__fail(ctx, KP_ERR_TOO_LARGE, "%s: shape and strides overflow 64-bit offsets", what);
    }
    int64_t bytes;
    if (!kp__mul_size(span + 1, elem, &bytes))
        return kp__fail(ctx, KP_ERR_TOO_LARGE, "%s: shape and strides overflow 64-bit offsets", what);
    return KP_OK;
}

/* Common checks: pointer, dtype, device, rank, non-negative shape. */
static kp_status check_array(kp_context *ctx, const kp_array *a, kp_dtype dtype, const char *what) {
    if (a->dtype != dtype)
        return kp__fail(ctx, KP_ERR_DTYPE, "%s: dtype %s, expected %s", what, dtype_name(a->dtype), dtype_name(dtype));
    if (a->device != KP_DEVICE_CPU && a->device != KP_DEVICE_CUDA) /* which engine may read it: dispatch.c */
        return kp__fail(ctx, KP_ERR_ARGUMENT, "%s: unknown device %d", what, (int)a->device);
    if (a->ndim < 1 || a->ndim > KP_MAX_DIMS)
        return kp__fail(ctx, KP_ERR_SHAPE, "%s: ndim must be in [1, %d], got %d", what, KP_MAX_DIMS, a->ndim);
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] < 0) return kp__fail(ctx, KP_ERR_SHAPE, "%s: negative extent %lld", what, (long long)a->shape[d]);
    kp_status st = check_extent(ctx, a, what);
    if (st != KP_OK) return st;
    int64_t n = 1;
    for (int d = 0; d < a->ndim; d++)
        if (!kp__mul_size(n, a->shape[d], &n)) return kp__fail(ctx, KP_ERR_TOO_LARGE, "%s: too many elements", what);
    if (n > 0 && !a->data) return kp__fail(ctx, KP_ERR_NULL, "%s: data is NULL", what);
    return KP_OK;
}

/* A float16 array on a CUDA device in a float16 plan: the engine gets it as
 * stored (kp_job_arg.half) and converts it on the device, where plan/io.h
 * converts host arrays on the host. */
static int device_half(const kp_plan *plan, const kp_array *a) {
    return plan->io_dtype == KP_FLOAT16 && a->dtype == KP_FLOAT16 && a->device == KP_DEVICE_CUDA;
}

/* The dtype array a of the call must have: the plan's, or float16 (device_half). */
static kp_dtype dtype_of(const kp_plan *plan, const kp_array *a) {
    return device_half(plan, a) ? KP_FLOAT16 : plan->dtype;
}

/* Batch dims of a (its leading nb dims) against the output batch shape; fills strides. */
static kp_status match_batch(kp_context *ctx, const kp_array *a, int a_nb, const kp_job *job, kp_job_arg *ca,
                             const char *what) {
    memset(ca->batch_stride, 0, sizeof ca->batch_stride);
    if (a_nb == 0) return KP_OK;
    for (int d = 0; d < job->nbatch_dims; d++) {
        int64_t e = a->shape[d];
        if (e != job->batch_shape[d] && e != 1)
            return kp__fail(ctx, KP_ERR_SHAPE, "%s: batch dimension %d has extent %lld, expected %lld or 1", what, d,
                            (long long)e, (long long)job->batch_shape[d]);
        ca->batch_stride[d] = e == 1 ? 0 : a->strides[d];
    }
    return KP_OK;
}

/* The output (or the index output) fixes the batch shape and the number of rows. */
static kp_status prepare_outputs(kp_plan *plan, const kp_array *out, const kp_array *out_index, kp_job *job,
                                 int64_t *rows) {
    kp_context *ctx = plan->ctx;
    kp_status st;
    const kp_array *shape_src = plan->out_dim ? out : out_index;
    if (plan->out_dim && (st = check_array(ctx, out, dtype_of(plan, out), "output")) != KP_OK) return st;
    if (plan->out_index_dim && (st = check_array(ctx, out_index, KP_INT64, "index output")) != KP_OK) return st;
    if (shape_src->ndim < 2)
        return kp__fail(ctx, KP_ERR_SHAPE, "output must have shape (batch..., rows, dim), got ndim %d", shape_src->ndim);
    job->nbatch_dims = shape_src->ndim - 2;
    job->nbatch = 1;
    for (int d = 0; d < job->nbatch_dims; d++) {
        job->batch_shape[d] = shape_src->shape[d];
        job->nbatch *= shape_src->shape[d];
    }
    *rows = shape_src->shape[shape_src->ndim - 2];
    const kp_array *outs[2] = {out, out_index};
    int odims[2] = {plan->out_dim, plan->out_index_dim};
    kp_job_arg *jouts[2] = {&job->out, &job->out_idx};
    for (int k = 0; k < 2; k++) {
        if (!odims[k]) continue;
        const kp_array *o = outs[k];
        const char *name = k ? "index output" : "output";
        if (o->ndim != shape_src->ndim || o->shape[o->ndim - 2] != *rows || o->shape[o->ndim - 1] != odims[k])
            return kp__fail(ctx, KP_ERR_SHAPE,
                            "%s: expected shape (batch..., %lld, %d), got ndim %d with last dims (%lld, %lld)", name,
                            (long long)*rows, odims[k], o->ndim, (long long)o->shape[o->ndim - 2],
                            (long long)o->shape[o->ndim - 1]);
        for (int d = 0; d < job->nbatch_dims; d++)
            if (o->shape[d] != job->batch_shape[d])
                return kp__fail(ctx, KP_ERR_SHAPE, "%s and output batch shapes differ", name);
        jouts[k]->base = o->data;
        jouts[k]->row_stride = o->strides[o->ndim - 2];
        jouts[k]->comp_stride = o->strides[o->ndim - 1];
        jouts[k]->half = k == 0 && device_half(plan, o);
        for (int d = 0; d < job->nbatch_dims; d++) jouts[k]->batch_stride[d] = o->strides[d];
    }
    return KP_OK;
}

/* Argument k against its Vi/Vj/Pm declaration; n_of[0], n_of[1]: the numbers
 * of i and j points known so far (-1: not yet), updated. */
static kp_status prepare_arg_named(kp_plan *plan, int k, const kp_array *a, kp_job *job, int64_t n_of[2],
                                   const char *what) {
    kp_context *ctx = plan->ctx;
    const kp_arg_info *info = &plan->args[k];
    kp_status st = check_array(ctx, a, dtype_of(plan, a), what);
    if (st != KP_OK) return st;
    int is_param = info->cat == KP_VAR_PARAM;
    int base_rank = is_param ? 1 : 2;
    int nb;
    if (a->ndim == base_rank + job->nbatch_dims) nb = job->nbatch_dims;
    else if (a->ndim == base_rank) nb = 0;
    else if (is_param && (a->ndim == 2 + job->nbatch_dims || a->ndim == 2) && a->shape[a->ndim - 2] == 1)
        nb = a->ndim - 2;
    else
        return kp__fail(ctx, KP_ERR_SHAPE, "%s: ndim %d, expected %d (or %d without batch dimensions)", what, a->ndim,
                        base_rank + job->nbatch_dims, base_rank);
    if (a->shape[a->ndim - 1] != info->dim)
        return kp__fail(ctx, KP_ERR_SHAPE, "%s: last dimension is %lld, expected %d", what,
                        (long long)a->shape[a->ndim - 1], info->dim);
    kp_job_arg *ca = &job->args[k];
    ca->base = a->data;
    ca->comp_stride = a->strides[a->ndim - 1];
    ca->half = device_half(plan, a);
    if (!is_param) {
        int which = info->cat == KP_VAR_I ? 0 : 1;
        int64_t n = a->shape[a->ndim - 2];
        if (n_of[which] >= 0 && n_of[which] != n)
            return kp__fail(ctx, KP_ERR_SHAPE, "%s has %lld rows, but %s has %lld", what, (long long)n,
                            which == (plan->prog.axis == 1 ? 0 : 1) ? "the output or another argument"
                                                                    : "another argument",
                            (long long)n_of[which]);
        n_of[which] = n;
        ca->row_stride = a->strides[a->ndim - 2];
    }
    return match_batch(ctx, a, nb, job, ca, what);
}

/* prepare_arg_named, the argument's name formatted only for an error
 * message: a failed check runs again with it (the checks are repeatable:
 * the same failure, the message now naming the argument). Formatting it on
 * every call cost a tenth of a small call. */
static kp_status prepare_arg(kp_plan *plan, int k, const kp_array *a, kp_job *job, int64_t n_of[2]) {
    kp_status st = prepare_arg_named(plan, k, a, job, n_of, "argument");
    if (st == KP_OK) return st;
    const kp_arg_info *info = &plan->args[k];
    char what[96];
    snprintf(what, sizeof what, "argument %d (%s(%d,%d))", k, cat_name(info->cat), k, info->dim);
    return prepare_arg_named(plan, k, a, job, n_of, what);
}

/* The call's numbers of rows and reduced points, from n_of, and their limits. */
static kp_status prepare_sizes(kp_plan *plan, kp_job *job, const int64_t n_of[2]) {
    kp_context *ctx = plan->ctx;
    const kp_program *prog = &plan->prog;
    int row_is_i = prog->axis == 1, ri = row_is_i ? 0 : 1;
    job->nrows = n_of[ri];
    job->ncols = n_of[1 - ri];
    if (job->nrows < 0)
        return kp__fail(ctx, KP_ERR_SHAPE, "no argument tells the number of rows: set kp_exec_options.%s",
                        row_is_i ? "nx" : "ny");
    if (job->ncols < 0)
        return kp__fail(ctx, KP_ERR_SHAPE, "no %s argument tells the number of %s points: set kp_exec_options.%s",
                        row_is_i ? "Vj" : "Vi", row_is_i ? "j" : "i", row_is_i ? "ny" : "nx");
    for (int c = 0; c < 2; c++) /* indices as numbers: float32 is exact below 2^24 */
        if ((plan->index_cats & (1u << c)) && plan->dtype == KP_FLOAT32 && n_of[c] > (1 << 24))
            return kp__fail(ctx, KP_ERR_TOO_LARGE,
                            "this formula uses point indices as numbers: float32 holds them exactly only below 2^24 "
                            "points (%lld here); use float64",
                            (long long)n_of[c]);
    if (prog->K > 0 && prog->K > job->ncols)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "K = %d is larger than the %lld points reduced over", prog->K,
                        (long long)job->ncols);
    return KP_OK;
}

static const char *device_name(const kp_array *a, char *buf, size_t size) {
    if (a->device == KP_DEVICE_CPU) return "the CPU";
    snprintf(buf, size, "CUDA device %d", a->device_id);
    return buf;
}

/* The name of array k of prepare_device in its messages (-2: the output,
 * -1: the index output), formatted for a message only. */
static const char *array_name(int k, char *buf, size_t size) {
    if (k == -2) return "the output";
    if (k == -1) return "the index output";
    snprintf(buf, size, "argument %d", k);
    return buf;
}

/* Every array of the call (out and out_index when the plan writes them, the
 * used arguments) on one known device: job->device, device_id and stream. */
static kp_status prepare_device(kp_plan *plan, const kp_array *args, const kp_array *out, const kp_array *out_index,
                                const kp_exec_options *opt, kp_job *job) {
    kp_context *ctx = plan->ctx;
    const kp_array *first = NULL;
    int first_k = 0;
    char n1[32], n2[32], d1[32], d2[32];
    for (int k = -2; k < plan->nargs; k++) {
        const kp_array *a = k == -2   ? (plan->out_dim ? out : NULL)
                            : k == -1 ? (plan->out_index_dim ? out_index : NULL)
                            : plan->args[k].used ? &args[k]
                                                 : NULL;
        if (!a) continue;
        if (a->device == KP_DEVICE_CUDA && a->device_id < 0)
            return kp__fail(ctx, KP_ERR_ARGUMENT, "%s: CUDA device_id %d is negative", array_name(k, n1, sizeof n1),
                            a->device_id);
        if (!first) {
            first = a;
            first_k = k;
        } else if (a->device != first->device || (a->device == KP_DEVICE_CUDA && a->device_id != first->device_id)) {
            return kp__fail(ctx, KP_ERR_ARGUMENT,
                            "all arrays of a call must be on one device: %s is on %s, %s on %s (libkp never "
                            "copies between devices)",
                            array_name(first_k, n1, sizeof n1), device_name(first, d1, sizeof d1),
                            array_name(k, n2, sizeof n2), device_name(a, d2, sizeof d2));
        }
    }
    if (first && first->device == KP_DEVICE_CUDA) {
        job->device = KP_DEVICE_CUDA;
        job->device_id = first->device_id;
        job->stream = opt->cuda_stream;
    }
    return KP_OK;
}

kp_job *kp__jobs_new(kp_context *ctx, int n, int nargs) {
    size_t room = (size_t)(nargs > 0 ? nargs : 1);
    kp_job *jobs = kp__alloc(ctx, (size_t)n * (sizeof *jobs + room * sizeof(kp_job_arg)));
    if (!jobs) return NULL;
    kp_job_arg *args = (kp_job_arg *)(jobs + n); /* kp_job's size is a multiple of its int64 members' alignment */
    for (int k = 0; k < n; k++) jobs[k].args = args + (size_t)k * room;
    return jobs;
}

kp_status kp__plan_prepare(kp_plan *plan, const kp_array *args, size_t n_args, const kp_array *out,
                           const kp_array *out_index, const kp_exec_options *options, kp_job *job) {
    kp_context *ctx = plan->ctx;
    kp_exec_options opt;
    kp_status st = kp__exec_options_read(ctx, options, &opt);
    if (st != KP_OK) return st;
    if (opt.output != 0)
        return kp__fail(ctx, KP_ERR_ARGUMENT,
                        "kp_exec_options.output is %d: only kp_plan_output_shape reads it (0 for every other call)",
                        opt.output);
    if (n_args != (size_t)plan->nargs)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "the formula takes %d arguments, got %zu", plan->nargs, n_args);
    if (n_args && !args) return kp__fail(ctx, KP_ERR_NULL, "args is NULL");
    if (plan->out_dim && !out) return kp__fail(ctx, KP_ERR_NULL, "this reduction writes values: out is NULL");
    if (plan->out_index_dim && !out_index)
        return kp__fail(ctx, KP_ERR_NULL, "this reduction writes indices: out_index is NULL");
    if (opt.num_threads < 0 || opt.num_threads > 4096)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "num_threads must be in [0, 4096], got %d", opt.num_threads);

    kp_job_arg *room = job->args;
    memset(job, 0, sizeof *job);
    memset(room, 0, (size_t)plan->nargs * sizeof *room);
    job->args = room;
    job->prog = kp__plan_program(plan);
    job->dtype = plan->dtype;
    job->scheme = ctx->sum_scheme;
    job->math = ctx->math_mode;
    job->num_threads = kp__resolve_threads(ctx, opt.num_threads);
    job->nargs = plan->nargs;
    job->progress = opt.progress;
    job->progress_user = opt.progress_user;
    job->sum_rows_dim = plan->sum_rows ? plan->out_dim : 0;
    int64_t rows = 0;
    if ((st = prepare_outputs(plan, out, out_index, job, &rows)) != KP_OK) return st;

    /* Sizes: nx points indexed by i, ny by j, from the output and the arguments. */
    int64_t n_of[2] = {opt.nx, opt.ny};
    int ri = plan->prog.axis == 1 ? 0 : 1;
    if (plan->sum_rows) { /* the rows are summed: the output has one, the arguments say how many */
        if (rows != 1)
            return kp__fail(ctx, KP_ERR_SHAPE, "this formula sums its rows: the output must have 1 row, got %lld",
                            (long long)rows);
    } else if (n_of[ri] >= 0 && n_of[ri] != rows) {
        return kp__fail(ctx, KP_ERR_SHAPE, "output has %lld rows but the options say %lld", (long long)rows,
                        (long long)n_of[ri]);
    } else {
        n_of[ri] = rows;
    }
    for (int k = 0; k < plan->nargs; k++)
        if (plan->args[k].used && (st = prepare_arg(plan, k, &args[k], job, n_of)) != KP_OK) return st;
    if ((st = prepare_sizes(plan, job, n_of)) != KP_OK) return st;
    if (job->prog->exact && job->ncols > KP_XSUM_MAX_TERMS)
        return kp__fail(ctx, KP_ERR_TOO_LARGE, "KP_SUM_EXACT sums at most 2^43 terms per row, got %lld",
                        (long long)job->ncols);
    if ((st = kp__ranges_prepare(ctx, opt.ranges, job)) != KP_OK) return st;
    return prepare_device(plan, args, out, out_index, &opt, job);
}

kp_status kp_plan_exec(kp_plan *plan, const kp_array *args, size_t n_args, kp_array *out, kp_array *out_index,
                       const kp_exec_options *options) {
    if (!plan) return KP_ERR_NULL;
    if (plan->nparts)
        return kp__fail(plan->ctx, KP_ERR_ARGUMENT, "this is a joint plan of %d formulas: run it with kp_plan_exec_joint",
                        plan->nparts);
    kp_io io;
    kp_status st = kp__io_begin(plan, args, n_args, out, plan->out_dim && out ? 1 : 0, &io);
    if (st != KP_OK) return st;
    kp_job *job = kp__jobs_new(plan->ctx, 1, plan->nargs);
    if (!job) return kp__io_end(&io, kp__fail(plan->ctx, KP_ERR_OOM, "out of memory"));
    st = kp__plan_prepare(plan, io.args, n_args, io.n_outs ? io.outs : out, out_index, options, job);
    if (st == KP_OK) st = kp__plan_run(plan, job);
    kp__free(plan->ctx, job);
    return kp__io_end(&io, st);
}

kp_status kp_reduce(kp_context *ctx, const char *text, const char *const *aliases, size_t n_aliases, kp_dtype dtype,
                    const kp_array *args, size_t n_args, kp_array *out, kp_array *out_index) {
    kp_formula *f = NULL;
    kp_plan *p = NULL;
    kp_status st = kp_formula_parse(ctx, text, aliases, n_aliases, &f);
    if (st == KP_OK) st = kp_plan_new(ctx, f, dtype, &p);
    if (st == KP_OK) st = kp_plan_exec(p, args, n_args, out, out_index, NULL);
    kp_plan_free(p);
    kp_formula_free(f);
    return st;
}
