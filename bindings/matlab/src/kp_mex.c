/*
 * kp_mex.c -- the MEX gateway of libkp for Octave and MATLAB (one source for
 * both: `mkoctfile --mex` and MATLAB's `mex` build it unchanged).
 *
 *   kp_mex('call', key, deriv, a1, ..., an)  -> outputs of the reduction
 *   kp_mex('info', key, deriv)               -> struct describing the formula
 *   kp_mex('position', key, name)            -> 1-based input of an alias name
 *   kp_mex('threads' [, n])                  -> thread count (0: all cores)
 *   kp_mex('engine' [, name])                -> engine: cpu, opencl, cuda, auto
 *   kp_mex('reductions')                     -> kp.h's reductions: name and flags
 *   kp_mex('statuses')                       -> kp.h's status codes and their error ids
 *   kp_mex('exec_seconds')                   -> time of the last kp_plan_exec
 *   kp_mex('clear')                          -> frees the cached formulas
 *
 * Layout: MATLAB arrays are column-major, a point is a row of an N x D matrix,
 * so element (i, d) lives at i + d*N. libkp takes strides, so the gateway
 * describes each matrix as shape (N, D) with strides (1, N): no input is copied
 * (parameters of the other float class excepted: a double scalar next to
 * single data is converted, as MATLAB's arithmetic does). Outputs are written
 * by libkp straight into the MATLAB arrays returned, with the same strides.
 * Indices come back 1-based, as doubles (exact below 2^53), written by libkp
 * as int64 into the double array's own memory and converted in place.
 *
 * Errors: every failure raises an Octave/MATLAB error with identifier
 * libkp:<status> and libkp's message; temporaries are freed before, and the
 * gateway never leaves its cache half-built.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <time.h>
#endif

#include "mex.h"
#include "kp_mex.h"

#define KPM_MAX_ARGS 64
#define KPM_MAX_TEMPS 12

/* Buffers a call allocates, freed on every exit path (errors included), and
 * the output arrays, destroyed if the call fails (Octave would keep the
 * memory of arrays left behind by an error). */
typedef struct {
    void *p[KPM_MAX_TEMPS];
    int n;
    mxArray *out[2];
} temps;

static char g_msg[2048];
static double g_exec_seconds;

static void at_exit(void) { kpm_cache_clear(); }

static double now_seconds(void) {
#ifdef _WIN32
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart / (double)f.QuadPart;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#endif
}

/* The error identifier of a status: "libkp:" and kp.h's name of it without
 * KP_ERR_, in camel case (KP_ERR_TOO_LARGE: libkp:tooLarge), so that every
 * status libkp has gets one. Two keep the names the binding documents:
 * KP_ERR_PARSE is libkp:formula, KP_ERR_OOM libkp:outOfMemory. */
static const char *status_id(kp_status st) {
    static char id[64];
    const char *name = kp_status_name(st);
    if (st == KP_ERR_PARSE) return "libkp:formula";
    if (st == KP_ERR_OOM) return "libkp:outOfMemory";
    if (!name || strncmp(name, "KP_ERR_", 7) != 0) return "libkp:internal";
    size_t n = strlen("libkp:");
    memcpy(id, "libkp:", n);
    for (const char *c = name + 7; *c && n + 1 < sizeof id; c++) {
        if (*c == '_') continue;
        char lower = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
        id[n++] = c > name + 7 && c[-1] == '_' ? *c : lower;
    }
    id[n] = '\0';
    return id;
}

static void *temp_alloc(temps *t, size_t bytes) {
    if (t->n == KPM_MAX_TEMPS) return NULL;
    void *p = malloc(bytes ? bytes : 1);
    if (p) t->p[t->n++] = p;
    return p;
}

static void temps_free(temps *t) {
    for (int i = 0; i < t->n; i++) free(t->p[i]);
    t->n = 0;
}

/* On failure: the temporaries and the outputs not handed back. */
static void temps_abandon(temps *t) {
    temps_free(t);
    for (int i = 0; i < 2; i++) {
        if (t->out[i]) mxDestroyArray(t->out[i]);
        t->out[i] = NULL;
    }
}

/* Raises the error: msg if given, else the context's message, else the
 * status text. Frees the call's temporaries first (the error does not return). */
static void fail(temps *t, kp_status st, const char *msg) {
    const char *text = msg && msg[0] ? msg : NULL;
    kp_context *ctx = kpm_context();
    if (!text && ctx && st != KP_ERR_OOM) text = kp_context_message(ctx);
    if (!text || !text[0]) text = kp_status_string(st);
    snprintf(g_msg, sizeof g_msg, "libkp: %s", text);
    if (!msg || !msg[0]) { /* libkp counts arguments from 0, as Vi(k,d) does */
        if (strstr(text, "argument "))
            strncat(g_msg, " (argument k is input k+1)", sizeof g_msg - strlen(g_msg) - 1);
    }
    if (t) temps_abandon(t);
    mexErrMsgIdAndTxt(status_id(st), "%s", g_msg);
}

static void failf(temps *t, kp_status st, const char *fmt, const char *a, long b, long c) {
    char buf[1024];
    snprintf(buf, sizeof buf, fmt, a, b, c);
    fail(t, st, buf);
}

/* A char argument as a NUL-terminated string in a temporary of t (malloc, not
 * mxArrayToString: Octave does not give back mxMalloc'ed memory when a MEX
 * function ends in an error). */
static char *get_string(temps *t, const mxArray *a, const char *what) {
    if (!mxIsChar(a) || (mxGetM(a) > 1 && mxGetN(a) > 0)) failf(t, KP_ERR_ARGUMENT, "%s must be a character row", what, 0, 0);
    size_t n = mxGetNumberOfElements(a) + 1;
    char *s = temp_alloc(t, n);
    if (!s) fail(t, KP_ERR_OOM, "out of memory");
    if (mxGetString(a, s, (mwSize)n) != 0) failf(t, KP_ERR_ARGUMENT, "%s: cannot read it as text (non-ASCII characters?)", what, 0, 0);
    return s;
}

/* ----------------------------------------------------------------- arguments */

/* Category and dimension of position k: from e's formula, or from the formula
 * it derives from when e does not use k (a gradient may drop an input its
 * forward needs). Returns 0 when no formula of the chain uses k. */
static int arg_info(const kpm_entry *e, int k, kp_var_category *cat, int *dim) {
    for (; e; e = e->parent)
        if (k < kp_formula_num_args(e->f) && kp_formula_arg(e->f, k, cat, dim) == KP_OK) return 1;
    return 0;
}

static kp_dtype class_dtype(const mxArray *a) { return mxIsSingle(a) ? KP_FLOAT32 : KP_FLOAT64; }

static const char *cat_name(kp_var_category c) { return c == KP_VAR_I ? "Vi" : c == KP_VAR_J ? "Vj" : "Pm"; }

/* Checks that input k is a real full double or single array. */
static void check_class(temps *t, const mxArray *a, int k, kp_var_category cat, int dim) {
    char what[64];
    snprintf(what, sizeof what, "input %d (%s of dimension %d)", k + 1, cat_name(cat), dim);
    if (mxIsSparse(a)) failf(t, KP_ERR_DTYPE, "%s is sparse; libkp takes full arrays (use full(...))", what, 0, 0);
    if (!mxIsDouble(a) && !mxIsSingle(a)) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s is of class %s; libkp takes double or single arrays", what, mxGetClassName(a));
        fail(t, KP_ERR_DTYPE, buf);
    }
    if (mxIsComplex(a)) failf(t, KP_ERR_DTYPE, "%s is complex; libkp takes real arrays", what, 0, 0);
    if (mxGetNumberOfDimensions(a) > 2 + KP_MAX_BATCH_DIMS)
        failf(t, KP_ERR_SHAPE, "%s has %ld dimensions; at most %ld batch dimensions follow N x D", what,
              (long)mxGetNumberOfDimensions(a), (long)KP_MAX_BATCH_DIMS);
}

/* Describes input a of position k as a kp_array view. A Vi/Vj matrix is
 * (rows, D) with strides (1, rows); an N x D x B1 x ... x Bk array adds batch
 * dimensions (B1, ..., Bk) in front, strides rows*D, rows*D*B1, ...; a 1 x n
 * row for a dimension-1 variable is n points. A Pm vector is numel numbers;
 * a batched Pm is 1 x D x B1 x ..., libkp's (batch..., 1, D). Parameters of
 * the other float class are converted into a temporary of dtype. */
static kp_array view_of(temps *t, const mxArray *a, kp_var_category cat, int dim, kp_dtype dtype, int k) {
    kp_array v;
    memset(&v, 0, sizeof v);
    v.dtype = class_dtype(a);
    v.device = KP_DEVICE_CPU;
    v.data = mxGetData(a);
    size_t nd = (size_t)mxGetNumberOfDimensions(a);
    const mwSize *dims = mxGetDimensions(a);
    size_t r = (size_t)dims[0], c = (size_t)dims[1]; /* not mxGetN: the product of all but the first */
    if (v.dtype != dtype && cat != KP_VAR_PARAM) {
        char buf[256];
        snprintf(buf, sizeof buf,
                 "input %d (%s of dimension %d) is %s but the data are %s; convert them to one class", k + 1,
                 cat_name(cat), dim, mxGetClassName(a), dtype == KP_FLOAT32 ? "single" : "double");
        fail(t, KP_ERR_DTYPE, buf);
    }
    if (v.dtype != dtype) { /* a parameter: MATLAB's arithmetic would convert it too */
        size_t n = mxGetNumberOfElements(a);
        void *buf = temp_alloc(t, n * (dtype == KP_FLOAT32 ? sizeof(float) : sizeof(double)));
        if (!buf) fail(t, KP_ERR_OOM, "out of memory converting a parameter");
        for (size_t i = 0; i < n; i++) {
            if (dtype == KP_FLOAT32) ((float *)buf)[i] = (float)((const double *)v.data)[i];
            else ((double *)buf)[i] = (double)((const float *)v.data)[i];
        }
        v.data = buf;
        v.dtype = dtype;
    }
    if (nd == 2 && cat == KP_VAR_PARAM) {
        v.ndim = 1;
        v.shape[0] = (int64_t)(r * c);
        v.strides[0] = 1;
        return v;
    }
    int nb = (int)nd - 2;
    int64_t stride = (int64_t)(r * c);
    for (int d = 0; d < nb; d++) {
        v.shape[d] = (int64_t)dims[2 + d];
        v.strides[d] = stride;
        stride *= (int64_t)dims[2 + d];
    }
    v.ndim = nb + 2;
    if (nb == 0 && dim == 1 && r == 1 && c != 1) { /* a row vector of scalars: c points */
        v.shape[0] = (int64_t)c;
        v.shape[1] = 1;
        v.strides[0] = 1;
        v.strides[1] = 1;
    } else {
        v.shape[nb] = (int64_t)r;
        v.shape[nb + 1] = (int64_t)c;
        v.strides[nb] = 1;
        v.strides[nb + 1] = (int64_t)(r ? r : 1);
    }
    return v;
}

/* Views of the n user inputs for entry e; returns the dtype of the call: the
 * class of the first Vi/Vj input (else of the first input used). Unused
 * positions get an empty descriptor (libkp does not read them). */
static kp_dtype user_views(temps *t, const kpm_entry *e, int n, const mxArray **in, kp_array *views) {
    kp_var_category cat;
    int dim, have = 0;
    kp_dtype dtype = KP_FLOAT64;
    for (int pass = 0; pass < 2 && !have; pass++)
        for (int k = 0; k < n && !have; k++)
            if (arg_info(e, k, &cat, &dim) && (pass || cat != KP_VAR_PARAM) && (mxIsDouble(in[k]) || mxIsSingle(in[k]))) {
                dtype = class_dtype(in[k]);
                have = 1;
            }
    for (int k = 0; k < n; k++) {
        memset(&views[k], 0, sizeof views[k]);
        if (!arg_info(e, k, &cat, &dim)) continue;
        check_class(t, in[k], k, cat, dim);
        views[k] = view_of(t, in[k], cat, dim, dtype, k);
    }
    return dtype;
}

/* Batch dimensions of a call's outputs and their rows, as kp_plan_output_shape
 * tells them (libkp's broadcasting and row rules: the gateway has none). */
typedef struct {
    int nb;
    int64_t shape[KP_MAX_BATCH_DIMS];
    int64_t count; /* product of the extents */
} batch_info;

static int view_batch_dims(const kp_array *v) {
    if (v->ndim == 0) return 0; /* unused position */
    return v->ndim - 2 > 0 ? v->ndim - 2 : 0;
}

/* MATLAB drops trailing singleton dimensions: an input with some batch
 * dimensions but fewer than the most any input has gets extent-1 dimensions
 * appended (a layout fact of MATLAB arrays); inputs with none stay shared by
 * every batch, as libkp takes them. */
static void pad_batch_dims(kp_array *views, int n) {
    int most = 0;
    for (int k = 0; k < n; k++)
        if (view_batch_dims(&views[k]) > most) most = view_batch_dims(&views[k]);
    for (int k = 0; k < n; k++) {
        int nb = view_batch_dims(&views[k]);
        if (nb == 0 || nb == most) continue;
        kp_array *v = &views[k];
        int grow = most - nb;
        for (int d = v->ndim - 1; d >= nb; d--) { /* rows, dim move back */
            v->shape[d + grow] = v->shape[d];
            v->strides[d + grow] = v->strides[d];
        }
        for (int d = nb; d < most; d++) {
            v->shape[d] = 1;
            v->strides[d] = 0;
        }
        v->ndim += grow;
    }
}

/* ----------------------------------------------------------------- execution */

/* The output shape of e in dtype for these arguments, from libkp: batch
 * dimensions into *b, the rows returned. */
static int64_t output_shape(temps *t, kpm_entry *e, kp_dtype dtype, const kp_array *args, batch_info *b) {
    kp_plan *plan;
    int64_t shape[KP_MAX_DIMS];
    int ndim = 0;
    kp_status st = kpm_plan(e, dtype, &plan);
    if (st == KP_OK)
        st = kp_plan_output_shape(plan, args, (size_t)kp_formula_num_args(e->f), NULL, &ndim, shape, NULL);
    if (st != KP_OK) fail(t, st, NULL);
    memset(b, 0, sizeof *b);
    b->nb = ndim - 2;
    b->count = 1;
    for (int d = 0; d < b->nb; d++) {
        b->shape[d] = shape[d];
        b->count *= shape[d];
    }
    return shape[ndim - 2];
}

/* A packed row-major (batch..., rows, cols) descriptor. */
static kp_array packed(void *data, kp_dtype dtype, const batch_info *b, int64_t rows, int64_t cols) {
    int64_t shape[KP_MAX_DIMS];
    for (int d = 0; d < b->nb; d++) shape[d] = b->shape[d];
    shape[b->nb] = rows;
    shape[b->nb + 1] = cols;
    return kp_array_nd(data, dtype, b->nb + 2, shape);
}

/* Runs e on args into out / idx (either may be NULL when e has none). */
static void run(temps *t, kpm_entry *e, kp_dtype dtype, const kp_array *args, kp_array *out, kp_array *idx, int timed) {
    kp_plan *plan;
    char msg[8] = "";
    kp_status st = kpm_plan(e, dtype, &plan);
    if (st != KP_OK) fail(t, st, msg);
    double t0 = timed ? now_seconds() : 0;
    st = kp_plan_exec(plan, args, (size_t)kp_formula_num_args(e->f), out, idx, NULL);
    if (timed) g_exec_seconds = now_seconds() - t0;
    if (st != KP_OK) fail(t, st, msg);
}

/* Forward results a gradient entry g takes after E (kp_formula_grad): the
 * parent's output O, or its indices as numbers, then the softmax lse. */
static void hidden_inputs(temps *t, kpm_entry *g, const char *key, const char *deriv, kp_dtype dtype,
                          kp_array *args) {
    kpm_entry *p = g->parent;
    int n = kp_formula_num_args(p->f), ng = kp_formula_num_args(g->f);
    size_t esz = dtype == KP_FLOAT32 ? sizeof(float) : sizeof(double);
    batch_info bi, *b = &bi;
    int64_t rows = output_shape(t, p, dtype, args, b), per = rows * b->count; /* rows of all batches */
    char pd[1024], msg[512];
    const char *slash = strrchr(deriv, '/');
    size_t plen = slash ? (size_t)(slash - deriv) : 0;
    if (plen + 4 > sizeof pd) fail(t, KP_ERR_ARGUMENT, "derivation path too long");
    kp_reduction red = kp_formula_reduction(p->f);
    if (ng > n + 1) {
        if (!(kp_reduction_flags(red) & KP_REDUCTION_SELECTS)) { /* LogSumExp, SumSoftMaxWeight: O */
            int od = kp_formula_out_dim(p->f);
            void *o = temp_alloc(t, (size_t)per * (size_t)od * esz);
            if (!o) fail(t, KP_ERR_OOM, "out of memory for the forward output");
            kp_array out = packed(o, dtype, b, rows, od);
            run(t, p, dtype, args, &out, NULL, 0);
            args[n + 1] = out;
        } else { /* Min/Max/KMin-type: the selected indices, as numbers of dtype */
            kpm_entry *w;
            memcpy(pd, deriv, plen);
            strcpy(pd + plen, plen ? "/w" : "w");
            kp_status st = kpm_resolve(key, pd, &w, msg, sizeof msg);
            if (st != KP_OK) fail(t, st, msg);
            int od = kp_formula_out_dim(w->f), id = kp_formula_out_index_dim(w->f);
            void *v = temp_alloc(t, (size_t)per * (size_t)(od ? od : 1) * esz);
            int64_t *ix = temp_alloc(t, (size_t)per * (size_t)id * sizeof(int64_t));
            void *num = temp_alloc(t, (size_t)per * (size_t)id * esz);
            if (!v || !ix || !num) fail(t, KP_ERR_OOM, "out of memory for the forward indices");
            kp_array vo = packed(v, dtype, b, rows, od), io = packed(ix, KP_INT64, b, rows, id);
            run(t, w, dtype, args, od ? &vo : NULL, &io, 0);
            for (int64_t i = 0; i < per * id; i++) {
                if (dtype == KP_FLOAT32) ((float *)num)[i] = (float)ix[i];
                else ((double *)num)[i] = (double)ix[i];
            }
            args[n + 1] = packed(num, dtype, b, rows, id);
        }
    }
    if (ng > n + 2) { /* SumSoftMaxWeight, reduced-axis variable: lse per row */
        kpm_entry *l;
        memcpy(pd, deriv, plen);
        strcpy(pd + plen, plen ? "/l" : "l");
        kp_status st = kpm_resolve(key, pd, &l, msg, sizeof msg);
        if (st != KP_OK) fail(t, st, msg);
        void *o = temp_alloc(t, (size_t)per * esz);
        if (!o) fail(t, KP_ERR_OOM, "out of memory for the softmax normalizer");
        kp_array out = packed(o, dtype, b, rows, 1);
        run(t, l, dtype, args, &out, NULL, 0);
        args[n + 2] = out;
    }
}

/* Converts the int64 indices libkp wrote into a double array's memory to
 * 1-based doubles, in place (same element size). */
static void indices_to_double(mxArray *a) {
    double *d = mxGetPr(a);
    size_t n = mxGetNumberOfElements(a);
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, &d[i], sizeof v);
        d[i] = (double)v + 1.0;
    }
}

/* A rows x width (x B1 x ... x Bk) MATLAB array for an output of libkp
 * (values in dtype's class; int64 indices in a double array, converted in
 * place afterwards) and its column-major view: shape (batch..., rows, width),
 * strides (rows*width, rows*width*B1, ..., 1, rows). */
static mxArray *new_output(int64_t rows, int width, kp_dtype dtype, const batch_info *b, kp_array *view) {
    mxClassID cls = dtype == KP_FLOAT32 ? mxSINGLE_CLASS : mxDOUBLE_CLASS;
    mwSize dims[KP_MAX_DIMS];
    dims[0] = (mwSize)rows;
    dims[1] = (mwSize)width;
    memset(view, 0, sizeof *view);
    int64_t stride = rows * width;
    for (int d = 0; d < b->nb; d++) {
        dims[2 + d] = (mwSize)b->shape[d];
        view->shape[d] = b->shape[d];
        view->strides[d] = stride;
        stride *= b->shape[d];
    }
    mxArray *a = mxCreateUninitNumericArray((mwSize)(b->nb + 2), dims, cls, mxREAL);
    view->data = mxGetData(a);
    view->dtype = dtype;
    view->device = KP_DEVICE_CPU;
    view->ndim = b->nb + 2;
    view->shape[b->nb] = rows;
    view->shape[b->nb + 1] = width;
    view->strides[b->nb] = 1;
    view->strides[b->nb + 1] = rows ? rows : 1;
    return a;
}

/* A gradient computed for every batch, summed over the batch dimensions that
 * input k broadcast (extent 1, or none at all): the gradient of a shared input
 * is the sum of its gradients in each batch. Returns g itself when nothing is
 * summed, else a new array (g destroyed). */
static mxArray *sum_broadcast(mxArray *g, const mxArray *input, const batch_info *b) {
    size_t ndi = (size_t)mxGetNumberOfDimensions(input);
    const mwSize *di = mxGetDimensions(input);
    mwSize dims[KP_MAX_DIMS];
    int64_t ext[KP_MAX_DIMS], keep[KP_MAX_DIMS], any = 0;
    const mwSize *dg = mxGetDimensions(g);
    int nd = b->nb + 2;
    for (int d = 0; d < nd; d++) {
        ext[d] = (int64_t)dg[d];
        int64_t in_ext = d < 2 ? ext[d] : ((size_t)d < ndi && ndi > 2 ? (int64_t)di[d] : 1);
        keep[d] = !(d >= 2 && in_ext == 1 && ext[d] != 1);
        any |= !keep[d];
        dims[d] = (mwSize)(keep[d] ? ext[d] : 1);
    }
    if (!any) return g;
    mxArray *r = mxCreateNumericArray((mwSize)nd, dims, mxGetClassID(g), mxREAL);
    size_t total = mxGetNumberOfElements(g);
    int single = mxIsSingle(g);
    for (size_t i = 0; i < total; i++) {
        size_t rem = i, at = 0, stride = 1;
        for (int d = 0; d < nd; d++) { /* column-major: first dimension fastest */
            size_t c = rem % (size_t)ext[d];
            rem /= (size_t)ext[d];
            if (keep[d]) at += c * stride;
            stride *= (size_t)dims[d];
        }
        if (single) ((float *)mxGetData(r))[at] += ((const float *)mxGetData(g))[i];
        else ((double *)mxGetData(r))[at] += ((const double *)mxGetData(g))[i];
    }
    mxDestroyArray(g);
    return r;
}

static void cmd_call(int nlhs, mxArray **plhs, int nrhs, const mxArray **prhs) {
    char msg[512];
    temps t = {{0}, 0, {NULL, NULL}};
    kp_array args[KPM_MAX_ARGS + 3];
    if (nrhs < 3) fail(NULL, KP_ERR_ARGUMENT, "usage: kp_mex('call', key, deriv, inputs...)");
    char *key = get_string(&t, prhs[1], "key"), *deriv = get_string(&t, prhs[2], "derivation");
    kpm_cache_trim();
    kpm_entry *e;
    kp_status st = kpm_resolve(key, deriv, &e, msg, sizeof msg);
    if (st != KP_OK) fail(&t, st, msg);
    int n = nrhs - 3;
    if (n != e->user_nargs)
        failf(&t, KP_ERR_ARGUMENT, "%sthe reduction takes %ld inputs, got %ld", e->grad_k >= 0 ? "(gradient: the inputs, then the output gradient) " : "",
              (long)e->user_nargs, (long)n);
    if (n > KPM_MAX_ARGS) fail(&t, KP_ERR_ARGUMENT, "too many inputs");
    int od = kp_formula_out_dim(e->f), id = kp_formula_out_index_dim(e->f);
    int nout = (od > 0) + (id > 0);
    if (nlhs > nout) failf(&t, KP_ERR_ARGUMENT, "%sthis reduction has %ld output(s), %ld requested", "", (long)nout, (long)nlhs);
    kp_dtype dtype = user_views(&t, e, n, prhs + 3, args);
    pad_batch_dims(args, n);
    if (e->hidden) hidden_inputs(&t, e, key, deriv, dtype, args);
    batch_info b;
    int64_t rows = output_shape(&t, e, dtype, args, &b);
    kp_array vo, io;
    mxArray *vals = od ? t.out[0] = new_output(rows, od, dtype, &b, &vo) : NULL;
    mxArray *idxs = id ? t.out[1] = new_output(rows, id, KP_INT64, &b, &io) : NULL;
    run(&t, e, dtype, args, od ? &vo : NULL, id ? &io : NULL, 1);
    if (idxs) indices_to_double(idxs);
    if (vals && e->grad_k >= 0) { /* a gradient has its input's shape (a parameter's orientation, a row of points) */
        const mxArray *in = prhs[3 + e->grad_k];
        if (b.nb > 0) vals = t.out[0] = sum_broadcast(vals, in, &b);
        if (mxGetNumberOfElements(vals) == mxGetNumberOfElements(in))
            mxSetDimensions(vals, mxGetDimensions(in), mxGetNumberOfDimensions(in));
    }
    /* plhs has room for max(nlhs, 1) outputs: [v] = f(...) of a Min_ArgMin
     * wants the values only, and the indices must not be written past it */
    int o = 0, room = nlhs > 0 ? nlhs : 1;
    t.out[0] = t.out[1] = NULL;
    if (vals) {
        if (o < room) plhs[o++] = vals;
        else mxDestroyArray(vals);
    }
    if (idxs) {
        if (o < room) plhs[o++] = idxs;
        else mxDestroyArray(idxs);
    }
    temps_free(&t);
}

/* ----------------------------------------------------------------- queries */

static void cmd_info(int nlhs, mxArray **plhs, int nrhs, const mxArray **prhs) {
    char msg[512];
    (void)nlhs;
    temps t = {{0}, 0, {NULL, NULL}};
    if (nrhs != 3) fail(NULL, KP_ERR_ARGUMENT, "usage: kp_mex('info', key, deriv)");
    char *key = get_string(&t, prhs[1], "key"), *deriv = get_string(&t, prhs[2], "derivation");
    kpm_cache_trim();
    kpm_entry *e;
    kp_status st = kpm_resolve(key, deriv, &e, msg, sizeof msg);
    if (st != KP_OK) fail(&t, st, msg);
    temps_free(&t);
    static const char *fields[] = {"nargs", "categories", "dims", "axis", "out_dim", "out_index_dim", "sums_rows", "formula"};
    mxArray *s = mxCreateStructMatrix(1, 1, 8, fields);
    int n = e->user_nargs;
    mxArray *dims = mxCreateDoubleMatrix(1, (size_t)n, mxREAL);
    char cs[KPM_MAX_ARGS + 4];
    int m = n < KPM_MAX_ARGS ? n : KPM_MAX_ARGS;
    for (int k = 0; k < m; k++) {
        kp_var_category c;
        int d = 0;
        cs[k] = arg_info(e, k, &c, &d) ? (c == KP_VAR_I ? 'i' : c == KP_VAR_J ? 'j' : 'p') : '-';
        mxGetPr(dims)[k] = d;
    }
    cs[m] = '\0';
    mxArray *cats = mxCreateString(cs);
    size_t need = kp_formula_print(e->f, NULL, 0);
    char *text = mxMalloc(need + 1);
    kp_formula_print(e->f, text, need + 1);
    mxSetField(s, 0, "nargs", mxCreateDoubleScalar(n));
    mxSetField(s, 0, "categories", cats);
    mxSetField(s, 0, "dims", dims);
    mxSetField(s, 0, "axis", mxCreateDoubleScalar(kp_formula_axis(e->f)));
    mxSetField(s, 0, "out_dim", mxCreateDoubleScalar(kp_formula_out_dim(e->f)));
    mxSetField(s, 0, "out_index_dim", mxCreateDoubleScalar(kp_formula_out_index_dim(e->f)));
    mxSetField(s, 0, "sums_rows", mxCreateDoubleScalar(kp_formula_sums_rows(e->f)));
    mxSetField(s, 0, "formula", mxCreateString(text));
    mxFree(text);
    plhs[0] = s;
}

/* The input position of an alias name, asked of libkp's parser: the
 * reduction of that name alone, printed canonically, shows the variable as
 * Vi(k,d), Vj(k,d) or Pm(k,d). 0 when the name is not a variable. */
static void cmd_position(mxArray **plhs, int nrhs, const mxArray **prhs) {
    temps t = {{0}, 0, {NULL, NULL}};
    if (nrhs != 3) fail(NULL, KP_ERR_ARGUMENT, "usage: kp_mex('position', key, name)");
    char *key = get_string(&t, prhs[1], "key"), *name = get_string(&t, prhs[2], "name");
    const char *nl = strchr(key, '\n');
    size_t need = strlen(name) + strlen(nl ? nl : "") + 32;
    char *probe = mxMalloc(need);
    snprintf(probe, need, "Sum_Reduction(%s,1)%s", name, nl ? nl : "");
    double pos = 0;
    char msg[512], text[256];
    kpm_entry *e;
    if (kpm_resolve(probe, "", &e, msg, sizeof msg) == KP_OK &&
        kp_formula_print(e->f, text, sizeof text) < sizeof text) {
        const char *v = strstr(text, "Sum_Reduction(");
        long k = -1;
        if (v) {
            v += strlen("Sum_Reduction(");
            if ((strncmp(v, "Vi(", 3) == 0 || strncmp(v, "Vj(", 3) == 0 || strncmp(v, "Pm(", 3) == 0) &&
                sscanf(v + 3, "%ld,", &k) == 1 && k >= 0)
                pos = (double)k + 1;
        }
    }
    mxFree(probe);
    temps_free(&t);
    plhs[0] = mxCreateDoubleScalar(pos);
}

static void cmd_threads(mxArray **plhs, int nrhs, const mxArray **prhs) {
    double old = kpm_threads();
    if (nrhs > 2) fail(NULL, KP_ERR_ARGUMENT, "usage: kp_mex('threads' [, n])");
    if (nrhs == 2) {
        const mxArray *a = prhs[1];
        double v = (mxIsDouble(a) && !mxIsComplex(a) && mxGetNumberOfElements(a) == 1) ? mxGetScalar(a) : -1;
        if (!(v >= 0 && v <= 4096 && v == (double)(int)v))
            fail(NULL, KP_ERR_ARGUMENT, "the thread count must be an integer in [0, 4096] (0: all cores)");
        kp_status st = kpm_set_threads((int)v);
        if (st != KP_OK) fail(NULL, st, NULL);
    }
    plhs[0] = mxCreateDoubleScalar(old);
}

/* The engines by the names users pass (kp_engine.m documents them); their
 * values are kp.h's, asked of kp_constant ("opencl": KP_ENGINE_OPENCL). */
static const char *const engine_names[] = {"cpu", "opencl", "cuda", "auto"};
#define KPM_N_ENGINES (sizeof engine_names / sizeof engine_names[0])

/* kp_engine value of a user's name; -1 for a name that is none. */
static int64_t engine_value(const char *name) {
    char constant[32] = "KP_ENGINE_";
    size_t n = strlen(constant);
    for (const char *c = name; *c && n + 1 < sizeof constant; c++)
        constant[n++] = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
    constant[n] = '\0';
    int64_t v;
    for (size_t k = 0; k < KPM_N_ENGINES; k++)
        if (strcmp(name, engine_names[k]) == 0 && kp_constant(constant, &v) == KP_OK) return v;
    return -1;
}

static const char *engine_name(kp_engine e) {
    for (size_t k = 0; k < KPM_N_ENGINES; k++)
        if (engine_value(engine_names[k]) == (int64_t)e) return engine_names[k];
    return "unknown";
}

static void cmd_engine(mxArray **plhs, int nrhs, const mxArray **prhs) {
    temps t = {{0}, 0, {NULL, NULL}};
    const char *old = engine_name(kpm_engine());
    if (nrhs > 2) fail(NULL, KP_ERR_ARGUMENT, "usage: kp_mex('engine' [, name])");
    if (nrhs == 2) {
        char *name = get_string(&t, prhs[1], "the engine name");
        int64_t e = engine_value(name);
        if (e < 0) fail(&t, KP_ERR_ARGUMENT, "unknown engine: expected 'cpu', 'opencl', 'cuda' or 'auto'");
        kp_status st = kpm_set_engine((kp_engine)e);
        if (st != KP_OK) fail(&t, st, NULL);
    }
    temps_free(&t);
    plhs[0] = mxCreateString(old);
}

/* kp_mex('reductions'): kp.h's reductions as a struct array (name, takes_k,
 * takes_g, values, indices, selects), for kp_genred and the tests. */
static void cmd_reductions(mxArray **plhs) {
    static const char *fields[] = {"name", "takes_k", "takes_g", "values", "indices", "selects"};
    static const unsigned bits[] = {KP_REDUCTION_TAKES_K, KP_REDUCTION_TAKES_G, KP_REDUCTION_VALUES,
                                    KP_REDUCTION_INDICES, KP_REDUCTION_SELECTS};
    int n = kp_reduction_count();
    mxArray *s = mxCreateStructMatrix(1, (size_t)n, 6, fields);
    for (int r = 0; r < n; r++) {
        unsigned flags = kp_reduction_flags((kp_reduction)r);
        mxSetField(s, (size_t)r, "name", mxCreateString(kp_reduction_name((kp_reduction)r)));
        for (int f = 0; f < 5; f++)
            mxSetField(s, (size_t)r, fields[f + 1], mxCreateLogicalScalar((flags & bits[f]) != 0));
    }
    plhs[0] = s;
}

/* kp_mex('statuses'): every status code of kp.h (code, name, identifier of
 * the errors it raises, text), for the tests and users matching identifiers. */
static void cmd_statuses(mxArray **plhs) {
    static const char *fields[] = {"code", "name", "id", "text"};
    int n = 0;
    while (kp_status_name((kp_status)n)) n++;
    mxArray *s = mxCreateStructMatrix(1, (size_t)n, 4, fields);
    for (int k = 0; k < n; k++) {
        mxSetField(s, (size_t)k, "code", mxCreateDoubleScalar(k));
        mxSetField(s, (size_t)k, "name", mxCreateString(kp_status_name((kp_status)k)));
        mxSetField(s, (size_t)k, "id", mxCreateString(k == KP_OK ? "" : status_id((kp_status)k)));
        mxSetField(s, (size_t)k, "text", mxCreateString(kp_status_string((kp_status)k)));
    }
    plhs[0] = s;
}

void mexFunction(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    mexAtExit(at_exit); /* every call: cheap, and right again after the MEX file is reloaded */
    if (nrhs < 1 || !mxIsChar(prhs[0])) fail(NULL, KP_ERR_ARGUMENT, "kp_mex: the first input is a command name");
    char cmd[32];
    if (mxGetString(prhs[0], cmd, sizeof cmd) != 0) fail(NULL, KP_ERR_ARGUMENT, "kp_mex: unknown command");
    if (strcmp(cmd, "call") == 0) cmd_call(nlhs, plhs, nrhs, prhs);
    else if (strcmp(cmd, "info") == 0) cmd_info(nlhs, plhs, nrhs, prhs);
    else if (strcmp(cmd, "position") == 0) cmd_position(plhs, nrhs, prhs);
    else if (strcmp(cmd, "threads") == 0) cmd_threads(plhs, nrhs, prhs);
    else if (strcmp(cmd, "engine") == 0) cmd_engine(plhs, nrhs, prhs);
    else if (strcmp(cmd, "reductions") == 0) cmd_reductions(plhs);
    else if (strcmp(cmd, "statuses") == 0) cmd_statuses(plhs);
    else if (strcmp(cmd, "exec_seconds") == 0) plhs[0] = mxCreateDoubleScalar(g_exec_seconds);
    else if (strcmp(cmd, "clear") == 0) kpm_cache_clear();
    else fail(NULL, KP_ERR_ARGUMENT, "kp_mex: unknown command");
}
