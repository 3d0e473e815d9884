/*
 * jit.h — compiled kernels for the CPU engine (LLVM ORC JIT, built with
 * KP_JIT=ON; without it kp__jit_kernel always answers NULL and the
 * interpreter runs everything).
 *
 * What is compiled is the PAIR program of a lowered program (plan/program.h)
 * fused with the reduction's input: for a block of `rows` output rows and one
 * tile of reduced points whose COL values the interpreter has computed, the
 * kernel walks the tile VL lanes at a time (one SIMD register), evaluates the
 * pair program for each of the rows with every intermediate in registers, and
 *   KP_JIT_SUM    sums F (times F2, program.h's red_f2) over the tile's first
 *                 len lanes: out[r * fdim + d] for row r, component d; the
 *                 CPU engine adds these tile sums into its compensated states
 *                 as it adds its own;
 *   KP_JIT_TILES  writes the PAIR components of F, F2 and G, row r's at
 *                 out + (r * (pair_size + 1) + c) * tile (the interpreter's
 *                 pair buffer, one per row), lanes [0, len) rounded up to VL;
 *                 the interpreter's monoid (kernel_reduce.h) folds them.
 *   KP_JIT_LSE    LogSumExp or SumSoftMaxWeight (red_g.dim > 0) folded over
 *                 the tile's first len lanes: each lane keeps an online
 *                 (max, sum of exp(F - max)[, sum of exp(F - max) * G]) per
 *                 row and component, one exp per pair, branch-free; at the
 *                 end the lanes are combined and row r's tile state is
 *                 written at out + r * nreal in the interpreter's state
 *                 layout (kernel_reduce.h; compensations 0). A NaN F makes
 *                 the max NaN, a +inf F makes it +inf (SumSoftMaxWeight:
 *                 NaN, as ssmw_tile), a tile of -inf leaves it -inf; the CPU
 *                 engine merges the state as it merges two chunks' states.
 *   KP_JIT_JOINT  a joint program's Sum terms (program.h's terms[2]; the
 *                 kernel is kp_jit_kernel.joint): the row terms (reduced over
 *                 the columns) summed over the tile's first len lanes into
 *                 rowsums[r * rowdim + c], c the component among all row terms
 *                 in order; the column terms (reduced over the rows) of rows
 *                 [0, nrows) added, lane by lane and in row order, into
 *                 coltmp[c * tile + k] (k < len; lanes past len keep their values),
 *                 as the interpreter's kernel_joint.h adds them. Row terms'
 *                 scales stay the interpreter's (applied once per row).
 * Row r's ROW values are at rowv + r * row_size; COL component c's tile at
 * colbuf + c * tile. The kernel computes all `rows` rows: callers give it
 * buffers of that many rows (rows past the block's end hold any value).
 *
 * Kernels are compiled once per process and program (a cache keyed by the
 * program's description, dtype, tile and vector width), and kept on disk
 * (gpu/kcache.h's directory and rules) for the next process, which loads
 * them instead of compiling. $KP_JIT chooses when:
 *   unset, "on"   in a background thread, once the program's calls have
 *                 reduced $KP_JIT_THRESHOLD pairs (default 2^27): calls run
 *                 on the interpreter until the kernel is ready;
 *   "force"       in the calling thread, on the first call (tests, benchmarks);
 *   "require"     as force, and a kernel that fails to compile fails the call
 *                 (KP_ERR_INTERNAL) instead of falling back (tests);
 *   "off"         never.
 */
#ifndef KP_JIT_JIT_H
#define KP_JIT_JIT_H

#include "plan/program.h"

#define KP_JIT_MAX_ROWS 4

typedef enum { KP_JIT_SUM = 0, KP_JIT_TILES = 1, KP_JIT_JOINT = 2, KP_JIT_LSE = 3 } kp_jit_mode;

/* KP_JIT_LSE: state vectors per row at most (LogSumExp: 2 per component of
 * F; SumSoftMaxWeight: 2 + dim G), so that the states of a call's rows stay
 * in registers; wider reductions take KP_JIT_TILES. */
#define KP_JIT_LSE_MAX_STATE 16
static inline int kp__jit_lse_state(int fdim, int gdim) { return gdim ? 2 + gdim : 2 * fdim; }
/* KP_JIT_LSE kernels take two passes over their tile: the first keeps, per
 * row, F's components (when F is a PAIR value) then G's (when G is one) for
 * the second, tile reals each, from out + 2 * tile; the rows' tile states go
 * to out[0, 2 * tile). So out holds (2 + rows * kp__jit_lse_stored) * tile
 * reals. */
static inline int kp__jit_lse_stored(kp_operand f, int fdim, kp_operand g) {
    return (f.loc == KP_LOC_PAIR ? fdim : 0) + (g.loc == KP_LOC_PAIR ? g.dim : 0);
}

typedef void (*kp_jit_fn)(const void *rowv, const void *colbuf, void *out, int64_t len);
/* KP_JIT_JOINT: nrows (1 to rows) rows are real; the others' row sums are
 * written and their column terms left out. */
typedef void (*kp_jit_joint_fn)(const void *rowv, const void *colbuf, void *rowsums, void *coltmp, int64_t len,
                                int64_t nrows);

typedef struct kp_jit_kernel {
    kp_jit_fn fn;          /* KP_JIT_SUM, KP_JIT_TILES, KP_JIT_LSE */
    kp_jit_joint_fn joint; /* KP_JIT_JOINT */
    int rows;              /* rows per call, <= KP_JIT_MAX_ROWS */
    /* Bit c: the kernel divides by ROW component c (c < 64) as a product
     * with 1 / b, taken once per call: a vector division per step costs
     * several times a multiplication. a * (1 / b) is within an ulp or so of
     * a / b while 1 / b is a normal number; callers run the rows whose b is
     * subnormal or above 1 / (smallest normal) on the interpreter instead
     * (cpu/kernel_impl.h, row_has_reciprocals). */
    uint64_t row_divisors;
    /* Bits c: the kernel takes some exp argument to be <= 0 or NaN (an
     * AVX-512 exp without its clamps, jit.c exp_signs) because ROW component
     * c (c < 64), a factor or divisor of it, has its sign bit set (row_neg)
     * or clear (row_pos), or is NaN. Rows where it does not hold run on the
     * interpreter (cpu/kernel_impl.h, row_fits_kernel); where the scalar is
     * the same in every row and lacks the sign, callers take the kernel
     * compiled without the analysis instead (cpu/engine.c). */
    uint64_t row_neg, row_pos;
    /* Bit c: ROW component c (c < 64) is the same in every row (a parameter's
     * or a constant's): the checks above read it in one row only. */
    uint64_t row_uniform;
    kp_jit_mode mode;
} kp_jit_kernel;

/* The compiled kernel of prog for this dtype, tile (lanes per tile) and
 * vector width (bytes: 16, 32, 64), in mode (KP_JIT_JOINT for a joint
 * program, the others for an ordinary one), or NULL when the interpreter
 * must run (KP_JIT off or absent, not compiled yet, or compile failed).
 * signs: whether its exps may take the signs of ROW scalars for granted
 * (row_neg, row_pos); 0 for the kernel that runs every row, which callers
 * ask for when they know the rows lack those signs (cpu/engine.c).
 * pairs: what the call reduces, counted towards the background threshold.
 * In "require" mode a failed compile sets *failed and its message in ctx. */
const kp_jit_kernel *kp__jit_kernel(kp_context *ctx, const kp_program *prog, kp_dtype dtype, int tile, int vec_bytes,
                                    kp_jit_mode mode, int signs, double pairs, int *failed);

/* Process-wide counters (tests, measurements): kernels made ready, compiled
 * or loaded from the disk cache (disk_hits: of them, loaded; joint, lse: of
 * them, KP_JIT_JOINT and KP_JIT_LSE kernels), compiles failed, calls answered
 * from the per-process cache; seconds spent compiling (passes, code
 * generation, linking) and looking kernels up on disk and loading them; once
 * per process, seconds spent loading libLLVM and making the JIT (with the
 * disk cache's key and directory), and in warm_up (jit.c). */
typedef struct kp_jit_stats {
    int64_t compiled, joint, lse, failed, hits, disk_hits;
    double compile_seconds, load_seconds, llvm_load_seconds, warm_up_seconds;
} kp_jit_stats;
void kp__jit_stats(kp_jit_stats *out);
/* Nonzero when libkp was built with the compiler (CMake KP_JIT=ON). */
int kp__jit_built(void);
/* Fault injection for tests (as sqlite3_test_control): while nonzero, every
 * compile fails with a message, as a refused target or an LLVM error would. */
extern int kp__jit_fail_compiles;
/* Test control: while 1 to KP_JIT_MAX_ROWS, KP_JIT_LSE kernels compiled
 * take that many rows per call (default 2), so that tests reach a block's
 * last, shorter call. */
extern int kp__jit_lse_rows;
/* Test control: while nonzero, kernels compiled take every exp on the
 * clamped path (no sign analysis, jit.c exp_signs), for comparison. */
extern int kp__jit_no_exp_signs;
/* Test control: while nonzero, the start of LLVM (loading libLLVM, making
 * the JIT, the warm-up) waits before it begins, so that tests see a call
 * return, a fork and an exit while it is pending. */
extern int kp__jit_hold_start;

#endif
