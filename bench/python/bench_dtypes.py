"""Storage dtypes through pykp: what float16 and complex arrays cost next to
float32 ones, in one run.

The Gaussian kernel product a_i = sum_j exp(-|x_i - y_j|^2) b_j, 3D, b of 2
columns, N = M points, CPU engine:
  float32     x, y, b float32 (the baseline)
  float16     x, y, b float16: libkp converts them to float32 scratch, computes
              in float32 and rounds a to float16 (O(N + M) extra work)
  complex64   b as N complex numbers (the same 2 reals per point), a complex
Prints the median wall and CPU (process) times of --repeat calls and each
ratio to float32, and the relative error of float16 against float64.
"""
import argparse
import statistics
import time

try:
    import torch

    import pykp
except ImportError as error:  # --help works without them; reported after parsing
    MISSING = error
else:
    MISSING = None

ALIASES = ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"]


def timed(fn, repeat):
    walls, cpus = [], []
    fn()  # the plan is made once, outside the timings
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    if MISSING:
        raise SystemExit("bench_dtypes.py: %s" % MISSING)
    g = pykp.Genred("Exp(-SqDist(x,y))*b", ALIASES, axis=1)
    gc = pykp.Genred("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], axis=1)
    print("%8s %-10s %10s %10s %8s %8s" % ("N = M", "dtype", "wall s", "cpu s", "wall/f32", "cpu/f32"))
    for n in a.sizes:
        torch.manual_seed(0)
        x, y, b = torch.rand(n, 3), torch.rand(n, 3), torch.randn(n, 2)
        xh, yh, bh = x.half(), y.half(), b.half()
        bc = torch.view_as_complex(b.reshape(n, 1, 2).contiguous())  # (n, 1) complex64: the same reals
        runs = {
            "float32": lambda: g(x, y, b),
            "float16": lambda: g(xh, yh, bh),
            "complex64": lambda: gc(x, y, bc),
        }
        base = None
        for name, fn in runs.items():
            w, c = timed(fn, a.repeat)
            base = base or (w, c)
            print("%8d %-10s %10.4f %10.4f %8.2f %8.2f" % (n, name, w, c, w / base[0], c / base[1]))
        if n <= 20000:
            ref = g(xh.double(), yh.double(), bh.double())
            err = ((g(xh, yh, bh).double() - ref).abs().max() / ref.abs().max()).item()
            print("%8d float16 max |error| / max |a| against float64 on the same inputs: %.2e" % (n, err))


if __name__ == "__main__":
    main()
