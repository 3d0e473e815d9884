/*
 * test_gpu_cuda.c — the CUDA engine against the CPU engine.
 *
 * Always (no GPU needed): CUDA device arrays given to the CPU or OpenCL engine
 * are KP_ERR_UNSUPPORTED, arrays of one call on different devices are
 * KP_ERR_ARGUMENT with both named, a negative device_id is KP_ERR_ARGUMENT,
 * and without a device the CUDA engine (explicit or AUTO with device arrays)
 * says "no CUDA device".
 *
 * With a device: every formula of the GPU case list (every op, every
 * reduction, both axes, float32 and float64, gradients to second order)
 * agrees with the CPU engine (values within 1e-5 / 1e-12 of the largest
 * reference value, NaN where the CPU has NaN, indices exact) three ways:
 * host arrays (copied by libkp), device arrays on a non-blocking stream
 * (asynchronous: the test synchronizes the stream), and device arrays
 * through KP_ENGINE_AUTO. Plus a batched, strided, batch-broadcast case on
 * device arrays (gather/scatter helper kernels), and a pointer on the wrong
 * device. With two devices or more (MOCK_CUDA_DEVICES=2 on the emulator),
 * arrays of device 1 run there and agree with the CPU, and device 0 data mixed
 * in or labeled device 1 is KP_ERR_ARGUMENT. Ragged sizes 37 x 301; under `split` (KP_GPU_CHUNK=300
 * KP_GPU_SPLIT=1) the merge kernel runs too; under `rows` (KP_GPU_BLOCK=8
 * KP_GPU_ROWS=3) each thread computes 3 rows. Without a device: prints
 * "SKIPPED: no CUDA device (reason)" and exits 77.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_test_mem.h"
#include "gpu/cuda_driver.h"
#include "gpu_cases.h"
#include "kp.h"
#include "kp_test_util.h"

#define NX 37
#define NY 301

static kp_array on_device(kp_array a, void *dev) {
    a.data = dev;
    a.device = KP_DEVICE_CUDA;
    a.device_id = 0;
    return a;
}

/* ------------------------------------------------------------ refusals (no GPU needed) */

static void check_refusals(kp_context *ctx, int have_device) {
    const char *aliases[] = {"x = Vi(3)", "y = Vj(3)"};
    float x[6] = {0}, y[9] = {0}, out[2];
    kp_formula *f = NULL;
    kp_plan *plan = NULL;
    if (kp_formula_parse(ctx, "Sum_Reduction(SqDist(x,y), 1)", aliases, 2, &f) != KP_OK ||
        kp_plan_new(ctx, f, KP_FLOAT32, &plan) != KP_OK) {
        CHECK(0, "refusals: setup: %s", kp_context_message(ctx));
        return;
    }
    /* fake device pointers: every check below fails before any is read */
    kp_array args[2] = {kp_array_2d(x, KP_FLOAT32, 2, 3), kp_array_2d(y, KP_FLOAT32, 3, 3)};
    kp_array o = kp_array_2d(out, KP_FLOAT32, 2, 1);
    kp_array dargs[2] = {on_device(args[0], (void *)(uintptr_t)0x1000), on_device(args[1], (void *)(uintptr_t)0x2000)};
    kp_array dout = on_device(o, (void *)(uintptr_t)0x3000);
    kp_status st;

    kp_context_set_engine(ctx, KP_ENGINE_CPU);
    st = kp_plan_exec(plan, dargs, 2, &dout, NULL, NULL);
    CHECK(st == KP_ERR_UNSUPPORTED && strstr(kp_context_message(ctx), "CPU engine"),
          "CPU engine with device arrays: status %d '%s'", (int)st, kp_context_message(ctx));
    if (kp_context_set_engine(ctx, KP_ENGINE_OPENCL) == KP_OK) {
        st = kp_plan_exec(plan, dargs, 2, &dout, NULL, NULL);
        CHECK(st == KP_ERR_UNSUPPORTED && strstr(kp_context_message(ctx), "OpenCL engine"),
              "OpenCL engine with device arrays: status %d '%s'", (int)st, kp_context_message(ctx));
    }
    kp_context_set_engine(ctx, KP_ENGINE_AUTO);
    kp_array mixed[2] = {args[0], dargs[1]};
    st = kp_plan_exec(plan, mixed, 2, &o, NULL, NULL);
    CHECK(st == KP_ERR_ARGUMENT && strstr(kp_context_message(ctx), "argument 1 on CUDA device 0"),
          "host and device arrays mixed: status %d '%s'", (int)st, kp_context_message(ctx));
    kp_array other = dargs[0];
    other.device_id = 1;
    kp_array two[2] = {other, dargs[1]};
    st = kp_plan_exec(plan, two, 2, &dout, NULL, NULL);
    CHECK(st == KP_ERR_ARGUMENT && strstr(kp_context_message(ctx), "CUDA device 1"),
          "two devices: status %d '%s'", (int)st, kp_context_message(ctx));
    other.device_id = -1;
    kp_array neg[2] = {other, dargs[1]};
    st = kp_plan_exec(plan, neg, 2, &dout, NULL, NULL);
    CHECK(st == KP_ERR_ARGUMENT && strstr(kp_context_message(ctx), "negative"), "device_id -1: status %d '%s'",
          (int)st, kp_context_message(ctx));
    kp_array unknown = args[0];
    unknown.device = (kp_device)5;
    kp_array unk[2] = {unknown, args[1]};
    st = kp_plan_exec(plan, unk, 2, &o, NULL, NULL);
    CHECK(st == KP_ERR_ARGUMENT && strstr(kp_context_message(ctx), "unknown device"), "device 5: status %d '%s'",
          (int)st, kp_context_message(ctx));
    /* host arrays under AUTO still run on the CPU */
    st = kp_plan_exec(plan, args, 2, &o, NULL, NULL);
    CHECK(st == KP_OK, "AUTO with host arrays: %s", kp_context_message(ctx));
    if (!have_device) {
        st = kp_plan_exec(plan, dargs, 2, &dout, NULL, NULL);
        CHECK(st == KP_ERR_UNSUPPORTED && strstr(kp_context_message(ctx), "no CUDA device"),
              "AUTO with device arrays and no device: status %d '%s'", (int)st, kp_context_message(ctx));
    } else {
        /* a host pointer claimed to be on the device */
        kp_array lie[2] = {on_device(args[0], x), dargs[1]};
        kp_context_set_engine(ctx, KP_ENGINE_CUDA);
        st = kp_plan_exec(plan, lie, 2, &dout, NULL, NULL);
        CHECK(st == KP_ERR_ARGUMENT, "host pointer as a device array: status %d '%s'", (int)st,
              kp_context_message(ctx));
    }
    kp_context_set_engine(ctx, KP_ENGINE_CPU);
    kp_plan_free(plan);
    kp_formula_free(f);
}

/* ------------------------------------------------------------ the case list */

typedef enum { HOST = 0, DEVICE = 1, DEVICE_AUTO = 2 } mode;
static const char *const mode_name[] = {"host arrays", "device arrays", "device arrays, AUTO"};

/* Runs plan; outputs converted to double. */
static kp_status run(kp_context *ctx, kp_engine eng, mode m, kp_plan *plan, const kp_array *args, int nargs,
                     kp_dtype dt, int64_t rows, int od, double *out, int oi, int64_t *oidx) {
    kp_status st = kp_context_set_engine(ctx, eng);
    if (st != KP_OK) return st;
    size_t esz = dt == KP_FLOAT32 ? 4 : 8, nv = (size_t)(rows * od), ni = (size_t)(rows * oi);
    void *o = kpt_alloc_dtype(nv + 1, dt);
    kp_array ao = kp_array_2d(o, dt, rows, od), ai = kp_array_2d(oidx, KP_INT64, rows, oi);
    if (m == HOST) {
        st = kp_plan_exec(plan, args, (size_t)nargs, od ? &ao : NULL, oi ? &ai : NULL, NULL);
    } else {
        kp_array *dargs = calloc((size_t)nargs + 1, sizeof *dargs);
        void *dout = dev_upload(o, nv * esz), *didx = dev_upload(oidx, ni * 8);
        for (int k = 0; k < nargs; k++) {
            if (!args[k].data) continue;
            size_t n = 1;
            for (int d = 0; d < args[k].ndim; d++) n *= (size_t)args[k].shape[d];
            dargs[k] = on_device(args[k], dev_upload(args[k].data, n * esz));
        }
        kp_array dao = on_device(ao, dout), dai = on_device(ai, didx);
        kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
        opt.cuda_stream = stream;
        st = kp_plan_exec(plan, dargs, (size_t)nargs, od ? &dao : NULL, oi ? &dai : NULL, &opt);
        cu->StreamSynchronize(stream); /* the call is asynchronous */
        if (st == KP_OK && (!dev_download(o, dout, nv * esz) || !dev_download(oidx, didx, ni * 8)))
            st = KP_ERR_INTERNAL;
        for (int k = 0; k < nargs; k++) dev_free(dargs[k].data);
        dev_free(dout);
        dev_free(didx);
        free(dargs);
    }
    if (od) kpt_from_dtype(o, dt, nv, out);
    free(o);
    return st;
}

static void run_case(kp_context *ctx, int c, int axis, kp_dtype dt) {
    kp_formula *f = NULL, *base = NULL;
    const char *label0;
    char label[700];
    if (kpt_gpu_case_formula(ctx, c, axis, &f, &label0) != KP_OK) {
        CHECK(0, "%s: %s", label0, kp_context_message(ctx));
        return;
    }
    char text[400];
    snprintf(text, sizeof text, kpt_gpu_cases[c].fmt, axis);
    kp_formula_parse(ctx, text, kpt_gpu_aliases, (size_t)kpt_gpu_naliases, &base);
    int base_nargs = base ? kp_formula_num_args(base) : 0;
    kp_formula_free(base);

    int nargs = kp_formula_num_args(f);
    kpt_rng rng;
    kpt_rng_seed(&rng, 1234u + (uint64_t)c * 7u + (uint64_t)axis);
    kp_array *args = calloc((size_t)nargs + 1, sizeof *args);
    for (int k = 0; k < nargs; k++) {
        kp_var_category cat;
        int dim;
        if (kp_formula_arg(f, k, &cat, &dim) != KP_OK) continue;
        int64_t rows = cat == KP_VAR_I ? NX : cat == KP_VAR_J ? NY : 1;
        size_t n = (size_t)(rows * dim);
        double *d = malloc(n * sizeof *d);
        kpt_gpu_fill(&rng, d, n, k, base_nargs);
        void *buf = kpt_to_dtype(d, n, dt);
        free(d);
        args[k] = cat == KP_VAR_PARAM ? kp_array_1d(buf, dt, dim) : kp_array_2d(buf, dt, rows, dim);
    }
    int od = kp_formula_out_dim(f), oi = kp_formula_out_index_dim(f);
    int64_t rows = kp_formula_sums_rows(f) ? 1 : (kp_formula_axis(f) == 1 ? NX : NY);
    size_t nv = (size_t)(rows * od), ni = (size_t)(rows * oi);
    double *rv = calloc(nv + 1, sizeof *rv), *gv = calloc(nv + 1, sizeof *gv);
    int64_t *ri = calloc(ni + 1, sizeof *ri), *gi = calloc(ni + 1, sizeof *gi);
    kp_plan *plan = NULL;
    kp_status st = kp_plan_new(ctx, f, dt, &plan);
    if (st == KP_OK) st = run(ctx, KP_ENGINE_CPU, HOST, plan, args, nargs, dt, rows, od, rv, oi, ri);
    CHECK(st == KP_OK, "%s: CPU: %s", label0, kp_context_message(ctx));
    for (int m = HOST; st == KP_OK && m <= DEVICE_AUTO; m++) {
        snprintf(label, sizeof label, "%s [%s, %s]", label0, kpt_dtype_name(dt), mode_name[m]);
        memset(gv, 0, (nv + 1) * sizeof *gv);
        memset(gi, 0, (ni + 1) * sizeof *gi);
        kp_status s2 = run(ctx, m == DEVICE_AUTO ? KP_ENGINE_AUTO : KP_ENGINE_CUDA, (mode)m, plan, args, nargs, dt,
                           rows, od, gv, oi, gi);
        CHECK(s2 == KP_OK, "%s: CUDA: %s", label, kp_context_message(ctx));
        if (s2 == KP_OK && kpt_gpu_compare(label, dt, gv, rv, nv, gi, ri, ni)) failures++;
    }
    kp_context_set_engine(ctx, KP_ENGINE_CPU);
    kp_plan_free(plan);
    for (int k = 0; k < nargs; k++) free(args[k].data);
    free(args);
    free(rv);
    free(gv);
    free(ri);
    free(gi);
    kp_formula_free(f);
}

/* The batched and strided case of gpu_cases.c, all on the device, with the
 * output written with a row stride of 3 into a wider buffer: the gather and
 * scatter helpers run. */
static void run_batched_strided(kp_context *ctx, kp_dtype dt) {
    enum { N = KPT_BATCHED_N };
    kpt_gpu_batched bt;
    kp_status st = kpt_gpu_batched_new(ctx, dt, &bt);
    size_t esz = dt == KP_FLOAT32 ? 4 : 8;
    void *dx = dev_upload(bt.x, bt.nx * esz), *dy = dev_upload(bt.y, bt.ny * esz), *db = dev_upload(bt.b, bt.nb * esz);
    kp_array dargs[3] = {on_device(bt.args[0], dx), on_device(bt.args[1], dy), on_device(bt.args[2], db)};
    size_t n = bt.n, wide = 2 * 3 * N * 3;
    void *o2 = kpt_alloc_dtype(wide, dt);
    memset(o2, 0, wide * esz);
    void *dout = dev_upload(o2, wide * esz);
    kp_array a2 = on_device(kp_array_nd(dout, dt, 4, bt.out_shape), dout);
    a2.strides[2] = 3; /* rows 3 apart: not the packed layout */
    a2.strides[1] = N * 3;
    a2.strides[0] = 3 * N * 3;
    kp_exec_options opt = KP_EXEC_OPTIONS_DEFAULT;
    opt.cuda_stream = stream;
    if (st == KP_OK) st = kp_context_set_engine(ctx, KP_ENGINE_CUDA);
    if (st == KP_OK) st = kp_plan_exec(bt.plan, dargs, 3, &a2, NULL, &opt);
    cu->StreamSynchronize(stream);
    CHECK(st == KP_OK, "batched strided [%s]: %s", kpt_dtype_name(dt), kp_context_message(ctx));
    if (st == KP_OK && dev_download(o2, dout, wide * esz)) {
        double *g = malloc(wide * sizeof *g), *gp = malloc(n * sizeof *gp);
        kpt_from_dtype(o2, dt, wide, g);
        for (size_t k = 0; k < n; k++) gp[k] = g[k / 2 * 3 + k % 2];
        if (kpt_gpu_compare(dt == KP_FLOAT32 ? "batched strided float32" : "batched strided float64", dt, gp, bt.ref,
                            n, NULL, NULL, 0))
            failures++;
        for (size_t k = 0; k < wide; k += 3)
            CHECK(g[k + 2] == 0, "batched strided: the gap between rows was written at %zu", k);
        free(g);
        free(gp);
    }
    kp_context_set_engine(ctx, KP_ENGINE_CPU);
    dev_free(dx);
    dev_free(dy);
    dev_free(db);
    dev_free(dout);
    free(o2);
    kpt_gpu_batched_free(&bt);
}

/* ------------------------------------------------------------ a second device */

/* Copies between the host and memory of device ordinal d, with d's context current
 * and its default stream (the test's stream belongs to device 0). */
static int copy_on(const kp_cuda_device *d, void *host, CUdeviceptr dev, size_t bytes, int to_device) {
    CUcontext popped;
    if (cu->CtxPushCurrent(d->ctx) != KP_CUDA_SUCCESS) return 0;
    CUresult r = to_device ? cu->MemcpyHtoDAsync(dev, host, bytes, NULL) : cu->MemcpyDtoHAsync(host, dev, bytes, NULL);
    if (r == KP_CUDA_SUCCESS) r = cu->StreamSynchronize(NULL);
    cu->CtxPopCurrent(&popped);
    return r == KP_CUDA_SUCCESS;
}

static CUdeviceptr alloc_on(const kp_cuda_device *d, size_t bytes) {
    CUdeviceptr p = 0;
    CUcontext popped;
    if (cu->CtxPushCurrent(d->ctx) != KP_CUDA_SUCCESS) return 0;
    if (cu->MemAlloc(&p, bytes) != KP_CUDA_SUCCESS) p = 0;
    cu->CtxPopCurrent(&popped);
    return p;
}

/* With two devices or more: arrays of device 1 (device_id 1) run there while
 * device 0's context is the current one, and agree with the CPU; data on
 * device 1 mixed with data on device 0 is KP_ERR_ARGUMENT, and so is data of
 * device 0 that says device_id 1. */
static void check_second_device(kp_context *ctx) {
    enum { N = 37, M = 301 };
    char w[320];
    const kp_cuda_device *d1 = kp__cuda_device(1, w, sizeof w);
    CHECK(d1 != NULL, "second device: %s", w);
    if (!d1) return;
    const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "b = Vj(1)"};
    kp_formula *f = NULL;
    kp_plan *plan = NULL;
    kp_status st = kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y))*b, 1)", aliases, 3, &f);
    if (st == KP_OK) st = kp_plan_new(ctx, f, KP_FLOAT32, &plan);
    CHECK(st == KP_OK, "second device: %s", kp_context_message(ctx));
    kpt_rng rng;
    kpt_rng_seed(&rng, 77);
    float x[N * 3], y[M * 3], b[M], ref[N], got[N];
    for (int k = 0; k < N * 3; k++) x[k] = (float)kpt_rng_uniform(&rng, 0, 1);
    for (int k = 0; k < M * 3; k++) y[k] = (float)kpt_rng_uniform(&rng, 0, 1);
    for (int k = 0; k < M; k++) b[k] = (float)kpt_rng_uniform(&rng, -1, 1);
    kp_array args[3] = {kp_array_2d(x, KP_FLOAT32, N, 3), kp_array_2d(y, KP_FLOAT32, M, 3),
                        kp_array_2d(b, KP_FLOAT32, M, 1)};
    kp_array out = kp_array_2d(ref, KP_FLOAT32, N, 1);
    if (st == KP_OK) st = kp_plan_exec(plan, args, 3, &out, NULL, NULL);
    CHECK(st == KP_OK, "second device: CPU: %s", kp_context_message(ctx));

    CUdeviceptr dx = alloc_on(d1, sizeof x), dy = alloc_on(d1, sizeof y), db = alloc_on(d1, sizeof b),
                dout = alloc_on(d1, sizeof got), dy0 = (CUdeviceptr)(uintptr_t)dev_upload(y, sizeof y);
    int ok = dx && dy && db && dout && dy0 && copy_on(d1, x, dx, sizeof x, 1) && copy_on(d1, y, dy, sizeof y, 1) &&
             copy_on(d1, b, db, sizeof b, 1);
    CHECK(ok, "second device: allocations and copies on device 1");
    kp_array dargs[3] = {on_device(args[0], (void *)(uintptr_t)dx), on_device(args[1], (void *)(uintptr_t)dy),
                         on_device(args[2], (void *)(uintptr_t)db)};
    kp_array dres = on_device(kp_array_2d(NULL, KP_FLOAT32, N, 1), (void *)(uintptr_t)dout);
    for (int k = 0; k < 3; k++) dargs[k].device_id = 1;
    dres.device_id = 1;
    kp_context_set_engine(ctx, KP_ENGINE_CUDA);
    if (ok && st == KP_OK) {
        st = kp_plan_exec(plan, dargs, 3, &dres, NULL, NULL); /* default stream of device 1, synchronous here */
        CHECK(st == KP_OK, "second device: run on device 1: %s", kp_context_message(ctx));
        if (st == KP_OK && copy_on(d1, got, dout, sizeof got, 0)) {
            double g[N], r[N];
            for (int k = 0; k < N; k++) g[k] = got[k], r[k] = ref[k];
            if (kpt_gpu_compare("second device", KP_FLOAT32, g, r, N, NULL, NULL, 0)) failures++;
        }
        kp_array mixed[3] = {dargs[0], on_device(args[1], (void *)(uintptr_t)dy0), dargs[2]}; /* device_id 0 */
        st = kp_plan_exec(plan, mixed, 3, &dres, NULL, NULL);
        CHECK(st == KP_ERR_ARGUMENT && strstr(kp_context_message(ctx), "CUDA device 1") &&
                  strstr(kp_context_message(ctx), "CUDA device 0"),
              "second device: devices 0 and 1 mixed: status %d '%s'", (int)st, kp_context_message(ctx));
        mixed[1].device_id = 1; /* data of device 0 that says device 1 */
        st = kp_plan_exec(plan, mixed, 3, &dres, NULL, NULL);
        CHECK(st == KP_ERR_ARGUMENT && strstr(kp_context_message(ctx), "is on CUDA device 0, but its device_id says 1"),
              "second device: device 0 data labeled device 1: status %d '%s'", (int)st, kp_context_message(ctx));
    }
    CUdeviceptr mine[] = {dx, dy, db, dout};
    CUcontext popped;
    if (cu->CtxPushCurrent(d1->ctx) == KP_CUDA_SUCCESS) {
        for (int k = 0; k < 4; k++)
            if (mine[k]) cu->MemFree(mine[k]);
        cu->CtxPopCurrent(&popped);
    }
    dev_free((void *)(uintptr_t)dy0);
    kp_context_set_engine(ctx, KP_ENGINE_CPU);
    kp_plan_free(plan);
    kp_formula_free(f);
}

int main(int argc, char **argv) {
    kp_context *ctx;
    if (kp_context_new(&ctx) != KP_OK) return 1;
    kp_status avail = kp_engine_available(ctx, KP_ENGINE_CUDA);
    char why[512];
    snprintf(why, sizeof why, "%s", kp_context_message(ctx));
    check_refusals(ctx, avail == KP_OK);
    if (avail != KP_OK) {
        kp_context_free(ctx);
        printf("refusal checks: %d failures\n", failures);
        if (failures) return 1;
        printf("SKIPPED: no CUDA device (%s)\n", why);
        return 77;
    }
    if (!cuda_test_setup()) return 1;
    char w[320];
    const kp_cuda_device *dev = kp__cuda_device(0, w, sizeof w);
    printf("mode: %s; device 0: %s (sm_%d%d)\n", argc > 1 ? argv[1] : "default", dev->name, dev->cc_major,
           dev->cc_minor);
    int only = -1;
    if (getenv("KP_GPU_TEST_CASE")) only = atoi(getenv("KP_GPU_TEST_CASE"));
    for (int dti = 0; dti < 2; dti++) {
        kp_dtype dt = dti ? KP_FLOAT64 : KP_FLOAT32;
        for (int c = 0; c < kpt_gpu_ncases; c++)
            for (int axis = 0; axis < 2; axis++)
                if (only < 0 || only == c) run_case(ctx, c, axis, dt);
        run_batched_strided(ctx, dt);
    }
    int ndev = 0;
    cu->DeviceGetCount(&ndev);
    if (ndev >= 2) check_second_device(ctx);
    else printf("one CUDA device: the second-device checks did not run\n");
    cu->StreamDestroy(stream);
    kp_context_free(ctx);
    printf("%d failures\n", failures);
    return failures ? 1 : 0;
}
