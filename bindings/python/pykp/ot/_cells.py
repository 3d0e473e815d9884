"""
_cells.py -- the two levels of cells of the multiscale backend and the
sparse pruning of cell pairs.

Blocks: cubic cells of side s (the coarse points of the annealing and the
blocks of the fine reductions). Parents: cubic cells of side m s (m >= 1 an
integer, on the same grid, so that each parent is a union of blocks). Points
are sorted by (parent, block), so that the blocks of a parent are contiguous.

The pruning bounds the part of each row's sum held by a pair of cells (see
_multiscale.py) in two steps: dense on the parents (a few thousand of them:
parents x parents matrices), then on the block pairs of the kept parent pairs
only, listed sparsely (no blocks x blocks matrix). Each step leaves out at
most half of e^{-truncate} of a row's sum: a block pair is dropped either with
its parent pair (a bound over the whole parent pair) or by the block rule.
"""
import math

import numpy as np
import torch

# the builtin costs' lower bound between two boxes at distance d: d^p / p
BOX_COST = {1: lambda d2: d2.sqrt(), 2: lambda d2: 0.5 * d2}

MIN_POINTS = 32  # the automatic blocks hold at least this many points on average (libkp's tiles)
MAX_BLOCKS = 16384  # and are at most this many per cloud (the coarse problem is dense)


def default_cluster_scale(diameter: float, dim: int) -> float:
    """GeomLoss's rule: cells of side diameter / (sqrt(D) 2000^(1/D)), about
    2000 cells in the bounding box of the clouds."""
    return diameter / (math.sqrt(dim) * 2000 ** (1.0 / dim))


def _count_cells(zn: np.ndarray, side: float) -> int:
    c = np.floor((zn - zn.min(axis=0)) / side).astype(np.int64)
    n = c.max(axis=0) + 1
    if float(np.prod(n.astype(np.float64))) < 2.0**62:  # pack the coordinates into one integer
        key = np.zeros(c.shape[0], dtype=np.int64)
        for d in range(c.shape[1]):
            key = key * n[d] + c[:, d]
        return int(np.unique(key).shape[0])
    return int(np.unique(c, axis=0).shape[0])


def choose_scales(x: torch.Tensor, y: torch.Tensor, blur: float, diameter: float, cluster_scale=None):
    """(s, m): the side of the blocks and the parents' factor.

    Parents have side m s >= GeomLoss's default s0 (default_cluster_scale), so
    that there are at most a few thousand of them. cluster_scale given: s =
    cluster_scale, m = max(1, floor(s0 / s)). None: s = s0 / m with the
    largest m such that s >= blur, the blocks hold MIN_POINTS points or more
    on average and there are at most MAX_BLOCKS per cloud. Cells of side ~
    blur keep the pairs within a few blur of each other only, so that the
    kept pairs per point stay bounded as N grows."""
    dim = x.shape[-1]
    s0 = default_cluster_scale(diameter, dim)
    if cluster_scale is not None:
        return float(cluster_scale), max(1, int(s0 / cluster_scale))
    xn, yn = (t.detach().reshape(-1, dim).cpu().double().numpy() for t in (x, y))
    m = 1
    while s0 / (m + 1) >= blur:
        cx, cy = _count_cells(xn, s0 / (m + 1)), _count_cells(yn, s0 / (m + 1))
        if (xn.shape[0] + yn.shape[0]) / (cx + cy) < MIN_POINTS or max(cx, cy) > MAX_BLOCKS:
            break
        m += 1
    return s0 / m, m


def sort_by_cells(z: torch.Tensor, side: float, m: int):
    """Points z (N, D) into blocks of side `side` and parents of side m side.

    Returns (perm, lab, parent): the sort of the points by (parent, block)
    (lexicographic order of the parents' integer coordinates, then of the
    blocks'), the block label of each sorted point (in [0, C), nondecreasing)
    and the parent of each block ((C,), in [0, P), nondecreasing)."""
    zn = z.detach().cpu().double().numpy()
    c1 = np.floor((zn - zn.min(axis=0)) / side).astype(np.int64)
    c0 = c1 // m
    dim = zn.shape[1]
    keys = tuple(c1[:, d] for d in reversed(range(dim))) + tuple(c0[:, d] for d in reversed(range(dim)))
    order = np.lexsort(keys)  # the last key is the primary one
    c1, c0 = c1[order], c0[order]
    new_block = np.concatenate(([False], np.any(c1[1:] != c1[:-1], axis=1)))
    new_parent = np.concatenate(([False], np.any(c0[1:] != c0[:-1], axis=1)))
    lab = np.cumsum(new_block)
    plab = np.cumsum(new_parent)
    parent = plab[np.concatenate(([True], new_block[1:]))]
    dev = z.device
    return (torch.from_numpy(order).to(dev), torch.from_numpy(lab).to(dev), torch.from_numpy(parent).to(dev))


def box_cost(lo_u, hi_u, lo_v, hi_v, p):
    """Lower bound of the cost between boxes (given in float64), elementwise
    over the leading axes (broadcast)."""
    gap = (lo_v - hi_u).clamp_min(0) + (lo_u - hi_v).clamp_min(0)
    return BOX_COST[p]((gap * gap).sum(-1))


def dense_box_cost(lo_u, hi_u, lo_v, hi_v, p, rows=512):
    """(Cu, Cv) lower bounds of the cost between the boxes, by row blocks."""
    return torch.cat([box_cost(lo_u[s:s + rows, None], hi_u[s:s + rows, None], lo_v[None], hi_v[None], p)
                      for s in range(0, lo_u.shape[0], rows)])


def row_keep(s, truncate):
    """Per row of the dense bounds s (log of each cell pair's share of the
    row's sum): keeps the largest, leaving out the smallest ones as long as
    their total stays below e^{-truncate}. The best of each row is always kept."""
    if math.isinf(truncate):
        return torch.ones_like(s, dtype=torch.bool)
    s = torch.where(torch.isnan(s), math.inf, s)  # inf - inf (a row with no kept pair): keep
    srt, _ = s.sort(dim=1)
    tail = torch.logcumsumexp(srt, dim=1)  # log of the sum of the n smallest
    n_drop = (tail < -truncate).sum(1, keepdim=True).clamp_max(s.shape[1] - 1)
    thr = torch.where(n_drop > 0, srt.gather(1, (n_drop - 1).clamp_min(0)), torch.full_like(n_drop, -math.inf, dtype=s.dtype))
    return s > thr


def sparse_row_keep(rows, s, n_rows, truncate, step=0.2, n_bins=80):
    """row_keep on a sparse list of cell pairs: rows (E,) the row of each
    pair, s (E,) its bound; returns the (E,) keep flags. Without a sort: the
    bounds below -truncate fall in bins of width `step` (the last one takes
    everything below), and each row drops its lowest bins as long as their
    exact total stays below e^{-truncate}, keeping at least its best pair."""
    if math.isinf(truncate) or s.numel() == 0:
        return torch.ones_like(s, dtype=torch.bool)
    s = torch.where(torch.isnan(s), math.inf, s)  # inf - inf (a row with no kept pair): keep
    low = s < -truncate  # a single pair above e^{-truncate} exceeds the budget: kept
    b = torch.floor((-truncate - s) / step).clamp(0, n_bins - 1).long()
    hist = torch.zeros(n_rows * n_bins, dtype=s.dtype, device=s.device)
    hist.index_add_(0, (rows * n_bins + b)[low], s[low].exp())
    # total of the bins from each one down to the lowest
    tail = hist.view(n_rows, n_bins).flip(1).cumsum(1).flip(1).reshape(-1)
    drop = low & (tail[rows * n_bins + b] < math.exp(-truncate))
    best = torch.full((n_rows,), -math.inf, dtype=s.dtype, device=s.device).scatter_reduce(0, rows, s, "amax")
    return ~drop | (s >= best[rows])


def expand_pairs(keep0, children_u, children_v):
    """The block pairs (k, l) of the parent pairs kept in the (Pu, Pv) mask keep0:
    children_u (Pu, 2), children_v (Pv, 2) the [start, end) blocks of each parent."""
    pu, pv = torch.nonzero(keep0, as_tuple=True)
    nu = children_u[pu, 1] - children_u[pu, 0]
    nv = children_v[pv, 1] - children_v[pv, 0]
    cnt = nu * nv
    pair = torch.repeat_interleave(torch.arange(cnt.shape[0], device=cnt.device), cnt)
    off = torch.arange(pair.shape[0], device=cnt.device) - (torch.cumsum(cnt, 0) - cnt)[pair]
    k = children_u[pu, 0][pair] + torch.div(off, nv[pair], rounding_mode="floor")
    l = children_v[pv, 0][pair] + off % nv[pair]
    return k, l


def sparse_ranges(ranges_u, ranges_v, k, l):
    """The ranges 6-tuple of pykp.cluster.from_matrix for the kept block pairs
    (k, l) (i = u, j = v), without the (Cu, Cv) mask: the pairs sorted by
    row, then by column."""
    cu, cv = ranges_u.shape[0], ranges_v.shape[0]
    by_row = torch.argsort(k * cv + l)
    by_col = torch.argsort(l * cu + k)
    slices_u = torch.cumsum(torch.bincount(k, minlength=cu), 0).to(torch.int32)
    slices_v = torch.cumsum(torch.bincount(l, minlength=cv), 0).to(torch.int32)
    return (ranges_u, slices_u, ranges_v[l[by_row]], ranges_v, slices_v, ranges_u[k[by_col]])


def sparse_range_fraction(ranges_u, ranges_v, k, l) -> float:
    """The fraction of the point pairs that the block pairs (k, l) hold."""
    nu, nv = ranges_u[:, 1] - ranges_u[:, 0], ranges_v[:, 1] - ranges_v[:, 0]
    return float((nu[k].double() * nv[l].double()).sum()) / (float(nu.sum()) * float(nv.sum()))
