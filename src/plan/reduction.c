/* reduction.c — per-row state sizes and families of the reductions (see reduction.h). */
#include "plan/reduction.h"

int kp__is_max_reduction(kp_reduction r) { return r == KP_RED_MAX || r == KP_RED_ARGMAX || r == KP_RED_MAX_ARGMAX; }

int kp__is_kmin_reduction(kp_reduction r) {
    return r == KP_RED_KMIN || r == KP_RED_ARGKMIN || r == KP_RED_KMIN_ARGKMIN;
}

int kp__kept_per_component(const kp_program *prog) { return kp__is_kmin_reduction(prog->red) ? prog->K : 1; }

kp_red_family kp__reduction_family(kp_reduction r) {
    switch (r) {
    case KP_RED_SUM: return KP_FAMILY_SUM;
    case KP_RED_LOGSUMEXP: return KP_FAMILY_LOGSUMEXP;
    case KP_RED_SUMSOFTMAXWEIGHT: return KP_FAMILY_SOFTMAX;
    case KP_RED_MIN:
    case KP_RED_MAX:
    case KP_RED_ARGMIN:
    case KP_RED_ARGMAX:
    case KP_RED_MIN_ARGMIN:
    case KP_RED_MAX_ARGMAX:
    case KP_RED_KMIN:
    case KP_RED_ARGKMIN:
    case KP_RED_KMIN_ARGKMIN: break;
    }
    return KP_FAMILY_SELECT;
}

void kp__state_size(const kp_program *prog, int *nreal, int *nidx) {
    int D = prog->fdim;
    *nreal = 0;
    *nidx = 0;
    switch (kp__reduction_family(prog->red)) {
    case KP_FAMILY_SUM: *nreal = 2 * D; break;       /* sum, compensation */
    case KP_FAMILY_LOGSUMEXP: *nreal = 3 * D; break; /* max, scaled sum, compensation */
    case KP_FAMILY_SOFTMAX: *nreal = 3 + 2 * prog->red_g.dim; break;
    case KP_FAMILY_SELECT:
        *nreal = kp__kept_per_component(prog) * D;
        *nidx = *nreal;
        break;
    }
}
