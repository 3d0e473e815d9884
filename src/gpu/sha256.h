/*
 * sha256.h — SHA-256 (FIPS 180-4), for the ahead-of-time kernel table (aot.c):
 * a built-in kernel is found by the digest of its exact CUDA source, so the
 * table need not store the sources. A cryptographic hash, because a collision
 * would launch a kernel with other argument shapes (out-of-bounds device reads),
 * and formula text may come from users.
 */
#ifndef KP_GPU_SHA256_H
#define KP_GPU_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define KP_SHA256_BYTES 32

/* digest <- SHA-256 of data[0..len). Pure function: thread-safe, no allocation. */
void kp__sha256(const void *data, size_t len, uint8_t digest[KP_SHA256_BYTES]);

#endif
