/*
 * device_sources.h - the text of src/device/ops.h and src/device/monoid.h,
 * embedded at build time (cmake/embed_source.cmake, gpu/gpu.cmake): the
 * generator prints them into every kernel after the dialect's prelude.
 */
#ifndef KP_GPU_DEVICE_SOURCES_H
#define KP_GPU_DEVICE_SOURCES_H

extern const char kp__device_ops_source[];
extern const char kp__device_monoid_source[];

#endif
