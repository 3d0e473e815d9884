/*
 * test_gpu_nvrtc_ranges.c — asserts that the ranged CUDA kernels (block-sparse
 * ranges, kp_gpu_settings.ranges) of every reduction, both axes, float32 and
 * float64, compile with the real NVRTC, and so do their variants that write
 * partial states (kp_plan_exec_partial with ranges): the CUDA engine runs each
 * reduction with ranges, then folds the same points into a state, on the mock
 * driver (KP_CUDA_LIBRARY), which loads the image NVRTC produced and runs
 * nothing, so only the compile is checked here (the results are checked on
 * the CUDA emulator by ranges_cuda_emul and gpu_partial_cuda_emul, and on a
 * GPU by ranges_cuda). Skipped (77) when NVRTC cannot be loaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp.h"
#include "nvrtc_check.h"

static const char *const REDS[] = {"Sum_Reduction(@,#)",           "LogSumExp_Reduction(@,#)",
                                   "Min_ArgMin_Reduction(@,#)",    "Max_ArgMax_Reduction(@,#)",
                                   "KMin_ArgKMin_Reduction(@,3,#)", "SumSoftMaxWeight_Reduction(@,#,b)",
                                   "ArgMin_Reduction(@,#)",        "Min_Reduction(@,#)",
                                   "ArgKMin_Reduction(@,3,#)",     "KMin_Reduction(@,3,#)",
                                   "Max_Reduction(@,#)",           "ArgMax_Reduction(@,#)"};

static void build_text(const char *red, int axis, char *buf, size_t size) {
    size_t n = 0;
    for (const char *p = red; *p && n + 40 < size; p++) {
        if (*p == '@') n += (size_t)snprintf(buf + n, size - n, "(SqDist(x,y)+0.1*Sin(5*(x|y)))");
        else if (*p == '#') buf[n++] = (char)('0' + axis);
        else buf[n++] = *p;
    }
    buf[n] = 0;
}

/* Runs text with ranges on the context's engine (the data are zeros: only the compile matters). */
static kp_status run(kp_context *ctx, const char *text, int axis, kp_dtype dt, const kp_exec_options *opt) {
    static double data[64], out[64];
    static int64_t idx[64];
    const char *al[] = {axis ? "x = Vi(2)" : "x = Vj(2)", axis ? "y = Vj(2)" : "y = Vi(2)", axis ? "b = Vj(1)" : "b = Vi(1)"};
    kp_formula *f = NULL;
    kp_plan *p = NULL;
    kp_status st = kp_formula_parse(ctx, text, al, 3, &f);
    if (st == KP_OK) st = kp_plan_new(ctx, f, dt, &p);
    if (st == KP_OK) {
        int od = kp_formula_out_dim(f), id = kp_formula_out_index_dim(f);
        kp_array a[3] = {kp_array_2d(data, dt, 8, 2), kp_array_2d(data, dt, 8, 2), kp_array_2d(data, dt, 8, 1)};
        kp_array o = kp_array_2d(out, dt, 8, od ? od : 1), oi = kp_array_2d(idx, KP_INT64, 8, id ? id : 1);
        st = kp_plan_exec(p, a, (size_t)kp_formula_num_args(f), od ? &o : NULL, id ? &oi : NULL, opt);
        kp_state_info info;
        if (st == KP_OK) st = kp_plan_state_info(p, a, (size_t)kp_formula_num_args(f), NULL, &info);
        void *s = st == KP_OK ? malloc(info.bytes) : NULL;
        if (st == KP_OK && !s) st = KP_ERR_OOM;
        if (st == KP_OK) st = kp_plan_state_init(p, &info, s);
        if (st == KP_OK) st = kp_plan_exec_partial(p, a, (size_t)kp_formula_num_args(f), 0, s, info.bytes, opt);
        free(s);
    }
    kp_plan_free(p);
    kp_formula_free(f);
    return st;
}

int main(void) {
    const char *why;
    if (!kpt_nvrtc_available(&why)) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    kp_context *ctx;
    if (kp_context_new(&ctx) != KP_OK) return 1;
    if (kp_context_set_engine(ctx, KP_ENGINE_CUDA) != KP_OK) {
        printf("FAIL: the CUDA engine on the mock driver: %s\n", kp_context_message(ctx));
        kp_context_free(ctx);
        return 1;
    }
    int64_t rows[4] = {0, 3, 5, 8}, slices[2] = {1, 2}, cols[4] = {0, 4, 2, 8};
    kp_ranges r = {0};
    r.index_size = 8;
    r.ranges_i = r.ranges_j = rows, r.slices_i = r.slices_j = slices, r.redranges_j = r.redranges_i = cols;
    r.n_ranges_i = r.n_slices_i = r.n_redranges_j = r.n_ranges_j = r.n_slices_j = r.n_redranges_i = 2;
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.ranges = &r;
    int failures = 0, n = 0;
    for (int axis = 0; axis < 2; axis++)
        for (int dt = 0; dt < 2; dt++)
            for (size_t k = 0; k < sizeof REDS / sizeof REDS[0]; k++) {
                char text[256];
                build_text(REDS[k], axis, text, sizeof text);
                kp_status st = run(ctx, text, axis, dt ? KP_FLOAT64 : KP_FLOAT32, &opt);
                n++;
                if (st != KP_OK) {
                    printf("FAIL: %s (%s): %s\n", text, dt ? "float64" : "float32", kp_context_message(ctx));
                    failures++;
                }
            }
    printf("%d reductions (a ranged CUDA kernel and its partial-state variant each), %d failed to compile or launch\n",
           n, failures);
    kp_context_free(ctx);
    return failures != 0;
}
