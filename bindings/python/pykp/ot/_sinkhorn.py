"""
_sinkhorn.py -- the symmetric log-domain Sinkhorn loop with epsilon-scaling.

Notation (GeomLoss's): a, b weights on the points x, y; C(x, y) the cost;
eps the temperature; rho = reach^p the strength of the KL marginal penalty
(None: balanced); damping = 1 / (1 + eps / rho). The soft C-transform

    softmin(eps, x, y, h)_i = -eps log sum_j exp(h_j - C(x_i, y_j) / eps)

is one LogSumExp reduction of pykp. One iteration updates, in parallel and
averaged with the previous values ("symmetric" Sinkhorn),

    f_ba <- damping softmin(eps, x, y, log b + g_ab / eps)     OT(a, b), on x
    g_ab <- damping softmin(eps, y, x, log a + f_ba / eps)     OT(a, b), on y
    f_aa, g_bb likewise for OT(a, a), OT(b, b) when debiasing,

while eps decreases from diameter^p to blur^p by factors scaling^p.

Gradients: the loop runs without autograd; one last "extrapolation" step
recomputes the potentials from the detached ones, with autograd on. By the
envelope theorem its gradient is the gradient of the converged OT cost, so a
backward pass costs the gradient reductions of that step only, and no memory
per iteration. Following GeomLoss, the second point cloud of each cost is
detached (C(x, y.detach()) for f_ba, C(y, x.detach()) for g_ab) and the
log-weights enter detached, so that d OT / d a = f and no term is counted twice.
"""
import math
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch

from ..cluster import swap_axes
from ._reductions import softmin


def damping(eps: float, rho: Optional[float]) -> float:
    """1 / (1 + eps / rho): the factor of the unbalanced soft C-transform (1 when balanced)."""
    return 1.0 if rho is None else 1.0 / (1.0 + eps / rho)


def epsilon_schedule(p: float, diameter: float, blur: float, scaling: float) -> List[float]:
    """Temperatures of the annealing: diameter^p, then eps divided by
    scaling^-p at each step while it stays above blur^p, then blur^p.

    The first and second values are both diameter^p (GeomLoss's schedule: the
    initialisation and the first iteration at the largest scale)."""
    logs = np.arange(p * math.log(diameter), p * math.log(blur), p * math.log(scaling))
    return [diameter**p] + [float(math.exp(e)) for e in logs] + [blur**p]


def bounding_diameter(x: torch.Tensor, y: torch.Tensor, a=None, b=None) -> float:
    """Diagonal of the box holding every point of x and y (all batches; only
    the points of positive weight when a, b are given): an upper bound on
    |x_i - y_j|, the starting scale of the annealing."""
    d = x.shape[-1]
    xs, ys = x.detach().reshape(-1, d), y.detach().reshape(-1, d)
    if a is not None:
        xs = xs[a.detach().reshape(-1) > 0]
    if b is not None:
        ys = ys[b.detach().reshape(-1) > 0]
    pts = torch.cat((xs, ys))
    return float((pts.max(dim=0)[0] - pts.min(dim=0)[0]).norm())


def log_weights(a: torch.Tensor) -> torch.Tensor:
    """log a, with -inf where a == 0: such points drop out of every LogSumExp
    (a large negative stand-in would come back once g / eps grows as large)."""
    return torch.where(a > 0, a.clamp_min(torch.finfo(a.dtype).tiny).log(), torch.full_like(a, -math.inf))


@dataclass
class SinkhornResult:
    """What the solver returns.

    f_ba, g_ab: potentials of OT(a, b) on x and y (with autograd, from the last
        extrapolation step); f_aa, g_bb: those of OT(a, a), OT(b, b) (None when
        not debiasing). eps: the final temperature; rho: reach^p or None.
    n_iter: Sinkhorn iterations run (one iteration = 2 soft C-transforms, 4
        when debiasing), not counting the initialisation and the last
        extrapolation. marginal_error: the largest, over batches and over the
        two sides, L1 distance between the marginals of the plan of the last
        iterate and their targets (a, b when balanced; a e^{-f/rho}, b e^{-g/rho}
        otherwise), measured before the last extrapolation.
    """

    f_ba: torch.Tensor
    g_ab: torch.Tensor
    f_aa: Optional[torch.Tensor]
    g_bb: Optional[torch.Tensor]
    eps: float
    rho: Optional[float]
    n_iter: int
    marginal_error: float
    eps_list: List[float]


def _marginal_error(a, f, f_new, eps, rho):
    """L1 gap, per batch, between a e^{(f - f_new)/eps} (the plan's marginal on
    this side: f_new is the undamped soft C-transform of the other potential)
    and its target a (balanced) or a e^{-f/rho}."""
    m = a * torch.exp((f - f_new) / eps)
    target = a if rho is None else a * torch.exp(-f / rho)
    diff = torch.where(a > 0, (m - target).abs(), torch.zeros_like(a))
    return diff.sum(-1)


def anneal(cost, a, x, b, y, eps_list, rho, debias=True, tol=None, max_iter=1000, init=None, init_eps=None,
           truncation=None):
    """The annealed symmetric Sinkhorn loop, without autograd.

    a: (..., N), x: (..., N, D), b: (..., M), y: (..., M, D) tensors (used
    detached). eps_list: the annealing temperatures. tol: when given,
    iterations continue at the final temperature until the marginal error is
    below tol (at most max_iter iterations in all). init: potentials
    (f_ba, g_ab, f_aa, g_bb) to start from; None: one soft C-transform of the
    log-weights at eps_list[0]. init_eps: the temperature init was computed
    at (default eps_list[0]). truncation: None (dense reductions) or a
    function (eps, pairs) -> {"xy": ranges, "xx": ranges, "yy": ranges}
    whose block-sparse ranges (i = the first cloud) the reductions then use;
    pairs = ((f, g), (g', f'), (f_aa', f_aa), (g_bb', g_bb)) holds, for the
    rows of each reduction, an undamped soft C-transform and the potential it
    was computed from (the rows' sums are then 1). It is called once with
    init at init_eps, then at the first iteration of each new temperature,
    after its soft C-transforms (computed with the previous ranges), and
    every 10 iterations of the refinement at the final temperature (tol).
    Returns ((f_ba, g_ab, f_aa, g_bb), n_iter, marginal_error, ranges), the
    ranges of the last temperature (None without truncation)."""
    a_log, b_log = log_weights(a.detach()), log_weights(b.detach())
    xd, yd = x.detach(), y.detach()
    err = math.inf
    rng = {"xy": None, "yx": None, "xx": None, "yy": None}
    rng_eps = None

    def sm(key, eps, u, v, h):
        return softmin(cost, eps, u, v, h, ranges=rng[key])

    def prune(eps, pairs):
        out = dict(truncation(eps, pairs))
        out["yx"] = swap_axes(out["xy"])
        return out

    with torch.no_grad():
        if init is None:
            eps = eps_list[0]
            dmp = damping(eps, rho)
            f_ba = dmp * softmin(cost, eps, xd, yd, b_log)
            g_ab = dmp * softmin(cost, eps, yd, xd, a_log)
            f_aa = dmp * softmin(cost, eps, xd, xd, a_log) if debias else None
            g_bb = dmp * softmin(cost, eps, yd, yd, b_log) if debias else None
        else:
            f_ba, g_ab, f_aa, g_bb = init
            if truncation is not None:
                rng_eps = eps_list[0] if init_eps is None else init_eps
                rng = prune(rng_eps, ((f_ba, g_ab), (g_ab, f_ba), (f_aa, f_aa), (g_bb, g_bb)))
        n_iter = 0
        schedule = list(eps_list)
        while n_iter < len(schedule) or (tol is not None and err > tol and n_iter < max_iter):
            annealing = n_iter < len(schedule)
            eps = schedule[min(n_iter, len(schedule) - 1)]
            dmp = damping(eps, rho)
            ft = sm("xy", eps, xd, yd, b_log + g_ab / eps)
            if annealing:  # symmetric: both updates from the same iterate, averaged
                gt = sm("yx", eps, yd, xd, a_log + f_ba / eps)
            else:  # refining at the final eps: alternate (about twice as fast as averaging)
                f_old, f_ba = f_ba, dmp * ft
                gt = sm("yx", eps, yd, xd, a_log + f_ba / eps)
            if n_iter >= len(schedule) - 1:  # at the final temperature: measure the marginals
                ea = _marginal_error(a.detach(), f_ba if annealing else f_old, ft, eps, rho)
                eb = _marginal_error(b.detach(), g_ab, gt, eps, rho)
                err = float(torch.maximum(ea, eb).max())
            if debias:  # OT(a, a), OT(b, b): averaging converges fast on these symmetric problems
                ft_aa = sm("xx", eps, xd, xd, a_log + f_aa / eps)
                gt_bb = sm("yy", eps, yd, yd, b_log + g_bb / eps)
            refresh = not annealing and (n_iter - len(schedule)) % 10 == 9  # potentials still move: follow them
            if truncation is not None and (eps != rng_eps or refresh):  # prune the blocks for this temperature
                pairs = ((ft, g_ab), (gt, f_ba if annealing else f_old), (ft_aa, f_aa), (gt_bb, g_bb)) if debias \
                    else ((ft, g_ab), (gt, f_ba if annealing else f_old), (None, None), (None, None))
                rng, rng_eps = prune(eps, pairs), eps
            if debias:
                f_aa, g_bb = 0.5 * (f_aa + dmp * ft_aa), 0.5 * (g_bb + dmp * gt_bb)
            if annealing:
                f_ba, g_ab = 0.5 * (f_ba + dmp * ft), 0.5 * (g_ab + dmp * gt)
            else:
                g_ab = dmp * gt
            n_iter += 1
    return (f_ba, g_ab, f_aa, g_bb), n_iter, err, (rng if truncation is not None else None)


def last_step(cost, a, x, b, y, pots, eps, rho, debias=True, ranges=None):
    """The last extrapolation, with autograd (the envelope theorem's gradient):
    the soft C-transforms of the detached potentials `pots` at eps, with the
    positions x, y as given (they may require gradients). ranges: None or the
    dict of anneal's truncation. Returns (f_ba, g_ab, f_aa, g_bb)."""
    f_ba, g_ab, f_aa, g_bb = pots
    rng = ranges if ranges is not None else {}
    a_log, b_log = log_weights(a.detach()), log_weights(b.detach())
    xd, yd = x.detach(), y.detach()
    dmp = damping(eps, rho)
    f_new = dmp * softmin(cost, eps, x, yd, b_log + g_ab / eps, ranges=rng.get("xy"))
    g_new = dmp * softmin(cost, eps, y, xd, a_log + f_ba / eps, ranges=rng.get("yx"))
    if debias:
        f_aa = dmp * softmin(cost, eps, x, xd, a_log + f_aa / eps, ranges=rng.get("xx"))
        g_bb = dmp * softmin(cost, eps, y, yd, b_log + g_bb / eps, ranges=rng.get("yy"))
    return f_new, g_new, f_aa, g_bb


def sinkhorn_loop(cost, a, x, b, y, eps_list, rho, debias=True, tol=None, max_iter=1000):
    """Runs the annealed symmetric Sinkhorn loop and the last extrapolation.

    a: (..., N), x: (..., N, D), b: (..., M), y: (..., M, D) tensors (x, y,
    a, b may require gradients). eps_list: the annealing temperatures. tol:
    when given, iterations continue at the final temperature until the
    marginal error is below tol (at most max_iter iterations in all).
    Returns a SinkhornResult."""
    pots, n_iter, err, _ = anneal(cost, a, x, b, y, eps_list, rho, debias, tol, max_iter)
    f_new, g_new, f_aa, g_bb = last_step(cost, a, x, b, y, pots, eps_list[-1], rho, debias)
    return SinkhornResult(f_new, g_new, f_aa, g_bb, eps_list[-1], rho, n_iter, err, list(eps_list))


class _UnbalancedWeight(torch.autograd.Function):
    """t -> (rho + eps/2) t, whose derivative is taken as rho + eps.

    The unbalanced cost is (rho + eps/2) <a, 1 - e^{-f/rho}> + ... (up to a
    constant in the masses), while d f / d x through the last damped step
    carries a factor damping = rho / (rho + eps) that the exact envelope
    gradient sum_j pi_ij grad C(x_i, y_j) does not have: scaling the backward
    by rho + eps instead of rho + eps/2 gives that exact gradient (Sejourne et
    al. 2019, Prop. 12). GeomLoss states the same rule but, as an nn.Module
    method, its backward is never called."""

    @staticmethod
    def forward(ctx, t, fwd, bwd):
        ctx.bwd = bwd
        return fwd * t

    @staticmethod
    def backward(ctx, g):
        return ctx.bwd * g, None, None


def _dot(a, f):
    """sum_i a_i f_i per batch, with 0 * (anything) = 0 for zero weights."""
    return torch.where(a > 0, a * f, torch.zeros_like(f)).sum(-1)


def sinkhorn_cost(res: SinkhornResult, a, b, debias=True):
    """The Sinkhorn cost from the potentials (GeomLoss's formulas).

    Balanced: OT = <a, f_ba> + <b, g_ab>; debiased S = <a, f_ba - f_aa> +
    <b, g_ab - g_bb>. Unbalanced (rho): the exponentiated potentials scaled
    by rho + eps/2, e.g. OT = (rho + eps/2) (<a, 1 - e^{-f_ba/rho}> + <b, 1 - e^{-g_ab/rho}>),
    with the exact position gradient (see _UnbalancedWeight)."""
    rho, eps = res.rho, res.eps
    if rho is None:
        if debias:
            return _dot(a, res.f_ba - res.f_aa) + _dot(b, res.g_ab - res.g_bb)
        return _dot(a, res.f_ba) + _dot(b, res.g_ab)

    def w(t):
        return _UnbalancedWeight.apply(t, rho + eps / 2, rho + eps)

    def mass_term(wt, f_ab, f_self):
        # zero in value; its gradient w.r.t. the weights completes the exact one (see below)
        e = torch.exp(-f_ab.detach() / rho)
        if f_self is not None:
            e = e - torch.exp(-f_self.detach() / rho)
        e = torch.where(wt.detach() > 0, e, torch.zeros_like(e))
        return -0.5 * eps * ((wt - wt.detach()) * e).sum(-1)

    # The exact derivative w.r.t. a_i of (rho + eps/2) <a, 1 - e^{-f/rho}> (the cost up to
    # eps/2 (m(a) + m(b)) - eps m(a) m(b)) is rho (1 - e^{-f_i/rho}) + eps/2 - eps e^{-f_i/rho}:
    # autograd, with f independent of a, gives eps/2 e^{-f_i/rho} too much; mass_term removes it.
    if debias:
        value = _dot(a, w(torch.exp(-res.f_aa / rho) - torch.exp(-res.f_ba / rho))) + _dot(
            b, w(torch.exp(-res.g_bb / rho) - torch.exp(-res.g_ab / rho))
        )
        return value + mass_term(a, res.f_ba, res.f_aa) + mass_term(b, res.g_ab, res.g_bb)
    value = _dot(a, w(1 - torch.exp(-res.f_ba / rho))) + _dot(b, w(1 - torch.exp(-res.g_ab / rho)))
    return value + mass_term(a, res.f_ba, None) + mass_term(b, res.g_ab, None)
