#!/usr/bin/env python3
"""exp_poly.py -- the exp polynomials of compiled kernels (src/jit/jit_ops.c).

exp(r) = 1 + r + r^2 P(r) on |r| <= ln2/2 (the Cody-Waite reduction's range):
P is the Chebyshev fit of (exp(r) - 1 - r) / r^2 (mpmath.chebyfit, 50 digits),
its coefficients rounded to double (float with --float32). Prints them,
highest degree first, as jit_ops.c's KP_JIT_C64_* (KP_JIT_C32_*) lines, and
the fit's largest relative error of exp over 4001 points of the range (the
rounded coefficients evaluated exactly: the kernels' own rounding of each step
comes on top, see tests/test_jit.c).

With --table N, the float64 exp of AVX2 kernels: x = (k / N) ln2 + r, |r| <=
ln2 / (2 N), exp(x) = 2^(k / N) exp(r), the N values 2^(j / N) read from a
table: prints P for that range and the table (correctly rounded doubles) as a
KP_JIT_T<N> initialiser (jit_ops.c's KP_JIT_T64, N = 64).

usage: python3 scripts/exp_poly.py [--float32] [--degree D] [--table N]
       (needs mpmath; default degree 9 for float64, 4 for float32)
"""
import argparse
import struct

import mpmath as mp


def to_float32(x):
    """x rounded to the nearest float."""
    return struct.unpack("f", struct.pack("f", x))[0]


def shortest_float32(x):
    """The shortest decimal that reads back as the float x."""
    for digits in range(1, 10):
        text = "%.*g" % (digits, x)
        if to_float32(float(text)) == x:
            return text
    return "%.9g" % x


def fit(degree, float32, table=1):
    mp.mp.dps = 50
    # a little past ln2/2 (/ table): the reduction rounds (float32's more)
    half = mp.log(2) / (2 * table) * mp.mpf("1.001" if float32 else "1.0001")

    def g(r):
        return mp.mpf(1) / 2 if abs(r) < mp.mpf("1e-20") else (mp.exp(r) - 1 - r) / r**2

    poly = mp.chebyfit(g, [-half, half], degree + 1)
    coeffs = [to_float32(float(c)) if float32 else float(c) for c in poly]
    worst = mp.mpf(0)
    for k in range(4001):
        r = -half + 2 * half * k / 4000
        p = mp.mpf(0)
        for c in coeffs:
            p = p * r + mp.mpf(c)
        worst = max(worst, abs((1 + r + r * r * p) / mp.exp(r) - 1))
    return coeffs, float(worst)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--float32", action="store_true", help="the float32 polynomial")
    ap.add_argument("--degree", type=int, help="degree of P (default 9, or 4 with --float32)")
    ap.add_argument("--table", type=int, default=1, help="float64: entries of the table of 2^(j/N) (default: none)")
    args = ap.parse_args()
    if args.table < 1 or (args.table > 1 and args.float32):
        ap.error("--table takes a count >= 1, and only for the float64 exp")
    degree = args.degree if args.degree is not None else (4 if args.float32 else 9)
    coeffs, worst = fit(degree, args.float32, args.table)
    name = "KP_JIT_CT64_%d" if args.table > 1 else "KP_JIT_C64_%d"
    for k, c in enumerate(coeffs):
        if args.float32:
            print("#define KP_JIT_C32_%d %sf" % (degree - k, shortest_float32(c)))
        else:
            print("#define %s %r" % (name % (degree - k), c))
    if args.table > 1:
        values = [float(mp.power(2, mp.mpf(j) / args.table)) for j in range(args.table)]
        print("#define KP_JIT_T%d { \\" % args.table)
        for j in range(0, args.table, 4):
            print("    %s, \\" % ", ".join(v.hex() for v in values[j : j + 4]))
        print("}")
    ulp = 2.0**-24 if args.float32 else 2.0**-53
    print("/* largest relative error of exp: %.3g (%.3g ulp) */" % (worst, worst / ulp))


if __name__ == "__main__":
    main()
