/*
 * plain_loop.h — the reference a benchmark row is compared against: the
 * simplest honest C a user would write for the same reduction (OpenMP over i,
 * a plain loop over j, array-of-structures input x[i*3+d]), compiled with
 * -O3 -march=native -ffast-math -fopenmp so the compiler may vectorize the j
 * loop (and call glibc's vector expf/exp, libmvec) on its own.
 */
#ifndef KP_BENCH_PLAIN_LOOP_H
#define KP_BENCH_PLAIN_LOOP_H

#include <stdint.h>

/* out[i*db + e] = sum_j exp(-g * |x_i - y_j|^2) * b[j*db + e], x: n x 3, y: m x 3,
 * b: m x db, for db = 1 and db = 3 (one function each, so the loop is the one
 * a user would write for that case). */
void plain_gauss3d_b1_f32(int64_t n, int64_t m, const float *x, const float *y, float g,
                          const float *b, float *out, int num_threads);
void plain_gauss3d_b3_f32(int64_t n, int64_t m, const float *x, const float *y, float g,
                          const float *b, float *out, int num_threads);
void plain_gauss3d_b1_f64(int64_t n, int64_t m, const double *x, const double *y, double g,
                          const double *b, double *out, int num_threads);
void plain_gauss3d_b3_f64(int64_t n, int64_t m, const double *x, const double *y, double g,
                          const double *b, double *out, int num_threads);

#endif
