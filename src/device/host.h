/*
 * host.h - the device sources (device/ops.h, device/monoid.h) compiled for
 * the CPU: KP_REAL is the translation unit's one real type (double, or float
 * when KP_REAL_F32 is 1), and the math library is C's.
 */
#ifndef KP_DEVICE_HOST_H
#define KP_DEVICE_HOST_H

#include <math.h>

#ifndef KP_REAL_F32
#error "define KP_REAL_F32 (0: double, 1: float) before device/host.h"
#endif
#if KP_REAL_F32
#define KP_REAL float
#define KP__DM(fn) fn##f
#else
#define KP_REAL double
#define KP__DM(fn) fn
#endif
#define KP_DEVICE static inline
#define KP_INF ((KP_REAL)INFINITY)
#define KP_NAN ((KP_REAL)NAN)

#define KP__D1(fn) \
    KP_DEVICE KP_REAL kp__d_##fn(KP_REAL a) { return KP__DM(fn)(a); }
KP__D1(exp)
KP__D1(log)
KP__D1(sqrt)
KP__D1(sin)
KP__D1(cos)
KP__D1(asin)
KP__D1(acos)
KP__D1(atan)
KP__D1(tanh)
KP__D1(erf)
KP__D1(fabs)
KP__D1(floor)
KP__D1(round)
#undef KP__D1
KP_DEVICE KP_REAL kp__d_pow(KP_REAL a, KP_REAL b) { return KP__DM(pow)(a, b); }
KP_DEVICE KP_REAL kp__d_atan2(KP_REAL a, KP_REAL b) { return KP__DM(atan2)(a, b); }
KP_DEVICE KP_REAL kp__d_rsqrt_raw(KP_REAL a) { return (KP_REAL)1 / KP__DM(sqrt)(a); }

#include "device/ops.h"
#include "device/monoid.h"

#endif
