/*
 * device_sources.h - the text of src/device/ops.h, src/device/monoid.h and
 * src/device/half.h and src/device/exact.h, embedded at build time
 * (cmake/embed_source.cmake, gpu/gpu.cmake): the generator prints the first
 * two into every kernel after the dialect's prelude, and the fourth into the
 * kernels of KP_SUM_EXACT; the CUDA engine's float16 conversion kernels
 * (cuda_half.h) print the third.
 */
#ifndef KP_GPU_DEVICE_SOURCES_H
#define KP_GPU_DEVICE_SOURCES_H

extern const char kp__device_ops_source[];
extern const char kp__device_monoid_source[];
extern const char kp__device_half_source[];
extern const char kp__device_exact_source[];

#endif
