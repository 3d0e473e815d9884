/*
 * reductions.h — what every pass asks about a reduction, from reductions.def:
 * kp__red(r)->field, and the widths of its outputs.
 */
#ifndef KP_FORMULA_REDUCTIONS_H
#define KP_FORMULA_REDUCTIONS_H

#include "kp.h"

/* The monoid behind a reduction: what its state holds and how it folds. The
 * nine Min/Max/KMin-type reductions share one (sorted K-lists of values and
 * indices; K = 1 outside the KMin family) and differ only in their outputs. */
typedef enum kp_red_family {
    KP_FAMILY_SUM,
    KP_FAMILY_LOGSUMEXP,
    KP_FAMILY_SOFTMAX, /* SumSoftMaxWeight */
    KP_FAMILY_SELECT   /* Min, Max, Arg*, KMin, ... */
} kp_red_family;

/* Components per output row. */
typedef enum kp_red_width {
    KP_WIDTH_NONE, /* no such output */
    KP_WIDTH_F,    /* dim of F */
    KP_WIDTH_G,    /* dim of G (SumSoftMaxWeight) */
    KP_WIDTH_KF    /* K x dim of F */
} kp_red_width;

typedef struct kp_red_info {
    const char *name; /* KeOps name without "_Reduction" */
    kp_red_family family;
    kp_red_width value, index;
    int takes_k, takes_g, is_max;
    kp_reduction with_indices;
} kp_red_info;

enum {
#define X(id, ...) KP__RED_SLOT_##id,
#include "formula/reductions.def"
#undef X
    KP_RED_COUNT
};

extern const kp_red_info kp__red_table[KP_RED_COUNT];

/* The row of r; r must be a valid kp_reduction. */
static inline const kp_red_info *kp__red(kp_reduction r) { return &kp__red_table[r]; }
/* 1 if r is a valid kp_reduction. */
static inline int kp__red_valid(int r) { return r >= 0 && r < KP_RED_COUNT; }

/* The reduction's name in formula text ("Sum_Reduction"); "?" if r is none. */
const char *kp__reduction_name(kp_reduction r);

/* Components of an output of width rule w. */
static inline int kp__red_width(kp_red_width w, int fdim, int gdim, int K) {
    return w == KP_WIDTH_F ? fdim : w == KP_WIDTH_G ? gdim : w == KP_WIDTH_KF ? K * fdim : 0;
}

#endif
