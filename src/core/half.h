/* half.h — IEEE 754 binary16 (KP_FLOAT16) <-> binary32, bit-exact in software.
 *
 * Written once, in device/half.h, for the CPU and the GPU kernels that
 * convert float16 device arrays. Software rather than _Float16: the
 * conversions must give the same bits with every compiler and on every target
 * libkp builds for, and they run O(N + M) times per call (never inside the
 * pair loop), where their cost is nothing. */
#ifndef KP_CORE_HALF_H
#define KP_CORE_HALF_H

#include <stdint.h>

/* Exact: every binary16 value is a binary32 value (subnormals, infinities and
 * signed zeros included); a NaN stays a NaN with its sign and payload bits. */
float kp__half_to_float(uint16_t h);
/* Rounded to nearest, ties to even, as IEEE 754 conversion: values beyond the
 * largest half (65504) by half an ulp or more become infinities, tiny values
 * become subnormals or signed zeros; NaN stays NaN (payload's top bits kept,
 * quiet bit set). */
uint16_t kp__float_to_half(float f);

#endif
