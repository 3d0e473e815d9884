/*
 * sha256.h — SHA-256 for the kernel cache, from Debian's nettle (nettle-dev).
 *
 * Why a cryptographic hash: the kernel cache (kcache.c) names files and
 * checks their payloads by hash. The key is text we generate, but formulas
 * may come from users, and a 64-bit non-cryptographic hash (FNV-1a) can be
 * made to collide on purpose; then one formula would silently run another's
 * kernel; the ahead-of-time table (aot.c) finds a built-in kernel by the digest
 * of its exact source, and a collision there would launch a kernel with other
 * argument shapes. These wrappers keep both independent of the library's names.
 */
#ifndef KP_GPU_SHA256_H
#define KP_GPU_SHA256_H

#include <nettle/sha2.h>
#include <stddef.h>

#define KP_SHA256_SIZE SHA256_DIGEST_SIZE
#define KP_SHA256_BYTES SHA256_DIGEST_SIZE

typedef struct sha256_ctx kp_sha256;

static inline void kp__sha256_init(kp_sha256 *s) { sha256_init(s); }
static inline void kp__sha256_update(kp_sha256 *s, const void *data, size_t n) {
    sha256_update(s, n, (const uint8_t *)data);
}
static inline void kp__sha256_final(kp_sha256 *s, unsigned char digest[KP_SHA256_SIZE]) {
    sha256_digest(s, KP_SHA256_SIZE, digest);
}
/* One-shot. */
static inline void kp__sha256(const void *data, size_t n, unsigned char digest[KP_SHA256_SIZE]) {
    kp_sha256 s;
    kp__sha256_init(&s);
    kp__sha256_update(&s, data, n);
    kp__sha256_final(&s, digest);
}

#endif
