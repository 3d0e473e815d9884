/* half.c — binary16 <-> binary32 conversions (see half.h): device/half.h compiled for the CPU. */
#include "core/half.h"

#include <string.h>

_Static_assert(sizeof(unsigned) == 4, "device/half.h takes unsigned as 32 bits");

static inline unsigned kp__d_f32_bits(float f) {
    unsigned u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float kp__d_f32_of(unsigned u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#define KP_DEVICE static inline
#include "device/half.h"
#undef KP_DEVICE

float kp__half_to_float(uint16_t h) { return kp__d_half_to_float(h); }

uint16_t kp__float_to_half(float f) { return (uint16_t)kp__d_float_to_half(f); }
