/*
 * aot.h — ahead-of-time compiled CUDA kernels (issue 5).
 *
 * When nvcc is found at build time, the standard kernels (Gaussian, Laplacian,
 * Cauchy, inverse multiquadric, energy; Sum and LogSumExp; their first
 * gradients; float32 and float64) are generated, compiled for sm_70..sm_90 and
 * linked into libkp, so the common case never waits for NVRTC.
 */
#ifndef KP_GPU_AOT_H
#define KP_GPU_AOT_H

#include <stddef.h>

/* The fatbin image compiled from exactly this CUDA source (as printed by
 * codegen.c), loadable with cuModuleLoadData / cuModuleLoadFatBinary; NULL when
 * the source is not one of the built-in kernels or libkp was built without nvcc. */
const void *kp__cuda_aot_image(const char *source, size_t source_len);

/* Number of built-in kernels (0 without nvcc at build time). */
size_t kp__cuda_aot_count(void);

#endif
