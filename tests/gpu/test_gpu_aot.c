/*
 * test_gpu_aot.c — the ahead-of-time CUDA kernels (src/gpu/aot.h). Needs no GPU.
 *
 *   test_gpu_aot sha256   SHA-256 (the table's key) against FIPS 180-4 / hashlib
 *                         vectors, padding edge lengths included. Always runs.
 *   test_gpu_aot table    (skipped, exit 77, when libkp was built without nvcc)
 *     - the table is well formed: sorted digests, aligned images, count;
 *     - every standard formula (src/gpu/aot_set.c) and each of its first
 *       gradients, float32 and float64, generated at run time through the
 *       public API as a user does (parse with aliases, kp_formula_grad,
 *       kp_formula_gpu_source), is found, both by kp_formula_cuda_aot and by
 *       kp__cuda_aot_image on the printed source;
 *     - each image is a fatbin (magic 0xBA55ED50) holding SASS (ELF) for every
 *       configured sm_XX and PTX for the configured compute_XX (KP_AOT_TARGETS
 *       from CMake, also equal to what the table says it holds);
 *     - formulas written by hand the way pykp and the kp.h example write them
 *       hit, with any alias names or explicit positions; gradients requested
 *       in pykp's order (increasing argument) on one context hit, for every
 *       subset of arguments; in one long-lived context that built all the
 *       others before, in any order, everything still hits;
 *     - non-standard formulas, other argument orders and altered sources miss.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gpu/aot.h"
#include "gpu/aot_set.h"
#include "gpu/aot_table.h"
#include "gpu/sha256.h"
#include "kp.h"

#ifndef KP_AOT_TARGETS
#define KP_AOT_TARGETS ""
#endif

/* ------------------------------------------------------------ SHA-256 */

static void check_sha(const void *msg, size_t len, const char *expect_hex) {
    uint8_t d[KP_SHA256_BYTES];
    char hex[2 * KP_SHA256_BYTES + 1];
    kp__sha256(msg, len, d);
    for (int i = 0; i < KP_SHA256_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    if (strcmp(hex, expect_hex) != 0) fail_msg("sha256 of %zu bytes: %s, expected %s", len, hex, expect_hex);
}

static void test_sha256_vectors(void **state) {
    (void)state;
    check_sha("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_sha("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    check_sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* Lengths around the padding boundary (55: length fits the block; 56: it does not). */
    static const struct {
        size_t n;
        const char *hex;
    } as[] = {{55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
              {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
              {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
              {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
              {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
              {1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"}};
    char *a = malloc(1000000);
    assert_non_null(a);
    memset(a, 'a', 1000000);
    for (size_t k = 0; k < sizeof as / sizeof as[0]; k++)
        check_sha(a, as[k].n, as[k].hex);
    free(a);
}

/* ------------------------------------------------------------ helpers */

static char *gpu_source(kp_context *ctx, const kp_formula *f, kp_dtype dt, size_t *len) {
    size_t need = 0;
    assert_int_equal(kp_formula_gpu_source(ctx, f, dt, KP_ENGINE_CUDA, NULL, 0, &need), KP_OK);
    char *src = malloc(need + 1);
    assert_non_null(src);
    assert_int_equal(kp_formula_gpu_source(ctx, f, dt, KP_ENGINE_CUDA, src, need + 1, NULL), KP_OK);
    *len = need;
    return src;
}

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/*
 * Fatbin layout (as nvcc/fatbinary write it; not a documented format, so the
 * checks are the stable parts): header {u32 magic 0xBA55ED50, u16 version,
 * u16 header size, u64 size of the entries}; each entry {u16 kind (1 PTX,
 * 2 ELF/SASS), u16 version, u32 header size, u64 payload size, ..., u32 arch
 * at byte 28 (75 for sm_75 / compute_75)}, payload after the entry header.
 * Asserts that every target of `targets` ("sm_75 ... compute_75") is present.
 */
static void check_fatbin(const unsigned char *img, size_t size, const char *targets, const char *what) {
    if (size < 16 || rd32(img) != 0xBA55ED50u)
        fail_msg("%s: not a fatbin (magic %08x)", what, size >= 4 ? rd32(img) : 0);
    size_t hsize = (size_t)(img[6] | img[7] << 8);
    uint64_t body = rd64(img + 8);
    if (hsize < 16 || hsize + body > size)
        fail_msg("%s: fatbin sizes %zu + %llu > image %zu", what, hsize, (unsigned long long)body, size);
    int have_sass[1024] = {0}, have_ptx[1024] = {0};
    size_t at = hsize, end = hsize + (size_t)body;
    int nentries = 0;
    while (at + 32 <= end) {
        unsigned kind = (unsigned)(img[at] | img[at + 1] << 8);
        uint32_t ehsize = rd32(img + at + 4);
        uint64_t payload = rd64(img + at + 8);
        uint32_t arch = rd32(img + at + 28);
        if (ehsize < 32 || at + ehsize + payload > end) fail_msg("%s: entry %d out of bounds", what, nentries);
        if (arch < 1024) {
            if (kind == 2)
                have_sass[arch] = 1;
            else if (kind == 1)
                have_ptx[arch] = 1;
        }
        at += ehsize + (size_t)payload;
        nentries++;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", targets);
    int ntargets = 0;
    for (char *t = strtok(buf, " "); t; t = strtok(NULL, " ")) {
        int sm = 0;
        if (sscanf(t, "sm_%d", &sm) == 1) {
            if (sm <= 0 || sm >= 1024 || !have_sass[sm]) fail_msg("%s: no SASS for %s", what, t);
        } else if (sscanf(t, "compute_%d", &sm) == 1) {
            if (sm <= 0 || sm >= 1024 || !have_ptx[sm]) fail_msg("%s: no PTX for %s", what, t);
        } else {
            fail_msg("unknown target '%s'", t);
        }
        ntargets++;
    }
    assert_true(ntargets > 0);
    assert_int_equal(nentries, ntargets); /* nothing else in the image */
}

/* 1 if the source of f in dt is in the table; checks the two lookups agree and the image is whole. */
static int hits(kp_context *ctx, const kp_formula *f, kp_dtype dt, const char *what) {
    int built_in = -1;
    assert_int_equal(kp_formula_cuda_aot(ctx, f, dt, &built_in), KP_OK);
    size_t len = 0;
    char *src = gpu_source(ctx, f, dt, &len);
    const void *img = kp__cuda_aot_image(src, len);
    free(src);
    if ((img != NULL) != built_in) fail_msg("%s: kp_formula_cuda_aot and kp__cuda_aot_image disagree", what);
    if (img) check_fatbin(img, kp__cuda_aot_image_size(img), kp__cuda_aot_targets(), what);
    return built_in;
}

static kp_formula *parse(kp_context *ctx, const char *text, const char *const *aliases, size_t n) {
    kp_formula *f = NULL;
    if (kp_formula_parse(ctx, text, aliases, n, &f) != KP_OK) fail_msg("%s: %s", text, kp_context_message(ctx));
    return f;
}

/* ------------------------------------------------------------ table */

static void test_table_well_formed(void **state) {
    (void)state;
    size_t n = kp_cuda_aot_kernel_count();
    assert_int_equal(n, kp__aot_nentries);
    assert_int_equal(n, kp__cuda_aot_count());
    assert_string_equal(kp__cuda_aot_targets(), KP_AOT_TARGETS);
    for (size_t k = 0; k < n; k++) {
        const kp_aot_entry *e = &kp__aot_entries[k];
        if (k) assert_true(memcmp(kp__aot_entries[k - 1].digest, e->digest, KP_SHA256_BYTES) < 0);
        assert_int_equal(e->offset % 16, 0);
        assert_true(e->size >= 16 && e->source_len > 0);
        assert_true(((uintptr_t)(kp__aot_blob + e->offset)) % 16 == 0);
        assert_int_equal(kp__cuda_aot_image_size(kp__aot_blob + e->offset), e->size);
    }
    /* Every formula of the set, its gradients, two dtypes (no duplicates among them). */
    size_t expect = 0;
    for (size_t i = 0; i < kp__aot_set_count(); i++) {
        kp_aot_formula af;
        kp__aot_set_get(i, &af);
        expect += 2 * (size_t)(1 + af.ngrads);
    }
    assert_int_equal(n, expect);
    printf("table: %zu kernels for %s\n", n, kp__cuda_aot_targets());
}

/* Each standard formula in a fresh context, as a program that uses only it. */
static void test_standard_set_hits(void **state) {
    (void)state;
    static const kp_dtype dts[2] = {KP_FLOAT32, KP_FLOAT64};
    size_t checked = 0;
    for (size_t i = 0; i < kp__aot_set_count(); i++) {
        kp_aot_formula af;
        kp__aot_set_get(i, &af);
        kp_context *ctx = NULL;
        assert_int_equal(kp_context_new(&ctx), KP_OK);
        kp_formula *f = parse(ctx, af.text, af.aliases, af.n_aliases);
        for (int t = 0; t < 2; t++, checked++)
            if (!hits(ctx, f, dts[t], af.label)) fail_msg("%s (dtype %d): not in the table", af.label, (int)dts[t]);
        for (int q = 0; q < af.ngrads; q++) {
            int k = af.grads[q];
            kp_formula *g = NULL;
            assert_int_equal(kp_formula_grad(ctx, f, k, &g), KP_OK);
            for (int t = 0; t < 2; t++, checked++)
                if (!hits(ctx, g, dts[t], af.label))
                    fail_msg("%s, gradient %d (dtype %d): not in the table", af.label, k, (int)dts[t]);
            kp_formula_free(g);
        }
        kp_formula_free(f);
        kp_context_free(ctx);
    }
    assert_int_equal(checked, kp_cuda_aot_kernel_count());
}

static int has_grad(const kp_aot_formula *af, int k) {
    for (int q = 0; q < af->ngrads; q++)
        if (af->grads[q] == k) return 1;
    return 0;
}

/* pykp's backward: one context per thread, forward planned first, then the
 * gradients of the inputs that need one, in increasing argument order. Every
 * subset of arguments (sigma's gradient included: not built in, but it must
 * not change the text of the gradients requested after it), for a few
 * families. */
static void test_pykp_gradient_order(void **state) {
    (void)state;
    size_t picks[] = {0, 7, 12, 27, 38, 44}; /* several kernels, both modes, several dims */
    for (size_t p = 0; p < sizeof picks / sizeof picks[0]; p++) {
        if (picks[p] >= kp__aot_set_count()) continue;
        kp_aot_formula af;
        kp__aot_set_get(picks[p], &af);
        for (unsigned mask = 1; mask < (1u << af.nargs); mask++) {
            kp_context *ctx = NULL;
            assert_int_equal(kp_context_new(&ctx), KP_OK);
            kp_formula *f = parse(ctx, af.text, af.aliases, af.n_aliases);
            if (!hits(ctx, f, KP_FLOAT32, af.label)) fail_msg("%s: forward missed", af.label);
            for (int k = 0; k < af.nargs; k++) {
                if (!(mask & (1u << k))) continue;
                kp_formula *g = NULL;
                assert_int_equal(kp_formula_grad(ctx, f, k, &g), KP_OK);
                if (hits(ctx, g, KP_FLOAT32, af.label) != has_grad(&af, k))
                    fail_msg("%s: gradient %d %s (gradients requested: mask %u)", af.label, k,
                             has_grad(&af, k) ? "missed" : "unexpectedly built in", mask);
                kp_formula_free(g);
            }
            kp_formula_free(f);
            kp_context_free(ctx);
        }
    }
}

/* A long-lived context (pykp keeps one per thread): every standard formula one
 * after the other, forward and reverse, gradients in both orders. The kernel
 * text must not depend on what the context built before (kp__node_cmp). */
static void test_long_session(void **state) {
    (void)state;
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    size_t n = kp__aot_set_count();
    for (int pass = 0; pass < 2; pass++)
        for (size_t ii = 0; ii < n; ii++) {
            size_t i = pass ? n - 1 - ii : ii;
            kp_aot_formula af;
            kp__aot_set_get(i, &af);
            kp_formula *f = parse(ctx, af.text, af.aliases, af.n_aliases);
            for (int q = 0; q < af.ngrads; q++) {
                int k = af.grads[pass ? af.ngrads - 1 - q : q];
                kp_formula *g = NULL;
                assert_int_equal(kp_formula_grad(ctx, f, k, &g), KP_OK);
                if (!hits(ctx, g, pass ? KP_FLOAT64 : KP_FLOAT32, af.label))
                    fail_msg("%s, gradient %d: missed in a long session (pass %d)", af.label, k, pass);
                kp_formula_free(g);
            }
            if (!hits(ctx, f, KP_FLOAT32, af.label)) fail_msg("%s: missed in a long session (pass %d)", af.label, pass);
            kp_formula_free(f);
        }
    kp_context_free(ctx);
}

/* Formulas typed here by hand, as users write them (independent of aot_set.c). */
static void test_user_written_hits(void **state) {
    (void)state;
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    /* pykp.kernel_product(x, y, b, "gaussian", sigma) with x, y (N, 3), b (M,) */
    const char *pykp_al[] = {"xi0 = Vi(3)", "yj1 = Vj(3)", "pm0 = Pm(1)", "bj = Vj(1)"};
    kp_formula *f = parse(ctx, "Sum_Reduction((Exp(-SqDist(xi0,yj1)*Inv(Square(pm0))))*bj,1)", pykp_al, 4);
    assert_true(hits(ctx, f, KP_FLOAT32, "pykp gaussian"));
    assert_true(hits(ctx, f, KP_FLOAT64, "pykp gaussian"));
    kp_formula_free(f);
    /* mode="lse", laplacian, 2-D */
    const char *lap_al[] = {"xi0 = Vi(2)", "yj1 = Vj(2)", "pm0 = Pm(1)", "bj = Vj(1)"};
    f = parse(ctx, "LogSumExp_Reduction(((-Norm2(xi0-yj1)*Inv(pm0)))+bj,1)", lap_al, 4);
    assert_true(hits(ctx, f, KP_FLOAT32, "pykp laplacian lse"));
    kp_formula_free(f);
    kp_context_free(ctx);

    /* The kp.h worked example; other alias names; explicit positions, no aliases. */
    static const char *const texts[] = {"Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)",
                                        "Sum_Reduction(Exp(-SqDist(p,q)*g)*w,1)",
                                        "Sum_Reduction(Exp(-SqDist(Vi(0,3),Vj(1,3))*Pm(2,1))*Vj(3,3), 1)"};
    const char *al1[] = {"x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(3)"};
    const char *al2[] = {"p = Vi(3)", "q = Vj(3)", "g = Pm(1)", "w = Vj(3)"};
    const char *const *als[] = {al1, al2, NULL};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(kp_context_new(&ctx), KP_OK);
        f = parse(ctx, texts[k], als[k], als[k] ? 4 : 0);
        if (!hits(ctx, f, KP_FLOAT32, texts[k])) fail_msg("%s: missed", texts[k]);
        kp_formula *g = NULL;
        assert_int_equal(kp_formula_grad(ctx, f, 0, &g), KP_OK);
        if (!hits(ctx, g, KP_FLOAT64, texts[k])) fail_msg("%s, gradient 0: missed", texts[k]);
        kp_formula_free(g);
        assert_int_equal(kp_formula_grad(ctx, f, 2, &g), KP_OK); /* sigma's: left to NVRTC */
        if (hits(ctx, g, KP_FLOAT64, texts[k])) fail_msg("%s, gradient 2: unexpectedly built in", texts[k]);
        kp_formula_free(g);
        assert_int_equal(kp_formula_grad(ctx, f, 3, &g), KP_OK);
        if (!hits(ctx, g, KP_FLOAT32, texts[k])) fail_msg("%s, gradient 3: missed", texts[k]);
        kp_formula_free(g);
        kp_formula_free(f);
        kp_context_free(ctx);
    }
}

static void test_misses(void **state) {
    (void)state;
    kp_context *ctx = NULL;
    assert_int_equal(kp_context_new(&ctx), KP_OK);
    static const struct {
        const char *text;
        const char *al[4];
        size_t n;
        const char *why;
    } cases[] = {
        {"Sum_Reduction((Exp(-SqDist(xi0,yj1)*Inv(Square(pm0))))*bj,1)",
         {"xi0 = Vi(4)", "yj1 = Vj(4)", "pm0 = Pm(1)", "bj = Vj(1)"},
         4,
         "D = 4 is not built in"},
        {"Sum_Reduction((Exp(-SqDist(xi0,yj1)*Inv(Square(pm0))))*bj,1)",
         {"xi0 = Vi(3)", "yj1 = Vj(3)", "bj = Vj(1)", "pm0 = Pm(1)"},
         4,
         "b before sigma: other positions"},
        {"Min_Reduction(SqDist(x,y),1)", {"x = Vi(3)", "y = Vj(3)"}, 2, "Min is not built in"},
        {"Sum_Reduction(Exp(-SqDist(x,y))*b,1)", {"x = Vi(3)", "y = Vj(3)", "b = Vj(1)"}, 3, "no sigma"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        kp_formula *f = parse(ctx, cases[k].text, cases[k].al, cases[k].n);
        if (hits(ctx, f, KP_FLOAT32, cases[k].why)) fail_msg("%s: unexpectedly built in", cases[k].why);
        kp_formula_free(f);
    }
    /* One byte changed, one byte less: no image (the key is the whole text). */
    const char *al[] = {"x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(1)"};
    kp_formula *f = parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)", al, 4);
    size_t len = 0;
    char *src = gpu_source(ctx, f, KP_FLOAT32, &len);
    assert_non_null(kp__cuda_aot_image(src, len));
    assert_null(kp__cuda_aot_image(src, len - 1));
    src[len / 2] ^= 1;
    assert_null(kp__cuda_aot_image(src, len));
    assert_null(kp__cuda_aot_image(NULL, 0));
    free(src);
    int built_in = -1;
    assert_int_equal(kp_formula_cuda_aot(ctx, f, KP_INT64, &built_in), KP_ERR_DTYPE);
    assert_int_equal(built_in, 0);
    assert_int_equal(kp_formula_cuda_aot(ctx, NULL, KP_FLOAT32, &built_in), KP_ERR_NULL);
    assert_int_equal(kp_formula_cuda_aot(ctx, f, KP_FLOAT32, NULL), KP_ERR_NULL);
    kp_formula_free(f);
    kp_context_free(ctx);
}

int main(int argc, char **argv) {
    const char *group = argc > 1 ? argv[1] : "table";
    if (!strcmp(group, "sha256")) {
        const struct CMUnitTest t[] = {cmocka_unit_test(test_sha256_vectors)};
        return cmocka_run_group_tests_name("gpu_aot_sha256", t, NULL, NULL);
    }
    if (kp_cuda_aot_kernel_count() == 0) {
        printf("SKIPPED: libkp was built without ahead-of-time CUDA kernels (no nvcc, or KP_CUDA_AOT=OFF)\n");
        return 77;
    }
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_table_well_formed),   cmocka_unit_test(test_standard_set_hits),
        cmocka_unit_test(test_pykp_gradient_order), cmocka_unit_test(test_long_session),
        cmocka_unit_test(test_user_written_hits),   cmocka_unit_test(test_misses),
    };
    return cmocka_run_group_tests_name("gpu_aot", t, NULL, NULL);
}
