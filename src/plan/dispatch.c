/* dispatch.c — the engine table: kp_context_set_engine, and which engine runs a job. */
#include <stdint.h>
#include <stdlib.h>

#include "core/context.h"
#include "plan/plan_internal.h"

/* Indexed by kp_engine; KP_ENGINE_AUTO is the first engine, in this order,
 * that reads the arrays where they are. */
static const kp_engine_ops *const engines[] = {
    [KP_ENGINE_CPU] = &kp__engine_cpu,
    [KP_ENGINE_OPENCL] = &kp__engine_opencl,
    [KP_ENGINE_CUDA] = &kp__engine_cuda,
};
#define NENGINES (int)(sizeof engines / sizeof engines[0])

kp_status kp_engine_available(kp_context *ctx, kp_engine engine) {
    if (!ctx) return KP_ERR_NULL;
    if (engine == KP_ENGINE_AUTO) return KP_OK;
    if ((int)engine < 0 || (int)engine >= NENGINES || !engines[engine])
        return kp__fail(ctx, KP_ERR_ARGUMENT, "unknown engine %d", (int)engine);
    return engines[engine]->available ? engines[engine]->available(ctx) : KP_OK;
}

kp_status kp_context_set_engine(kp_context *ctx, kp_engine engine) {
    if (!ctx) return KP_ERR_NULL;
    kp_status st = kp_engine_available(ctx, engine);
    if (st == KP_OK) ctx->engine = engine;
    return st;
}

const kp_engine_ops *kp__plan_engine(kp_context *ctx, const kp_job *job) {
    unsigned need = KP_ENGINE_READS(job->device);
    if (ctx->engine == KP_ENGINE_AUTO) {
        for (int e = 0; e < NENGINES; e++)
            if (engines[e] && (engines[e]->devices & need)) return engines[e];
    } else if (engines[ctx->engine]->devices & need) {
        return engines[ctx->engine];
    }
    kp__fail(ctx, KP_ERR_UNSUPPORTED,
             "the arrays are on CUDA device %d, but the %s engine reads host memory only: select "
             "KP_ENGINE_CUDA or KP_ENGINE_AUTO (kp_context_set_engine), or copy them to the host",
             job->device_id, ctx->engine == KP_ENGINE_AUTO ? "AUTO" : engines[ctx->engine]->name);
    return NULL;
}

const kp_states_ops *kp__plan_host_states(void) {
    for (int e = 0; e < NENGINES; e++)
        if (engines[e] && engines[e]->states) return engines[e]->states;
    return NULL; /* not reached: the CPU engine fills them */
}

kp_status kp__run_summing_rows(kp_context *ctx, kp_job *job, int dim, kp_row_runner run, const void *user_data) {
    size_t esz = job->dtype == KP_FLOAT32 ? sizeof(float) : sizeof(double);
    int64_t per_batch, count, bytes;
    if (!kp__mul_size(job->nrows, dim, &per_batch) || !kp__mul_size(per_batch, job->nbatch, &count) ||
        !kp__mul_size(count, (int64_t)esz, &bytes))
        return kp__fail(ctx, KP_ERR_TOO_LARGE, "row-summed output: temporary too large");
    char *tmp = kp__alloc(ctx, (size_t)bytes + 1);
    if (!tmp) return kp__fail(ctx, KP_ERR_OOM, "out of memory for %lld bytes of per-row results", (long long)bytes);
    kp_job_arg user = job->out;
    job->out.base = tmp;
    job->out.row_stride = dim;
    job->out.comp_stride = 1;
    int64_t stride = per_batch;
    for (int d = job->nbatch_dims - 1; d >= 0; d--) {
        job->out.batch_stride[d] = stride;
        stride *= job->batch_shape[d];
    }
    kp_status st = run(ctx, job, user_data);
    for (int64_t b = 0; st == KP_OK && b < job->nbatch; b++) {
        int64_t off = kp__job_batch_offset(job, &user, b);
        for (int c = 0; c < dim; c++) {
            double sum = 0;
            for (int64_t r = 0; r < job->nrows; r++) {
                int64_t at = b * per_batch + r * dim + c;
                sum += job->dtype == KP_FLOAT32 ? (double)((const float *)tmp)[at] : ((const double *)tmp)[at];
            }
            int64_t o = off + c * user.comp_stride;
            if (job->dtype == KP_FLOAT32) ((float *)(uintptr_t)user.base)[o] = (float)sum;
            else ((double *)(uintptr_t)user.base)[o] = sum;
        }
    }
    kp__free(ctx, tmp);
    return st;
}

static kp_status run_engine(kp_context *ctx, const kp_job *job, const void *eng) {
    return ((const kp_engine_ops *)eng)->run(ctx, job);
}

kp_status kp__plan_run(kp_plan *plan, const kp_job *job) {
    kp_context *ctx = plan->ctx;
    const kp_engine_ops *eng = kp__plan_engine(ctx, job);
    if (!eng) return KP_ERR_UNSUPPORTED;
    if (job->device != KP_DEVICE_CPU || !job->sum_rows_dim) return eng->run(ctx, job);
    kp_job copy = *job; /* host arrays: the rows are summed here, on the host */
    copy.sum_rows_dim = 0;
    return kp__run_summing_rows(ctx, &copy, job->sum_rows_dim, run_engine, eng);
}
