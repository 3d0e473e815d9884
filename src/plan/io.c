/* io.c — storage dtypes: float16 converted, complex viewed as reals (io.h). */
#include "plan/io.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/half.h"
#include "plan/plan_internal.h"

const char *kp__dtype_name(kp_dtype d) {
    const char *name = kp_dtype_name(d);
    return name ? name : "unknown dtype";
}

size_t kp__dtype_size(kp_dtype d) {
    switch (d) {
    case KP_FLOAT16: return 2;
    case KP_FLOAT32: return 4;
    case KP_FLOAT64:
    case KP_INT64:
    case KP_COMPLEX64: return 8;
    case KP_COMPLEX128: return 16;
    }
    return 0;
}

int kp__dtype_compute(kp_dtype d) {
    switch (d) {
    case KP_FLOAT32:
    case KP_FLOAT16:
    case KP_COMPLEX64: return KP_FLOAT32;
    case KP_FLOAT64:
    case KP_COMPLEX128: return KP_FLOAT64;
    case KP_INT64: break;
    }
    return -1;
}

/* Whether some formula of plan reads argument k. */
static int arg_used(const kp_plan *plan, size_t k) {
    if (!plan->nparts) return plan->args[k].used;
    for (int p = 0; p < plan->nparts; p++)
        if ((int)k < plan->parts[p]->nargs && plan->parts[p]->args[k].used) return 1;
    return 0;
}

/* A complex array as reals: last extent doubled, other strides doubled. */
kp_status kp__complex_view(kp_context *ctx, const kp_array *a, kp_dtype real, kp_array *v, const char *what) {
    if (a->ndim < 1 || a->ndim > KP_MAX_DIMS)
        return kp__fail(ctx, KP_ERR_SHAPE, "%s: ndim must be in [1, %d], got %d", what, KP_MAX_DIMS, a->ndim);
    int last = a->ndim - 1;
    if (a->shape[last] != 1 && a->strides[last] != 1)
        return kp__fail(ctx, KP_ERR_SHAPE,
                        "%s: a complex array is read as interleaved reals, so its last dimension needs stride 1 "
                        "(got %lld)",
                        what, (long long)a->strides[last]);
    *v = *a;
    v->dtype = real;
    for (int d = 0; d < a->ndim; d++)
        if (__builtin_mul_overflow(a->strides[d], 2, &v->strides[d]) ||
            (d == last && __builtin_mul_overflow(a->shape[d], 2, &v->shape[d])))
            return kp__fail(ctx, KP_ERR_TOO_LARGE, "%s: shape or strides overflow as reals", what);
    v->strides[last] = 1;
    return KP_OK;
}

/* Extents to visit: a dimension of stride 0 repeats one element, visited once. */
static kp_status walk_shape(kp_context *ctx, const kp_array *a, int64_t *ext, int64_t *count, const char *what) {
    if (a->ndim < 1 || a->ndim > KP_MAX_DIMS)
        return kp__fail(ctx, KP_ERR_SHAPE, "%s: ndim must be in [1, %d], got %d", what, KP_MAX_DIMS, a->ndim);
    *count = 1;
    for (int d = 0; d < a->ndim; d++) {
        if (a->shape[d] < 0) return kp__fail(ctx, KP_ERR_SHAPE, "%s: negative extent %lld", what, (long long)a->shape[d]);
        ext[d] = a->strides[d] == 0 && a->shape[d] > 0 ? 1 : a->shape[d];
        if (!kp__mul_size(*count, ext[d], count)) return kp__fail(ctx, KP_ERR_TOO_LARGE, "%s: too many elements", what);
    }
    if (*count > 0 && !a->data) return kp__fail(ctx, KP_ERR_NULL, "%s: data is NULL", what);
    if (a->device != KP_DEVICE_CPU) return kp__fail(ctx, KP_ERR_ARGUMENT, "%s: unknown device %d", what, (int)a->device);
    return KP_OK;
}

/* Copies between the float16 array h (its strides) and the float32 buffer f
 * (contiguous over ext, stride 0 where h broadcasts), in direction to_half. */
static void convert(kp_array *h, float *f, const int64_t *ext, int to_half) {
    int nd = h->ndim;
    int64_t idx[KP_MAX_DIMS] = {0}, total = 1;
    for (int d = 0; d < nd; d++) total *= ext[d];
    uint16_t *hp = h->data;
    for (int64_t n = 0; n < total; n++) {
        int64_t off = 0;
        for (int d = 0; d < nd; d++) off += idx[d] * h->strides[d];
        if (to_half) hp[off] = kp__float_to_half(f[n]);
        else f[n] = kp__half_to_float(hp[off]);
        for (int d = nd - 1; d >= 0 && ++idx[d] == ext[d]; d--) idx[d] = 0;
    }
}

/* The float32 scratch descriptor of float16 array a, its values read unless out. */
static kp_status half_scratch(kp_context *ctx, const kp_array *a, int out, kp_array *v, void **scratch,
                              const char *what) {
    int64_t ext[KP_MAX_DIMS], count;
    kp_status st = walk_shape(ctx, a, ext, &count, what);
    if (st != KP_OK) return st;
    if (count > INT64_MAX / 4) return kp__fail(ctx, KP_ERR_TOO_LARGE, "%s: too many elements", what);
    float *f = kp__alloc(ctx, (size_t)count * sizeof(float));
    if (!f) return kp__fail(ctx, KP_ERR_OOM, "%s: out of memory for its float32 copy", what);
    *v = *a;
    v->dtype = KP_FLOAT32;
    v->data = f;
    int64_t stride = 1;
    for (int d = a->ndim - 1; d >= 0; d--) {
        v->strides[d] = ext[d] == 1 && a->shape[d] != 1 ? 0 : stride;
        stride *= ext[d];
    }
    if (!out) convert((kp_array *)(uintptr_t)a, f, ext, 0);
    *scratch = f;
    return KP_OK;
}

/* Array a of the call (argument or output), into v if it needs converting. */
static kp_status prepare_one(kp_plan *plan, const kp_array *a, int out, kp_array *v, void **scratch,
                             const char *what) {
    kp_context *ctx = plan->ctx;
    kp_dtype io = plan->io_dtype, comp = plan->dtype;
    *v = *a;
    if (a->dtype == comp) return KP_OK;
    if (a->dtype != io)
        return kp__fail(ctx, KP_ERR_DTYPE, "%s: dtype %s, expected %s or %s", what, kp__dtype_name(a->dtype),
                        kp__dtype_name(io), kp__dtype_name(comp));
    if (io == KP_FLOAT16 && a->device == KP_DEVICE_CUDA) return KP_OK; /* the engine converts (kp_job_arg.half) */
    if (io == KP_FLOAT16) return half_scratch(ctx, a, out, v, scratch, what);
    return kp__complex_view(ctx, a, comp, v, what);
}

kp_status kp__io_begin(kp_plan *plan, const kp_array *args, size_t n_args, kp_array *outs, size_t n_outs, kp_io *io) {
    kp_context *ctx = plan->ctx;
    memset(io, 0, sizeof *io);
    io->ctx = ctx;
    io->args = args;
    io->outs = outs;
    io->n_args = n_args;
    io->n_outs = n_outs;
    if (plan->io_dtype == plan->dtype || (n_args && !args) || (n_outs && !outs))
        return KP_OK; /* nothing to convert; NULL arrays are the plan's checks' to report */
    size_t n = n_args + n_outs;
    io->buf = kp__calloc(ctx, n, sizeof *io->buf);
    io->scratch = kp__calloc(ctx, n, sizeof *io->scratch);
    if (!io->buf || !io->scratch) return kp__io_end(io, kp__fail(ctx, KP_ERR_OOM, "out of memory"));
    kp_status st = KP_OK;
    char what[64];
    for (size_t k = 0; st == KP_OK && k < n; k++) {
        int out = k >= n_args;
        const kp_array *a = out ? &outs[k - n_args] : &args[k];
        if (!out && (k >= (size_t)KP_MAX_ARGS || !arg_used(plan, k))) {
            io->buf[k] = *a;
            continue;
        }
        if (out) snprintf(what, sizeof what, n_outs > 1 ? "output %zu" : "output", k - n_args);
        else snprintf(what, sizeof what, "argument %zu", k);
        st = prepare_one(plan, a, out, &io->buf[k], &io->scratch[k], what);
    }
    if (st != KP_OK) return kp__io_end(io, st);
    io->args = io->buf;
    io->outs = io->buf + n_args;
    io->user_outs = outs;
    return KP_OK;
}

kp_status kp__io_end(kp_io *io, kp_status st) {
    kp_context *ctx = io->ctx;
    size_t n = io->n_args + io->n_outs;
    for (size_t k = 0; io->scratch && k < n; k++) {
        if (!io->scratch[k]) continue;
        if (st == KP_OK && io->user_outs && k >= io->n_args) {
            kp_array *user = &io->user_outs[k - io->n_args];
            int64_t ext[KP_MAX_DIMS];
            for (int d = 0; d < user->ndim; d++)
                ext[d] = user->strides[d] == 0 && user->shape[d] > 0 ? 1 : user->shape[d];
            convert(user, io->scratch[k], ext, 1);
        }
        kp__free(ctx, io->scratch[k]);
    }
    kp__free(ctx, io->scratch);
    kp__free(ctx, io->buf);
    memset(io, 0, sizeof *io);
    io->ctx = ctx;
    return st;
}
