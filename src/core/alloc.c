/* alloc.c — the context's allocator: headers that remember sizes, the C library default. */
#include "core/alloc.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"

/* The header in front of every block: its size as the allocator saw it and
 * its alignment. It takes `align` bytes (at least KP__ALLOC_ALIGN), so the
 * block after it keeps the allocator's alignment. */
typedef struct block_header {
    size_t total; /* bytes asked of the allocator, header included */
    size_t align;
} block_header;

_Static_assert(sizeof(block_header) <= KP__ALLOC_ALIGN, "the header fits the smallest alignment");

void *kp__default_alloc(void *user, void *ptr, size_t old_size, size_t new_size, size_t alignment) {
    (void)user;
    if (new_size == 0) {
        free(ptr);
        return NULL;
    }
    if (alignment <= _Alignof(max_align_t)) return realloc(ptr, new_size); /* malloc's alignment suffices */
    size_t rounded = (new_size + alignment - 1) & ~(alignment - 1); /* aligned_alloc wants a multiple */
    if (rounded < new_size) return NULL;
    void *q = aligned_alloc(alignment, rounded);
    if (q && ptr) {
        memcpy(q, ptr, old_size < new_size ? old_size : new_size);
        free(ptr);
    }
    return q;
}

static kp_alloc_fn fn_of(const kp_context *ctx) { return ctx ? ctx->alloc : kp__default_alloc; }
static void *user_of(const kp_context *ctx) { return ctx ? ctx->alloc_user : NULL; }

static block_header *header_of(void *p) {
    block_header *h;
    size_t align;
    memcpy(&align, (char *)p - sizeof(size_t), sizeof align); /* the last word before p: the alignment */
    h = (block_header *)(void *)((char *)p - align);
    return h;
}

/* Writes the header of a block at base and returns the caller's pointer. */
static void *finish(void *base, size_t total, size_t align) {
    if (!base) return NULL;
    block_header h = {total, align};
    memcpy(base, &h, sizeof h);
    memcpy((char *)base + align - sizeof(size_t), &align, sizeof align);
    return (char *)base + align;
}

void *kp__alloc_aligned(kp_context *ctx, size_t size, size_t align) {
    if (align < KP__ALLOC_ALIGN) align = KP__ALLOC_ALIGN;
    if (align > 4096 || (align & (align - 1)) || size > SIZE_MAX - align) return NULL;
    size_t total = align + (size ? size : 1);
    return finish(fn_of(ctx)(user_of(ctx), NULL, 0, total, align), total, align);
}

void *kp__alloc(kp_context *ctx, size_t size) { return kp__alloc_aligned(ctx, size, KP__ALLOC_ALIGN); }

void *kp__calloc(kp_context *ctx, size_t count, size_t size) {
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) return NULL;
    void *p = kp__alloc(ctx, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void *kp__realloc(kp_context *ctx, void *p, size_t size) {
    if (!p) return kp__alloc(ctx, size);
    block_header *h = header_of(p), old;
    memcpy(&old, h, sizeof old);
    if (size > SIZE_MAX - old.align) return NULL;
    size_t total = old.align + (size ? size : 1);
    void *base = fn_of(ctx)(user_of(ctx), h, old.total, total, old.align);
    return finish(base, total, old.align);
}

void kp__free(kp_context *ctx, void *p) {
    if (!p) return;
    block_header *h = header_of(p), old;
    memcpy(&old, h, sizeof old);
    fn_of(ctx)(user_of(ctx), h, old.total, 0, old.align);
}
