/*
 * ptx_loop.h — the static cost of a generated kernel's pair loop, read from
 * its PTX (NVRTC output; no GPU needed).
 *
 * The pair loop is the innermost loop of the PTX: the shortest range between
 * a label and a later branch back to it that holds no other such range. Its
 * instructions are counted as the issue slots they take on the GPU, roughly:
 * `mov` (immediates and register renames, folded by ptxas) and `neg` (a
 * source-operand modifier in SASS) are left out, and `cvt.sat` (folded into
 * the FFMA before it) too. Counts per pair divide by the loop's unroll
 * factor. This is an estimate of the SASS, not the SASS: it tells kernels
 * apart and predicts a time bound, it does not replace a run on a GPU.
 */
#ifndef KP_BENCH_PTX_LOOP_H
#define KP_BENCH_PTX_LOOP_H

typedef struct ptx_loop_cost {
    int instructions; /* issue slots in the loop (as above) */
    int sfu;          /* special-function unit ops: ex2, lg2, rsqrt, rcp, sqrt.approx, sin, cos */
    int shared_loads; /* ld.shared (a vector load counts once) */
    int branches;     /* bra, taken or not */
} ptx_loop_cost;

/* Fills *c for the innermost loop of kernel `entry` (NULL: the whole text) in
 * ptx (NUL-terminated); 0 on success, -1 when there is no such loop. */
int ptx_loop_cost_of(const char *ptx, const char *entry, ptx_loop_cost *c);

#endif
