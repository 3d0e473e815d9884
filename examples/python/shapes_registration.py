"""
shapes_registration.py -- LDDMM registration of two triangle surfaces with
pykp.shapes: a sphere onto a smoothly bumped ellipsoid (or your own meshes).

Control points on a coarser sphere carry the momenta (--control-level -1:
the source's vertices); the loss is
gamma * H(q0, p0) + varifold distance(deformed source, target), minimized over
the initial momenta p0 by L-BFGS through RK4 geodesic shooting, with the
varifold width going from coarse to fine. Every kernel sum is a libkp reduction
(O(N) memory); gradients go through the shooting by autograd.

Writes into --out: before_after.png (source / target / deformed), energy.png
(loss, deformation energy and data term per iteration), source.vtk, target.vtk,
deformed.vtk, and momenta.vtk (control points with their initial momenta as
point data; in deformed.vtk when the control points are the source's vertices).

usage: python3 examples/python/shapes_registration.py [--level 4] [--out shapes_out] [--float64]
       python3 examples/python/shapes_registration.py --source a.ply --target b.vtk
Level 4 (2,562 vertices, 5,120 triangles) takes a few minutes on 2 cores.
"""
import argparse
import os
import time

import torch

from pykp import shapes


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--level", type=int, default=4, help="icosphere subdivision level of the sample surfaces "
                    "(10*4^level+2 vertices; default 4: 2562)")
    ap.add_argument("--control-level", type=int, default=None,
                    help="control points: the vertices of a sphere of this level (default: level - 1); "
                    "-1 uses the source's own vertices")
    ap.add_argument("--source", help="source mesh file (any meshio format) instead of the sphere")
    ap.add_argument("--target", help="target mesh file instead of the bumped ellipsoid")
    ap.add_argument("--sigma", type=float, default=0.5, help="width of the deformation kernel (Gaussian)")
    ap.add_argument("--data-scales", type=float, nargs="+", default=[0.5, 0.2],
                    help="varifold kernel widths, coarse to fine (one stage each)")
    ap.add_argument("--gamma", type=float, default=1e-3, help="weight of the deformation energy")
    ap.add_argument("--steps", type=int, default=10, help="time steps of the shooting")
    ap.add_argument("--integrator", default="ralston", choices=shapes.INTEGRATORS)
    ap.add_argument("--iterations", type=int, default=25, help="L-BFGS iterations per stage")
    ap.add_argument("--float64", action="store_true", help="compute in float64 (default float32)")
    ap.add_argument("--out", default="shapes_out", help="output folder")
    ap.add_argument("--quiet", action="store_true", help="no per-iteration progress")
    return ap.parse_args()


def load(args, dtype):
    if args.source or args.target:
        if not (args.source and args.target):
            raise SystemExit("give both --source and --target")
        return shapes.read_mesh(args.source, dtype), shapes.read_mesh(args.target, dtype)
    sphere = shapes.icosphere(args.level, dtype=dtype)
    # the target's mesh is the sphere's, turned: the varifold does not use
    # vertex correspondences, and the turned mesh has none with the source
    c, s = 0.6, 0.8
    turn = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)
    target = shapes.bumped_ellipsoid(sphere.with_points(sphere.points @ turn.T))
    return sphere, target


def draw(ax, shape, title, color):
    P = shape.points.detach().double().numpy()
    ax.plot_trisurf(P[:, 0], P[:, 1], P[:, 2], triangles=shape.cells.numpy(), color=color,
                    linewidth=0.1, edgecolor="k", alpha=0.9)
    ax.set_title(title)
    ax.view_init(elev=8, azim=-60)  # from the side: the bump on top shows in profile
    ax.set_box_aspect((1, 1, 1))
    lim = 1.5
    ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_zlim(-lim, lim)
    ax.set_axis_off()


def pictures(out, source, target, deformed, history):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 4))
    for k, (s, t, c) in enumerate([(source, "source", "tab:blue"), (target, "target", "tab:orange"),
                                   (deformed, "deformed source", "tab:green")]):
        draw(fig.add_subplot(1, 3, k + 1, projection="3d"), s, t, c)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "before_after.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    it = range(len(history))
    for key in ("loss", "data", "energy"):
        ax.semilogy(it, [h[key] if h[key] > 0 else float("nan") for h in history], label=key)
    for k in range(1, len(history)):
        if history[k]["stage"] != history[k - 1]["stage"]:
            ax.axvline(k, color="gray", lw=0.5)
    ax.set_xlabel("iteration (all stages)")
    ax.legend()
    ax.set_title("registration: loss = gamma * energy + data")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "energy.png"), dpi=110)
    plt.close(fig)


def main():
    args = parse()
    dtype = torch.float64 if args.float64 else torch.float32
    os.makedirs(args.out, exist_ok=True)
    source, target = load(args, dtype)
    print("source %s\ntarget %s" % (source, target))
    model = shapes.Deformation(shapes.GaussianKernel(args.sigma), integrator=args.integrator, steps=args.steps)
    data = shapes.Varifold(shapes.GaussianKernel(args.data_scales[0]))
    level = args.level - 1 if args.control_level is None else args.control_level
    if level < 0 or args.source:
        control = None  # the source's vertices
    else:
        # a sphere of control points through the source's bounding box
        P = source.points
        center, radius = (P.max(0).values + P.min(0).values) / 2, (P.max(0).values - P.min(0).values).max() / 2
        control = shapes.icosphere(level, dtype=dtype).points * radius + center
    print("control points: %d" % (len(source.points) if control is None else len(control)))
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    res = shapes.register(source, target, model, data, gamma=args.gamma, iterations=args.iterations,
                          scales=args.data_scales, control_points=control, quiet=args.quiet)
    cpu = time.process_time() - cpu0
    seconds = time.perf_counter() - t0
    fine = data.with_sigma(args.data_scales[-1])
    d0, d1 = float(fine(source, target)), float(fine(res.deformed, target))
    print("registration: %d iterations in %.1f s (%.1f s of CPU time); varifold distance^2 at sigma=%g: %.4e -> %.4e (%.0fx lower); "
          "energy %.4e" % (len(res.history), seconds, cpu, args.data_scales[-1], d0, d1, d0 / max(d1, 1e-300),
                           res.history[-1]["energy"]))
    shapes.write_mesh(os.path.join(args.out, "source.vtk"), source)
    shapes.write_mesh(os.path.join(args.out, "target.vtk"), target)
    on_source = control is None
    shapes.write_mesh(os.path.join(args.out, "deformed.vtk"), res.deformed,
                      point_data={"momenta": res.momenta} if on_source else None)
    if not on_source:  # the control points and their initial momenta
        shapes.write_mesh(os.path.join(args.out, "momenta.vtk"), shapes.Shape(res.control_points),
                          point_data={"momenta": res.momenta})
    pictures(args.out, source, target, res.deformed, res.history)
    print("wrote %s/{before_after.png, energy.png, source.vtk, target.vtk, deformed.vtk}" % args.out)


if __name__ == "__main__":
    main()
