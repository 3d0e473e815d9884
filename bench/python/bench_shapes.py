"""
bench_shapes.py -- one LDDMM registration step with pykp.shapes: geodesic
shooting of N control points (T steps, autograd through Hamilton's equations),
the varifold distance of the deformed surface to a target, and the backward
pass to the momenta, with pykp (libkp reductions) against the same code on
dense torch matrices (Deformation/Varifold with backend="torch"), timed and
with their peak memory measured in the same run.

The surface is a height field over an n x n grid (N = n^2 vertices, 2 (n-1)^2
triangles); the control points are its vertices. Dense torch runs only where
its memory, extrapolated from the smallest size (bytes per pair), fits under
--dense-limit-gb. The peak is the process's resident high-water mark (VmHWM,
reset through /proc/self/clear_refs before each case) above its resident size
before the case. CPU s is the process's CPU time (all threads) over the case:
on a shared machine it says more than the wall time.

usage: python3 bench/python/bench_shapes.py [--sizes 1000,10000] [--large] [--steps 10]
       [--integrator euler] [--dtype float32] [--dense-limit-gb 4] [--threads 0]
--large adds N = 100,000 (pykp only, minutes on 2 cores).
"""
import argparse
import math
import os
import platform
import time

try:
    import torch

    import pykp
    from pykp import shapes
except ImportError as error:  # --help works without them; reported after parsing
    MISSING = error
else:
    MISSING = None


def rss_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def grid_surface(N, dtype, bump=0.0):
    n = max(2, int(round(math.sqrt(N))))
    t = torch.linspace(0, 1, n, dtype=torch.float64)
    X, Y = torch.meshgrid(t, t, indexing="ij")
    Z = 0.1 * torch.sin(3 * X) * torch.cos(2 * Y) + bump * torch.exp(-((X - 0.5) ** 2 + (Y - 0.5) ** 2) / 0.05)
    P = torch.stack([X, Y, Z], -1).reshape(-1, 3)
    i = torch.arange(n - 1)
    a = (i[:, None] * n + i[None, :]).reshape(-1)
    cells = torch.cat([torch.stack([a, a + n, a + 1], 1), torch.stack([a + 1, a + n, a + n + 1], 1)])
    return shapes.Shape(P.to(dtype), cells)


def one_step(source, target, backend, args):
    model = shapes.Deformation("gaussian", 0.1, args.integrator, args.steps, backend=backend)
    data = shapes.Varifold("gaussian", 0.05, backend=backend)
    q0 = source.points
    g = torch.Generator().manual_seed(0)
    p0 = (1e-3 * torch.randn(q0.shape, generator=g, dtype=torch.float64)).to(q0.dtype).requires_grad_()
    distance = data.to_target(target)
    reset_peak()
    base = rss_mb("VmRSS")
    c0 = time.process_time()
    t0 = time.perf_counter()
    q1 = model.shoot(q0, p0).q
    t1 = time.perf_counter()
    loss = 1e-3 * model.energy(q0, p0) + distance(source.with_points(q1))
    t2 = time.perf_counter()
    loss.backward()
    t3 = time.perf_counter()
    cpu = time.process_time() - c0
    return {"cpu": cpu, "shoot": t1 - t0, "data": t2 - t1, "backward": t3 - t2, "total": t3 - t0,
            "peak": max(0.0, rss_mb("VmHWM") - base), "loss": float(loss.detach()), "grad": p0.grad.double()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000", help="comma-separated control point counts")
    ap.add_argument("--large", action="store_true", help="add N = 100000 (pykp only)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--integrator", default="euler", choices=["euler", "ralston", "rk4"])  # shapes.INTEGRATORS
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--dense-limit-gb", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=0, help="libkp and torch threads (0: default)")
    args = ap.parse_args()
    if MISSING:
        raise SystemExit("bench_shapes.py: %s" % MISSING)
    if args.threads:
        pykp.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    sizes = [int(float(s)) for s in args.sizes.split(",")] + ([100000] if args.large else [])
    print("# bench_shapes: one registration step (shoot %s T=%d + varifold + backward), %s, %s, %d cores, "
          "torch %d threads" % (args.integrator, args.steps, args.dtype, platform.processor() or platform.machine(),
                                os.cpu_count(), torch.get_num_threads()))
    print("| N | pykp s (shoot / data / backward) | pykp CPU s | pykp peak MB | dense torch s | dense CPU s | "
          "dense peak MB | time ratio | memory ratio | rel. diff of the gradient |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    bytes_per_pair = None
    one_step(grid_surface(100, dtype), grid_surface(100, dtype, 0.1), "pykp", args)  # formulas, first calls
    for N in sizes:
        src, tgt = grid_surface(N, dtype), grid_surface(N, dtype, bump=0.1)
        n = len(src.points)
        k = one_step(src, tgt, "pykp", args)
        est = None if bytes_per_pair is None else bytes_per_pair * n * n / 1e9
        if N >= 100000 or (est is not None and est > args.dense_limit_gb):
            dense = "skipped (~%.0f GB)" % est if est is not None else "skipped"
            row = (n, k, dense, "", "", "", "")
            print("| %d | %.2f (%.2f / %.2f / %.2f) | %.1f | %.1f | %s | | | | | |" % (
                n, k["total"], k["shoot"], k["data"], k["backward"], k["cpu"], k["peak"], dense), flush=True)
            continue
        d = one_step(src, tgt, "torch", args)
        if bytes_per_pair is None:
            bytes_per_pair = max(d["peak"], 1.0) * 1e6 / (n * n)
        rel = float((k["grad"] - d["grad"]).norm() / d["grad"].norm())
        print("| %d | %.2f (%.2f / %.2f / %.2f) | %.1f | %.1f | %.2f | %.1f | %.0f | %.1fx | %.0fx | %.1e |" % (
            n, k["total"], k["shoot"], k["data"], k["backward"], k["cpu"], k["peak"], d["total"], d["cpu"], d["peak"],
            d["total"] / k["total"], d["peak"] / max(k["peak"], 1.0), rel), flush=True)
    print("pykp: %s; libkp %s" % (pykp.__version__, pykp.library_path))


if __name__ == "__main__":
    main()
