/* plan_query.c — what a plan was made from, and reporting through its context:
 * for layers built on kp.h that are handed a plan (libkp_mpi, bindings). */
#include <string.h>

#include "core/context.h"
#include "plan/plan_internal.h"
#include "plan/ranges.h"

kp_context *kp_plan_context(const kp_plan *plan) { return plan ? plan->ctx : NULL; }

int kp_plan_axis(const kp_plan *plan) { return plan && !plan->nparts ? plan->prog.axis : -1; }

int kp_plan_num_args(const kp_plan *plan) { return plan ? plan->nargs : -1; }

kp_status kp_plan_arg(const kp_plan *plan, int k, kp_var_category *category, int *dim, int *used) {
    if (!plan) return KP_ERR_NULL;
    if (k < 0 || k >= plan->nargs)
        return kp__fail(plan->ctx, KP_ERR_ARGUMENT, "argument %d: the plan takes %d arguments", k, plan->nargs);
    if (category) *category = plan->args[k].cat;
    if (dim) *dim = plan->args[k].dim;
    if (used) *used = plan->args[k].used;
    return KP_OK;
}

kp_status kp_plan_ranges_check(kp_plan *plan, const kp_ranges *ranges, int64_t nbatch, int64_t nrows, int64_t ncols) {
    if (!plan) return KP_ERR_NULL;
    if (plan->nparts)
        return kp__fail(plan->ctx, KP_ERR_ARGUMENT, "ranges of a joint plan: check its formulas' own plans");
    if (nbatch < 1 || nrows < 0 || ncols < 0)
        return kp__fail(plan->ctx, KP_ERR_ARGUMENT, "kp_plan_ranges_check: %lld batches of %lld rows and %lld points",
                        (long long)nbatch, (long long)nrows, (long long)ncols);
    kp_job job; /* only what the checks read: the axis and the sizes */
    memset(&job, 0, sizeof job);
    job.prog = &plan->prog;
    job.nbatch = nbatch;
    job.nrows = nrows;
    job.ncols = ncols;
    return kp__ranges_prepare(plan->ctx, ranges, &job);
}

kp_status kp_context_set_error(kp_context *ctx, kp_status status, const char *message) {
    if (!ctx) return KP_ERR_NULL;
    if (status == KP_OK) {
        ctx->message[0] = 0;
        return KP_OK;
    }
    return kp__fail(ctx, status, "%s", message ? message : "");
}
