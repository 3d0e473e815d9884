/*
 * test_gpu_nvrtc.c — asserts that the CUDA kernel generated for every formula
 * of the GPU case list (every op, every reduction, both axes, float32 and
 * float64, gradients), and those of the KP_SUM_EXACT scheme, compile with
 * NVRTC for sm_80 and sm_90. A compile error fails the test (the failing
 * kernels are compiled one by one to name them).
 * Needs no GPU; skipped (exit 77) when libnvrtc cannot be loaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_cases.h"
#include "kp.h"
#include "nvrtc_check.h"

typedef struct strbuf {
    char *p;
    size_t n, cap;
} strbuf;

static void sb_add(strbuf *s, const char *t) {
    size_t k = strlen(t);
    if (s->n + k + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 1 << 16;
        while (cap < s->n + k + 1) cap *= 2;
        char *q = realloc(s->p, cap);
        if (!q) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        s->p = q;
        s->cap = cap;
    }
    memcpy(s->p + s->n, t, k + 1);
    s->n += k;
}

/* Replaces every occurrence of from by to (to no longer than from + 8). */
static char *rename_all(const char *src, const char *from, const char *to) {
    size_t nf = strlen(from), nt = strlen(to), count = 0;
    for (const char *p = strstr(src, from); p; p = strstr(p + nf, from)) count++;
    char *out = malloc(strlen(src) + count * (nt + 8) + 1), *o = out;
    if (!out) exit(1);
    const char *p = src;
    for (const char *q = strstr(p, from); q; q = strstr(p, from)) {
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, to, nt);
        o += nt;
        p = q + nf;
    }
    strcpy(o, p);
    return out;
}

/* Source of one kernel with unique names (namespace k<id>, k<id>_reduce, k<id>_merge). */
static char *kernel_source(kp_context *ctx, const kp_formula *f, kp_dtype dt, int id) {
    size_t need = 0;
    if (kp_formula_gpu_source(ctx, f, dt, KP_ENGINE_CUDA, NULL, 0, &need) != KP_OK) return NULL;
    char *src = malloc(need + 1);
    if (!src || kp_formula_gpu_source(ctx, f, dt, KP_ENGINE_CUDA, src, need + 1, NULL) != KP_OK) {
        free(src);
        return NULL;
    }
    char ns[32], red[32], mrg[32];
    snprintf(ns, sizeof ns, "namespace k%d {", id);
    snprintf(red, sizeof red, "void k%d_reduce(", id);
    snprintf(mrg, sizeof mrg, "void k%d_merge(", id);
    char *a = rename_all(src, "namespace kp {", ns);
    char *b = rename_all(a, "void kp_reduce(", red);
    char *c = rename_all(b, "void kp_merge(", mrg);
    free(src);
    free(a);
    free(b);
    return c;
}

/* The kernels of KP_SUM_EXACT (device/exact.h inside), float32 and float64, one unit per
 * architecture: returns the number of failures. */
static int compile_exact(kp_context *ctx, const char *const archs[2]) {
    static const char *const texts[] = {"Sum_Reduction(Exp(-SqDist(x,y))*b,1)",
                                        "Sum_Reduction(Elem(x,0)*Exp(-SqDist(x,y))*b,1)",
                                        "LogSumExp_Reduction(Concat(-SqDist(x,y),b),0)",
                                        "SumSoftMaxWeight_Reduction(-SqDist(x,y),1,Concat(b,y))"};
    const char *aliases[] = {"x = Vi(2)", "y = Vj(2)", "b = Vj(1)"};
    int failures = 0, n = 0;
    strbuf tu = {0};
    kp_context_set_sum_scheme(ctx, KP_SUM_EXACT);
    for (int dti = 0; dti < 2; dti++)
        for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
            kp_formula *f;
            char *src = NULL;
            if (kp_formula_parse(ctx, texts[t], aliases, 3, &f) == KP_OK) {
                src = kernel_source(ctx, f, dti ? KP_FLOAT64 : KP_FLOAT32, 1000 + n);
                kp_formula_free(f);
            }
            if (!src) {
                printf("FAIL: exact %s: %s\n", texts[t], kp_context_message(ctx));
                failures++;
                continue;
            }
            sb_add(&tu, src);
            free(src);
            n++;
        }
    kp_context_set_sum_scheme(ctx, KP_SUM_BLOCK);
    for (int a = 0; a < 2 && tu.p; a++) {
        char *log = NULL;
        int rc = kpt_nvrtc_compile(tu.p, "libkp_exact.cu", archs[a], &log);
        printf("KP_SUM_EXACT %s: %d kernels in one unit: %s\n%s", archs[a], n, rc == 0 ? "compiled" : "COMPILE ERROR",
               rc == 0 || !log ? "" : log);
        failures += rc != 0;
        free(log);
    }
    free(tu.p);
    return failures;
}

int main(void) {
    const char *why;
    if (!kpt_nvrtc_available(&why)) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    kp_context *ctx;
    if (kp_context_new(&ctx) != KP_OK) return 1;
    int failures = 0, kernels = 0;
    const char *archs[] = {"sm_80", "sm_90"};
    for (int dti = 0; dti < 2; dti++) {
        kp_dtype dt = dti ? KP_FLOAT64 : KP_FLOAT32;
        strbuf tu = {0};
        int n = 0;
        char **srcs = calloc((size_t)kpt_gpu_ncases * 2, sizeof *srcs);
        const char **labels = calloc((size_t)kpt_gpu_ncases * 2, sizeof *labels);
        char(*labbuf)[512] = calloc((size_t)kpt_gpu_ncases * 2, sizeof *labbuf);
        for (int c = 0; c < kpt_gpu_ncases; c++)
            for (int axis = 0; axis < 2; axis++) {
                kp_formula *f;
                const char *label;
                if (kpt_gpu_case_formula(ctx, c, axis, &f, &label) != KP_OK) {
                    printf("FAIL: %s: %s\n", label, kp_context_message(ctx));
                    failures++;
                    continue;
                }
                char *src = kernel_source(ctx, f, dt, n);
                kp_formula_free(f);
                if (!src) {
                    printf("FAIL: %s: no source: %s\n", label, kp_context_message(ctx));
                    failures++;
                    continue;
                }
                snprintf(labbuf[n], 512, "%s", label);
                labels[n] = labbuf[n];
                sb_add(&tu, src);
                srcs[n++] = src;
            }
        kernels += n;
        for (int a = 0; a < 2; a++) {
            char *log = NULL;
            int rc = kpt_nvrtc_compile(tu.p, "libkp_cases.cu", archs[a], &log);
            printf("%s %s: %d kernels in one unit: %s\n", dt == KP_FLOAT32 ? "float32" : "float64", archs[a], n,
                   rc == 0 ? "compiled" : "COMPILE ERROR");
            free(log);
            if (rc == 0) continue;
            for (int k = 0; k < n; k++) { /* name the culprits */
                char *klog = NULL;
                if (kpt_nvrtc_compile(srcs[k], "kernel.cu", archs[a], &klog) != 0) {
                    printf("FAIL: %s %s: %s\n%s\n", archs[a], dt == KP_FLOAT32 ? "float32" : "float64", labels[k],
                           klog ? klog : "");
                    failures++;
                }
                free(klog);
            }
        }
        for (int k = 0; k < n; k++) free(srcs[k]);
        free(srcs);
        free(labels);
        free(labbuf);
        free(tu.p);
    }
    failures += compile_exact(ctx, archs);
    kp_context_free(ctx);
    printf("%d kernels per architecture, %d failures\n", kernels, failures);
    return failures ? 1 : 0;
}
