/*
 * half.h - IEEE 754 binary16 (KP_FLOAT16) <-> binary32 conversions, bit-exact,
 * written once in the common subset of C, CUDA C++ and OpenCL C: the CPU
 * build compiles it (core/half.c: the plan layer's conversions of host
 * arrays), and the GPU engines embed its text in the kernels that convert
 * float16 device arrays (gpu/cuda_half.c), so both give the same bits.
 *
 * Integer arithmetic only, rather than the dialects' own conversions
 * (_Float16, __half, vload_half): every compiler and device must round alike,
 * NaN payloads included.
 *
 * Before it, the includer defines KP_DEVICE (the functions' qualifiers) and
 * the bit casts kp__d_f32_bits(float) -> unsigned and kp__d_f32_of(unsigned)
 * -> float. `unsigned` is 32 bits wide in the three dialects; a half is the
 * low 16 bits of an unsigned.
 */
/* Exact: every binary16 value is a binary32 value (subnormals, infinities and
 * signed zeros included); a NaN stays a NaN with its sign and payload bits. */
KP_DEVICE float kp__d_half_to_float(unsigned h) {
    unsigned sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1fu) return kp__d_f32_of(sign | 0x7f800000u | man << 13); /* inf, NaN (payload kept) */
    if (exp != 0u) return kp__d_f32_of(sign | (exp + 112u) << 23 | man << 13); /* rebias 15 -> 127 */
    if (man == 0u) return kp__d_f32_of(sign);
    /* Subnormal: man * 2^-24, normal in binary32. Shift the leading 1 into place. */
    unsigned e = 0u;
    while (!(man & 0x400u)) {
        man <<= 1;
        e++;
    }
    return kp__d_f32_of(sign | (113u - e) << 23 | (man & 0x3ffu) << 13);
}

/* Rounded to nearest, ties to even, as IEEE 754 conversion: values beyond the
 * largest half (65504) by half an ulp or more become infinities, tiny values
 * become subnormals or signed zeros; NaN stays NaN (payload's top bits kept,
 * quiet bit set). */
KP_DEVICE unsigned kp__d_float_to_half(float f) {
    unsigned u = kp__d_f32_bits(f);
    unsigned sign = (u >> 16) & 0x8000u, exp = (u >> 23) & 0xffu, man = u & 0x7fffffu;
    if (exp == 0xffu) /* inf stays inf; NaN keeps its top payload bits and is quiet */
        return sign | 0x7c00u | (man != 0u ? 0x200u | (man >> 13) : 0u);
    if (exp >= 143u) return sign | 0x7c00u; /* >= 2^16: infinity */
    unsigned m = man, shift = 13u, e = 0u; /* e: the biased half exponent */
    if (exp >= 113u) { /* normal half: keep 10 of 23 mantissa bits */
        e = exp - 112u;
    } else { /* subnormal half (or zero): the implicit 1 joins the mantissa */
        if (exp < 102u) return sign; /* below half the smallest subnormal: rounds to zero */
        m = man | 0x800000u;
        shift = 126u - exp;
    }
    unsigned q = m >> shift, rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (q & 1u))) q++; /* nearest, ties to even */
    /* q may carry into the exponent field (the next binade, or infinity from
     * 65520 up): adding it to the exponent bits gives exactly that. */
    return sign + (e << 10) + q;
}
