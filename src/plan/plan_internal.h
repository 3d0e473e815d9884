/* plan_internal.h — struct kp_plan, the array checks and the dispatch that plan.c and joint.c share. */
#ifndef KP_PLAN_PLAN_INTERNAL_H
#define KP_PLAN_PLAN_INTERNAL_H

#include "plan/engine.h"
#include "plan/program.h"

struct kp_plan {
    kp_context *ctx;
    kp_dtype dtype;    /* what the plan computes in: float32 or float64 */
    kp_dtype io_dtype; /* the dtype it was made for: dtype or a storage dtype (plan/io.h) */
    kp_program prog; /* a joint plan: its joint program, when fusable */
    /* prog for calls under KP_SUM_EXACT: the same code (not freed twice),
     * with exact set for a Sum. Ordinary plans only. */
    kp_program prog_exact;
    int nargs;
    kp_arg_info args[KP_MAX_ARGS];
    int out_dim, out_index_dim;
    int sum_rows;
    unsigned index_cats; /* bit c: the formula uses the index of category c as a number */
    /* Joint plans (kp_plan_new_joint): one ordinary plan per formula, used to
     * check each call's arrays and to run the formulas one by one when the
     * joint pass cannot take them. nparts == 0 for an ordinary plan. */
    int nparts;
    kp_plan *parts[KP_MAX_JOINT];
    int fusable; /* prog holds every part as a term */
};

/* Copies the caller's options (NULL: the defaults), whatever the version of
 * kp.h it was built with, into *opt (options.c). KP_ERR_ARGUMENT for a
 * struct_size this libkp cannot read. */
kp_status kp__exec_options_read(kp_context *ctx, const kp_exec_options *options, kp_exec_options *opt);

/* The program a call of plan runs under its context's sum scheme. */
const kp_program *kp__plan_program(const kp_plan *plan);

/* n jobs with room for nargs arguments each (job->args), in one block freed
 * with kp__free; NULL when out of memory. kp__plan_prepare keeps that room. */
kp_job *kp__jobs_new(kp_context *ctx, int n, int nargs);

/* Validates one call's arrays against plan (shapes, dtypes, and that they are
 * all on one device) and fills job (zeroed first, but for its room for
 * arguments: kp__jobs_new, plan->nargs at least). KP_OK or the error,
 * message in plan's context. */
kp_status kp__plan_prepare(kp_plan *plan, const kp_array *args, size_t n_args, const kp_array *out,
                           const kp_array *out_index, const kp_exec_options *options, kp_job *job);

/* The engine that runs job for ctx (its kp_engine, or for KP_ENGINE_AUTO the
 * first that reads job's device); NULL, with KP_ERR_UNSUPPORTED and the reason
 * in ctx, when the context's engine cannot read the arrays (dispatch.c). */
const kp_engine_ops *kp__plan_engine(kp_context *ctx, const kp_job *job);
/* Runs a prepared job on its engine, row sums included. */
kp_status kp__plan_run(kp_plan *plan, const kp_job *job);
/* Runs job (run(ctx, job, user_data)) into a temporary (batch..., rows, dim)
 * array, then writes the sum of its rows, accumulated in double in row order,
 * into the job's 1-row output: how host-array row sums are made, for calls and
 * for finalized partial states alike. */
typedef kp_status (*kp_row_runner)(kp_context *ctx, const kp_job *job, const void *user_data);
kp_status kp__run_summing_rows(kp_context *ctx, kp_job *job, int dim, kp_row_runner run, const void *user_data);

#endif
