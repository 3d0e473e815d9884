/*
 * engine.h — the CPU engine's contract with the plan layer.
 *
 * A job is one kp_plan_exec call with every array already validated: base
 * pointers and element strides per argument, sizes, batch shape. The engine
 * splits the work into (batch, block of rows, range of chunks of reduced
 * points), runs it on OpenMP threads, and writes the outputs.
 *
 * Determinism: the reduced axis is cut into fixed chunks of KP_CHUNK points
 * that depend only on its length. Each chunk is reduced from the monoid's
 * identity, and chunk results are merged in chunk order, whether one thread
 * walks all chunks or several threads share them. So every thread count gives
 * bit-identical results.
 */
#ifndef KP_CPU_ENGINE_H
#define KP_CPU_ENGINE_H

#include "plan/program.h"

typedef struct kp_cpu_arg {
    const char *base;                       /* NULL if the position is unused */
    int64_t row_stride, comp_stride;        /* in elements; row_stride 0 for parameters */
    int64_t batch_stride[KP_MAX_BATCH_DIMS]; /* 0 broadcasts */
} kp_cpu_arg;

typedef struct kp_cpu_job {
    const kp_program *prog;
    kp_dtype dtype;
    kp_sum_scheme scheme;
    kp_math_mode math; /* read by the GPU engines only */
    int num_threads;
    int nbatch_dims;
    int64_t batch_shape[KP_MAX_BATCH_DIMS];
    int64_t nbatch; /* product of batch_shape (1 if none) */
    int64_t nrows;  /* output rows */
    int64_t ncols;  /* reduced points */
    int nargs;
    kp_cpu_arg args[KP_MAX_ARGS];
    kp_cpu_arg out, out_idx; /* base NULL when absent */
    kp_progress_fn progress; /* kp_exec_options.progress: NULL when unset */
    void *progress_user;
} kp_cpu_job;

/* The progress of one run (kp_progress_fn): blocks done, calls paced from
 * the calling thread (OpenMP thread 0), cancellation seen by every thread. */
typedef struct kp_cpu_progress {
    const kp_cpu_job *job;
    int64_t done, total;
    int cancelled;
    double next; /* monotonic time of the next call */
} kp_cpu_progress;

void kp__cpu_progress_init(kp_cpu_progress *p, const kp_cpu_job *job, int64_t total);
/* Counts one finished block; on thread 0, calls the callback when due. */
void kp__cpu_progress_tick(kp_cpu_progress *p);
/* Nonzero once the callback asked to stop (always 0 without a callback). */
static inline int kp__cpu_progress_stop(kp_cpu_progress *p) {
    return p->job->progress && __atomic_load_n(&p->cancelled, __ATOMIC_RELAXED);
}
/* After the run: KP_ERR_CANCELLED with a message, or the final call. */
kp_status kp__cpu_progress_end(kp_context *ctx, kp_cpu_progress *p);

kp_status kp__cpu_run(kp_context *ctx, const kp_cpu_job *job);

/* A joint job (kp_plan_exec_joint): the joint program's terms in one pass over
 * the pairs. job.nrows = N (i points), job.ncols = M (j points), one batch.
 * Rows are cut into ngroups fixed groups (a function of the sizes only); each
 * group adds its column terms into its own buffer, and the buffers are merged
 * in group order, so every thread count gives bit-identical results. */
typedef struct kp_cpu_joint_job {
    kp_cpu_job job;
    kp_cpu_arg out[2][KP_MAX_JOINT]; /* outputs of terms[0] (N rows) and terms[1] (M rows) */
    int coldim;                      /* total dimension of the column terms */
    int64_t group_rows;              /* rows per group, a multiple of KP_ROW_BLOCK */
    int64_t ngroups;
    kp_cpu_progress *progress; /* set by kp__cpu_run_joint: counted per block of rows (groups are long) */
} kp_cpu_joint_job;

/* Bytes of column buffers a joint job of these sizes needs (0 if none), or -1 on overflow. */
int64_t kp__cpu_joint_buffer_bytes(const kp_cpu_joint_job *jj, size_t real_size);
kp_status kp__cpu_run_joint(kp_context *ctx, kp_cpu_joint_job *jj);

/* What a kernel build (one dtype x one ISA) provides; see kernel_impl.h. */
typedef struct kp_cpu_kernels {
    size_t real_size;
    int tile;
    /* State sizes per output row (reals and int64 indices). */
    void (*state_size)(const kp_program *prog, int *nreal, int *nidx);
    /* Reduces rows [r0,r1) of batch b over chunks [ch0,ch1). With finalize set,
     * writes the outputs; else stores the chunk's state in (sreal, sidx). */
    void (*process)(const kp_cpu_job *job, int64_t b, int64_t r0, int64_t r1, int64_t ch0, int64_t ch1,
                    int finalize, void *sreal, int64_t *sidx, void *scratch);
    /* Merges per-chunk states (chunk-major, rows [r0,r1)) in chunk order and writes the outputs. */
    void (*merge_finalize)(const kp_cpu_job *job, int64_t b, int64_t r0, int64_t r1, int64_t nchunks,
                           const void *sreal, const int64_t *sidx, size_t chunk_stride_real,
                           size_t chunk_stride_idx, void *scratch);
    /* Bytes of scratch one thread needs. */
    size_t (*scratch_size)(const kp_program *prog);
    /* Joint programs: rows [r0,r1) of one group, column terms added into
     * colacc (sum then compensation, component-major, 2 * coldim * M reals),
     * which it zeroes first; row terms written. */
    void (*joint_rows)(const kp_cpu_joint_job *jj, int64_t r0, int64_t r1, void *colacc, void *scratch);
    /* Merges the groups' column buffers (group g at g * group_stride reals) for
     * columns [j0,j1) in group order and writes the column terms. */
    void (*joint_cols)(const kp_cpu_joint_job *jj, int64_t j0, int64_t j1, const void *colacc, size_t group_stride);
    size_t (*joint_scratch_size)(const kp_cpu_joint_job *jj);
} kp_cpu_kernels;

/* Rows per block and reduced points per chunk. */
#define KP_ROW_BLOCK 64
#define KP_CHUNK 32768

/* The kernel build for this CPU and dtype ($KP_CPU_ISA may force a lower one). */
const kp_cpu_kernels *kp__cpu_pick_kernels(kp_dtype dtype);

extern const kp_cpu_kernels kp__cpu_f32_avx512, kp__cpu_f64_avx512;
extern const kp_cpu_kernels kp__cpu_f32_avx2, kp__cpu_f64_avx2;
extern const kp_cpu_kernels kp__cpu_f32_generic, kp__cpu_f64_generic;

#endif
