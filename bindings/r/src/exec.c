/*
 * exec.c: runs an operator on R data.
 *
 * R matrices are column-major doubles. With layout "col" (rkeops' inner_dim =
 * "col", the default) a row is a point: element (point p, component c) of an
 * n x d matrix sits at p + c*n, which libkp reads in place through the strides
 * (1, n): float64 runs copy nothing. With layout "row" a column is a point
 * (a d x n matrix, strides (d, 1)), again without a transposing copy. float32
 * runs convert each argument once into a buffer of the same layout.
 */
#include <stdint.h>
#include <string.h>

#include "rkp.h"

typedef struct call_shape {
    int layout; /* 0: rows are points, 1: columns are points */
} call_shape;

/* Fills the descriptor of argument k (category cat) from the R vector x. */
static void describe_arg(SEXP x, int k, int cat, kp_dtype dtype, call_shape *cs, kp_array *a) {
    if (TYPEOF(x) != REALSXP) Rf_error("rkp: argument %d must be a double vector or matrix", k + 1);
    R_xlen_t len = XLENGTH(x);
    memset(a, 0, sizeof *a);
    a->dtype = dtype;
    a->device = KP_DEVICE_CPU;
    if (dtype == KP_FLOAT64) {
        a->data = REAL(x);
    } else {
        float *buf = (float *)R_alloc((size_t)len + 1, sizeof(float));
        const double *src = REAL(x);
        for (R_xlen_t t = 0; t < len; t++) buf[t] = (float)src[t];
        a->data = buf;
    }
    SEXP dims = Rf_getAttrib(x, R_DimSymbol);
    if (cat == KP_VAR_PARAM) {
        /* A vector as is; a matrix A row by row, as KeOps stores matrices, so
         * that MatVecMult(A, v) is A %*% v (a small copy: parameters are short). */
        a->ndim = 1;
        a->shape[0] = len;
        a->strides[0] = 1;
        if (!Rf_isNull(dims) && XLENGTH(dims) == 2 && INTEGER(dims)[0] > 1 && INTEGER(dims)[1] > 1) {
            int nr = INTEGER(dims)[0], nc = INTEGER(dims)[1];
            const double *src = REAL(x);
            void *buf = R_alloc((size_t)len + 1, dtype == KP_FLOAT32 ? (int)sizeof(float) : (int)sizeof(double));
            for (int r = 0; r < nr; r++)
                for (int c = 0; c < nc; c++) {
                    double v = src[r + (R_xlen_t)c * nr];
                    if (dtype == KP_FLOAT32) ((float *)buf)[r * nc + c] = (float)v;
                    else ((double *)buf)[r * nc + c] = v;
                }
            a->data = buf;
        }
        return;
    }
    int64_t nr = len, nc = 1;
    if (!Rf_isNull(dims)) {
        if (XLENGTH(dims) != 2) Rf_error("rkp: argument %d must be a vector or a matrix, not a %d-D array", k + 1, (int)XLENGTH(dims));
        nr = INTEGER(dims)[0];
        nc = INTEGER(dims)[1];
    }
    int64_t n = nr, d = nc, sp = 1, sc = nr; /* rows are points */
    if (cs->layout == 1 && !Rf_isNull(dims)) { n = nc; d = nr; sp = nr; sc = 1; }
    a->ndim = 2;
    a->shape[0] = n;
    a->shape[1] = d;
    a->strides[0] = sp;
    a->strides[1] = sc;
}

/* An n x d R matrix (d x n with layout 1) filled from a (n, d) libkp result. */
static SEXP result_matrix(const void *src, kp_dtype dtype, int64_t n, int64_t d, int layout) {
    SEXP m = PROTECT(layout ? Rf_allocMatrix(REALSXP, (int)d, (int)n) : Rf_allocMatrix(REALSXP, (int)n, (int)d));
    double *dst = REAL(m);
    for (int64_t p = 0; p < n; p++)
        for (int64_t c = 0; c < d; c++) {
            int64_t at = layout ? c + p * d : p + c * n;
            int64_t from = p * d + c;
            double v = dtype == KP_FLOAT32 ? (double)((const float *)src)[from]
                     : dtype == KP_FLOAT64 ? ((const double *)src)[from]
                                           : (double)((const int64_t *)src)[from];
            dst[at] = v;
        }
    UNPROTECT(1);
    return m;
}

static void *scratch(int64_t n, size_t esz) {
    if (n < 0 || (uint64_t)n > (uint64_t)(SIZE_MAX / esz / 2)) Rf_error("rkp: output too large");
    return R_alloc((size_t)n + 1, (int)esz);
}

/*
 * rkp_exec(op, args, dtype, layout, nthreads, sizes, scheme): runs the
 * reduction. dtype 0 = float32, 1 = float64; layout 0 = rows are points,
 * 1 = columns are points; sizes = c(nx, ny), -1 to take them from the
 * arguments (1 when no argument has that index); scheme = kp_sum_scheme or -1.
 * Returns list(values, index) (NULL where the reduction has no such output;
 * indices are 0-based doubles), or an rkp_failure.
 */
SEXP rkp_exec(SEXP ptr, SEXP args, SEXP dtype_, SEXP layout_, SEXP nthreads, SEXP sizes, SEXP scheme) {
    kp_dtype dtype = rkp__dtype(dtype_);
    call_shape cs = {Rf_asInteger(layout_) ? 1 : 0};
    kp_plan *plan = NULL;
    kp_status st = rkp__plan(ptr, dtype, &plan);
    if (st != KP_OK) return rkp__failure(st);
    SEXP info = PROTECT(rkp_info(ptr));
    int nargs = Rf_asInteger(VECTOR_ELT(info, 2));
    const int *cat = INTEGER(VECTOR_ELT(info, 3));
    int out_dim = Rf_asInteger(VECTOR_ELT(info, 5)), idx_dim = Rf_asInteger(VECTOR_ELT(info, 6));
    if (TYPEOF(args) != VECSXP) Rf_error("rkp: the input must be a list");
    if (!Rf_isNull(sizes) && (TYPEOF(sizes) != REALSXP || XLENGTH(sizes) != 2))
        Rf_error("rkp: sizes must be two doubles (nx, ny)");
    if (XLENGTH(args) != nargs)
        Rf_error("rkp: the formula takes %d arguments, got %d", nargs, (int)XLENGTH(args));

    kp_array *a = (kp_array *)R_alloc((size_t)nargs + 1, sizeof *a);
    for (int k = 0; k < nargs; k++) {
        if (cat[k] == NA_INTEGER) memset(&a[k], 0, sizeof a[k]);
        else describe_arg(VECTOR_ELT(args, k), k, cat[k], dtype, &cs, &a[k]);
    }
    /* Point counts: R's sizes where given (LazyTensor reductions), else
     * libkp infers them from the arguments; an index no argument has counts
     * one point, as in KeOps (Sum_Reduction(x, 1) of a Vi x alone). */
    kp_exec_options opt;
    kp_exec_options_init(&opt);
    opt.num_threads = Rf_asInteger(nthreads);
    int64_t *n_of[2] = {&opt.nx, &opt.ny};
    for (int s = 0; s < 2; s++) {
        double v = Rf_isNull(sizes) ? -1 : REAL(sizes)[s];
        int has = 0;
        for (int k = 0; k < nargs; k++) has |= cat[k] == (s ? KP_VAR_J : KP_VAR_I);
        *n_of[s] = v >= 0 ? (int64_t)v : has ? -1 : 1;
    }
    /* The outputs' shape as libkp sets it (rows: 1 when the formula sums them). */
    int ndim = 0;
    int64_t shape[KP_MAX_DIMS];
    if ((st = kp_plan_output_shape(plan, a, (size_t)nargs, &opt, &ndim, shape, NULL)) != KP_OK) {
        UNPROTECT(1);
        return rkp__failure(st);
    }
    int64_t rows = shape[ndim - 2];
    if (rows > INT32_MAX) Rf_error("rkp: %lld output rows do not fit an R matrix", (long long)rows);

    /* float64 values go straight into the R matrix, through its strides. */
    kp_array out, out_idx;
    SEXP direct = R_NilValue;
    void *vals = NULL;
    if (out_dim && dtype == KP_FLOAT64) {
        direct = cs.layout ? Rf_allocMatrix(REALSXP, out_dim, (int)rows) : Rf_allocMatrix(REALSXP, (int)rows, out_dim);
        vals = REAL(direct);
    } else if (out_dim) {
        vals = scratch(rows * out_dim, sizeof(float));
    }
    PROTECT(direct);
    int64_t *idx = idx_dim ? (int64_t *)scratch(rows * idx_dim, sizeof(int64_t)) : NULL;
    if (out_dim) {
        out = kp_array_2d(vals, dtype, rows, out_dim);
        if (dtype == KP_FLOAT64 && !cs.layout) {
            out.strides[0] = 1;
            out.strides[1] = rows;
        }
    }
    if (idx_dim) out_idx = kp_array_2d(idx, KP_INT64, rows, idx_dim);
    int sch = Rf_asInteger(scheme);
    if (sch >= 0 && (st = kp_context_set_sum_scheme(rkp__context(), (kp_sum_scheme)sch)) != KP_OK) {
        UNPROTECT(2);
        return rkp__failure(st);
    }
    st = kp_plan_exec(plan, a, (size_t)nargs, out_dim ? &out : NULL, idx_dim ? &out_idx : NULL, &opt);
    if (sch >= 0) kp_context_set_sum_scheme(rkp__context(), KP_SUM_BLOCK);
    if (st != KP_OK) {
        UNPROTECT(2);
        return rkp__failure(st);
    }
    SEXP res = PROTECT(Rf_allocVector(VECSXP, 2));
    if (out_dim)
        SET_VECTOR_ELT(res, 0, dtype == KP_FLOAT64 ? direct : result_matrix(vals, dtype, rows, out_dim, cs.layout));
    if (idx_dim) SET_VECTOR_ELT(res, 1, result_matrix(idx, KP_INT64, rows, idx_dim, cs.layout));
    UNPROTECT(3);
    return res;
}
