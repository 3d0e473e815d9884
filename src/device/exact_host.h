/*
 * exact_host.h - device/exact.h compiled for the CPU: the integer types and
 * bit casts it expects, as C. The CPU engine's merge and rounding of exact
 * sums (plan/exact_sum.c, plan/exact_exp.c) are these functions, so the GPU
 * kernels and the CPU round the same words the same way.
 */
#ifndef KP_DEVICE_EXACT_HOST_H
#define KP_DEVICE_EXACT_HOST_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef KP_DEVICE
#define KP_DEVICE static inline
#endif
typedef int64_t kp_i64;
typedef uint64_t kp_u64;
typedef uint32_t kp_u32;

static inline kp_i64 kp__d_f64_bits(double x) {
    kp_i64 w;
    memcpy(&w, &x, sizeof w);
    return w;
}
static inline double kp__d_f64_of(kp_i64 w) {
    double x;
    memcpy(&x, &w, sizeof x);
    return x;
}
static inline kp_u32 kp__d_f32_bits(float x) {
    kp_u32 w;
    memcpy(&w, &x, sizeof w);
    return w;
}

#include "device/exact.h"

#endif
