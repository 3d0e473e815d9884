/* One CPU kernel build: f64 on generic (see kernel_impl.h). */
#define KP_REAL_F32 0
#define KP_ISA_GENERIC 1
#define KP_KERNELS_NAME kp__cpu_f64_generic
#include "cpu/kernel_impl.h"
