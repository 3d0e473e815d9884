"""
hamiltonian.py -- the Hamiltonian of landmark geodesic shooting (LDDMM) with pykp.

    H(q, p) = 1/2 sum_ij k(q_i, q_j) <p_i, p_j>,   k(x, y) = exp(-|x - y|^2 / s^2)

The geodesic equations need dH/dq and dH/dp; optimizing the initial momentum
through them needs one more backward pass (second derivatives). With pykp each
is a libkp reduction (symbolic gradients), in O(N) memory: at N = 100,000 the
dense N x N kernel matrix alone would take 80 GB in float64.

usage: python3 examples/python/hamiltonian.py [N] [float32|float64]
N defaults to 20,000 (about a minute on 2 cores); N = 100,000 is 25 times the
work of every step (10^10 pairs per reduction) at the same memory.
Prints the timings of each step and the peak memory, against the baseline
after import.
"""
import os
import resource
import sys
import time

import torch

import pykp


def peak_mb():
    """Peak resident memory of this process so far (VmHWM), in MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    N = int(float(sys.argv[1])) if len(sys.argv) > 1 else 20_000
    dtype = {"float32": torch.float32, "float64": torch.float64}[sys.argv[2] if len(sys.argv) > 2 else "float32"]
    torch.manual_seed(0)
    q = torch.rand(N, 3, dtype=dtype, requires_grad=True)
    p = (torch.randn(N, 3, dtype=dtype) / N).requires_grad_()
    s = torch.tensor(0.25, dtype=dtype, requires_grad=True)
    base = peak_mb()
    threads = pykp.get_num_threads() or int(os.environ.get("KP_NUM_THREADS") or 0) or os.cpu_count()
    print("pykp Hamiltonian: N = %d points in 3D, %s, libkp at %s, %d threads" % (
        N, str(dtype).replace("torch.", ""), pykp.library_path, threads))

    t0 = time.perf_counter()
    v = pykp.kernel_product(q, q, p, "gaussian", sigma=s)
    H = 0.5 * (p * v).sum()
    t1 = time.perf_counter()
    dq, dp = torch.autograd.grad(H, [q, p], create_graph=True)
    t2 = time.perf_counter()
    # one more backward, through dq: gradients of a scalar of the geodesic velocity
    loss = (dq**2).sum() + (dp * q).sum()
    gq, gp, gs = torch.autograd.grad(loss, [q, p, s])
    t3 = time.perf_counter()
    peak = peak_mb()

    pairs = float(N) * N
    print("  H = 1/2 sum_ij k(q_i,q_j)<p_i,p_j>   %8.3f s   (%.2e pairs/s)" % (t1 - t0, pairs / (t1 - t0)))
    print("  dH/dq, dH/dp (create_graph=True)     %8.3f s" % (t2 - t1))
    print("  backward through dq, dp (2nd order)  %8.3f s" % (t3 - t2))
    print("  H = %.6e, |dH/dq| = %.3e, |d loss/ds| = %.3e" % (H.item(), dq.norm().item(), gs.abs().item()))
    print("  peak memory: %.0f MB, %.1f MB above the %.0f MB after import and data"
          " (a dense N x N %s matrix: %.1f GB)" % (peak, peak - base, base, str(dtype).replace("torch.", ""),
                                                   pairs * q.element_size() / 1e9))


if __name__ == "__main__":
    main()
