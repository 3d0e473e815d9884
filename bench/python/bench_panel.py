"""
bench_panel.py -- the formula panel of the CPU engine: each kernel in its
Genred spelling and in the LazyTensor spelling of KeOps' tutorials, against the
plain C Gaussian loop (bench/plain_loop.c) and the machine's floor, in one run.

    Gaussian     Exp(-SqDist(x,y)*g)*b      (-((xi - yj) ** 2).sum(-1) / s2).exp() @ b
    Cauchy       Inv(1+SqDist(x,y)*g)*b     (1 / (1 + D * 16)) @ b
    Laplacian    Exp(-Sqrt(SqDist(x,y))*g)*b (-D.sqrt() * 4).exp() @ b
    L1           Exp(-Sum(Abs(x-y))*g)*b    (-(xi - yj).abs().sum(-1) * 4).exp() @ b
    anisotropic  Exp(-WeightedSqDist(w,x,y))*b  (-((xi - yj) ** 2 * w).sum(-1)).exp() @ b
    logsumexp    LogSumExp(-SqDist(x,y)*g)  (-D * 16).logsumexp(dim=1)
    argKmin      ArgKMin(SqDist(x,y), 8)    D.argKmin(8, dim=1)

with D = ((xi - yj) ** 2).sum(-1), x, y in 3D, b of dimension 1, N = M. For each
cell: pairs/s = N M / (best time of one call), and the ratio to the plain C
Gaussian loop of the same dtype and size measured in the same run (> 1: faster
than the loop). The plain loop and the floor microbenchmark (bench/floor.c:
vector FMA and vector exp throughput) are compiled here with $CC -O3
-march=native -ffast-math -fopenmp, as bench/CMakeLists.txt builds plain_loop.c.
The floor of the Gaussian is the model 1 / (8 / FMA rate + 1 / exp rate), with
the rates of one core times the threads: per pair 3 subtractions, 3 multiply-adds, 1 scale, 1 accumulating multiply-add and
one exp. The Gaussian's forward + backward (gradients in x and b by torch
autograd) is reported in both spellings: its row gives the forward + backward's
pairs/s in the pairs/s columns and its time over the forward's (of the same
spelling) in the ratio columns.

With the compiled kernels (libkp built with KP_JIT, docs/jit.md), each
formula is timed twice in the same rounds: on the interpreter (KP_JIT=off) and
compiled (KP_JIT=force: its first call compiles, in the calling thread); the
compile time reported is that first call minus the formula's fastest compiled
call. --no-jit times the interpreter only (the columns as before).

--isa avx2 measures what an AVX2 machine would get, on this one: libkp runs its
AVX2 kernels (KP_CPU_ISA=avx2; compiled kernels target an AVX2 CPU, haswell),
and the plain loop and the floor are compiled with -march=haswell. The core is
still this one (its caches, ports and clock), so it approximates an AVX2
machine of the same design, not a different one.

Timing: each cell's fastest call; the cells of one size are called in turn,
round after round, so that other processes disturb them alike (see
_time_cells); calls longer than --max-seconds are timed once.

usage: python bench/python/bench_panel.py [--sizes 1000,10000,100000]
       [--dtypes float32,float64] [--threads 2] [--rounds 30] [--budget 30]
       [--max-seconds 4] [--formulas gaussian,cauchy,...] [--no-grad] [--no-floor] [--no-jit]
       [--isa native|avx2]
"""
import argparse
import ctypes
import os
import platform
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np

    import pykp
    from pykp import Genred, LazyTensor
except ImportError as error:  # --help works without them; reported after parsing
    MISSING = error
else:
    MISSING = None

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
FORMULAS = ["gaussian", "cauchy", "laplacian", "l1", "anisotropic", "logsumexp", "argkmin"]
ALIASES = ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"]
S2 = 0.0625  # bandwidth^2 of the Gaussian: g = 1 / S2 = 16, points in the unit cube
W = [8.0, 16.0, 24.0]  # anisotropic weights


def _parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,10000,100000", help="comma-separated N (= M)")
    p.add_argument("--dtypes", default="float32,float64", help="comma-separated: float32, float64")
    p.add_argument("--threads", type=int, default=2, help="threads of pykp and of the plain loop")
    p.add_argument("--rounds", type=int, default=30, help="calls per cell at most (at least 3); the fastest is kept")
    p.add_argument("--budget", type=float, default=30.0, help="seconds of rounds per size and dtype, about")
    p.add_argument("--max-seconds", type=float, default=4.0,
                   help="a call longer than this is the cell's only measurement")
    p.add_argument("--formulas", default=",".join(FORMULAS), help="comma-separated subset of " + ",".join(FORMULAS))
    p.add_argument("--no-grad", action="store_true", help="skip the Gaussian's forward + backward")
    p.add_argument("--no-floor", action="store_true", help="skip the FMA / exp microbenchmark")
    p.add_argument("--no-jit", action="store_true", help="interpreter only (no compiled-kernel columns)")
    p.add_argument("--sum-scheme", choices=["block", "exact", "kahan", "plain"], default="block",  # set_sum_scheme
                   help="pykp.set_sum_scheme for every pykp call (exact: order-independent sums, interpreter only)")
    p.add_argument("--cc", default=os.environ.get("CC", "cc"), help="C compiler for the plain loop and floor")
    p.add_argument("--isa", choices=["native", "avx2"], default="native",
                   help="avx2: libkp's AVX2 kernels and a plain loop and floor built for AVX2 (see above)")
    args = p.parse_args()
    if MISSING:
        raise SystemExit("bench_panel.py: %s" % MISSING)
    bad = [f for f in args.formulas.split(",") if f not in FORMULAS]
    if bad:
        p.error("--formulas: unknown %s (known: %s)" % (",".join(bad), ",".join(FORMULAS)))
    return args


def _native(cc, tmp, isa):
    """The plain loop and the floor microbenchmark, compiled into one shared library."""
    so = os.path.join(tmp, "libkp_bench_native.so")
    march = "-march=haswell" if isa == "avx2" else "-march=native"
    flags = ["-O3", march, "-ffast-math", "-fopenmp", "-fPIC"]
    wide = [] if isa == "avx2" else ["-mprefer-vector-width=512"]
    objs = []
    for src, extra in (("plain_loop.c", []), ("floor.c", wide)):
        obj = os.path.join(tmp, src + ".o")
        cmd = [cc] + flags + extra + ["-c", os.path.join(BENCH, src), "-o", obj]
        if subprocess.run(cmd).returncode != 0 and extra:  # a compiler without that option
            subprocess.run([cc] + flags + ["-c", os.path.join(BENCH, src), "-o", obj], check=True)
        objs.append(obj)
    subprocess.run([cc, "-shared", "-fopenmp"] + objs + ["-o", so, "-lm"], check=True)
    lib = ctypes.CDLL(so)
    i64, c_int, vp = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
    for dt, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        f = getattr(lib, "plain_gauss3d_b1_" + dt)
        f.argtypes = [i64, i64, vp, vp, real, vp, vp, c_int]
        f.restype = None
        for name in ("floor_fma_", "floor_exp_"):
            g = getattr(lib, name + dt)
            g.argtypes = [i64, c_int]
            g.restype = ctypes.c_double
    return lib


def _time_cells(fns, args):
    """Fastest call of each function. The cells are called in turn, round after
    round (at least 3 rounds, up to --rounds, while the size's --budget lasts),
    so that other processes on a shared machine disturb them all alike; the
    fastest call is the least disturbed one. A function whose first call takes
    longer than --max-seconds is timed by that call alone."""
    best = []
    for fn in fns:  # warm-up: plans, caches; and the measurement of long calls
        t0 = time.perf_counter()
        fn()
        best.append(time.perf_counter() - t0)
    live = [k for k, t in enumerate(best) if t <= args.max_seconds]
    t_start, rounds = time.perf_counter(), 0
    while live and rounds < args.rounds and (rounds < 3 or time.perf_counter() - t_start < args.budget):
        for k in live:
            t0 = time.perf_counter()
            fns[k]()
            best[k] = min(best[k], time.perf_counter() - t0)
        rounds += 1
    return best


def _cases(name, x, y, b, w, dtype):
    """(Genred call, LazyTensor call) of one panel formula, for arrays of dtype."""
    g = np.array([1.0 / S2], dtype=dtype)
    xi, yj = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :])
    if name == "gaussian":
        k = Genred("Exp(-SqDist(x,y)*g)*b", ALIASES, axis=1)
        return (lambda: k(x, y, g, b)), (lambda: (-((xi - yj) ** 2).sum(-1) / S2).exp() @ b)
    if name == "cauchy":
        k = Genred("Inv(IntCst(1)+SqDist(x,y)*g)*b", ALIASES, axis=1)
        return (lambda: k(x, y, g, b)), (lambda: (1 / (1 + ((xi - yj) ** 2).sum(-1) * 16)) @ b)
    if name == "laplacian":
        k = Genred("Exp(-Sqrt(SqDist(x,y))*g)*b", ALIASES, axis=1)
        g4 = np.array([4.0], dtype=dtype)
        return (lambda: k(x, y, g4, b)), (lambda: (-((xi - yj) ** 2).sum(-1).sqrt() * 4).exp() @ b)
    if name == "l1":
        k = Genred("Exp(-Sum(Abs(x-y))*g)*b", ALIASES, axis=1)
        g4 = np.array([4.0], dtype=dtype)
        return (lambda: k(x, y, g4, b)), (lambda: (-(xi - yj).abs().sum(-1) * 4).exp() @ b)
    if name == "anisotropic":
        k = Genred("Exp(-WeightedSqDist(w,x,y))*b", ["x = Vi(3)", "y = Vj(3)", "w = Pm(3)", "b = Vj(1)"], axis=1)
        wl = LazyTensor(w.tolist())
        return (lambda: k(x, y, w, b)), (lambda: (-((xi - yj) ** 2 * wl).sum(-1)).exp() @ b)
    if name == "logsumexp":
        k = Genred("-SqDist(x,y)*g", ALIASES[:3], reduction_op="LogSumExp", axis=1)
        return (lambda: k(x, y, g)), (lambda: (-((xi - yj) ** 2).sum(-1) * 16).logsumexp(dim=1))
    k = Genred("SqDist(x,y)", ALIASES[:2], reduction_op="ArgKMin", opt_arg=8, axis=1)
    return (lambda: k(x, y)), (lambda: ((xi - yj) ** 2).sum(-1).argKmin(8, dim=1))


def _in_mode(mode, fn):
    """fn called with $KP_JIT = mode (libkp reads it on every call)."""
    def call():
        os.environ["KP_JIT"] = mode
        return fn()
    return call


def _floor(lib, dt, threads):
    """Gaussian floor in pairs/s, FMA lane-ops/s and exps/s on `threads` cores:
    `threads` times the rate of one thread (the calling one: no thread wake-up
    in the window), the best of 200 windows of about 2 ms each, short enough
    that some run between other processes' time slices on a shared machine.
    FMA and exp run in registers and L1, so cores do not share the resource."""
    rates = {}
    for name, unit in (("fma", 12 * 16), ("exp", 1024)):
        f = getattr(lib, "floor_%s_%s" % (name, dt))
        n = 1000
        while True:  # n such that the fastest of 3 calls lasts 2 ms
            dt_s = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                f(n, 1)
                dt_s = min(dt_s, time.perf_counter() - t0)
            if dt_s > 0.002:
                break
            n *= 2
        for _ in range(200):
            t0 = time.perf_counter()
            f(n, 1)
            dt_s = min(dt_s, time.perf_counter() - t0)
        rates[name] = n * unit * threads / dt_s
    return 1.0 / (8.0 / rates["fma"] + 1.0 / rates["exp"]), rates["fma"], rates["exp"]


def _grad_times(n, dtype, args):
    """Fastest calls, per KP_JIT mode: the Gaussian's forward in Genred's and in
    the LazyTensor spelling, then each one's forward + backward (x and b)."""
    import torch

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(1)
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    x = torch.rand(n, 3, generator=gen, dtype=tdt)
    y = torch.rand(n, 3, generator=gen, dtype=tdt)
    b = torch.randn(n, 1, generator=gen, dtype=tdt)
    g = torch.tensor([1.0 / S2], dtype=tdt)
    e = torch.randn(n, 1, generator=gen, dtype=tdt)
    xg, bg = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
    k = Genred("Exp(-SqDist(x,y)*g)*b", ALIASES, axis=1)
    yj = LazyTensor(y[None, :, :])

    def genred(xv, bv):
        return k(xv, y, g, bv)

    def lazy(xv, bv):  # the expression built in every call, as user code does
        return (-((LazyTensor(xv[:, None, :]) - yj) ** 2).sum(-1) / S2).exp() @ bv

    def fwd_bwd(fwd):
        return lambda: torch.autograd.grad(fwd(xg, bg), (xg, bg), e)

    cells = [(lambda f=f: f(x, b)) for f in (genred, lazy)] + [fwd_bwd(f) for f in (genred, lazy)]
    modes = ["off"] if args.no_jit else ["off", "force"]
    return _time_cells([_in_mode(m, f) for m in modes for f in cells], args)


def _cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = [l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name")]
        flags = [l.split(":", 1)[1].split() for l in out.splitlines() if l.startswith("Flags")]
        isa = [f for f in ("avx512f", "avx2", "fma") if flags and f in flags[0]]
        return (model[0] if model else platform.processor()), "+".join(isa)
    except OSError:
        return platform.processor(), "?"


def main():
    args = _parse()
    pykp.set_num_threads(args.threads)
    pykp.set_sum_scheme(args.sum_scheme)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    dtypes = [np.dtype(d).type for d in args.dtypes.split(",")]
    model, isa = _cpu_model()
    if args.isa == "avx2" and not ("avx2" in isa and "fma" in isa):
        sys.exit("bench_panel.py: --isa avx2 needs a CPU with AVX2 and FMA (this one: %s)" % (isa or "neither"))
    if args.isa == "avx2":
        os.environ["KP_CPU_ISA"] = "avx2"
        isa += "; measured as AVX2 (KP_CPU_ISA=avx2, plain loop -march=haswell)"
    print("# bench_panel: %s (%s), %d threads, sum scheme %s, load average before: %s" %
          (model, isa, args.threads, args.sum_scheme, " ".join("%.2f" % v for v in os.getloadavg())))
    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        lib = _native(args.cc, tmp, args.isa)
        for dtype in dtypes:
            dt = "f32" if dtype == np.float32 else "f64"
            fl = None
            if not args.no_floor:
                fl, fma, ex = _floor(lib, dt, args.threads)
                print("\n%s floor: %.3g FMA lane-ops/s, %.3g exp/s -> Gaussian floor %.3g pairs/s" %
                      (np.dtype(dtype).name, fma, ex, fl))
            head = ("\n| formula | dtype | N = M | Genred pairs/s | LazyTensor pairs/s | Genred / plain | "
                    "LazyTensor / plain |")
            rule = "\n|---|---|---:|---:|---:|---:|---:|"
            if not args.no_jit:
                head += (" compiled Genred pairs/s | compiled LazyTensor pairs/s | compiled Genred / plain | "
                         "compiled LazyTensor / plain | compile ms (Genred / LazyTensor) | compiled Gaussian / floor |")
                rule += "---:|---:|---:|---:|---:|---:|"
            print(head + rule)
            for n in sizes:
                rng = np.random.default_rng(0)
                x = rng.random((n, 3)).astype(dtype)
                y = rng.random((n, 3)).astype(dtype)
                b = rng.standard_normal((n, 1)).astype(dtype)
                w = np.array(W, dtype=dtype)
                out = np.empty((n, 1), dtype=dtype)
                plain = getattr(lib, "plain_gauss3d_b1_" + dt)
                gv = 1.0 / S2
                names = args.formulas.split(",")
                fns = [lambda: plain(n, n, x.ctypes.data, y.ctypes.data, gv, b.ctypes.data, out.ctypes.data,
                                     args.threads)]
                modes = ["off"] if args.no_jit else ["off", "force"]
                first = {}
                for name in names:
                    for m in modes:
                        for spelling, fn in zip(("Genred", "LazyTensor"), _cases(name, x, y, b, w, dtype)):
                            fns.append(_in_mode(m, fn))
                            if m == "force":  # the first call compiles
                                t0 = time.perf_counter()
                                fns[-1]()
                                first[(name, spelling)] = time.perf_counter() - t0
                t = _time_cells(fns, args)
                t_plain = t[0]
                print("| plain C Gaussian loop | %s | %d | %.3g | | 1.00 | |%s" %
                      (np.dtype(dtype).name, n, n * n / t_plain, "" if args.no_jit else " | | |"))
                per = len(modes) * 2
                for k, name in enumerate(names):
                    tg, tl = t[1 + per * k], t[2 + per * k]
                    row = "| %s | %s | %d | %.3g | %.3g | %.2f | %.2f |" % (
                        name, np.dtype(dtype).name, n, n * n / tg, n * n / tl, t_plain / tg, t_plain / tl)
                    if not args.no_jit:
                        cg, cl = t[3 + per * k], t[4 + per * k]
                        comp = max(first[(name, "Genred")] - cg, 0.0), max(first[(name, "LazyTensor")] - cl, 0.0)
                        # Kernels are cached per process: only the first size of a dtype compiles.
                        cms = "%.0f / %.0f" % (1e3 * comp[0], 1e3 * comp[1]) if n == sizes[0] else "cached"
                        row += " %.3g | %.3g | %.2f | %.2f | %s |" % (
                            n * n / cg, n * n / cl, t_plain / cg, t_plain / cl, cms)
                        if name == "gaussian" and fl:
                            row += " %.0f%% |" % (100.0 * n * n / cg / fl)
                    print(row)
                sys.stdout.flush()
                if not args.no_grad:  # per mode: Genred fwd, LazyTensor fwd, then their fwd + bwd
                    t = _grad_times(n, dtype, args)
                    cols = ["%.3g | %.3g | %.2f | %.2f" % (n * n / t[m + 2], n * n / t[m + 3], t[m + 2] / t[m],
                                                           t[m + 3] / t[m + 1]) for m in range(0, len(t), 4)]
                    print("| Gaussian fwd+bwd (x, b), / fwd | %s | %d | %s |%s" %
                          (np.dtype(dtype).name, n, cols[0], "" if args.no_jit else " %s | | |" % cols[1]))
                print("load average: %s" % " ".join("%.2f" % v for v in os.getloadavg()))
    print("\nload average after: %s; total %.0f s" %
          (" ".join("%.2f" % v for v in os.getloadavg()), time.time() - t_start))


if __name__ == "__main__":
    main()
