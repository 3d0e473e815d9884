/*
 * nvrtc_check.h — test-side tool: compiles CUDA C++ source with NVRTC, loaded
 * at run time (dlopen), for one GPU architecture. Needs no GPU.
 * Library: $KP_NVRTC_LIBRARY, else libnvrtc.so(.13/.12) on the loader path,
 * else /usr/local/cuda/lib64.
 */
#ifndef KP_TEST_NVRTC_CHECK_H
#define KP_TEST_NVRTC_CHECK_H

/* 1 if NVRTC could be loaded; else 0 and *why says why. */
int kpt_nvrtc_available(const char **why);
/* Compiles src for arch ("sm_80", "sm_90"). Returns 0 on success, 1 on a
 * compile error, -1 if NVRTC is unavailable. *log (if log) receives the
 * malloc'd compile log (the caller frees it), or NULL. */
int kpt_nvrtc_compile(const char *src, const char *name, const char *arch, char **log);

#endif
