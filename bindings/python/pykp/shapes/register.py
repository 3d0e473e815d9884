"""
register.py -- registration of a source shape onto a target: find the initial
momenta p0 on control points q0 (by default the source's points) minimizing

    loss(p0) = gamma * H(q0, p0) + data_term(phi_p0(source), target)

where phi_p0 is the flow of the geodesic shot from (q0, p0) and H(q0, p0) the
deformation energy. The gradient goes through the shooting by autograd (second
derivatives of H, all libkp reductions). L-BFGS (torch, strong Wolfe line
search) by default; multi-scale runs go from coarse to fine data-term widths
(and optionally model widths), each stage starting from the previous momenta.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Callable, List, NamedTuple, Optional, Sequence

import torch

from .data import DataTerm, _check_pair
from .model import Deformation
from .shape import Shape

OPTIMIZERS = ("lbfgs", "adam", "sgd")


class Registration(NamedTuple):
    """Result of register: momenta p0 (N, D) on control_points q0, the deformed
    source, the final model (its kernel at the last scale) and the history,
    one dict per iteration: stage, iteration, loss, energy, data, seconds."""

    momenta: torch.Tensor
    control_points: torch.Tensor
    deformed: Shape
    history: List[dict]
    model: Deformation


def _check_scales(name, scales, n):
    if scales is None:
        return [None] * n
    scales = list(scales)
    if len(scales) != n:
        raise ValueError("pykp.shapes: %s has %d entries, scales has %d" % (name, len(scales), n))
    return scales


def deform(source: Shape, model: Deformation, q0: torch.Tensor, p0: torch.Tensor, on_source: bool) -> Shape:
    """The source moved by the geodesic from (q0, p0); when the control points
    are the source's own points, they are the moved points themselves."""
    if on_source:
        return source.with_points(model.shoot(q0, p0).q)
    return source.with_points(model.flow(source.points, q0, p0))


class _Objective:
    """loss(p0) and its gradient, remembering the last point so that L-BFGS
    run one iteration per step() does not evaluate the same point twice."""

    def __init__(self, source, target, model, data_term, q0, gamma, on_source):
        self.source, self.model, self.data = source, model, data_term.to_target(target)
        self.q0, self.gamma, self.on_source = q0, gamma, on_source
        self.last = None

    def __call__(self, p0: torch.Tensor):
        if self.last is not None and torch.equal(self.last[0], p0.detach()):
            _, loss, grad, parts = self.last
        else:
            with torch.enable_grad():
                e = self.model.energy(self.q0, p0)
                d = self.data(deform(self.source, self.model, self.q0, p0, self.on_source))
                loss = self.gamma * e + d
                (grad,) = torch.autograd.grad(loss, p0)
            loss, parts = loss.detach(), (float(e.detach()), float(d.detach()))
            self.last = (p0.detach().clone(), loss, grad, parts)
        p0.grad = grad.clone()
        self.parts = parts
        return loss


def _make_optimizer(name, p0, lr):
    if name == "lbfgs":
        return torch.optim.LBFGS([p0], lr=1.0 if lr is None else lr, max_iter=1, max_eval=12, history_size=20,
                                 line_search_fn="strong_wolfe")
    if lr is None:
        raise ValueError("pykp.shapes: optimizer %r needs lr" % name)
    if name == "adam":
        return torch.optim.Adam([p0], lr=lr)
    return torch.optim.SGD([p0], lr=lr)


def register(
    source: Shape,
    target: Shape,
    model: Deformation,
    data_term: DataTerm,
    optimizer: str = "lbfgs",
    gamma: float = 1.0,
    iterations: int | Sequence[int] = 50,
    scales: Optional[Sequence[float]] = None,
    model_scales: Optional[Sequence[float]] = None,
    control_points: Optional[torch.Tensor] = None,
    momenta: Optional[torch.Tensor] = None,
    lr: Optional[float] = None,
    tol: float = 1e-6,
    quiet: bool = False,
    callback: Optional[Callable[[dict], None]] = None,
    stream=None,
) -> Registration:
    """Register source onto target with an LDDMM deformation.

    Parameters
    ----------
    source, target : Shape
        Shapes of the same kind and dimension (the data term compares them).
    model : Deformation
        Kernel, integrator, steps, normalization of the deformation.
    data_term : DataTerm
        KernelNorm, Current, Varifold or SinkhornDivergence.
    optimizer : {"lbfgs", "adam", "sgd"}
        L-BFGS (strong Wolfe line search) or a first-order method (needs lr).
    gamma : float
        Weight of the deformation energy H(q0, p0) in the loss.
    iterations : int or list of int
        Iterations per stage (a list gives one count per stage).
    scales : list of float, optional
        Data-term widths, coarse to fine: one stage each.
    model_scales : list of float, optional
        Model kernel widths, one per stage (with scales, or alone).
    control_points : (N, D) tensor, optional
        q0; by default the source's points (then the deformed shape is q(1)).
    momenta : (N, D) tensor, optional
        Initial p0 (default zeros).
    lr : float, optional
        Learning rate (L-BFGS: step scale, default 1).
    tol : float
        A stage stops when the loss changes by less than tol * |loss| in an iteration.
    quiet : bool
        No progress lines (otherwise one per iteration on stream, default stderr).
    callback : callable, optional
        Called with each history entry.

    Returns
    -------
    Registration
    """
    if not isinstance(source, Shape) or not isinstance(target, Shape):
        raise TypeError("pykp.shapes: source and target must be Shapes")
    if not isinstance(model, Deformation):
        raise TypeError("pykp.shapes: model must be a Deformation, got %s" % type(model).__name__)
    if not isinstance(data_term, DataTerm):
        raise TypeError("pykp.shapes: data_term must be a DataTerm, got %s" % type(data_term).__name__)
    _check_pair(source, target, data_term.needs_cells, data_term.name)
    if optimizer not in OPTIMIZERS:
        raise ValueError("pykp.shapes: optimizer must be one of %s, got %r" % (", ".join(OPTIMIZERS), optimizer))
    if not float(gamma) >= 0:
        raise ValueError("pykp.shapes: gamma must be non-negative, got %r" % (gamma,))
    n_stages = len(scales) if scales is not None else len(model_scales) if model_scales is not None else 1
    data_scales = _check_scales("scales", scales, n_stages)
    kernel_scales = _check_scales("model_scales", model_scales, n_stages)
    iters = list(iterations) if isinstance(iterations, (list, tuple)) else [iterations] * n_stages
    if len(iters) != n_stages or any(isinstance(i, bool) or int(i) != i or i < 0 for i in iters):
        raise ValueError("pykp.shapes: iterations must be a non-negative integer or one per stage, got %r" % (iterations,))
    on_source = control_points is None
    q0 = source.points.detach() if on_source else control_points.detach()
    if q0.ndim != 2 or q0.shape[1] != source.dim or q0.dtype != source.points.dtype:
        raise ValueError("pykp.shapes: control_points must have shape (N, %d) and dtype %s"
                         % (source.dim, source.points.dtype))
    p0 = torch.zeros_like(q0) if momenta is None else momenta.detach().clone().to(q0.dtype)
    if p0.shape != q0.shape:
        raise ValueError("pykp.shapes: momenta must have shape %s, got %s" % (tuple(q0.shape), tuple(p0.shape)))
    p0.requires_grad_(True)
    stream = sys.stderr if stream is None else stream
    history: List[dict] = []
    t0 = time.perf_counter()
    for stage in range(n_stages):
        if kernel_scales[stage] is not None:
            model = model.with_kernel(model.kernel.with_sigma(kernel_scales[stage]))
        if data_scales[stage] is not None:
            data_term = data_term.with_sigma(data_scales[stage])
        objective = _Objective(source, target, model, data_term, q0, float(gamma), on_source)
        opt = _make_optimizer(optimizer, p0, lr)
        prev = None
        for it in range(int(iters[stage]) + 1):
            loss = float(objective(p0))
            entry = {"stage": stage, "iteration": it, "loss": loss, "energy": objective.parts[0],
                     "data": objective.parts[1], "seconds": time.perf_counter() - t0}
            history.append(entry)
            if not quiet:
                print("stage %d iter %3d  loss %.6e  energy %.4e  data %.4e  %7.2f s"
                      % (stage, it, loss, entry["energy"], entry["data"], entry["seconds"]), file=stream, flush=True)
            if callback is not None:
                callback(entry)
            if it == iters[stage] or (prev is not None and abs(prev - loss) <= tol * abs(loss)):
                break
            if not math.isfinite(loss):
                raise FloatingPointError("pykp.shapes: the loss became %r at iteration %d" % (loss, it))
            prev = loss
            opt.step(lambda: objective(p0))
    with torch.no_grad():
        deformed = deform(source, model, q0, p0.detach(), on_source)
    return Registration(p0.detach(), q0, deformed, history, model)
