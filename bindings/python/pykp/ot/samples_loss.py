"""
samples_loss.py -- SamplesLoss, GeomLoss's interface over pykp reductions.

    >>> import torch, pykp.ot
    >>> loss = pykp.ot.SamplesLoss("sinkhorn", p=2, blur=0.05)
    >>> x, y = torch.randn(1000, 3, requires_grad=True), torch.randn(2000, 3)
    >>> L = loss(x, y)                 # debiased Sinkhorn divergence, a scalar
    >>> L.backward()                   # envelope-theorem gradient: a few reductions
    >>> loss.n_iter, loss.marginal_error

Memory is O(N + M): every N x M quantity is a pykp reduction.
"""
import math
import numbers
from typing import Optional, Union

import torch

from . import _inputs
from ._kernels import hausdorff_loss, kernel_loss
from ._cells import choose_scales
from ._multiscale import multiscale_loop
from ._reductions import BUILTIN_COSTS
from ._sinkhorn import SinkhornResult, bounding_diameter, epsilon_schedule, sinkhorn_cost, sinkhorn_loop

LOSSES = ("sinkhorn", "hausdorff", "energy", "gaussian", "laplacian")
BACKENDS = ("auto", "online", "tensorized", "multiscale")


def _positive(value, name, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError("pykp.ot: %s must be a positive finite number%s, got %r" % (name, " or None" if allow_none else "", value))
    return float(value)


def nonnegative(s):
    """max(s, 0) with a straight-through gradient (differentiable to any order)."""
    return s + (s.clamp_min(0) - s).detach()


class SamplesLoss(torch.nn.Module):
    """Distances between weighted point clouds, GeomLoss's SamplesLoss on pykp.

    Parameters
    ----------
    loss : {"sinkhorn", "hausdorff", "energy", "gaussian", "laplacian"}
        "sinkhorn": (debiased) entropic optimal transport; "hausdorff": the
        weighted Hausdorff divergence; the others: kernel norms
        1/2 |a - b|_k^2 with k = -|x - y|, exp(-|x-y|^2 / 2 blur^2), exp(-|x-y| / blur).
    p : {1, 2}
        Cost C(x, y) = |x - y|^p / p for sinkhorn and hausdorff; eps = blur^p.
        With a custom `cost`, any p > 0 (it only sets eps = blur^p and the annealing).
    blur : float
        Length scale: eps = blur^p (sinkhorn, hausdorff), kernel width otherwise.
    reach : float or None
        Unbalanced transport: KL marginal penalty of strength rho = reach^p. None: balanced.
    diameter : float or None
        Starting scale of the annealing; None: the bounding box diagonal of x and y.
    scaling : float in (0, 1)
        Ratio between successive blur values of the annealing (closer to 1: more
        iterations, more accurate).
    truncate : float or None
        Multiscale backend: each row of a reduction leaves out the cell pairs
        whose bounded shares of its sum total at most e^{-truncate} (docs/ot.md).
        None: no truncation (every cell pair kept; the coarse stage still
        runs). Ignored by the other backends.
    cost : str or None
        A libkp formula in the variables X (on x_i) and Y (on y_j), e.g.
        "SqDist(X,Y)" or "Norm2(X-Y)*Norm2(X-Y)*Norm2(X-Y)/IntCst(3)" (GeomLoss's
        KeOps cost strings). None: |X - Y|^p / p.
    debias : bool
        Sinkhorn divergence S = OT(a,b) - OT(a,a)/2 - OT(b,b)/2 (True, reported
        as >= 0) or the raw entropic cost OT(a, b) (False).
    potentials : bool
        Return the dual potentials (F on x, G on y) instead of the value.
    cluster_scale : float or None
        Multiscale backend: side of the cubic blocks that cluster the points
        (the coarse points and the blocks of the fine reductions). None: s0 / m
        with s0 GeomLoss's diameter / (sqrt(D) 2000^(1/D)) (about 2000 cells
        in the bounding box) and m >= 1 the largest integer such that the
        blocks stay >= blur, hold >= 32 points on average and number <= 16384
        per cloud (on the unit sphere with blur = 0.05: s0 / 2 at N = 10^5,
        s0 / 3 at N = 10^6). The pruning also uses parents of side >= s0.
        A ValueError with backend="online" or "tensorized", which have no cells.
    backend : {"auto", "online", "tensorized", "multiscale"}
        "online" (and "tensorized", accepted for compatibility): dense
        reductions, O(N + M) memory. "multiscale": two-scale Sinkhorn with
        block-sparse reductions (loss="sinkhorn", p = 2, built-in cost,
        D <= 3, one pair of clouds; docs/ot.md). "auto": multiscale when
        loss="sinkhorn", p = 2, built-in cost, D <= 3, one pair of clouds and
        N M > 10^8 (GeomLoss's rule), online otherwise.
    tol : float or None
        Keep iterating at the final eps until the L1 marginal error is below tol.
        None: GeomLoss's fixed annealing schedule only.
    max_iter : int
        Cap on the number of iterations when tol is given.

    Calls: loss(x, y) (uniform weights) or loss(a, x, b, y); x (N, D) or
    (B, N, D), a (N,) or (B, N); torch tensors or NumPy arrays (NumPy in,
    NumPy out), float32 or float64. Returns a scalar (or (B,)) tensor, or the
    pair (F, G) of shapes (N,), (M,) (or batched) when potentials=True.
    After a sinkhorn call, `n_iter`, `marginal_error` and `last_result` describe
    the solve.
    """

    def __init__(
        self,
        loss: str = "sinkhorn",
        p: Union[int, float] = 2,
        blur: float = 0.05,
        reach: Optional[float] = None,
        diameter: Optional[float] = None,
        scaling: float = 0.5,
        truncate: Optional[float] = 5,
        cost: Optional[str] = None,
        kernel=None,
        cluster_scale: Optional[float] = None,
        debias: bool = True,
        potentials: bool = False,
        verbose: bool = False,
        backend: str = "auto",
        tol: Optional[float] = None,
        max_iter: int = 1000,
    ):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError("pykp.ot: loss must be one of %s, got %r" % (", ".join(LOSSES), loss))
        if cost is not None and not isinstance(cost, str):
            raise TypeError(
                "pykp.ot: cost must be a formula string in X and Y (e.g. 'SqDist(X,Y)'), got %s; "
                "a Python function of the N x M matrix would defeat O(N + M) memory" % type(cost).__name__
            )
        if cost is not None and not cost.strip():
            raise ValueError("pykp.ot: cost must be a non-empty formula string")
        if cost is None and (isinstance(p, bool) or p not in (1, 2)):
            raise ValueError("pykp.ot: p must be 1 or 2 (or give a cost formula), got %r" % (p,))
        self.p = float(_positive(p, "p")) if cost is not None else int(p)
        self.blur = _positive(blur, "blur")
        self.reach = _positive(reach, "reach", allow_none=True)
        self.diameter = _positive(diameter, "diameter", allow_none=True)
        if isinstance(scaling, bool) or not isinstance(scaling, numbers.Real) or not 0 < scaling < 1:
            raise ValueError("pykp.ot: scaling must be in (0, 1), got %r" % (scaling,))
        self.scaling = float(scaling)
        self.truncate = _positive(truncate, "truncate", allow_none=True)
        if kernel is not None:
            raise ValueError("pykp.ot: kernel (a Python function) is not supported; use loss='gaussian', 'laplacian' or 'energy'")
        self.cluster_scale = _positive(cluster_scale, "cluster_scale", allow_none=True)
        for name, v in (("debias", debias), ("potentials", potentials), ("verbose", verbose)):
            if not isinstance(v, bool):
                raise ValueError("pykp.ot: %s must be True or False, got %r" % (name, v))
        if backend not in BACKENDS:
            raise ValueError("pykp.ot: backend must be one of %s, got %r" % (", ".join(BACKENDS), backend))
        if cluster_scale is not None and backend in ("online", "tensorized"):
            raise ValueError("pykp.ot: cluster_scale sets the cells of the multiscale backend; backend=%r has "
                             "none (use backend='multiscale' or 'auto')" % backend)
        self.tol = _positive(tol, "tol", allow_none=True)
        if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 1:
            raise ValueError("pykp.ot: max_iter must be a positive integer, got %r" % (max_iter,))
        self.max_iter = int(max_iter)
        if backend == "multiscale" and (loss != "sinkhorn" or cost is not None or p != 2):
            raise ValueError("pykp.ot: backend='multiscale' needs loss='sinkhorn', p=2 and the built-in cost (cost=None), "
                             "got loss=%r, p=%r, cost=%r (with p=1 the kernel's exponential tails make the truncation "
                             "drop too much; use backend='online')" % (loss, p, cost))
        self.loss, self.cost, self.debias, self.potentials = loss, cost, debias, potentials
        self.verbose, self.backend = verbose, backend
        self.last_result: Optional[SinkhornResult] = None
        self.n_iter = 0
        self.marginal_error = math.nan

    @property
    def cost_formula(self) -> str:
        """The libkp formula of the cost in X, Y."""
        return self.cost if self.cost is not None else BUILTIN_COSTS[self.p]

    @property
    def rho(self) -> Optional[float]:
        return None if self.reach is None else self.reach**self.p

    def extra_repr(self):
        return "loss=%r, p=%r, blur=%r, reach=%r, scaling=%r, debias=%r" % (
            self.loss, self.p, self.blur, self.reach, self.scaling, self.debias)

    def _diameter(self, x, y, a=None, b=None) -> float:
        diameter = self.diameter if self.diameter is not None else bounding_diameter(x, y, a, b)
        return max(diameter, self.blur)  # a single point: no annealing

    def epsilon_schedule(self, x, y, a=None, b=None):
        """The temperatures of the annealing for clouds x, y (weights a, b)."""
        return epsilon_schedule(self.p, self._diameter(x, y, a, b), self.blur, self.scaling)

    def uses_multiscale(self, x, y) -> bool:
        """Whether a sinkhorn call on batched clouds x (B, N, D), y (B, M, D)
        runs the multiscale backend (see `backend`); raises ValueError when
        backend='multiscale' cannot take them."""
        B, N, D = x.shape
        M = y.shape[-2]
        if self.backend == "multiscale":
            if B != 1:
                raise ValueError("pykp.ot: backend='multiscale' takes one pair of clouds, got a batch of %d; "
                                 "use backend='online' (or a loop over the batch)" % B)
            if D > 3:
                raise ValueError("pykp.ot: backend='multiscale' needs points of dimension D <= 3 (cubic cells), got D = %d; "
                                 "use backend='online'" % D)
            return True
        return (self.backend == "auto" and self.loss == "sinkhorn" and self.cost is None and self.p == 2
                and B == 1 and D <= 3 and N * M > 10**8)

    def solve(self, a, x, b, y, debias=None) -> SinkhornResult:
        """Runs the Sinkhorn solver on batched tensors (B, N), (B, N, D), ... (no checks)."""
        debias = self.debias if debias is None else debias
        diameter = self._diameter(x, y, a, b)
        eps_list = epsilon_schedule(self.p, diameter, self.blur, self.scaling)
        if self.uses_multiscale(x, y):
            scale, factor = choose_scales(x, y, self.blur, diameter, self.cluster_scale)
            truncate = math.inf if self.truncate is None else self.truncate
            res = multiscale_loop(self.cost_formula, self.p, a, x, b, y, eps_list, self.rho, scale, truncate,
                                  debias=debias, tol=self.tol, max_iter=self.max_iter, verbose=self.verbose,
                                  parent_factor=factor)
        else:
            res = sinkhorn_loop(self.cost_formula, a, x, b, y, eps_list, self.rho,
                                debias=debias, tol=self.tol, max_iter=self.max_iter)
        self.last_result, self.n_iter, self.marginal_error = res, res.n_iter, res.marginal_error
        if self.verbose:
            print("pykp.ot: %d Sinkhorn iterations, eps %.3g, marginal error %.3g" % (res.n_iter, res.eps, res.marginal_error))
        return res

    def forward(self, *args):
        inp = _inputs.process(args)
        a, x, b, y = inp.a, inp.x, inp.b, inp.y
        if self.loss == "sinkhorn":
            res = self.solve(a, x, b, y)
            if self.potentials:
                if self.debias:
                    F, G = res.f_ba - res.f_aa, res.g_ab - res.g_bb
                else:
                    F, G = res.f_ba, res.g_ab
                return _inputs.output(F, inp), _inputs.output(G, inp)
            value = sinkhorn_cost(res, a, b, self.debias)
            if self.debias:
                value = nonnegative(value)
        elif self.loss == "hausdorff":
            out = hausdorff_loss(self.cost_formula, a, x, b, y, self.blur**self.p, self.rho, self.potentials)
            if self.potentials:
                return _inputs.output(out[0], inp), _inputs.output(out[1], inp)
            value = out
        else:
            out = kernel_loss(self.loss, a, x, b, y, self.blur, self.potentials)
            if self.potentials:
                return _inputs.output(out[0], inp), _inputs.output(out[1], inp)
            value = nonnegative(out)
        return _inputs.output(value, inp)

    def plan(self, *args):
        """The entropic transport plan of OT_eps(a, b) (not debiased), as a
        TransportPlan: pi_ij = a_i b_j exp((f_i + g_j - C(x_i, y_j)) / eps),
        applied and reduced by pykp without forming it."""
        from .plan import TransportPlan

        inp = _inputs.process(args)
        with torch.no_grad():
            res = self.solve(inp.a.detach(), inp.x.detach(), inp.b.detach(), inp.y.detach(), debias=False)
        return TransportPlan(self.cost_formula, res, inp)
