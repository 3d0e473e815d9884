"""
cluster.py -- KeOps' clustering helpers for block-sparse reductions.

Points are binned (grid_cluster), sorted so that each cluster is contiguous
(sort_clusters), described by [start, end) index ranges and centroids
(cluster_ranges, cluster_ranges_centroids); a boolean cluster-to-cluster mask
becomes the 6-tuple `ranges` argument of a reduction (from_matrix), whose i
and j halves swap_axes exchanges.

    lab = grid_cluster(x, 0.1)
    x_sorted, lab = sort_clusters(x, lab)
    ranges_x, centroids_x, _ = cluster_ranges_centroids(x_sorted, lab)

Every function takes NumPy arrays or torch tensors and returns the same kind,
with KeOps' return types: labels are int32 tensors / int64 NumPy arrays;
ranges are int64; from_matrix's slices are int32 tensors / int64 NumPy arrays.
"""
from typing import Any, Sequence, Tuple, Union

import numpy as np

from ._arrays import torch
from ._lib import KpTypeError, KpValueError

__all__ = [
    "grid_cluster",
    "sort_clusters",
    "cluster_ranges",
    "cluster_centroids",
    "cluster_ranges_centroids",
    "from_matrix",
    "swap_axes",
]


def _is_tensor(a) -> bool:
    return torch is not None and isinstance(a, torch.Tensor)


def _check_array(a, name: str):
    if not (_is_tensor(a) or isinstance(a, np.ndarray)):
        raise KpTypeError("pykp.cluster: %s must be a NumPy array or a torch tensor, got %s" % (name, type(a).__name__))


def _check_points(x, name: str = "x"):
    _check_array(x, name)
    if x.ndim != 2:
        raise KpValueError("pykp.cluster: %s must have shape (M, D), got %s" % (name, tuple(x.shape)))


def _check_labels(lab, m=None, name: str = "lab"):
    _check_array(lab, name)
    integral = (not lab.dtype.is_floating_point and not lab.dtype.is_complex and lab.dtype != torch.bool) if _is_tensor(lab) \
        else np.issubdtype(lab.dtype, np.integer)
    if not integral:
        raise KpTypeError("pykp.cluster: %s must hold integer labels, got dtype %s" % (name, lab.dtype))
    if lab.ndim != 1 and not (lab.ndim == 2 and lab.shape[1] == 1):
        raise KpValueError("pykp.cluster: %s must have shape (M,), got %s" % (name, tuple(lab.shape)))
    if m is not None and lab.shape[0] != m:
        raise KpValueError("pykp.cluster: %s has %d labels for %d points" % (name, lab.shape[0], m))
    if lab.shape[0] and int(lab.min()) < 0:
        raise KpValueError("pykp.cluster: %s must hold labels >= 0, got %d" % (name, int(lab.min())))


def grid_cluster(x, size):
    """Labels of the cubic cells ("voxels") of side `size` that hold the points.

    Parameters
    ----------
    x : (M, D) array or tensor
        Points.
    size : float or (D,) array
        Side of the cells (per dimension for an array); > 0.

    Returns
    -------
    (M,) labels: int32 tensor (torch) or int64 array (NumPy), in [0, C) with C
    the number of non-empty cells. Two points share a label iff they lie in the
    same cell; labels follow the lexicographic order of the cells' integer
    coordinates (the last dimension varying fastest; KeOps packs
    the coordinates into one integer, which limits it to D <= 3 and 1024 cells
    per dimension: here any D and any number of cells). Cells are counted from
    the smallest coordinates of the cloud for tensors (KeOps' torch version)
    and from the origin for NumPy arrays (KeOps' NumPy version).
    """
    _check_points(x)
    if x.shape[0] == 0:
        raise KpValueError("pykp.cluster: grid_cluster needs at least one point")
    s = np.asarray(size.detach().cpu().numpy() if _is_tensor(size) else size, dtype=np.float64)
    if s.ndim > 1 or (s.ndim == 1 and s.shape[0] not in (1, x.shape[1])) or not np.all(s > 0) or not np.all(np.isfinite(s)):
        raise KpValueError("pykp.cluster: size must be a positive number or a (D,) array of them, got %r" % (size,))
    xn = x.detach().cpu().numpy() if _is_tensor(x) else np.asarray(x)
    if not np.all(np.isfinite(xn)):
        raise KpValueError("pykp.cluster: x holds NaN or Inf")
    origin = xn.min(axis=0, keepdims=True) if _is_tensor(x) else 0.0  # as KeOps' torch / NumPy versions
    cells = np.floor((xn - origin) / s).astype(np.int64)
    _, lab = np.unique(cells, axis=0, return_inverse=True)
    lab = lab.reshape(-1).astype(np.int64)
    if _is_tensor(x):
        return torch.from_numpy(lab.astype(np.int32)).to(x.device)
    return lab


def sort_clusters(x, lab):
    """Sorts points (and any arrays aligned with them) by label, so that each
    cluster is contiguous.

    Parameters
    ----------
    x : (M, ...) array, or a tuple / list of them
    lab : (M,) integer labels

    Returns
    -------
    x sorted (same container type), labels sorted. The sort is stable: points
    of one cluster keep their order.
    """
    _check_labels(lab)
    lab = lab.reshape(-1)
    if _is_tensor(lab):
        lab_sorted, perm = torch.sort(lab, stable=True)
    else:
        perm = np.argsort(lab, kind="stable")
        lab_sorted = lab[perm]
    items = x if isinstance(x, (tuple, list)) else (x,)
    for k, a in enumerate(items):
        _check_array(a, "x[%d]" % k if isinstance(x, (tuple, list)) else "x")
        if a.shape[0] != lab.shape[0]:
            raise KpValueError("pykp.cluster: x has %d rows for %d labels" % (a.shape[0], lab.shape[0]))
        if _is_tensor(a) != _is_tensor(lab):
            raise KpTypeError("pykp.cluster: x and lab must both be NumPy arrays or both torch tensors")
    sorted_items = [a[perm] for a in items]
    if isinstance(x, tuple):
        return tuple(sorted_items), lab_sorted
    if isinstance(x, list):
        return sorted_items, lab_sorted
    return sorted_items[0], lab_sorted


def _bincount(lab, weights=None, minlength=0):
    if _is_tensor(lab):
        return torch.bincount(lab.long(), weights=weights, minlength=minlength)
    return np.bincount(lab, weights=weights, minlength=minlength)


def cluster_ranges(lab, Nlab=None):
    """[start, end) indices of the clusters of sorted labels.

    Parameters
    ----------
    lab : (M,) integer labels in [0, C), sorted (see sort_clusters)
    Nlab : (C,) counts per cluster, optional (computed from lab otherwise)

    Returns
    -------
    (C, 2) int64 array or tensor: cluster k is x_sorted[ranges[k, 0]:ranges[k, 1]].
    """
    if Nlab is None:
        _check_labels(lab)
        Nlab = _bincount(lab.reshape(-1))
    if _is_tensor(Nlab):
        ends = torch.cumsum(Nlab.to(torch.int64), 0)
        return torch.stack((ends - Nlab.to(torch.int64), ends), dim=1)
    counts = np.asarray(Nlab).astype(np.int64)
    ends = np.cumsum(counts)
    return np.stack((ends - counts, ends), axis=1)


def cluster_centroids(x, lab, Nlab=None, weights=None, weights_c=None):
    """(Weighted) centroids c_k = sum_{l_i = k} w_i x_i / sum_{l_i = k} w_i.

    Parameters
    ----------
    x : (M, D) points; lab : (M,) labels in [0, C)
    Nlab : (C,) counts (recomputed if None); weights : (M,) positive weights
    (1 if None); weights_c : (C,) total weight per cluster (recomputed if None)

    Returns
    -------
    (C, D) centroids, x's dtype (NaN for a label with no point).
    """
    _check_points(x)
    _check_labels(lab, x.shape[0])
    lab = lab.reshape(-1)
    if Nlab is None:
        Nlab = _bincount(lab)
    C = Nlab.shape[0]
    if weights is None:
        wc, w = Nlab, None
    else:
        w = weights.reshape(-1)
        wc = _bincount(lab, w, C) if weights_c is None else weights_c.reshape(-1)
    if _is_tensor(x):
        c = torch.zeros((C, x.shape[1]), dtype=x.dtype, device=x.device)
        c.index_add_(0, lab.long(), x if w is None else x * w.reshape(-1, 1).to(x.dtype))
        return c / wc.reshape(-1, 1).to(x.dtype)
    xw = x if w is None else x * np.asarray(w).reshape(-1, 1)
    c = np.stack([np.bincount(lab, weights=xw[:, d], minlength=C) for d in range(x.shape[1])], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (c / np.asarray(wc, dtype=np.float64).reshape(-1, 1)).astype(x.dtype, copy=False)


def cluster_ranges_centroids(x, lab, weights=None, min_weight: float = 1e-9):
    """Ranges, centroids and total weights of the clusters of a labelled cloud.

    Parameters
    ----------
    x : (M, D) points; lab : (M,) labels in [0, C)
    weights : (M,) positive weights, optional (1 for every point if None)
    min_weight : weights below it are raised to it (torch, as KeOps; keeps
        every weighted centroid finite)

    Returns
    -------
    ranges (C, 2) int64 (as cluster_ranges: meaningful once x is sorted by
    label), centroids (C, D), weights_c (C,): the total weight of each cluster
    (the counts, as floats, without weights).
    """
    _check_points(x)
    _check_labels(lab, x.shape[0])
    lab = lab.reshape(-1)
    Nlab = _bincount(lab)
    if weights is not None:
        if weights.shape[0] != x.shape[0]:
            raise KpValueError("pykp.cluster: weights has %d entries for %d points" % (weights.shape[0], x.shape[0]))
        if _is_tensor(weights):
            weights = weights.reshape(-1).clamp(min=min_weight)
        w_c = _bincount(lab, weights.reshape(-1), Nlab.shape[0])
        return cluster_ranges(lab, Nlab), cluster_centroids(x, lab, Nlab, weights=weights, weights_c=w_c), w_c
    counts = Nlab.to(x.dtype) if _is_tensor(Nlab) else Nlab.astype(np.float64)
    return cluster_ranges(lab, Nlab), cluster_centroids(x, lab, Nlab), counts


def from_matrix(ranges_i, ranges_j, keep):
    """A block-sparse `ranges` 6-tuple from cluster ranges and a boolean mask.

    Parameters
    ----------
    ranges_i : (Ci, 2) [start, end) of the clusters of the i points
    ranges_j : (Cj, 2) [start, end) of the clusters of the j points
    keep : (Ci, Cj) boolean; keep[k, l]: pairs of i-cluster k and j-cluster l
        are computed

    Returns
    -------
    (ranges_i, slices_i, redranges_j, ranges_j, slices_j, redranges_i):
    for a reduction over j (axis 1), i-cluster k reduces over the j ranges
    redranges_j[slices_i[k-1]:slices_i[k]] (slices_i[-1] read as 0), that is
    ranges_j[l] for every l with keep[k, l], in increasing l; the last three
    are the same for a reduction over i (axis 0). NumPy: six int64 arrays;
    torch: slices are int32, the others keep the dtype of the given ranges.
    """
    for name, a in (("ranges_i", ranges_i), ("ranges_j", ranges_j), ("keep", keep)):
        _check_array(a, name)
    if ranges_i.ndim != 2 or ranges_i.shape[1] != 2 or ranges_j.ndim != 2 or ranges_j.shape[1] != 2:
        raise KpValueError("pykp.cluster: ranges_i and ranges_j must have shape (C, 2)")
    if tuple(keep.shape) != (ranges_i.shape[0], ranges_j.shape[0]):
        raise KpValueError(
            "pykp.cluster: keep must have shape (%d, %d) (clusters of i, of j), got %s"
            % (ranges_i.shape[0], ranges_j.shape[0], tuple(keep.shape))
        )
    if _is_tensor(keep):
        keep = keep.bool()
        ii, jj = torch.nonzero(keep, as_tuple=True)  # row-major: sorted by i, then j
        jt, it = torch.nonzero(keep.t(), as_tuple=True)  # sorted by j, then i
        slices_i = keep.sum(1).cumsum(0).to(torch.int32)
        slices_j = keep.sum(0).cumsum(0).to(torch.int32)
        return (ranges_i, slices_i, ranges_j[jj.to(ranges_j.device)], ranges_j, slices_j, ranges_i[it.to(ranges_i.device)])
    keep = np.asarray(keep, dtype=bool)
    ii, jj = np.nonzero(keep)
    jt, it = np.nonzero(keep.T)
    return (
        np.asarray(ranges_i).astype(np.int64),
        np.cumsum(keep.sum(1)).astype(np.int64),
        np.asarray(ranges_j)[jj].astype(np.int64),
        np.asarray(ranges_j).astype(np.int64),
        np.cumsum(keep.sum(0)).astype(np.int64),
        np.asarray(ranges_i)[it].astype(np.int64),
    )


def swap_axes(ranges):
    """The ranges of the transposed reduction: the i and j halves exchanged
    (None stays None)."""
    if ranges is None:
        return None
    if not isinstance(ranges, (tuple, list)) or len(ranges) != 6:
        raise KpValueError("pykp.cluster: ranges must be a 6-tuple (see from_matrix), got %r" % (type(ranges).__name__,))
    return (*ranges[3:6], *ranges[0:3])
