/*
 * kp.h — libkp: generic kernel reductions without N x M memory.
 *
 * libkp evaluates, for point clouds x_i (i < N) and y_j (j < M),
 *
 *     a_i = Red_{j<M} F(x_i, y_j, p)      (axis 1: one result per i)
 *     b_j = Red_{i<N} F(x_i, y_j, p)      (axis 0: one result per j)
 *
 * where F is a small vector-valued formula written in the KeOps syntax and Red
 * is one of Sum, LogSumExp, SumSoftMaxWeight, Min, Max, ArgMin, ArgMax,
 * Min_ArgMin, Max_ArgMax, KMin, ArgKMin, KMin_ArgKMin. Memory is O(N + M).
 *
 * Worked example: the Gaussian kernel product g_i = sum_j exp(-|x_i-y_j|^2 s) b_j
 *
 *     kp_context *ctx;  kp_formula *f;  kp_plan *plan;
 *     kp_context_new(&ctx);
 *     const char *aliases[] = {"x = Vi(3)", "y = Vj(3)", "s = Pm(1)", "b = Vj(1)"};
 *     if (kp_formula_parse(ctx, "Sum_Reduction(Exp(-SqDist(x,y)*s)*b, 1)",
 *                          aliases, 4, &f) != KP_OK)
 *         fprintf(stderr, "%s\n", kp_context_message(ctx));
 *     kp_plan_new(ctx, f, KP_FLOAT32, &plan);
 *     kp_array args[4] = {kp_array_2d(x, KP_FLOAT32, N, 3), kp_array_2d(y, KP_FLOAT32, M, 3),
 *                         kp_array_1d(&s, KP_FLOAT32, 1),  kp_array_2d(b, KP_FLOAT32, M, 1)};
 *     kp_array out = kp_array_2d(g, KP_FLOAT32, N, 1);
 *     kp_plan_exec(plan, args, 4, &out, NULL, NULL);
 *     kp_plan_free(plan); kp_formula_free(f); kp_context_free(ctx);
 *
 * Conventions
 * - Every fallible call returns kp_status (KP_OK == 0) and, on failure, leaves a
 *   human-readable message in the context (kp_context_message). The library
 *   never aborts, exits or prints.
 * - Each *_new / *_parse has one *_free; *_free(NULL) is a no-op.
 * - The caller owns every buffer passed in; libkp never keeps a pointer to one
 *   after a call returns.
 * - Thread-safety: a kp_context is used by one thread at a time. A kp_formula
 *   lives in the context that made it (its nodes are in that context's store):
 *   calls that take a context and a formula (kp_plan_new, kp_plan_new_joint,
 *   kp_formula_grad, _with_indices, _softmax_lse, _unsummed) must be given that
 *   context, else KP_ERR_ARGUMENT, so they run in the thread that uses it. The
 *   calls that only read a formula (kp_formula_reduction, _axis, _num_args,
 *   _arg, _out_dim, _out_index_dim, _node_count, _sums_rows, _print) may run
 *   from any number of threads at once, alongside those. A kp_plan is
 *   immutable: kp_plan_exec and kp_plan_exec_joint may run on one plan from
 *   several threads at once, each with its own outputs, while they succeed (a
 *   failing call writes its message into the plan's context; use one plan per
 *   thread if you need the messages); do not change the plan's context
 *   settings meanwhile. tests/test_threads.c checks exactly this under
 *   ThreadSanitizer (scripts/tsan.sh).
 */
#ifndef KP_H
#define KP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KP_VERSION_MAJOR 0
#define KP_VERSION_MINOR 1
#define KP_VERSION_PATCH 0

/* Maximal number of leading batch dimensions of an array. */
#define KP_MAX_BATCH_DIMS 6
#define KP_MAX_DIMS (KP_MAX_BATCH_DIMS + 2)
/* Argument positions of a formula: Vi(k,d) with k < KP_MAX_ARGS. */
#define KP_MAX_ARGS 256
/* Formulas of one joint plan (kp_plan_new_joint). */
#define KP_MAX_JOINT 8

/* Status codes, from one X-macro list so names and messages stay in step. */
#define KP_STATUS_LIST(X)                                                         \
    X(KP_OK, 0, "success")                                                        \
    X(KP_ERR_PARSE, 1, "malformed formula")                                       \
    X(KP_ERR_SHAPE, 2, "inconsistent dimensions or shapes")                       \
    X(KP_ERR_DTYPE, 3, "unsupported or mismatched dtype")                         \
    X(KP_ERR_ARGUMENT, 4, "invalid argument")                                     \
    X(KP_ERR_NULL, 5, "null pointer")                                             \
    X(KP_ERR_OOM, 6, "out of memory")                                             \
    X(KP_ERR_TOO_LARGE, 7, "size too large")                                      \
    X(KP_ERR_UNSUPPORTED, 8, "not supported by this engine")                      \
    X(KP_ERR_INTERNAL, 9, "internal error")                                       \
    X(KP_ERR_CANCELLED, 10, "cancelled by the progress callback")

typedef enum kp_status {
#define KP__STATUS_ENUM(name, value, text) name = value,
    KP_STATUS_LIST(KP__STATUS_ENUM)
#undef KP__STATUS_ENUM
} kp_status;

/* Static description of a status code ("malformed formula"); never NULL. */
const char *kp_status_string(kp_status status);
/* Static name of a status code ("KP_ERR_SHAPE"); NULL for a value that is none. */
const char *kp_status_name(kp_status status);

/* Element types. Plans compute in float32 or float64; the other dtypes are
 * storage formats that the plan layer maps onto those:
 * KP_FLOAT16: IEEE 754 binary16, computed in float32. A KP_FLOAT16 plan reads
 *   float16 arrays (converted to float32 once per call, O(N + M), rounding
 *   back to nearest-even into float16 outputs; infinities, NaN and subnormals
 *   kept) and also float32 ones (e.g. Min/Max indices given back to a
 *   gradient, which float16 holds exactly only up to 2048), on every engine.
 *   Host arrays are converted by the plan layer; CUDA device arrays by the
 *   CUDA engine, on the device and the call's stream, with the same
 *   conversions (the same bits, kp_plan_exec_partial included).
 * KP_COMPLEX64 / KP_COMPLEX128: interleaved (real, imaginary) float32 /
 *   float64 pairs, as C99 complex, numpy and torch store them. A complex array
 *   of last extent D is read as 2 D reals (real parts at even components), so
 *   it fills a formula variable of dimension 2 D, which the complex formula
 *   ops (ComplexMult, ...; docs/formulas.md) treat as D complex numbers. Its
 *   components must be contiguous (last stride 1) unless D == 1. A complex
 *   plan computes in float32 / float64 and takes complex or real arrays of
 *   its precision for each argument and for the output (a complex output of
 *   last extent out_dim / 2). kp_plan_output_shape counts reals. */
typedef enum kp_dtype {
    KP_FLOAT32 = 0,
    KP_FLOAT64 = 1,
    KP_INT64 = 2,
    KP_FLOAT16 = 3,
    KP_COMPLEX64 = 4,
    KP_COMPLEX128 = 5
} kp_dtype;
/* Static name of a dtype ("float32", "complex64": numpy's spelling); NULL for a value that is none. */
const char *kp_dtype_name(kp_dtype dtype);

/* Where an array's data lives. KP_DEVICE_CUDA: data is a CUDA device pointer
 * (a CUdeviceptr cast to void *, e.g. torch's data_ptr()) on CUDA device
 * kp_array.device_id; only the CUDA engine reads such arrays (see the engines
 * block below). */
typedef enum kp_device { KP_DEVICE_CPU = 0, KP_DEVICE_CUDA = 1 } kp_device;

/* How float32 Sum-type accumulators are kept (float64 uses KP_SUM_BLOCK, or
 * KP_SUM_EXACT when that is chosen).
 * BLOCK: each tile of up to 512 j is summed in float32 SIMD lanes, the tile sums
 *        are added into a Kahan-compensated float32 accumulator. Relative error
 *        ~1e-6 of float64 even at M = 10^7. The default.
 * KAHAN: every term is added with Kahan compensation in each SIMD lane; slower,
 *        accurate to a few ulp of the exact sum in practice.
 * PLAIN: tile sums are added without compensation (the fastest; error grows
 *        like M/512 ulp in the worst case).
 * The GPU engines do the same with groups of 32 points per thread instead of
 * tiles of 512 (BLOCK: one fused multiply-add per pair, a compensated add per
 * group), for Sum, LogSumExp and SumSoftMaxWeight.
 * EXACT: float32 and float64 Sum, LogSumExp and SumSoftMaxWeight reductions
 *        add their terms exactly (integers in exponent bins, see
 *        docs/distributed.md) and round once: the result does not depend on
 *        the order of the terms, the threads, or how the reduced axis is
 *        split into partial states and merged (any split, any merge order:
 *        the same bits as one call). A Sum is the correctly rounded sum of
 *        its terms unless they span more than 2^128 (terms below 2^-128 of
 *        the largest may be left out); LogSumExp and SumSoftMaxWeight sum
 *        exp(x) = v 2^n with v and n functions of x alone (a few ulp), then
 *        take the log or the ratio (bit for bit between processes that run
 *        the same CPU kernels: KP_CPU_ISA). At most 2^43 terms per row
 *        (KP_ERR_TOO_LARGE). Every engine: the CPU engine's interpreter,
 *        several times slower than BLOCK; the GPU kernels add one term at a
 *        time in integer arithmetic (a Sum: its result and states bit for bit
 *        the CPU engine's when both compute the same terms; their states
 *        merge with each other). The Min/Max family is exact anyway and
 *        unchanged. Partial states made under EXACT have their own layout and
 *        are refused under the other schemes. */
typedef enum kp_sum_scheme { KP_SUM_BLOCK = 0, KP_SUM_KAHAN = 1, KP_SUM_PLAIN = 2, KP_SUM_EXACT = 3 } kp_sum_scheme;

/* Math functions of the GPU kernels (CUDA and OpenCL engines), float32 only.
 * ACCURATE (the default): the platform's accurate functions (CUDA expf,
 *   logf: <= 2 ulp; OpenCL exp, log).
 * FAST: the hardware approximations of the functions kernel formulas spend
 *   their time in: Exp (CUDA: ex2.approx of x*log2(e), one special-function
 *   op instead of eight instructions; relative error up to about
 *   (2 + 1.2|x|) ulp, e.g. 2.6e-6 at x = -20), Log (__logf: 3 ulp, absolute
 *   error 2^-21.4 on [0.5, 2]) and Rsqrt (rsqrtf, 2 ulp); OpenCL native_exp,
 *   native_log, native_rsqrt (accuracy set by the platform). Infinities, NaN
 *   and zeros keep their results; subnormal results flush to zero. What KeOps
 *   calls use_fast_math. The CPU engine and float64 kernels are unaffected. */
typedef enum kp_math_mode { KP_MATH_ACCURATE = 0, KP_MATH_FAST = 1 } kp_math_mode;

/*
 * An array descriptor, filled by the caller. Shape is (batch..., rows, dim) for a
 * Vi/Vj variable and for the output, (batch..., dim) or (batch..., 1, dim) for a
 * Pm parameter. Strides are counted in elements (not bytes) and may be any
 * value, including 0 to broadcast a batch dimension of extent 1 or larger.
 * The number of batch dimensions is the output's ndim - 2; every argument has
 * either that many batch dimensions or none (then it is shared by all batches).
 */
typedef struct kp_array {
    void *data;
    kp_dtype dtype;
    kp_device device;
    int ndim;
    int64_t shape[KP_MAX_DIMS];
    int64_t strides[KP_MAX_DIMS];
    /* CUDA device ordinal of data when device == KP_DEVICE_CUDA (ignored for
     * KP_DEVICE_CPU). Appended last so that descriptors filled field by field
     * by older code keep their layout; kp_array_1d/2d/nd set it to 0. */
    int device_id;
} kp_array;

/* Contiguous row-major descriptors; convenience, no allocation. */
kp_array kp_array_1d(void *data, kp_dtype dtype, int64_t n);
kp_array kp_array_2d(void *data, kp_dtype dtype, int64_t rows, int64_t cols);
/* Contiguous row-major array of any rank <= KP_MAX_DIMS (shape copied). */
kp_array kp_array_nd(void *data, kp_dtype dtype, int ndim, const int64_t *shape);

/* The value of a constant of this header, for bindings that cannot read it
 * (ctypes, R, Octave scripts): the name of an enum value or macro
 * ("KP_FLOAT64", "KP_MAX_JOINT", "KP_ENGINE_AUTO", "KP_VERSION_MINOR"), or the
 * layout of a struct the caller fills: "sizeof(kp_array)",
 * "offsetof(kp_array,shape)" (no spaces), likewise for each field of kp_array
 * kp_exec_options and kp_ranges. KP_OK and *value set, KP_ERR_ARGUMENT for an unknown
 * name, KP_ERR_NULL for a NULL pointer. Thread-safe. */
kp_status kp_constant(const char *name, int64_t *value);

/* ---------------------------------------------------------------- context */

typedef struct kp_context kp_context;

/* Creates a context. Returns KP_ERR_NULL if out is NULL, KP_ERR_OOM on
 * allocation failure. Not thread-safe: one thread at a time per context. */
kp_status kp_context_new(kp_context **out);
/*
 * A caller-supplied allocator, in the style of Lua's lua_Alloc: one function
 * for every allocation libkp makes for a context and for the formulas and
 * plans made from it (the context itself included). libkp calls
 *
 *   alloc(user, NULL, 0, n, align)       a new block of n > 0 bytes whose
 *                                        address is a multiple of align;
 *   alloc(user, p, old, n, align), n > 0 p resized to n bytes (its first
 *                                        min(old, n) bytes kept), same align;
 *   alloc(user, p, old, 0, align)        p freed (the result is ignored).
 *
 * old and align are always those p was last allocated or resized with, so the
 * function may keep no table of its own. align is a power of two from 16 to
 * 4096 (64 for the CPU engine's SIMD scratch buffers). The sizes include a
 * header of align bytes that libkp keeps in front of each block it uses.
 * Return NULL when a block cannot be given (p then stays valid as it was):
 * the libkp call fails with KP_ERR_OOM and a message, frees what it allocated
 * for the call (formula nodes it interned stay in the context's shared store,
 * as after any call, until the context is freed), and the context, its
 * formulas and plans stay usable.
 *
 * Thread-safety: the function must be thread-safe. The CPU engine calls it
 * from its OpenMP worker threads during kp_plan_exec (a scratch buffer per
 * thread), and kp_plan_exec may run on one plan from several threads at once.
 *
 * What it does not see: process-wide state shared by all contexts, which
 * outlives any of them (the GPU engines' caches of compiled kernels and
 * modules, the loaded GPU libraries) and the GPU drivers' own memory; those
 * use the C library. Every block libkp takes through a context is given back
 * through the same context's allocator, at the latest by the *_free call of
 * the object that holds it; which is why formulas and plans must be freed
 * before their context.
 */
typedef void *(*kp_alloc_fn)(void *user, void *ptr, size_t old_size, size_t new_size, size_t alignment);
/* Creates a context whose allocations, and those of every formula and plan
 * made from it, go through alloc(user, ...); alloc NULL: the C library's
 * (kp_context_new). KP_ERR_NULL if out is NULL, KP_ERR_OOM if alloc fails. */
kp_status kp_context_new_with_allocator(kp_alloc_fn alloc, void *user, kp_context **out);
/* Frees the context. Formulas and plans made from it must be freed first. */
void kp_context_free(kp_context *ctx);
/* Message of the last failed call on this context ("" if none). The pointer
 * stays valid until the next call on the context. */
const char *kp_context_message(const kp_context *ctx);
/* Number of CPU threads for executions through this context; 0 (default) means
 * the KP_NUM_THREADS environment variable if set, else all available cores. */
kp_status kp_context_set_num_threads(kp_context *ctx, int num_threads);
/* Summation scheme of Sum, LogSumExp and SumSoftMaxWeight reductions (kp_sum_scheme). */
kp_status kp_context_set_sum_scheme(kp_context *ctx, kp_sum_scheme scheme);
/* Math functions of later GPU kernels (kp_math_mode above); KP_ERR_ARGUMENT for an unknown mode. */
kp_status kp_context_set_math_mode(kp_context *ctx, kp_math_mode mode);

/* ---------------------------------------------------------------- formulas */

typedef struct kp_formula kp_formula;

/* Reduction kinds, in KeOps naming. */
typedef enum kp_reduction {
    KP_RED_SUM,
    KP_RED_LOGSUMEXP,
    KP_RED_SUMSOFTMAXWEIGHT,
    KP_RED_MIN,
    KP_RED_MAX,
    KP_RED_ARGMIN,
    KP_RED_ARGMAX,
    KP_RED_MIN_ARGMIN,
    KP_RED_MAX_ARGMAX,
    KP_RED_KMIN,
    KP_RED_ARGKMIN,
    KP_RED_KMIN_ARGKMIN
} kp_reduction;

/* The reductions as libkp knows them, so that bindings need no list of their
 * own. kp_reduction_count: how many (kp_reduction values are 0 to count - 1).
 * kp_reduction_name: the KeOps name ("Sum", "KMin_ArgKMin"; the formula text
 * is Name_Reduction(...)), NULL for a value that is no reduction.
 * kp_reduction_flags: KP_REDUCTION_* bits, 0 for a value that is no reduction. */
#define KP_REDUCTION_TAKES_K 1u  /* Name_Reduction(F, K, axis) */
#define KP_REDUCTION_TAKES_G 2u  /* Name_Reduction(F, axis, G): a second formula */
#define KP_REDUCTION_VALUES 4u   /* writes values (out) */
#define KP_REDUCTION_INDICES 8u  /* writes int64 indices (out_index) */
#define KP_REDUCTION_SELECTS 16u /* selects points (Min, Max, KMin, Arg...): kp_formula_with_indices applies */
int kp_reduction_count(void);
const char *kp_reduction_name(kp_reduction r);
unsigned kp_reduction_flags(kp_reduction r);

/*
 * Parses a reduction such as "Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)".
 * aliases: n_aliases strings "name = Vi(d)", "name = Vj(k,d)", "name = Pm(d)";
 * an alias without k takes the next free argument position, in order.
 * On a malformed formula returns KP_ERR_PARSE (syntax, unknown names) or
 * KP_ERR_SHAPE (dimension mismatch) with a message naming the column, e.g.
 * "formula col 14: unknown function 'Exq'". *out is set only on success.
 * The formula keeps a reference to ctx: free it before the context.
 */
kp_status kp_formula_parse(kp_context *ctx, const char *text, const char *const *aliases,
                           size_t n_aliases, kp_formula **out);
void kp_formula_free(kp_formula *f);

/* Introspection. Arguments are numbered by position k (Vi(k,d) etc.). */
typedef enum kp_var_category { KP_VAR_I = 0, KP_VAR_J = 1, KP_VAR_PARAM = 2 } kp_var_category;
kp_reduction kp_formula_reduction(const kp_formula *f);
int kp_formula_axis(const kp_formula *f);
/* Number of arguments (1 + the largest position used). */
int kp_formula_num_args(const kp_formula *f);
/* Category and dimension of argument k; returns KP_ERR_ARGUMENT if k is unused. */
kp_status kp_formula_arg(const kp_formula *f, int k, kp_var_category *category, int *dim);
/* Width of the value output per row (0 if the reduction has none, e.g. ArgMin)
 * and of the int64 index output per row (0 if none). */
int kp_formula_out_dim(const kp_formula *f);
int kp_formula_out_index_dim(const kp_formula *f);
/* Number of distinct nodes of the formula DAG (shared subexpressions count
 * once), in time linear in that number. Counting takes temporary memory (one
 * bit per node of f's context, from f's context's allocator): 0, which no
 * formula has, when f is NULL or that memory cannot be had (no message: the
 * call takes no context). kp_formula_count_nodes reports the failure. */
size_t kp_formula_node_count(const kp_formula *f);
/* The same count into *count, with a status: KP_ERR_NULL, or KP_ERR_OOM with a
 * message in ctx when the temporary memory cannot be had. ctx may be any
 * context (the memory comes from its allocator, the message goes to it), so a
 * thread may count a formula it does not own with a context of its own. */
kp_status kp_formula_count_nodes(kp_context *ctx, const kp_formula *f, size_t *count);
/* Writes the canonical text of the formula into buf (always NUL-terminated when
 * size > 0); returns the length it needs, excluding the NUL (SIZE_MAX if that
 * does not fit in a size_t). The text writes the DAG as a tree, so shared
 * subexpressions are repeated and its length can grow exponentially with
 * their nesting (a third derivative of three nested Normalize: 380 nodes,
 * 29 MB of text); measuring it (buf NULL, size 0) takes constant time and
 * printing into buf costs O(size), whatever the text's length. */
size_t kp_formula_print(const kp_formula *f, char *buf, size_t size);

/* ---------------------------------------------------------------- gradients */

/*
 * Gradient of a reduction, as another reduction (reverse mode, O(N+M) memory).
 *
 * f computes out = Red(F). kp_formula_grad builds g computing the vector-
 * Jacobian product  d<out, E>/d(argument k)  for an output gradient E. g takes
 * f's arguments at the same positions, then:
 *   position n = kp_formula_num_args(f): E, shaped like f's output (a row
 *       variable of f's axis: Vi for axis 1, Vj for axis 0, dim out_dim);
 *   position n+1 (LogSumExp, SumSoftMaxWeight): f's forward output O;
 *   position n+1 (Min, Max, Min_ArgMin, Max_ArgMax, KMin, KMin_ArgKMin): the
 *       forward's indices (the out_index of kp_formula_with_indices(f), the
 *       same reduction with its indices), converted to numbers of the plan's
 *       dtype; float32 plans hold them exactly below 2^24 points (more is
 *       KP_ERR_TOO_LARGE at execution);
 *   position n+2 (SumSoftMaxWeight, only when k is a variable of the reduced
 *       axis): lse = LogSumExp over the reduced axis of F, one scalar per row,
 *       built by kp_formula_softmax_lse(f).
 * g's output has one row per point of argument k and k's dimension; for a
 * parameter, g sums its rows (kp_formula_sums_rows(g) is 1) and its output has
 * shape (batch..., 1, dim).
 * Rules: Sum: Grad(F, v, E) reduced over the axis that keeps v's index;
 * LogSumExp: Grad(F, v, E * Exp(F - O)) (stable: F - O <= 0);
 * SumSoftMaxWeight: a SumSoftMaxWeight of Grad(G,v,E) + Grad(F,v,(G-O|E)), or
 * for reduced-axis variables Exp(F - lse) times the same, summed.
 * Min/Max/KMin values: the gradient flows to the selected points only,
 * Grad(F, v, sum_k E_k [index == J_k]) (at ties: to the smallest index, the
 * one the forward selected). ArgMin, ArgMax, ArgKMin: zero gradient (g's
 * formula is Zero; it takes no extra argument).
 * Since g is an ordinary reduction, kp_formula_grad(g, ...) gives second
 * derivatives (Hessian-vector products), and so on.
 */
kp_status kp_formula_grad(kp_context *ctx, const kp_formula *f, int k, kp_formula **out);
/* The Min_ArgMin / Max_ArgMax / KMin_ArgKMin version of a Min/Max/KMin-type
 * reduction: the forward to run when its gradient will be needed. */
kp_status kp_formula_with_indices(kp_context *ctx, const kp_formula *f, kp_formula **out);
/* LogSumExp_Reduction(F, axis) of f's F, with f's arguments (for kp_formula_grad). */
kp_status kp_formula_softmax_lse(kp_context *ctx, const kp_formula *f, kp_formula **out);
/* 1 if the output rows are summed into one (parameter gradients), else 0. */
int kp_formula_sums_rows(const kp_formula *f);
/* The same reduction as f without the row summation (one output row per row):
 * what a second derivative through a parameter gradient needs as its forward. */
kp_status kp_formula_unsummed(kp_context *ctx, const kp_formula *f, kp_formula **out);

/* ---------------------------------------------------------------- plans */

typedef struct kp_plan kp_plan;

/* Lowers a formula for one dtype (KP_FLOAT32, KP_FLOAT64, or the storage dtypes
 * KP_FLOAT16, KP_COMPLEX64, KP_COMPLEX128 computed in float32 / float64: see kp_dtype).
 * Takes no reference to f: f may be freed while the plan lives. */
kp_status kp_plan_new(kp_context *ctx, const kp_formula *f, kp_dtype dtype, kp_plan **out);
void kp_plan_free(kp_plan *plan);

/*
 * Progress and cancellation of a long call (CPU engine; the GPU engines queue
 * the whole call at once and ignore it). libkp calls progress(user, done,
 * total) from the calling thread between blocks of rows, at most every 0.25 s
 * and never in the first 0.25 s, so short calls never see it; done <= total
 * count blocks of work. A completed call ends with one call where done ==
 * total (its return value is then ignored). A nonzero return cancels: the call
 * stops after the blocks in flight and returns KP_ERR_CANCELLED, the outputs
 * are unspecified, the plan and context stay usable. The callback must not
 * call libkp on the same context. NULL (the default): no calls, no cost.
 */
typedef int (*kp_progress_fn)(void *user, int64_t done, int64_t total);

/*
 * Block-sparse reductions (KeOps' `ranges` 6-tuple): which pairs (i, j) a
 * reduction visits. The i points are cut into clusters ranges_i[k] =
 * [start, end) (n_ranges_i rows of 2 indices); cluster k reduces over the j
 * ranges redranges_j[l] for slices_i[k-1] <= l < slices_i[k] (slices_i[-1]
 * read as 0; one slice per cluster). ranges_j, slices_j, redranges_i are the
 * same for the reduction over i (axis 0). A reduction reads the triple of its
 * axis only: axis 1 (over j) the first three, axis 0 the last three, so the
 * gradient plans of kp_formula_grad, which reduce over the other axis for the
 * other side's variables, take the same struct and use the transposed triple.
 * Pairs outside the ranges are skipped; a row in no cluster, or whose
 * clusters' lists are empty, gets the reduction's neutral value (Sum 0,
 * LogSumExp -inf, Min +inf with index -1, Max -inf, SumSoftMaxWeight NaN).
 * With batch dimensions (B batches in all), indices count the flattened
 * (batch, point) rows, as KeOps: i in [0, B N), j in [0, B M); a cluster lies
 * in one batch and its j ranges in that batch.
 * Checked at each call (KP_ERR_ARGUMENT naming the array and its first bad
 * entry): index_size 4 (int32) or 8 (int64); n_slices == n_ranges; every
 * range start <= end, within bounds; clusters sorted and disjoint; each
 * cluster's j ranges sorted and disjoint; slices non-decreasing, at most the
 * number of redranges. Arrays are contiguous host memory.
 */
typedef struct kp_ranges {
    int index_size; /* bytes of one index: 4 (int32) or 8 (int64) */
    const void *ranges_i, *slices_i, *redranges_j;
    const void *ranges_j, *slices_j, *redranges_i;
    int64_t n_ranges_i, n_slices_i, n_redranges_j; /* ranges count pairs: (n, 2) arrays */
    int64_t n_ranges_j, n_slices_j, n_redranges_i;
} kp_ranges;

/* Per-call options; pass NULL for the defaults. Start from
 * KP_EXEC_OPTIONS_DEFAULT or kp_exec_options_init, then set fields.
 * The struct grows: fields are added after struct_size, each with 0 as its
 * default. libkp reads the first struct_size bytes and takes the defaults for
 * the fields beyond; struct_size 0 (a struct zeroed or filled with the four
 * first fields only) means the four fields before it. A struct_size larger
 * than this libkp knows is accepted when the bytes it does not know are 0,
 * else KP_ERR_ARGUMENT (the caller needs a newer libkp). */
typedef struct kp_exec_options {
    int num_threads; /* 0: the context's setting */
    int64_t nx;      /* number of i points when no Vi argument says it; -1: infer */
    int64_t ny;      /* number of j points when no Vj argument says it; -1: infer */
    /* CUstream for the CUDA engine with device arrays (NULL: the default
     * stream); read only when the arrays are on a CUDA device. */
    void *cuda_stream;
    size_t struct_size; /* sizeof(kp_exec_options) as the caller was compiled */
    kp_progress_fn progress; /* NULL: none (see kp_progress_fn) */
    void *progress_user;     /* passed to progress */
    const kp_ranges *ranges; /* NULL: dense (every pair); see kp_ranges (every engine) */
    /* Joint plans: the formula (0 to n-1) whose output kp_plan_output_shape
     * describes; 0 for an ordinary plan. Every other call refuses a value
     * other than 0 (KP_ERR_ARGUMENT) rather than ignore it. */
    int output;
} kp_exec_options;
#define KP_EXEC_OPTIONS_DEFAULT {0, -1, -1, NULL, sizeof(kp_exec_options), NULL, NULL, NULL, 0}
/* Sets *options to the defaults (KP_EXEC_OPTIONS_DEFAULT), struct_size included;
 * for bindings that cannot use the macro. No-op on NULL. */
void kp_exec_options_init(kp_exec_options *options);

/*
 * Runs the reduction. args[k] describes argument k (n_args == kp_formula_num_args).
 * out receives the values, shape (batch..., rows, out_dim) in the plan's dtype;
 * out_index receives int64 indices, shape (batch..., rows, out_index_dim).
 * Either may be NULL when the reduction has no such output; it must be given
 * when it has. rows = N for axis 1, M for axis 0.
 * Errors: KP_ERR_NULL, KP_ERR_DTYPE, KP_ERR_SHAPE (with the argument named),
 * KP_ERR_ARGUMENT (K > number of reduced points), KP_ERR_OOM, KP_ERR_TOO_LARGE.
 * NaN and Inf inputs are not errors: they propagate as IEEE arithmetic says;
 * Min/Max-type reductions rank NaN before every number (it is selected).
 * Results are bit-identical for any number of threads.
 */
kp_status kp_plan_exec(kp_plan *plan, const kp_array *args, size_t n_args, kp_array *out,
                       kp_array *out_index, const kp_exec_options *options);

/* The shape kp_plan_exec's outputs must have for these arguments (same
 * conventions as kp_plan_exec): *ndim = batch dimensions + 2, and if not NULL
 * shape[0 .. *ndim) = (batch..., rows, out_dim) and index_shape likewise with
 * out_index_dim (a width of 0: the reduction has no such output). The batch
 * shape broadcasts the arguments' (extent 1 against any); rows is N (axis 1)
 * or M (axis 0) from the Vi/Vj arguments or options->nx / ny, 1 when the
 * formula sums its rows. Arrays are not read, only their ndim and shape:
 * kp_plan_exec still checks everything. A joint plan (kp_plan_new_joint) has
 * one output per formula: options->output = k selects formula k's, the shape
 * kp_plan_exec_joint wants for outs[k] (its index_shape width is 0: joint
 * plans hold no index outputs). Errors: KP_ERR_NULL, KP_ERR_ARGUMENT (argument
 * count; options->output not 0 for an ordinary plan, or not below the number
 * of formulas of a joint one), KP_ERR_SHAPE (batch extents that do not
 * broadcast, no size for the rows). shape and index_shape hold KP_MAX_DIMS
 * values. */
kp_status kp_plan_output_shape(kp_plan *plan, const kp_array *args, size_t n_args, const kp_exec_options *options,
                               int *ndim, int64_t *shape, int64_t *index_shape);

/* ---------------------------------------------------------------- joint plans
 * Several reductions of the same arguments in one pass over the pairs (i, j):
 * Sums over j (axis 1, one value per i) and Sums over i (axis 0, one value per
 * j) share every value they have in common, such as the kernel K(x_i, y_j),
 * which is then computed once per pair instead of once per formula. Made for
 * an autodiff backward pass: the gradients of one forward w.r.t. its i- and
 * j-variables (kp_formula_grad) are such formulas, and their joint pass costs
 * little more than the most expensive of them alone.
 *
 * The formulas (1 to 8, made in one context) must take the same arguments:
 * same number, and the same category and dimension wherever two use the same
 * position. Reductions with index outputs (ArgMin, ...) are refused. Parameter
 * gradients (rows summed) join the pass through a per-row temporary, summed in
 * double as kp_plan_exec sums them. Formulas the joint pass cannot take (other
 * reductions than Sum) and calls
 * it cannot take (batch dimensions, GPU engines, fewer than 512 i points, or
 * column buffers above 64 MiB) run one formula after the other instead; the
 * choice depends on the sizes only, so results stay bit-identical for any
 * number of threads. A column sum is a compensated sum of blocks of at most
 * 64 terms: float32 keeps about 1e-6 relative accuracy at any size. */
kp_status kp_plan_new_joint(kp_context *ctx, const kp_formula *const *formulas, size_t n, kp_dtype dtype,
                            kp_plan **out);
/* Runs a joint plan: args as for kp_plan_exec (shared by every formula);
 * outs[k] receives formula k's values (n_outs == n). kp_plan_exec refuses a
 * joint plan and kp_plan_exec_joint an ordinary one (KP_ERR_ARGUMENT). */
kp_status kp_plan_exec_joint(kp_plan *plan, const kp_array *args, size_t n_args, kp_array *outs, size_t n_outs,
                             const kp_exec_options *options);

/* One-shot convenience: parse, plan and run. */
kp_status kp_reduce(kp_context *ctx, const char *text, const char *const *aliases,
                    size_t n_aliases, kp_dtype dtype, const kp_array *args, size_t n_args,
                    kp_array *out, kp_array *out_index);

/* ---------------------------------------------------------------- kernel solves
 * kp_plan_solve solves the linear system  (alpha I + K) x = b  by conjugate
 * gradients, where K is the linear operator  v -> kp_plan_exec(plan) with
 * v in the place of argument `varinv`. The plan must be a Sum reduction whose
 * formula is linear in varinv (e.g. "Sum_Reduction(Exp(-SqDist(x,y)*g)*b, 1)"
 * with varinv = b), varinv a variable of the reduced axis (Vj for axis 1, Vi
 * for axis 0) of the output's dimension d, and K square: the output's rows
 * (N for axis 1) are as many as varinv's (M). CG needs alpha I + K symmetric
 * positive definite (a positive definite kernel with x = y, or alpha > 0 and a
 * positive semi-definite kernel); linearity and symmetry are not checked.
 *
 * The (n, d) columns form one vector of n*d unknowns (a block-diagonal system,
 * as KeOps' KernelSolve). Iterates and dot products are kept in double for
 * both dtypes; each iteration is one kp_plan_exec. Starts from x = 0 and stops
 * when |r| <= tol |b| (r the recursively updated residual, |.| the Frobenius
 * norm) or after max_iter iterations. */
typedef struct kp_solve_options {
    size_t size;        /* sizeof(kp_solve_options): lets the struct grow */
    double alpha;       /* ridge added to K's diagonal; >= 0 */
    double tol;         /* relative residual to reach; > 0 (default 1e-6) */
    int max_iter;       /* iteration cap; 0: n*d (CG's exact-arithmetic bound), at least 10 */
    const kp_exec_options *exec; /* options of every kp_plan_exec (NULL: defaults) */
} kp_solve_options;
#define KP_SOLVE_OPTIONS_DEFAULT {sizeof(kp_solve_options), 0.0, 1e-6, 0, NULL}

/* What a solve did; filled on KP_OK. converged == 0 means max_iter was reached
 * first: x holds the last iterate, whose relative residual is `residual`. */
typedef struct kp_solve_info {
    int iterations;  /* kp_plan_exec calls made (0 when b == 0) */
    double residual; /* final |r| / |b| (0 when b == 0) */
    int converged;   /* 1 if residual <= tol */
} kp_solve_info;

/*
 * Solves (alpha I + K) x = b as above. args: the plan's arguments (n_args ==
 * kp_formula_num_args), args[varinv] is ignored (may be zeroed). b and x: 2-D
 * host arrays (n, d) of the plan's dtype, any strides; x may be b (b is read
 * before x is written).
 * options: NULL for the defaults. info must not be NULL: non-convergence is
 * reported there (KP_OK, converged = 0), never silently.
 * Errors (message in the plan's context): KP_ERR_NULL; KP_ERR_ARGUMENT (not a
 * Sum reduction, varinv out of range or not a variable of the reduced axis,
 * alpha < 0, tol <= 0, options->size too small, a joint plan, batch
 * dimensions, or p^T (alpha I + K) p <= 0 at some iteration: the system is not
 * positive definite); KP_ERR_SHAPE (K not square: N != M, or b, x not (n, d)
 * with d the output's dimension); KP_ERR_DTYPE; kp_plan_exec's errors.
 * Thread-safety: as kp_plan_exec.
 */
kp_status kp_plan_solve(kp_plan *plan, const kp_array *args, size_t n_args, int varinv, const kp_array *b,
                        kp_array *x, const kp_solve_options *options, kp_solve_info *info);
/* ---------------------------------------------------------------- end of kernel solves block */


/* ---------------------------------------------------------------- engines
 * Which engine runs kp_plan_exec for a context. Nothing GPU-related is needed
 * to build or load libkp: the OpenCL and CUDA libraries are loaded at run
 * time, and a missing one is KP_ERR_UNSUPPORTED with the reason.
 *
 * KP_ENGINE_CPU (default): host arrays only.
 * KP_ENGINE_OPENCL: the generated OpenCL kernels on the first OpenCL device;
 *   host arrays, copied to device buffers and back at each call (synchronous).
 * KP_ENGINE_CUDA: the generated CUDA kernels, compiled with NVRTC for the
 *   device's architecture (or taken from libkp's built-in kernels) and cached
 *   in memory and on disk (docs/gpu_cache.md), run through the driver API
 *   (libcuda.so.1; libnvrtc for formulas that are not built in).
 *   - Device arrays (every array of the call has device KP_DEVICE_CUDA and the
 *     same device_id): the reduction is queued on kp_exec_options.cuda_stream
 *     (NULL: the default stream) and kp_plan_exec returns without waiting:
 *     the results are ready when that stream reaches this point, and the
 *     caller synchronizes (as with any CUDA library call). Inputs must stay
 *     valid and unmodified until then. libkp's own temporaries (for arrays not
 *     in the packed row-major layout, split reductions, parameter gradients)
 *     are stream-ordered (cuMemAllocAsync/cuMemFreeAsync), so they need no
 *     synchronization; on drivers or devices without the stream-ordered
 *     allocator they use cuMemAlloc and the call synchronizes the stream
 *     before freeing them. Arrays may be strided and batch-broadcast.
 *   - Host arrays: a convenience; copied to device 0 and back, synchronous.
 * KP_ENGINE_AUTO: device arrays run on the CUDA engine, host arrays on the
 *   CPU. libkp never moves data between devices behind the caller's back.
 * Arrays of one call on different devices (CPU and CUDA, or two CUDA devices)
 * are KP_ERR_ARGUMENT. CUDA device arrays given to the CPU or OpenCL engine
 * are KP_ERR_UNSUPPORTED. */
typedef enum kp_engine { KP_ENGINE_CPU = 0, KP_ENGINE_OPENCL = 1, KP_ENGINE_CUDA = 2, KP_ENGINE_AUTO = 3 } kp_engine;

/* Selects the engine of later executions through ctx. Returns KP_ERR_ARGUMENT
 * for an unknown value and KP_ERR_UNSUPPORTED (engine unchanged, message e.g.
 * "no OpenCL platform: ...") when the engine cannot run on this machine. */
kp_status kp_context_set_engine(kp_context *ctx, kp_engine engine);
/* KP_OK if the engine can run here, else KP_ERR_UNSUPPORTED with the reason in ctx. */
kp_status kp_engine_available(kp_context *ctx, kp_engine engine);
/* Writes the kernel source that the engine (KP_ENGINE_CUDA: CUDA C++ for
 * NVRTC; KP_ENGINE_OPENCL: OpenCL C) generates for f in dtype into buf (always
 * NUL-terminated when size > 0); *needed (if not NULL) receives its length
 * without the NUL. Kernels: kp_reduce and kp_merge (see src/gpu/codegen.h).
 * The source follows ctx's sum scheme and math mode, as the engines' kernels do. */
kp_status kp_formula_gpu_source(kp_context *ctx, const kp_formula *f, kp_dtype dtype, kp_engine engine, char *buf,
                                size_t size, size_t *needed);
/* Ahead-of-time CUDA kernels: when libkp was built with nvcc (CMake option
 * KP_CUDA_AOT), the kernels of the standard formulas (the Gaussian, Laplacian,
 * Cauchy, inverse multiquadric and energy kernel products of pykp, Sum and
 * LogSumExp, their first gradients, float32 and float64; docs/architecture.md)
 * are built into the library, so the CUDA engine runs them without compiling
 * with NVRTC. kp_cuda_aot_kernel_count: how many (0 when built without nvcc).
 * kp_formula_cuda_aot sets *built_in to 1 if f in dtype is one of them (its
 * generated source, as kp_formula_gpu_source prints it, is in the table), else
 * 0. Same errors as kp_formula_gpu_source. Thread-safe as the other calls that
 * take a context. */
size_t kp_cuda_aot_kernel_count(void);
kp_status kp_formula_cuda_aot(kp_context *ctx, const kp_formula *f, kp_dtype dtype, int *built_in);
/* ---------------------------------------------------------------- end of engines block */

/* ---------------------------------------------------------------- partial reduction states
 * Every reduction is a monoid (init, fold, merge, finalize). These calls expose
 * its states so that the reduced axis can be split over processes, machines or
 * devices (libkp_mpi, pykp.distributed are built on them):
 *
 *   kp_plan_state_info(plan, args, ...)          size and layout of a state buffer
 *   kp_plan_state_init(plan, &info, state)       every row at the monoid's identity
 *   kp_plan_exec_partial(plan, part_args, offset, state, ...)
 *                                                folds a part of the reduced axis in
 *   kp_plan_state_merge(plan, a, b, bytes)       a <- a (+) b
 *   kp_plan_state_finalize(plan, args, state, out, out_index, ...)
 *
 * A part is given as ordinary arguments whose reduced-axis variables (Vj for
 * axis 1, Vi for axis 0) hold only the part's points; `offset` is the global
 * index of its first point, added to every index a Min/Max/KMin-type state
 * keeps (and to what IndexI()/IndexJ() read on the reduced axis). Row-axis variables and parameters are the full ones of the rows the
 * state holds. Parts may be empty (0 points).
 *
 * Buffer layout (bytes from the start; kp_state_info says the numbers):
 *   [0, 64)                header: "kpstate" magic, dtype, nbatch, nrows,
 *                          nreal, nidx, the number of points folded in,
 *                          the reduction, row_offset
 *   [real_offset, ...)     nbatch x nrows x nreal reals of the plan's dtype,
 *                          row-major (batch, row, slot)
 *   [index_offset, ...)    nbatch x nrows x nidx int64 indices, likewise
 * The slots of one row (D = dim of F, DG = dim of G, K of the KMin family):
 *   Sum               sum[D], compensation[D]  (Kahan: the value is sum - comp)
 *   LogSumExp         max[D], sum[D], comp[D]  (sum of exp(F - max))
 *   SumSoftMaxWeight  max, sum, comp, num[DG], comp_num[DG]
 *   Min/Max/Arg...    value[D]         index[D]     (index -1: nothing yet)
 *   KMin family       value[K*D]       index[K*D]   (sorted; slot k*D + d)
 * and under KP_SUM_EXACT, no reals and these int64 words (an accumulator
 * is 12 words: flags, top bin, 5 bins of 128 bits; src/plan/exact_sum.h,
 * src/plan/exact_exp.h, docs/distributed.md):
 *   Sum               an accumulator per component: 12*D words
 *   LogSumExp         per component, the largest F (float64 bits) and an
 *                     accumulator: 13*D words
 *   SumSoftMaxWeight  the largest F, the largest F with |F| >= 1.5e18 and
 *                     its count, accumulators of exp(F), exp(F) G[DG] and
 *                     G[DG] at that F: 3 + 12*(1 + 2*DG) words
 * Rows are the output rows of kp_plan_exec (N for axis 1, M for axis 0), also
 * when the formula sums its rows (finalize sums them as kp_plan_exec does).
 * Buffers are plain bytes in host order: they may be sent between processes
 * of the same architecture as they are.
 *
 * Order and bits. Reduced points are folded in chunks of KP_STATE_CHUNK points
 * (counted from the start of each part), exactly as kp_plan_exec walks them:
 * folding parts into one state in increasing order, each starting at a
 * multiple of KP_STATE_CHUNK, gives results bit-identical to one kp_plan_exec
 * over all points, for any thread counts. kp_plan_state_merge(a, b) (b holds
 * the points after a's) is exact for the Min/Max/ArgMin/.../KMin family (the
 * same values and indices as one call, ties to the smallest index, for any
 * split); for Sum, LogSumExp and SumSoftMaxWeight it is compensated and
 * deterministic (same split, same merge order: same bits) but rounds
 * differently from one call: within 1e-6 of the largest output in float32
 * and 1e-13 in float64 (what tests/test_partial.c checks). Under the
 * KP_SUM_EXACT sum scheme their states are exact: any split, merged in any
 * order, gives one call's bits (tests/test_exact_sum.c); the sum scheme in
 * force when a state is made must be in force when it is folded, merged and
 * finalized (KP_ERR_ARGUMENT otherwise).
 *
 * Block-sparse ranges (options->ranges) select the pairs a part folds, in
 * the part's coordinates: a reduced range [s, e) of global points is given
 * as [max(s, offset) - offset, min(e, offset + n) - offset) for a part of n
 * points (empty where they do not meet). With batch dimensions the part's
 * coordinates are the flattened (batch, point) indices of the part's own
 * arrays, as kp_plan_exec's are of its arrays. For a part of n points per
 * batch at offset, out of M points per batch, a reduced range [s, e) of a
 * cluster of batch b (b M <= s <= e <= (b + 1) M) is given as
 *     b n + [max(s - b M, offset) - offset, min(e - b M, offset + n) - offset)
 * and the row clusters count the rows the state holds, nrows per batch, from
 * 0 whatever row_offset: a cluster [s, e) of batch b, of a whole problem of N
 * rows per batch, for a state of rows [r0, r0 + nrows), is
 *     b nrows + [max(s - b N, r0) - r0, min(e - b N, r0 + nrows) - r0)
 * (r0 = 0, nrows = N for a state of every row: the clusters as they are).
 * Clipping keeps the order, so the ranges stay sorted and in their batch;
 * empty ones may stay, or be dropped with the slices recounted. libkp_mpi
 * clips so for each part it folds (src/mpi/ranges.c); tests/test_partial.c
 * checks batched ranged parts against one ranged kp_plan_exec. The rules
 * below hold as without ranges. kp_plan_state_info and
 * kp_plan_state_finalize ignore ranges.
 * Every engine that computes states folds ranged parts.
 *
 * Engines: the states are computed by the context's engine. The CUDA
 * engine also folds CUDA device arrays (float16 ones included; on
 * options->cuda_stream, synchronized before the call returns); the states
 * are host buffers either way. kp_plan_state_finalize runs on the host and
 * takes host arrays only (KP_ERR_UNSUPPORTED). Every engine writes the
 * same layout, so states of different engines merge; the bits above hold per
 * engine (the GPU engines fold chunks of 16384 points, so their aligned parts
 * are multiples of 16384, which KP_STATE_CHUNK is). Merge and finalize are
 * host operations and run for any engine setting. Joint plans are
 * KP_ERR_ARGUMENT.
 * Thread-safety: as kp_plan_exec; each call writes only the state it is given.
 */
#define KP_STATE_CHUNK 32768
#define KP_STATE_HEADER_BYTES 64

typedef struct kp_state_info {
    size_t bytes;                      /* size of the whole buffer */
    int64_t nbatch, nrows;             /* flat batch count, rows per batch */
    int nreal, nidx;                   /* reals and int64 indices per row */
    size_t real_offset, index_offset;  /* bytes from the start of the buffer */
    kp_dtype dtype;                    /* of the reals: the plan's compute dtype (float32 for a float16 plan) */
    /* Global index of the state's first row (what IndexI()/IndexJ() of the
     * rows read, e.g. in the gradients of Min/Max): 0 from
     * kp_plan_state_info; set it before kp_plan_state_init when the rows
     * are a slice of a larger set. Kept in the header. */
    int64_t row_offset;
} kp_state_info;

/* The state buffer for these arguments (as for kp_plan_exec; the reduced-axis
 * variables may hold any number of points: only the rows and the batch shape
 * count). Errors: as kp_plan_output_shape, KP_ERR_TOO_LARGE. */
kp_status kp_plan_state_info(kp_plan *plan, const kp_array *args, size_t n_args, const kp_exec_options *options,
                             kp_state_info *info);
/* Writes the header and every row's identity (no point folded) into state
 * (info->bytes bytes, from kp_plan_state_info on this plan). */
kp_status kp_plan_state_init(kp_plan *plan, const kp_state_info *info, void *state);
/* Folds the reduced-axis points of args (global indices offset, offset + 1,
 * ...) into state (bytes long, initialized for the same rows and batches).
 * Errors: kp_plan_exec's (except that K may exceed the part's points),
 * KP_ERR_ARGUMENT (offset < 0, a state of another plan or shape),
 * KP_ERR_UNSUPPORTED (see Engines above), KP_ERR_CANCELLED (the state is then
 * unspecified). */
kp_status kp_plan_exec_partial(kp_plan *plan, const kp_array *args, size_t n_args, int64_t offset, void *state,
                               size_t bytes, const kp_exec_options *options);
/* a <- a (+) b for two states of the same plan and shape (b's points come
 * after a's, which decides ties). KP_ERR_ARGUMENT when they differ. */
kp_status kp_plan_state_merge(kp_plan *plan, void *a, const void *b, size_t bytes);
/* Writes the outputs of state as kp_plan_exec would (args, out, out_index as
 * for kp_plan_exec; the reduced-axis variables may hold any number of points,
 * even 0: they are not read). KP_ERR_ARGUMENT when state does not match the
 * arguments' rows or when a KMin-type reduction has folded fewer than K
 * points. */
kp_status kp_plan_state_finalize(kp_plan *plan, const kp_array *args, size_t n_args, const void *state, size_t bytes,
                                 kp_array *out, kp_array *out_index, const kp_exec_options *options);
/* For layers built on kp.h that are handed a plan (libkp_mpi, bindings): the
 * plan's context (where its calls leave their messages), the axis it reduces
 * over (1: over j, 0: over i; -1 for NULL or a joint plan), its number of
 * arguments (-1 for NULL), and argument k's category and dimension (*used 0:
 * the formula does not read that position). */
kp_context *kp_plan_context(const kp_plan *plan);
int kp_plan_axis(const kp_plan *plan);
int kp_plan_num_args(const kp_plan *plan);
kp_status kp_plan_arg(const kp_plan *plan, int k, kp_var_category *category, int *dim, int *used);
/* Checks ranges as kp_plan_exec would for a call of this plan over nbatch
 * (flat) batches of nrows output rows and ncols reduced points each (the
 * triple of the plan's axis only): KP_ERR_ARGUMENT (or KP_ERR_NULL) with
 * kp_plan_exec's message naming the first bad entry; NULL ranges: KP_OK. For
 * layers that split a call whose ranges are given for the whole problem
 * (libkp_mpi, pykp.distributed): the parts' clipped ranges cannot show every
 * error of the whole. */
kp_status kp_plan_ranges_check(kp_plan *plan, const kp_ranges *ranges, int64_t nbatch, int64_t nrows, int64_t ncols);
/* Leaves message in ctx as a failing libkp call would, and returns status
 * (KP_OK clears the message): how such layers report through the same
 * context. KP_ERR_NULL if ctx is NULL. */
kp_status kp_context_set_error(kp_context *ctx, kp_status status, const char *message);
/* ---------------------------------------------------------------- end of partial states block */

#ifdef __cplusplus
}
#endif
#endif /* KP_H */
