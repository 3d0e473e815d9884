/*
 * host_loop.h — the host side of a GPU call, written once for both GPU
 * engines: generate the kernel source, load its program, check the block
 * size, choose the launch shape, bring the arguments (and the block-sparse
 * ranges table) to the device, allocate the outputs and chunk states, launch
 * the reduce and merge kernels (in slices of batches where the grid is
 * limited), read the outputs back, free what the call made. Partial states
 * (kp_plan_exec_partial) go through the same steps with the chunk states read
 * back instead of merged on the device.
 *
 * An engine describes its device by a kp_gpu_device_ops table (CUDA: driver
 * API, OpenCL: clXxx calls) and calls kp__gpu_run with
 * a kp_gpu_device: the table, its own per-call state, and the facts of this
 * call (how many row blocks fill the device, whether the arrays are already
 * in device memory).
 */
#ifndef KP_GPU_HOST_LOOP_H
#define KP_GPU_HOST_LOOP_H

#include "gpu/codegen.h"
#include "gpu/launch.h"
#include "plan/engine.h"

typedef struct kp_gpu_call kp_gpu_call;

/* The kernels of one loaded program. */
typedef struct kp_gpu_kernels {
    void *reduce, *merge; /* CUfunction / cl_kernel */
    int max_block;        /* threads per work-group the device allows for reduce; 0: unknown */
} kp_gpu_kernels;

/* A device, one slot per step. `self` is the engine's state for the call;
 * every failure leaves its message in the call's context. */
typedef struct kp_gpu_device_ops {
    kp_gpu_dialect dialect;
    /* Bytes of a buffer handle passed as a kernel argument (CUdeviceptr, cl_mem). */
    size_t handle_size;
    /* Work-groups a launch may have along y (chunks) and z (batches). */
    int64_t max_grid_y, max_grid_z;
    /* The program of src (through the process's program cache, progcache.h)
     * and its reduce and merge kernels. */
    kp_status (*load)(void *self, const char *src, kp_gpu_kernels *k);
    /* A temporary of bytes (0: any small size), freed by release. */
    kp_status (*alloc)(void *self, size_t bytes, kp_gpu_mem *m);
    /* Queues a copy of host bytes to dst; src may be freed once the call has released. */
    kp_status (*upload)(void *self, kp_gpu_mem dst, const void *src, size_t bytes);
    /* Waits for the queued work and copies bytes of src to host memory. */
    kp_status (*download)(void *self, void *dst, kp_gpu_mem src, size_t bytes);
    /* Queues kernel on groups[0] x groups[1] x groups[2] work-groups of block threads. */
    kp_status (*launch)(void *self, void *kernel, const int64_t groups[3], int block, const kp_gpu_kernel_args *ka,
                        const char *name);
    /* m moved by bytes; NULL when max_grid_z never slices (the offset is then always 0). */
    kp_gpu_mem (*at)(kp_gpu_mem m, size_t bytes);
    /* Frees the call's temporaries and kernels, after whatever waiting the device needs. */
    kp_status (*release)(void *self);
    /* Arrays in device memory (kp_gpu_device.on_device); NULL for an engine
     * that reads host memory only. Argument u of the kernel (in place, or
     * gathered into a temporary; *bs its batch stride); output `which` (0
     * values, 1 indices: the caller's array when packed, else a temporary);
     * after the launches, the outputs not written in place (scatters, row sums).
     * Arrays of kp_job_arg.half (float16) are never used in place: converted
     * into float32 temporaries and rounded back, with device/half.h's
     * conversions (CUDA: cuda_half.h). */
    kp_status (*device_arg)(void *self, const kp_gpu_call *C, int u, kp_gpu_mem *m, int64_t *bs);
    kp_status (*device_out)(void *self, const kp_gpu_call *C, int which, kp_gpu_mem *m, int *direct);
    kp_status (*device_finish)(void *self, const kp_gpu_call *C);
} kp_gpu_device_ops;

typedef struct kp_gpu_device {
    const kp_gpu_device_ops *ops;
    void *self;
    kp_context *ctx;
    int64_t fill;     /* row blocks (all batches) that fill the device: fewer split the reduced axis */
    int on_device;    /* the job's arrays are in the device's memory (else host arrays) */
    int sum_rows_dim; /* device arrays: the job's row sum (kp_job.sum_rows_dim), else 0 */
} kp_gpu_device;

/* One call, as the device_* slots see it. */
struct kp_gpu_call {
    const kp_gpu_device *dev;
    const kp_job *job;
    size_t esz; /* bytes of a real */
    kp_gpu_kernel_info info;
    kp_gpu_kernels k;
    kp_gpu_launch shape;
    int states;                   /* partial states: the chunk states are the result */
    kp_gpu_mem arg[KP_MAX_ARGS];  /* used argument u's packed data */
    int64_t bs[KP_MAX_ARGS];      /* and its batch stride */
    kp_gpu_mem out[4];            /* out, out_idx, part, part_idx */
    int direct[2];                /* out, out_idx: the caller's device arrays, written in place */
    kp_gpu_mem rg[2];             /* block-sparse ranges: the table's entries and ranges */
    void *host[KP_MAX_ARGS + 8];  /* host buffers, freed at the end */
    int nhost;
};

/* The arguments of kp_engine_ops.run_partial, for engines that pass them on. */
typedef struct kp_gpu_partial {
    int64_t offset;
    void *sreal;
    int64_t *sidx;
} kp_gpu_partial;

/* Rows of the reduced or output side of used argument u. */
int64_t kp__gpu_arg_rows(const kp_gpu_call *C, int u);

/* One job through the device: kp_engine_ops.run (partial NULL), or its
 * run_partial (host arrays; the reduced axis in chunks of a fixed length,
 * KP_GPU_CHUNK_MAX or $KP_GPU_CHUNK, so parts starting on multiples of it fold
 * into the same bits in any split; the chunk states merged into the caller's
 * on the host, in order). With block-sparse ranges, the ranged kernel writes
 * the chunk states, one work-group per row piece and chunk. */
kp_status kp__gpu_run(const kp_gpu_device *d, const kp_job *job, const kp_gpu_partial *partial);

#endif
