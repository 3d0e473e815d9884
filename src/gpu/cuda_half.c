/* cuda_half.c — source of the kernels described in cuda_half.h. */
#include "gpu/cuda_half.h"

#include <string.h>

#include "core/alloc.h"
#include "gpu/cuda_helpers.h"
#include "gpu/device_sources.h"

/* What device/half.h asks of its includer, in CUDA C++. */
static const char prelude[] =
    "// libkp CUDA float16 conversions (src/gpu/cuda_half.h)\n"
    "#define KP_DEVICE static __device__ __forceinline__\n"
    "KP_DEVICE unsigned kp__d_f32_bits(float f) { return (unsigned)__float_as_int(f); }\n"
    "KP_DEVICE float kp__d_f32_of(unsigned u) { return __int_as_float((int)u); }\n";

/* After device/half.h and cuda_helpers.h's kp_layout, kp_off and KP_GRID_LOOP. */
static const char kernels[] =
    "extern \"C\" __global__ void kp_half_gather(const unsigned short *src, float *dst, kp_layout L, long long nb, "
    "long long rows, long long dim) {\n"
    "  const long long per = rows * dim;\n"
    "  KP_GRID_LOOP(k, nb * per) {\n"
    "    long long b = k / per, r = k - b * per, t = r / dim;\n"
    "    dst[k] = kp__d_half_to_float(src[kp_off(L, b, t, r - t * dim)]);\n"
    "  }\n"
    "}\n"
    "extern \"C\" __global__ void kp_half_scatter(const float *src, unsigned short *dst, kp_layout L, long long nb, "
    "long long rows, long long dim) {\n"
    "  const long long per = rows * dim;\n"
    "  KP_GRID_LOOP(k, nb * per) {\n"
    "    long long b = k / per, r = k - b * per, t = r / dim;\n"
    "    dst[kp_off(L, b, t, r - t * dim)] = (unsigned short)kp__d_float_to_half(src[k]);\n"
    "  }\n"
    "}\n"
    "extern \"C\" __global__ void kp_half_sumrows(const float *src, unsigned short *dst, kp_layout L, long long nb, "
    "long long rows, long long dim) {\n"
    "  KP_GRID_LOOP(k, nb * dim) {\n"
    "    long long b = k / dim, c = k - b * dim; double s = 0;\n"
    "    for (long long t = 0; t < rows; t++) s += (double)src[(b * rows + t) * dim + c];\n"
    "    dst[kp_off(L, b, 0, c)] = (unsigned short)kp__d_float_to_half((float)s);\n"
    "  }\n"
    "}\n";

char *kp__cuda_half_source(kp_context *ctx) {
    const char *parts[4] = {prelude, kp__device_half_source, kp__cuda_helpers_source, kernels};
    size_t len[4], total = 1;
    for (int k = 0; k < 4; k++) total += len[k] = strlen(parts[k]);
    char *s = kp__alloc(ctx, total);
    if (!s) return NULL;
    char *p = s;
    for (int k = 0; k < 4; k++) {
        memcpy(p, parts[k], len[k]);
        p += len[k];
    }
    *p = 0;
    return s;
}
