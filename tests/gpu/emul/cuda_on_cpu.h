/*
 * cuda_on_cpu.h — the CUDA C++ that libkp generates, compiled as host C++ and
 * run on the CPU (the CUDA emulator of the tests: emul_nvrtc.c compiles with
 * this header forced in, mock_cuda.c launches through kp_emul_launch).
 *
 * The execution model it reproduces:
 *   - a grid of blocks, run one block after the other; each thread of a block
 *     is a fiber (ucontext) on one OS thread, so the block's threads
 *     interleave only at __syncthreads(), which is where CUDA lets them meet;
 *   - __shared__ variables are function statics: one copy, shared by the
 *     threads of the block that is running (blocks never overlap);
 *   - threadIdx / blockIdx / blockDim / gridDim are set by the scheduler
 *     before it resumes each fiber.
 * A block barrier is a round of the scheduler: every live fiber runs until its
 * next __syncthreads() or its end, so a thread that reads shared memory after
 * the barrier sees what every thread wrote before it, as on a GPU. Threads
 * that return early leave the barrier, as they do on sm_70 and later; the
 * others must all wait at the same __syncthreads() (else the launch fails:
 * a divergent barrier, undefined on a GPU).
 *
 * What it does not reproduce: device numerics (glibc's libm stands in for
 * CUDA's; no flush-to-zero except in the fast-math exp2 below), warps, and
 * races between blocks (they never run at once).
 */
#ifndef KP_CUDA_ON_CPU_H
#define KP_CUDA_ON_CPU_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <type_traits>
#include <utility>

#ifndef KP_EMUL_SCAN /* emul_nvrtc.c's first pass finds the kernels by their __global__ */
#define __global__
#endif
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static

struct kp_emul_dim3 {
    unsigned x, y, z;
};
static kp_emul_dim3 threadIdx, blockIdx, blockDim, gridDim;

static inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}
static inline int __float_as_int(float f) {
    int i;
    memcpy(&i, &f, sizeof i);
    return i;
}
static inline double __longlong_as_double(long long i) {
    double d;
    memcpy(&d, &i, sizeof d);
    return d;
}
static inline long long __double_as_longlong(double d) {
    long long i;
    memcpy(&i, &d, sizeof i);
    return i;
}
/* Fast-math intrinsics: the SFU's approximations are replaced by libm, with
 * flush-to-zero of subnormal inputs and results where the PTX says .ftz. */
static inline float kp_emul_ftz(float a) { return fpclassify(a) == FP_SUBNORMAL ? copysignf(0.0f, a) : a; }
static inline float kp_emul_ex2_approx_ftz(float a) { return kp_emul_ftz(exp2f(kp_emul_ftz(a))); }
#define __logf(a) logf(a) /* macros: glibc declares these names itself */
#define __expf(a) expf(a)
static inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
static inline double rsqrt(double a) { return 1.0 / sqrt(a); }

/* ------------------------------------------------------------ the scheduler */

enum { KP_EMUL_STACK = 256 * 1024, KP_EMUL_MAX_THREADS = 1024 };

struct kp_emul_fiber {
    ucontext_t ctx;
    int done;
    void *site; /* the __syncthreads() it waits at */
    unsigned tid[3];
    char *stack;
};
static ucontext_t kp_emul_main;
static kp_emul_fiber *kp_emul_fibers;
static unsigned kp_emul_cur;
static void (*kp_emul_body)(void **);
static void **kp_emul_args;

/* The memory clobbers keep the compiler from carrying shared (static) values in
 * registers across the switch. The call site is recorded: CUDA requires every
 * thread of a block to reach the same __syncthreads() (one in code that some
 * threads skip is undefined), which the scheduler checks at each round. Not
 * inlined, so that the return address names the site. */
static __attribute__((noinline)) void __syncthreads(void) {
    kp_emul_fibers[kp_emul_cur].site = __builtin_return_address(0);
    __asm__ __volatile__("" ::: "memory");
    swapcontext(&kp_emul_fibers[kp_emul_cur].ctx, &kp_emul_main);
    __asm__ __volatile__("" ::: "memory");
}

static void kp_emul_thread(void) {
    kp_emul_body(kp_emul_args);
    kp_emul_fibers[kp_emul_cur].done = 1; /* then back to kp_emul_main (uc_link) */
}

/* Calls f with its arguments read from params (cuLaunchKernel's array of
 * pointers to each argument), whatever f's parameter list. */
template <typename... A, size_t... I>
static void kp_emul_apply(void (*f)(A...), void **params, std::index_sequence<I...>) {
    f(*static_cast<typename std::remove_cv<typename std::remove_reference<A>::type>::type *>(params[I])...);
}
template <typename... A> static void kp_emul_call(void (*f)(A...), void **params) {
    kp_emul_apply(f, params, std::index_sequence_for<A...>{});
}

struct kp_emul_kernel {
    const char *name;
    void (*entry)(void **params);
};

/* Runs the grid; 0 on success, else -1 with a message in err. */
static int kp_emul_run(void (*entry)(void **), const unsigned grid[3], const unsigned block[3], void **params,
                       char *err, size_t errsize) {
    const unsigned long nthreads = (unsigned long)block[0] * block[1] * block[2];
    if (!nthreads || nthreads > KP_EMUL_MAX_THREADS || !grid[0] || !grid[1] || !grid[2]) {
        snprintf(err, errsize, "invalid launch: grid %u,%u,%u block %u,%u,%u", grid[0], grid[1], grid[2], block[0],
                 block[1], block[2]);
        return -1;
    }
    kp_emul_fiber *f = (kp_emul_fiber *)calloc(nthreads, sizeof *f);
    int ok = f != NULL;
    for (unsigned long t = 0; ok && t < nthreads; t++) ok = (f[t].stack = (char *)malloc(KP_EMUL_STACK)) != NULL;
    if (!ok) {
        snprintf(err, errsize, "out of host memory for %lu fiber stacks", nthreads);
        for (unsigned long t = 0; f && t < nthreads; t++) free(f[t].stack);
        free(f);
        return -1;
    }
    kp_emul_fibers = f;
    kp_emul_body = entry;
    kp_emul_args = params;
    gridDim = {grid[0], grid[1], grid[2]};
    blockDim = {block[0], block[1], block[2]};
    for (unsigned bz = 0; bz < grid[2] && ok; bz++)
        for (unsigned by = 0; by < grid[1] && ok; by++)
            for (unsigned bx = 0; bx < grid[0] && ok; bx++) {
                blockIdx = {bx, by, bz};
                for (unsigned long t = 0; t < nthreads; t++) {
                    f[t].done = 0;
                    f[t].tid[0] = (unsigned)(t % block[0]);
                    f[t].tid[1] = (unsigned)(t / block[0] % block[1]);
                    f[t].tid[2] = (unsigned)(t / block[0] / block[1]);
                    getcontext(&f[t].ctx);
                    f[t].ctx.uc_stack.ss_sp = f[t].stack;
                    f[t].ctx.uc_stack.ss_size = KP_EMUL_STACK;
                    f[t].ctx.uc_link = &kp_emul_main;
                    makecontext(&f[t].ctx, kp_emul_thread, 0);
                }
                /* One round per barrier: each live thread runs to its next __syncthreads() or its end;
                   then every thread still live must wait at the same one (threads that ended leave it). */
                for (unsigned long live = nthreads; live && ok;) {
                    void *site = NULL;
                    for (unsigned long t = 0; t < nthreads; t++) {
                        if (f[t].done) continue;
                        kp_emul_cur = (unsigned)t;
                        threadIdx = {f[t].tid[0], f[t].tid[1], f[t].tid[2]};
                        swapcontext(&kp_emul_main, &f[t].ctx);
                        if (f[t].done) live--;
                        else if (!site) site = f[t].site;
                        else if (f[t].site != site && ok) {
                            snprintf(err, errsize, "block %u,%u,%u: thread %lu waits at another __syncthreads() "
                                     "than the block's first threads (divergent barrier)", bx, by, bz, t);
                            ok = 0;
                        }
                    }
                }
            }
    for (unsigned long t = 0; t < nthreads; t++) free(f[t].stack);
    free(f);
    kp_emul_fibers = NULL;
    return ok ? 0 : -1;
}

#endif
