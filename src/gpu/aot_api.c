/* aot_api.c — public diagnostics of the ahead-of-time CUDA kernels (kp.h, engines block). */
#include <stdlib.h>

#include "core/context.h"
#include "gpu/aot.h"

size_t kp_cuda_aot_kernel_count(void) { return kp__cuda_aot_count(); }

kp_status kp_formula_cuda_aot(kp_context *ctx, const kp_formula *f, kp_dtype dtype, int *built_in) {
    if (!ctx || !built_in) return KP_ERR_NULL;
    *built_in = 0;
    /* The source through the public entry point itself, so the answer is about
     * exactly the text the CUDA engine looks up. */
    size_t need = 0;
    kp_status st = kp_formula_gpu_source(ctx, f, dtype, KP_ENGINE_CUDA, NULL, 0, &need);
    if (st != KP_OK) return st;
    char *src = kp__alloc(ctx, need + 1);
    if (!src) return kp__fail(ctx, KP_ERR_OOM, "out of memory while generating the kernel");
    st = kp_formula_gpu_source(ctx, f, dtype, KP_ENGINE_CUDA, src, need + 1, NULL);
    if (st == KP_OK) *built_in = kp__cuda_aot_image(src, need) != NULL;
    kp__free(ctx, src);
    return st;
}
