/*
 * pack.c — the reduced-axis variables of a rank, packed into one contiguous
 * block (each variable row-major, one after the other, 8-byte aligned) so
 * that they travel around the ring in one message, whatever their strides.
 * Every rank can rebuild a block's descriptors from its own arguments: the
 * ranks agree on everything but the number of points (agree.c).
 */
#include <string.h>

#include "mpi/mpi_internal.h"

/* Bytes of one element of an argument: any dtype a plan takes (kp.h kp_dtype). */
static size_t elem_size(kp_dtype d) {
    switch (d) {
    case KP_FLOAT16: return 2;
    case KP_FLOAT32: return 4;
    case KP_COMPLEX128: return 16;
    case KP_FLOAT64:
    case KP_INT64:
    case KP_COMPLEX64: return 8;
    }
    return 8;
}

/* Used reduced-axis variable? */
static int travels(const kp_mpi_call *c, size_t k) {
    kp_var_category cat;
    int used;
    return kp_plan_arg(c->plan, (int)k, &cat, NULL, &used) == KP_OK && used && cat == c->red_cat;
}

/* Elements of args[k] with npoints rows. */
static size_t count_of(const kp_array *a, int64_t npoints) {
    size_t n = 1;
    for (int d = 0; d < a->ndim; d++) n *= (size_t)(d == a->ndim - 2 ? npoints : a->shape[d]);
    return n;
}

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

size_t kp__mpi_block_bytes(const kp_mpi_call *c, int64_t npoints) {
    size_t bytes = 0;
    for (size_t k = 0; k < c->nargs; k++)
        if (travels(c, k)) bytes += align8(count_of(&c->args[k], npoints) * elem_size(c->args[k].dtype));
    return bytes;
}

int64_t kp__mpi_local_points(const kp_mpi_call *c, kp_var_category cat) {
    for (size_t k = 0; k < c->nargs; k++) {
        kp_var_category kc;
        int used;
        if (kp_plan_arg(c->plan, (int)k, &kc, NULL, &used) == KP_OK && used && kc == cat && c->args[k].ndim >= 2)
            return c->args[k].shape[c->args[k].ndim - 2];
    }
    return -1;
}

/* Copies a strided array into dst, row-major. */
static void pack_one(const kp_array *a, char *dst) {
    size_t es = elem_size(a->dtype), n = count_of(a, a->shape[a->ndim - 2]);
    int64_t idx[KP_MAX_DIMS] = {0};
    const char *src = a->data;
    for (size_t e = 0; e < n; e++) {
        int64_t off = 0;
        for (int d = 0; d < a->ndim; d++) off += idx[d] * a->strides[d];
        memcpy(dst + e * es, src + off * (int64_t)es, es);
        for (int d = a->ndim - 1; d >= 0; d--) {
            if (++idx[d] < a->shape[d]) break;
            idx[d] = 0;
        }
    }
}

void kp__mpi_block_pack(const kp_mpi_call *c, kp_mpi_block *b) {
    size_t at = 0;
    for (size_t k = 0; k < c->nargs; k++) {
        if (!travels(c, k)) continue;
        const kp_array *a = &c->args[k];
        pack_one(a, b->data + at);
        at += align8(count_of(a, a->shape[a->ndim - 2]) * elem_size(a->dtype));
    }
    b->bytes = at;
}

void kp__mpi_block_args(const kp_mpi_call *c, const kp_mpi_block *b, kp_array *out_args) {
    size_t at = 0;
    for (size_t k = 0; k < c->nargs; k++) {
        out_args[k] = c->args[k];
        if (!travels(c, k)) continue;
        kp_array *a = &out_args[k];
        a->shape[a->ndim - 2] = b->npoints;
        *a = kp_array_nd(b->data + at, a->dtype, a->ndim, a->shape);
        at += align8(count_of(a, b->npoints) * elem_size(a->dtype));
    }
}
