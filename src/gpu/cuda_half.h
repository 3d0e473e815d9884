/*
 * cuda_half.h — the CUDA kernels that convert float16 device arrays (KP_FLOAT16
 * arrays on a CUDA device, kp_job_arg.half) for the kernels of a float16 plan,
 * which compute in float32. Their conversions are device/half.h, the same
 * source as the host's (core/half.c), so a float16 call gives the same bits
 * with host arrays (converted by the plan layer) and with device arrays.
 *
 *   kp_half_gather (src, dst, L, nb, rows, dim): dst[(b*rows + t)*dim + c] =
 *       float(src[off_L(b,t,c)]): a float16 argument into a packed float32 temporary
 *   kp_half_scatter (src, dst, L, nb, rows, dim): dst[off_L(b,t,c)] =
 *       half(src[(b*rows + t)*dim + c]): a float32 result rounded into the caller's output
 *   kp_half_sumrows (src, dst, L, nb, rows, dim): dst[off_L(b,0,c)] = half(float(sum over t,
 *       in order, in double, of src[(b*rows + t)*dim + c])): row-summed outputs, rounded
 *       twice as the host path rounds them (the plan's float32 sum, then float16)
 * with src, dst and L as in cuda_helpers.h (L: the layout of the float16 array).
 */
#ifndef KP_GPU_CUDA_HALF_H
#define KP_GPU_CUDA_HALF_H

#include "kp.h"

/* The module's source (a dialect prelude, device/half.h, the layout helpers of
 * cuda_helpers.h and the three kernels), NUL-terminated, in ctx's memory
 * (kp__free); NULL when out of memory. */
char *kp__cuda_half_source(kp_context *ctx);

#endif
