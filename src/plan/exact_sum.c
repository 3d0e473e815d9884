/* exact_sum.c — merging and reading order-independent sums (see exact_sum.h):
 * device/exact.h's functions, which the GPU kernels run too. */
#include "plan/exact_sum.h"

#include "device/exact_host.h"

_Static_assert(KP_XS_WORDS == KP_XSUM_WORDS && KP_XS_BINS == KP_XSUM_BINS && KP_XS_EMPTY == KP_XSUM_EMPTY,
               "one layout");

void kp__xsum_merge(int64_t *a, const int64_t *b) { kp__xs_merge(a, b); }

double kp__xsum_value(const int64_t *w, int f32) { return kp__xs_value(w, f32); }
