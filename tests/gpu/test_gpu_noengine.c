/*
 * test_gpu_noengine.c — asserts that without an OpenCL loader and without a
 * CUDA driver (ctest points KP_OPENCL_LIBRARY / KP_CUDA_LIBRARY at missing
 * files) selecting or running those engines returns KP_ERR_UNSUPPORTED with a
 * message naming the cause ("no OpenCL platform", "no CUDA device"), never a
 * crash, and that the CPU and AUTO engines keep working.
 */
#include <stdio.h>
#include <string.h>

#include "kp.h"

static int failures;
#define CHECK(cond, ...)                         \
    do {                                         \
        if (!(cond)) {                           \
            printf("FAIL line %d: ", __LINE__); \
            printf(__VA_ARGS__);                 \
            printf("\n");                        \
            failures++;                          \
        }                                        \
    } while (0)

int main(void) {
    kp_context *ctx;
    if (kp_context_new(&ctx) != KP_OK) return 1;
    const char *aliases[] = {"x = Vi(0,1)", "y = Vj(1,1)"};
    float x[3] = {1, 2, 3}, y[2] = {1, 5}, out[3] = {0, 0, 0};
    kp_array args[2] = {kp_array_2d(x, KP_FLOAT32, 3, 1), kp_array_2d(y, KP_FLOAT32, 2, 1)};
    kp_array o = kp_array_2d(out, KP_FLOAT32, 3, 1);

    kp_status st = kp_context_set_engine(ctx, KP_ENGINE_OPENCL);
    CHECK(st == KP_ERR_UNSUPPORTED, "set_engine(OPENCL) gave %d", (int)st);
    CHECK(strstr(kp_context_message(ctx), "no OpenCL platform") != NULL, "message: %s", kp_context_message(ctx));
    printf("OpenCL: %s\n", kp_context_message(ctx));
    st = kp_engine_available(ctx, KP_ENGINE_OPENCL);
    CHECK(st == KP_ERR_UNSUPPORTED, "available(OPENCL) gave %d", (int)st);

    st = kp_context_set_engine(ctx, KP_ENGINE_CUDA);
    CHECK(st == KP_ERR_UNSUPPORTED, "set_engine(CUDA) gave %d", (int)st);
    CHECK(strstr(kp_context_message(ctx), "no CUDA device") != NULL, "message: %s", kp_context_message(ctx));
    printf("CUDA: %s\n", kp_context_message(ctx));

    st = kp_context_set_engine(ctx, (kp_engine)42);
    CHECK(st == KP_ERR_ARGUMENT, "set_engine(42) gave %d", (int)st);

    /* A failed selection leaves the CPU engine in place; AUTO is the CPU for host arrays. */
    st = kp_reduce(ctx, "Sum_Reduction(x*y, 1)", aliases, 2, KP_FLOAT32, args, 2, &o, NULL);
    CHECK(st == KP_OK && out[0] == 6 && out[2] == 18, "CPU run: %d %s", (int)st, kp_context_message(ctx));
    CHECK(kp_context_set_engine(ctx, KP_ENGINE_AUTO) == KP_OK, "AUTO");
    out[0] = 0;
    st = kp_reduce(ctx, "Sum_Reduction(x*y, 1)", aliases, 2, KP_FLOAT32, args, 2, &o, NULL);
    CHECK(st == KP_OK && out[0] == 6, "AUTO run: %d %s", (int)st, kp_context_message(ctx));
    CHECK(kp_engine_available(NULL, KP_ENGINE_CPU) == KP_ERR_NULL, "NULL ctx");
    CHECK(kp_context_set_engine(NULL, KP_ENGINE_CPU) == KP_ERR_NULL, "NULL ctx");
    kp_context_free(ctx);
    printf("%d failures\n", failures);
    return failures ? 1 : 0;
}
