/*
 * engine.h — inside the CPU engine (its table, kp__engine_cpu, is in engine.c).
 *
 * A job (plan/engine.h) is one kp_plan_exec call with every array already
 * validated. The engine splits the work into (batch, block of rows, range of chunks of reduced
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

#include "jit/jit.h"
#include "plan/engine.h"

/* The progress of one run (kp_progress_fn): blocks done, calls paced from
 * the calling thread (OpenMP thread 0), cancellation seen by every thread. */
typedef struct kp_cpu_progress {
    const kp_job *job;
    int64_t done, total;
    int cancelled;
    double next; /* monotonic time of the next call */
} kp_cpu_progress;

void kp__cpu_progress_init(kp_cpu_progress *p, const kp_job *job, int64_t total);
/* Counts one finished block; on thread 0, calls the callback when due. */
void kp__cpu_progress_tick(kp_cpu_progress *p);
/* Nonzero once the callback asked to stop (always 0 without a callback). */
static inline int kp__cpu_progress_stop(kp_cpu_progress *p) {
    return p->job->progress && __atomic_load_n(&p->cancelled, __ATOMIC_RELAXED);
}
/* After the run: KP_ERR_CANCELLED with a message, or the final call. */
kp_status kp__cpu_progress_end(kp_context *ctx, kp_cpu_progress *p);

/* A joint job as the CPU runs it. Rows are cut into ngroups fixed groups (a
 * function of the sizes only); each group adds its column terms into its own
 * buffer, and the buffers are merged in group order, so every thread count
 * gives bit-identical results. */
typedef struct kp_cpu_joint_job {
    kp_job job;                            /* N rows (i), M columns (j), one batch; job.engine_kernel: the
                                              compiled joint kernel (jit.h, KP_JIT_JOINT) or NULL */
    const kp_job_arg (*out)[KP_MAX_JOINT]; /* the kp_joint_job's outputs */
    int coldim;                            /* total dimension of the column terms */
    int64_t group_rows;                    /* rows per group, a multiple of KP_ROW_BLOCK */
    int64_t ngroups;
    kp_cpu_progress *progress; /* set by kp__cpu_run_joint: counted per block of rows (groups are long) */
} kp_cpu_joint_job;

kp_status kp__cpu_run(kp_context *ctx, const kp_job *job);
/* When a compiled kernel (jit/jit.h) serves (*job)'s program, points *job at
 * copy, a copy of it that carries the kernel; run and run_partial both do, so
 * partial states fold as a whole call does. KP_ERR_INTERNAL (message in ctx)
 * only under KP_JIT=require. */
kp_status kp__cpu_attach_kernel(kp_context *ctx, const kp_job **job, kp_job *copy);
/* One thread's scratch (64-byte aligned), or NULL after setting *failed
 * (atomically: called inside a parallel region). */
void *kp__cpu_scratch(kp_context *ctx, size_t bytes, int *failed);
/* Runs a joint job, or KP_ERR_UNSUPPORTED (no message) when its sizes do not
 * suit the joint pass (engine_joint.c). */
kp_status kp__cpu_run_joint(kp_context *ctx, const kp_joint_job *jj);

/* What a kernel build (one dtype x one ISA) provides; see kernel_impl.h. */
typedef struct kp_cpu_kernels {
    size_t real_size;
    int tile;
    /* State sizes per output row (reals and int64 indices). */
    void (*state_size)(const kp_program *prog, int *nreal, int *nidx);
    /* Reduces rows [r0,r1) of batch b over chunks [ch0,ch1). With finalize set,
     * writes the outputs; else stores the chunk's state in (sreal, sidx). */
    void (*process)(const kp_job *job, int64_t b, int64_t r0, int64_t r1, int64_t ch0, int64_t ch1,
                    int finalize, void *sreal, int64_t *sidx, void *scratch);
    /* Merges per-chunk states (chunk-major, rows [r0,r1)) in chunk order and writes the outputs. */
    void (*merge_finalize)(const kp_job *job, int64_t b, int64_t r0, int64_t r1, int64_t nchunks,
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
    /* Partial states (kernel_partial.h): n row states at the identity;
     * a[r] <- a[r] (+) b[r]; outputs of rows [r0,r1) of batch b from their
     * states (job->ncols: the points folded in). */
    void (*states_init)(const kp_program *prog, int64_t n, void *sreal, int64_t *sidx);
    void (*states_merge)(const kp_program *prog, int64_t n, void *a, int64_t *ai, const void *b, const int64_t *bi);
    void (*states_finalize)(const kp_job *job, int64_t b, int64_t r0, int64_t r1, const void *sreal,
                            const int64_t *sidx, void *scratch);
    /* The COL tiles cache (job->engine_cache, when set): tile t of batch b,
     * the COL buffer that process would compute for reduced points
     * [t * tile, ...), written at cache + (b * ntiles + t) * prog->col_size * tile
     * reals, ntiles = ceil(ncols / tile). process and joint_rows then read the
     * tiles there instead of computing them for every block of rows. */
    void (*col_tile)(const kp_job *job, int64_t b, int64_t t, void *cache, void *scratch);
    /* Whether the first row of every batch fits the compiled kernel jk
     * (kernel_impl.h row_fits_kernel): for kernels whose checks read ROW
     * values that are the same in every row of a batch (jit.h row_uniform). */
    int (*uniform_rows_fit)(const kp_job *job, const kp_jit_kernel *jk);
} kp_cpu_kernels;

/* The compiled kernel (jit/jit.h) that serves job on K in mode, or NULL for
 * the interpreter; kp__jit_kernel's pairs and failed. Where the kernel's
 * exps take signs for granted that the rows' uniform scalars lack, the
 * kernel compiled without that analysis. */
const kp_jit_kernel *kp__cpu_jit_kernel(kp_context *ctx, const kp_job *job, const kp_cpu_kernels *K, kp_jit_mode mode,
                                        double pairs, int *failed);

/* The COL tiles of a whole run (job->engine_cache; kp_cpu_kernels.col_tile
 * fills tile t of batch b), when row_blocks blocks of rows would each compute
 * them again and they are small enough (8 MiB): NULL where every block
 * computes its own. *ntiles: tiles per batch. Freed with kp__free. */
void *kp__cpu_col_cache_new(kp_context *ctx, const kp_job *job, const kp_cpu_kernels *K, int64_t row_blocks,
                            int64_t *ntiles);

/* Rows per block and reduced points per chunk. */
#define KP_ROW_BLOCK 64
#define KP_CHUNK 32768

/* Partial states (engine_partial.c): kp__engine_cpu's run_partial and its
 * host state monoid (plan/engine.h kp_states_ops). */
kp_status kp__cpu_partial_fold(kp_context *ctx, const kp_job *job, int64_t offset, void *sreal, int64_t *sidx);
extern const kp_states_ops kp__cpu_states;

/* ------------------------------------------------------------ the scheduler
 * (schedule.c) How kp__cpu_run and the partial fold cut a job and share it
 * between threads. Blocks are KP_ROW_BLOCK rows of one batch (nbatch x nrb of
 * them). Without split, an item is a block over all chunks; with split (too
 * few blocks to keep the threads busy), an item is (block, chunk), and a
 * second pass visits each block once every item is done. */
typedef struct kp_cpu_split {
    int64_t nrb, nchunks, nblocks, nitems;
    int split;
    int nthreads; /* how many threads the run uses */
} kp_cpu_split;

void kp__cpu_split_init(const kp_job *job, kp_cpu_split *s);

/* Row block blk of a job: its batch and rows [r0, r1). */
static inline void kp__cpu_block_rows(const kp_job *job, int64_t blk, int64_t *b, int64_t *r0, int64_t *r1) {
    int64_t nrb = (job->nrows + KP_ROW_BLOCK - 1) / KP_ROW_BLOCK;
    *b = blk / nrb;
    *r0 = (blk % nrb) * KP_ROW_BLOCK;
    *r1 = *r0 + KP_ROW_BLOCK < job->nrows ? *r0 + KP_ROW_BLOCK : job->nrows;
}

/* What a run does per item and, with split, per block; thread is the OpenMP
 * thread number (for per-thread buffers), scratch that thread's scratch. */
typedef struct kp_cpu_work {
    /* Item it: rows [r0, r1) of batch b; chunk ch with split, else -1 (all chunks). */
    void (*item)(const void *user, int64_t it, int64_t b, int64_t r0, int64_t r1, int64_t ch, int thread,
                 void *scratch);
    /* With split, after every item: block blk (rows [r0, r1) of batch b). */
    void (*block)(const void *user, int64_t blk, int64_t b, int64_t r0, int64_t r1, void *scratch);
    const void *user;
    /* Before the items (NULL: nothing): step k of nprepare, on any thread. */
    void (*prepare)(const void *prepare_user, int64_t k, void *scratch);
    const void *prepare_user;
    int64_t nprepare;
} kp_cpu_work;

/* Runs w over s on s->nthreads threads, each with scratch_bytes of scratch,
 * with kp_exec_options.progress (per item and block) and cancellation:
 * KP_ERR_OOM for a thread's scratch, KP_ERR_CANCELLED, each with a message. */
kp_status kp__cpu_schedule(kp_context *ctx, const kp_job *job, const kp_cpu_split *s, size_t scratch_bytes,
                           const kp_cpu_work *w);

/* The kernel build for this CPU and dtype ($KP_CPU_ISA may force a lower one). */
const kp_cpu_kernels *kp__cpu_pick_kernels(kp_dtype dtype);
/* Bytes of one SIMD register of that build (64, 32, 16): compiled kernels match it. */
int kp__cpu_vec_bytes(const kp_cpu_kernels *K);
/* Bytes of one SIMD register of the build this CPU would get without $KP_CPU_ISA. */
int kp__cpu_native_vec_bytes(void);

extern const kp_cpu_kernels kp__cpu_f32_avx512, kp__cpu_f64_avx512;
extern const kp_cpu_kernels kp__cpu_f32_avx2, kp__cpu_f64_avx2;
extern const kp_cpu_kernels kp__cpu_f32_generic, kp__cpu_f64_generic;

#endif
