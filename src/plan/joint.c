/* joint.c — joint plans: several Sum reductions of the same arguments in one pass over the pairs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "plan/io.h"
#include "plan/plan_internal.h"

static int same_arguments(const kp_formula *a, const kp_formula *b) {
    if (a->nargs != b->nargs) return 0;
    for (int k = 0; k < a->nargs; k++)
        if (a->args[k].used && b->args[k].used &&
            (a->args[k].cat != b->args[k].cat || a->args[k].dim != b->args[k].dim))
            return 0;
    return 1;
}

static int joint_term_allowed(const kp_formula *f) { return f->red == KP_RED_SUM; }

kp_status kp_plan_new_joint(kp_context *ctx, const kp_formula *const *fs, size_t n, kp_dtype dtype, kp_plan **out) {
    if (!ctx) return KP_ERR_NULL;
    if (!out) return kp__fail(ctx, KP_ERR_NULL, "out is NULL");
    *out = NULL;
    if (!fs) return kp__fail(ctx, KP_ERR_NULL, "formulas is NULL");
    if (n < 1 || n > KP_MAX_JOINT)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "a joint plan takes 1 to %d formulas, got %zu", KP_MAX_JOINT, n);
    for (size_t k = 0; k < n; k++) {
        if (!fs[k]) return kp__fail(ctx, KP_ERR_NULL, "formula %zu is NULL", k);
        if (fs[k]->ctx != ctx) /* lowered in its context's node store */
            return kp__fail(ctx, KP_ERR_ARGUMENT, "formula %zu was made in another context: use that context", k);
        if (!same_arguments(fs[0], fs[k]))
            return kp__fail(ctx, KP_ERR_ARGUMENT,
                            "formula %zu does not take the same arguments as formula 0 (number, categories, dimensions)",
                            k);
        if (kp_formula_out_index_dim(fs[k]))
            return kp__fail(ctx, KP_ERR_ARGUMENT,
                            "formula %zu writes indices (%s): a joint plan holds reductions with values only", k,
                            kp__reduction_name(fs[k]->red));
    }
    kp_plan *p = kp__calloc(ctx, 1, sizeof *p);
    if (!p) return kp__fail(ctx, KP_ERR_OOM, "out of memory");
    p->ctx = ctx;
    kp_status st = KP_OK;
    int fusable = 1;
    for (size_t k = 0; k < n && st == KP_OK; k++) {
        st = kp_plan_new(ctx, fs[k], dtype, &p->parts[k]);
        if (st == KP_OK) p->nparts++;
        fusable &= joint_term_allowed(fs[k]);
    }
    if (st == KP_OK) { /* the parts' dtypes: the compute one, and the storage one calls may use */
        p->dtype = p->parts[0]->dtype;
        p->io_dtype = dtype;
    }
    if (st == KP_OK && fusable) {
        st = kp__lower_joint(fs[0]->ctx, fs, (int)n, &p->prog);
        if (st != KP_OK) st = kp__fail(ctx, st, "%s", kp_context_message(fs[0]->ctx));
        p->fusable = st == KP_OK;
    }
    if (st != KP_OK) {
        kp_plan_free(p);
        return st;
    }
    p->nargs = fs[0]->nargs;
    *out = p;
    return KP_OK;
}

/* Builds the joint job from the parts' validated jobs; 0 if no joint pass can
 * take this call (formulas it cannot fuse, batches, device arrays). */
static int joint_job(const kp_plan *plan, const kp_job *jobs, kp_joint_job *jj) {
    if (!plan->fusable || jobs[0].prog->exact) return 0; /* exact sums: the formulas one by one */
    kp_job_arg *room = jj->job.args; /* the joint job's own: the parts' arguments gather there */
    memset(jj, 0, sizeof *jj);
    jj->job = jobs[0];
    jj->job.args = room;
    memset(room, 0, (size_t)plan->nargs * sizeof *room);
    jj->job.prog = &plan->prog;
    for (int k = 0; k < plan->nparts; k++) {
        const kp_job *j = &jobs[k];
        if (j->device != KP_DEVICE_CPU || j->nbatch != 1 || j->nbatch_dims != 0) return 0;
        for (int a = 0; a < j->nargs; a++)
            if (j->args[a].base) jj->job.args[a] = j->args[a];
    }
    int first_axis = plan->parts[0]->prog.axis;
    jj->job.nrows = first_axis == 1 ? jobs[0].nrows : jobs[0].ncols; /* N: i points */
    jj->job.ncols = first_axis == 1 ? jobs[0].ncols : jobs[0].nrows; /* M: j points */
    jj->job.sum_rows_dim = 0;
    const kp_program *prog = &plan->prog;
    for (int side = 0; side < 2; side++)
        for (int t = 0; t < prog->nterms[side]; t++) jj->out[side][t] = jobs[prog->terms[side][t].formula].out;
    return 1;
}

/* Parameter gradients (their rows summed: kp_formula_sums_rows) join the pass
 * as per-row terms written into a temporary, whose rows are then summed in
 * double, in row order, as an ordinary plan sums them (plan.c). tmp[k]: formula
 * k's temporary, NULL for the others. */
static kp_status attach_row_sums(const kp_plan *plan, const kp_job *jobs, kp_joint_job *jj, void **tmp) {
    size_t esz = plan->dtype == KP_FLOAT32 ? sizeof(float) : sizeof(double);
    const kp_program *prog = &plan->prog;
    for (int side = 0; side < 2; side++)
        for (int t = 0; t < prog->nterms[side]; t++) {
            int f = prog->terms[side][t].formula, dim = prog->terms[side][t].dim;
            if (!plan->parts[f]->sum_rows) continue;
            int64_t rows = jobs[f].nrows, count;
            if (!kp__mul_size(rows, dim, &count) || !kp__mul_size(count, (int64_t)esz, &count))
                return kp__fail(plan->ctx, KP_ERR_TOO_LARGE, "formula %d: row-summed output: temporary too large", f);
            tmp[f] = kp__alloc(plan->ctx, (size_t)count + 1);
            if (!tmp[f])
                return kp__fail(plan->ctx, KP_ERR_OOM, "formula %d: out of memory for %lld bytes of per-row results", f,
                                (long long)count);
            memset(&jj->out[side][t], 0, sizeof jj->out[side][t]);
            jj->out[side][t].base = tmp[f];
            jj->out[side][t].row_stride = dim;
            jj->out[side][t].comp_stride = 1;
        }
    return KP_OK;
}

static void finish_row_sums(const kp_plan *plan, const kp_job *jobs, void *const *tmp) {
    for (int f = 0; f < plan->nparts; f++) {
        if (!tmp[f]) continue;
        const kp_job_arg *o = &jobs[f].out;
        int dim = plan->parts[f]->out_dim;
        for (int c = 0; c < dim; c++) {
            double sum = 0;
            for (int64_t r = 0; r < jobs[f].nrows; r++)
                sum += plan->dtype == KP_FLOAT32 ? (double)((const float *)tmp[f])[r * dim + c]
                                                 : ((const double *)tmp[f])[r * dim + c];
            if (plan->dtype == KP_FLOAT32) ((float *)(uintptr_t)o->base)[c * o->comp_stride] = (float)sum;
            else ((double *)(uintptr_t)o->base)[c * o->comp_stride] = sum;
        }
    }
}

static kp_status exec_joint(kp_plan *plan, const kp_array *args, size_t n_args, kp_array *outs,
                            const kp_exec_options *options);

kp_status kp_plan_exec_joint(kp_plan *plan, const kp_array *args, size_t n_args, kp_array *outs, size_t n_outs,
                             const kp_exec_options *options) {
    if (!plan) return KP_ERR_NULL;
    kp_context *ctx = plan->ctx;
    if (!plan->nparts) return kp__fail(ctx, KP_ERR_ARGUMENT, "not a joint plan: run it with kp_plan_exec");
    if (n_outs != (size_t)plan->nparts)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "the joint plan has %d formulas, got %zu outputs", plan->nparts, n_outs);
    if (!outs) return kp__fail(ctx, KP_ERR_NULL, "outs is NULL");
    kp_io io;
    kp_status st = kp__io_begin(plan, args, n_args, outs, n_outs, &io);
    if (st != KP_OK) return st;
    return kp__io_end(&io, exec_joint(plan, io.args, n_args, io.outs, options));
}

static kp_status exec_joint(kp_plan *plan, const kp_array *args, size_t n_args, kp_array *outs,
                            const kp_exec_options *options) {
    kp_context *ctx = plan->ctx;
    kp_job *jobs = kp__jobs_new(ctx, plan->nparts, plan->nargs);
    /* the joint job's own arguments follow it (kp_joint_job's size: a multiple of 8) */
    kp_joint_job *jj = kp__alloc(ctx, sizeof *jj + (size_t)(plan->nargs > 0 ? plan->nargs : 1) * sizeof(kp_job_arg));
    kp_status st = jobs && jj ? KP_OK : kp__fail(ctx, KP_ERR_OOM, "out of memory");
    if (jj) jj->job.args = (kp_job_arg *)(jj + 1);
    for (int k = 0; st == KP_OK && k < plan->nparts; k++) {
        st = kp__plan_prepare(plan->parts[k], args, n_args, &outs[k], NULL, options, &jobs[k]);
        if (st != KP_OK) kp__prefix_message(ctx, "formula %d: ", k);
    }
    /* The formulas share their arguments, so they agree on N and M unless a
     * size comes from the options or the outputs alone. */
    int64_t N = -1, M = -1;
    for (int k = 0; st == KP_OK && k < plan->nparts; k++) {
        int axis = plan->parts[k]->prog.axis;
        int64_t n = axis == 1 ? jobs[k].nrows : jobs[k].ncols, m = axis == 1 ? jobs[k].ncols : jobs[k].nrows;
        if ((N >= 0 && n != N) || (M >= 0 && m != M))
            st = kp__fail(ctx, KP_ERR_SHAPE, "formula %d: %lld i points and %lld j points, but formula 0 has %lld and %lld",
                          k, (long long)n, (long long)m, (long long)N, (long long)M);
        N = n;
        M = m;
    }
    int joint_done = 0;
    int sparse = 0; /* block-sparse ranges: the joint pass walks every pair, the formulas one by one do not */
    for (int k = 0; st == KP_OK && k < plan->nparts; k++) sparse |= jobs[k].ranges.rows != NULL;
    if (st == KP_OK && !sparse && joint_job(plan, jobs, jj)) {
        const kp_engine_ops *eng = kp__plan_engine(ctx, &jj->job);
        if (eng && eng->run_joint) {
            void *tmp[KP_MAX_JOINT] = {NULL};
            st = attach_row_sums(plan, jobs, jj, tmp);
            if (st == KP_OK) st = eng->run_joint(ctx, jj);
            joint_done = st != KP_ERR_UNSUPPORTED; /* else the engine declined these sizes */
            if (st == KP_ERR_UNSUPPORTED) st = KP_OK;
            if (st == KP_OK && joint_done) finish_row_sums(plan, jobs, tmp);
            for (int k = 0; k < plan->nparts; k++) kp__free(ctx, tmp[k]);
        }
    }
    for (int k = 0; st == KP_OK && !joint_done && k < plan->nparts; k++) { /* the calls already validated */
        st = kp__plan_run(plan->parts[k], &jobs[k]);
        if (st != KP_OK) kp__prefix_message(ctx, "formula %d: ", k);
    }
    kp__free(ctx, jobs);
    kp__free(ctx, jj);
    return st;
}
