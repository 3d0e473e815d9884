/*
 * floor.c — the machine's floor for bench/python/bench_panel.py: measured
 * throughput of vector fused multiply-adds and of the compiler's vector exp
 * (glibc's libmvec), on T threads. Compiled like plain_loop.c (-O3
 * -march=native -ffast-math -fopenmp) into one shared library with it; the
 * script turns the two rates into pairs/s for the Gaussian kernel product.
 */
#include <math.h>
#include <stdint.h>

#define CHAINS 12 /* independent FMA chains: more than latency x pipes on current cores */
#define LANES 16

/* FMA lane-operations per second: CHAINS x LANES accumulators, each a chain of
 * a = a * m + c, so the loop is throughput-bound, not latency-bound. */
#define FMA_RATE(NAME, REAL)                                                               \
    double NAME(int64_t iters, int num_threads) {                                          \
        double total = 0;                                                                  \
        _Pragma("omp parallel num_threads(num_threads) reduction(+ : total)") {           \
            REAL acc[CHAINS][LANES];                                                       \
            for (int c = 0; c < CHAINS; c++)                                               \
                for (int l = 0; l < LANES; l++) acc[c][l] = (REAL)(c + l) * (REAL)1e-3;   \
            const REAL m = (REAL)0.999999, k = (REAL)1e-7;                                 \
            for (int64_t it = 0; it < iters; it++)                                         \
                for (int c = 0; c < CHAINS; c++)                                           \
                    _Pragma("omp simd") for (int l = 0; l < LANES; l++) acc[c][l] = acc[c][l] * m + k; \
            REAL s = 0;                                                                    \
            for (int c = 0; c < CHAINS; c++)                                               \
                for (int l = 0; l < LANES; l++) s += acc[c][l];                            \
            total += (double)s;                                                            \
        }                                                                                  \
        return total;                                                                      \
    }
FMA_RATE(floor_fma_f32, float)
FMA_RATE(floor_fma_f64, double)

/* exp over an L1-resident buffer, reps times: the vector exp's throughput. */
#define EXP_RATE(NAME, REAL, EXP)                                                          \
    double NAME(int64_t reps, int num_threads) {                                           \
        double total = 0;                                                                  \
        _Pragma("omp parallel num_threads(num_threads) reduction(+ : total)") {           \
            REAL in[1024], out[1024];                                                      \
            for (int k = 0; k < 1024; k++) in[k] = (REAL)(-k) * (REAL)(1.0 / 128);         \
            REAL s = 0;                                                                    \
            for (int64_t r = 0; r < reps; r++) {                                           \
                in[r & 1023] += (REAL)1e-9;                                                \
                _Pragma("omp simd") for (int k = 0; k < 1024; k++) out[k] = EXP(in[k]);    \
                s += out[r & 1023];                                                        \
            }                                                                              \
            total += (double)s;                                                            \
        }                                                                                  \
        return total;                                                                      \
    }
EXP_RATE(floor_exp_f32, float, expf)
EXP_RATE(floor_exp_f64, double, exp)
