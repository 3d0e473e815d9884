/* alloc.h — every allocation libkp makes for a context goes through its allocator (kp_alloc_fn). */
#ifndef KP_CORE_ALLOC_H
#define KP_CORE_ALLOC_H

#include <stddef.h>

#include "kp.h"

/* Alignment of kp__alloc's blocks: enough for any C type (max_align_t). */
#define KP__ALLOC_ALIGN 16

/* malloc, calloc, realloc and free through ctx's allocator (the C library's
 * when ctx is NULL; a block must be freed or resized with the context it was
 * allocated with). Each block carries a header holding its size, so that the
 * caller's allocator is told the old size of what it frees or resizes, as
 * kp_alloc_fn promises. A zero size allocates one byte; NULL on failure (and
 * on size overflow), leaving p as it was. Thread-safe as the allocator is. */
void *kp__alloc(kp_context *ctx, size_t size);
void *kp__calloc(kp_context *ctx, size_t count, size_t size);
void *kp__realloc(kp_context *ctx, void *p, size_t size);
void kp__free(kp_context *ctx, void *p);
/* A block aligned to align (a power of two, at most 4096), for SIMD buffers;
 * freed with kp__free, not resized. */
void *kp__alloc_aligned(kp_context *ctx, size_t size, size_t align);

/* The C library's allocator: the default of every context. */
void *kp__default_alloc(void *user, void *ptr, size_t old_size, size_t new_size, size_t alignment);

#endif
