/*
 * reduction.h — facts about a reduction that every engine shares: the size of
 * its per-row state (the monoid's layout, documented in cpu/kernel_reduce.h)
 * and its family. Engines implement init/accumulate/merge/finalize on top.
 */
#ifndef KP_PLAN_REDUCTION_H
#define KP_PLAN_REDUCTION_H

#include "plan/program.h"

/* The monoid behind a reduction: what its state holds and how it folds. The
 * nine Min/Max/KMin-type reductions share one (sorted K-lists of values and
 * indices; K = 1 outside the KMin family) and differ only in their outputs. */
typedef enum kp_red_family {
    KP_FAMILY_SUM,
    KP_FAMILY_LOGSUMEXP,
    KP_FAMILY_SOFTMAX, /* SumSoftMaxWeight */
    KP_FAMILY_SELECT   /* Min, Max, Arg*, KMin, ... */
} kp_red_family;

kp_red_family kp__reduction_family(kp_reduction r);

/* Reals and int64 indices of the state of one output row. */
void kp__state_size(const kp_program *prog, int *nreal, int *nidx);
/* Max, ArgMax, Max_ArgMax. */
int kp__is_max_reduction(kp_reduction r);
/* KMin, ArgKMin, KMin_ArgKMin. */
int kp__is_kmin_reduction(kp_reduction r);
/* Number of values kept per component: K for the KMin family, else 1. */
int kp__kept_per_component(const kp_program *prog);

#endif
