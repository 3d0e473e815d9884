/* codegen_prelude.c — the dialect prelude of a generated kernel (CUDA C++ or OpenCL C). */
#include <string.h>

#include "gpu/codegen_internal.h"
#include "gpu/device_sources.h"

/* The dialect's part of the prelude: qualifiers, the real type, and the math
 * library (libm names, fast-math approximations); the ops and monoid steps
 * that follow are the shared device sources (device/ops.h, device/monoid.h). */
void kp__cg_prelude(kp_sbuf *s, kp_dtype dtype, kp_gpu_dialect dia, const char *name, int fast) {
    int f32 = dtype == KP_FLOAT32;
    if (dia == KP_GPU_OPENCL) {
        if (!f32) kp__sb_printf(s, "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n");
        kp__sb_printf(s,
                  "#define KP_KERNEL __kernel\n#define KP_GLOBAL __global\n#define KP_LOCAL __local\n"
                  "#define KP_BARRIER() barrier(CLK_LOCAL_MEM_FENCE)\n"
                  "#define KP_LID ((int)get_local_id(0))\n#define KP_GROUP(d) ((long)get_group_id(d))\n"
                  "#define KP_GSIZE(d) ((long)get_global_size(d))\n#define KP_GLOBAL_ID(d) ((long)get_global_id(d))\n"
                  "#define KP_FN static inline\n#define KP_DEVICE KP_FN\n#define KP_REAL real\n"
                  "typedef %s real;\ntypedef long kp_i64;\n"
                  "#define KP_INF ((real)INFINITY)\n#define KP_NAN ((real)NAN)\n",
                  f32 ? "float" : "double");
    } else {
        kp__sb_printf(s, "#ifndef KP_PRELUDE_CUDA\n#define KP_PRELUDE_CUDA\n"
                     "#define KP_KERNEL extern \"C\" __global__\n#define KP_GLOBAL\n#define KP_LOCAL __shared__\n"
                     "#define KP_BARRIER() __syncthreads()\n#define KP_LID ((int)threadIdx.x)\n"
                     "#define KP_GROUP(d) ((long long)((d) == 0 ? blockIdx.x : (d) == 1 ? blockIdx.y : blockIdx.z))\n"
                     "#define KP_FN static __device__ __forceinline__\n#define KP_DEVICE KP_FN\n#define KP_REAL real\n"
                     "#define KP_INF ((real)__int_as_float(0x7f800000))\n"
                     "#define KP_NAN ((real)__int_as_float(0x7fffffff))\n#endif\n");
        kp__sb_printf(s, "namespace %s {\ntypedef %s real;\ntypedef long long kp_i64;\n", name, f32 ? "float" : "double");
    }
    /* Math functions: OpenCL overloads by type; CUDA takes the f-suffixed names for float. */
    const char *sfx = (dia == KP_GPU_CUDA && f32) ? "f" : "";
    static const char *const unary[] = {"exp", "log", "sqrt", "sin", "cos", "asin", "acos", "atan",
                                        "tanh", "erf", "fabs", "floor", "round"};
    for (size_t k = 0; k < sizeof unary / sizeof unary[0]; k++)
        if (!fast || (strcmp(unary[k], "exp") != 0 && strcmp(unary[k], "log") != 0))
            kp__sb_printf(s, "KP_FN real kp__d_%s(real a) { return %s%s(a); }\n", unary[k], unary[k], sfx);
    if (fast && dia == KP_GPU_CUDA) /* KP_MATH_FAST (kp.h): the special-function unit, flushing subnormals */
        kp__sb_printf(s, "KP_FN real kp__d_exp2(real a) { real r; asm(\"ex2.approx.ftz.f32 %%0, %%1;\" : \"=f\"(r) : \"f\"(a)); "
                     "return r; }\n"
                     "KP_FN real kp__d_exp(real a) { return kp__d_exp2(a * 1.44269504f); }\n"
                     "KP_FN real kp__d_log(real a) { return __logf(a); }\n"
                     "KP_FN real kp__d_rsqrt_raw(real a) { return rsqrtf(a); }\n");
    else if (fast)
        kp__sb_printf(s, "KP_FN real kp__d_exp2(real a) { return native_exp2(a); }\n"
                     "KP_FN real kp__d_exp(real a) { return native_exp(a); }\n"
                     "KP_FN real kp__d_log(real a) { return native_log(a); }\n"
                     "KP_FN real kp__d_rsqrt_raw(real a) { return native_rsqrt(a); }\n");
    else kp__sb_printf(s, "KP_FN real kp__d_rsqrt_raw(real a) { return (real)1 / kp__d_sqrt(a); }\n");
    /* A fused Exp(a * s) or Exp(a / s) (s: a row value or constant, program.h): under fast math
       2^(a * (s log2 e)) and 2^(a * (log2 e / s)), whose factor the compiler hoists out of the pair loop. */
    if (fast) kp__sb_printf(s, "KP_FN real kp__d_exps(real a, real s) { return kp__d_exp2(a * (s * (real)1.44269504f)); }\n"
                           "KP_FN real kp__d_expd(real a, real s) { return kp__d_exp2(a * ((real)1.44269504f / s)); }\n");
    else kp__sb_printf(s, "KP_FN real kp__d_exps(real a, real s) { return kp__d_exp(a * s); }\n"
                      "KP_FN real kp__d_expd(real a, real s) { return kp__d_exp(a / s); }\n");
    kp__sb_printf(s, "KP_FN real kp__d_pow(real a, real b) { return pow%s(a, b); }\n", sfx);
    kp__sb_printf(s, "KP_FN real kp__d_atan2(real a, real b) { return atan2%s(a, b); }\n", sfx);
    kp__sb_printf(s, "%s%s", kp__device_ops_source, kp__device_monoid_source);
}

void kp__cg_prelude_exact(kp_sbuf *s, kp_gpu_dialect dia) {
    if (dia == KP_GPU_OPENCL) /* exp terms and rounding in float64, float32 kernels too */
        kp__sb_printf(s, "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n"
                         "typedef ulong kp_u64;\ntypedef uint kp_u32;\n"
                         "KP_FN kp_i64 kp__d_f64_bits(double x) { return as_long(x); }\n"
                         "KP_FN double kp__d_f64_of(kp_i64 w) { return as_double(w); }\n"
                         "KP_FN kp_u32 kp__d_f32_bits(float x) { return as_uint(x); }\n");
    else
        kp__sb_printf(s, "typedef unsigned long long kp_u64;\ntypedef unsigned int kp_u32;\n"
                         "KP_FN kp_i64 kp__d_f64_bits(double x) { return __double_as_longlong(x); }\n"
                         "KP_FN double kp__d_f64_of(kp_i64 w) { return __longlong_as_double(w); }\n"
                         "KP_FN kp_u32 kp__d_f32_bits(float x) { return (kp_u32)__float_as_int(x); }\n");
    kp__sb_printf(s, "%s", kp__device_exact_source);
}
