/*
 * cuda_compile.h — CUDA C++ source to a loadable image: the built-in
 * ahead-of-time kernels (aot.h) first, then the kernel cache (kcache.h), then
 * NVRTC (whose output is stored in the cache). No kp_context, no device: the
 * target is a compute capability, so this is testable without a GPU.
 */
#ifndef KP_GPU_CUDA_COMPILE_H
#define KP_GPU_CUDA_COMPILE_H

#include <stddef.h>

#include "gpu/cuda_driver.h"
#include "gpu/kcache.h"
#include "kp.h"

typedef enum kp_cuda_image_source { KP_IMAGE_AOT = 0, KP_IMAGE_CACHE = 1, KP_IMAGE_NVRTC = 2 } kp_cuda_image_source;

typedef struct kp_cuda_image {
    void *data;           /* cubin, fatbin or NUL-terminated PTX; owned unless source is AOT */
    size_t len;
    int is_ptx;
    char arch[32];        /* "sm_90" or "compute_90" ("" for AOT) */
    kp_cuda_image_source source;
} kp_cuda_image;

/* NVRTC target for compute capability cc (major*10+minor): "sm_<cc>" (cubin)
 * when this NVRTC can generate code for it; else PTX for the highest virtual
 * architecture it knows below cc ("compute_<x>"), which the driver compiles
 * for the device (a device newer than NVRTC). Returns 0 when NVRTC knows no
 * architecture <= cc (a device older than NVRTC supports). */
int kp__nvrtc_target(const kp_nvrtc_api *nv, int cc, char *arch, size_t size, int *is_ptx);

/* Compiles src for arch with NVRTC; *image is malloc'd (PTX NUL-terminated).
 * Errors: KP_ERR_UNSUPPORTED (no NVRTC), KP_ERR_INTERNAL (compile error: the
 * message carries the start of the NVRTC log), KP_ERR_OOM. */
kp_status kp__nvrtc_compile(const char *src, const char *arch, int is_ptx, void **image, size_t *len, char *msg,
                            size_t msgsize);

/* Image of src for compute capability cc, through aot -> cache -> NVRTC;
 * cache may be NULL (no caching). Release with kp__cuda_image_free. */
kp_status kp__cuda_image(kp_kcache *cache, const char *src, int cc, kp_cuda_image *img, char *msg, size_t msgsize);
/* The same without the built-in table: cache -> NVRTC (when the driver refuses
 * a built-in image, e.g. a driver older than the nvcc that built it). */
kp_status kp__cuda_image_compiled(kp_kcache *cache, const char *src, int cc, kp_cuda_image *img, char *msg,
                                  size_t msgsize);
void kp__cuda_image_free(kp_cuda_image *img);

#endif
