/* cuda_helpers.c — source of the kernels described in cuda_helpers.h. */
#include "gpu/cuda_helpers.h"

#include "kp.h"

_Static_assert(KP_MAX_BATCH_DIMS == 6, "kp_cuda_layout holds 6 batch dimensions");
_Static_assert(sizeof(kp_cuda_layout) == 15 * 8, "kp_cuda_layout must match the device struct");

const char kp__cuda_helpers_source[] =
    "// libkp CUDA helpers (src/gpu/cuda_helpers.h)\n"
    "struct kp_layout { long long nd, shape[6], bstride[6], row_stride, comp_stride; };\n"
    "__device__ inline long long kp_off(const kp_layout &L, long long b, long long t, long long c) {\n"
    "  long long off = t * L.row_stride + c * L.comp_stride;\n"
    "  for (int d = (int)L.nd - 1; d >= 0; d--) { off += (b % L.shape[d]) * L.bstride[d]; b /= L.shape[d]; }\n"
    "  return off;\n"
    "}\n"
    "#define KP_GRID_LOOP(k, n) \\\n"
    "  for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < (n); k += (long long)gridDim.x * blockDim.x)\n"
    "template <typename T> __device__ void kp_gather(const T *src, T *dst, const kp_layout &L, long long nb, long long rows, long long dim) {\n"
    "  const long long per = rows * dim;\n"
    "  KP_GRID_LOOP(k, nb * per) { long long b = k / per, r = k - b * per, t = r / dim; dst[k] = src[kp_off(L, b, t, r - t * dim)]; }\n"
    "}\n"
    "template <typename T> __device__ void kp_scatter(const T *src, T *dst, const kp_layout &L, long long nb, long long rows, long long dim) {\n"
    "  const long long per = rows * dim;\n"
    "  KP_GRID_LOOP(k, nb * per) { long long b = k / per, r = k - b * per, t = r / dim; dst[kp_off(L, b, t, r - t * dim)] = src[k]; }\n"
    "}\n"
    "template <typename T> __device__ void kp_sumrows(const T *src, T *dst, const kp_layout &L, long long nb, long long rows, long long dim) {\n"
    "  KP_GRID_LOOP(k, nb * dim) {\n"
    "    long long b = k / dim, c = k - b * dim; double s = 0;\n"
    "    for (long long t = 0; t < rows; t++) s += (double)src[(b * rows + t) * dim + c];\n"
    "    dst[kp_off(L, b, 0, c)] = (T)s;\n"
    "  }\n"
    "}\n"
    "#define KP_H(name, fn, T) extern \"C\" __global__ void name(const T *src, T *dst, kp_layout L, long long nb, "
    "long long rows, long long dim) { fn<T>(src, dst, L, nb, rows, dim); }\n"
    "KP_H(kp_gather4, kp_gather, unsigned int)\n"
    "KP_H(kp_gather8, kp_gather, unsigned long long)\n"
    "KP_H(kp_scatter4, kp_scatter, unsigned int)\n"
    "KP_H(kp_scatter8, kp_scatter, unsigned long long)\n"
    "KP_H(kp_sumrows_f32, kp_sumrows, float)\n"
    "KP_H(kp_sumrows_f64, kp_sumrows, double)\n";
