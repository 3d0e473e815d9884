/* reduction.c — per-row state sizes and families of the reductions (see reduction.h). */
#include "plan/reduction.h"

#include "plan/exact_exp.h"

int kp__kept_per_component(const kp_program *prog) { return kp__red(prog->red)->takes_k ? prog->K : 1; }

void kp__state_size(const kp_program *prog, int *nreal, int *nidx) {
    int D = prog->fdim;
    *nreal = 0;
    *nidx = 0;
    switch (kp__red(prog->red)->family) {
    case KP_FAMILY_SUM:
        if (prog->exact) *nidx = KP_XSUM_WORDS * D; /* one exact accumulator per component */
        else *nreal = 2 * D;                       /* sum, compensation */
        break;
    case KP_FAMILY_LOGSUMEXP:
        if (prog->exact) *nidx = KP_XEXP_LSE_WORDS * D;
        else *nreal = 3 * D; /* max, scaled sum, compensation */
        break;
    case KP_FAMILY_SOFTMAX:
        if (prog->exact) *nidx = KP_XEXP_SSMW_WORDS(prog->red_g.dim);
        else *nreal = 3 + 2 * prog->red_g.dim;
        break;
    case KP_FAMILY_SELECT:
        *nreal = kp__kept_per_component(prog) * D;
        *nidx = *nreal;
        break;
    }
}

void kp__out_widths(const kp_program *prog, int *od, int *oi) {
    const kp_red_info *R = kp__red(prog->red);
    *od = kp__red_width(R->value, prog->fdim, prog->red_g.dim, prog->K);
    *oi = kp__red_width(R->index, prog->fdim, prog->red_g.dim, prog->K);
}
