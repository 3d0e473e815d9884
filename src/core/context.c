/* context.c — contexts, status strings, messages, array descriptor helpers. */
#include "core/context.h"

#include <omp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formula/node.h"

const char *kp_status_string(kp_status status) {
    switch (status) {
#define KP__STATUS_CASE(name, value, text) \
    case name:                             \
        return text;
        KP_STATUS_LIST(KP__STATUS_CASE)
#undef KP__STATUS_CASE
    }
    return "unknown status";
}

kp_status kp_context_new(kp_context **out) { return kp_context_new_with_allocator(NULL, NULL, out); }

kp_status kp_context_new_with_allocator(kp_alloc_fn alloc, void *user, kp_context **out) {
    if (!out) return KP_ERR_NULL;
    kp_context proto; /* the allocator, before the context exists */
    memset(&proto, 0, sizeof proto);
    proto.alloc = alloc ? alloc : kp__default_alloc;
    proto.alloc_user = user;
    kp_context *ctx = kp__calloc(&proto, 1, sizeof *ctx);
    if (!ctx) return KP_ERR_OOM;
    ctx->alloc = proto.alloc;
    ctx->alloc_user = user;
    ctx->nodes = kp__node_store_new(ctx);
    if (!ctx->nodes) {
        kp__free(&proto, ctx);
        return KP_ERR_OOM;
    }
    ctx->sum_scheme = KP_SUM_BLOCK;
    *out = ctx;
    return KP_OK;
}

void kp_context_free(kp_context *ctx) {
    if (!ctx) return;
    kp__node_store_free(ctx->nodes);
    kp_context proto = *ctx; /* ctx's allocator frees ctx itself */
    kp__free(&proto, ctx);
}

const char *kp_context_message(const kp_context *ctx) { return ctx ? ctx->message : "null context"; }

kp_status kp_context_set_num_threads(kp_context *ctx, int num_threads) {
    if (!ctx) return KP_ERR_NULL;
    if (num_threads < 0 || num_threads > 4096)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "num_threads must be in [0, 4096], got %d", num_threads);
    ctx->num_threads = num_threads;
    return KP_OK;
}

kp_status kp_context_set_sum_scheme(kp_context *ctx, kp_sum_scheme scheme) {
    if (!ctx) return KP_ERR_NULL;
    if (scheme != KP_SUM_BLOCK && scheme != KP_SUM_KAHAN && scheme != KP_SUM_PLAIN && scheme != KP_SUM_EXACT)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "unknown sum scheme %d", (int)scheme);
    ctx->sum_scheme = scheme;
    return KP_OK;
}

kp_status kp_context_set_math_mode(kp_context *ctx, kp_math_mode mode) {
    if (!ctx) return KP_ERR_NULL;
    if (mode != KP_MATH_ACCURATE && mode != KP_MATH_FAST)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "unknown math mode %d", (int)mode);
    ctx->math_mode = mode;
    return KP_OK;
}

kp_status kp__fail(kp_context *ctx, kp_status status, const char *fmt, ...) {
    if (ctx) { /* through a copy: an argument may be ctx's own message ("%s", kp_context_message(ctx)) */
        char text[KP_MESSAGE_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
        memcpy(ctx->message, text, sizeof text);
    }
    return status;
}

void kp__prefix_message(kp_context *ctx, const char *fmt, ...) {
    if (!ctx) return;
    char prefix[128], old[KP_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, ctx->message, sizeof old);
    size_t np = strlen(prefix), room = sizeof ctx->message - 1;
    if (np > room) np = room;
    memcpy(ctx->message, prefix, np);
    size_t no = 0;
    while (no < room - np && old[no]) no++;
    memcpy(ctx->message + np, old, no);
    ctx->message[np + no] = '\0';
}

int kp__resolve_threads(const kp_context *ctx, int requested) {
    if (requested > 0) return requested;
    if (ctx && ctx->num_threads > 0) return ctx->num_threads;
    const char *env = getenv("KP_NUM_THREADS");
    if (env && *env) {
        char *end = NULL;
        long v = strtol(env, &end, 10);
        if (end && *end == '\0' && v > 0 && v <= 4096) return (int)v;
    }
    int n = omp_get_num_procs();
    return n > 0 ? n : 1;
}

int kp__mul_size(int64_t a, int64_t b, int64_t *out) { return !__builtin_mul_overflow(a, b, out); }

kp_array kp_array_nd(void *data, kp_dtype dtype, int ndim, const int64_t *shape) {
    kp_array a;
    memset(&a, 0, sizeof a);
    a.data = data;
    a.dtype = dtype;
    a.device = KP_DEVICE_CPU;
    if (ndim < 0 || ndim > KP_MAX_DIMS || !shape) {
        a.ndim = -1; /* rejected later with a clear message */
        return a;
    }
    a.ndim = ndim;
    int64_t stride = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        a.shape[d] = shape[d];
        a.strides[d] = stride;
        /* Saturate: kp_plan_exec then reports the size as too large. */
        if (__builtin_mul_overflow(stride, shape[d] > 0 ? shape[d] : 1, &stride)) stride = INT64_MAX;
    }
    return a;
}

kp_array kp_array_1d(void *data, kp_dtype dtype, int64_t n) { return kp_array_nd(data, dtype, 1, &n); }

kp_array kp_array_2d(void *data, kp_dtype dtype, int64_t rows, int64_t cols) {
    int64_t shape[2] = {rows, cols};
    return kp_array_nd(data, dtype, 2, shape);
}
