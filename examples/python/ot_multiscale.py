"""
ot_multiscale.py -- Sinkhorn divergence and its gradient between two large
point clouds on a sphere with pykp.ot's multiscale backend.

The clouds are binned in cubic cells; the annealing starts on the cells'
centroids, then goes on with the points, each reduction restricted to the
pairs of cells that can matter (block-sparse ranges); the gradient reuses
those ranges. With --compare, the dense online backend runs too (minutes at
N = 10^5: it touches all N M pairs at every iteration).

usage: python3 examples/python/ot_multiscale.py [--n 100000] [--blur 0.05]
       [--cluster-scale 0.16] [--truncate 5] [--compare]
"""
import argparse
import time

import torch

import pykp.ot


def sphere(n, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, generator=g)
    z = z / z.norm(dim=1, keepdim=True)
    z[:, 0] += shift
    return z


def solve(backend, x, y, args):
    loss = pykp.ot.SamplesLoss("sinkhorn", p=2, blur=args.blur, backend=backend, truncate=args.truncate,
                               cluster_scale=args.cluster_scale if backend == "multiscale" else None,
                               verbose=args.verbose)
    xx = x.clone().requires_grad_(True)
    t, c = time.perf_counter(), time.process_time()
    value = loss(xx, y)
    (grad,) = torch.autograd.grad(value, [xx])
    t, c = time.perf_counter() - t, time.process_time() - c
    kept = getattr(loss.last_result, "kept", {}).get("xy", 1.0)
    print("%-10s S = %.6e  |grad| = %.4e  %d iterations  kept pairs %.4f  %.1f s (CPU %.1f s)"
          % (backend, float(value), float(grad.norm()), loss.n_iter, kept, t, c))
    return float(value), grad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100000, help="points per cloud (default 10^5)")
    ap.add_argument("--blur", type=float, default=0.05, help="eps = blur^2 (default 0.05)")
    ap.add_argument("--cluster-scale", type=float, default=None, help="side of the cells (default: chosen from blur and N, docs/ot.md)")
    ap.add_argument("--truncate", type=float, default=5.0, help="truncation threshold (default 5)")
    ap.add_argument("--compare", action="store_true", help="also run the dense online backend")
    ap.add_argument("--verbose", action="store_true", help="print the cells and the kept pairs per temperature")
    args = ap.parse_args()
    x, y = sphere(args.n, 0), sphere(args.n, 1, shift=0.2)
    v1, g1 = solve("multiscale", x, y, args)
    if args.compare:
        v0, g0 = solve("online", x, y, args)
        print("relative difference: value %.2e, gradient %.2e" % (abs(v1 - v0) / abs(v0), float((g1 - g0).norm() / g0.norm())))


if __name__ == "__main__":
    main()
