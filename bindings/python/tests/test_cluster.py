"""pykp.cluster against brute-force definitions and KeOps' documented examples,
for NumPy arrays and torch tensors; return types; bad arguments."""
import itertools

import numpy as np
import pytest

import pykp
from pykp import cluster as pc

torch = pytest.importorskip("torch")

KINDS = ["numpy", "torch"]


def mk(kind, a, dtype=None):
    a = np.asarray(a, dtype=dtype)
    return torch.from_numpy(a) if kind == "torch" else a


def npy(a):
    return a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


@pytest.mark.parametrize("kind", KINDS)
def test_keops_examples(kind):
    x = mk(kind, [[0.0], [0.1], [0.9], [0.05], [0.5]], np.float32)
    lab = pc.grid_cluster(x, 0.2)
    assert npy(lab).tolist() == [0, 0, 2, 0, 1]
    assert lab.dtype == (torch.int32 if kind == "torch" else np.int64)

    x = mk(kind, [[0.0], [5.0], [0.4], [0.3], [2.0]], np.float32)
    lab = mk(kind, [0, 2, 0, 0, 1], np.int32)
    xs, ls = pc.sort_clusters(x, lab)
    assert npy(xs).ravel().tolist() == pytest.approx([0.0, 0.4, 0.3, 2.0, 5.0])
    assert npy(ls).tolist() == [0, 0, 0, 1, 2]
    r = pc.cluster_ranges(ls)
    assert npy(r).tolist() == [[0, 3], [3, 4], [4, 5]]
    assert r.dtype == (torch.int64 if kind == "torch" else np.int64)

    x = mk(kind, [[0.0], [0.5], [1.0], [2.0], [3.0]], np.float32)
    lab = mk(kind, [0, 0, 1, 1, 1], np.int64)
    ranges, cent, wc = pc.cluster_ranges_centroids(x, lab)
    assert npy(ranges).tolist() == [[0, 2], [2, 5]]
    assert npy(cent).ravel() == pytest.approx([0.25, 2.0])
    assert npy(wc) == pytest.approx([2.0, 3.0])
    w = mk(kind, [1.0, 0.5, 1.0, 1.0, 10.0], np.float32)
    ranges, cent, wc = pc.cluster_ranges_centroids(x, lab, weights=w)
    assert npy(cent).ravel() == pytest.approx([1 / 6, 2.75], rel=1e-6)
    assert npy(wc) == pytest.approx([1.5, 12.0])

    x = mk(kind, [[0.0], [1.0], [4.0], [5.0], [6.0]])
    lab = mk(kind, [0, 0, 1, 1, 1])
    w = mk(kind, [0.5, 0.5, 2.0, 1.0, 1.0])
    assert npy(pc.cluster_centroids(x, lab, weights=w)).ravel() == pytest.approx([0.5, 4.75])

    r_i = mk(kind, [[2, 5], [7, 12]], np.int32)
    r_j = mk(kind, [[1, 4], [4, 9], [20, 30]], np.int32)
    keep = mk(kind, [[True, True, False], [False, True, False]])
    ri, si, rrj, rj, sj, rri = pc.from_matrix(r_i, r_j, keep)
    assert npy(si).tolist() == [2, 3]
    assert npy(rrj).tolist() == [[1, 4], [4, 9], [4, 9]]
    assert npy(sj).tolist() == [1, 3, 3]
    assert npy(rri).tolist() == [[2, 5], [2, 5], [7, 12]]
    assert npy(ri).tolist() == [[2, 5], [7, 12]] and npy(rj).tolist() == npy(r_j).tolist()
    if kind == "torch":
        assert si.dtype == torch.int32 and rrj.dtype == torch.int32
    else:
        assert all(a.dtype == np.int64 for a in (ri, si, rrj, rj, sj, rri))
    assert pc.swap_axes((ri, si, rrj, rj, sj, rri))[0] is rj
    assert pc.swap_axes(None) is None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("D", [1, 2, 3, 5])
def test_grid_cluster_brute_force(kind, D):
    rng = np.random.default_rng(D)
    x = rng.uniform(-1, 2, size=(300, D))
    size = 0.7 if D < 5 else rng.uniform(0.8, 1.5, size=D)
    lab = npy(pc.grid_cluster(mk(kind, x), size))
    origin = x.min(0) if kind == "torch" else 0.0
    cells = [tuple(c) for c in np.floor((x - origin) / size).astype(int)]
    order = sorted(set(cells))
    assert lab.tolist() == [order.index(c) for c in cells]  # compact, lexicographic, a partition by cell


def test_grid_cluster_many_cells():
    # more than 1024 cells along one axis: KeOps' packed labels would collide
    x = np.stack([np.arange(3000) * 1.0, np.zeros(3000)], axis=1)
    lab = pc.grid_cluster(x, 1.0)
    assert len(np.unique(lab)) == 3000 and (np.diff(lab) == 1).all()


@pytest.mark.parametrize("kind", KINDS)
def test_pipeline_brute_force(kind):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(500, 3))
    w = rng.uniform(0.1, 2, size=500)
    lab = pc.grid_cluster(mk(kind, x), 0.25)
    (xs, ws), ls = pc.sort_clusters((mk(kind, x), mk(kind, w)), lab)
    xs, ws, ls = npy(xs), npy(ws), npy(ls)
    assert (np.diff(ls) >= 0).all()
    # each row moved with its label and weight
    assert sorted(map(tuple, xs)) == sorted(map(tuple, x))
    ranges, cent, wc = pc.cluster_ranges_centroids(mk(kind, xs), mk(kind, ls), weights=mk(kind, ws))
    ranges, cent, wc = npy(ranges), npy(cent), npy(wc)
    C = ls.max() + 1
    assert ranges.shape == (C, 2)
    for k in range(C):
        idx = np.nonzero(ls == k)[0]
        assert ranges[k].tolist() == [idx[0], idx[-1] + 1]
        assert wc[k] == pytest.approx(ws[idx].sum())
        np.testing.assert_allclose(cent[k], (ws[idx, None] * xs[idx]).sum(0) / ws[idx].sum(), rtol=1e-12)
    # a list keeps its type
    out, _ = pc.sort_clusters([mk(kind, x)], lab)
    assert isinstance(out, list)


@pytest.mark.parametrize("kind", KINDS)
def test_from_matrix_brute_force(kind):
    rng = np.random.default_rng(1)
    ci, cj = 7, 9
    ends_i, ends_j = np.cumsum(rng.integers(1, 5, ci)), np.cumsum(rng.integers(1, 5, cj))
    r_i = np.stack([ends_i - np.diff(np.r_[0, ends_i]), ends_i], 1)
    r_j = np.stack([ends_j - np.diff(np.r_[0, ends_j]), ends_j], 1)
    keep = rng.uniform(size=(ci, cj)) < 0.4
    keep[2] = False  # an i-cluster with no j-cluster
    keep[:, 4] = False
    ri, si, rrj, rj, sj, rri = map(npy, pc.from_matrix(mk(kind, r_i), mk(kind, r_j), mk(kind, keep)))
    for k in range(ci):
        lo = 0 if k == 0 else si[k - 1]
        assert rrj[lo : si[k]].tolist() == [r_j[l].tolist() for l in range(cj) if keep[k, l]]
    for l in range(cj):
        lo = 0 if l == 0 else sj[l - 1]
        assert rri[lo : sj[l]].tolist() == [r_i[k].tolist() for k in range(ci) if keep[k, l]]
    # the kept pairs (i, j) are exactly those of the mask
    pairs = {(i, j) for k in range(ci) for lo, hi in [(0 if k == 0 else si[k - 1], si[k])]
             for a, b in rrj[lo:hi] for i in range(*r_i[k]) for j in range(a, b)}
    brute = {(i, j) for k, l in itertools.product(range(ci), range(cj)) if keep[k, l]
             for i in range(*r_i[k]) for j in range(*r_j[l])}
    assert pairs == brute


def test_bad_arguments():
    x = np.zeros((4, 2))
    with pytest.raises(TypeError, match="x must be"):
        pc.grid_cluster([[0.0]], 1.0)
    with pytest.raises(ValueError, match="shape"):
        pc.grid_cluster(np.zeros(4), 1.0)
    with pytest.raises(ValueError, match="size"):
        pc.grid_cluster(x, 0.0)
    with pytest.raises(ValueError, match="size"):
        pc.grid_cluster(x, np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        pc.grid_cluster(np.array([[np.nan, 0.0]]), 1.0)
    with pytest.raises(TypeError, match="integer labels"):
        pc.sort_clusters(x, np.zeros(4))
    with pytest.raises(ValueError, match="rows"):
        pc.sort_clusters(x, np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match=">= 0"):
        pc.cluster_ranges(np.array([0, -1]))
    with pytest.raises(ValueError, match="labels for"):
        pc.cluster_ranges_centroids(x, np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="keep must have shape"):
        pc.from_matrix(np.zeros((2, 2), int), np.zeros((3, 2), int), np.zeros((3, 2), bool))
    with pytest.raises(ValueError, match="6-tuple"):
        pc.swap_axes((1, 2))
    with pytest.raises(TypeError, match="both"):
        pc.sort_clusters(torch.zeros(4, 2), np.zeros(4, dtype=int))
    assert issubclass(pykp.KpValueError, ValueError)
