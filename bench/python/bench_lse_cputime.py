"""
bench_lse_cputime.py -- LogSumExp and SumSoftMaxWeight of the Gaussian's
exponent (-SqDist(x,y)*g, the log-domain kernel of Sinkhorn) and the
Gaussian kernel product for reference, on one thread, interpreter
(KP_JIT=off) and compiled kernel (KP_JIT=force), timed in pairs per second of
process CPU time (best of several calls), so that builds compare on a busy
machine. Run it once per build (LIBKP_PATH, PYTHONPATH) and alternate the runs.

usage: python3 bench/python/bench_lse_cputime.py [--sizes 4000] [--reps 10] [--dtypes float32,float64]
"""
import argparse
import os
import time

ALIASES = ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(3)"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="4000", help="N = M values, comma-separated")
    ap.add_argument("--reps", type=int, default=10, help="calls per cell; the best counts")
    ap.add_argument("--dtypes", default="float32,float64")
    args = ap.parse_args(argv)
    os.environ["KP_NUM_THREADS"] = "1"  # read when pykp makes its context
    import numpy as np
    from pykp import Genred

    rng = np.random.default_rng(0)
    kernels = {
        "gaussian Sum": (Genred("Exp(-SqDist(x,y)*g)*b", ALIASES, axis=1), 4),
        "LogSumExp": (Genred("-SqDist(x,y)*g", ALIASES[:3], reduction_op="LogSumExp", axis=1), 3),
        "SumSoftMaxWeight, b dim 3": (
            Genred("-SqDist(x,y)*g", ALIASES, reduction_op="SumSoftMaxWeight", formula2="b", axis=1), 4),
    }
    for dt in args.dtypes.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            x, y, b = (rng.random((n, 3)).astype(dt) for _ in range(3))
            g = np.array([16.0], dtype=dt)
            for name, (k, nargs) in kernels.items():
                cells = []
                for mode in ("off", "force"):
                    os.environ["KP_JIT"] = mode
                    call = lambda: k(*(x, y, g, b)[:nargs])  # noqa: E731
                    call()
                    best = float("inf")
                    for _ in range(args.reps):
                        t0 = time.process_time()
                        call()
                        best = min(best, time.process_time() - t0)
                    cells.append(n * n / best)
                print("%s N = %d %-26s interpreter %.2e  compiled %.2e pairs/CPU s  (%.2fx)"
                      % (dt, n, name, cells[0], cells[1], cells[1] / cells[0]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
