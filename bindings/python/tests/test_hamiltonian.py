"""The LDDMM Hamiltonian H = 1/2 sum_ij k(q_i, q_j) <p_i, p_j>:

    v = kernel_product(q, q, p, "gaussian", sigma=s); H = .5 * (p * v).sum()
    dq, dp = torch.autograd.grad(H, [q, p], create_graph=True)

then a backward pass through dq (second derivatives):
- at N = 2,000 against dense torch float64 (every derivative, sigma included);
- at large N in float32, in a fresh process, with the peak memory (VmHWM)
  rising by less than 100 MB over the baseline after import and data. N is
  20,000 by default (20-40 s on 2 cores); PYKP_TEST_LARGE=1 runs the full
  N = 100,000 (2-5 minutes on 2 busy cores: 10^10 pairs per reduction;
  the first backward is one joint libkp pass, the second two). Measured peak
  rise: 56 MB with joint backward passes (libkp's joint column buffers, at
  most 64 MiB by kp.h's design; 38 MB here), 16-24 MB with one reduction
  per gradient (PYKP_JOINT_BACKWARD=0).
"""
import os
import subprocess
import sys

import torch

import pykp
from conftest import assert_close


def hamiltonian(q, p, s, use_pykp):
    if use_pykp:
        v = pykp.kernel_product(q, q, p, "gaussian", sigma=s)
    else:
        K = torch.exp(-((q[:, None, :] - q[None, :, :]) ** 2).sum(-1) / s**2)
        v = K @ p
    return 0.5 * (p * v).sum()


def test_hamiltonian_against_dense_float64():
    N = 2000
    torch.manual_seed(1)
    q0 = torch.rand(N, 3)
    p0 = torch.randn(N, 3) / N
    w = torch.randn(N, 3)
    results = []
    for use_pykp in (True, False):
        q = q0.clone().requires_grad_()
        p = p0.clone().requires_grad_()
        s = torch.tensor(0.3, requires_grad=True)
        H = hamiltonian(q, p, s, use_pykp)
        dq, dp = torch.autograd.grad(H, [q, p], create_graph=True)
        loss = (dq * w).sum() + (dq**2).sum()
        gq, gp, gs = torch.autograd.grad(loss, [q, p, s])
        results.append((H, dq, dp, gq, gp, gs))
    for a, r in zip(*results):
        assert_close(a, r, rtol=1e-9, atol=1e-12)


_SCRIPT = r"""
import sys, time
sys.path.insert(0, {path!r})
import torch, pykp

def vmhwm_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0

def run(N):
    torch.manual_seed(0)
    q = torch.rand(N, 3, dtype=torch.float32, requires_grad=True)
    p = (torch.randn(N, 3, dtype=torch.float32) / N).requires_grad_()
    t0 = time.perf_counter()
    v = pykp.kernel_product(q, q, p, "gaussian", sigma=s)
    H = 0.5 * (p * v).sum()
    dq, dp = torch.autograd.grad(H, [q, p], create_graph=True)
    t1 = time.perf_counter()
    (gq,) = torch.autograd.grad((dq ** 2).sum(), [q])
    t2 = time.perf_counter()
    return q, p, dq, dp, gq, t0, t1, t2

s = 0.25
# The same calls on 1,000 points first: the process's one-off costs (the
# compiled kernels: libLLVM loaded, each kernel compiled, under KP_JIT=force)
# come before the baseline, which then measures what grows with N.
run(1000)
base = vmhwm_mb()
N = {n}
q, p, dq, dp, gq, t0, t1, t2 = run(N)
peak = vmhwm_mb()
# check 20 rows of dH/dq and dH/dp against direct float64 sums over all N points
rows = torch.arange(0, N, N // 20)[:20]
qd, pd = q.detach().double(), p.detach().double()
K = torch.exp(-((qd[rows, None, :] - qd[None, :, :]) ** 2).sum(-1) / s ** 2)  # (20, N)
dp_ref = K @ pd
diff = qd[rows, None, :] - qd[None, :, :]
pp = (pd[rows] @ pd.t())  # (20, N)
dq_ref = ((-2 / s ** 2) * (K * pp)[..., None] * diff).sum(1) * 2 * 0.5
err_p = float((dp[rows].double() - dp_ref).abs().max() / dp_ref.abs().max())
err_q = float((dq[rows].double() - dq_ref).abs().max() / dq_ref.abs().max())
finite = bool(torch.isfinite(gq).all())
print("RESULT", base, peak, t1 - t0, t2 - t1, err_p, err_q, finite)
"""


def test_hamiltonian_large_n_memory():
    n = 100_000 if os.environ.get("PYKP_TEST_LARGE") else 20_000
    path = os.path.dirname(os.path.dirname(pykp.__file__))
    env = dict(os.environ, KP_JIT="force")  # compiled kernels built by the warm-up, not during the measured run
    r = subprocess.run([sys.executable, "-c", _SCRIPT.format(path=path, n=n)], capture_output=True, text=True,
                       timeout=3600, env=env)
    assert r.returncode == 0, r.stderr
    line = [l for l in r.stdout.splitlines() if l.startswith("RESULT")][-1].split()
    base, peak, t_first, t_second, err_p, err_q = map(float, line[1:7])
    finite = line[7] == "True"
    print("N = %d: H + dH/dq,dp %.1f s, backward through dq %.1f s, peak memory %.0f MB (%.1f MB above %.0f MB)"
          % (n, t_first, t_second, peak, peak - base, base))
    assert finite
    assert err_p < 1e-5 and err_q < 1e-4, (err_p, err_q)
    assert peak - base < 100, "peak memory rose by %.1f MB" % (peak - base)
