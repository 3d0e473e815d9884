/*
 * fpenv.h — float32 kernels run with flush-to-zero (FTZ) set.
 *
 * A float32 value below FLT_MIN (1.2e-38) in magnitude is subnormal, and x86
 * cores take a microcode assist, of order 100 cycles, for every operation
 * that produces one: products of small kernel values and small weights (the
 * gradients of transport and of wide Gaussians) ran 3-4 times slower for it.
 * With FTZ such a result is +-0 instead, as the float32 exp already returns 0
 * below -87.3. Only results that would be subnormal change (an absolute change
 * of at most FLT_MIN per operation); normal results are bit for bit the same.
 * Denormal inputs (DAZ) are left alone: a subnormal argument keeps its value
 * (Log, Sqrt, Rsqrt of one stay finite and exact). float64 never sets it.
 * The caller's FTZ bit is restored on the way out (the calling thread is one
 * of the workers).
 */
#ifndef KP_CPU_FPENV_H
#define KP_CPU_FPENV_H

#if defined(__SSE__) || defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
typedef unsigned int kp_fpenv;
static inline kp_fpenv kp__ftz_enter(void) {
    kp_fpenv old = _mm_getcsr();
    _mm_setcsr(old | 0x8000u); /* MXCSR.FTZ */
    return old;
}
/* Puts back the caller's FTZ bit; exception flags raised meanwhile stay raised. */
static inline void kp__ftz_leave(kp_fpenv old) { _mm_setcsr((_mm_getcsr() & ~0x8000u) | (old & 0x8000u)); }
#else
typedef int kp_fpenv;
static inline kp_fpenv kp__ftz_enter(void) { return 0; }
static inline void kp__ftz_leave(kp_fpenv old) { (void)old; }
#endif

#endif
