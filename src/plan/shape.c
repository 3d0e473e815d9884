/* shape.c — kp_plan_output_shape: what kp_plan_exec's outputs must look like for given arguments. */
#include <string.h>

#include "core/context.h"
#include "plan/plan_internal.h"

/* Batch dimensions of argument a of category cat: its leading dimensions before
 * (rows, dim), or before (dim) / (1, dim) for a parameter. */
static int batch_dims_of(const kp_array *a, kp_var_category cat) {
    if (cat != KP_VAR_PARAM) return a->ndim - 2;
    return a->ndim >= 2 && a->shape[a->ndim - 2] == 1 ? a->ndim - 2 : a->ndim - 1;
}

/* Folds a's batch extents into shape (1 broadcasts). */
static kp_status broadcast(kp_context *ctx, int k, const kp_array *a, int nb, int64_t *shape) {
    for (int d = 0; d < nb; d++) {
        int64_t e = a->shape[d];
        if (shape[d] == 1) shape[d] = e;
        else if (e != 1 && e != shape[d])
            return kp__fail(ctx, KP_ERR_SHAPE, "argument %d: batch dimension %d has extent %lld, another has %lld", k,
                            d, (long long)e, (long long)shape[d]);
    }
    return KP_OK;
}

/* The output shape of an ordinary plan, options read (kp_plan_output_shape). */
static kp_status output_shape(kp_plan *plan, const kp_array *args, int64_t nx, int64_t ny, int *ndim, int64_t *shape,
                              int64_t *index_shape) {
    kp_context *ctx = plan->ctx;
    kp_status st = KP_OK;
    int nb = 0, have_rows = 0;
    for (int pass = 0; pass < 2; pass++) /* Vi/Vj arguments say it; parameters only when there are none */
        for (int k = 0; k < plan->nargs; k++) {
            const kp_arg_info *info = &plan->args[k];
            if (!info->used || (pass == 0) != (info->cat != KP_VAR_PARAM) || (pass == 1 && have_rows)) continue;
            if (args[k].ndim < 1 || args[k].ndim > KP_MAX_DIMS)
                return kp__fail(ctx, KP_ERR_SHAPE, "argument %d: ndim must be in [1, %d], got %d", k, KP_MAX_DIMS,
                                args[k].ndim);
            int b = batch_dims_of(&args[k], info->cat);
            if (b > nb) nb = b;
            have_rows |= info->cat != KP_VAR_PARAM;
        }
    if (nb < 0 || nb > KP_MAX_BATCH_DIMS)
        return kp__fail(ctx, KP_ERR_SHAPE, "%d batch dimensions, at most %d", nb, KP_MAX_BATCH_DIMS);
    int64_t out[KP_MAX_DIMS], n_of[2] = {nx, ny};
    for (int d = 0; d < nb; d++) out[d] = 1;
    for (int k = 0; k < plan->nargs; k++) {
        const kp_arg_info *info = &plan->args[k];
        if (!info->used || args[k].ndim < 1 || args[k].ndim > KP_MAX_DIMS) continue;
        int b = batch_dims_of(&args[k], info->cat);
        if (b == nb && (st = broadcast(ctx, k, &args[k], nb, out)) != KP_OK) return st;
        if (info->cat != KP_VAR_PARAM && args[k].ndim >= 2) {
            int which = info->cat == KP_VAR_I ? 0 : 1;
            if (n_of[which] < 0) n_of[which] = args[k].shape[args[k].ndim - 2];
        }
    }
    int64_t rows = plan->sum_rows ? 1 : n_of[plan->prog.axis == 1 ? 0 : 1];
    if (rows < 0)
        return kp__fail(ctx, KP_ERR_SHAPE, "no argument tells the number of rows: set kp_exec_options.%s",
                        plan->prog.axis == 1 ? "nx" : "ny");
    out[nb] = rows;
    *ndim = nb + 2;
    if (shape) {
        memcpy(shape, out, (size_t)(nb + 1) * sizeof *shape);
        shape[nb + 1] = plan->out_dim;
    }
    if (index_shape) {
        memcpy(index_shape, out, (size_t)(nb + 1) * sizeof *index_shape);
        index_shape[nb + 1] = plan->out_index_dim;
    }
    return KP_OK;
}

kp_status kp_plan_output_shape(kp_plan *plan, const kp_array *args, size_t n_args, const kp_exec_options *options,
                               int *ndim, int64_t *shape, int64_t *index_shape) {
    if (!plan) return KP_ERR_NULL;
    kp_context *ctx = plan->ctx;
    if (!ndim) return kp__fail(ctx, KP_ERR_NULL, "ndim is NULL");
    if (n_args != (size_t)plan->nargs)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "the formula takes %d arguments, got %zu", plan->nargs, n_args);
    if (n_args && !args) return kp__fail(ctx, KP_ERR_NULL, "args is NULL");
    kp_exec_options opt;
    kp_status st = kp__exec_options_read(ctx, options, &opt);
    if (st != KP_OK) return st;
    /* A joint plan's formula k runs as its own plan's would (kp_plan_exec_joint): same output shape. */
    int nout = plan->nparts ? plan->nparts : 1;
    if (opt.output < 0 || opt.output >= nout)
        return plan->nparts ? kp__fail(ctx, KP_ERR_ARGUMENT, "kp_exec_options.output is %d: the joint plan has %d formulas",
                                       opt.output, plan->nparts)
                            : kp__fail(ctx, KP_ERR_ARGUMENT,
                                       "kp_exec_options.output is %d: an ordinary plan has one output (0)", opt.output);
    return output_shape(plan->nparts ? plan->parts[opt.output] : plan, args, opt.nx, opt.ny, ndim, shape, index_shape);
}
