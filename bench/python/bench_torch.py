"""
bench_torch.py -- pykp against dense PyTorch and dense NumPy for the Gaussian
kernel product  a_i = sum_j exp(-|x_i - y_j|^2 / s^2) b_j  in 3D, forward,
forward + backward with respect to x ("fwd+bwd"), and forward + backward with
respect to x, y and b ("fwd+bwd xyb": pykp runs the three gradients in one
joint libkp pass), N = M = 10^3 .. 10^5. --separate adds, after each pykp
backward row, the same pass with one libkp reduction per gradient (pykp's
path before joint plans, genred.JOINT_BACKWARD = False), timed in the same run,
its repetitions alternating with the joint ones.

Dense versions materialize the N x M kernel matrix; they run only where their
estimated memory fits (--dense-limit-gb, default: half of the available
memory, at most 8 GB). NumPy has no autograd: its backward is written by hand.

--device cuda runs pykp (libkp's CUDA engine, on torch's current stream) and
dense torch on the GPU with CUDA tensors, each call followed by
torch.cuda.synchronize(); NumPy and the "in libkp" column are left out there
(libkp only queues the work: the time inside the C call is not the GPU's).

Besides the ratios, the table reports pykp's own overhead: the time spent in
Python (argument handling, autograd bookkeeping) on top of the time spent
inside libkp's kp_plan_exec calls, measured in the same runs.

usage: python3 bench/python/bench_torch.py [--sizes 1000,10000,100000] [--dtype float32]
       [--reps 3] [--min-time 0.3] [--dense-limit-gb 8] [--threads 0]
       [--passes forward,fwd+bwd,fwd+bwd-xyb] [--separate] [--no-dense] [--device cpu|cuda]
"""
import argparse
import os
import platform
import sys
import time

try:
    import numpy as np
    import torch

    import pykp
    from pykp import _lib, genred
except ImportError as error:  # --help works without them; reported after parsing
    MISSING = error
else:
    MISSING = None

# ------------------------------------------------------------ timing


class _CTimer:
    """Accumulates the wall time spent inside kp_plan_exec and kp_plan_exec_joint (monkeypatched)."""

    _NAMES = ("_plan_exec", "_plan_exec_joint")

    def __init__(self):
        self.total = 0.0
        self.calls = 0
        self._orig = {n: getattr(_lib, n, None) for n in self._NAMES}

    def _timed(self, orig):
        def timed(*a):
            t = time.perf_counter()
            r = orig(*a)
            self.total += time.perf_counter() - t
            self.calls += 1
            return r

        return timed

    def __enter__(self):
        for n, orig in self._orig.items():
            if orig is not None:
                setattr(_lib, n, self._timed(orig))
        return self

    def __exit__(self, *exc):
        for n, orig in self._orig.items():
            setattr(_lib, n, orig)


def bench_many(fns, reps, min_time, cap=20.0):
    """For each function: best time per call over reps repetitions of >=
    min_time each (one call when a single call exceeds cap), and the time of
    it spent in libkp. The functions' repetitions alternate, so that a load
    change on a shared machine affects them alike."""
    for fn in fns:
        fn()  # warm-up: parse, plan, first-touch
    best = [None] * len(fns)
    best_c = [None] * len(fns)
    for _ in range(reps):
        over = False
        for k, fn in enumerate(fns):
            with _CTimer() as ct:
                n = 0
                t0 = time.perf_counter()
                while True:
                    fn()
                    n += 1
                    el = time.perf_counter() - t0
                    if el >= min_time or el > cap:
                        break
            per, per_c = el / n, ct.total / n
            if best[k] is None or per < best[k]:
                best[k], best_c[k] = per, per_c
            over = over or el > cap
        if over:
            break
    return list(zip(best, best_c))


def bench(fn, reps, min_time, cap=20.0):
    return bench_many([fn], reps, min_time, cap)[0]


# ------------------------------------------------------------ the three implementations


def pykp_fwd(x, y, b, s):
    return lambda: pykp.kernel_product(x, y, b, "gaussian", sigma=s)


def pykp_fwd_bwd(x, y, b, s):
    def run():
        xg = x.detach().requires_grad_()
        v = pykp.kernel_product(xg, y, b, "gaussian", sigma=s)
        (g,) = torch.autograd.grad(v.sum(), [xg])
        return g

    return run


def pykp_fwd_bwd_xyb(x, y, b, s):
    def run():
        xg, yg, bg = (t.detach().requires_grad_() for t in (x, y, b))
        v = pykp.kernel_product(xg, yg, bg, "gaussian", sigma=s)
        return torch.autograd.grad(v.sum(), [xg, yg, bg])

    return run


def torch_fwd(x, y, b, s):
    def run():
        K = torch.exp(-torch.cdist(x, y).square_() / (s * s))
        return K @ b

    return run


def torch_fwd_bwd(x, y, b, s):
    def run():
        xg = x.detach().requires_grad_()
        d2 = ((xg[:, None, :] - y[None, :, :]) ** 2).sum(-1)
        v = torch.exp(-d2 / (s * s)) @ b
        (g,) = torch.autograd.grad(v.sum(), [xg])
        return g

    return run


def torch_fwd_bwd_xyb(x, y, b, s):
    def run():
        xg, yg, bg = (t.detach().requires_grad_() for t in (x, y, b))
        d2 = ((xg[:, None, :] - yg[None, :, :]) ** 2).sum(-1)
        v = torch.exp(-d2 / (s * s)) @ bg
        return torch.autograd.grad(v.sum(), [xg, yg, bg])

    return run


def numpy_fwd(x, y, b, s):
    x, y, b = x.numpy(), y.numpy(), b.numpy()

    def run():
        d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
        return np.exp(-d2 / (s * s)) @ b

    return run


def numpy_fwd_bwd(x, y, b, s):
    x, y, b = x.numpy(), y.numpy(), b.numpy()

    def run():
        d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
        K = np.exp(-d2 / (s * s))
        v = K @ b
        # d/dx_i sum_i v_i = sum_j K_ij b_j (-2/s^2)(x_i - y_j)
        W = K * b.sum(1)[None, :]
        g = (-2 / (s * s)) * (W.sum(1)[:, None] * x - W @ y)
        return v, g

    return run


def numpy_fwd_bwd_xyb(x, y, b, s):
    x, y, b = x.numpy(), y.numpy(), b.numpy()

    def run():
        d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
        K = np.exp(-d2 / (s * s))
        v = K @ b
        W = K * b.sum(1)[None, :]  # d/dx_i, d/dy_j of sum_ij K_ij b_j, and d/db_j = sum_i K_ij
        gx = (-2 / (s * s)) * (W.sum(1)[:, None] * x - W @ y)
        gy = (2 / (s * s)) * (W.T @ x - W.sum(0)[:, None] * y)
        gb = np.repeat(K.sum(0)[:, None], b.shape[1], axis=1)
        return v, gx, gy, gb

    return run


PASSES = {  # name: (pykp, dense torch, dense NumPy, N x M temporaries of the dense versions)
    "forward": (pykp_fwd, torch_fwd, numpy_fwd, 2),
    "fwd+bwd": (pykp_fwd_bwd, torch_fwd_bwd, numpy_fwd_bwd, 6),
    "fwd+bwd-xyb": (pykp_fwd_bwd_xyb, torch_fwd_bwd_xyb, numpy_fwd_bwd_xyb, 6),
}


def separate(fn):
    """fn with one libkp reduction per gradient (pykp's backward before joint plans)."""

    def run():
        saved = genred.JOINT_BACKWARD
        genred.JOINT_BACKWARD = False
        try:
            return fn()
        finally:
            genred.JOINT_BACKWARD = saved

    return run


# ------------------------------------------------------------ main


def synced(fn, gpu):
    """fn, followed by torch.cuda.synchronize() on a GPU run (CUDA work is asynchronous)."""
    if not gpu:
        return fn

    def run():
        r = fn()
        torch.cuda.synchronize()
        return r

    return run


def available_gb():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 8.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,3000,10000,30000,100000")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.3)
    ap.add_argument("--dense-limit-gb", type=float, default=min(8.0, available_gb() / 2))
    ap.add_argument("--threads", type=int, default=0, help="libkp and torch threads (0: all cores)")
    ap.add_argument("--passes", default="forward,fwd+bwd,fwd+bwd-xyb", help="among %s" % ",".join(PASSES))
    ap.add_argument("--separate", action="store_true",
                    help="also time pykp's backward passes with one reduction per gradient (no joint plan)")
    ap.add_argument("--no-dense", action="store_true", help="skip dense torch and NumPy")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda / cuda:k (CUDA tensors, pykp on libkp's CUDA engine)")
    a = ap.parse_args()
    if MISSING:
        raise SystemExit("bench_torch.py: %s" % MISSING)
    passes = [p.strip() for p in a.passes.split(",") if p.strip()]
    for p in passes:
        if p not in PASSES:
            ap.error("unknown pass %r (expected one of %s)" % (p, ", ".join(PASSES)))
    if a.no_dense:
        a.dense_limit_gb = -1.0
    sizes = [int(float(s)) for s in a.sizes.split(",")]
    device = torch.device(a.device)
    gpu = device.type == "cuda"
    if gpu and not torch.cuda.is_available():
        ap.error("--device %s: this torch has no CUDA device (torch %s)" % (a.device, torch.__version__))
    if gpu and not a.no_dense and not any(w.startswith("--dense-limit-gb") for w in sys.argv):
        # the default follows the GPU's free memory
        a.dense_limit_gb = min(8.0, torch.cuda.mem_get_info(device)[0] / 2**31)
    dtype = getattr(torch, a.dtype)
    if a.threads:
        pykp.set_num_threads(a.threads)
    torch.set_num_threads(a.threads or os.cpu_count() or 1)  # some builds start with 1 thread
    itemsize = torch.finfo(dtype).bits // 8

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print("# pykp vs dense torch vs dense NumPy: Gaussian kernel product in 3D, %s, %s%s" % (
        a.dtype, device, " (%s)" % torch.cuda.get_device_name(device) if gpu else ""))
    print("machine: %s, %d cores, load average %.2f%s; torch %s (%d threads), numpy %s; libkp: %s" % (
        platform.processor() or platform.machine(), os.cpu_count() or 0, load,
        "  -- WARNING: busy machine, timings unreliable" if load > 0.5 * (os.cpu_count() or 1) else "",
        torch.__version__, torch.get_num_threads(), np.__version__, pykp.library_path))
    print("timing: best of %d repetitions of >= %.2f s (one call when a call exceeds 20 s); dense runs only "
          "below %.1f GB of estimated memory\n" % (a.reps, a.min_time, a.dense_limit_gb))
    print("| N = M | pass | pykp | in libkp | pykp overhead | dense torch | torch / pykp | dense NumPy | NumPy / pykp |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")

    s = 0.25
    for n in sizes:
        torch.manual_seed(0)
        x = torch.rand(n, 3, dtype=dtype).to(device)
        y = torch.rand(n, 3, dtype=dtype).to(device)
        b = torch.rand(n, 1, dtype=dtype).to(device)
        for pass_name in passes:
            kp_fn, th_fn, np_fn, temps = PASSES[pass_name]
            with_sep = a.separate and pass_name != "forward"
            fns = [synced(kp_fn(x, y, b, s), gpu)] + ([synced(separate(kp_fn(x, y, b, s)), gpu)] if with_sep else [])
            timings = bench_many(fns, a.reps, a.min_time)  # joint and separate alternate
            t_kp, t_c = timings[0]
            dense_gb = temps * n * n * itemsize / 2**30
            if dense_gb <= a.dense_limit_gb:
                t_th, _ = bench(synced(th_fn(x, y, b, s), gpu), a.reps, a.min_time)
                th = "%.4g s | %.2f" % (t_th, t_th / t_kp)
                if gpu:
                    nu = "- | -"
                else:
                    t_np, _ = bench(np_fn(x, y, b, s), a.reps, a.min_time)
                    nu = "%.4g s | %.2f" % (t_np, t_np / t_kp)
            else:
                th = nu = "(%.0f GB) | -" % dense_gb
            in_c = "- | -" if gpu else "%.4g s | %+.1f%% (%.0f us)" % (t_c, 100 * (t_kp - t_c) / t_c, 1e6 * (t_kp - t_c))
            print("| %d | %s | %.4g s | %s | %s | %s |" % (n, pass_name, t_kp, in_c, th, nu), flush=True)
            if with_sep:
                t_sep, t_csep = timings[1]
                print("| %d | %s, separate | %.4g s | %.4g s | %+.1f%% (%.0f us) | joint: %.2fx faster | - | - | - |" % (
                    n, pass_name, t_sep, t_csep, 100 * (t_sep - t_csep) / t_csep, 1e6 * (t_sep - t_csep),
                    t_sep / t_kp), flush=True)
    print("\npykp overhead = (pykp time - time inside kp_plan_exec[_joint]) / time inside them, same runs.")
    if a.separate:
        print("separate: the same pass with one libkp reduction per gradient (genred.JOINT_BACKWARD = False).")


if __name__ == "__main__":
    main()
