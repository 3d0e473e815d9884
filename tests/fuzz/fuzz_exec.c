/*
 * fuzz_exec — parse + plan + execution on tiny random arrays.
 *
 * Input: bytes that choose a reduction (every one, both axes), a formula over
 * the fixed aliases (fuzz_common.h), the dtype, the sizes (N, M from 0 to 7,
 * sometimes M up to 77), batch dimensions with broadcasting, padded and
 * every-other-element strides, and the values (NaN and infinities included).
 * Checked: no crash, leak, undefined behaviour or timeout; a failure has a
 * message; on success, nothing written outside the output's elements, indices
 * within the reduced range, and the same bits with 1 and 2 threads.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_reader r = {data, size, 0};
    kp_dtype dtype = fz_pick(&r, 2) ? KP_FLOAT64 : KP_FLOAT32;
    char text[4096], store[FZ_N_ALIASES][24];
    const char *aliases[FZ_N_ALIASES];
    int D, E;
    if (!fz_gen_reduction(&r, text, sizeof text, &D, &E)) return 0;
    fz_aliases(D, E, store, aliases);
    if (getenv("FZ_VERBOSE")) fprintf(stderr, "formula: %s (D = %d, E = %d)\n", text, D, E);
    kp_context *ctx = NULL;
    if (kp_context_new(&ctx) != KP_OK) fz_fail("kp_context_new", NULL);
    if (fz_pick(&r, 4) == 0) kp_context_set_sum_scheme(ctx, (kp_sum_scheme)fz_pick(&r, 4));
    kp_formula *f = NULL;
    kp_status st = kp_formula_parse(ctx, text, aliases, FZ_N_ALIASES, &f);
    if (getenv("FZ_VERBOSE")) fprintf(stderr, "parse: %s\n", kp_context_message(ctx));
    if (st == KP_OK) {
        fz_exec_check(ctx, f, dtype, &r, 1);
    } else if (!kp_context_message(ctx)[0]) {
        fz_fail("parse failure without a message", text);
    }
    kp_formula_free(f);
    kp_context_free(ctx);
    return 0;
}
