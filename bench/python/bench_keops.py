"""
bench_keops.py -- pykp against KeOps (pykeops, its CPU backend) and dense
PyTorch for the Gaussian kernel product

    a_i = sum_j exp(-g |x_i - y_j|^2) b_j       (x, y in 3D, b scalar, float32)

on the CPU, in one run: forward, and forward + backward with respect to x
("fwd+bwd"), at N = M = 10^4 and 10^5 by default; and the first call of each
library (KeOps compiles its formula with g++ at the first call -- and its
gradient's at the first backward -- into a fresh build folder here; pykp
parses and plans, no compiler). pykp and KeOps run the same Genred formula
with the same aliases. Dense torch materializes the N x M kernel matrix and
runs only where it fits (--dense-limit-gb).

The table reports the median wall time of --reps calls (after one warm-up
call) and the ratios of KeOps and dense torch to pykp (> 1: pykp faster).

usage: python3 bench/python/bench_keops.py [--sizes 10000,100000] [--reps 3]
       [--threads 0] [--dense-limit-gb 4] [--max-seconds 120]
"""
import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

try:
    import torch

    import pykp
except ImportError as error:  # --help works without them; reported after parsing
    MISSING = error
else:
    MISSING = None

FORMULA = "Exp(-SqDist(x,y)*g)*b"
ALIASES = ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"]


def _parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000", help="comma-separated N (= M)")
    p.add_argument("--reps", type=int, default=3, help="timed calls per cell (median)")
    p.add_argument("--threads", type=int, default=0, help="torch and libkp threads (0: all cores)")
    p.add_argument("--dense-limit-gb", type=float, default=4.0, help="largest dense kernel matrix")
    p.add_argument("--passes", default="forward,fwd+bwd", help="comma-separated: forward, fwd+bwd")
    p.add_argument("--max-seconds", type=float, default=20.0,
                   help="a cell whose call takes longer is timed by that one call")
    args = p.parse_args()
    if MISSING:
        raise SystemExit("bench_keops.py: %s" % MISSING)
    return args


def _data(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=g)
    y = torch.rand(n, 3, generator=g)
    b = torch.randn(n, 1, generator=g)
    gamma = torch.tensor([1.0 / 0.1**2])  # bandwidth 0.1 in the unit cube
    return x, y, gamma, b


def _dense(x, y, g, b):
    return torch.exp(-torch.cdist(x, y).pow(2) * g) @ b


def _time(fn, reps, max_seconds):
    t = time.perf_counter()
    fn()  # warm-up: KeOps loads its compiled module, pykp its plan
    t = time.perf_counter() - t
    if t > max_seconds:  # a long call: loading costs nothing next to it, let it count
        return t
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if times[-1] > max_seconds:
            break
    return statistics.median(times)


def _passes(reduce, x, y, g, b):
    def fwd():
        reduce(x, y, g, b)

    def fwd_bwd():
        xr = x.detach().requires_grad_()
        (gx,) = torch.autograd.grad(reduce(xr, y, g, b).sum(), xr)

    return {"forward": fwd, "fwd+bwd": fwd_bwd}


def _first_calls(keops_genred, n=1000):
    """Seconds of the first forward and the first forward + backward of each
    library, in this process, on a new formula (KeOps: a fresh build folder)."""
    x, y, g, b = _data(n, seed=1)
    out = {}
    t = time.perf_counter()
    kp = pykp.Genred(FORMULA, ALIASES, reduction_op="Sum", axis=1)
    kp(x, y, g, b)
    out[("pykp", "forward")] = time.perf_counter() - t
    t = time.perf_counter()
    xr = x.clone().requires_grad_()
    torch.autograd.grad(kp(xr, y, g, b).sum(), xr)
    out[("pykp", "fwd+bwd")] = time.perf_counter() - t
    t = time.perf_counter()
    ko = keops_genred(FORMULA, ALIASES, reduction_op="Sum", axis=1)
    ko(x, y, g, b, backend="CPU")
    out[("KeOps", "forward")] = time.perf_counter() - t
    t = time.perf_counter()
    xr = x.clone().requires_grad_()
    torch.autograd.grad(ko(xr, y, g, b, backend="CPU").sum(), xr)
    out[("KeOps", "fwd+bwd")] = time.perf_counter() - t
    return out


def main():
    args = _parse()
    if args.threads:
        torch.set_num_threads(args.threads)
        pykp.set_num_threads(args.threads)
    build = tempfile.mkdtemp(prefix="keops-build-")
    import pykeops

    pykeops.set_verbose(False)
    pykeops.set_build_folder(build)  # a cold cache: the first call compiles
    from pykeops.torch import Genred as KeopsGenred

    print("# bench_keops.py: %s, %d cores, torch %s, pykeops %s, pykp %s, libkp %s"
          % (platform.processor() or platform.machine(), os.cpu_count(), torch.__version__, pykeops.__version__,
             pykp.__version__, pykp.library_path))
    print("# threads: torch %d, libkp %d; KeOps build folder %s" % (torch.get_num_threads(), pykp.get_num_threads(), build))
    sys.stdout.flush()

    # also compiles KeOps' forward and gradient before anything is timed
    first = _first_calls(KeopsGenred)
    print("\nfirst call (N = M = 1000, new formula; KeOps compiles with g++, pykp does not):")
    print("| library | first forward (s) | first fwd+bwd (s) |")
    print("|---|---:|---:|")
    for lib in ("pykp", "KeOps"):
        print("| %s | %.3f | %.3f |" % (lib, first[(lib, "forward")], first[(lib, "fwd+bwd")]))
    sys.stdout.flush()

    kp = pykp.Genred(FORMULA, ALIASES, reduction_op="Sum", axis=1)
    ko = KeopsGenred(FORMULA, ALIASES, reduction_op="Sum", axis=1)
    contenders = {"pykp": kp, "KeOps": lambda *a: ko(*a, backend="CPU"), "dense torch": _dense}
    print("\nmedian of %d calls after a warm-up, float32, seconds; ratio = time / pykp's time:" % args.reps)
    print("| N = M | pass | pykp | KeOps | KeOps / pykp | dense torch | dense / pykp |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n in [int(s) for s in args.sizes.split(",")]:
        x, y, g, b = _data(n)
        dense_gb = 2 * 4.0 * n * n / 1e9  # the matrix and its exp (backward keeps more)
        for name in args.passes.split(","):
            t = {}
            for lib, fn in contenders.items():
                if lib == "dense torch" and dense_gb * (2 if name == "fwd+bwd" else 1) > args.dense_limit_gb:
                    continue
                t[lib] = _time(_passes(fn, x, y, g, b)[name], args.reps, args.max_seconds)
            d = t.get("dense torch")
            print("| %d | %s | %.4f | %.4f | %.1f | %s | %s |"
                  % (n, name, t["pykp"], t["KeOps"], t["KeOps"] / t["pykp"],
                     "%.4f" % d if d else "(memory)", "%.1f" % (d / t["pykp"]) if d else "-"))
            sys.stdout.flush()
        # the same values from the three (checked once per size, on the forward)
        a_kp, a_ko = kp(x, y, g, b), ko(x, y, g, b, backend="CPU")
        err = ((a_kp - a_ko).abs().max() / a_kp.abs().max()).item()
        print("|  | max rel. difference pykp vs KeOps: %.1e |  |  |  |  |  |" % err)


if __name__ == "__main__":
    main()
