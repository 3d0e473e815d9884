/* One CPU kernel build: f32 on generic (see kernel_impl.h). */
#define KP_REAL_F32 1
#define KP_ISA_GENERIC 1
#define KP_KERNELS_NAME kp__cpu_f32_generic
#include "cpu/kernel_impl.h"
