"""
_multiscale.py -- two-scale Sinkhorn with kernel truncation, for D <= 3
(GeomLoss's "multiscale" backend on pykp's block-sparse reductions).

1. Both clouds are binned in cubic cells of side `cluster_scale`
   (pykp.cluster.grid_cluster) and sorted so that each cell is contiguous;
   a cell becomes one coarse point (weighted centroid, summed weight).
2. The annealing runs on the coarse problem (dense: a few thousand cells)
   while eps >= cluster_scale^p.
3. Jump: the coarse potentials are extrapolated to the fine points by one
   soft C-transform (f_i = damping softmin(eps, x_i, y_coarse, log b_c + g_c / eps)).
4. The annealing goes on with the fine points, each reduction restricted to
   the cell pairs (k, l) whose terms can matter: for the rows i of cell k,
   the sum over cell l, sum_{j in l} b_j exp((f_i + g_j - C_ij) / eps), is
   bounded by
       s(k, l) = log b(l) + (max_{i in k} f_i + max_{j in l} g_j - min C) / eps,
   min C taken between the cells' bounding boxes. A row's sum is 1 once its
   potential is updated (balanced case): each row cell keeps its cell pairs
   of largest bound, leaving out those whose bounds sum to less than
   e^{-truncate} (likewise for the rows of y).
   The pruning is redone at the first iteration of each new temperature
   (after its soft C-transforms, on the previous ranges) and every 10
   iterations of the refinement at the final one (anneal's truncation).
5. The last extrapolation (the envelope theorem's gradient) uses the same
   block-sparse ranges, so the backward pass is block-sparse too.

GeomLoss tests its truncation (f + g - C > -truncate eps, pair by pair) on
the coarse potentials at the centroids, once; here the bound holds for every
pair of points of the cells whatever their size, and it is the sum of what is
left out that is bounded, not each term (in 3D, many small terms add up).
"""
import math
import torch

from ..cluster import from_matrix, grid_cluster
from ._reductions import softmin
from ._sinkhorn import SinkhornResult, anneal, damping, last_step, log_weights

# the builtin costs' lower bound between two boxes at distance d: d^p / p
_BOX_COST = {1: lambda d2: d2.sqrt(), 2: lambda d2: 0.5 * d2}


def default_cluster_scale(diameter: float, dim: int) -> float:
    """GeomLoss's rule: cells of side diameter / (sqrt(D) 2000^(1/D)), about
    2000 cells in the bounding box of the clouds."""
    return diameter / (math.sqrt(dim) * 2000 ** (1.0 / dim))


def jump_index(eps_list, cluster_scale: float, p: float) -> int:
    """The last coarse iteration (GeomLoss's rule): the iteration before the
    first temperature (from the third on) below cluster_scale^p; the last one
    when there is none (the fine problem then gets one iteration at blur^p)."""
    for i, eps in enumerate(eps_list[2:]):
        if cluster_scale**p > eps:
            return i + 1
    return len(eps_list) - 1


class _Clouds:
    """One cloud, sorted by cell: perm (the sort), labels, cell ranges, the
    coarse measure (centroids, summed weights) and the cells' bounding boxes."""

    def __init__(self, w, z, scale):
        # w (N,), z (N, D), possibly requiring gradients; the sort is differentiable
        lab = grid_cluster(z.detach(), scale).long()
        lab, self.perm = torch.sort(lab, stable=True)
        self.w, self.z = w[self.perm], z[self.perm]
        self.lab = lab
        zd, wd = self.z.detach(), self.w.detach()
        nc = int(lab[-1]) + 1
        counts = torch.bincount(lab, minlength=nc)
        ends = counts.cumsum(0)
        self.ranges = torch.stack((ends - counts, ends), dim=1)
        self.w_c = torch.zeros(nc, dtype=wd.dtype, device=wd.device).index_add_(0, lab, wd)
        # centroids weighted by w (by 1 in empty-weight cells: they stay finite)
        ww = torch.where(self.w_c[lab] > 0, wd, torch.ones_like(wd))
        s = torch.zeros(nc, dtype=wd.dtype, device=wd.device).index_add_(0, lab, ww)
        self.z_c = torch.zeros(nc, zd.shape[1], dtype=zd.dtype, device=zd.device).index_add_(0, lab, zd * ww[:, None]) / s[:, None]
        idx = lab[:, None].expand_as(zd)
        self.lo = torch.full((nc, zd.shape[1]), math.inf, dtype=zd.dtype, device=zd.device).scatter_reduce(0, idx, zd, "amin")
        self.hi = torch.full((nc, zd.shape[1]), -math.inf, dtype=zd.dtype, device=zd.device).scatter_reduce(0, idx, zd, "amax")

    def cell_max(self, f, positive_only):
        """max of f over each cell (over the points of positive weight only, -inf if none)."""
        if positive_only:
            f = torch.where(self.w.detach() > 0, f, torch.full_like(f, -math.inf))
        out = torch.full((self.ranges.shape[0],), -math.inf, dtype=f.dtype, device=f.device)
        return out.scatter_reduce(0, self.lab, f, "amax")


def _box_cost(u: _Clouds, v: _Clouds, p, rows=512):
    """(Cu, Cv) lower bound of the cost between the cells' boxes, in float64 (by row blocks)."""
    out = []
    for s in range(0, u.lo.shape[0], rows):
        lo, hi = u.lo[s:s + rows, None].double(), u.hi[s:s + rows, None].double()
        gap = (v.lo[None].double() - hi).clamp_min(0) + (lo - v.hi[None].double()).clamp_min(0)
        out.append(_BOX_COST[p]((gap * gap).sum(-1)))
    return torch.cat(out)


def _scores(f_max, g_max, log_mass, cmin, eps):
    """Upper bound, per cell pair, of log sum_{j in l} b_j exp((f_i + g_j - C_ij) / eps)
    for the rows i of cell k: log b(l) + (max_k f + max_l g - min C) / eps."""
    return log_mass[None] + (f_max[:, None] + g_max[None] - cmin) / eps


def _row_keep(s, truncate):
    """Per row of the bounds s (log of each cell pair's share of the row's
    sum): keeps the largest, leaving out the smallest ones as long as their
    total stays below e^{-truncate}. The best of each row is always kept."""
    srt, _ = s.sort(dim=1)
    tail = torch.logcumsumexp(srt, dim=1)  # log of the sum of the n smallest
    n_drop = (tail < -truncate).sum(1, keepdim=True).clamp_max(s.shape[1] - 1)
    thr = torch.where(n_drop > 0, srt.gather(1, (n_drop - 1).clamp_min(0)), torch.full_like(n_drop, -math.inf, dtype=s.dtype))
    return s > thr


def _keep(u: _Clouds, v: _Clouds, u_pair, v_pair, cmin, eps, truncate):
    """The cell pairs to keep for the reductions between u (rows) and v, and
    v (rows) and u. u_pair = (f, g): f on u, the soft C-transform of g on v,
    so that each row of u sums to 1; v_pair likewise for the rows of v. The
    cell pairs left out of each row cell bound a part of it below
    e^{-truncate} (_scores, _row_keep)."""
    (f, g), (g2, f2) = u_pair, v_pair
    rows = _scores(u.cell_max(f, False).double(), v.cell_max(g, True).double(),
                   log_weights(v.w_c).double(), cmin, eps)  # rows of u, summing over v
    cols = _scores(v.cell_max(g2, False).double(), u.cell_max(f2, True).double(),
                   log_weights(u.w_c).double(), cmin.t(), eps)  # rows of v, summing over u
    return _row_keep(rows, truncate) | _row_keep(cols, truncate).t()


class _Truncation:
    """anneal's truncation: the block-sparse ranges of the fine reductions at eps."""

    def __init__(self, cx: _Clouds, cy: _Clouds, p, truncate, debias, verbose):
        self.cx, self.cy, self.truncate, self.verbose = cx, cy, truncate, verbose
        self.c_xy = _box_cost(cx, cy, p)
        self.c_xx = _box_cost(cx, cx, p) if debias else None
        self.c_yy = _box_cost(cy, cy, p) if debias else None
        self.kept = {}

    def __call__(self, eps, pairs):
        xy, yx, xx, yy = (tuple(None if t is None else t[0] for t in pr) for pr in pairs)
        cx, cy, t = self.cx, self.cy, self.truncate
        out = {"xy": self._ranges("xy", cx, cy, _keep(cx, cy, xy, yx, self.c_xy, eps, t))}
        if xx[0] is not None:
            out["xx"] = self._ranges("xx", cx, cx, _keep(cx, cx, xx, xx, self.c_xx, eps, t))
            out["yy"] = self._ranges("yy", cy, cy, _keep(cy, cy, yy, yy, self.c_yy, eps, t))
        if self.verbose:
            print("pykp.ot multiscale: eps %.3g, kept pairs %s" % (
                eps, ", ".join("%s %.2f%%" % (k, 100 * v) for k, v in self.kept.items())))
        return out

    def _ranges(self, name, u, v, keep):
        nu, nv = u.ranges[:, 1] - u.ranges[:, 0], v.ranges[:, 1] - v.ranges[:, 0]
        self.kept[name] = float((nu[:, None] * nv[None] * keep).sum()) / float(nu.sum() * nv.sum())
        return from_matrix(u.ranges.cpu(), v.ranges.cpu(), keep.cpu())  # ranges live in host memory


def multiscale_loop(cost, p, a, x, b, y, eps_list, rho, cluster_scale, truncate,
                    debias=True, tol=None, max_iter=1000, verbose=False):
    """Two-scale Sinkhorn (see the module text) on one pair of clouds:
    a (1, N), x (1, N, D), b (1, M), y (1, M, D).

    Returns a SinkhornResult (potentials in the caller's order, with autograd
    through the sort) with one more field, kept: the fraction of the point
    pairs kept by the last truncation, per reduction ("xy", "xx", "yy")."""
    cx, cy = _Clouds(a[0], x[0], cluster_scale), _Clouds(b[0], y[0], cluster_scale)
    jump = jump_index(eps_list, cluster_scale, p)
    coarse, fine = eps_list[:jump + 1], eps_list[jump + 1:] or [eps_list[-1]]
    if verbose:
        print("pykp.ot multiscale: %d x %d cells of side %.3g, %d coarse iterations down to blur %.3g, then %d fine"
              % (cx.ranges.shape[0], cy.ranges.shape[0], cluster_scale, len(coarse), coarse[-1] ** (1 / p), len(fine)))
    c_pots, n_coarse, _, _ = anneal(cost, cx.w_c[None], cx.z_c[None], cy.w_c[None], cy.z_c[None], coarse, rho,
                                    debias, None, max_iter)
    pots = _extrapolate(cost, cx, cy, c_pots, coarse[-1], rho)
    trunc = _Truncation(cx, cy, p, truncate, debias, verbose)
    # the first pruning uses the extrapolated potentials at the jump's temperature
    pots, n_fine, err, rng = anneal(cost, cx.w[None], cx.z[None], cy.w[None], cy.z[None], fine, rho, debias, tol,
                                    max(1, max_iter - n_coarse), init=pots, init_eps=coarse[-1], truncation=trunc)
    eps = eps_list[-1]
    f_ba, g_ab, f_aa, g_bb = last_step(cost, cx.w[None], cx.z[None], cy.w[None], cy.z[None], pots, eps, rho,
                                       debias, ranges=rng)
    f_ba, f_aa = (None if t is None else unsort(t, cx.perm) for t in (f_ba, f_aa))
    g_ab, g_bb = (None if t is None else unsort(t, cy.perm) for t in (g_ab, g_bb))
    res = SinkhornResult(f_ba, g_ab, f_aa, g_bb, eps, rho, n_coarse + n_fine, err, list(eps_list))
    res.kept = dict(trunc.kept)
    return res


def _extrapolate(cost, cx, cy, pots, eps, rho):
    """Coarse potentials -> fine points: one damped soft C-transform of the
    coarse potentials of the other measure (dense: N x cells)."""
    f_ba, g_ab, f_aa, g_bb = pots
    dmp = damping(eps, rho)
    la, lb = log_weights(cx.w_c)[None], log_weights(cy.w_c)[None]
    xs, ys, xc, yc = cx.z.detach()[None], cy.z.detach()[None], cx.z_c[None], cy.z_c[None]
    with torch.no_grad():
        f = dmp * softmin(cost, eps, xs, yc, lb + g_ab / eps)
        g = dmp * softmin(cost, eps, ys, xc, la + f_ba / eps)
        faa = dmp * softmin(cost, eps, xs, xc, la + f_aa / eps) if f_aa is not None else None
        gbb = dmp * softmin(cost, eps, ys, yc, lb + g_bb / eps) if g_bb is not None else None
    return f, g, faa, gbb


def unsort(t: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """The values t (sorted order, last axis) back in the caller's order."""
    return t[..., torch.argsort(perm)]
