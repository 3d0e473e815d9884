/*
 * partial_fixture.h — what the partial-state suites share (test_partial.c on
 * the CPU engine, gpu/test_gpu_partial.c on the GPU engines): the reductions,
 * the formula texts, the point clouds and the plans.
 *
 * The includer defines NR (rows), NRED (reduced points), OUTW (doubles of the
 * widest output) and PAIR_TERM, F's second component beside |x - y|^2 (a
 * function of x.y chosen for its suite's ties), before including this file.
 */
#ifndef KP_TESTS_PARTIAL_FIXTURE_H
#define KP_TESTS_PARTIAL_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kp_test_util.h"

/* Every reduction family: @ is F, # the axis. */
#define PARTIAL_REDUCTIONS                                                                                      \
    "Sum_Reduction(@,#)", "LogSumExp_Reduction(@,#)", "SumSoftMaxWeight_Reduction(-SqDist(x,y),#,Concat(b,y))", \
        "Min_Reduction(@,#)", "Max_Reduction(@,#)", "ArgMin_Reduction(@,#)", "ArgMax_Reduction(@,#)",           \
        "Min_ArgMin_Reduction(@,#)", "Max_ArgMax_Reduction(@,#)", "KMin_Reduction(@,3,#)",                       \
        "ArgKMin_Reduction(@,3,#)", "KMin_ArgKMin_Reduction(@,3,#)"

/* red with F = Concat(SqDist(x,y), PAIR_TERM) and the axis written in. */
static inline void build_text(const char *red, int axis, char *buf, size_t size) {
    char tmp[256];
    size_t n = 0;
    for (const char *p = red; *p && n + 60 < sizeof tmp; p++) {
        if (*p == '@') n += (size_t)snprintf(tmp + n, sizeof tmp - n, "Concat(SqDist(x,y),%s)", PAIR_TERM);
        else if (*p == '#') tmp[n++] = (char)('0' + axis);
        else tmp[n++] = *p;
    }
    tmp[n] = 0;
    snprintf(buf, size, "%s", tmp);
}

typedef struct data {
    void *x, *y, *b; /* x: the rows' cloud (NR x 2); y (NRED x 2), b (NRED x 1): the reduced side */
    kp_dtype dt;
} data;

/* The arguments of rows [r0, NR) with the reduced side restricted to points [j0, j1). */
static inline void args_of(const data *d, int64_t r0, int64_t j0, int64_t j1, kp_array a[3]) {
    size_t es = kpt_dtype_size(d->dt);
    a[0] = kp_array_2d((char *)d->x + (size_t)r0 * 2 * es, d->dt, NR - r0, 2);
    a[1] = kp_array_2d((char *)d->y + (size_t)j0 * 2 * es, d->dt, j1 - j0, 2);
    a[2] = kp_array_2d((char *)d->b + (size_t)j0 * es, d->dt, j1 - j0, 1);
}

typedef struct result {
    double v[OUTW];
    int64_t ix[OUTW];
} result;

/* The plan of text with x the rows' cloud on either axis. */
static inline kp_plan *plan_of(kp_context *ctx, const char *text, int axis, kp_dtype dt) {
    const char *al1[] = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"};
    const char *al0[] = {"x = Vj(2)", "y = Vi(2)", "b = Vi(1)"};
    kp_formula *f;
    KPT_ASSERT_OK(ctx, kp_formula_parse(ctx, text, axis == 1 ? al1 : al0, 3, &f));
    kp_plan *p;
    KPT_ASSERT_OK(ctx, kp_plan_new(ctx, f, dt, &p));
    kp_formula_free(f);
    return p;
}

/* x, y in [-1, 1]^2, b in [0, 1], from seed. */
static inline data make_data(kp_dtype dt, uint64_t seed) {
    kpt_rng r;
    kpt_rng_seed(&r, seed);
    double *x = kpt_random_array(&r, NR * 2, -1, 1), *y = kpt_random_array(&r, NRED * 2, -1, 1);
    double *b = kpt_random_array(&r, NRED, 0, 1);
    data d = {kpt_to_dtype(x, NR * 2, dt), kpt_to_dtype(y, NRED * 2, dt), kpt_to_dtype(b, NRED, dt), dt};
    free(x);
    free(y);
    free(b);
    return d;
}

static inline void free_data(data *d) {
    free(d->x);
    free(d->y);
    free(d->b);
}

#endif
