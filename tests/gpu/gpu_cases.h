/*
 * gpu_cases.h — the representative formula list of the GPU tests: every op of
 * ops.def, every reduction, gradients (kp_formula_grad, to second order).
 * Each case is a reduction with "%d" for the axis, over the aliases below, and
 * optionally a chain of gradients with respect to argument positions.
 */
#ifndef KP_TEST_GPU_CASES_H
#define KP_TEST_GPU_CASES_H

#include "kp.h"

typedef struct kpt_gpu_case {
    const char *fmt;  /* reduction text, "%d" = axis */
    int grad[2];      /* gradient positions, -1 = none (grad[1]: second order) */
} kpt_gpu_case;

extern const char *const kpt_gpu_aliases[];
extern const int kpt_gpu_naliases;
extern const kpt_gpu_case kpt_gpu_cases[];
extern const int kpt_gpu_ncases;

/* Builds case c for axis; *label receives a printable description (static
 * buffer). Returns KP_OK and the formula in *out. */
kp_status kpt_gpu_case_formula(kp_context *ctx, int c, int axis, kp_formula **out, const char **label);

/* Fills the values of argument position pos of a case (base_nargs: the
 * number of arguments before the gradient extras, which get small integers). */
struct kpt_rng;
void kpt_gpu_fill(struct kpt_rng *rng, double *a, size_t n, int pos, int base_nargs);

/* Asserts an engine's outputs against the CPU's: values within 1e-5
 * (float32) / 1e-12 (float64) of the largest finite reference value, NaN
 * where the reference has NaN, indices exact. Prints and returns the number
 * of mismatches. */
size_t kpt_gpu_compare(const char *label, kp_dtype dt, const double *got, const double *ref, size_t n,
                       const int64_t *gi, const int64_t *ri, size_t ni);

/* The batched and strided case both engine tests run: a Gaussian kernel
 * product over a (2 x 3) batch, x (N,3) stored transposed and shared by the
 * batches, y broadcast over the first batch dimension, b (2,3,M,2); args
 * describe host arrays; ref holds the CPU engine's output (n values, shape
 * (2,3,N,2) contiguous). */
enum { KPT_BATCHED_N = 45, KPT_BATCHED_M = 133 };
typedef struct kpt_gpu_batched {
    kp_dtype dt;
    void *x, *y, *b;
    size_t nx, ny, nb; /* elements */
    kp_array args[3];
    kp_formula *f;
    kp_plan *plan;
    int64_t out_shape[4];
    size_t n;
    double *ref;
} kpt_gpu_batched;

/* KP_OK, or the failing status (message in ctx); leaves ctx on the CPU engine. */
kp_status kpt_gpu_batched_new(kp_context *ctx, kp_dtype dt, kpt_gpu_batched *bt);
void kpt_gpu_batched_free(kpt_gpu_batched *bt);

#endif
