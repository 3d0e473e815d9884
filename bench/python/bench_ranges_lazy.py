"""Block-sparse ranges through pykp, in the spelling users write.

The Gaussian kernel product a_i = sum_j exp(-|x_i - y_j|^2 / (2 s^2)) b_j,
3D, float32, N = M points uniform in the unit cube, clusters from
pykp.cluster.grid_cluster and cluster pairs kept within 4 sigma, timed in one
run: dense (no ranges), with ranges in the KeOps tutorials' LazyTensor
spelling ((x_i - y_j) ** 2).sum(-1), and with ranges in the sqdist spelling.
Prints times, ratios to dense, ratios over the kept fraction of pairs, and
the relative error of each truncated result against the dense one.
"""
import argparse
import time

try:
    import torch

    from pykp import LazyTensor, Vi, Vj
    from pykp.cluster import cluster_ranges_centroids, from_matrix, grid_cluster, sort_clusters
except ImportError as error:  # --help works without them; reported after parsing
    MISSING = error
else:
    MISSING = None


def block_sparse_setup(n: int, sigma: float, eps: float):
    torch.manual_seed(0)
    x, y, b = torch.rand(n, 3), torch.rand(n, 3), torch.randn(n, 1)
    x_lab, y_lab = grid_cluster(x, eps), grid_cluster(y, eps)
    x_ranges, x_c, _ = cluster_ranges_centroids(x, x_lab)
    y_ranges, y_c, _ = cluster_ranges_centroids(y, y_lab)
    x, x_lab = sort_clusters(x, x_lab)
    (y, b), y_lab = sort_clusters((y, b), y_lab)
    keep = ((x_c[:, None] - y_c[None]) ** 2).sum(-1) < (4 * sigma + 3**0.5 * eps) ** 2
    sizes = (x_ranges[:, 1] - x_ranges[:, 0]).double()[:, None] * (y_ranges[:, 1] - y_ranges[:, 0]).double()[None]
    kept = float((keep.double() * sizes).sum()) / n**2
    return x, y, b, from_matrix(x_ranges, y_ranges, keep), kept


def tutorial_spelling(x, y, b, s2, ranges):
    K = (-((LazyTensor(x[:, None, :]) - LazyTensor(y[None, :, :])) ** 2).sum(-1) / s2).exp()
    K.ranges = ranges
    return K @ b


def sqdist_spelling(x, y, b, s2, ranges):
    K = (-Vi(x).sqdist(Vj(y)) * (1 / s2)).exp()
    K.ranges = ranges
    return K @ b


def fastest(f, reps):
    best, out = float("inf"), None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000, help="points in each cloud (default 100000)")
    p.add_argument("--sigma", type=float, default=0.02, help="kernel width (default 0.02)")
    p.add_argument("--eps", type=float, default=0.08, help="grid cell side (default 0.08)")
    p.add_argument("--threads", type=int, default=2, help="torch and libkp threads (default 2)")
    p.add_argument("--reps", type=int, default=3, help="ranged calls timed, fastest kept (default 3)")
    a = p.parse_args()
    if MISSING:
        raise SystemExit("bench_ranges_lazy.py: %s" % MISSING)
    torch.set_num_threads(a.threads)
    x, y, b, ranges, kept = block_sparse_setup(a.n, a.sigma, a.eps)
    s2 = 2 * a.sigma**2
    t_dense, dense = fastest(lambda: sqdist_spelling(x, y, b, s2, None), 1)
    print(f"N = M = {a.n}, sigma = {a.sigma}, cells {a.eps}: kept fraction {kept:.4f}; dense {t_dense:.3f} s")
    scale = float(dense.abs().max())
    for name, f in (("tutorial ((x_i - y_j) ** 2).sum(-1)", tutorial_spelling), ("sqdist", sqdist_spelling)):
        t, out = fastest(lambda: f(x, y, b, s2, ranges), a.reps)
        err = float((out - dense).abs().max()) / scale
        print(f"ranges, {name:38s} {t:.3f} s  vs dense {t / t_dense:.4f}  / kept {t / t_dense / kept:.2f}  "
              f"rel. error {err:.1e}")


if __name__ == "__main__":
    main()
