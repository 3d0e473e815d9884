/* engine_select.c — kp_context_set_engine, kp_formula_gpu_source, and the engine dispatch of plan.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "gpu/codegen.h"
#include "gpu/engine.h"

kp_status kp_engine_available(kp_context *ctx, kp_engine engine) {
    if (!ctx) return KP_ERR_NULL;
    switch (engine) {
    case KP_ENGINE_CPU:
    case KP_ENGINE_AUTO: return KP_OK;
    case KP_ENGINE_OPENCL: return kp__opencl_available(ctx);
    case KP_ENGINE_CUDA: return kp__cuda_available(ctx);
    }
    return kp__fail(ctx, KP_ERR_ARGUMENT, "unknown engine %d", (int)engine);
}

kp_status kp_context_set_engine(kp_context *ctx, kp_engine engine) {
    if (!ctx) return KP_ERR_NULL;
    kp_status st = kp_engine_available(ctx, engine);
    if (st == KP_OK) ctx->engine = engine;
    return st;
}

kp_status kp__engine_run(kp_context *ctx, const kp_cpu_job *job) {
    switch (ctx->engine) {
    case KP_ENGINE_OPENCL: return kp__opencl_run(ctx, job);
    case KP_ENGINE_CUDA: return kp__cuda_run(ctx, job);
    case KP_ENGINE_CPU:
    case KP_ENGINE_AUTO: break; /* host arrays: the CPU, never a silent copy to a device */
    }
    return kp__cpu_run(ctx, job);
}

static const char *device_name(const kp_array *a, char *buf, size_t size) {
    if (a->device == KP_DEVICE_CPU) return "the CPU";
    snprintf(buf, size, "CUDA device %d", a->device_id);
    return buf;
}

kp_status kp__exec_target(kp_context *ctx, const kp_arg_info *info, const kp_array *args, int nargs,
                          const kp_array *out, const kp_array *out_index, const kp_exec_options *opt,
                          kp_exec_target *t) {
    const kp_array *first = NULL;
    char first_name[32] = "", name[32], d1[32], d2[32];
    memset(t, 0, sizeof *t);
    for (int k = -2; k < nargs; k++) {
        const kp_array *a = k == -2 ? out : k == -1 ? out_index : info[k].used ? &args[k] : NULL;
        if (!a) continue;
        if (k == -2) snprintf(name, sizeof name, "the output");
        else if (k == -1) snprintf(name, sizeof name, "the index output");
        else snprintf(name, sizeof name, "argument %d", k);
        switch (a->device) {
        case KP_DEVICE_CPU: break;
        case KP_DEVICE_CUDA:
            if (a->device_id < 0)
                return kp__fail(ctx, KP_ERR_ARGUMENT, "%s: CUDA device_id %d is negative", name, a->device_id);
            break;
        default: return kp__fail(ctx, KP_ERR_ARGUMENT, "%s: unknown device %d", name, (int)a->device);
        }
        if (!first) {
            first = a;
            memcpy(first_name, name, sizeof name);
        } else if (a->device != first->device || (a->device == KP_DEVICE_CUDA && a->device_id != first->device_id)) {
            return kp__fail(ctx, KP_ERR_ARGUMENT,
                            "all arrays of a call must be on one device: %s is on %s, %s on %s (libkp never "
                            "copies between devices)",
                            first_name, device_name(first, d1, sizeof d1), name, device_name(a, d2, sizeof d2));
        }
    }
    if (first && first->device == KP_DEVICE_CUDA) {
        t->device = KP_DEVICE_CUDA;
        t->device_id = first->device_id;
        t->cuda_stream = opt ? opt->cuda_stream : NULL;
    }
    return KP_OK;
}

kp_status kp__engine_run_device(kp_context *ctx, const kp_cpu_job *job, const kp_exec_target *t, int sum_rows_dim) {
    switch (ctx->engine) {
    case KP_ENGINE_CUDA:
    case KP_ENGINE_AUTO: return kp__cuda_run_device(ctx, job, t, sum_rows_dim);
    case KP_ENGINE_CPU:
    case KP_ENGINE_OPENCL: break;
    }
    return kp__fail(ctx, KP_ERR_UNSUPPORTED,
                    "the arrays are on CUDA device %d, but the %s engine reads host memory only: select "
                    "KP_ENGINE_CUDA or KP_ENGINE_AUTO (kp_context_set_engine), or copy them to the host",
                    t->device_id, ctx->engine == KP_ENGINE_OPENCL ? "OpenCL" : "CPU");
}

kp_status kp_formula_gpu_source(kp_context *ctx, const kp_formula *f, kp_dtype dtype, kp_engine engine, char *buf,
                                size_t size, size_t *needed) {
    if (!ctx) return KP_ERR_NULL;
    if (!f) return kp__fail(ctx, KP_ERR_NULL, "formula is NULL");
    if (dtype != KP_FLOAT32 && dtype != KP_FLOAT64)
        return kp__fail(ctx, KP_ERR_DTYPE, "kernels compute in float32 or float64, not dtype %d", (int)dtype);
    if (engine != KP_ENGINE_CUDA && engine != KP_ENGINE_OPENCL)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "kernel source exists for KP_ENGINE_CUDA and KP_ENGINE_OPENCL only");
    kp_program prog;
    kp_status st = kp__lower(f->ctx, f, &prog); /* lowering may intern nodes: the formula's own store */
    if (st != KP_OK) return kp__fail(ctx, st, "%s", kp_context_message(f->ctx));
    kp_gpu_kernel_info info;
    kp_gpu_settings set = {ctx->sum_scheme, ctx->math_mode};
    char *src = kp__gpu_codegen(&prog, dtype, &set, engine == KP_ENGINE_CUDA ? KP_GPU_CUDA : KP_GPU_OPENCL, 0, 0, "kp", &info);
    kp__program_free(&prog);
    if (!src) return kp__fail(ctx, KP_ERR_OOM, "out of memory while generating the kernel");
    size_t n = strlen(src);
    if (needed) *needed = n;
    if (buf && size) {
        size_t k = n < size - 1 ? n : size - 1;
        memcpy(buf, src, k);
        buf[k] = 0;
    }
    free(src);
    return KP_OK;
}
