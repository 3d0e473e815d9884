/*
 * reduction.h — the per-row state of a lowered reduction, which every engine
 * shares (the monoid's layout, documented in cpu/kernel_reduce.h). The
 * reduction's facts (family, widths, ...) are kp__red(r) (formula/reductions.h).
 * Engines implement init/accumulate/merge/finalize on top.
 */
#ifndef KP_PLAN_REDUCTION_H
#define KP_PLAN_REDUCTION_H

#include "plan/program.h"

/* Reals and int64 indices of the state of one output row. */
void kp__state_size(const kp_program *prog, int *nreal, int *nidx);
/* Components per output row of the values (*od) and the int64 indices (*oi). */
void kp__out_widths(const kp_program *prog, int *od, int *oi);
/* Number of values kept per component: K for the KMin family, else 1. */
int kp__kept_per_component(const kp_program *prog);

#endif
