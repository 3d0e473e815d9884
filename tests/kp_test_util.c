/* kp_test_util.c — see kp_test_util.h. */
#include "kp_test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kpt_rng_seed(kpt_rng *r, uint64_t seed) { r->state = seed; }

/* splitmix64 (Steele, Lea, Flood 2014). */
uint64_t kpt_rng_u64(kpt_rng *r) {
    uint64_t z = (r->state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

double kpt_rng_uniform(kpt_rng *r, double lo, double hi) {
    double u = (double)(kpt_rng_u64(r) >> 11) * 0x1.0p-53;
    return lo + (hi - lo) * u;
}

int64_t kpt_rng_int(kpt_rng *r, int64_t lo, int64_t hi) {
    uint64_t span = (uint64_t)(hi - lo) + 1u;
    return lo + (int64_t)(kpt_rng_u64(r) % span);
}

void kpt_fill_uniform(kpt_rng *r, double *a, size_t n, double lo, double hi) {
    for (size_t k = 0; k < n; k++) a[k] = kpt_rng_uniform(r, lo, hi);
}

void kpt_fill_int(kpt_rng *r, double *a, size_t n, int lo, int hi) {
    for (size_t k = 0; k < n; k++) a[k] = (double)kpt_rng_int(r, lo, hi);
}

double *kpt_random_array(kpt_rng *r, size_t n, double lo, double hi) {
    double *a = malloc((n ? n : 1) * sizeof(double));
    if (a) kpt_fill_uniform(r, a, n, lo, hi);
    return a;
}

size_t kpt_dtype_size(kp_dtype dtype) {
    return dtype == KP_FLOAT32 ? sizeof(float) : sizeof(double);
}

const char *kpt_dtype_name(kp_dtype dtype) {
    const char *name = kp_dtype_name(dtype);
    return name ? name : "?";
}

void kpt_round_to_dtype(double *a, size_t n, kp_dtype dtype) {
    if (dtype != KP_FLOAT32) return;
    for (size_t k = 0; k < n; k++) a[k] = (double)(float)a[k];
}

void *kpt_alloc_dtype(size_t n, kp_dtype dtype) {
    return malloc((n ? n : 1) * kpt_dtype_size(dtype));
}

void *kpt_to_dtype(const double *a, size_t n, kp_dtype dtype) {
    void *buf = kpt_alloc_dtype(n, dtype);
    if (!buf) return NULL;
    if (dtype == KP_FLOAT32) {
        float *f = buf;
        for (size_t k = 0; k < n; k++) f[k] = (float)a[k];
    } else if (n) {
        memcpy(buf, a, n * sizeof(double));
    }
    return buf;
}

void kpt_from_dtype(const void *src, kp_dtype dtype, size_t n, double *dst) {
    if (dtype == KP_FLOAT32) {
        const float *f = src;
        for (size_t k = 0; k < n; k++) dst[k] = (double)f[k];
    } else if (n) {
        memcpy(dst, src, n * sizeof(double));
    }
}

size_t kpt_check(const char *label, const double *got, const double *ref, const double *scale,
                 size_t n, double rtol, double atol) {
    size_t bad = 0;
    for (size_t k = 0; k < n; k++) {
        double g = got[k], r = ref[k];
        int ok;
        if (isnan(r) || isnan(g))
            ok = isnan(r) && isnan(g);
        else if (isinf(r) || isinf(g))
            ok = g == r;
        else {
            double s = scale ? scale[k] : fabs(r);
            ok = fabs(g - r) <= rtol * s + atol;
        }
        if (!ok) {
            if (bad < 5)
                fprintf(stderr, "  [%s] element %zu: got %.17g, expected %.17g (scale %.3g, rtol %.3g)\n",
                        label, k, g, r, scale ? scale[k] : fabs(r), rtol);
            bad++;
        }
    }
    if (bad) fprintf(stderr, "  [%s] %zu of %zu elements differ\n", label, bad, n);
    return bad;
}

size_t kpt_check_index(const char *label, const int64_t *got, const int64_t *ref, size_t n) {
    size_t bad = 0;
    for (size_t k = 0; k < n; k++) {
        if (got[k] != ref[k]) {
            if (bad < 5)
                fprintf(stderr, "  [%s] index element %zu: got %lld, expected %lld\n", label, k,
                        (long long)got[k], (long long)ref[k]);
            bad++;
        }
    }
    if (bad) fprintf(stderr, "  [%s] %zu of %zu indices differ\n", label, bad, n);
    return bad;
}

double kpt_max_rel_err(const double *got, const double *ref, size_t n) {
    double worst = 0.0;
    for (size_t k = 0; k < n; k++) {
        double d = fabs(got[k] - ref[k]) / fmax(fabs(ref[k]), 1e-300);
        if (!(d <= worst)) worst = d; /* NaN wins */
    }
    return worst;
}

int kpt_skip_large(void) {
    const char *v = getenv("KP_TEST_SKIP_LARGE");
    return v && v[0] && strcmp(v, "0") != 0;
}

kp_status kpt_context_new(kp_context **out) {
    kp_status st = kp_context_new(out);
    const char *want = getenv("KP_TEST_ENGINE");
    if (st != KP_OK || !want || !*want || strcmp(want, "cpu") == 0) return st;
    kp_engine eng;
    if (strcmp(want, "opencl") == 0) eng = KP_ENGINE_OPENCL;
    else if (strcmp(want, "cuda") == 0) eng = KP_ENGINE_CUDA;
    else {
        fprintf(stderr, "KP_TEST_ENGINE=%s: expected cpu, opencl or cuda\n", want);
        exit(1);
    }
    if (kp_context_set_engine(*out, eng) != KP_OK) {
        printf("SKIPPED: KP_TEST_ENGINE=%s: %s\n", want, kp_context_message(*out));
        fflush(stdout);
        exit(77);
    }
    return KP_OK;
}

kp_status kpt_run(kp_context *ctx, kpt_path path, const char *text, const char *const *aliases,
                  size_t n_aliases, kp_dtype dtype, const kpt_arg *args, size_t n_args,
                  int64_t out_rows, int64_t out_dim, double *out, int64_t out_index_dim,
                  int64_t *out_index, const kp_exec_options *opt) {
    kp_status st = KP_OK;
    void **bufs = calloc(n_args ? n_args : 1, sizeof(void *));
    kp_array *arr = calloc(n_args ? n_args : 1, sizeof(kp_array));
    size_t n_out = (size_t)(out_rows * out_dim), n_idx = (size_t)(out_rows * out_index_dim);
    void *obuf = NULL;
    int64_t *ibuf = NULL;
    kp_array oarr, iarr;
    kp_formula *f = NULL;
    kp_plan *plan = NULL;

    memset(&oarr, 0, sizeof oarr);
    memset(&iarr, 0, sizeof iarr);
    if (!bufs || !arr) {
        st = KP_ERR_OOM;
        goto done;
    }
    for (size_t k = 0; k < n_args; k++) {
        size_t n = (size_t)((args[k].rows < 0 ? 1 : args[k].rows) * args[k].dim);
        bufs[k] = kpt_to_dtype(args[k].data, n, dtype);
        if (args[k].rows < 0)
            arr[k] = kp_array_1d(bufs[k], dtype, args[k].dim);
        else
            arr[k] = kp_array_2d(bufs[k], dtype, args[k].rows, args[k].dim);
    }
    if (out) {
        double sentinel = 1234.5;
        obuf = kpt_alloc_dtype(n_out, dtype);
        for (size_t k = 0; k < n_out; k++) {
            if (dtype == KP_FLOAT32)
                ((float *)obuf)[k] = (float)sentinel;
            else
                ((double *)obuf)[k] = sentinel;
        }
        oarr = kp_array_2d(obuf, dtype, out_rows, out_dim);
    }
    if (out_index) {
        ibuf = malloc((n_idx ? n_idx : 1) * sizeof(int64_t));
        for (size_t k = 0; k < n_idx; k++) ibuf[k] = -777;
        iarr = kp_array_2d(ibuf, KP_INT64, out_rows, out_index_dim);
    }
    if (path == KPT_VIA_REDUCE) {
        st = kp_reduce(ctx, text, aliases, n_aliases, dtype, arr, n_args, out ? &oarr : NULL,
                       out_index ? &iarr : NULL);
    } else {
        st = kp_formula_parse(ctx, text, aliases, n_aliases, &f);
        if (st == KP_OK) st = kp_plan_new(ctx, f, dtype, &plan);
        if (st == KP_OK)
            st = kp_plan_exec(plan, arr, n_args, out ? &oarr : NULL, out_index ? &iarr : NULL,
                              opt);
    }
    if (out) kpt_from_dtype(obuf, dtype, n_out, out);
    if (out_index && n_idx) memcpy(out_index, ibuf, n_idx * sizeof(int64_t));
done:
    kp_plan_free(plan);
    kp_formula_free(f);
    if (bufs)
        for (size_t k = 0; k < n_args; k++) free(bufs[k]);
    free(bufs);
    free(arr);
    free(obuf);
    free(ibuf);
    return st;
}
