/*
 * scalar_eval.h — an elementwise op on one scalar, by kp_op: the dispatch
 * of device/ew_ops.def over the device sources (device/ops.h, where each op's
 * meaning and special values are written once, for the CPU and the GPU
 * kernels alike). Used for
 * constant folding (double), by the CPU engine for values that are uniform
 * over a tile (row values and parameters), and as the scalar fallback of the
 * vector kernels. The includer defines KP_REAL_F32 (device/host.h);
 * KP_DEFINE_SCALAR_EVAL(name) defines
 * `static inline KP_REAL name(kp_op op, KP_REAL a, KP_REAL b, KP_REAL c, int ip)`.
 */
#ifndef KP_FORMULA_SCALAR_EVAL_H
#define KP_FORMULA_SCALAR_EVAL_H

#include "device/host.h"
#include "formula/node.h"

/* op on (a, b, c, ip), as device/ew_ops.def maps it; NaN for an op that is not elementwise. */
static inline KP_REAL kp__scalar_eval(kp_op op, KP_REAL a, KP_REAL b, KP_REAL c, int ip) {
    (void)b;
    (void)c;
    (void)ip;
    switch ((int)op) { /* the elementwise ops only */
#define KP_DEVICE_OP(op, fn, args) \
    case op: return fn args;
#include "device/ew_ops.def"
#undef KP_DEVICE_OP
    default: break;
    }
    return (KP_REAL)NAN;
}

#define KP_DEFINE_SCALAR_EVAL(name)                                                 \
    static inline KP_REAL name(kp_op op, KP_REAL a, KP_REAL b, KP_REAL c, int ip) { \
        return kp__scalar_eval(op, a, b, c, ip);                                    \
    }

#endif
