/* cuda_compile.c — see cuda_compile.h. */
#include "gpu/cuda_compile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/aot.h"

/* Options of every NVRTC compilation. No fast-math: NaN/Inf behaviour and
 * the CPU's accuracy are part of the contract. */
static const char *const kp_nvrtc_options = "--std=c++17";

int kp__nvrtc_target(const kp_nvrtc_api *nv, int cc, char *arch, size_t size, int *is_ptx) {
    if (!nv->GetNumSupportedArchs) { /* NVRTC < 11.2: cannot ask; try the device's own */
        snprintf(arch, size, "sm_%d", cc);
        *is_ptx = 0;
        return 1;
    }
    int n = 0;
    if (nv->GetNumSupportedArchs(&n) != KP_NVRTC_SUCCESS || n <= 0 || n > 256) return 0;
    int archs[256];
    if (nv->GetSupportedArchs(archs) != KP_NVRTC_SUCCESS) return 0;
    int best = 0;
    for (int k = 0; k < n; k++) {
        if (archs[k] == cc) {
            snprintf(arch, size, "sm_%d", cc);
            *is_ptx = 0;
            return 1;
        }
        if (archs[k] < cc && archs[k] > best) best = archs[k];
    }
    if (!best) return 0;
    snprintf(arch, size, "compute_%d", best);
    *is_ptx = 1;
    return 1;
}

kp_status kp__nvrtc_compile(const char *src, const char *arch, int is_ptx, void **image, size_t *len, char *msg,
                            size_t msgsize) {
    const char *why = NULL;
    const kp_nvrtc_api *nv = kp__nvrtc_api(&why);
    *image = NULL;
    *len = 0;
    if (!nv) {
        snprintf(msg, msgsize, "CUDA engine: %s", why);
        return KP_ERR_UNSUPPORTED;
    }
    if (!is_ptx && !nv->GetCUBIN) is_ptx = 1; /* NVRTC < 11.1 emits PTX only; the driver compiles it */
    nvrtcProgram p = NULL;
    nvrtcResult r = nv->CreateProgram(&p, src, "kp_kernel.cu", 0, NULL, NULL);
    if (r != KP_NVRTC_SUCCESS) {
        snprintf(msg, msgsize, "NVRTC: nvrtcCreateProgram failed: %s", nv->GetErrorString(r));
        return r == 1 ? KP_ERR_OOM : KP_ERR_INTERNAL; /* 1: NVRTC_ERROR_OUT_OF_MEMORY */
    }
    char opt_arch[64];
    snprintf(opt_arch, sizeof opt_arch, "--gpu-architecture=%s", arch);
    const char *opts[] = {opt_arch, kp_nvrtc_options};
    r = nv->CompileProgram(p, 2, opts);
    kp_status st = KP_OK;
    if (r != KP_NVRTC_SUCCESS) {
        size_t n = 0;
        char *log = NULL;
        if (nv->GetProgramLogSize(p, &n) == KP_NVRTC_SUCCESS && n > 0 && (log = malloc(n + 1)) != NULL &&
            nv->GetProgramLog(p, log) == KP_NVRTC_SUCCESS)
            log[n] = 0;
        else if (log) log[0] = 0;
        snprintf(msg, msgsize, "NVRTC could not compile the generated kernel for %s (%s): %s", arch,
                 nv->GetErrorString(r), log ? log : "(no log)");
        free(log);
        st = KP_ERR_INTERNAL;
    } else {
        size_t n = 0;
        r = is_ptx ? nv->GetPTXSize(p, &n) : nv->GetCUBINSize(p, &n);
        char *buf = r == KP_NVRTC_SUCCESS ? malloc(n + 1) : NULL;
        if (buf) r = is_ptx ? nv->GetPTX(p, buf) : nv->GetCUBIN(p, buf);
        if (!buf || r != KP_NVRTC_SUCCESS) {
            free(buf);
            snprintf(msg, msgsize, "NVRTC: reading the compiled %s failed", is_ptx ? "PTX" : "cubin");
            st = buf ? KP_ERR_INTERNAL : KP_ERR_OOM;
        } else {
            buf[n] = 0;
            *image = buf;
            *len = n;
        }
    }
    nv->DestroyProgram(&p);
    return st;
}

kp_status kp__cuda_image(kp_kcache *cache, const char *src, int cc, kp_cuda_image *img, char *msg, size_t msgsize) {
    memset(img, 0, sizeof *img);
    const void *aot = kp__cuda_aot_image(src, strlen(src));
    if (aot) {
        img->data = (void *)(uintptr_t)aot;
        img->source = KP_IMAGE_AOT;
        return KP_OK;
    }
    return kp__cuda_image_compiled(cache, src, cc, img, msg, msgsize);
}

kp_status kp__cuda_image_compiled(kp_kcache *cache, const char *src, int cc, kp_cuda_image *img, char *msg,
                                  size_t msgsize) {
    memset(img, 0, sizeof *img);
    size_t slen = strlen(src);
    const char *why = NULL;
    const kp_nvrtc_api *nv = kp__nvrtc_api(&why);
    if (!nv) {
        snprintf(msg, msgsize, "CUDA engine: this kernel is not built in and %s", why);
        return KP_ERR_UNSUPPORTED;
    }
    if (!kp__nvrtc_target(nv, cc, img->arch, sizeof img->arch, &img->is_ptx)) {
        snprintf(msg, msgsize, "CUDA engine: NVRTC %d.%d cannot generate code for compute capability %d.%d", nv->major,
                 nv->minor, cc / 10, cc % 10);
        return KP_ERR_UNSUPPORTED;
    }
    if (!img->is_ptx && !nv->GetCUBIN) {
        img->is_ptx = 1;
        snprintf(img->arch, sizeof img->arch, "compute_%d", cc);
    }
    /* Key: everything the bytes depend on. */
    char version[64];
    snprintf(version, sizeof version, "nvrtc %d.%d %s %s", nv->major, nv->minor, img->is_ptx ? "ptx" : "cubin",
             kp_nvrtc_options);
    const void *parts[3] = {src, img->arch, version};
    size_t lens[3] = {slen, strlen(img->arch), strlen(version)};
    kp_kcache_key key;
    kp__kcache_key(&key, 3, parts, lens);
    if (cache && kp__kcache_get(cache, &key, &img->data, &img->len)) {
        img->source = KP_IMAGE_CACHE;
        return KP_OK;
    }
    kp_status st = kp__nvrtc_compile(src, img->arch, img->is_ptx, &img->data, &img->len, msg, msgsize);
    if (st != KP_OK) return st;
    img->source = KP_IMAGE_NVRTC;
    if (cache) kp__kcache_put(cache, &key, img->data, img->len);
    return KP_OK;
}

void kp__cuda_image_free(kp_cuda_image *img) {
    if (img->source != KP_IMAGE_AOT) free(img->data);
    img->data = NULL;
}
