/* jit_none.c — the build without LLVM (KP_JIT=OFF): the interpreter runs everything. */
#include <string.h>

#include "jit/jit.h"

const kp_jit_kernel *kp__jit_kernel(kp_context *ctx, const kp_program *prog, kp_dtype dtype, int tile, int vec_bytes,
                                    kp_jit_mode mode, int signs, double pairs, int *failed) {
    (void)ctx, (void)prog, (void)dtype, (void)tile, (void)vec_bytes, (void)mode, (void)signs, (void)pairs, (void)failed;
    return NULL;
}

void kp__jit_stats(kp_jit_stats *out) { memset(out, 0, sizeof *out); }

int kp__jit_built(void) { return 0; }

int kp__jit_fail_compiles;
int kp__jit_lse_rows;
int kp__jit_no_exp_signs;
int kp__jit_hold_start;
