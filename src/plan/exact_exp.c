/* exact_exp.c — the results of exact LogSumExp / SumSoftMaxWeight (see exact_exp.h):
 * device/exact.h's functions, which the GPU kernels run too. */
#include "plan/exact_exp.h"

#include "device/exact_host.h"

_Static_assert(KP_XS_LSE_WORDS == KP_XEXP_LSE_WORDS, "one layout");

double kp__xexp_log(const int64_t *w) { return kp__xs_log(w); }

double kp__xexp_ratio(const int64_t *num, const int64_t *den) { return kp__xs_ratio(num, den); }
