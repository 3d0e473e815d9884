/*
 * io.h — storage dtypes (kp.h's kp_dtype): how a call's arrays of a plan's
 * storage dtype reach the float32 / float64 plan underneath.
 *
 * KP_COMPLEX64 / KP_COMPLEX128 arrays are reinterpreted in place as float32 /
 * float64 arrays with twice the last extent (descriptors only, no copy, any
 * device). KP_FLOAT16 host arrays are converted to float32 scratch through
 * the context's allocator before the call (O(N + M)), float16 outputs are
 * computed into float32 scratch and rounded into the caller's arrays after
 * it. KP_FLOAT16 CUDA device arrays pass unchanged: the plan marks them
 * (kp_job_arg.half) and the CUDA engine converts them on the device with the
 * same conversions (device/half.h, gpu/cuda_half.h). Engines therefore see
 * float32 / float64 arrays only, but for those device arrays.
 */
#ifndef KP_PLAN_IO_H
#define KP_PLAN_IO_H

#include <stddef.h>

#include "kp.h"

struct kp_plan;

/* Name ("float16") and element size in bytes of a dtype; "unknown dtype" / 0. */
const char *kp__dtype_name(kp_dtype d);
size_t kp__dtype_size(kp_dtype d);
/* The dtype a plan of storage dtype d computes in (d itself for float32 /
 * float64); -1 for a dtype no plan takes. */
int kp__dtype_compute(kp_dtype d);

/* v: complex array a (KP_COMPLEX64/128) as an array of dtype real with twice
 * its last extent; KP_ERR_SHAPE when its last stride is not 1 (unless the
 * extent is 1), KP_ERR_TOO_LARGE on overflow. No copy. */
kp_status kp__complex_view(kp_context *ctx, const kp_array *a, kp_dtype real, kp_array *v, const char *what);

typedef struct kp_io {
    kp_context *ctx;
    const kp_array *args; /* what the plan checks and the engines read */
    kp_array *outs;
    size_t n_args, n_outs;
    kp_array *buf;       /* n_args + n_outs converted descriptors (NULL: none needed) */
    kp_array *user_outs; /* the caller's outputs, written back at the end */
    void **scratch;      /* n_args + n_outs float16 scratch buffers (NULL entries: none) */
} kp_io;

/* Prepares a call of plan: io->args and io->outs describe args and the n_outs
 * value outputs outs (NULL when n_outs is 0) in the plan's compute dtype.
 * Arrays already of the compute dtype pass unchanged; arguments the plan does
 * not read are not looked at. Errors (message in the plan's context):
 * KP_ERR_DTYPE for a dtype the plan does not take, KP_ERR_SHAPE, KP_ERR_NULL,
 * KP_ERR_TOO_LARGE, KP_ERR_OOM, KP_ERR_ARGUMENT (an unknown device).
 * On failure nothing is left to free. */
kp_status kp__io_begin(struct kp_plan *plan, const kp_array *args, size_t n_args, kp_array *outs, size_t n_outs,
                       kp_io *io);
/* Ends the call: when st is KP_OK, rounds float16 outputs into the caller's
 * arrays; frees the scratch. Returns st. */
kp_status kp__io_end(kp_io *io, kp_status st);

#endif
