/* One CPU kernel build: f64 on avx2 (see kernel_impl.h). */
#define KP_REAL_F32 0
#define KP_ISA_AVX2 1
#define KP_KERNELS_NAME kp__cpu_f64_avx2
#include "cpu/kernel_impl.h"
