/*
 * ops.h - the meaning of every elementwise op on one scalar, special values
 * included, written once for the CPU and both GPU dialects: this file is C
 * that is also CUDA C++ and OpenCL C. The CPU build compiles it (through
 * device/host.h: constant folding and the CPU engine's scalar path,
 * formula/scalar_eval.h), and the GPU generator embeds its text in every
 * kernel (codegen.c, a string made at build time by cmake/embed_source.cmake).
 *
 * Before it, the includer defines KP_REAL (the scalar type), KP_DEVICE (the
 * functions' qualifiers: static inline, or CUDA's __device__) and the math
 * library of its dialect: kp__d_exp, kp__d_log, kp__d_sqrt, kp__d_rsqrt_raw
 * (1 / sqrt, or the hardware approximation under fast math), kp__d_sin,
 * kp__d_cos, kp__d_asin, kp__d_acos, kp__d_atan, kp__d_atan2, kp__d_tanh,
 * kp__d_erf, kp__d_fabs, kp__d_floor, kp__d_round, kp__d_pow.
 *
 * No include guard: a CUDA translation unit embeds it once per kernel
 * namespace. Conventions (KeOps-compatible where KeOps defines them):
 *   Rsqrt(0) = 0, XLogX(0) = 0, SinXDivX(0) = 1, Step(x) = x >= 0,
 *   Sign(0) = 0, IfElse(f,g,h) = f >= 0 ? g : h, comparisons give 1 or 0.
 *   NaN propagates through Sign, Step, ReLU, Clamp, Abs (never turned into a number).
 */
KP_DEVICE KP_REAL kp__d_add(KP_REAL a, KP_REAL b) { return a + b; }
KP_DEVICE KP_REAL kp__d_sub(KP_REAL a, KP_REAL b) { return a - b; }
KP_DEVICE KP_REAL kp__d_mul(KP_REAL a, KP_REAL b) { return a * b; }
KP_DEVICE KP_REAL kp__d_div(KP_REAL a, KP_REAL b) { return a / b; }
KP_DEVICE KP_REAL kp__d_neg(KP_REAL a) { return -a; }
KP_DEVICE KP_REAL kp__d_inv(KP_REAL a) { return (KP_REAL)1 / a; }
KP_DEVICE KP_REAL kp__d_square(KP_REAL a) { return a * a; }
/* Pow(a, p), integer p: binary powering, a negative p inverts the product. */
KP_DEVICE KP_REAL kp__d_powi(KP_REAL a, int ip) {
    KP_REAL r = 1, base = a;
    unsigned e = ip < 0 ? (unsigned)(-(long)ip) : (unsigned)ip;
    while (e) {
        if (e & 1u) r *= base;
        base *= base;
        e >>= 1;
    }
    return ip < 0 ? (KP_REAL)1 / r : r;
}
KP_DEVICE KP_REAL kp__d_rsqrt(KP_REAL a) { return a == 0 ? (KP_REAL)0 : kp__d_rsqrt_raw(a); }
KP_DEVICE KP_REAL kp__d_lt(KP_REAL a, KP_REAL b) { return a < b ? (KP_REAL)1 : (KP_REAL)0; }
KP_DEVICE KP_REAL kp__d_le(KP_REAL a, KP_REAL b) { return a <= b ? (KP_REAL)1 : (KP_REAL)0; }
KP_DEVICE KP_REAL kp__d_gt(KP_REAL a, KP_REAL b) { return a > b ? (KP_REAL)1 : (KP_REAL)0; }
KP_DEVICE KP_REAL kp__d_ge(KP_REAL a, KP_REAL b) { return a >= b ? (KP_REAL)1 : (KP_REAL)0; }
KP_DEVICE KP_REAL kp__d_eq(KP_REAL a, KP_REAL b) { return a == b ? (KP_REAL)1 : (KP_REAL)0; }
KP_DEVICE KP_REAL kp__d_ne(KP_REAL a, KP_REAL b) { return a != b ? (KP_REAL)1 : (KP_REAL)0; }
KP_DEVICE KP_REAL kp__d_xlogx(KP_REAL a) { return a == 0 ? (KP_REAL)0 : a * kp__d_log(a); }
KP_DEVICE KP_REAL kp__d_sinxdivx(KP_REAL a) { return a == 0 ? (KP_REAL)1 : kp__d_sin(a) / a; }
KP_DEVICE KP_REAL kp__d_sign(KP_REAL a) { return a > 0 ? (KP_REAL)1 : (a < 0 ? (KP_REAL)-1 : a * (KP_REAL)0); }
KP_DEVICE KP_REAL kp__d_step(KP_REAL a) { return a >= 0 ? (KP_REAL)1 : (a < 0 ? (KP_REAL)0 : a); }
KP_DEVICE KP_REAL kp__d_relu(KP_REAL a) { return a > 0 ? a : (a == a ? (KP_REAL)0 : a); }
/* Round(a, d): to d decimals. */
KP_DEVICE KP_REAL kp__d_roundd(KP_REAL a, int ip) {
    KP_REAL scale = (KP_REAL)1;
    for (int k_ = 0; k_ < ip; k_++) scale *= (KP_REAL)10;
    return kp__d_round(a * scale) / scale;
}
KP_DEVICE KP_REAL kp__d_clamp(KP_REAL a, KP_REAL b, KP_REAL c) { return a < b ? b : (a > c ? c : a); }
KP_DEVICE KP_REAL kp__d_ifelse(KP_REAL a, KP_REAL b, KP_REAL c) { return a >= 0 ? b : c; }
