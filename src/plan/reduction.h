/*
 * reduction.h — facts about a reduction that every engine shares: the size of
 * its per-row state (the monoid's layout, documented in cpu/kernel_reduce.h)
 * and its family. Engines implement init/accumulate/merge/finalize on top.
 */
#ifndef KP_PLAN_REDUCTION_H
#define KP_PLAN_REDUCTION_H

#include "plan/program.h"

/* Reals and int64 indices of the state of one output row. */
void kp__state_size(const kp_program *prog, int *nreal, int *nidx);
/* Max, ArgMax, Max_ArgMax. */
int kp__is_max_reduction(kp_reduction r);
/* KMin, ArgKMin, KMin_ArgKMin. */
int kp__is_kmin_reduction(kp_reduction r);
/* Number of values kept per component: K for the KMin family, else 1. */
int kp__kept_per_component(const kp_program *prog);

#endif
