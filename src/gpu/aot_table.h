/*
 * aot_table.h — layout of the ahead-of-time kernel table that aot_gen.c writes
 * at build time (aot_table.c in the build tree) and aot.c searches. Without
 * nvcc the library links aot_table_empty.c instead (no entries).
 */
#ifndef KP_GPU_AOT_TABLE_H
#define KP_GPU_AOT_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "gpu/sha256.h"

typedef struct kp_aot_entry {
    uint8_t digest[KP_SHA256_BYTES]; /* SHA-256 of the exact CUDA source the image was compiled from */
    uint64_t source_len;             /* its length in bytes (a cheap first check) */
    uint64_t offset, size;           /* the fatbin: kp__aot_blob[offset .. offset + size), 16-byte aligned */
} kp_aot_entry;

/* Sorted by digest (memcmp order), kp__aot_nentries of them. */
extern const kp_aot_entry kp__aot_entries[];
extern const size_t kp__aot_nentries;
/* All fatbins, concatenated (16-byte aligned start). */
extern const unsigned char kp__aot_blob[];
/* Target architectures of every image, e.g. "sm_75 sm_80 sm_86 sm_89 sm_90 compute_75" ("" when empty). */
extern const char kp__aot_targets[];

#endif
