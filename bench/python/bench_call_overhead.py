"""
bench_call_overhead.py -- the fixed cost of one pykp call, at sizes where the
kernel itself costs nothing (N = M = 10 by default), against libkp's own call.

Cases (the formulas of bench_panel.py; x, y in 3D, b of dimension 1):

    Genred      k(x, y, g, b), k = Genred("Exp(-SqDist(x,y)*g)*b", ..., axis=1)
    lazy @ b    (-((xi - yj) ** 2).sum(-1) / s2).exp() @ b
    lazy sum    (-((xi - yj) ** 2).sum(-1) / s2).exp().sum(dim=1)
    lazy lse    (-((xi - yj) ** 2).sum(-1) * 16).logsumexp(dim=1)
    lazy argKmin ((xi - yj) ** 2).sum(-1).argKmin(8, dim=1)

each with NumPy arrays, torch tensors, and torch tensors that require a
gradient (the forward only: what the call costs when autograd records it);
genred_bwd and lazy_matmul_bwd add the backward pass (gradients in x and b,
torch tensors that require them only). The LazyTensor
cases build their expression in every call, as user code does (xi, yj are
made once).

The reference is libkp's own call: "C exec" repeats each case's kp_plan_exec
through ctypes on the arguments pykp packed for it (libkp's work plus one
foreign call, the floor of any Python binding), and "C steady call" is the column of
build/bench/kp_bench_first_call --n N (a C loop, 0.01 ms resolution) when that
program is built.

Timing: rounds of --inner calls per case, the cases in turn round after round
(other processes disturb them alike); each case's best round, per call, in
microseconds.

usage: python bench/python/bench_call_overhead.py [--n 10] [--threads 2]
       [--inner 20] [--rounds 200] [--dtype float32] [--cases genred,lazy_matmul,...]
       [--no-c] [--profile CASE]
"""
import argparse
import os
import re
import subprocess
import sys
import time

try:
    import numpy as np

    import pykp
    from pykp import Genred, LazyTensor, _lib
except ImportError as error:  # --help works without them; reported after parsing
    MISSING = error
else:
    MISSING = None

try:
    import torch
except ImportError:  # pragma: no cover - NumPy only
    torch = None

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ALIASES = ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"]
S2 = 0.0625
CASES = ["genred", "genred_bwd", "lazy_matmul", "lazy_matmul_bwd", "lazy_sum", "lazy_lse", "lazy_argkmin"]
KINDS = ["numpy", "torch", "torch_grad"]


def _parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--n", type=int, default=10, help="N = M (default 10: the kernel costs nothing)")
    p.add_argument("--threads", type=int, default=2, help="libkp threads (pykp.set_num_threads and the C program)")
    p.add_argument("--inner", type=int, default=20, help="calls per round")
    p.add_argument("--rounds", type=int, default=200, help="rounds; the best round of each case is kept")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of " + ",".join(KINDS))
    p.add_argument("--no-c", action="store_true", help="skip the C program (kp_bench_first_call)")
    p.add_argument("--profile", metavar="CASE:KIND",
                   help="instead of timing, profile one cell (e.g. lazy_matmul:torch) with cProfile")
    args = p.parse_args()
    if MISSING:
        raise SystemExit("bench_call_overhead.py: %s" % MISSING)
    for name, known in (("cases", CASES), ("kinds", KINDS)):
        bad = [c for c in getattr(args, name).split(",") if c not in known]
        if bad:
            p.error("--%s: unknown %s (known: %s)" % (name, ",".join(bad), ",".join(known)))
    return args


def _arrays(n, dtype, kind):
    rng = np.random.default_rng(0)
    x = rng.random((n, 3)).astype(dtype)
    y = rng.random((n, 3)).astype(dtype)
    b = rng.random((n, 1)).astype(dtype)
    g = np.array([1.0 / S2], dtype=dtype)
    if kind == "numpy":
        return x, y, g, b
    x, y, g, b = (torch.from_numpy(a) for a in (x, y, g, b))
    if kind == "torch_grad":
        x.requires_grad_(True)
        b.requires_grad_(True)
    return x, y, g, b


def _cell(case, kind, n, dtype):
    """The function one call of (case, kind) runs, or None when it does not apply."""
    if kind != "numpy" and torch is None:
        return None
    if case.endswith("_bwd") and kind != "torch_grad":
        return None
    x, y, g, b = _arrays(n, dtype, kind)
    xi, yj = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :])
    if case in ("genred", "genred_bwd"):
        k = Genred("Exp(-SqDist(x,y)*g)*b", ALIASES, axis=1)
        if case == "genred":
            return lambda: k(x, y, g, b)
        return lambda: torch.autograd.grad(k(x, y, g, b).sum(), (x, b))
    if case == "lazy_matmul":
        return lambda: (-((xi - yj) ** 2).sum(-1) / S2).exp() @ b
    if case == "lazy_matmul_bwd":
        return lambda: torch.autograd.grad(((-((xi - yj) ** 2).sum(-1) / S2).exp() @ b).sum(), (x, b))
    if case == "lazy_sum":
        return lambda: (-((xi - yj) ** 2).sum(-1) / S2).exp().sum(dim=1)
    if case == "lazy_lse":
        return lambda: (-((xi - yj) ** 2).sum(-1) * 16).logsumexp(dim=1)
    return lambda: ((xi - yj) ** 2).sum(-1).argKmin(8, dim=1)


def _c_exec(fn):
    """A function that repeats, as one kp_plan_exec through ctypes, the libkp
    call that fn makes (its last one): the arguments as pykp packed them,
    copied out of the plan's buffer (which later calls of the same plan
    overwrite), the arrays they point to kept alive. libkp's work plus one
    foreign call: the floor of any Python binding."""
    import ctypes

    from pykp import _call

    seen = {}
    run = _call.run

    def spy(f, call, out=None, scheme=None, ranges=None):
        vals, idx = run(f, call, out, scheme, ranges)
        plan = f.plan(call.code)
        seen.update(plan=plan, buf=ctypes.create_string_buffer(plan.buf.raw, len(plan.buf)),
                    keep=(call.arrays, vals, idx), out=vals is not None, idx=idx is not None)
        return vals, idx

    _call.run = spy
    try:
        fn()
    finally:
        _call.run = run
    plan, base = seen["plan"], ctypes.addressof(seen["buf"])
    cargs = (plan.handle, base, plan.nargs, base + plan.out_off if seen["out"] else None,
             base + plan.idx_off if seen["idx"] else None, base + plan.opt_off)
    exec_, keep = _lib._plan_exec, seen

    def call():
        if exec_(*cargs) != 0:
            raise RuntimeError("kp_plan_exec failed")
        return keep

    return call


def _time_cells(fns, inner, rounds):
    best = {name: float("inf") for name in fns}
    for fn in fns.values():  # warm: plans, thread pool, caches
        for _ in range(3):
            fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / inner)
    return best


def _c_program(n, threads, dtype):
    """{formula name: steady call in microseconds} from kp_bench_first_call, or {}."""
    exe = os.path.join(ROOT, "build", "bench", "kp_bench_first_call")
    if not os.path.exists(exe):
        return {}
    cmd = [exe, "--n", str(n), "--takeover-n", str(n), "--threads", str(threads), "--reps", "2000",
           "--max-seconds", "0.5", "--dtype", "f32" if dtype == "float32" else "f64"]
    try:
        text = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    res = {}
    for line in text.splitlines():
        m = re.match(r"\| ([^|]+) \| [^|]+ \| [^|]+ \| ([0-9.]+) ms \|", line)
        if m:
            res[m.group(1).strip()] = 1e3 * float(m.group(2))
    return res


def main():
    args = _parse()
    pykp.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    dtype = np.float32 if args.dtype == "float32" else np.float64
    cases, kinds = args.cases.split(","), args.kinds.split(",")
    if args.profile:
        import cProfile
        import pstats

        case, kind = args.profile.split(":")
        fn = _cell(case, kind, args.n, dtype)
        for _ in range(100):
            fn()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.inner * 10):
            fn()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        return
    fns = {}
    for case in cases:
        for kind in kinds:
            fn = _cell(case, kind, args.n, dtype)
            if fn is not None:
                fns[(case, kind)] = fn
    for case in cases:
        if not case.endswith("_bwd"):
            fns[(case, "C exec")] = _c_exec(_cell(case, "numpy", args.n, dtype))
    best = _time_cells(fns, args.inner, args.rounds)
    print("pykp per-call time, N = M = %d, %s, %d threads, best of %d rounds of %d calls; %s, Python %s, torch %s"
          % (args.n, args.dtype, args.threads, args.rounds, args.inner, os.uname().machine,
             sys.version.split()[0], torch.__version__ if torch is not None else "-"))
    print()
    cols = kinds + ["C exec"]
    print("| case | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for case in cases:
        cells = ["%.1f us" % (1e6 * best[(case, k)]) if (case, k) in best else "-" for k in cols]
        print("| %s | %s |" % (case, " | ".join(cells)))
    print()
    print("C exec: the same kp_plan_exec call through ctypes, on the arguments pykp packed (NumPy)")
    if not args.no_c:
        steady = _c_program(args.n, args.threads, args.dtype)
        if steady:
            print("C steady call (kp_bench_first_call --n %d, 0.01 ms resolution): %s" % (
                args.n, ", ".join("%s %.0f us" % (k, v) for k, v in steady.items()
                                  if k in ("Gaussian", "Gaussian, LazyTensor spelling", "logsumexp",
                                           "argKmin (K = 8)"))))


if __name__ == "__main__":
    main()
