/*
 * agree.c — errors that reach every rank. A collective call in which one rank
 * fails and returns early would leave the others waiting forever in the next
 * collective; so every step that can fail ends in kp__mpi_agree, which every
 * rank reaches, and all ranks leave with the first failing rank's status.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mpi/mpi_internal.h"

kp_status kp__mpi_fail(const kp_mpi_call *c, kp_status st, const char *fmt, ...) {
    char msg[KP_MPI_MESSAGE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->ctx) kp_context_set_error(c->ctx, st, msg);
    return st;
}

kp_status kp__mpi_check(const kp_mpi_call *c, int rc, const char *what) {
    if (rc == MPI_SUCCESS) return KP_OK;
    char err[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, err, &len) != MPI_SUCCESS) snprintf(err, sizeof err, "MPI error %d", rc);
    return kp__mpi_fail(c, KP_ERR_INTERNAL, "%s failed: %s", what, err);
}

kp_status kp__mpi_agree(const kp_mpi_call *c, kp_status st) {
    int mine = st == KP_OK ? c->size : c->rank, first = c->size;
    if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, c->comm) != MPI_SUCCESS)
        return st != KP_OK ? st : kp__mpi_fail(c, KP_ERR_INTERNAL, "MPI_Allreduce failed while agreeing on errors");
    if (first == c->size) return KP_OK;
    struct {
        int status;
        char message[KP_MPI_MESSAGE];
    } what;
    memset(&what, 0, sizeof what);
    if (c->rank == first) {
        what.status = (int)st;
        snprintf(what.message, sizeof what.message, "%s",
                 c->ctx ? kp_context_message(c->ctx) : "plan is NULL");
    }
    if (MPI_Bcast(&what, (int)sizeof what, MPI_BYTE, first, c->comm) != MPI_SUCCESS)
        return kp__mpi_fail(c, KP_ERR_INTERNAL, "MPI_Bcast failed while agreeing on errors");
    char msg[KP_MPI_MESSAGE + 32];
    snprintf(msg, sizeof msg, "rank %d: %s", first, what.message);
    if (c->ctx) kp_context_set_error(c->ctx, (kp_status)what.status, msg);
    return (kp_status)what.status;
}

/* Signature slots per argument: dtype, ndim, device, the extents. */
#define SIG_PER_ARG (3 + KP_MAX_DIMS)
#define SIG_HEAD 5
#define SIG_LEN (SIG_HEAD + KP_MAX_ARGS * SIG_PER_ARG)

static int is_split(const kp_mpi_call *c, kp_var_category cat) {
    return cat == KP_VAR_I || (cat == KP_VAR_J && c->layout == KP_MPI_RING);
}

/* What must be equal on every rank; a split variable's row count is -1. */
static void signature(const kp_mpi_call *c, int64_t *sig) {
    for (int k = 0; k < SIG_LEN; k++) sig[k] = -2;
    sig[0] = c->layout;
    sig[1] = (int64_t)c->nargs;
    sig[2] = c->plan ? kp_plan_num_args(c->plan) : -1;
    sig[3] = c->axis;
    sig[4] = (int64_t)kp__mpi_ranges_hash(c);
    for (size_t k = 0; c->args && k < c->nargs && k < KP_MAX_ARGS; k++) {
        const kp_array *a = &c->args[k];
        kp_var_category cat = KP_VAR_PARAM;
        int used = 1;
        if (c->plan && kp_plan_arg(c->plan, (int)k, &cat, NULL, &used) != KP_OK) continue;
        if (!used) continue;
        int64_t *s = sig + SIG_HEAD + k * SIG_PER_ARG;
        s[0] = a->dtype;
        s[1] = a->ndim;
        s[2] = a->device;
        for (int d = 0; d < a->ndim && d < KP_MAX_DIMS; d++)
            s[3 + d] = (is_split(c, cat) && d == a->ndim - 2) ? -1 : a->shape[d];
    }
}

static const char *slot_name(int slot, int *dim) {
    *dim = slot - 3;
    return slot == 0 ? "dtype" : slot == 1 ? "number of dimensions" : slot == 2 ? "device" : "extent";
}

kp_status kp__mpi_same_shapes(const kp_mpi_call *c) {
    int64_t sig[SIG_LEN], lo[SIG_LEN], hi[SIG_LEN];
    signature(c, sig);
    if (MPI_Allreduce(sig, lo, SIG_LEN, MPI_INT64_T, MPI_MIN, c->comm) != MPI_SUCCESS ||
        MPI_Allreduce(sig, hi, SIG_LEN, MPI_INT64_T, MPI_MAX, c->comm) != MPI_SUCCESS)
        return kp__mpi_agree(c, kp__mpi_fail(c, KP_ERR_INTERNAL, "MPI_Allreduce failed while comparing arguments"));
    for (int k = 0; k < SIG_LEN; k++) {
        if (lo[k] == hi[k]) continue;
        if (k < SIG_HEAD) {
            const char *what[] = {"layout", "number of arguments", "plan's number of arguments", "plan's axis"};
            if (k == 4)
                return kp__mpi_fail(c, KP_ERR_ARGUMENT,
                                    "the ranks disagree on the ranges (%s, or ranges on some ranks only): pass the "
                                    "ranges of the whole problem, the same on every rank",
                                    c->axis == 1 ? "ranges_i, slices_i, redranges_j"
                                                 : "ranges_j, slices_j, redranges_i");
            return kp__mpi_fail(c, KP_ERR_ARGUMENT, "the ranks disagree on the %s (from %lld to %lld)", what[k],
                                (long long)lo[k], (long long)hi[k]);
        }
        int arg = (k - SIG_HEAD) / SIG_PER_ARG, slot = (k - SIG_HEAD) % SIG_PER_ARG, dim;
        const char *name = slot_name(slot, &dim);
        if (slot >= 3)
            return kp__mpi_fail(c, KP_ERR_ARGUMENT,
                                "argument %d: the ranks disagree on its %s of dimension %d (from %lld to %lld); only "
                                "the rows of split variables may differ",
                                arg, name, dim, (long long)lo[k], (long long)hi[k]);
        return kp__mpi_fail(c, KP_ERR_ARGUMENT, "argument %d: the ranks disagree on its %s (from %lld to %lld)", arg,
                            name, (long long)lo[k], (long long)hi[k]);
    }
    return KP_OK;
}
