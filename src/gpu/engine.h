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

/* OpenCL: KP_OK if a platform with a device is there, else KP_ERR_UNSUPPORTED
 * ("no OpenCL platform: ..."), message in ctx. */
kp_status kp__opencl_available(kp_context *ctx);
kp_status kp__opencl_run(kp_context *ctx, const kp_cpu_job *job);

/* CUDA: driver API through dlopen("libcuda.so.1"); launching is not implemented yet. */
kp_status kp__cuda_available(kp_context *ctx);
kp_status kp__cuda_run(kp_context *ctx, const kp_cpu_job *job);

#endif
