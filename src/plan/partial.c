/*
 * partial.c — partial reduction states (kp.h "partial reduction states"):
 * the state buffer's header and layout, argument checks, and the calls that
 * fold, merge and finalize through the engine table.
 *
 * A state buffer is a 64-byte header, then the reals of nbatch x nrows row
 * states, then their int64 indices (the per-row layout of plan/reduction.h).
 * The header names the plan's reduction and shape, so a buffer of another
 * plan or shape is refused instead of misread.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "plan/exact_sum.h"
#include "plan/io.h"
#include "plan/plan_internal.h"
#include "plan/reduction.h"

typedef struct state_header {
    char magic[8]; /* "kpstate" */
    int32_t version, dtype;
    int64_t nbatch, nrows;
    int32_t nreal, nidx;
    int64_t ncols;    /* points folded in */
    uint64_t tag;       /* the reduction: family, axis, widths, K */
    int64_t row_offset; /* global index of the first row */
} state_header;
_Static_assert(sizeof(state_header) == KP_STATE_HEADER_BYTES, "the documented header size");

static const char state_magic[8] = "kpstate";

/* The reduction of plan's calls under the context's sum scheme. */
static uint64_t plan_tag(const kp_plan *plan) {
    const kp_program *p = kp__plan_program(plan);
    return (uint64_t)p->red | (uint64_t)(p->axis | p->exact << 4) << 8 | (uint64_t)(uint32_t)p->fdim << 16 |
           (uint64_t)(uint32_t)p->red_g.dim << 32 | (uint64_t)(uint32_t)p->K << 48;
}

static kp_status check_plan(kp_plan *plan) {
    if (!plan) return KP_ERR_NULL;
    if (plan->nparts)
        return kp__fail(plan->ctx, KP_ERR_ARGUMENT, "partial states of a joint plan: run its formulas' own plans");
    return KP_OK;
}

/* What a call does with the arrays it prepares. */
typedef enum prep_use { FOR_INFO, FOR_FOLD, FOR_FINALIZE } prep_use;

/* Validates a call's arrays as kp_plan_exec does, but without outputs (unless
 * given) and without requiring K reduced points: a part may hold fewer.
 * Block-sparse ranges select the pairs a part folds (FOR_FOLD); the layout
 * and the finalization of states do not depend on them, so the other calls
 * leave them out rather than check them against points they do not read. */

static kp_status prepare(kp_plan *plan, const kp_array *args, size_t n_args, kp_array *out, kp_array *out_index,
                         const kp_exec_options *options, prep_use use, kp_job *job) {
    kp_context *ctx = plan->ctx;
    const int fold = use == FOR_FOLD;
    kp_exec_options opt;
    kp_status st = kp__exec_options_read(ctx, options, &opt);
    if (st != KP_OK) return st;
    if (!fold) opt.ranges = NULL;
    static char dummy[8]; /* shapes only: the fold never writes outputs */
    kp_array dout, didx;
    if (!out && !out_index) {
        int ndim = 0;
        int64_t shape[KP_MAX_DIMS], ishape[KP_MAX_DIMS];
        if ((st = kp_plan_output_shape(plan, args, n_args, &opt, &ndim, shape, ishape)) != KP_OK) return st;
        memset(&dout, 0, sizeof dout);
        dout.data = dummy;
        dout.dtype = plan->dtype;
        dout.ndim = ndim;
        memcpy(dout.shape, shape, sizeof shape);
        for (size_t k = 0; k < n_args; k++) /* the arguments' device, which the engine must read */
            if (k < (size_t)KP_MAX_ARGS && plan->args[k].used && args[k].device != KP_DEVICE_CPU) {
                dout.device = args[k].device;
                dout.device_id = args[k].device_id;
                break;
            }
        didx = dout;
        didx.dtype = KP_INT64;
        memcpy(didx.shape, ishape, sizeof ishape);
        out = &dout;
        out_index = &didx;
    }
    kp_plan *copy = kp__alloc(ctx, sizeof *copy);
    if (!copy) return kp__fail(ctx, KP_ERR_OOM, "out of memory");
    *copy = *plan;
    copy->prog.K = copy->prog_exact.K = 0; /* K against the part's points: checked at finalize instead */
    st = kp__plan_prepare(copy, args, n_args, out, out_index, &opt, job);
    kp__free(ctx, copy);
    job->prog = kp__plan_program(plan);
    /* Finalize runs on the host, and may read the rows' arguments there. */
    if (st == KP_OK && use == FOR_FINALIZE && job->device != KP_DEVICE_CPU)
        st = kp__fail(ctx, KP_ERR_UNSUPPORTED, "kp_plan_state_finalize runs on the host: it reads host arrays only");
    return st;
}

static kp_status info_of(kp_plan *plan, int64_t nbatch, int64_t nrows, kp_state_info *info) {
    memset(info, 0, sizeof *info);
    kp__state_size(kp__plan_program(plan), &info->nreal, &info->nidx);
    info->nbatch = nbatch;
    info->nrows = nrows;
    info->dtype = plan->dtype;
    int64_t rows, nr, ni, rbytes, ibytes;
    size_t esz = plan->dtype == KP_FLOAT32 ? 4 : 8;
    if (!kp__mul_size(nbatch, nrows, &rows) || !kp__mul_size(rows, info->nreal, &nr) ||
        !kp__mul_size(rows, info->nidx, &ni) || !kp__mul_size(nr, (int64_t)esz, &rbytes) ||
        !kp__mul_size(ni, 8, &ibytes) || rbytes > INT64_MAX / 2 || ibytes > INT64_MAX / 2)
        return kp__fail(plan->ctx, KP_ERR_TOO_LARGE, "state buffer too large");
    info->real_offset = KP_STATE_HEADER_BYTES;
    info->index_offset = info->real_offset + (((size_t)rbytes + 7) & ~(size_t)7);
    info->bytes = info->index_offset + (size_t)ibytes;
    return KP_OK;
}

kp_status kp_plan_state_info(kp_plan *plan, const kp_array *args, size_t n_args, const kp_exec_options *options,
                             kp_state_info *info) {
    kp_status st = check_plan(plan);
    if (st != KP_OK) return st;
    if (!info) return kp__fail(plan->ctx, KP_ERR_NULL, "info is NULL");
    kp_io io;
    if ((st = kp__io_begin(plan, args, n_args, NULL, 0, &io)) != KP_OK) return st;
    kp_job *job = kp__jobs_new(plan->ctx, 1, plan->nargs);
    if (!job) return kp__io_end(&io, kp__fail(plan->ctx, KP_ERR_OOM, "out of memory"));
    st = prepare(plan, io.args, n_args, NULL, NULL, options, FOR_INFO, job);
    if (st == KP_OK) st = info_of(plan, job->nbatch, job->nrows, info);
    kp__free(plan->ctx, job);
    return kp__io_end(&io, st);
}

/* The host monoid of partial states (plan/engine.h), or NULL with a message. */
static const kp_states_ops *host_states(kp_context *ctx) {
    const kp_states_ops *h = kp__plan_host_states();
    if (!h) kp__fail(ctx, KP_ERR_UNSUPPORTED, "no engine of this build handles partial states in host memory");
    return h;
}

kp_status kp_plan_state_init(kp_plan *plan, const kp_state_info *info, void *state) {
    kp_status st = check_plan(plan);
    if (st != KP_OK) return st;
    if (!info || !state) return kp__fail(plan->ctx, KP_ERR_NULL, "%s is NULL", info ? "state" : "info");
    kp_state_info want;
    if (info->nbatch < 0 || info->nrows < 0 || info_of(plan, info->nbatch, info->nrows, &want) != KP_OK || want.bytes != info->bytes ||
        info->dtype != plan->dtype || info->row_offset < 0)
        return kp__fail(plan->ctx, KP_ERR_ARGUMENT, "info does not describe a state of this plan (kp_plan_state_info)");
    state_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, state_magic, sizeof h.magic);
    h.version = 1;
    h.dtype = (int32_t)plan->dtype;
    h.nbatch = info->nbatch;
    h.nrows = info->nrows;
    h.nreal = info->nreal;
    h.nidx = info->nidx;
    h.tag = plan_tag(plan);
    h.row_offset = info->row_offset;
    const kp_states_ops *hs = host_states(plan->ctx);
    if (!hs) return KP_ERR_UNSUPPORTED;
    memset(state, 0, info->bytes); /* the padding too: equal states are equal bytes */
    memcpy(state, &h, sizeof h);
    hs->init(kp__plan_program(plan), plan->dtype, info->nbatch * info->nrows, (char *)state + want.real_offset,
             info->nidx ? (int64_t *)(void *)((char *)state + want.index_offset) : NULL);
    return KP_OK;
}

/* Reads and checks a state's header; *info its layout. rows < 0: any shape. */
static kp_status read_state(kp_plan *plan, const void *state, size_t bytes, const char *what, state_header *h,
                            kp_state_info *info) {
    if (!state) return kp__fail(plan->ctx, KP_ERR_NULL, "%s is NULL", what);
    if (bytes < sizeof *h) return kp__fail(plan->ctx, KP_ERR_ARGUMENT, "%s: %zu bytes, not a state buffer", what, bytes);
    memcpy(h, state, sizeof *h);
    if (memcmp(h->magic, state_magic, sizeof h->magic) != 0 || h->version != 1)
        return kp__fail(plan->ctx, KP_ERR_ARGUMENT, "%s is not a state buffer (kp_plan_state_init makes one)", what);
    if (h->tag != plan_tag(plan) || h->dtype != (int32_t)plan->dtype)
        return kp__fail(plan->ctx, KP_ERR_ARGUMENT,
                        "%s is the state of another reduction, dtype or sum scheme (KP_SUM_EXACT or not)", what);
    if (h->nbatch < 0 || h->nrows < 0) return kp__fail(plan->ctx, KP_ERR_ARGUMENT, "%s: corrupt header", what);
    kp_status st = info_of(plan, h->nbatch, h->nrows, info);
    if (st != KP_OK) return st;
    info->row_offset = h->row_offset;
    if (info->bytes != bytes)
        return kp__fail(plan->ctx, KP_ERR_ARGUMENT, "%s: %zu bytes, but its header describes %zu", what, bytes,
                        info->bytes);
    return KP_OK;
}

static void *reals_of(void *state, const kp_state_info *info) { return (char *)state + info->real_offset; }
static int64_t *indices_of(void *state, const kp_state_info *info) {
    return info->nidx ? (int64_t *)(void *)((char *)state + info->index_offset) : NULL;
}

/* The state matches the job's batches and rows. */
static kp_status check_shape(kp_plan *plan, const state_header *h, const kp_job *job) {
    if (h->nbatch != job->nbatch || h->nrows != job->nrows)
        return kp__fail(plan->ctx, KP_ERR_ARGUMENT,
                        "the state holds %lld batches of %lld rows, the arguments give %lld of %lld",
                        (long long)h->nbatch, (long long)h->nrows, (long long)job->nbatch, (long long)job->nrows);
    return KP_OK;
}

/* An exact sum's bins hold KP_XSUM_MAX_TERMS terms per row (exact_sum.h). */
static kp_status check_terms(kp_plan *plan, int64_t ncols) {
    if (kp__plan_program(plan)->exact && ncols > KP_XSUM_MAX_TERMS)
        return kp__fail(plan->ctx, KP_ERR_TOO_LARGE, "KP_SUM_EXACT sums at most 2^43 terms per row, got %lld",
                        (long long)ncols);
    return KP_OK;
}

kp_status kp_plan_exec_partial(kp_plan *plan, const kp_array *args, size_t n_args, int64_t offset, void *state,
                               size_t bytes, const kp_exec_options *options) {
    kp_status st = check_plan(plan);
    if (st != KP_OK) return st;
    kp_context *ctx = plan->ctx;
    if (offset < 0) return kp__fail(ctx, KP_ERR_ARGUMENT, "offset is %lld, must be >= 0", (long long)offset);
    state_header h;
    kp_state_info info;
    if ((st = read_state(plan, state, bytes, "state", &h, &info)) != KP_OK) return st;
    kp_io io;
    if ((st = kp__io_begin(plan, args, n_args, NULL, 0, &io)) != KP_OK) return st;
    kp_job *job = kp__jobs_new(ctx, 1, plan->nargs);
    if (!job) return kp__io_end(&io, kp__fail(ctx, KP_ERR_OOM, "out of memory"));
    st = prepare(plan, io.args, n_args, NULL, NULL, options, FOR_FOLD, job);
    if (st == KP_OK) st = check_shape(plan, &h, job);
    if (st == KP_OK && __builtin_add_overflow(h.ncols, job->ncols, &h.ncols))
        st = kp__fail(ctx, KP_ERR_TOO_LARGE, "more than 2^63 points folded");
    if (st == KP_OK) st = check_terms(plan, h.ncols);
    const kp_engine_ops *eng = st == KP_OK ? kp__plan_engine(ctx, job) : NULL;
    if (st == KP_OK && !eng) st = KP_ERR_UNSUPPORTED;
    if (st == KP_OK && !eng->run_partial)
        st = kp__fail(ctx, KP_ERR_UNSUPPORTED,
                      "the %s engine does not compute partial reduction states: select KP_ENGINE_CPU, "
                      "KP_ENGINE_OPENCL or KP_ENGINE_CUDA",
                      eng->name);
    if (st == KP_OK) {
        job->row_offset = h.row_offset;
        job->col_offset = offset;
        st = eng->run_partial(ctx, job, offset, reals_of(state, &info), indices_of(state, &info));
    }
    if (st == KP_OK) memcpy(state, &h, sizeof h);
    kp__free(ctx, job);
    return kp__io_end(&io, st);
}

kp_status kp_plan_state_merge(kp_plan *plan, void *a, const void *b, size_t bytes) {
    kp_status st = check_plan(plan);
    if (st != KP_OK) return st;
    state_header ha, hb;
    kp_state_info ia, ib;
    if ((st = read_state(plan, a, bytes, "a", &ha, &ia)) != KP_OK) return st;
    if ((st = read_state(plan, b, bytes, "b", &hb, &ib)) != KP_OK) return st;
    if (ha.nbatch != hb.nbatch || ha.nrows != hb.nrows || ha.row_offset != hb.row_offset)
        return kp__fail(plan->ctx, KP_ERR_ARGUMENT, "a and b hold different rows or batches");
    if (__builtin_add_overflow(ha.ncols, hb.ncols, &ha.ncols))
        return kp__fail(plan->ctx, KP_ERR_TOO_LARGE, "more than 2^63 points merged");
    if ((st = check_terms(plan, ha.ncols)) != KP_OK) return st;
    const kp_states_ops *hs = host_states(plan->ctx);
    if (!hs) return KP_ERR_UNSUPPORTED;
    hs->merge(kp__plan_program(plan), plan->dtype, ha.nbatch * ha.nrows, reals_of(a, &ia), indices_of(a, &ia),
              reals_of((void *)(uintptr_t)b, &ib), indices_of((void *)(uintptr_t)b, &ib));
    memcpy(a, &ha, sizeof ha);
    return KP_OK;
}

/* The states of a partial call (sreal, then sidx) finalized into a job's outputs. */
typedef struct states_ref {
    const void *sreal;
    const int64_t *sidx;
} states_ref;

static kp_status finalize_states(kp_context *ctx, const kp_job *job, const void *user_data) {
    const states_ref *s = user_data;
    const kp_states_ops *hs = host_states(ctx);
    return hs ? hs->finalize(ctx, job, s->sreal, s->sidx) : KP_ERR_UNSUPPORTED;
}

kp_status kp_plan_state_finalize(kp_plan *plan, const kp_array *args, size_t n_args, const void *state, size_t bytes,
                                 kp_array *out, kp_array *out_index, const kp_exec_options *options) {
    kp_status st = check_plan(plan);
    if (st != KP_OK) return st;
    kp_context *ctx = plan->ctx;
    if (plan->out_dim && !out) return kp__fail(ctx, KP_ERR_NULL, "this reduction writes values: out is NULL");
    if (plan->out_index_dim && !out_index)
        return kp__fail(ctx, KP_ERR_NULL, "this reduction writes indices: out_index is NULL");
    state_header h;
    kp_state_info info;
    if ((st = read_state(plan, state, bytes, "state", &h, &info)) != KP_OK) return st;
    if (plan->prog.K > 0 && plan->prog.K > h.ncols)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "K = %d is larger than the %lld points reduced over", plan->prog.K,
                        (long long)h.ncols);
    kp_io io;
    if ((st = kp__io_begin(plan, args, n_args, out, plan->out_dim ? 1 : 0, &io)) != KP_OK) return st;
    kp_job *job = kp__jobs_new(ctx, 1, plan->nargs);
    if (!job) return kp__io_end(&io, kp__fail(ctx, KP_ERR_OOM, "out of memory"));
    st = prepare(plan, io.args, n_args, io.n_outs ? io.outs : out, out_index, options, FOR_FINALIZE, job);
    if (st == KP_OK) st = check_shape(plan, &h, job);
    if (st == KP_OK) {
        void *s = (void *)(uintptr_t)state;
        job->ncols = h.ncols;
        job->row_offset = h.row_offset;
        states_ref ref = {reals_of(s, &info), indices_of(s, &info)};
        st = job->sum_rows_dim ? kp__run_summing_rows(ctx, job, job->sum_rows_dim, finalize_states, &ref)
                               : finalize_states(ctx, job, &ref);
    }
    kp__free(ctx, job);
    return kp__io_end(&io, st);
}
