/*
 * kp_test_util.h — shared helpers of the libkp C test suites.
 *
 * - a deterministic RNG (splitmix64) so every run sees the same data;
 * - dtype conversion of double reference data to the arrays libkp reads;
 * - closeness checks that print the first mismatches;
 * - kpt_run(): runs one reduction from double data through either kp_reduce
 *   or kp_formula_parse + kp_plan_new + kp_plan_exec, and returns the outputs
 *   converted back to double together with the status.
 *
 * Nothing here computes a reference: references are written in each test.
 */
#ifndef KP_TEST_UTIL_H
#define KP_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "kp.h"

/* ------------------------------------------------------------------ RNG */

typedef struct kpt_rng {
    uint64_t state;
} kpt_rng;

void kpt_rng_seed(kpt_rng *r, uint64_t seed);
uint64_t kpt_rng_u64(kpt_rng *r);
/* Uniform in [lo, hi). */
double kpt_rng_uniform(kpt_rng *r, double lo, double hi);
/* Uniform integer in [lo, hi] (inclusive). */
int64_t kpt_rng_int(kpt_rng *r, int64_t lo, int64_t hi);
void kpt_fill_uniform(kpt_rng *r, double *a, size_t n, double lo, double hi);
/* Integer-valued doubles in [lo, hi]: arithmetic on them is exact in float32. */
void kpt_fill_int(kpt_rng *r, double *a, size_t n, int lo, int hi);
/* malloc'd array of n (at least 1 allocated) uniform values. */
double *kpt_random_array(kpt_rng *r, size_t n, double lo, double hi);

/* -------------------------------------------------------------- dtypes */

size_t kpt_dtype_size(kp_dtype dtype);
/* Rounds values in place to what the dtype can hold (float32 -> nearest float). */
void kpt_round_to_dtype(double *a, size_t n, kp_dtype dtype);
/* malloc'd buffer of n elements of dtype (at least one element allocated). */
void *kpt_alloc_dtype(size_t n, kp_dtype dtype);
/* malloc'd copy of a in dtype (at least one element allocated). */
void *kpt_to_dtype(const double *a, size_t n, kp_dtype dtype);
void kpt_from_dtype(const void *src, kp_dtype dtype, size_t n, double *dst);
const char *kpt_dtype_name(kp_dtype dtype);

/* ------------------------------------------------------------- checks */

/*
 * Element k passes when got and ref are both NaN, or equal (covers +-Inf), or
 * |got - ref| <= rtol * s_k + atol with s_k = scale[k] (scale may be NULL: then
 * s_k = |ref[k]|). Prints up to 5 mismatches with label; returns how many.
 */
size_t kpt_check(const char *label, const double *got, const double *ref, const double *scale,
                 size_t n, double rtol, double atol);
/* Exact comparison of int64 arrays; prints up to 5 mismatches; returns how many. */
size_t kpt_check_index(const char *label, const int64_t *got, const int64_t *ref, size_t n);
/* max_k |got-ref| / max(|ref|, tiny): a plain relative error. */
double kpt_max_rel_err(const double *got, const double *ref, size_t n);

/* Non-zero when KP_TEST_SKIP_LARGE=1 is set (sanitizer runs): skip big cases. */
int kpt_skip_large(void);

/* kp_context_new for the suites that run on every engine (ops, reductions,
 * grad, joint): with KP_TEST_ENGINE=opencl or cuda in the environment the
 * context runs that engine, so the same assertions (dense float64 references,
 * finite differences, edge sizes, NaN) check the generated GPU kernels. When
 * that engine cannot run here, prints "SKIPPED: ..." and exits 77 (ctest's
 * skip code); an unknown value is an error (exit 1). */
kp_status kpt_context_new(kp_context **out);

/* -------------------------------------------------------------- runner */

/* A row-major (rows, dim) double array; rows < 0 means a 1-D array of length
 * dim (a parameter). */
typedef struct kpt_arg {
    const double *data;
    int64_t rows;
    int64_t dim;
} kpt_arg;

typedef enum kpt_path {
    KPT_VIA_REDUCE = 0, /* kp_reduce one-shot */
    KPT_VIA_PLAN = 1    /* kp_formula_parse + kp_plan_new + kp_plan_exec */
} kpt_path;

/*
 * Converts args to dtype, runs the reduction `text` and converts the outputs
 * back to double. out (out_rows x out_dim) and out_index (out_rows x
 * out_index_dim) may be NULL: the corresponding kp_array is then not passed.
 * opt is only used on the KPT_VIA_PLAN path. Output buffers libkp sees are
 * pre-filled with a sentinel (1234.5 / -777) so unwritten entries show.
 * Returns the status of the first failing call (or KP_OK).
 */
kp_status kpt_run(kp_context *ctx, kpt_path path, const char *text, const char *const *aliases,
                  size_t n_aliases, kp_dtype dtype, const kpt_arg *args, size_t n_args,
                  int64_t out_rows, int64_t out_dim, double *out, int64_t out_index_dim,
                  int64_t *out_index, const kp_exec_options *opt);

/* Asserts (cmocka) that st == KP_OK, printing the context message otherwise.
 * Expands at the use site, where cmocka.h is included. */
#define KPT_ASSERT_OK(ctx, st)                                                           \
    do {                                                                                 \
        kp_status kpt__st = (st);                                                        \
        if (kpt__st != KP_OK)                                                            \
            print_error("libkp status %d (%s): %s\n", (int)kpt__st,                      \
                        kp_status_string(kpt__st), kp_context_message(ctx));             \
        assert_int_equal(kpt__st, KP_OK);                                                \
    } while (0)

#endif /* KP_TEST_UTIL_H */
