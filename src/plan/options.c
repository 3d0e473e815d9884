/* options.c — kp_exec_options: defaults, and reading a caller's struct of any version. */
#include <stddef.h>
#include <string.h>

#include "core/context.h"
#include "plan/plan_internal.h"

void kp_exec_options_init(kp_exec_options *options) {
    if (!options) return;
    kp_exec_options d = KP_EXEC_OPTIONS_DEFAULT;
    *options = d;
}

kp_status kp__exec_options_read(kp_context *ctx, const kp_exec_options *options, kp_exec_options *opt) {
    kp_exec_options_init(opt);
    if (!options) return KP_OK;
    const size_t first = offsetof(kp_exec_options, struct_size); /* the fields every version has */
    size_t size = options->struct_size;
    if (size == 0) size = first;
    if (size < first)
        return kp__fail(ctx, KP_ERR_ARGUMENT, "kp_exec_options.struct_size is %zu, less than the %zu bytes of its first fields",
                        size, first);
    const unsigned char *bytes = (const unsigned char *)options;
    for (size_t k = sizeof *opt; k < size; k++) /* fields of a newer kp.h: accepted at their default 0 */
        if (bytes[k])
            return kp__fail(ctx, KP_ERR_ARGUMENT,
                            "kp_exec_options.struct_size is %zu, but this libkp knows %zu bytes and the others are "
                            "set: the caller was built against a newer kp.h",
                            size, sizeof *opt);
    memcpy(opt, options, size < sizeof *opt ? size : sizeof *opt);
    opt->struct_size = sizeof *opt;
    return KP_OK;
}
