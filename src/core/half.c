/* half.c — binary16 <-> binary32 conversions (see half.h). */
#include "core/half.h"

#include <string.h>

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float kp__half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1fu) return float_of(sign | 0x7f800000u | man << 13); /* inf, NaN (payload kept) */
    if (exp != 0) return float_of(sign | (exp + 112u) << 23 | man << 13); /* rebias 15 -> 127 */
    if (man == 0) return float_of(sign);
    /* Subnormal: man * 2^-24, normal in binary32. Shift the leading 1 into place. */
    int e = -1;
    do {
        man <<= 1;
        e++;
    } while (!(man & 0x400u));
    return float_of(sign | (uint32_t)(112 - e) << 23 | (man & 0x3ffu) << 13);
}

uint16_t kp__float_to_half(float f) {
    uint32_t u = bits_of(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t exp = (u >> 23) & 0xffu, man = u & 0x7fffffu;
    if (exp == 0xffu) /* inf stays inf; NaN keeps its top payload bits and is quiet */
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0u));
    int e = (int)exp - 127 + 15; /* biased half exponent */
    if (e >= 0x1f) return (uint16_t)(sign | 0x7c00u); /* overflow (>= 2^16): infinity */
    uint32_t m, shift;
    if (e >= 1) { /* normal half: keep 10 of 23 mantissa bits */
        m = man;
        shift = 13;
    } else { /* subnormal half (or zero): the implicit 1 joins the mantissa */
        if (e < -10) return sign; /* below half the smallest subnormal: rounds to zero */
        m = man | 0x800000u;
        shift = (uint32_t)(14 - e);
        e = 0;
    }
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (q & 1u))) q++; /* nearest, ties to even */
    /* q may carry into the exponent field (the next binade, or infinity from
     * 65520 up): adding it to the exponent bits gives exactly that. */
    return (uint16_t)(sign + ((uint32_t)e << 10) + q);
}
