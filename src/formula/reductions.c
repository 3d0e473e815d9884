/* reductions.c — the reduction table (reductions.def) and its public queries. */
#include "formula/reductions.h"


#define X(id, name, family, value, index, takes_k, takes_g, is_max, with_indices)                                 \
    _Static_assert(KP__RED_SLOT_##id == (int)KP_RED_##id, "reductions.def lists kp_reduction in its order");
#include "formula/reductions.def"
#undef X

const kp_red_info kp__red_table[KP_RED_COUNT] = {
#define X(id, name, family, value, index, takes_k, takes_g, is_max, with_indices)                                 \
    [KP_RED_##id] = {name, KP_FAMILY_##family, KP_WIDTH_##value, KP_WIDTH_##index, takes_k, takes_g, is_max,       \
                     KP_RED_##with_indices},
#include "formula/reductions.def"
#undef X
};

static const char *const full_names[KP_RED_COUNT] = {
#define X(id, name, ...) [KP_RED_##id] = name "_Reduction",
#include "formula/reductions.def"
#undef X
};

const char *kp__reduction_name(kp_reduction r) { return kp__red_valid((int)r) ? full_names[r] : "?"; }

int kp_reduction_count(void) { return KP_RED_COUNT; }

const char *kp_reduction_name(kp_reduction r) { return kp__red_valid((int)r) ? kp__red(r)->name : NULL; }

unsigned kp_reduction_flags(kp_reduction r) {
    if (!kp__red_valid((int)r)) return 0;
    const kp_red_info *R = kp__red(r);
    unsigned f = 0;
    if (R->takes_k) f |= KP_REDUCTION_TAKES_K;
    if (R->takes_g) f |= KP_REDUCTION_TAKES_G;
    if (R->value != KP_WIDTH_NONE) f |= KP_REDUCTION_VALUES;
    if (R->index != KP_WIDTH_NONE) f |= KP_REDUCTION_INDICES;
    if (R->family == KP_FAMILY_SELECT) f |= KP_REDUCTION_SELECTS;
    return f;
}
