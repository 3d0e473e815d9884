/*
 * progcache.h — the programs a GPU engine has loaded (OpenCL cl_program, CUDA
 * CUmodule), one table behind both engines: keyed by device and the SHA-256
 * of the program's source and build options (kcache.h's key), kept for the
 * process. Thread-safe. Compiled images on disk are kcache.c's concern; this
 * is the in-process table of what is loaded on a device.
 */
#ifndef KP_GPU_PROGCACHE_H
#define KP_GPU_PROGCACHE_H

#include <pthread.h>

#include "gpu/kcache.h"

typedef struct kp_progcache_entry kp_progcache_entry;

typedef struct kp_progcache {
    pthread_mutex_t lock;
    kp_progcache_entry *head; /* newest first */
    int n;
    int cap;                        /* entries kept at most; 0: no limit */
    void (*release)(void *program); /* frees an evicted program; NULL: never evicts */
} kp_progcache;

#define KP_PROGCACHE_INIT(cap, release) {PTHREAD_MUTEX_INITIALIZER, NULL, 0, (cap), (release)}

/* The key of a program: source and build options (NULL: none). */
void kp__progcache_key(kp_kcache_key *key, const char *source, const char *options);
/* The program loaded for (device, key), or NULL. */
void *kp__progcache_find(kp_progcache *c, int device, const kp_kcache_key *key);
/* Keeps program for (device, key); beyond cap the oldest entry is released.
 * Returns 0 when out of memory (the caller keeps and frees program). An
 * engine that may evict must not hold a program across calls without its own
 * lock (OpenCL runs one call at a time; CUDA never evicts). */
int kp__progcache_add(kp_progcache *c, int device, const kp_kcache_key *key, void *program);

#endif
