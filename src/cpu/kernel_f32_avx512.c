/* One CPU kernel build: f32 on avx512 (see kernel_impl.h). */
#define KP_REAL_F32 1
#define KP_ISA_AVX512 1
#define KP_KERNELS_NAME kp__cpu_f32_avx512
#include "cpu/kernel_impl.h"
