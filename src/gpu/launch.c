/* launch.c — launch geometry of the GPU engines (contract in launch.h). */
#include "gpu/launch.h"

#include <stdlib.h>

/* An integer environment variable, or dflt when unset or empty. */
static int64_t env_int(const char *name, int64_t dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    return strtoll(v, NULL, 10);
}

int64_t kp__gpu_chunk_length(int64_t ncols) {
    int64_t c = KP_GPU_CHUNK_MIN;
    while (c < KP_GPU_CHUNK_MAX && c * KP_GPU_MIN_CHUNKS < ncols) c *= 2;
    return c;
}

void kp__gpu_env_geometry(int *block, int *rows) {
    int64_t b = env_int("KP_GPU_BLOCK", 0), r = env_int("KP_GPU_ROWS", 0);
    *block = b > 0 && b <= 1024 && (b & (b - 1)) == 0 ? (int)b : 0;
    *rows = r > 0 && r <= KP_GPU_MAX_ROWS ? (int)r : 0;
}

kp_gpu_launch kp__gpu_launch_shape(const kp_gpu_kernel_info *info, int64_t nrows, int64_t ncols, int64_t nbatch,
                                   int64_t fill) {
    kp_gpu_launch L;
    L.chunk = env_int("KP_GPU_CHUNK", 0);
    if (L.chunk < 1) L.chunk = kp__gpu_chunk_length(ncols);
    L.nchunks = ncols > 0 ? (ncols + L.chunk - 1) / L.chunk : 1;
    const int64_t rows_per_block = (int64_t)info->block * info->rows;
    L.nblocks = (nrows + rows_per_block - 1) / rows_per_block;
    L.split = L.nchunks > 1 && L.nblocks * nbatch < fill;
    int64_t force = env_int("KP_GPU_SPLIT", -1);
    if (force == 0) L.split = 0;
    if (force == 1 && L.nchunks > 1) L.split = 1;
    if (info->no_split) L.split = 0;
    return L;
}

static void push(kp_gpu_kernel_args *k, const void *at, size_t size) {
    k->a[k->n].at = at;
    k->a[k->n].size = size;
    k->n++;
}

void kp__gpu_reduce_args(kp_gpu_kernel_args *k, int nused, const kp_gpu_mem *bufs, const int64_t *bstride, size_t hs,
                         const kp_gpu_mem outs[4], const int64_t sizes[4], const int *split) {
    k->n = 0;
    for (int u = 0; u < nused; u++) {
        push(k, &bufs[u], hs);
        push(k, &bstride[u], sizeof bstride[u]);
    }
    for (int b = 0; b < 4; b++) push(k, &outs[b], hs);
    for (int q = 0; q < 4; q++) push(k, &sizes[q], sizeof sizes[q]);
    push(k, split, sizeof *split);
}

void kp__gpu_merge_args(kp_gpu_kernel_args *k, const kp_gpu_mem bufs[4], size_t hs, const int64_t sizes[3]) {
    k->n = 0;
    for (int b = 0; b < 4; b++) push(k, &bufs[b], hs);
    for (int q = 0; q < 3; q++) push(k, &sizes[q], sizeof sizes[q]);
}

void kp__gpu_ranges_args(kp_gpu_kernel_args *k, const kp_gpu_mem bufs[2], size_t hs) {
    for (int b = 0; b < 2; b++) push(k, &bufs[b], hs);
}

void kp__gpu_offset_args(kp_gpu_kernel_args *k, const int64_t offsets[2]) {
    for (int b = 0; b < 2; b++) push(k, &offsets[b], sizeof offsets[b]);
}
