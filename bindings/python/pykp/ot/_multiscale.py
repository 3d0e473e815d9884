"""
_multiscale.py -- two-scale Sinkhorn with kernel truncation, for D <= 3
(GeomLoss's "multiscale" backend on pykp's block-sparse reductions).

1. Both clouds are binned in cubic blocks of side `cluster_scale`, nested
   in parents of side parent_factor * cluster_scale (_cells.sort_by_cells),
   and sorted by (parent, block) so that each block and each parent is
   contiguous; a block becomes one coarse point (weighted centroid, summed
   weight). _cells.choose_scales picks both from blur and N by default.
2. The annealing runs on the coarse problem (dense: up to ~16000 blocks)
   while eps >= cluster_scale^p.
3. Jump: the coarse potentials are extrapolated to the fine points by one
   soft C-transform (f_i = damping softmin(eps, x_i, y_coarse, log b_c + g_c / eps)).
4. The annealing goes on with the fine points, each reduction restricted to
   the block pairs (k, l) whose terms can matter: for the rows i of cell k,
   the sum over cell l, sum_{j in l} b_j exp((f_i + g_j - C_ij) / eps), is
   bounded by
       s(k, l) = log b(l) + (max_{i in k} f_i + max_{j in l} g_j - min C) / eps,
   min C taken between the cells' bounding boxes. A row's sum is 1 once its
   potential is updated (balanced case). The bound is first taken between
   parents (dense, a few thousand per cloud): each row parent keeps its
   parent pairs of largest bound, leaving out those whose bounds sum to less
   than e^{-truncate} / 2; then between the blocks of the kept parent pairs
   only (a sparse list: no blocks x blocks matrix), each row block leaving
   out at most e^{-truncate} / 2 more (likewise for the rows of y; the union
   of both directions is kept). So each row leaves out at most e^{-truncate}
   of its sum, as with one level.
   The pruning is redone at the first iteration of each new temperature
   (after its soft C-transforms, on the previous ranges) and every 10
   iterations of the refinement at the final one (anneal's truncation).
5. The last extrapolation (the envelope theorem's gradient) uses the same
   block-sparse ranges, so the backward pass is block-sparse too.

GeomLoss tests its truncation (f + g - C > -truncate eps, pair by pair) on
the coarse potentials at the centroids, once; here the bound holds for every
pair of points of the cells whatever their size, and it is the sum of what is
left out that is bounded, not each term (in 3D, many small terms add up).
Blocks of side ~blur (rather than GeomLoss's fixed ~2000 cells) keep the
pairs within a few blur only, so the kept pairs per point stay bounded as N
grows, and the coarse annealing goes down to eps ~ blur^p.
"""
import math
import torch

from ._cells import (box_cost, default_cluster_scale, dense_box_cost, expand_pairs, row_keep, sort_by_cells,
                     sparse_range_fraction, sparse_ranges, sparse_row_keep)
from ._reductions import softmin
from ._sinkhorn import SinkhornResult, anneal, damping, last_step, log_weights

__all__ = ["default_cluster_scale", "jump_index", "multiscale_loop", "unsort"]


def jump_index(eps_list, cluster_scale: float, p: float) -> int:
    """The last coarse iteration (GeomLoss's rule): the iteration before the
    first temperature (from the third on) below cluster_scale^p; the last one
    when there is none (the fine problem then gets one iteration at blur^p)."""
    for i, eps in enumerate(eps_list[2:]):
        if cluster_scale**p > eps:
            return i + 1
    return len(eps_list) - 1


def _scatter(src, index, n, how):
    fill = math.inf if how == "amin" else -math.inf
    shape = (n,) + tuple(src.shape[1:])
    idx = index.view(-1, *([1] * (src.dim() - 1))).expand_as(src)
    return torch.full(shape, fill, dtype=src.dtype, device=src.device).scatter_reduce(0, idx, src, how)


class _Clouds:
    """One cloud, sorted by (parent, block) (_cells.sort_by_cells): perm (the
    sort), labels, block ranges, the coarse measure (block centroids, summed
    weights), the blocks' bounding boxes, and the same for the parents."""

    def __init__(self, w, z, scale, m):
        # w (N,), z (N, D), possibly requiring gradients; the sort is differentiable
        self.perm, lab, self.parent = sort_by_cells(z, scale, m)
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
        self.lo, self.hi = _scatter(zd, lab, nc, "amin").double(), _scatter(zd, lab, nc, "amax").double()
        npar = int(self.parent[-1]) + 1
        pc = torch.bincount(self.parent, minlength=npar)
        pe = pc.cumsum(0)
        self.children = torch.stack((pe - pc, pe), dim=1)  # [start, end) blocks of each parent
        self.p_lo, self.p_hi = _scatter(self.lo, self.parent, npar, "amin"), _scatter(self.hi, self.parent, npar, "amax")
        self.p_w = torch.zeros(npar, dtype=wd.dtype, device=wd.device).index_add_(0, self.parent, self.w_c)

    def cell_max(self, f, positive_only):
        """max of f over each block (over the points of positive weight only, -inf if none)."""
        if positive_only:
            f = torch.where(self.w.detach() > 0, f, torch.full_like(f, -math.inf))
        return _scatter(f, self.lab, self.ranges.shape[0], "amax")

    def parent_max(self, f_cell):
        """max over each parent of per-block values."""
        return _scatter(f_cell, self.parent, self.children.shape[0], "amax")


def _scores(f_max, g_max, log_mass, cmin, eps):
    """Upper bound, per cell pair, of log sum_{j in l} b_j exp((f_i + g_j - C_ij) / eps)
    for the rows i of cell k: log b(l) + (max_k f + max_l g - min C) / eps."""
    return log_mass[None] + (f_max[:, None] + g_max[None] - cmin) / eps


def _keep(u: _Clouds, v: _Clouds, u_pair, v_pair, c_par, eps, truncate, p):
    """The block pairs (k, l) to keep for the reductions between u (rows) and
    v, and v (rows) and u, as two index tensors. u_pair = (f, g): f on u, the
    soft C-transform of g on v, so that each row of u sums to 1; v_pair
    likewise for the rows of v. c_par: the cost bounds between the parents.
    The parent pairs left out of a row's parent, then the block pairs left
    out of a row's block among those of the kept parent pairs, each bound a
    part of the row's sum below e^{-truncate} / 2 (_scores, row_keep). With
    one block per parent (parent_factor 1), one dense level and budget."""
    (f, g), (g2, f2) = u_pair, v_pair
    fu, gv = u.cell_max(f, False).double(), v.cell_max(g, True).double()  # rows of u, summing over v
    gv2, fu2 = v.cell_max(g2, False).double(), u.cell_max(f2, True).double()  # rows of v, summing over u
    lw_u, lw_v = log_weights(u.w_c).double(), log_weights(v.w_c).double()
    if u.children.shape[0] == u.ranges.shape[0] and v.children.shape[0] == v.ranges.shape[0]:
        # one block per parent: one dense level, with the whole budget
        rows, cols = _scores(fu, gv, lw_v, c_par, eps), _scores(gv2, fu2, lw_u, c_par.t(), eps)
        return torch.nonzero(row_keep(rows, truncate) | row_keep(cols, truncate).t(), as_tuple=True)
    half = truncate + math.log(2)
    rows = _scores(u.parent_max(fu), v.parent_max(gv), log_weights(v.p_w).double(), c_par, eps)
    cols = _scores(v.parent_max(gv2), u.parent_max(fu2), log_weights(u.p_w).double(), c_par.t(), eps)
    k, l = expand_pairs(row_keep(rows, half) | row_keep(cols, half).t(), u.children, v.children)
    cmin = box_cost(u.lo[k], u.hi[k], v.lo[l], v.hi[l], p)
    s_rows = lw_v[l] + (fu[k] + gv[l] - cmin) / eps
    s_cols = lw_u[k] + (gv2[l] + fu2[k] - cmin) / eps
    keep = sparse_row_keep(k, s_rows, u.ranges.shape[0], half) | sparse_row_keep(l, s_cols, v.ranges.shape[0], half)
    return k[keep], l[keep]


class _Truncation:
    """anneal's truncation: the block-sparse ranges of the fine reductions at eps."""

    def __init__(self, cx: _Clouds, cy: _Clouds, p, truncate, debias, verbose):
        self.cx, self.cy, self.p, self.truncate, self.verbose = cx, cy, p, truncate, verbose
        self.c_xy = dense_box_cost(cx.p_lo, cx.p_hi, cy.p_lo, cy.p_hi, p)
        self.c_xx = dense_box_cost(cx.p_lo, cx.p_hi, cx.p_lo, cx.p_hi, p) if debias else None
        self.c_yy = dense_box_cost(cy.p_lo, cy.p_hi, cy.p_lo, cy.p_hi, p) if debias else None
        self.kept = {}

    def __call__(self, eps, pairs):
        xy, yx, xx, yy = (tuple(None if t is None else t[0] for t in pr) for pr in pairs)
        cx, cy, t, p = self.cx, self.cy, self.truncate, self.p
        out = {"xy": self._ranges("xy", cx, cy, *_keep(cx, cy, xy, yx, self.c_xy, eps, t, p))}
        if xx[0] is not None:
            out["xx"] = self._ranges("xx", cx, cx, *_keep(cx, cx, xx, xx, self.c_xx, eps, t, p))
            out["yy"] = self._ranges("yy", cy, cy, *_keep(cy, cy, yy, yy, self.c_yy, eps, t, p))
        if self.verbose:
            print("pykp.ot multiscale: eps %.3g, kept pairs %s" % (
                eps, ", ".join("%s %.2f%%" % (k, 100 * v) for k, v in self.kept.items())))
        return out

    def _ranges(self, name, u, v, k, l):
        self.kept[name] = sparse_range_fraction(u.ranges, v.ranges, k, l)
        # ranges live in host memory
        return sparse_ranges(u.ranges.cpu(), v.ranges.cpu(), k.cpu(), l.cpu())


def multiscale_loop(cost, p, a, x, b, y, eps_list, rho, cluster_scale, truncate,
                    debias=True, tol=None, max_iter=1000, verbose=False, parent_factor=1):
    """Two-scale Sinkhorn (see the module text) on one pair of clouds:
    a (1, N), x (1, N, D), b (1, M), y (1, M, D); blocks of side
    cluster_scale, parents of side parent_factor * cluster_scale.

    Returns a SinkhornResult (potentials in the caller's order, with autograd
    through the sort) with one more field, kept: the fraction of the point
    pairs kept by the last truncation, per reduction ("xy", "xx", "yy"),
    cluster_scale and parent_factor: the blocks' side and the parents' factor."""
    cx, cy = _Clouds(a[0], x[0], cluster_scale, parent_factor), _Clouds(b[0], y[0], cluster_scale, parent_factor)
    jump = jump_index(eps_list, cluster_scale, p)
    coarse, fine = eps_list[:jump + 1], eps_list[jump + 1:] or [eps_list[-1]]
    if verbose:
        print("pykp.ot multiscale: %d x %d blocks of side %.3g in %d x %d parents, %d coarse iterations down to "
              "blur %.3g, then %d fine" % (cx.ranges.shape[0], cy.ranges.shape[0], cluster_scale,
                                           cx.children.shape[0], cy.children.shape[0], len(coarse),
                                           coarse[-1] ** (1 / p), len(fine)))
    c_pots, n_coarse, _, _ = anneal(cost, cx.w_c[None], cx.z_c[None], cy.w_c[None], cy.z_c[None], coarse, rho,
                                    debias, None, max_iter)
    # the jump: one soft C-transform at the first fine temperature, which the first pruning uses
    pots = _extrapolate(cost, cx, cy, c_pots, coarse[-1], rho)
    trunc = _Truncation(cx, cy, p, truncate, debias, verbose)
    pots, n_fine, err, rng = anneal(cost, cx.w[None], cx.z[None], cy.w[None], cy.z[None], fine, rho, debias, tol,
                                    max(1, max_iter - n_coarse), init=pots, init_eps=coarse[-1], truncation=trunc)
    eps = eps_list[-1]
    f_ba, g_ab, f_aa, g_bb = last_step(cost, cx.w[None], cx.z[None], cy.w[None], cy.z[None], pots, eps, rho,
                                       debias, ranges=rng)
    f_ba, f_aa = (None if t is None else unsort(t, cx.perm) for t in (f_ba, f_aa))
    g_ab, g_bb = (None if t is None else unsort(t, cy.perm) for t in (g_ab, g_bb))
    res = SinkhornResult(f_ba, g_ab, f_aa, g_bb, eps, rho, n_coarse + n_fine, err, list(eps_list))
    res.kept, res.cluster_scale, res.parent_factor = dict(trunc.kept), cluster_scale, parent_factor
    return res


def _extrapolate(cost, cx, cy, pots, eps, rho):
    """Coarse potentials -> fine points: one damped soft C-transform, at eps,
    of the coarse potentials of the other measure (dense: N x blocks)."""
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
