/*
 * kcache.h — the compiled-kernel cache: bytes stored under a key, in memory
 * (per process) and on disk (per user). It knows nothing of CUDA: cuda.c
 * stores NVRTC's cubin/PTX under the key (source, architecture, NVRTC
 * version), so the cache can be tested on machines without a GPU.
 *
 * Key: the SHA-256 of the key parts (kp__kcache_key), so equal parts give
 * equal keys and nothing else does in practice (see sha256.h for why not a
 * 64-bit hash).
 *
 * Disk: one file per key, named by the key in hex, in a per-user directory:
 * $KP_CACHE_DIR, else $XDG_CACHE_HOME/libkp, else ~/.cache/libkp (created
 * 0700; $KP_CACHE_DIR=off disables the disk cache). The directory is refused
 * (memory-only cache, reason in kp__kcache_disabled_reason) unless it is a
 * directory owned by the current user and not writable by group or others:
 * someone else able to plant a file there could make us load their code.
 * Files are opened relative to the directory descriptor checked at open
 * time, without following symbolic links, and are refused unless they are
 * regular files owned by the user. A file is written to a temporary name in
 * the same directory (O_EXCL, random suffix), fsync'ed and renamed over the
 * final name, so readers see the old file or the new one, never a partial
 * one, whatever the number of concurrent writers (processes or threads).
 * Every file starts with a header (magic, format version, key echo, payload
 * length, SHA-256 of the payload); a file whose header or payload does not
 * check out (truncated, corrupted, another format) is ignored as a miss and
 * replaced by the next put.
 *
 * Size bound: the directory's cache files (key-named files) are kept under
 * a maximum total size, $KP_CACHE_MAX_SIZE bytes (optional K, M or G suffix,
 * powers of 1024; 0 = unbounded; unset, empty or malformed: the default,
 * KP_KCACHE_DEFAULT_MAX_SIZE), read when the cache is opened. A put that
 * takes the total past the bound removes least-recently-used cache files,
 * oldest modification time first, until the total is under 80% of it; a
 * disk hit sets its file's modification time to now (failing to is not an
 * error), so "used" means written or read from disk by some process. A put
 * spends about 20 ms at most removing files (two files at least): an
 * eviction it leaves unfinished goes on at this cache's next puts, from the
 * same listing, skipping files used since it was taken. Only
 * regular files owned by the user and named like a key are counted and
 * removed; other names (a writer's temporary file in flight, anything the
 * user put there), links and directories are left alone, except temporary
 * files untouched for KP_KCACHE_STALE_TMP_SECONDS (their writer died). A
 * file removed under a reader is a plain miss for it.
 *
 * Memory: a bounded list of recent entries (KP_KCACHE_MEMORY_ENTRIES), so a
 * process looks a kernel up on disk at most once. Thread-safe (one mutex per
 * cache).
 */
#ifndef KP_GPU_KCACHE_H
#define KP_GPU_KCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "gpu/sha256.h"

#define KP_KCACHE_MEMORY_ENTRIES 64
#define KP_KCACHE_FORMAT 1
#define KP_KCACHE_DEFAULT_MAX_SIZE ((uint64_t)256 << 20)
#define KP_KCACHE_STALE_TMP_SECONDS 3600

typedef struct kp_kcache kp_kcache;

typedef struct kp_kcache_key {
    unsigned char d[KP_SHA256_SIZE];
} kp_kcache_key;

/* Key of n byte strings (each length-prefixed, so ("ab","c") != ("a","bc")). */
void kp__kcache_key(kp_kcache_key *key, size_t n, const void *const *parts, const size_t *lens);

/* Opens a cache on directory dir (NULL: the default location above). Never
 * fails for a bad directory: the cache then lives in memory only and
 * kp__kcache_disabled_reason says why. Returns NULL only when out of memory. */
kp_kcache *kp__kcache_open(const char *dir);
void kp__kcache_close(kp_kcache *c);
/* The process-wide cache at the default location (opened on first use);
 * NULL when out of memory. Never closed. */
kp_kcache *kp__kcache_default(void);
/* NULL when the disk cache is in use, else a one-line reason ("cache
 * directory /x is writable by group or others"). */
const char *kp__kcache_disabled_reason(const kp_kcache *c);
/* The directory in use ("" when disabled). */
const char *kp__kcache_dir(const kp_kcache *c);

/* Looks key up, in memory then on disk. Returns 1 and a malloc'd copy of the
 * bytes in *data (the caller frees it), *len its length; 0 on a miss (or when
 * out of memory). A disk hit is remembered in memory. */
int kp__kcache_get(kp_kcache *c, const kp_kcache_key *key, void **data, size_t *len);
/* Stores the bytes under key, in memory and (if enabled) on disk. Returns 1
 * when the disk write succeeded, 0 otherwise (memory only; not an error for
 * callers: a cache failure never stops a compilation). */
int kp__kcache_put(kp_kcache *c, const kp_kcache_key *key, const void *data, size_t len);

/* The size bound in bytes (0: unbounded), and a setter for tests. */
uint64_t kp__kcache_max_size(kp_kcache *c);
void kp__kcache_set_max_size(kp_kcache *c, uint64_t bytes);
/* Tests and benchmarks: the time a put may spend removing files (nanoseconds). */
void kp__kcache_set_evict_budget(kp_kcache *c, long ns);
/* Parses a KP_CACHE_MAX_SIZE value ("4096", "64K", "256M", "1G"); 1 and
 * *bytes on success, 0 for anything else (empty, sign, spaces, fractions,
 * other suffixes, overflow). */
int kp__kcache_parse_size(const char *text, uint64_t *bytes);

/* Statistics, for tests and diagnostics. size_scans: directory scans for
 * the size bound; evicted_files: cache files this cache removed for it. */
typedef struct kp_kcache_stats {
    long memory_hits, disk_hits, misses, disk_writes, rejected_files, size_scans, evicted_files;
} kp_kcache_stats;
void kp__kcache_get_stats(kp_kcache *c, kp_kcache_stats *out);

/* Path of key's file in the cache ("" when disabled); for tests. */
void kp__kcache_path(const kp_kcache *c, const kp_kcache_key *key, char *buf, size_t size);

#endif
