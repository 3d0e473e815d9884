/*
 * plain_loop.c — the baseline of bench_gauss: what a competent user writes by
 * hand for a Gaussian kernel product, nothing more. One parallel loop over i,
 * one plain loop over j, scalar accumulators; vectorization is left to the
 * compiler (this file alone is compiled with -O3 -march=native -ffast-math
 * -fopenmp, see bench/CMakeLists.txt).
 */
#include "plain_loop.h"

#include <math.h>

void plain_gauss3d_b1_f32(int64_t n, int64_t m, const float *x, const float *y, float g,
                          const float *b, float *out, int num_threads)
{
#pragma omp parallel for num_threads(num_threads) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float x0 = x[3 * i], x1 = x[3 * i + 1], x2 = x[3 * i + 2];
        float acc = 0.0f;
        for (int64_t j = 0; j < m; j++) {
            const float d0 = x0 - y[3 * j], d1 = x1 - y[3 * j + 1], d2 = x2 - y[3 * j + 2];
            acc += expf(-g * (d0 * d0 + d1 * d1 + d2 * d2)) * b[j];
        }
        out[i] = acc;
    }
}

void plain_gauss3d_b3_f32(int64_t n, int64_t m, const float *x, const float *y, float g,
                          const float *b, float *out, int num_threads)
{
#pragma omp parallel for num_threads(num_threads) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float x0 = x[3 * i], x1 = x[3 * i + 1], x2 = x[3 * i + 2];
        float acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f;
        for (int64_t j = 0; j < m; j++) {
            const float d0 = x0 - y[3 * j], d1 = x1 - y[3 * j + 1], d2 = x2 - y[3 * j + 2];
            const float k = expf(-g * (d0 * d0 + d1 * d1 + d2 * d2));
            acc0 += k * b[3 * j];
            acc1 += k * b[3 * j + 1];
            acc2 += k * b[3 * j + 2];
        }
        out[3 * i] = acc0;
        out[3 * i + 1] = acc1;
        out[3 * i + 2] = acc2;
    }
}

void plain_gauss3d_b1_f64(int64_t n, int64_t m, const double *x, const double *y, double g,
                          const double *b, double *out, int num_threads)
{
#pragma omp parallel for num_threads(num_threads) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const double x0 = x[3 * i], x1 = x[3 * i + 1], x2 = x[3 * i + 2];
        double acc = 0.0;
        for (int64_t j = 0; j < m; j++) {
            const double d0 = x0 - y[3 * j], d1 = x1 - y[3 * j + 1], d2 = x2 - y[3 * j + 2];
            acc += exp(-g * (d0 * d0 + d1 * d1 + d2 * d2)) * b[j];
        }
        out[i] = acc;
    }
}

void plain_gauss3d_b3_f64(int64_t n, int64_t m, const double *x, const double *y, double g,
                          const double *b, double *out, int num_threads)
{
#pragma omp parallel for num_threads(num_threads) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const double x0 = x[3 * i], x1 = x[3 * i + 1], x2 = x[3 * i + 2];
        double acc0 = 0.0, acc1 = 0.0, acc2 = 0.0;
        for (int64_t j = 0; j < m; j++) {
            const double d0 = x0 - y[3 * j], d1 = x1 - y[3 * j + 1], d2 = x2 - y[3 * j + 2];
            const double k = exp(-g * (d0 * d0 + d1 * d1 + d2 * d2));
            acc0 += k * b[3 * j];
            acc1 += k * b[3 * j + 1];
            acc2 += k * b[3 * j + 2];
        }
        out[3 * i] = acc0;
        out[3 * i + 1] = acc1;
        out[3 * i + 2] = acc2;
    }
}
