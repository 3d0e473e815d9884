/* plan_internal.h — struct kp_plan and the array checks that plan.c and joint.c share. */
#ifndef KP_PLAN_PLAN_INTERNAL_H
#define KP_PLAN_PLAN_INTERNAL_H

#include "cpu/engine.h"
#include "gpu/engine.h"
#include "plan/program.h"

struct kp_plan {
    kp_context *ctx;
    kp_dtype dtype;
    kp_program prog; /* a joint plan: its joint program, when fusable */
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

/* Validates one call's arrays against plan and fills job (zeroed first).
 * KP_OK or the error, message in plan's context. */
kp_status kp__plan_prepare(kp_plan *plan, const kp_array *args, size_t n_args, const kp_array *out,
                           const kp_array *out_index, const kp_exec_options *options, kp_cpu_job *job);

/* The device of one call's arrays (KP_ERR_ARGUMENT if they are on several). */
kp_status kp__plan_target(kp_plan *plan, const kp_array *args, const kp_array *out, const kp_array *out_index,
                          const kp_exec_options *options, kp_exec_target *tgt);
/* Runs a prepared job on the engine of tgt (row sums included). */
kp_status kp__plan_run(kp_plan *plan, const kp_cpu_job *job, const kp_exec_target *tgt);

#endif
