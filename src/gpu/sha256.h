/*
 * sha256.h — SHA-256 (FIPS 180-4), our own small implementation.
 *
 * Why a cryptographic hash: the kernel cache (kcache.c) names files and
 * checks their payloads by hash. The key is text we generate, but formulas
 * may come from users, and a 64-bit non-cryptographic hash (FNV-1a) can be
 * made to collide on purpose; then one formula would silently run another's
 * kernel. Debian's libcrypto/nettle are not otherwise linked into libkp and
 * one hash is not worth a new run-time dependency, so libkp carries these
 * ~100 lines (checked against the FIPS test vectors in tests/gpu/test_kcache.c).
 */
#ifndef KP_GPU_SHA256_H
#define KP_GPU_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define KP_SHA256_SIZE 32

typedef struct kp_sha256 {
    uint32_t h[8];
    uint64_t len; /* bytes hashed so far */
    unsigned char buf[64];
    size_t nbuf;
} kp_sha256;

void kp__sha256_init(kp_sha256 *s);
void kp__sha256_update(kp_sha256 *s, const void *data, size_t n);
void kp__sha256_final(kp_sha256 *s, unsigned char digest[KP_SHA256_SIZE]);
/* One-shot. */
void kp__sha256(const void *data, size_t n, unsigned char digest[KP_SHA256_SIZE]);

#endif
