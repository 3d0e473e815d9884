/* jit_internal.h — between the JIT's cache and driver (jit.c) and its kernel builder (jit_codegen.c). */
#ifndef KP_JIT_INTERNAL_H
#define KP_JIT_INTERNAL_H

#include <llvm-c/Core.h>
#include <stdint.h>

#include "jit/jit.h"

/* What one kernel computes (jit.h): everything the builder reads. */
typedef struct kp_jit_spec {
    int f32, tile, vl, rows;
    kp_jit_mode mode;
    int row_size, col_size, pair_size, fdim;
    /* Bit c: ROW component c (c < 64) is the same in every row (computed
     * from parameters and constants only), so the kernel reads it once for
     * all its rows and holds one register instead of one per row. */
    uint64_t row_uniform;
    /* Bit c: ROW component c (c < 64) divides PAIR values (Div, the fused
     * Exp(a / b)): the kernel multiplies by its reciprocal, taken once per
     * call (jit.h, kp_jit_kernel.row_divisors). */
    uint64_t row_divisors;
    /* Bit i: the argument of the PAIR program's Exp i (i < 64) is <= 0 or
     * NaN in every row that fits the kernel (jit.h row_neg, row_pos, which
     * say what that takes): on AVX-512 its exp needs no clamp. */
    uint64_t exp_nonpos, row_neg, row_pos;
    kp_operand red_f, red_f2, red_g;
    int n;
    const kp_instr *code; /* the PAIR program */
    /* KP_JIT_JOINT: the joint program's terms (row terms, column terms) and
     * the total dimension of each side. */
    int nterms[2];
    kp_sum_term terms[2][KP_MAX_JOINT];
    int rowdim, coldim;
} kp_jit_spec;

/* Parses the op bitcode into C and adds the kernel `name` (jit.h's kp_jit_fn)
 * for s. Returns the module, or NULL with a message in msg. */
LLVMModuleRef kp__jit_build(LLVMContextRef C, const kp_jit_spec *s, const char *name, char *msg, size_t msgsz);

/* The op bitcode (jit_ops.c compiled by clang, embedded at build time). */
extern const unsigned char kp__jit_bitcode[];
extern const size_t kp__jit_bitcode_size;

#endif
