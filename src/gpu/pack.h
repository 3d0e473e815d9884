/*
 * pack.h — the generated kernels' packed argument layout (codegen.h), shared
 * by the GPU engines: argument p of batch b, row t, component c at
 * b*bs + t*dim + c; outputs (nbatch, nrows, dim) contiguous. Host-side packing
 * of any strided, batch-broadcast array and scattering back, plus the checks
 * that let the CUDA engine use a device array in place when it already has
 * that layout.
 */
#ifndef KP_GPU_PACK_H
#define KP_GPU_PACK_H

#include "plan/engine.h"

/* 1 if a varies over the batch (some batch dimension > 1 with a stride). */
int kp__gpu_arg_batched(const kp_job *job, const kp_job_arg *a);
/* Packs a (rows x dim per batch; rows = 1 for parameters) into a new buffer of
 * job->prog->ctx's allocator; *bs receives its batch stride (0: shared by all batches). */
void *kp__gpu_pack_arg(const kp_job *job, const kp_job_arg *a, int64_t rows, int dim, size_t esz, int64_t *bs);
/* Scatters packed (nbatch, nrows, dim) values into the strided output o. */
void kp__gpu_unpack_out(const kp_job *job, const kp_job_arg *o, const char *packed, int dim, size_t esz);
/* 1 if a already has the packed layout (any batch stride *bs), so a kernel can read it in place. */
int kp__gpu_arg_is_packed(const kp_job *job, const kp_job_arg *a, int64_t rows, int dim, int64_t *bs);
/* 1 if output o is exactly (nbatch, nrows, dim) contiguous. */
int kp__gpu_out_is_packed(const kp_job *job, const kp_job_arg *o, int dim);

#endif
