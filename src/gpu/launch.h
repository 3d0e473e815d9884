/*
 * launch.h — the launch geometry both GPU engines share (opencl.c, cuda.c):
 * the chunks of the reduced axis, the row blocks of a generated kernel
 * (B * R rows each, codegen.h) and whether the reduced axis is split over
 * work-groups, plus the overrides that tests and tuning use:
 *
 *   $KP_GPU_BLOCK  threads per work-group B (a power of two up to 1024)
 *   $KP_GPU_ROWS   rows per thread R (1 to KP_GPU_MAX_ROWS)
 *   $KP_GPU_CHUNK  chunk length (> 0)
 *   $KP_GPU_SPLIT  0: never split, 1: split whenever there are 2 chunks or more
 *
 * An unset or invalid override means the default.
 */
#ifndef KP_GPU_LAUNCH_H
#define KP_GPU_LAUNCH_H

#include <stddef.h>
#include <stdint.h>

#include "gpu/codegen.h"

/* Chunk length of a reduced axis of ncols points: a function of ncols alone
 * (so a row's result never depends on the other rows or on the launch), about
 * ncols / KP_GPU_MIN_CHUNKS rounded up to a power of two, within
 * [KP_GPU_CHUNK_MIN, KP_GPU_CHUNK_MAX]. Short axes still give several chunks,
 * so that few row blocks (N small, or R rows per thread) can split the axis
 * over the device instead of leaving most of it idle; long axes keep chunks
 * long enough that each merge is amortized over 16K points. */
#define KP_GPU_MIN_CHUNKS 16
#define KP_GPU_CHUNK_MIN 1024
#define KP_GPU_CHUNK_MAX 16384
int64_t kp__gpu_chunk_length(int64_t ncols);

/* The block and rows arguments of kp__gpu_codegen: $KP_GPU_BLOCK and
 * $KP_GPU_ROWS, or 0 (the generator's choice). */
void kp__gpu_env_geometry(int *block, int *rows);

typedef struct kp_gpu_launch {
    int64_t chunk, nchunks; /* the reduced axis in nchunks chunks of chunk points */
    int64_t nblocks;        /* row blocks of info->block * info->rows rows */
    int split;              /* one work-group row per chunk, then the merge kernel */
} kp_gpu_launch;

/* The launch of a kernel described by info over nrows x ncols points and
 * nbatch batches: split when fewer than fill row blocks (all batches together)
 * would run and there are 2 chunks or more, unless $KP_GPU_SPLIT says; never
 * when info->no_split. */
kp_gpu_launch kp__gpu_launch_shape(const kp_gpu_kernel_info *info, int64_t nrows, int64_t ncols, int64_t nbatch,
                                   int64_t fill);

/* A device buffer handle: a CUDA device address or an OpenCL cl_mem. A
 * kernel argument reads it at its address, whichever member the engine uses. */
typedef union kp_gpu_mem {
    uint64_t addr; /* CUdeviceptr */
    void *obj;     /* cl_mem */
} kp_gpu_mem;

/* One kernel argument: the address and size of its value (clSetKernelArg
 * takes both, cuLaunchKernel the address). */
typedef struct kp_gpu_arg {
    const void *at;
    size_t size;
} kp_gpu_arg;

/* The arguments of one launch, in the order codegen.h documents. The values
 * pointed to must outlive the launch call. */
typedef struct kp_gpu_kernel_args {
    int n;
    kp_gpu_arg a[2 * KP_MAX_ARGS + 13];
} kp_gpu_kernel_args;

/* <name>_reduce: for each used argument u, its buffer bufs[u] and bstride[u]
 * (hs: the size of the engine's handle, CUdeviceptr or cl_mem); the buffers
 * out, out_idx, part, part_idx in outs[0..3]; sizes = nrows, ncols, chunk,
 * nchunks; *split. */
void kp__gpu_reduce_args(kp_gpu_kernel_args *k, int nused, const kp_gpu_mem *bufs, const int64_t *bstride, size_t hs,
                         const kp_gpu_mem outs[4], const int64_t sizes[4], const int *split);
/* Appends the two buffers of a kernel with ranges (rg_blk, rg_cols). */
void kp__gpu_ranges_args(kp_gpu_kernel_args *k, const kp_gpu_mem bufs[2], size_t hs);
/* Appends the row and column offsets of a kernel of partial states (row_off, col_off). */
void kp__gpu_offset_args(kp_gpu_kernel_args *k, const int64_t offsets[2]);
/* <name>_merge: the buffers part, part_idx, out, out_idx in bufs[0..3]; sizes = nrows, nchunks, ntotal. */
void kp__gpu_merge_args(kp_gpu_kernel_args *k, const kp_gpu_mem bufs[4], size_t hs, const int64_t sizes[3]);

#endif
