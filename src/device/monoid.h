/*
 * monoid.h - the scalar steps of the reduction monoids that the CPU engine
 * and the generated GPU kernels share, in the common subset of C, CUDA C++
 * and OpenCL C (see device/ops.h for how each side includes it). Macros, not
 * functions: the GPU kernels apply them to elements of per-row register
 * arrays, whose addresses they never take. KP_REAL, KP_INF and kp__d_exp come
 * from the includer.
 */
#ifndef KP_DEVICE_MONOID_H
#define KP_DEVICE_MONOID_H
/* Kahan: adds x to (s, c); once s is infinite the compensation is dropped
   (t - t == 0 only for finite t). */
#define KP_KAHAN(s, c, x) do { KP_REAL y_ = (x) - (c); KP_REAL t_ = (s) + y_; KP_REAL cc_ = (t_ - (s)) - y_; \
    (c) = (t_ - t_ == 0) ? cc_ : (KP_REAL)0; (s) = t_; } while (0)
/* NaN ranks before every number: it is the min and the max of a set holding it. */
#define KP_BETTER_MIN(v, best) ((v) < (best) || ((v) != (v) && (best) == (best)))
#define KP_BETTER_MAX(v, best) ((v) > (best) || ((v) != (v) && (best) == (best)))
/* LogSumExp: running max m, sum s of exp(f - m), compensation c.
   The common case first: f - m <= 0 (no NaN, not both the same infinity; with
   m = +inf it adds exp(-inf) = 0 to s = 1, as the rare branch would leave it). */
#define KP_LSE_ACC(m, s, c, f) do { KP_REAL f_ = (f); const KP_REAL df_ = f_ - (m); \
    if (df_ <= 0) KP_KAHAN(s, c, kp__d_exp(df_)); \
    else if (f_ != f_ || (m) != (m)) { if (f_ != f_) (m) = f_; } \
    else if (f_ == -KP_INF) { } \
    else if (f_ == KP_INF || (m) == KP_INF) { (m) = KP_INF; (s) = 1; (c) = 0; } \
    else { KP_REAL fc_ = (m) == -KP_INF ? (KP_REAL)0 : kp__d_exp((m) - f_); \
           (s) *= fc_; (c) *= fc_; (m) = f_; KP_KAHAN(s, c, (KP_REAL)1); } } while (0)
/* The same with the terms of a group of points summed plainly in t (rescaled
   with s and c); KP_LSE_FLUSH adds t to (s, c) at the end of the group. The
   common case is straight-line code (the exponential computed anyway, added
   through a select), so the loop branches only around the rare update. */
#define KP_LSE_ACCG(m, s, c, t, f) do { KP_REAL f_ = (f); const KP_REAL df_ = f_ - (m); \
    const int ok_ = df_ <= 0; const KP_REAL e_ = kp__d_exp(df_); \
    (t) += ok_ ? e_ : (KP_REAL)0; \
    if (ok_) { } \
    else if (f_ != f_ || (m) != (m)) { if (f_ != f_) (m) = f_; } \
    else if (f_ == -KP_INF) { } \
    else if (f_ == KP_INF || (m) == KP_INF) { (m) = KP_INF; (s) = 1; (c) = 0; (t) = 0; } \
    else { KP_REAL fc_ = (m) == -KP_INF ? (KP_REAL)0 : kp__d_exp((m) - f_); \
           (s) *= fc_; (c) *= fc_; (t) = (t) * fc_ + (KP_REAL)1; (m) = f_; } } while (0)
#define KP_LSE_FLUSH(s, c, t) do { KP_KAHAN(s, c, t); (t) = 0; } while (0)
#define KP_LSE_RESCALE(m, mn, s, c) do { if ((m) != (mn)) { \
    KP_REAL fc_ = (m) == -KP_INF ? (KP_REAL)0 : kp__d_exp((m) - (mn)); (s) *= fc_; (c) *= fc_; } } while (0)
/* Merges (m2, s2, c2), covering later points, into (m, s, c). */
#define KP_LSE_MERGE(m, s, c, m2_, s2_, c2_) do { KP_REAL m2 = (m2_), s2 = (s2_), c2 = (c2_); \
    if ((m) != (m) || m2 != m2) { if ((m) == (m)) (m) = m2; } \
    else if (m2 == -KP_INF) { } \
    else if ((m) == KP_INF || m2 == KP_INF) { (m) = KP_INF; (s) = 1; (c) = 0; } \
    else { KP_REAL mn = (m) > m2 ? (m) : m2; KP_LSE_RESCALE(m, mn, s, c); KP_LSE_RESCALE(m2, mn, s2, c2); \
           (m) = mn; KP_KAHAN(s, c, s2); KP_KAHAN(s, c, -c2); } } while (0)
#endif
