"""
bench_lazy_grad.py -- forward + gradients (in x and b) against the forward alone,
for the Gaussian kernel product written as KeOps' tutorials write it:
(-((x_i - y_j) ** 2).sum(-1) / s).exp() @ b, through torch autograd. Best of 7
in process CPU time, after warm-up calls (so that a compiled kernel, if any,
has arrived). Run it with KP_JIT=off and without to compare the interpreter
and the compiled kernels; KP_NUM_THREADS=1 for a per-core figure.

usage: python3 bench/python/bench_lazy_grad.py [--n 10000] [--dtype float32]
"""
import argparse
import os
import time

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--n", type=int, default=10000, help="N = M points")
ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
args = ap.parse_args()

import torch  # noqa: E402 (after --help, which needs neither)

from pykp import LazyTensor  # noqa: E402
N = args.n
dt = getattr(torch, args.dtype)
g = torch.Generator().manual_seed(0)
x = torch.rand(N, 3, generator=g, dtype=dt, requires_grad=True)
y = torch.rand(N, 3, generator=g, dtype=dt)
b = torch.rand(N, 1, generator=g, dtype=dt, requires_grad=True)


def fwd():
    xi, yj = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :])
    return (-((xi - yj) ** 2).sum(-1) / 0.05).exp() @ b


def cpu(f, reps):
    best = float("inf")
    for _ in range(reps):
        t = time.process_time()
        f()
        best = min(best, time.process_time() - t)
    return best


def fb():
    fwd().sum().backward()


with torch.no_grad():
    for _ in range(30):
        fwd()  # warm: plan cache and background compile
for _ in range(30):
    fb()
time.sleep(1)
with torch.no_grad():
    f = cpu(fwd, 7)
t = cpu(fb, 7)
print("N=%d %s KP_JIT=%s: fwd %.4f s, fwd+bwd %.4f s, ratio %.2f" % (N, str(dt)[6:], os.environ.get("KP_JIT", "default"), f, t, t / f))
