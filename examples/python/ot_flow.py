"""
ot_flow.py -- flow one point cloud onto another by gradient descent on the
Sinkhorn divergence of pykp.ot, and save pictures of the flow.

    x <- x - lr * N * grad_x S_eps(x, y)

S_eps is the debiased Sinkhorn divergence (GeomLoss's SamplesLoss("sinkhorn")),
computed by pykp reductions in O(N + M) memory; its gradient costs a few more
reductions (envelope theorem), whatever the number of Sinkhorn iterations.
With p = 2 and lr = 1, each step moves every point to where the transport plan
sends it (its barycentric target), so a few steps suffice.

Saves, in --out (default ot_flow_out/): flow_start.png, flow_middle.png,
flow_end.png (source in blue, target in red) and loss.png (S_eps per step,
log scale). Prints the loss and time of each step.

usage: python3 examples/python/ot_flow.py [--n 2000] [--m 2000] [--steps 12] [--lr 0.25]
       [--blur 0.01] [--scaling 0.7] [--p 2] [--dtype float32] [--out ot_flow_out]
"""
import argparse
import math
import os
import time

import numpy as np
import torch

import pykp.ot


def source_cloud(n, gen):
    """A square, uniformly filled."""
    return torch.rand(n, 2, generator=gen) * 0.5 + 0.25


def target_cloud(m, gen):
    """A crescent: a thick ring minus a disk."""
    pts = []
    while sum(len(p) for p in pts) < m:
        z = torch.rand(4 * m, 2, generator=gen) * 2 - 1
        r = z.norm(dim=1)
        keep = (r > 0.55) & (r < 0.85) & ((z - torch.tensor([0.45, 0.0])).norm(dim=1) > 0.5)
        pts.append(z[keep])
    return torch.cat(pts)[:m] * 0.45 + 0.5


def save_picture(path, x, y, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(y[:, 0], y[:, 1], s=2, c="tab:red", alpha=0.35, linewidths=0, label="target")
    ax.scatter(x[:, 0], x[:, 1], s=2, c="tab:blue", alpha=0.6, linewidths=0, label="source")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(loc="upper right", markerscale=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_loss_curve(path, losses):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(range(len(losses)), [max(v, 1e-12) for v in losses], "o-")
    ax.set_xlabel("step")
    ax.set_ylabel("Sinkhorn divergence")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="source points (default 2000)")
    ap.add_argument("--m", type=int, default=2000, help="target points (default 2000)")
    ap.add_argument("--steps", type=int, default=12, help="gradient steps (default 12)")
    ap.add_argument("--lr", type=float, default=0.25, help="step size, in units of N * gradient (default 0.25)")
    ap.add_argument("--blur", type=float, default=0.01, help="blur of the divergence (default 0.01)")
    ap.add_argument("--scaling", type=float, default=0.7, help="annealing ratio (default 0.7)")
    ap.add_argument("--p", type=int, default=2, choices=(1, 2), help="cost |x-y|^p / p (default 2)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="ot_flow_out", help="folder for the PNGs (default ot_flow_out)")
    args = ap.parse_args(argv)
    if args.n < 1 or args.m < 1 or args.steps < 1:
        ap.error("--n, --m and --steps must be positive")
    os.makedirs(args.out, exist_ok=True)
    dtype = getattr(torch, args.dtype)
    gen = torch.Generator().manual_seed(args.seed)
    x = source_cloud(args.n, gen).to(dtype)
    y = target_cloud(args.m, gen).to(dtype)
    loss = pykp.ot.SamplesLoss("sinkhorn", p=args.p, blur=args.blur, scaling=args.scaling)
    losses = []
    middle = args.steps // 2
    print("ot_flow: %d -> %d points, %d steps, blur %g, p = %d, %s" % (args.n, args.m, args.steps, args.blur, args.p, args.dtype))
    save_picture(os.path.join(args.out, "flow_start.png"), x.numpy(), y.numpy(), "step 0")
    t_all = time.perf_counter()
    for step in range(args.steps + 1):
        t0 = time.perf_counter()
        x.requires_grad_(True)
        value = loss(x, y)
        (grad,) = torch.autograd.grad(value, [x])
        losses.append(float(value.detach()))
        print("step %3d  S = %.3e  (%d Sinkhorn iterations, %.2f s)" % (step, losses[-1], loss.n_iter, time.perf_counter() - t0), flush=True)
        if step == args.steps:
            break
        with torch.no_grad():
            x = (x - args.lr * args.n * grad).detach()
        if step + 1 == middle:
            save_picture(os.path.join(args.out, "flow_middle.png"), x.numpy(), y.numpy(), "step %d" % middle)
    save_picture(os.path.join(args.out, "flow_end.png"), x.detach().numpy(), y.numpy(), "step %d" % args.steps)
    save_loss_curve(os.path.join(args.out, "loss.png"), losses)
    print("done in %.1f s; S went from %.3e to %.3e; pictures in %s/" % (
        time.perf_counter() - t_all, losses[0], losses[-1], args.out))
    return 0 if math.isfinite(losses[-1]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
