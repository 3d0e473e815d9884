/*
 * cuda_helpers.h — small CUDA kernels the CUDA engine uses around the
 * generated ones, for device arrays that are not in the packed layout of
 * codegen.h (strided, transposed, batch-broadcast) and for row-summed
 * outputs (parameter gradients). Compiled once per device through the same
 * AOT/cache/NVRTC path as the generated kernels.
 *
 *   kp_gather4/8 (src, dst, L, nb, rows, dim): dst[(b*rows + t)*dim + c] = src[off_L(b,t,c)]
 *   kp_scatter4/8 (src, dst, L, nb, rows, dim): dst[off_L(b,t,c)] = src[(b*rows + t)*dim + c]
 *       (4 or 8: element size; values are copied as bits)
 *   kp_sumrows_f32/f64 (src, dst, L, nb, rows, dim): dst[off_L(b,0,c)] = sum over t, in
 *       order, in double, of src[(b*rows + t)*dim + c] — the CPU engine's
 *       row summation (plan.c), so both give the same bits
 * with off_L(b,t,c) = t*row_stride + c*comp_stride + sum_d idx_d(b)*bstride[d],
 * idx_d(b) the digits of the flat batch index b over the batch shape.
 * Any grid: every kernel is a grid-stride loop.
 */
#ifndef KP_GPU_CUDA_HELPERS_H
#define KP_GPU_CUDA_HELPERS_H

#include <stdint.h>

/* Passed by value to the kernels: every field 64-bit so the host (C) and
 * device (C++) layouts agree without padding rules. */
typedef struct kp_cuda_layout {
    int64_t nd;
    int64_t shape[6];
    int64_t bstride[6];
    int64_t row_stride, comp_stride;
} kp_cuda_layout;

extern const char kp__cuda_helpers_source[];

#endif
