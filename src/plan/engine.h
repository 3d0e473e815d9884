/*
 * engine.h — the interface between the plan layer and the engines.
 *
 * plan/ validates a call's arrays and describes the work as a kp_job: base
 * pointers and element strides per argument, sizes, batch shape, settings,
 * and the device the arrays live on. An engine is a kp_engine_ops table; the
 * plan layer picks one by kp_engine (plan/dispatch.c) and calls its slots.
 * Engines include this header (and plan/program.h, plan/reduction.h) and
 * nothing of each other; plan/ includes no engine header. A new engine is
 * one folder, one table, one entry in dispatch.c.
 */
#ifndef KP_PLAN_ENGINE_H
#define KP_PLAN_ENGINE_H

#include "plan/program.h"

/* One array of a job, in elements (not bytes). */
typedef struct kp_job_arg {
    const char *base;                        /* NULL if the position is unused */
    int64_t row_stride, comp_stride;         /* row_stride 0 for parameters */
    int64_t batch_stride[KP_MAX_BATCH_DIMS]; /* 0 broadcasts */
    /* 1: the array holds binary16 values (a float16 plan's CUDA device
     * array, never an index output), which the engine converts to and from
     * the job's float32 on the device, as plan/io.h converts host arrays;
     * 0: values of the job's dtype. Host arrays are always 0. */
    int half;
} kp_job_arg;

/* Block-sparse ranges of a job, the triple of its axis (kp_ranges in kp.h),
 * validated by plan/ranges.c: clusters of output rows (sorted, disjoint, each
 * in one batch), each with its sorted, disjoint list of reduced ranges in the
 * same batch. Indices count flattened (batch, point) rows. rows == NULL: dense. */
typedef struct kp_job_ranges {
    const void *rows;   /* (nclusters, 2) [start, end) of output rows */
    const void *slices; /* (nclusters): end of cluster k's list in cols */
    const void *cols;   /* (n, 2) [start, end) of reduced points */
    int64_t nclusters;
    int index_size; /* 4 or 8 */
} kp_job_ranges;

/* Entry k of an index array of kp_job_ranges. */
static inline int64_t kp__ranges_at(const kp_job_ranges *r, const void *a, int64_t k) {
    return r->index_size == 4 ? (int64_t)((const int32_t *)a)[k] : ((const int64_t *)a)[k];
}

/* One kp_plan_exec call, every array validated. */
typedef struct kp_job {
    const kp_program *prog;
    kp_dtype dtype;
    kp_sum_scheme scheme;
    kp_math_mode math;
    int num_threads;
    int nbatch_dims;
    int64_t batch_shape[KP_MAX_BATCH_DIMS];
    int64_t nbatch; /* product of batch_shape (1 if none) */
    int64_t nrows;  /* output rows */
    int64_t ncols;  /* reduced points */
    int nargs;
    kp_job_arg *args; /* nargs entries, in the job's own block (plan/plan_internal.h kp__jobs_new);
                         copies of a job share them, and engines only read them */
    kp_job_arg out, out_idx; /* base NULL when absent */
    /* Where every array of the call lives: KP_DEVICE_CPU (host memory) or
     * KP_DEVICE_CUDA with its ordinal; stream: the caller's CUstream. */
    kp_device device;
    int device_id;
    void *stream;
    /* > 0: the formula sums its rows (kp_formula_sums_rows), out is one row
     * of this width and the engine writes the sum over the nrows rows. Set
     * only for device arrays; for host arrays the plan layer sums. */
    int sum_rows_dim;
    kp_progress_fn progress; /* kp_exec_options.progress: NULL when unset (CPU engine) */
    void *progress_user;
    /* Global index of the first row and of the first reduced point, what
     * IndexI()/IndexJ() read: 0 but for partial states of a part. */
    int64_t row_offset, col_offset;
    kp_job_ranges ranges; /* kp_exec_options.ranges, this axis's triple; rows NULL: dense */
    /* Engine-private: compiled code the engine attached to its own copy of
     * the job (the CPU engine's kp_jit_kernel); NULL from the plan layer. */
    const void *engine_kernel;
    /* Engine-private: values the engine computed once for the whole run (the
     * CPU engine's COL tiles, cpu/engine.h); NULL from the plan layer. */
    const void *engine_cache;
} kp_job;

/* Element offset of batch b (flat, row-major over job's batch shape) in a. */
static inline int64_t kp__job_batch_offset(const kp_job *job, const kp_job_arg *a, int64_t b) {
    int64_t off = 0;
    for (int d = job->nbatch_dims - 1; d >= 0; d--) {
        off += (b % job->batch_shape[d]) * a->batch_stride[d];
        b /= job->batch_shape[d];
    }
    return off;
}

/* A joint job (kp_plan_exec_joint): every Sum term of a joint program in one
 * pass over the pairs. job.nrows = N (i points), job.ncols = M (j points),
 * one batch, host arrays; out[0][t]: term t of terms[0] (N rows), out[1][t]:
 * term t of terms[1] (M rows). */
typedef struct kp_joint_job {
    kp_job job;
    kp_job_arg out[2][KP_MAX_JOINT];
} kp_joint_job;

/* The monoid of partial states in host memory (plan/reduction.h layout,
 * reals then indices). States live on the host whichever engine folded them,
 * so the plan layer inits, merges and finalizes every engine's states with the
 * first engine of dispatch.c's table that has this table (kp__plan_host_states);
 * an engine that reads host memory provides it. */
typedef struct kp_states_ops {
    /* n row states at the identity. */
    void (*init)(const kp_program *prog, kp_dtype dtype, int64_t n, void *sreal, int64_t *sidx);
    /* a[r] <- a[r] (+) b[r] for the n rows. */
    void (*merge)(const kp_program *prog, kp_dtype dtype, int64_t n, void *a, int64_t *ai, const void *b,
                  const int64_t *bi);
    /* Writes the job's (host) outputs from its nbatch x nrows states;
     * job->ncols: the points folded in. */
    kp_status (*finalize)(kp_context *ctx, const kp_job *job, const void *sreal, const int64_t *sidx);
} kp_states_ops;

/* An engine. */
typedef struct kp_engine_ops {
    /* Named in messages ("the OpenCL engine reads host memory only"). */
    const char *name;
    /* Bit d set: the engine reads arrays of kp_device d. */
    unsigned devices;
    /* KP_OK if the engine can run on this machine, else KP_ERR_UNSUPPORTED
     * with the reason in ctx. Cheap after the first call. NULL: always. */
    kp_status (*available)(kp_context *ctx);
    /* Runs a validated job (its device among `devices`); the message of a
     * failure goes into ctx. */
    kp_status (*run)(kp_context *ctx, const kp_job *job);
    /* Optional (NULL: the plan runs the formulas one by one). Runs a joint
     * job, or returns KP_ERR_UNSUPPORTED without a message when this call's
     * sizes do not suit the joint pass; the choice may depend on the sizes
     * only, never on the thread count. */
    kp_status (*run_joint)(kp_context *ctx, const kp_joint_job *jj);
    /* Optional (NULL: kp_plan_exec_partial is KP_ERR_UNSUPPORTED on this
     * engine). Folds the job's reduced points (global indices offset + j)
     * into nbatch x nrows host states (plan/reduction.h layout, reals then
     * indices), chunk by chunk in increasing order as run does. */
    kp_status (*run_partial)(kp_context *ctx, const kp_job *job, int64_t offset, void *sreal, int64_t *sidx);
    /* The host monoid of partial states (kp_states_ops below); NULL for an
     * engine that does not read host memory. */
    const struct kp_states_ops *states;
} kp_engine_ops;

#define KP_ENGINE_READS(d) (1u << (unsigned)(d))

/* The host monoid of partial states (the first engine's in dispatch.c's table
 * that has one; NULL if none does): the plan layer's merges, and an engine
 * merging its own chunk states, go through it. */
const kp_states_ops *kp__plan_host_states(void);

/* The engines' tables, defined in their folders. */
extern const kp_engine_ops kp__engine_cpu, kp__engine_opencl, kp__engine_cuda;

#endif
