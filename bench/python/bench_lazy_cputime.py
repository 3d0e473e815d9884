"""
bench_lazy_cputime.py -- the Gaussian kernel product in the spelling of KeOps'
tutorials, (-((x_i - y_j) ** 2).sum(-1) / s2).exp() @ b with x_i =
LazyTensor(x[:, None, :]), timed in pairs per second of process CPU time (best
of several calls), so that two libkp builds compare on a busy machine. Run it
once per build (LIBKP_PATH, PYTHONPATH) and alternate the runs.

usage: python3 bench/python/bench_lazy_cputime.py [--sizes 1000,10000,100000] [--reps 10]
"""
import argparse
import time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000", help="N = M values, comma-separated")
    ap.add_argument("--reps", type=int, default=10, help="calls per size (3 at N >= 10^5); the best counts")
    args = ap.parse_args(argv)
    import torch
    from pykp import LazyTensor

    torch.manual_seed(0)
    out = []
    for n in (int(s) for s in args.sizes.split(",")):
        x, y, b = torch.rand(n, 3), torch.rand(n, 3), torch.rand(n, 1)
        x_i, y_j = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :])

        def call():
            return (-((x_i - y_j) ** 2).sum(-1) / 0.01).exp() @ b

        call()
        best = float("inf")
        for _ in range(3 if n >= 10**5 else args.reps):
            t0 = time.process_time()
            call()
            best = min(best, time.process_time() - t0)
        out.append("N = %d: %.2e pairs per CPU second" % (n, n * n / best))
    print("; ".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
