/* constants.c — kp_status_name, kp_dtype_name and kp_constant: kp.h's constants and struct layout, by name. */
#include <stddef.h>
#include <string.h>

#include "kp.h"

const char *kp_status_name(kp_status status) {
    switch (status) {
#define KP__STATUS_NAME(name, value, text) \
    case name:                             \
        return #name;
        KP_STATUS_LIST(KP__STATUS_NAME)
#undef KP__STATUS_NAME
    }
    return NULL;
}

const char *kp_dtype_name(kp_dtype dtype) {
    switch (dtype) {
    case KP_FLOAT32: return "float32";
    case KP_FLOAT64: return "float64";
    case KP_INT64: return "int64";
    case KP_FLOAT16: return "float16";
    case KP_COMPLEX64: return "complex64";
    case KP_COMPLEX128: return "complex128";
    }
    return NULL;
}

#define C(name) {#name, (int64_t)(name)},
#define SIZE(type) {"sizeof(" #type ")", (int64_t)sizeof(type)},
#define AT(type, field) {"offsetof(" #type "," #field ")", (int64_t)offsetof(type, field)},

static const struct {
    const char *name;
    int64_t value;
} constants[] = {
    C(KP_VERSION_MAJOR) C(KP_VERSION_MINOR) C(KP_VERSION_PATCH)
    C(KP_MAX_BATCH_DIMS) C(KP_MAX_DIMS) C(KP_MAX_ARGS) C(KP_MAX_JOINT)
#define KP__STATUS_CONST(name, value, text) C(name)
    KP_STATUS_LIST(KP__STATUS_CONST)
#undef KP__STATUS_CONST
    C(KP_FLOAT32) C(KP_FLOAT64) C(KP_INT64) C(KP_FLOAT16) C(KP_COMPLEX64) C(KP_COMPLEX128)
    C(KP_DEVICE_CPU) C(KP_DEVICE_CUDA)
    C(KP_SUM_BLOCK) C(KP_SUM_KAHAN) C(KP_SUM_PLAIN) C(KP_SUM_EXACT)
    C(KP_MATH_ACCURATE) C(KP_MATH_FAST)
    C(KP_VAR_I) C(KP_VAR_J) C(KP_VAR_PARAM)
    C(KP_ENGINE_CPU) C(KP_ENGINE_OPENCL) C(KP_ENGINE_CUDA) C(KP_ENGINE_AUTO)
    C(KP_REDUCTION_TAKES_K) C(KP_REDUCTION_TAKES_G) C(KP_REDUCTION_VALUES) C(KP_REDUCTION_INDICES)
    C(KP_REDUCTION_SELECTS)
    SIZE(kp_array) AT(kp_array, data) AT(kp_array, dtype) AT(kp_array, device) AT(kp_array, ndim)
    AT(kp_array, shape) AT(kp_array, strides) AT(kp_array, device_id)
    SIZE(kp_exec_options) AT(kp_exec_options, num_threads) AT(kp_exec_options, nx) AT(kp_exec_options, ny)
    AT(kp_exec_options, cuda_stream) AT(kp_exec_options, struct_size) AT(kp_exec_options, progress)
    AT(kp_exec_options, progress_user) AT(kp_exec_options, ranges)
    AT(kp_exec_options, output)
    SIZE(kp_ranges) AT(kp_ranges, index_size) AT(kp_ranges, ranges_i) AT(kp_ranges, slices_i)
    AT(kp_ranges, redranges_j) AT(kp_ranges, ranges_j) AT(kp_ranges, slices_j) AT(kp_ranges, redranges_i)
    AT(kp_ranges, n_ranges_i) AT(kp_ranges, n_slices_i) AT(kp_ranges, n_redranges_j) AT(kp_ranges, n_ranges_j)
    AT(kp_ranges, n_slices_j) AT(kp_ranges, n_redranges_i)
};

kp_status kp_constant(const char *name, int64_t *value) {
    if (!name || !value) return KP_ERR_NULL;
    for (size_t k = 0; k < sizeof constants / sizeof constants[0]; k++)
        if (strcmp(constants[k].name, name) == 0) {
            *value = constants[k].value;
            return KP_OK;
        }
    return KP_ERR_ARGUMENT;
}
