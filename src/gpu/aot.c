/* aot.c — no ahead-of-time kernels in this build (see aot.h). */
#include "gpu/aot.h"

const void *kp__cuda_aot_image(const char *source, size_t source_len) {
    (void)source;
    (void)source_len;
    return NULL;
}

size_t kp__cuda_aot_count(void) { return 0; }
