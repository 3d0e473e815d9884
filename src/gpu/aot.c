/*
 * aot.c — lookup of the ahead-of-time compiled CUDA kernels (contract in aot.h).
 *
 * The key is the SHA-256 of the exact source codegen.c prints: any difference
 * (formula, dims, dtype, argument positions, block size, kernel name, or a
 * change of the generator itself) is a miss and the engine compiles with NVRTC,
 * so a built-in image can never disagree with what NVRTC would have compiled.
 * The table is constant data: lookups are thread-safe and allocate nothing.
 */
#include "gpu/aot.h"

#include <string.h>

#include "gpu/aot_table.h"

const void *kp__cuda_aot_image(const char *source, size_t source_len) {
    if (!source || kp__aot_nentries == 0) return NULL;
    uint8_t d[KP_SHA256_BYTES];
    kp__sha256(source, source_len, d);
    size_t lo = 0, hi = kp__aot_nentries; /* binary search over [lo, hi) */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(d, kp__aot_entries[mid].digest, sizeof d);
        if (c == 0) {
            const kp_aot_entry *e = &kp__aot_entries[mid];
            return e->source_len == source_len ? kp__aot_blob + e->offset : NULL;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t kp__cuda_aot_count(void) { return kp__aot_nentries; }

size_t kp__cuda_aot_image_size(const void *image) {
    for (size_t k = 0; k < kp__aot_nentries; k++)
        if (kp__aot_blob + kp__aot_entries[k].offset == image) return (size_t)kp__aot_entries[k].size;
    return 0;
}

const char *kp__cuda_aot_targets(void) { return kp__aot_targets; }
