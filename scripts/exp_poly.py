#!/usr/bin/env python3
"""exp_poly.py -- the float64 exp polynomial of compiled kernels (src/jit/jit_ops.c).

exp(r) = 1 + r + r^2 P(r) on |r| <= ln2/2 (the Cody-Waite reduction's range):
P is the Chebyshev fit of (exp(r) - 1 - r) / r^2 (mpmath.chebyfit, 50 digits),
its coefficients rounded to double. Prints them, highest degree first, as
jit_ops.c's KP_JIT_C64_* lines, and the fit's largest relative error of exp
over 4001 points of the range (the double coefficients evaluated exactly: the
kernels' own rounding of each step comes on top, see tests/test_jit.c).

usage: python3 scripts/exp_poly.py [--degree 9]     (needs mpmath)
"""
import argparse

import mpmath as mp


def fit(degree):
    mp.mp.dps = 50
    half = mp.log(2) / 2 * mp.mpf("1.0001")  # a little past ln2/2: the reduction rounds

    def g(r):
        return mp.mpf(1) / 2 if abs(r) < mp.mpf("1e-20") else (mp.exp(r) - 1 - r) / r**2

    poly = mp.chebyfit(g, [-half, half], degree + 1)
    coeffs = [float(c) for c in poly]
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
    ap.add_argument("--degree", type=int, default=9, help="degree of P (default 9)")
    args = ap.parse_args()
    coeffs, worst = fit(args.degree)
    for k, c in enumerate(coeffs):
        print("#define KP_JIT_C64_%d %r" % (args.degree - k, c))
    print("/* largest relative error of exp: %.3g (%.3g ulp) */" % (worst, worst / 2.0**-53))


if __name__ == "__main__":
    main()
