"""
plan.py -- the entropic transport plan, never formed.

    pi_ij = exp(u_i + v_j - C(x_i, y_j) / eps),  u = log a + f / eps,  v = log b + g / eps,

for the potentials (f, g) of OT_eps(a, b). Applying pi or its transpose is one
Sum reduction; its barycentric map one SumSoftMaxWeight reduction; `lazy` gives
it as a pykp LazyTensor for further symbolic work.
"""
import torch

import pykp

from . import _inputs
from ._reductions import BUILTIN_COSTS, barycentric, plan_apply
from ._sinkhorn import SinkhornResult, log_weights


class TransportPlan:
    """The plan of OT_eps(a, b) between (a, x) and (b, y); see SamplesLoss.plan.

    Attributes: f, g (potentials on x and y, shapes (N,), (M,) or batched),
    eps, n_iter, marginal_error. NumPy inputs give NumPy outputs (`lazy` is a
    LazyTensor over torch tensors in either case).
    """

    def __init__(self, cost: str, res: SinkhornResult, inp: "_inputs.Inputs"):
        self.cost, self._inp = cost, inp
        self.eps, self.n_iter, self.marginal_error = res.eps, res.n_iter, res.marginal_error
        self._x, self._y = inp.x.detach(), inp.y.detach()
        self._f, self._g = res.f_ba.detach(), res.g_ab.detach()
        self._u = log_weights(inp.a.detach()) + self._f / self.eps
        self._v = log_weights(inp.b.detach()) + self._g / self.eps
        self.f, self.g = _inputs.output(self._f, inp), _inputs.output(self._g, inp)

    def _vec(self, w, n, name):
        w, _ = _inputs._as_tensor(w, name)
        w = w.to(self._x.dtype)
        if w.dim() != (2 if self._inp.batched else 1):
            raise ValueError("pykp.ot: %s must have shape %s, got %s" % (name, ("(B, %d)" if self._inp.batched else "(%d,)") % n, tuple(w.shape)))
        if w.shape[-1] != n:
            raise ValueError("pykp.ot: %s must have %d entries along its last axis, got %d" % (name, n, w.shape[-1]))
        return w if self._inp.batched else w.unsqueeze(0)

    def matvec(self, w):
        """(pi w)_i = sum_j pi_ij w_j, for w of shape (M,) (or (B, M))."""
        w = self._vec(w, self._y.shape[-2], "w")
        return _inputs.output(plan_apply(self.cost, self.eps, self._x, self._y, self._u, self._v, w, 1), self._inp)

    def rmatvec(self, w):
        """(pi^T w)_j = sum_i pi_ij w_i, for w of shape (N,) (or (B, N))."""
        w = self._vec(w, self._x.shape[-2], "w")
        return _inputs.output(plan_apply(self.cost, self.eps, self._x, self._y, self._u, self._v, w, 0), self._inp)

    def marginals(self):
        """(pi 1, pi^T 1): the plan's marginals on x and on y."""
        one_y = torch.ones_like(self._v)
        one_x = torch.ones_like(self._u)
        r = plan_apply(self.cost, self.eps, self._x, self._y, self._u, self._v, one_y, 1)
        c = plan_apply(self.cost, self.eps, self._x, self._y, self._u, self._v, one_x, 0)
        return _inputs.output(r, self._inp), _inputs.output(c, self._inp)

    def barycentric_map(self):
        """T(x_i) = sum_j pi_ij y_j / sum_j pi_ij, shape (N, D) (or batched):
        where the plan sends each x_i on average."""
        return _inputs.output(barycentric(self.cost, self.eps, self._x, self._y, self._v), self._inp)

    @property
    def lazy(self) -> pykp.LazyTensor:
        """The plan as a pykp LazyTensor of shape (N, M) (or (B, N, M)), for the
        built-in costs |x - y|^p / p: reduce it, multiply it, take its argmax."""
        if self.cost not in BUILTIN_COSTS.values():
            raise ValueError("pykp.ot: the lazy plan is built for p = 1, 2 costs; with a custom cost use matvec / rmatvec")
        b = self._inp.batched
        x, y, u, v = self._x, self._y, self._u, self._v
        if not b:
            x, y, u, v = x[0], y[0], u[0], v[0]
        x_i = pykp.LazyTensor(x.unsqueeze(-2))
        y_j = pykp.LazyTensor(y.unsqueeze(-3))
        u_i = pykp.LazyTensor(u[..., :, None, None])
        v_j = pykp.LazyTensor(v[..., None, :, None])
        d2 = ((x_i - y_j) ** 2).sum(-1)
        c = d2 / 2 if self.cost == BUILTIN_COSTS[2] else d2.sqrt()
        return (u_i + v_j - c / self.eps).exp()
