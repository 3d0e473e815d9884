/*
 * codegen.h — prints a lowered kp_program (plan/program.h) as GPU kernel source,
 * in two dialects: CUDA C++ (for NVRTC) and OpenCL C. One generator, one scheme:
 *
 *   - each thread computes R output rows (R = 1, 2 or 4, from the pair
 *     program's size and the state a row keeps: kp__gpu_default_rows), B rows
 *     apart, so a work-group of B threads covers B * R consecutive rows; their
 *     ROW values and reduction states live in private arrays (registers), and
 *     every point read from the shared tile serves the R rows (one shared load
 *     and one loop step per R pairs);
 *   - the reduced axis is cut into fixed chunks of `chunk` points (a kernel
 *     argument, chosen from the reduced length alone: gpu/launch.h); each chunk is walked in
 *     tiles of B points (B = work-group size): the work-group computes the COL
 *     program of the tile cooperatively, one point per thread, into
 *     shared/local memory, synchronizes, and every thread runs the PAIR program
 *     and folds the tile into its chunk state, one point at a time, in order;
 *   - each chunk is reduced from the monoid identity and chunk states are merged
 *     in chunk order. Either one thread walks all chunks of its row (split = 0,
 *     finalized in place), or one work-group row per chunk writes its chunk
 *     state (split = 1) and the merge kernel merges them in chunk order. Both
 *     give bit-identical results, independent of B, R and the launch geometry.
 *
 * Reductions follow src/cpu/kernel_reduce.h: ties to the smallest index, NaN
 * ranks first in Min/Max, LogSumExp and SumSoftMaxWeight streamed as a running
 * max and a rescaled Kahan-compensated sum. Sum, LogSumExp and SumSoftMaxWeight
 * add their terms as the CPU's sum schemes say (kp.h kp_sum_scheme):
 * KP_SUM_BLOCK (and always in float64) sums each group of KP_GPU_GROUP
 * consecutive points of a chunk plainly, one fused multiply-add per pair, and
 * adds the group sums with Kahan compensation (LogSumExp and SumSoftMaxWeight
 * rescale the group sums with the state when the running max moves, and run
 * the common case, f - max <= 0, as straight-line code);
 * KP_SUM_PLAIN adds Sum's group sums without it; KP_SUM_KAHAN compensates
 * every term. Groups count from the chunk's start, so the result
 * does not depend on B. KP_SUM_EXACT (prog->exact) adds each term into the
 * exact accumulators of device/exact.h, kept in the state's int64 words in
 * the CPU engine's layout (codegen_exact.c); its Sum multiplies the rounded
 * sum by a row factor in the reduce kernel, so such a kernel never splits
 * (kp_gpu_kernel_info.no_split). Elementwise ops follow src/formula/scalar_eval.h
 * (device prelude); under KP_MATH_FAST, float32 Exp, Log and Rsqrt use the
 * hardware approximations (kp.h), and a fused Exp(a * s) with s a row value
 * becomes 2^(a * (s log2 e)), the product s log2 e computed once per row.
 *
 * The shared tile stores each point's COL values contiguously, padded to 16
 * bytes from 3 values on, so the pair loop reads them with vector loads that
 * the whole warp shares (the same address: a broadcast). The CUDA pair loop is
 * unrolled KP_GPU_UNROLL times when the pair program is small (up to 16
 * computed components; half that when R = 4; 4 times up to 48, else twice:
 * compile time), as the `#pragma unroll N` in the source says, and its loop
 * over the R rows is unrolled fully.
 *
 * Kernels (names prefixed by `name`, "kp" by default):
 *
 *   <name>_reduce(for each used argument position p, in increasing order:
 *                     const real *a<p>, i64 bs<p>,
 *                 real *out, i64 *out_idx, real *part, i64 *part_idx,
 *                 i64 nrows, i64 ncols, i64 chunk, i64 nchunks, int split)
 *       global size (ceil(nrows/(B*R))*B, split ? nchunks : 1, nbatch), local (B,1,1).
 *       Argument p is packed: batch b's element (row t, component c) is at
 *       a<p>[b*bs<p> + t*dim_p + c] (parameters: b*bs<p> + c); bs<p> = 0 shares it.
 *       out: (nbatch, nrows, out_dim), out_idx: (nbatch, nrows, out_idx_dim),
 *       part/part_idx: (nbatch, nchunks, nrows, nreal|nidx), used when split.
 *   <name>_merge(const real *part, const i64 *part_idx, real *out, i64 *out_idx,
 *                i64 nrows, i64 nchunks, i64 ntotal)
 *       one thread per (batch, row), ntotal = nbatch*nrows; any local size.
 *
 * In the CUDA dialect everything but the two extern "C" kernels is wrapped in
 * `namespace <name>`, so several generated kernels can share one translation
 * unit (the NVRTC test compiles many at once).
 */
#ifndef KP_GPU_CODEGEN_H
#define KP_GPU_CODEGEN_H

#include "plan/program.h"

typedef enum kp_gpu_dialect { KP_GPU_CUDA = 0, KP_GPU_OPENCL = 1 } kp_gpu_dialect;

/* Points per plainly summed group (a power of two; see the sum schemes above):
 * 32 float32 terms in a chain keep the error of the CPU's BLOCK scheme, and
 * the compensated add costs 7 instructions per 32 pairs. */
#define KP_GPU_GROUP 32
/* Unroll factor of the CUDA pair loop of small pair programs (see above;
 * halved when a thread computes 4 rows: 16 copies of the body then). */
#define KP_GPU_UNROLL 8
/* 32-bit registers that the R rows of a thread may hold for the whole pair
 * loop (ROW values, states, group sums): R = 4 for the kernel products, fewer
 * for wide states (K-nearest lists, vector outputs), so that occupancy stays. */
#define KP_GPU_ROW_REGS 64
/* Largest R a caller may ask for ($KP_GPU_ROWS, tests and tuning: gpu/launch.h). */
#define KP_GPU_MAX_ROWS 8

/* The context's settings that the generated source depends on (so they are
 * part of every kernel cache key, which hashes the source). */
typedef struct kp_gpu_settings {
    kp_sum_scheme scheme; /* Sum / LogSumExp accumulation, see above */
    kp_math_mode math;    /* float32 Exp, Log, Rsqrt: kp.h kp_math_mode */
    /* 1: block-sparse ranges (kp_ranges). <name>_reduce then takes two more
     * arguments after split, `const i64 *rg_blk, const i64 *rg_cols`: work-group
     * g computes rows [rg_blk[5g], rg_blk[5g+1]) of batch rg_blk[5g+4] (at most
     * B * R of them), walking the reduced ranges rg_cols[2l], rg_cols[2l+1]
     * (batch-local [start, end), sorted and disjoint) for rg_blk[5g+2] <= l <
     * rg_blk[5g+3], each range in place of a chunk (its own state, merged in
     * order); the global size is (number of entries * B, 1, 1) and split is 0.
     * Rows of an entry with no range get the neutral value. With states, entries
     * have 6 numbers, the sixth a chunk c: the ranges are those of chunk c only,
     * and the rows' states merged over them are written as chunk c's states
     * (part at ((batch * nchunks + c) * nrows + row)), never finalized; split
     * is then ignored (gpu/ranges_table.h builds such entries). */
    int ranges;
    /* 1: partial states (kp_plan_exec_partial). The chunk states are the
     * result (split is 1): a Sum's row factor (red_scale) is left for the
     * host's finalize, as in the CPU engine's states, and <name>_reduce takes
     * two more arguments after split, `i64 row_off, i64 col_off`, the global
     * indices of the first row and point, which IndexI()/IndexJ() add. */
    int states;
} kp_gpu_settings;

typedef struct kp_gpu_kernel_info {
    int block;                /* B: threads per work-group and tile width */
    int rows;                 /* R: rows per thread; a work-group covers B * R rows */
    int nreal, nidx;          /* reduction state per row (reals, int64 indices) */
    int out_dim, out_idx_dim; /* outputs per row */
    int no_split;             /* 1: the merge kernel cannot finalize (an exact Sum's row factor is
                                 applied to the rounded sum, in the reduce kernel): never split */
    int nused;                /* number of argument positions the kernel takes */
    int used[KP_MAX_ARGS];    /* those positions, increasing */
    int used_dim[KP_MAX_ARGS];
    kp_var_category used_cat[KP_MAX_ARGS];
} kp_gpu_kernel_info;

/* Block size the generator picks for prog (shared memory of the COL values
 * kept below 16 KiB) when asked for block <= 0. */
int kp__gpu_default_block(const kp_program *prog, kp_dtype dtype);
/* Rows per thread the generator picks for prog when asked for rows <= 0. */
int kp__gpu_default_rows(const kp_program *prog, kp_dtype dtype);

/*
 * Generates the source. dtype: KP_FLOAT32 or KP_FLOAT64. set: the context's
 * settings that change the source. block: B (a power of
 * two in [1, 1024]) or <= 0 for kp__gpu_default_block. rows: R (1 to
 * KP_GPU_MAX_ROWS) or <= 0 for kp__gpu_default_rows. name: kernel prefix, a
 * C identifier (NULL: "kp"). Fills *info. Returns a NUL-terminated string from
 * prog->ctx's allocator (kp__free(prog->ctx, ...)), or NULL when out of memory.
 */
char *kp__gpu_codegen(const kp_program *prog, kp_dtype dtype, const kp_gpu_settings *set, kp_gpu_dialect dialect,
                      int block, int rows, const char *name, kp_gpu_kernel_info *info);

#endif
