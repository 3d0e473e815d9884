/*
 * cuda_test_mem.h — what the tests that drive CUDA themselves share
 * (test_gpu_cuda.c, test_gpu_half.c): a failure counter with its CHECK, and
 * device memory through the driver table cu on the stream `stream`, which
 * cuda_test_setup makes.
 */
#ifndef KP_TESTS_GPU_CUDA_TEST_MEM_H
#define KP_TESTS_GPU_CUDA_TEST_MEM_H

#include <stdint.h>
#include <stdio.h>

#include "gpu/cuda_driver.h"

static int failures;
static const kp_cuda_driver *cu;
static CUstream stream;

#define CHECK(cond, ...)                  \
    do {                                  \
        if (!(cond)) {                    \
            printf("FAIL: " __VA_ARGS__); \
            printf("\n");                 \
            failures++;                   \
        }                                 \
    } while (0)

/* A device copy of bytes of host (8 bytes when 0); NULL on failure. */
static inline void *dev_upload(const void *host, size_t bytes) {
    CUdeviceptr p = 0;
    if (cu->MemAlloc(&p, bytes ? bytes : 8) != KP_CUDA_SUCCESS) return NULL;
    if (bytes && (cu->MemcpyHtoDAsync(p, host, bytes, stream) != KP_CUDA_SUCCESS ||
                  cu->StreamSynchronize(stream) != KP_CUDA_SUCCESS))
        return NULL;
    return (void *)(uintptr_t)p;
}

static inline int dev_download(void *host, const void *dev, size_t bytes) {
    if (!bytes) return 1;
    return cu->MemcpyDtoHAsync(host, (CUdeviceptr)(uintptr_t)dev, bytes, stream) == KP_CUDA_SUCCESS &&
           cu->StreamSynchronize(stream) == KP_CUDA_SUCCESS;
}

static inline void dev_free(void *p) {
    if (p) cu->MemFree((CUdeviceptr)(uintptr_t)p);
}

/* cu and stream for CUDA device 0, its primary context made current; 0 with
 * a message printed when it cannot be. */
static inline int cuda_test_setup(void) {
    char w[320];
    const kp_cuda_device *dev = kp__cuda_device(0, w, sizeof w);
    cu = kp__cuda_driver(NULL);
    if (!dev || cu->CtxPushCurrent(dev->ctx) != KP_CUDA_SUCCESS ||
        cu->StreamCreate(&stream, 1 /* CU_STREAM_NON_BLOCKING */) != KP_CUDA_SUCCESS) {
        printf("FAIL: test setup on CUDA device 0: %s\n", w);
        return 0;
    }
    return 1;
}

#endif
