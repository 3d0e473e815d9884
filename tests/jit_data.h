/*
 * jit_data.h — the data set of the compiled-kernel suites (test_jit.c,
 * test_jit_cache.c): x (N points), y and b (M points) in 3D and 2D, and a
 * parameter g, named by `aliases`. M = 1037 spans two tiles and a tail.
 */
#ifndef KP_TESTS_JIT_DATA_H
#define KP_TESTS_JIT_DATA_H

#include "kp_test_util.h"

enum { N = 37, M = 1037 };

static const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(2)"};

typedef struct data {
    double x[N * 3], y[M * 3], g, b[M * 2];
} data;

static inline void fill(data *d) {
    kpt_rng rng;
    kpt_rng_seed(&rng, 14);
    kpt_fill_uniform(&rng, d->x, N * 3, 0, 1);
    kpt_fill_uniform(&rng, d->y, M * 3, 0, 1);
    kpt_fill_uniform(&rng, d->b, M * 2, -1, 1);
    d->g = 4.0;
}

#endif
