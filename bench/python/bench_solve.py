"""
bench_solve.py -- kernel ridge regression solved by pykp.KernelSolve: conjugate
gradients with and without a preconditioner, in one run.

Data: N points uniform in the unit cube [0, 1]^D, targets y = sin(6 x_1) cos(4 x_2)
+ x_3 + noise (0.1); the Gaussian kernel k(x, x') = exp(-|x - x'|^2 / (2 sigma^2));
the system (alpha I + K) a = y. Each method solves it to the same relative
residual (--rtol): plain CG (the baseline), CG with the Nystrom preconditioner
(--landmarks points), CG with block-Jacobi on the diagonal blocks of
grid_cluster cells of side --cell (points sorted by cell). Reported per method:
the preconditioner's build time, CG iterations, solve time, the true relative
residual |y - (alpha I + K) a| / |y| (one more product), the test RMSE of the
fitted function on --ntest fresh points, and the time ratio to plain CG.

usage: python3 bench/python/bench_solve.py [--n 10000] [--dim 3] [--sigma 0.1] [--alpha 10]
       [--dtype float32] [--rtol 1e-4] [--maxiter 1000] [--landmarks 200] [--cell 0.2]
       [--methods plain,nystrom,block_jacobi] [--ntest 2000] [--seed 0] [--threads 0]
The issue's size: --n 100000 (minutes on 2 cores).
"""
import argparse
import os
import platform
import sys
import time

try:
    import numpy as np

    import pykp
    from pykp import cluster
    from pykp.solve import BlockJacobiPreconditioner, KernelOperator, NystromPreconditioner
except ImportError as error:  # --help works without them; reported after parsing
    MISSING = error
else:
    MISSING = None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10000, help="training points N (default 10000; the issue's size: 100000)")
    p.add_argument("--dim", type=int, default=3, help="dimension D of the points (default 3)")
    p.add_argument("--sigma", type=float, default=0.1, help="Gaussian kernel width (default 0.1)")
    p.add_argument("--alpha", type=float, default=10.0, help="ridge alpha added to K's diagonal (default 10)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--rtol", type=float, default=1e-4, help="stop at |r| <= rtol |y| (default 1e-4)")
    p.add_argument("--maxiter", type=int, default=1000)
    p.add_argument("--landmarks", type=int, default=200, help="Nystrom landmarks m (default 200)")
    p.add_argument("--cell", type=float, default=0.2, help="grid_cluster cell side for block-Jacobi (default 0.2)")
    p.add_argument("--methods", default="plain,nystrom,block_jacobi")
    p.add_argument("--ntest", type=int, default=2000, help="test points for the RMSE (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="libkp threads (0: all cores)")
    args = p.parse_args(argv)
    if MISSING:
        raise SystemExit("bench_solve.py: %s" % MISSING)
    return args


def target(x, rng=None):
    f = np.sin(6 * x[:, 0]) * np.cos(4 * x[:, 1 % x.shape[1]]) + x[:, 2 % x.shape[1]]
    return f if rng is None else f + 0.1 * rng.standard_normal(len(x))


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        pykp.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    dt = np.dtype(args.dtype)
    x = rng.uniform(0, 1, (args.n, args.dim))
    # points sorted by grid cell once, for every method: block-Jacobi needs
    # contiguous clusters, and the ordering changes nothing for the others
    lab = cluster.grid_cluster(x, args.cell)
    x, lab = cluster.sort_clusters(x, lab)
    blocks = cluster.cluster_ranges(lab)
    y = target(x, rng).reshape(-1, 1)
    xt = rng.uniform(0, 1, (args.ntest, args.dim))
    yt = target(xt)
    x, y, xt = x.astype(dt), y.astype(dt), xt.astype(dt)
    g = np.array([1.0 / (2 * args.sigma**2)], dtype=dt)
    aliases = ["x = Vi(%d)" % args.dim, "y = Vj(%d)" % args.dim, "g = Pm(1)", "b = Vj(1)"]
    formula = "Exp(-SqDist(x,y)*g)*b"
    solver = pykp.KernelSolve(formula, aliases, "b", axis=1)
    K = pykp.Genred(formula, aliases, reduction_op="Sum", axis=1)
    op = KernelOperator(solver.key, [x, x, g, y], 3)

    print("# kernel ridge regression, %s: N = %d, D = %d, sigma = %g, alpha = %g, rtol = %g, %d clusters (cell %g)"
          % (args.dtype, args.n, args.dim, args.sigma, args.alpha, args.rtol, len(blocks), args.cell))
    print("# machine: %s, %d cores, libkp threads %s" % (platform.processor() or platform.machine(), os.cpu_count(),
                                                      pykp.get_num_threads() or "all"))
    rows = []
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        t0 = time.perf_counter()
        if method == "plain":
            P = None
        elif method == "nystrom":
            P = NystromPreconditioner(op, args.alpha, args.landmarks, args.n, args.seed)
        elif method == "block_jacobi":
            P = BlockJacobiPreconditioner(op, args.alpha, blocks, args.n)
        else:
            sys.exit("unknown method %r" % method)
        build = time.perf_counter() - t0
        print("%-12s preconditioner built in %.2f s; solving..." % (method, build), flush=True)

        def progress(it, res, _m=method):
            if it % 25 == 0:
                print("%-12s   iteration %d, residual %.3g" % (_m, it, res), flush=True)

        t0 = time.perf_counter()
        a = solver(x, x, g, y, alpha=args.alpha, eps=0, rtol=args.rtol, maxiter=args.maxiter, precond=P,
                   callback=progress)
        solve = time.perf_counter() - t0
        info = solver.info
        r = y - (K(x, x, g, a) + args.alpha * a)
        true_res = float(np.linalg.norm(r.astype(np.float64)) / np.linalg.norm(y.astype(np.float64)))
        pred = K(xt, x, g, a).astype(np.float64).ravel()
        rmse = float(np.sqrt(np.mean((pred - yt) ** 2)))
        rows.append((method, build, info.iterations, solve, true_res, rmse, info.converged))
        print("%-12s %d iterations in %.2f s, true residual %.2e, test RMSE %.4f" % (method, info.iterations, solve,
                                                                                   true_res, rmse), flush=True)
    base = next((r[1] + r[3] for r in rows if r[0] == "plain"), None)
    print()
    print("| method | build (s) | iterations | solve (s) | total vs plain | true rel. residual | test RMSE |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for m, build, it, solve, res, rmse, ok in rows:
        ratio = "%.2fx" % ((build + solve) / base) if base else "-"
        print("| %s | %.2f | %d%s | %.2f | %s | %.1e | %.4f |" % (m, build, it, "" if ok else " (cap)", solve, ratio,
                                                                  res, rmse))


if __name__ == "__main__":
    main()
