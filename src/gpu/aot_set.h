/*
 * aot_set.h — the standard formulas whose CUDA kernels are compiled ahead of
 * time (aot_gen.c at build time; tests/gpu/test_gpu_aot.c checks them). Not
 * part of libkp itself: only the generator tool and the tests compile it.
 *
 * Each entry is a forward reduction written exactly as its users write it:
 *   - pykp.kernel_product(x, y, b, kernel, sigma, mode) for kernel in gaussian,
 *     laplacian, cauchy, inverse_multiquadric, energy and mode "sum" / "lse"
 *     (bindings/python/pykp/kernels.py: aliases xi0 = Vi(D), yj1 = Vj(D),
 *     pm0 = Pm(1) (sigma, absent for energy), bj = Vj(E), in that order);
 *     energy has no "lse" (the log of -|x-y| is NaN);
 *   - the Gaussian of the kp.h worked example, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)"
 *     with x = Vi(D), y = Vj(D), s = Pm(1), b = Vj(E) (KeOps-style Genred);
 * for (D, E) in (1,1), (2,1), (3,1), (2,2), (3,3). Each forward also gets its
 * first gradients with respect to x, y and b (kp_formula_grad: x reduces over j
 * like the forward, y and b over i, axis 0), in float32 and float64. Not the
 * gradient with respect to sigma: pykp needs it only when sigma is a tensor
 * that requires a gradient (bandwidth learning), rare enough to leave to NVRTC
 * (each kernel costs about 0.5 s of build time and 20 KB of library).
 */
#ifndef KP_GPU_AOT_SET_H
#define KP_GPU_AOT_SET_H

#include <stddef.h>

#define KP_AOT_MAX_ALIASES 4

typedef struct kp_aot_formula {
    char label[64]; /* e.g. "pykp gaussian sum D=3 E=1" */
    char text[256];
    char alias_text[KP_AOT_MAX_ALIASES][32];
    const char *aliases[KP_AOT_MAX_ALIASES]; /* point into alias_text */
    size_t n_aliases;
    int nargs;                       /* arguments of the forward */
    int grads[KP_AOT_MAX_ALIASES];   /* the argument positions whose gradient is built in, increasing */
    int ngrads;
    int D, E;
} kp_aot_formula;

/* Number of forward formulas of the set. */
size_t kp__aot_set_count(void);
/* Fills *out with forward formula i < kp__aot_set_count(). */
void kp__aot_set_get(size_t i, kp_aot_formula *out);

#endif
