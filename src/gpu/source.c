/* source.c — kp_formula_gpu_source: the kernel source an engine generates for a formula. */
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "gpu/codegen.h"
#include "plan/reduction.h"

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
    prog.exact = ctx->sum_scheme == KP_SUM_EXACT && kp__red(prog.red)->family != KP_FAMILY_SELECT; /* as kp_plan_new */
    kp_gpu_kernel_info info;
    kp_gpu_settings set = {ctx->sum_scheme, ctx->math_mode, 0, 0};
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
    kp__free(f->ctx, src);
    return KP_OK;
}
