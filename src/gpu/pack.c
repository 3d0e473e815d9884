/* pack.c — see pack.h. */
#include "gpu/pack.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

int kp__gpu_arg_batched(const kp_job *job, const kp_job_arg *a) {
    for (int d = 0; d < job->nbatch_dims; d++)
        if (a->batch_stride[d] != 0 && job->batch_shape[d] > 1) return 1;
    return 0;
}

void *kp__gpu_pack_arg(const kp_job *job, const kp_job_arg *a, int64_t rows, int dim, size_t esz, int64_t *bs) {
    int64_t nb = kp__gpu_arg_batched(job, a) ? job->nbatch : 1;
    int64_t per = rows * dim;
    size_t bytes = (size_t)(nb * per) * esz;
    char *buf = kp__alloc(job->prog->ctx, bytes ? bytes : esz);
    if (!buf) return NULL;
    for (int64_t b = 0; b < nb; b++) {
        const char *base = a->base + kp__job_batch_offset(job, a, b) * (int64_t)esz; /* strides may be negative */
        for (int64_t t = 0; t < rows; t++)
            for (int c = 0; c < dim; c++) {
                int64_t e = t * a->row_stride + c * a->comp_stride;
                memcpy(buf + (size_t)(b * per + t * dim + c) * esz, base + e * (int64_t)esz, esz);
            }
    }
    *bs = nb > 1 ? per : 0;
    return buf;
}

void kp__gpu_unpack_out(const kp_job *job, const kp_job_arg *o, const char *packed, int dim, size_t esz) {
    for (int64_t b = 0; b < job->nbatch; b++) {
        char *base = (char *)(uintptr_t)o->base + kp__job_batch_offset(job, o, b) * (int64_t)esz;
        for (int64_t r = 0; r < job->nrows; r++)
            for (int c = 0; c < dim; c++)
                memcpy(base + (r * o->row_stride + c * o->comp_stride) * (int64_t)esz,
                       packed + (size_t)((b * job->nrows + r) * dim + c) * esz, esz);
    }
}

/* 1 if the batch strides of a are bs times the row-major strides of the batch shape. */
static int batch_is_flat(const kp_job *job, const kp_job_arg *a, int64_t bs) {
    int64_t inner = 1;
    for (int d = job->nbatch_dims - 1; d >= 0; d--) {
        if (job->batch_shape[d] > 1 && a->batch_stride[d] != bs * inner) return 0;
        inner *= job->batch_shape[d];
    }
    return 1;
}

int kp__gpu_arg_is_packed(const kp_job *job, const kp_job_arg *a, int64_t rows, int dim, int64_t *bs) {
    if (dim > 1 && a->comp_stride != 1) return 0;
    if (rows > 1 && a->row_stride != dim) return 0;
    *bs = 0;
    if (!kp__gpu_arg_batched(job, a)) return 1;
    for (int d = job->nbatch_dims - 1; d >= 0; d--) /* the innermost batch dimension that varies */
        if (job->batch_shape[d] > 1) {
            *bs = a->batch_stride[d];
            break;
        }
    return *bs != 0 && batch_is_flat(job, a, *bs);
}

int kp__gpu_out_is_packed(const kp_job *job, const kp_job_arg *o, int dim) {
    if (dim > 1 && o->comp_stride != 1) return 0;
    if (job->nrows > 1 && o->row_stride != dim) return 0;
    return batch_is_flat(job, o, job->nrows * dim);
}
