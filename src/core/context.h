/* context.h — the kp_context object and the error-reporting helpers every layer uses. */
#ifndef KP_CORE_CONTEXT_H
#define KP_CORE_CONTEXT_H

#include "kp.h"
#include "core/alloc.h"

#define KP_MESSAGE_MAX 512

struct kp_node_store; /* formula/node.h */

struct kp_context {
    char message[KP_MESSAGE_MAX];
    int num_threads;            /* 0 = KP_NUM_THREADS or all cores */
    kp_sum_scheme sum_scheme;
    kp_math_mode math_mode;      /* GPU kernels' float32 functions */
    struct kp_node_store *nodes; /* hash-consed formula DAG nodes, owned */
    kp_engine engine;            /* kp_context_set_engine (src/gpu); 0 = KP_ENGINE_CPU */
    kp_alloc_fn alloc;           /* every allocation of the context (core/alloc.h) */
    void *alloc_user;
};

/* Records a failure: formats the message into ctx (if ctx) and returns status,
 * so call sites read `return kp__fail(ctx, KP_ERR_SHAPE, "...", ...);`. */
kp_status kp__fail(kp_context *ctx, kp_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "prefix" to the message already in ctx (used to add positions). */
void kp__prefix_message(kp_context *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Effective thread count: explicit > 0 wins, else context, else env, else cores. */
int kp__resolve_threads(const kp_context *ctx, int requested);

/* Checked size arithmetic: return 0 on overflow. */
int kp__mul_size(int64_t a, int64_t b, int64_t *out);

#endif
