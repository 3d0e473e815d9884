/*
 * codegen_internal.h — what the parts of the kernel generator share (the
 * contract of the generated kernels is codegen.h): a string builder, the
 * generator's state, and each part's printers, one concern per file:
 *
 *   codegen.c          the string builder, the kernels' skeleton (reduce kernel:
 *                      rows, chunks, tiles, pair loop; merge kernel), kp__gpu_codegen
 *   codegen_info.c     launch facts: B, R, tile stride, unroll, the argument list
 *   codegen_prelude.c  the dialect prelude (qualifiers, real type, math library)
 *   codegen_instr.c    operands and the instructions of the ROW / COL / PAIR programs
 *   codegen_monoid.c   the reduction state: init, accumulate, flush, merge, finalize
 *   codegen_exact.c    the same for the states of KP_SUM_EXACT (device/exact.h)
 */
#ifndef KP_GPU_CODEGEN_INTERNAL_H
#define KP_GPU_CODEGEN_INTERNAL_H

#include <stddef.h>

#include "gpu/codegen.h"

/* A growing string in the program's context allocator; oom is sticky (the
 * printers go on and kp__gpu_codegen checks it once at the end). */
typedef struct kp_sbuf {
    char *p;
    size_t n, cap;
    int oom;
    kp_context *ctx; /* whose allocator holds p: the program's */
} kp_sbuf;

void kp__sb_printf(kp_sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The state of one kp__gpu_codegen call, read by every printer. */
typedef struct kp_cg_gen {
    kp_sbuf *s;
    const kp_program *prog;
    kp_dtype dtype;
    int B;
    int W;       /* reals per point in the shared tile (col_size padded for vector loads) */
    int grouped; /* Sum / LogSumExp terms summed plainly per group of KP_GPU_GROUP points */
    int plain;   /* float32 KP_SUM_PLAIN: group sums added without compensation */
    int states;  /* partial states: no row factor in the states, global indices (kp_gpu_settings) */
    int in_pair; /* COL operands: from the shared tile (pair part) or private cv (col part) */
    const char *rrow; /* which of the thread's rows ROW operands come from: "rq", or "0" in the COL
                         part (which reads only uniform ROW values: parameters, constants) */
    /* The kernels being printed (kp__gpu_codegen). */
    kp_gpu_dialect dia;
    const char *name;                /* kernel prefix */
    const kp_gpu_kernel_info *info;
    int R;                           /* rows per thread */
    int NR, NX, NT;                  /* array sizes: state reals, state indices, group sums */
    int G;                           /* points per inner loop: a group, or a whole tile when B is smaller */
    int rg;                          /* block-sparse ranges (kp_gpu_settings.ranges) */
    const char *rlim;                /* the end of the work-group's rows: "nrows", or "rend_" with ranges */
} kp_cg_gen;

/* The group sums of the current row rq (an array of the reduce kernel). */
#define TS "ts[rq]"

static inline int kp__cg_imax1(int a) { return a > 0 ? a : 1; }

/* codegen_info.c */
/* Reals per point in the shared tile (the COL values padded for vector loads). */
int kp__cg_tile_stride(const kp_program *prog, kp_dtype dtype);
/* Group sums ts per row (grouped Sum, LogSumExp, SumSoftMaxWeight). */
int kp__cg_group_sums(const kp_program *prog);
/* Unroll factor of the CUDA pair loop for R rows per thread. */
int kp__cg_pair_unroll(const kp_program *prog, int R);
/* Fills info: B, R, state and output widths, the argument positions the kernel takes. */
void kp__cg_kernel_info(const kp_program *prog, int B, int R, kp_gpu_kernel_info *info);

/* codegen_prelude.c: the prelude of dtype in dialect dia (fast: KP_MATH_FAST float32). */
void kp__cg_prelude(kp_sbuf *s, kp_dtype dtype, kp_gpu_dialect dia, const char *name, int fast);
/* The exact accumulators (device/exact.h) and what they need from the dialect. */
void kp__cg_prelude_exact(kp_sbuf *s, kp_gpu_dialect dia);

/* codegen_instr.c */
/* Prints operand o's component c (an expression string; "0" for dim 1). */
void kp__cg_operand(kp_cg_gen *g, kp_operand o, const char *c);
/* Prints the instructions of one part of the program (part: where it runs). */
void kp__cg_part(kp_cg_gen *g, const kp_program_part *P, kp_loc part);

/* codegen_monoid.c: the state arrays st (reals) and sx (indices) are expression strings. */
void kp__cg_init(kp_sbuf *s, const kp_program *prog, const char *st, const char *sx);
void kp__cg_accumulate(kp_cg_gen *g, const char *st, const char *sx);
void kp__cg_flush(kp_cg_gen *g, const char *st);
void kp__cg_merge(kp_sbuf *s, const kp_program *prog, const char *a, const char *ax, const char *b, const char *bx);
void kp__cg_finalize(kp_sbuf *s, const kp_program *prog, const char *st, const char *sx);

/* codegen_exact.c: the steps above for a program with prog->exact (the words in sx). */
void kp__cg_exact_init(kp_sbuf *s, const kp_program *prog, const char *sx);
void kp__cg_exact_accumulate(kp_cg_gen *g, const char *sx);
void kp__cg_exact_merge(kp_sbuf *s, const kp_program *prog, const char *ax, const char *bx);
void kp__cg_exact_finalize(kp_sbuf *s, const kp_program *prog, const char *sx);

#endif
