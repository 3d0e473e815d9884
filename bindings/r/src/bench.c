/*
 * bench.c: the C call that the R binding's overhead is measured against
 * (bench/r/bench_r.R, through the unexported rkp:::.c_exec_time).
 *
 * It holds the arguments as a C user of kp.h would: buffers in the plan's
 * dtype, made once, either contiguous row-major (a C program's usual layout)
 * or column-major as R holds them (the strides the binding passes), then
 * times kp_plan_exec alone.
 */
/* clock_gettime and CLOCK_MONOTONIC are POSIX, not C11. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rkp.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A copy of the n x d column-major R matrix x, row-major unless col_major. */
static void *copy_of(SEXP x, kp_dtype dtype, int64_t n, int64_t d, int col_major) {
    size_t esz = dtype == KP_FLOAT32 ? sizeof(float) : sizeof(double);
    void *buf = malloc((size_t)(n * d) * esz + 1);
    if (!buf) return NULL;
    const double *src = REAL(x);
    for (int64_t p = 0; p < n; p++)
        for (int64_t c = 0; c < d; c++) {
            double v = src[p + c * n];
            int64_t at = col_major ? p + c * n : p * d + c;
            if (dtype == KP_FLOAT32) ((float *)buf)[at] = (float)v;
            else ((double *)buf)[at] = v;
        }
    return buf;
}

/* rkp_c_exec_time(op, args, dtype, reps, nthreads, col_major): seconds of
 * each of reps kp_plan_exec calls on C-held copies of args (a reduction over j
 * with values only), row-major or column-major. */
SEXP rkp_c_exec_time(SEXP ptr, SEXP args, SEXP dtype_, SEXP reps_, SEXP nthreads, SEXP col_major_) {
    kp_dtype dtype = rkp__dtype(dtype_);
    int col_major = Rf_asLogical(col_major_) == 1;
    int reps = Rf_asInteger(reps_);
    kp_plan *plan;
    kp_status st = rkp__plan(ptr, dtype, &plan);
    if (st != KP_OK) return rkp__failure(st);
    SEXP info = PROTECT(rkp_info(ptr));
    int nargs = Rf_asInteger(VECTOR_ELT(info, 2)), out_dim = Rf_asInteger(VECTOR_ELT(info, 5));
    const int *cat = INTEGER(VECTOR_ELT(info, 3));
    if (TYPEOF(args) != VECSXP || XLENGTH(args) != nargs || nargs > 16 || Rf_asInteger(VECTOR_ELT(info, 1)) != 1)
        Rf_error("rkp: .c_exec_time takes the list of arguments of an axis-1 reduction");
    for (int k = 0; k < nargs; k++)
        if (TYPEOF(VECTOR_ELT(args, k)) != REALSXP) Rf_error("rkp: .c_exec_time takes double arguments");
    kp_array a[16];
    void *bufs[17] = {0};
    for (int k = 0; k < nargs; k++) {
        SEXP x = VECTOR_ELT(args, k);
        int64_t n = Rf_isMatrix(x) ? Rf_nrows(x) : XLENGTH(x), d = Rf_isMatrix(x) ? Rf_ncols(x) : 1;
        if (cat[k] == KP_VAR_PARAM) { d = XLENGTH(x); n = 1; }
        bufs[k] = copy_of(x, dtype, n, d, col_major && cat[k] != KP_VAR_PARAM);
        a[k] = cat[k] == KP_VAR_PARAM ? kp_array_1d(bufs[k], dtype, d) : kp_array_2d(bufs[k], dtype, n, d);
        if (col_major && cat[k] != KP_VAR_PARAM) {
            a[k].strides[0] = 1;
            a[k].strides[1] = n;
        }
    }
    kp_exec_options opt;
    kp_exec_options_init(&opt);
    opt.num_threads = Rf_asInteger(nthreads);
    int ndim = 0;
    int64_t shape[KP_MAX_DIMS] = {0};
    st = kp_plan_output_shape(plan, a, (size_t)nargs, &opt, &ndim, shape, NULL);
    int64_t nx = st == KP_OK ? shape[ndim - 2] : 0;
    size_t esz = dtype == KP_FLOAT32 ? sizeof(float) : sizeof(double);
    bufs[nargs] = malloc((size_t)(nx * out_dim) * esz + 1);
    SEXP times = PROTECT(Rf_allocVector(REALSXP, reps));
    kp_array out = kp_array_2d(bufs[nargs], dtype, nx, out_dim);
    int ok = 1;
    for (int k = 0; k <= nargs; k++) ok &= bufs[k] != NULL;
    if (st == KP_OK && !ok) st = KP_ERR_OOM;
    for (int r = 0; r < reps && st == KP_OK; r++) {
        double t0 = now();
        st = kp_plan_exec(plan, a, (size_t)nargs, &out, NULL, &opt);
        REAL(times)[r] = now() - t0;
    }
    for (int k = 0; k <= nargs; k++) free(bufs[k]);
    UNPROTECT(2);
    if (st != KP_OK) return rkp__failure(st);
    return times;
}
