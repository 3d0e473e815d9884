/*
 * fuzz_common.h — what the libFuzzer targets of tests/fuzz/ share.
 *
 * - fz_reader: the fuzzer's bytes consumed as small decisions (a byte per
 *   choice; zeros once the input is exhausted, so every input is complete);
 * - fz_gen_reduction: a formula generator driven by those bytes that writes
 *   well-typed KeOps text (dimensions tracked) over a fixed set of aliases,
 *   with the occasional mistake, so most inputs reach planning and execution
 *   instead of dying in the parser;
 * - fz_exec_check: executes a formula on tiny arrays built from its own
 *   introspection (kp_formula_arg), with odd sizes, padded strides, batch
 *   dimensions and broadcasting, and checks what must hold for any formula:
 *   the same bits with 1 and 2 threads, nothing written outside the output's
 *   elements, indices within the reduced range.
 *
 * A failed check calls fz_fail (prints, then __builtin_trap) so that libFuzzer
 * keeps the input as a crash.
 */
#ifndef KP_FUZZ_COMMON_H
#define KP_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "kp.h"

typedef struct fz_reader {
    const uint8_t *p;
    size_t n, i;
} fz_reader;

/* The next byte, 0 once exhausted. */
unsigned fz_byte(fz_reader *r);
/* A choice in [0, n) (n >= 1). */
unsigned fz_pick(fz_reader *r, unsigned n);

#define FZ_N_ALIASES 7
/* The aliases every generated formula may use, for dimension D (1..4) of x,y and E
 * (1..3) of b: x = Vi(D), y = Vj(D), s = Pm(1), b = Vj(E), z = Vi(9), w = Vj(9), a = Vi(1). */
void fz_aliases(int D, int E, char store[FZ_N_ALIASES][24], const char *out[FZ_N_ALIASES]);

/* Writes a reduction (e.g. "KMin_Reduction(Exp(-SqDist(x,y)),3,0)") into buf.
 * *D and *E receive the alias dimensions used. Returns 0 if buf was too small
 * (the text is then truncated but NUL-terminated). */
int fz_gen_reduction(fz_reader *r, char *buf, size_t size, int *D, int *E);

/* Runs f (dtype) on tiny arrays shaped from the bytes of r and checks the
 * invariants above. allow_large: now and then (1 in 32) sizes large enough that
 * two threads share the work (about 2 x 10^5 pairs, one batch), for formulas
 * of at most FZ_BIG_MAX_NODES nodes; 0 keeps every size tiny. Returns the
 * status of the single-thread execution. */
kp_status fz_exec_check(kp_context *ctx, const kp_formula *f, kp_dtype dtype, fz_reader *r, int allow_large);

/* Traps unless g (reparsed from f's printed text) has f's signature: reduction,
 * axis, K-independent output widths, row summation, and every argument's
 * category and dimension. */
void fz_check_same_signature(const kp_formula *f, const kp_formula *g, const char *text);

/* Prints the message and traps. */
void fz_fail(const char *what, const char *detail);

#endif
