/*
 * rkp.c: the .Call glue between R and libkp (include/kp.h only).
 *
 * An operator is one parsed kp_formula (an R external pointer) with its plans
 * made lazily per dtype. Every formula lives in one package-wide kp_context:
 * R is single-threaded, and derived formulas (gradients, the indexed forward)
 * must come from the context of the formula they derive from.
 *
 * Errors from libkp are not raised here: the call returns an object of class
 * "rkp_failure" (status, status name, message) and the R side turns it into a
 * classed R condition (rkp_error_shape, ...). Temporaries are R_alloc'ed so an
 * R error raised while converting arguments leaks nothing.
 */
#include <R.h>
#include <Rinternals.h>
#include <stdint.h>
#include <string.h>

#include <kp.h>

#include "rkp.h"

typedef struct rkp_op {
    kp_formula *f;
    kp_plan *plan[2]; /* indexed by kp_dtype: KP_FLOAT32, KP_FLOAT64 */
} rkp_op;

static kp_context *g_ctx;

static kp_context *context(void) {
    if (!g_ctx && kp_context_new(&g_ctx) != KP_OK) Rf_error("rkp: cannot create a libkp context (out of memory)");
    return g_ctx;
}

/* The failure object: list(status, name, message) of class "rkp_failure". */
static SEXP failure(kp_status st) {
    const char *msg = kp_context_message(g_ctx);
    if (!msg || !*msg) msg = kp_status_string(st);
    SEXP res = PROTECT(Rf_allocVector(VECSXP, 3));
    SET_VECTOR_ELT(res, 0, Rf_ScalarInteger((int)st));
    const char *name = kp_status_name(st);
    SET_VECTOR_ELT(res, 1, Rf_mkString(name ? name : "KP_ERR_UNKNOWN"));
    SET_VECTOR_ELT(res, 2, Rf_mkString(msg));
    SEXP names = PROTECT(Rf_allocVector(STRSXP, 3));
    SET_STRING_ELT(names, 0, Rf_mkChar("status"));
    SET_STRING_ELT(names, 1, Rf_mkChar("name"));
    SET_STRING_ELT(names, 2, Rf_mkChar("message"));
    Rf_setAttrib(res, R_NamesSymbol, names);
    Rf_setAttrib(res, R_ClassSymbol, Rf_mkString("rkp_failure"));
    UNPROTECT(2);
    return res;
}

static void op_finalize(SEXP ptr) {
    rkp_op *op = R_ExternalPtrAddr(ptr);
    if (!op) return;
    kp_plan_free(op->plan[0]);
    kp_plan_free(op->plan[1]);
    kp_formula_free(op->f);
    free(op);
    R_ClearExternalPtr(ptr);
}

static SEXP wrap(kp_formula *f) {
    rkp_op *op = calloc(1, sizeof *op);
    if (!op) {
        kp_formula_free(f);
        Rf_error("rkp: out of memory");
    }
    op->f = f;
    SEXP ptr = PROTECT(R_MakeExternalPtr(op, Rf_install("rkp_op"), R_NilValue));
    R_RegisterCFinalizerEx(ptr, op_finalize, TRUE);
    Rf_setAttrib(ptr, R_ClassSymbol, Rf_mkString("rkp_op"));
    UNPROTECT(1);
    return ptr;
}

static rkp_op *unwrap(SEXP ptr) {
    if (TYPEOF(ptr) != EXTPTRSXP || R_ExternalPtrTag(ptr) != Rf_install("rkp_op"))
        Rf_error("rkp: not an rkp operator");
    rkp_op *op = R_ExternalPtrAddr(ptr);
    if (!op) Rf_error("rkp: this operator was freed (saved and reloaded R objects hold no libkp formula)");
    return op;
}

SEXP rkp_parse(SEXP text, SEXP aliases) {
    if (!Rf_isString(text) || XLENGTH(text) != 1 || STRING_ELT(text, 0) == NA_STRING)
        Rf_error("rkp: 'formula' must be one character string");
    if (!Rf_isString(aliases)) Rf_error("rkp: 'args' must be a character vector");
    R_xlen_t n = XLENGTH(aliases);
    const char **al = (const char **)R_alloc((size_t)n + 1, sizeof *al);
    for (R_xlen_t k = 0; k < n; k++) {
        if (STRING_ELT(aliases, k) == NA_STRING) Rf_error("rkp: 'args' must not contain NA");
        al[k] = Rf_translateCharUTF8(STRING_ELT(aliases, k));
    }
    kp_context *ctx = context();
    kp_formula *f = NULL;
    kp_status st = kp_formula_parse(ctx, Rf_translateCharUTF8(STRING_ELT(text, 0)), al, (size_t)n, &f);
    if (st != KP_OK) return failure(st);
    return wrap(f);
}

/* What kp.h says of an operator: list(reduction, axis, nargs, category, dim,
 * out_dim, out_index_dim, sums_rows, text). category[k] is NA for an unused
 * position, else 0 (Vi), 1 (Vj), 2 (Pm). */
SEXP rkp_info(SEXP ptr) {
    rkp_op *op = unwrap(ptr);
    int n = kp_formula_num_args(op->f);
    SEXP cat = PROTECT(Rf_allocVector(INTSXP, n)), dim = PROTECT(Rf_allocVector(INTSXP, n));
    for (int k = 0; k < n; k++) {
        kp_var_category c;
        int d;
        if (kp_formula_arg(op->f, k, &c, &d) == KP_OK) {
            INTEGER(cat)[k] = (int)c;
            INTEGER(dim)[k] = d;
        } else {
            INTEGER(cat)[k] = NA_INTEGER;
            INTEGER(dim)[k] = NA_INTEGER;
        }
    }
    size_t len = kp_formula_print(op->f, NULL, 0);
    char *buf = R_alloc(len + 1, 1);
    kp_formula_print(op->f, buf, len + 1);
    const char *names[] = {"reduction", "axis", "nargs", "category", "dim", "out_dim", "out_index_dim", "sums_rows", "text"};
    SEXP res = PROTECT(Rf_allocVector(VECSXP, 9)), nm = PROTECT(Rf_allocVector(STRSXP, 9));
    SET_VECTOR_ELT(res, 0, Rf_ScalarInteger((int)kp_formula_reduction(op->f)));
    SET_VECTOR_ELT(res, 1, Rf_ScalarInteger(kp_formula_axis(op->f)));
    SET_VECTOR_ELT(res, 2, Rf_ScalarInteger(n));
    SET_VECTOR_ELT(res, 3, cat);
    SET_VECTOR_ELT(res, 4, dim);
    SET_VECTOR_ELT(res, 5, Rf_ScalarInteger(kp_formula_out_dim(op->f)));
    SET_VECTOR_ELT(res, 6, Rf_ScalarInteger(kp_formula_out_index_dim(op->f)));
    SET_VECTOR_ELT(res, 7, Rf_ScalarLogical(kp_formula_sums_rows(op->f)));
    SET_VECTOR_ELT(res, 8, Rf_mkString(buf));
    for (int k = 0; k < 9; k++) SET_STRING_ELT(nm, k, Rf_mkChar(names[k]));
    Rf_setAttrib(res, R_NamesSymbol, nm);
    UNPROTECT(4);
    return res;
}

/* A formula derived from op: kind 0 = gradient w.r.t. argument k, 1 = the
 * forward with indices, 2 = the softmax's LogSumExp, 3 = without row sums. */
SEXP rkp_derive(SEXP ptr, SEXP kind, SEXP k) {
    rkp_op *op = unwrap(ptr);
    kp_context *ctx = context();
    kp_formula *g = NULL;
    kp_status st;
    switch (Rf_asInteger(kind)) {
    case 0: st = kp_formula_grad(ctx, op->f, Rf_asInteger(k), &g); break;
    case 1: st = kp_formula_with_indices(ctx, op->f, &g); break;
    case 2: st = kp_formula_softmax_lse(ctx, op->f, &g); break;
    case 3: st = kp_formula_unsummed(ctx, op->f, &g); break;
    default: Rf_error("rkp: unknown derivation kind");
    }
    if (st != KP_OK) return failure(st);
    return wrap(g);
}

SEXP rkp_version(void) {
    SEXP v = PROTECT(Rf_allocVector(INTSXP, 3));
    INTEGER(v)[0] = KP_VERSION_MAJOR;
    INTEGER(v)[1] = KP_VERSION_MINOR;
    INTEGER(v)[2] = KP_VERSION_PATCH;
    UNPROTECT(1);
    return v;
}

/* The plan of op for dtype, made on first use. */
kp_status rkp__plan(SEXP ptr, kp_dtype dtype, kp_plan **plan) {
    rkp_op *op = unwrap(ptr);
    if (!op->plan[dtype]) {
        kp_status st = kp_plan_new(context(), op->f, dtype, &op->plan[dtype]);
        if (st != KP_OK) return st;
    }
    *plan = op->plan[dtype];
    return KP_OK;
}

SEXP rkp__failure(kp_status st) { return failure(st); }

kp_dtype rkp__dtype(SEXP code) {
    int d = Rf_asInteger(code);
    if (d != KP_FLOAT32 && d != KP_FLOAT64) Rf_error("rkp: dtype %d is neither KP_FLOAT32 nor KP_FLOAT64", d);
    return (kp_dtype)d;
}

kp_context *rkp__context(void) { return context(); }

/* rkp_set_engine(e): the engine of later runs (kp_engine; e < 0 only asks
 * whether engine -e-1 can run here). NULL on success, else an rkp_failure. */
SEXP rkp_set_engine(SEXP engine) {
    int e = Rf_asInteger(engine);
    kp_context *ctx = context();
    kp_status st = e < 0 ? kp_engine_available(ctx, (kp_engine)(-e - 1)) : kp_context_set_engine(ctx, (kp_engine)e);
    return st == KP_OK ? R_NilValue : failure(st);
}

/* kp.h's reductions: list(name, takes_k, takes_g, values, indices, selects),
 * one element per kp_reduction value (kp_reduction_name, kp_reduction_flags). */
SEXP rkp_reductions(void) {
    static const char *names[] = {"name", "takes_k", "takes_g", "values", "indices", "selects"};
    static const unsigned bits[] = {KP_REDUCTION_TAKES_K, KP_REDUCTION_TAKES_G, KP_REDUCTION_VALUES,
                                    KP_REDUCTION_INDICES, KP_REDUCTION_SELECTS};
    int n = kp_reduction_count();
    SEXP res = PROTECT(Rf_allocVector(VECSXP, 6)), nm = PROTECT(Rf_allocVector(STRSXP, 6));
    SEXP red = PROTECT(Rf_allocVector(STRSXP, n));
    for (int r = 0; r < n; r++) SET_STRING_ELT(red, r, Rf_mkChar(kp_reduction_name((kp_reduction)r)));
    SET_VECTOR_ELT(res, 0, red);
    for (int f = 0; f < 5; f++) {
        SEXP v = PROTECT(Rf_allocVector(LGLSXP, n));
        for (int r = 0; r < n; r++) LOGICAL(v)[r] = (kp_reduction_flags((kp_reduction)r) & bits[f]) != 0;
        SET_VECTOR_ELT(res, f + 1, v);
        UNPROTECT(1);
    }
    for (int k = 0; k < 6; k++) SET_STRING_ELT(nm, k, Rf_mkChar(names[k]));
    Rf_setAttrib(res, R_NamesSymbol, nm);
    UNPROTECT(3);
    return res;
}

/* kp_constant(name) as an integer; NA for a name kp.h does not have. */
SEXP rkp_constant(SEXP name) {
    if (!Rf_isString(name) || XLENGTH(name) != 1 || STRING_ELT(name, 0) == NA_STRING)
        Rf_error("rkp: the constant's name must be one character string");
    int64_t v;
    if (kp_constant(Rf_translateCharUTF8(STRING_ELT(name, 0)), &v) != KP_OK || v < INT32_MIN || v > INT32_MAX)
        return Rf_ScalarInteger(NA_INTEGER);
    return Rf_ScalarInteger((int)v);
}
