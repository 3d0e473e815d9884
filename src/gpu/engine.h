/*
 * engine.h — GPU engines' contract with the plan layer (src/plan/plan.c).
 *
 * plan.c builds a validated kp_cpu_job (the same description for every engine:
 * base pointers, element strides, sizes, batch shape) and calls kp__engine_run,
 * which picks the engine of the context: CPU (default, and AUTO for host
 * arrays), OpenCL (src/gpu/opencl.c) or CUDA (src/gpu/cuda.c).
 */
#ifndef KP_GPU_ENGINE_H
#define KP_GPU_ENGINE_H

#include "cpu/engine.h"

kp_status kp__engine_run(kp_context *ctx, const kp_cpu_job *job);

/* Where the arrays of one kp_plan_exec call live (engine_select.c). */
typedef struct kp_exec_target {
    kp_device device; /* KP_DEVICE_CPU: host arrays, kp__engine_run */
    int device_id;    /* CUDA ordinal */
    void *cuda_stream;
} kp_exec_target;

/* Checks that every array of the call (out and out_index when not NULL,
 * args[k] for the positions info[k].used) is on one known device, and fills
 * *t. KP_ERR_ARGUMENT (naming the arrays) otherwise. */
kp_status kp__exec_target(kp_context *ctx, const kp_arg_info *info, const kp_array *args, int nargs,
                          const kp_array *out, const kp_array *out_index, const kp_exec_options *opt,
                          kp_exec_target *t);
/* Runs a job whose arrays are on device t (not the CPU) on the context's
 * engine: CUDA or AUTO run it; CPU and OpenCL refuse (KP_ERR_UNSUPPORTED).
 * sum_rows_dim > 0: the formula sums its rows (kp_formula_sums_rows), and
 * job->out is the 1-row output of that width. */
kp_status kp__engine_run_device(kp_context *ctx, const kp_cpu_job *job, const kp_exec_target *t, int sum_rows_dim);

/* OpenCL: KP_OK if a platform with a device is there, else KP_ERR_UNSUPPORTED
 * ("no OpenCL platform: ..."), message in ctx. */
kp_status kp__opencl_available(kp_context *ctx);
kp_status kp__opencl_run(kp_context *ctx, const kp_cpu_job *job);

/* CUDA (src/gpu/cuda.c): driver API through dlopen("libcuda.so.1"), NVRTC.
 * kp__cuda_run: host arrays (copied to device 0 and back, synchronous);
 * kp__cuda_run_device: arrays on device t->device_id, queued on t->cuda_stream. */
kp_status kp__cuda_available(kp_context *ctx);
kp_status kp__cuda_run(kp_context *ctx, const kp_cpu_job *job);
kp_status kp__cuda_run_device(kp_context *ctx, const kp_cpu_job *job, const kp_exec_target *t, int sum_rows_dim);

#endif
