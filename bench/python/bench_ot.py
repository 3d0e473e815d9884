"""
bench_ot.py -- Sinkhorn divergence + gradient between 3D point clouds: pykp.ot
against GeomLoss (tensorized backend; its KeOps "online" backend with
--keops) and POT (ot.sinkhorn, log domain, NumPy backend, the value <pi, C> of
ot.sinkhorn2), measured in the same run.

Problem: x, y uniform in the unit cube (y shifted by 0.2), N = M, float32,
uniform weights, p = 2, blur = 0.05 (eps = 0.0025), scaling = 0.5, debiased
divergence and its gradient w.r.t. x. POT solves the raw entropic problem at
the fixed eps = blur^2 (no annealing, no debiasing: a different schedule, so
compare its time per iteration), its log-domain solver on the dense cost
matrix (NumPy backend), at most --pot-iters iterations, the gradient from
its plan.

Times: wall clock and CPU time of the process (all its threads; the work
done, robust to a machine shared with other jobs), best of --reps runs.
Each (method, N) runs in its own subprocess, so that its peak memory (VmHWM
of the process, minus the same measure after imports and data creation) is
its own. Methods whose dense matrices would not fit (--dense-limit-gb) are
skipped. Also measured: the cost of one pykp Sinkhorn iteration against the
LogSumExp reductions it needs (4 when debiasing), each timed alone on the
same data (CPU times).

usage: python3 bench/python/bench_ot.py [--sizes 1000,10000] [--large] [--keops]
       [--pot-iters 100] [--dense-limit-gb 6] [--reps 2] [--threads 0] [--methods pykp,pot]
--large adds N = 10^5 (pykp only: dense solvers need 40 GB per matrix there).

--multiscale: the multiscale backend instead (default sizes 10^4, 10^5): x, y
uniform on the unit sphere (y shifted by 0.2 along the first axis), same
loss, backend="multiscale" (method pykp-ms) against pykp's dense online
backend (pykp-online, up to --online-max-n), one run each (--reps 1 is
implied above N = 10^4); also the fraction of point pairs the last truncation
kept, the blocks' side and parent factor, and the relative difference of
the gradients. --cluster-scale S: the multiscale blocks' side (default: the
solver's rule from blur and N).
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def peak_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def data(n, torch):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, generator=g)
    y = torch.rand(n, 3, generator=g) + 0.2
    return x, y


def sphere_data(n, torch):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = torch.randn(n, 3, generator=g)
    x, y = x / x.norm(dim=1, keepdim=True), y / y.norm(dim=1, keepdim=True)
    y[:, 0] += 0.2
    return x, y


def run_pykp_backend(x, y, args, torch, backend):
    import pykp.ot

    extra = {"cluster_scale": args.cluster_scale} if backend == "multiscale" and args.cluster_scale else {}
    loss = pykp.ot.SamplesLoss("sinkhorn", p=2, blur=args.blur, scaling=0.5, backend=backend, **extra)
    xx = x.clone().requires_grad_(True)
    v = loss(xx, y)
    (g,) = torch.autograd.grad(v, [xx])
    res = loss.last_result
    kept = getattr(res, "kept", {}).get("xy", 1.0)
    blocks = "%.3g/%d" % (res.cluster_scale, res.parent_factor) if hasattr(res, "parent_factor") else "-"
    return float(v.detach()), loss.n_iter, g, kept, blocks


def run_pykp(x, y, args, torch):
    import pykp.ot

    loss = pykp.ot.SamplesLoss("sinkhorn", p=2, blur=args.blur, scaling=0.5)
    xx = x.clone().requires_grad_(True)
    v = loss(xx, y)
    (g,) = torch.autograd.grad(v, [xx])
    return float(v.detach()), loss.n_iter, g


def run_geomloss(x, y, args, torch, backend):
    from geomloss import SamplesLoss

    loss = SamplesLoss("sinkhorn", p=2, blur=args.blur, scaling=0.5, backend=backend)
    xx = x.clone().requires_grad_(True)
    v = loss(xx, y)
    (g,) = torch.autograd.grad(v, [xx])
    # GeomLoss runs the same schedule as pykp (same diameter rule)
    import pykp.ot

    n_iter = len(pykp.ot.SamplesLoss(blur=args.blur, scaling=0.5).epsilon_schedule(x, y))
    return float(v.detach()), n_iter, g


def run_pot(x, y, args, torch):
    """POT's log-domain Sinkhorn on the dense cost matrix (NumPy backend: its
    torch backend differentiates through every iteration, 1.3 GB at N = 1000);
    the gradient w.r.t. x from the plan G, sum_j G_ij (x_i - y_j), dense too."""
    import numpy as np
    import ot

    n = x.shape[0]
    xn, yn = x.numpy(), y.numpy()
    a = np.full(n, 1.0 / n, dtype=np.float32)
    M = ot.dist(xn, yn) / 2
    G, log = ot.sinkhorn(a, a, M, args.blur**2, method="sinkhorn_log", numItermax=args.pot_iters,
                         stopThr=1e-6, log=True, warn=False)
    value = float((G * M).sum())
    g = G.sum(1)[:, None] * xn - G @ yn
    return value, int(log["niter"]) + 1, torch.from_numpy(np.asarray(g))


def iteration_cost(x, y, args, torch):
    """Time of one Sinkhorn iteration (debiased: 4 soft C-transforms plus O(N)
    work) against 4 LogSumExp reductions alone, on the same data."""
    import pykp
    import pykp.ot
    from pykp.ot._sinkhorn import sinkhorn_loop

    xb, yb = x[None], y[None]
    n = x.shape[0]
    a = torch.full((1, n), 1.0 / n)
    eps = args.blur**2
    red = pykp.Genred("h - (SqDist(X,Y)/IntCst(2))*e", ["X = Vi(3)", "Y = Vj(3)", "h = Vj(1)", "e = Pm(1)"],
                      reduction_op="LogSumExp", axis=1)
    h = torch.zeros(n, 1)
    red(x, y, h, 1 / eps)
    t_lse = best(lambda: [red(x, y, h, 1 / eps), red(y, x, h, 1 / eps), red(x, x, h, 1 / eps), red(y, y, h, 1 / eps)], args.reps)
    k = 10
    sched = [eps] * k
    with torch.no_grad():
        t_k = best(lambda: sinkhorn_loop("(SqDist(X,Y)/IntCst(2))", a, xb, a, yb, sched, None), args.reps)
        t_1 = best(lambda: sinkhorn_loop("(SqDist(X,Y)/IntCst(2))", a, xb, a, yb, sched[:1], None), args.reps)
    per_iter = (t_k - t_1) / (k - 1)
    return per_iter, t_lse


def best(fn, reps):
    """Smallest CPU time (all threads of the process) of reps runs: the work
    done, whatever else shares the machine."""
    times = []
    for _ in range(max(1, reps)):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def worker(method, n, args):
    import torch

    if args.threads:
        import pykp

        pykp.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    x, y = (sphere_data if method.startswith("pykp-") else data)(n, torch)
    base = peak_mb()
    out = {"method": method, "n": n}
    if method == "iteration":
        per_iter, t_lse = iteration_cost(x, y, args, torch)
        out.update(per_iter=per_iter, lse4=t_lse)
    else:
        fn = {
            "pykp": lambda: run_pykp(x, y, args, torch),
            "geomloss": lambda: run_geomloss(x, y, args, torch, "tensorized"),
            "geomloss-keops": lambda: run_geomloss(x, y, args, torch, "online"),
            "pot": lambda: run_pot(x, y, args, torch),
            "pykp-ms": lambda: run_pykp_backend(x, y, args, torch, "multiscale"),
            "pykp-online": lambda: run_pykp_backend(x, y, args, torch, "online"),
        }[method]
        if method == "geomloss-keops":
            fn()  # KeOps compiles its formulas on first use: not timed
        t, cpu = math.inf, math.inf
        for _ in range(max(1, args.reps if n <= 10000 else 1)):
            t0, c0 = time.perf_counter(), time.process_time()
            value, n_iter, g, *kept = fn()
            t, cpu = min(t, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
        out.update(time=t, cpu=cpu, value=value, iters=n_iter, peak_mb=peak_mb() - base, gnorm=float(g.norm()))
        if kept:
            out["kept"], out["blocks"] = kept
        if args.save:
            import numpy as np

            np.save(args.save, g.detach().numpy())
    print(json.dumps(out))


def dense_gb(method, n):
    """Rough memory of the dense solvers: float32 N x N matrices alive at once."""
    mats = {"geomloss": 10, "pot": 8}.get(method, 0)
    return mats * 4.0 * n * n / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--large", action="store_true", help="add N = 100000 (pykp only)")
    ap.add_argument("--keops", action="store_true", help="also GeomLoss's KeOps backend (compiles on first use)")
    ap.add_argument("--pot-iters", type=int, default=100)
    ap.add_argument("--dense-limit-gb", type=float, default=6.0)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--blur", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--methods", default="", help="comma-separated subset of pykp,geomloss,geomloss-keops,pot,iteration")
    ap.add_argument("--multiscale", action="store_true", help="the multiscale backend against pykp's online one, on a sphere")
    ap.add_argument("--online-max-n", type=int, default=100000, help="largest N for pykp-online with --multiscale")
    ap.add_argument("--cluster-scale", type=float, default=0.0,
                    help="with --multiscale: side of the blocks (0: the solver's rule from blur and N)")
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--save", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker[0], int(args.worker[1]), args)
    if args.multiscale:
        return main_multiscale(args)
    sizes = [int(float(s)) for s in args.sizes.split(",") if s]
    if args.large and 100000 not in sizes:
        sizes.append(100000)
    methods = ["pykp", "geomloss"] + (["geomloss-keops"] if args.keops else []) + ["pot", "iteration"]
    if args.methods:
        methods = [m for m in args.methods.split(",") if m]
    print("bench_ot: %s, %s, python %s, %d cores" % (platform.processor() or platform.machine(), platform.platform(), platform.python_version(), os.cpu_count()))
    print("Sinkhorn divergence + gradient, 3D, float32, p = 2, blur = %g, scaling = 0.5" % args.blur)
    rows = {}
    for n in sizes:
        for m in methods:
            if m in ("geomloss", "pot") and dense_gb(m, n) > args.dense_limit_gb:
                print("  N = %-7d %-15s skipped: ~%.0f GB of dense matrices" % (n, m, dense_gb(m, n)), flush=True)
                continue
            if m == "geomloss-keops" and n > 10000:
                continue
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", m, str(n), "--reps", str(args.reps),
                   "--pot-iters", str(args.pot_iters), "--blur", str(args.blur), "--threads", str(args.threads)]
            p = subprocess.run(cmd, capture_output=True, text=True)
            lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
            if p.returncode or not lines:
                print("  N = %-7d %-15s failed: %s" % (n, m, (p.stderr.strip().splitlines() or ["?"])[-1]), flush=True)
                continue
            r = json.loads(lines[-1])
            rows[(m, n)] = r
            if m == "iteration":
                print("  N = %-7d one Sinkhorn iteration %.4f s, its 4 LogSumExp reductions alone %.4f s: ratio %.2f"
                      % (n, r["per_iter"], r["lse4"], r["per_iter"] / r["lse4"]), flush=True)
            else:
                print("  N = %-7d %-15s %8.3f s  cpu %8.3f s  peak %8.1f MB  iters %4d  value %.6e" % (
                    n, m, r["time"], r["cpu"], r["peak_mb"], r["iters"], r["value"]), flush=True)
    print("\n| N | method | wall (s) | CPU (s) | CPU vs pykp | peak memory (MB) | iterations | value |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        ref = rows.get(("pykp", n))
        for m in methods:
            r = rows.get((m, n))
            if r is None or m == "iteration":
                continue
            ratio = "%.2fx" % (r["cpu"] / ref["cpu"]) if ref else "-"
            print("| %d | %s | %.3f | %.3f | %s | %.0f | %d | %.6e |" % (
                n, m, r["time"], r["cpu"], ratio, r["peak_mb"], r["iters"], r["value"]))
    for n in sizes:
        r = rows.get(("iteration", n))
        if r:
            print("\nN = %d: one debiased Sinkhorn iteration %.4f s; its 4 LogSumExp reductions alone %.4f s (ratio %.2f)"
                  % (n, r["per_iter"], r["lse4"], r["per_iter"] / r["lse4"]))


def main_multiscale(args):
    """--multiscale: pykp-ms against pykp-online on the sphere, one subprocess each."""
    import tempfile

    import numpy as np

    sizes = [int(float(s)) for s in (args.sizes if args.sizes != "1000,10000" else "10000,100000").split(",") if s]
    print("bench_ot --multiscale: %s, %s, python %s, %d cores, load average %s" % (
        platform.processor() or platform.machine(), platform.platform(), platform.python_version(), os.cpu_count(),
        " ".join("%.2f" % v for v in os.getloadavg())))
    print("Sinkhorn divergence + gradient, unit sphere, float32, p = 2, blur = %g, scaling = 0.5" % args.blur)
    tmp = tempfile.mkdtemp(prefix="bench_ot_")
    rows = {}
    for n in sizes:
        for m in ("pykp-ms", "pykp-online"):
            if m == "pykp-online" and n > args.online_max_n:
                continue
            save = os.path.join(tmp, "%s-%d.npy" % (m, n))
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", m, str(n), "--reps", str(args.reps),
                   "--blur", str(args.blur), "--threads", str(args.threads), "--save", save,
                   "--cluster-scale", str(args.cluster_scale or 0)]
            p = subprocess.run(cmd, capture_output=True, text=True)
            lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
            if p.returncode or not lines:
                print("  N = %-8d %-12s failed: %s" % (n, m, (p.stderr.strip().splitlines() or ["?"])[-1]), flush=True)
                continue
            r = json.loads(lines[-1])
            r["grad"] = save
            rows[(m, n)] = r
            print("  N = %-8d %-12s %9.2f s  cpu %9.2f s  peak %8.1f MB  iters %3d  value %.6e  kept %.4f  blocks %s  (load %s)" % (
                n, m, r["time"], r["cpu"], r["peak_mb"], r["iters"], r["value"], r.get("kept", 1.0), r.get("blocks", "-"),
                " ".join("%.2f" % v for v in os.getloadavg())), flush=True)
    print("\n| N | method | wall (s) | CPU (s) | CPU vs online | peak memory (MB) | iterations | value | kept pairs | blocks (side/parent factor) | value rel. diff | gradient rel. diff |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for n in sizes:
        ref = rows.get(("pykp-online", n))
        for m in ("pykp-ms", "pykp-online"):
            r = rows.get((m, n))
            if r is None:
                continue
            ratio, dv, dg = "-", "-", "-"
            if ref is not None:
                ratio = "%.3fx" % (r["cpu"] / ref["cpu"])
                dv = "%.1e" % (abs(r["value"] - ref["value"]) / abs(ref["value"]))
                g, g0 = np.load(r["grad"]).astype(np.float64), np.load(ref["grad"]).astype(np.float64)
                dg = "%.1e" % (np.linalg.norm(g - g0) / np.linalg.norm(g0))
            print("| %d | %s | %.2f | %.2f | %s | %.0f | %d | %.6e | %.4f | %s | %s | %s |" % (
                n, m, r["time"], r["cpu"], ratio, r["peak_mb"], r["iters"], r["value"], r.get("kept", 1.0),
                r.get("blocks", "-"), dv, dg))


if __name__ == "__main__":
    sys.exit(main())
