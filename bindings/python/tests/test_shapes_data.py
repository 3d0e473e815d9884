"""pykp.shapes shapes and data terms: each term against a dense float64 NumPy
formula written from the definitions, known values (currents of closed and
open curves, the varifold of a circle, flip invariance of unoriented
varifolds), gradcheck in float64, and the errors bad shapes raise."""
import math

import numpy as np
import pytest
import torch

from pykp import shapes

F64 = torch.float64


# ----------------------------------------------------------------- NumPy references


def _geom(P, C):
    """centers, normals (tangents / area normals), measures from the definitions."""
    P = np.asarray(P, dtype=np.float64)
    if C is None:
        return P, None, None
    C = np.asarray(C)
    V = P[C]
    c = V.mean(1)
    n = V[:, 1] - V[:, 0] if C.shape[1] == 2 else 0.5 * np.cross(V[:, 1] - V[:, 0], V[:, 2] - V[:, 0])
    return c, n, np.linalg.norm(n, axis=1)


def _gauss(x, y, s):
    return np.exp(-((x[:, None] - y[None]) ** 2).sum(-1) / s**2)


def _ref_inner(kind, A, B, s, ns=0.5):
    ca, na, ma = _geom(*A)
    cb, nb, mb = _geom(*B)
    K = _gauss(ca, cb, s)
    if kind == "mmd":
        wa = np.full(len(ca), 1.0 / len(ca)) if na is None else ma
        wb = np.full(len(cb), 1.0 / len(cb)) if nb is None else mb
        return wa @ K @ wb
    if kind == "current":
        return (K * (na @ nb.T)).sum()
    ua, ub = na / ma[:, None], nb / mb[:, None]
    cos = ua @ ub.T
    f = cos**2 if kind == "varifold" else np.exp(-((ua[:, None] - ub[None]) ** 2).sum(-1) / ns**2)
    return (ma[:, None] * K * f * mb[None]).sum()


def _ref_dist(kind, A, B, s):
    return _ref_inner(kind, A, A, s) - 2 * _ref_inner(kind, A, B, s) + _ref_inner(kind, B, B, s)


def _term(kind, s, backend="pykp"):
    k = shapes.GaussianKernel(s)
    return {
        "mmd": lambda: shapes.KernelNorm(k, backend=backend),
        "current": lambda: shapes.Current(k, backend=backend),
        "varifold": lambda: shapes.Varifold(k, backend=backend),
        "oriented": lambda: shapes.Varifold(k, orientation="oriented", normal_sigma=0.5, backend=backend),
    }[kind]()


def _curve(n=17, d=2, closed=False, noise=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1.7 * math.pi, n, dtype=F64)
    P = torch.stack([torch.cos(t), torch.sin(2 * t) * 0.5] + ([torch.sin(t) * 0.3] if d == 3 else []), 1)
    P = P + noise * torch.rand(n, d, generator=g, dtype=F64)
    m = n if closed else n - 1
    C = torch.stack([torch.arange(m), (torch.arange(m) + 1) % n], 1)
    return shapes.Shape(P, C)


def _surface(level=1, seed=0):
    s = shapes.icosphere(level)
    g = torch.Generator().manual_seed(seed)
    return shapes.Shape(s.points * (1 + 0.1 * torch.rand(len(s.points), 1, generator=g, dtype=F64)), s.cells)


def _np(shape):
    return shape.points.numpy(), None if shape.cells is None else shape.cells.numpy()


# ----------------------------------------------------------------- against dense references


CASES = [("curve2d", lambda seed: _curve(17, 2, seed=seed)), ("curve3d", lambda seed: _curve(13, 3, True, seed=seed)),
         ("surface", lambda seed: _surface(1, seed))]


@pytest.mark.parametrize("kind", ["mmd", "current", "varifold", "oriented"])
@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_data_terms_match_dense_reference(kind, case):
    make = dict(CASES)[case]
    A, B = make(0), make(1)
    B = B.with_points(B.points + 0.1)
    for backend in ("pykp", "torch"):
        term = _term(kind, 0.4, backend)
        ref = _ref_dist(kind, _np(A), _np(B), 0.4)
        got = float(term(A, B))
        assert abs(got - ref) <= 1e-12 * max(1.0, abs(_ref_inner(kind, _np(A), _np(A), 0.4))), (backend, got, ref)
        assert abs(float(term.inner(A, B)) - _ref_inner(kind, _np(A), _np(B), 0.4)) < 1e-12 * max(1, abs(ref))


def test_point_cloud_kernel_norm_with_weights():
    x, y = torch.rand(30, 3, dtype=F64), torch.rand(20, 3, dtype=F64)
    w = torch.rand(30, dtype=F64)
    A, B = shapes.Shape(x, weights=w), shapes.Shape(y)
    K = lambda a, b: _gauss(a.numpy(), b.numpy(), 0.3)
    wa, wb = w.numpy(), np.full(20, 1 / 20)
    ref = wa @ K(x, x) @ wa - 2 * wa @ K(x, y) @ wb + wb @ K(y, y) @ wb
    assert abs(float(shapes.KernelNorm("gaussian", 0.3)(A, B)) - ref) < 1e-13
    # two Dirac masses at distance r: 2 - 2 exp(-r^2 / s^2)
    a, b = shapes.Shape(torch.zeros(1, 2, dtype=F64)), shapes.Shape(torch.tensor([[0.3, 0.4]], dtype=F64))
    assert abs(float(shapes.KernelNorm("gaussian", 0.5)(a, b)) - (2 - 2 * math.exp(-0.25 / 0.25))) < 1e-15


def test_cauchy_and_sum_of_gaussians_spatial_kernels():
    A, B = _surface(1, 0), _surface(1, 1)
    for kernel, kf in ((shapes.CauchyKernel(0.4), lambda r2: 1 / (1 + r2 / 0.16)),
                       (shapes.SumOfGaussiansKernel([0.4, 0.1], [2.0, 1.0]),
                        lambda r2: 2 * np.exp(-r2 / 0.16) + np.exp(-r2 / 0.01))):
        ca, na, ma = _geom(*_np(A))
        cb, nb, mb = _geom(*_np(B))
        K = kf(((ca[:, None] - cb[None]) ** 2).sum(-1))
        ref = (ma[:, None] * K * ((na / ma[:, None]) @ (nb / mb[:, None]).T) ** 2 * mb[None]).sum()
        assert abs(float(shapes.Varifold(kernel).inner(A, B)) - ref) < 1e-12 * ref


# ----------------------------------------------------------------- known values


def test_current_of_closed_curve_vanishes_at_large_scale():
    """With k ~ 1 (sigma >> the shape), <C, C> -> |sum of tangents|^2: 0 for a
    closed curve, |end - start|^2 for an open one."""
    big = shapes.Current("gaussian", 1e4)
    closed, opened = _curve(20, 3, closed=True), _curve(20, 3, closed=False)
    total = float((closed.normals().norm(dim=1) ** 2).sum())
    assert abs(float(big.inner(closed, closed))) < 1e-7 * total
    chord = float(((opened.points[-1] - opened.points[0]) ** 2).sum())
    assert abs(float(big.inner(opened, opened)) - chord) < 1e-6 * chord
    circle = shapes.circle(32)
    # O(1 / sigma^2) from the next term of k's expansion, against perimeter^2 ~ 39
    assert abs(float(big.inner(circle, circle))) < 1e-7 * (2 * math.pi) ** 2


def test_current_and_flips():
    C = _curve(15, 2, closed=True)
    flipped = shapes.Shape(C.points, C.cells.flip(1))
    cur = shapes.Current("gaussian", 0.3)
    norm2 = float(cur.inner(C, C))
    assert abs(float(cur(C, C))) < 1e-13 * norm2
    assert abs(float(cur(C, flipped)) - 4 * norm2) < 1e-12 * norm2


def test_varifold_of_a_circle():
    """Unoriented varifold, k ~ 1: <V, V> = sum_ij L_i L_j cos^2(angle) = perimeter^2 / 2
    for a regular n-gon (n >= 3)."""
    for n, r in ((16, 1.0), (40, 2.5)):
        c = shapes.circle(n, r)
        perimeter = n * 2 * r * math.sin(math.pi / n)
        got = float(shapes.Varifold("gaussian", 1e4).inner(c, c))
        assert abs(got - perimeter**2 / 2) < 1e-6 * perimeter**2


def test_varifold_flip_invariance():
    for S in (_curve(15, 3, closed=True), _surface(1)):
        flipped = shapes.Shape(S.points, S.cells.flip(1))
        uv = shapes.Varifold("gaussian", 0.3)
        ov = shapes.Varifold("gaussian", 0.3, orientation="oriented", normal_sigma=0.5)
        norm2 = float(uv.inner(S, S))
        assert abs(float(uv(S, flipped))) < 1e-12 * norm2
        assert abs(float(uv.inner(S, flipped)) - norm2) < 1e-12 * norm2
        assert float(ov(S, flipped)) > 0.5 * float(ov.inner(S, S))


def test_oriented_varifold_of_one_segment():
    """One segment of length L: <V, V> = L^2, <V, flip V> = L^2 exp(-4 / s_n^2)."""
    P = torch.tensor([[0.0, 0.0], [0.6, 0.8]], dtype=F64)
    a, b = shapes.Shape(P, [[0, 1]]), shapes.Shape(P, [[1, 0]])
    ov = shapes.Varifold("gaussian", 0.2, orientation="oriented", normal_sigma=0.7)
    assert abs(float(ov.inner(a, a)) - 1.0) < 1e-15
    assert abs(float(ov.inner(a, b)) - math.exp(-4 / 0.49)) < 1e-15


def test_distances_are_translation_invariant_and_zero_on_self():
    S = _surface(1)
    moved = S.with_points(S.points + torch.tensor([0.3, -0.2, 0.1], dtype=F64))
    T = _surface(1, seed=3)
    T2 = T.with_points(T.points + torch.tensor([0.3, -0.2, 0.1], dtype=F64))
    for kind in ("mmd", "current", "varifold", "oriented"):
        term = _term(kind, 0.5)
        assert abs(float(term(S, S))) < 1e-12
        assert abs(float(term(S, T)) - float(term(moved, T2))) < 1e-11


# ----------------------------------------------------------------- gradients


@pytest.mark.parametrize("kind", ["mmd", "current", "varifold", "oriented"])
@pytest.mark.parametrize("case", ["curve3d", "surface"])
def test_gradcheck_data_terms(kind, case):
    A = _curve(7, 3, closed=True) if case == "curve3d" else _surface(0)
    B = _curve(6, 3, seed=2) if case == "curve3d" else _surface(0, seed=2)
    term = _term(kind, 0.6)
    x = A.points.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda p: term(A.with_points(p), B), (x,))


def test_gradcheck_point_cloud_weights():
    y = torch.rand(5, 2, dtype=F64)
    x = torch.rand(4, 2, dtype=F64, requires_grad=True)
    w = torch.rand(4, dtype=F64, requires_grad=True)
    term = shapes.KernelNorm("cauchy", 0.5)
    assert torch.autograd.gradcheck(lambda p, v: term(shapes.Shape(p, weights=v), shapes.Shape(y)), (x, w))


# ----------------------------------------------------------------- bad shapes


def _tri():
    return torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=F64)


@pytest.mark.parametrize(
    "points,cells,match",
    [
        (_tri(), [[0, 1, 4]], "cell 0 indexes point 4, out of range for 4 points"),
        (_tri(), [[0, 1, 2], [0, -1, 2]], "cell 1 indexes point -1"),
        (_tri(), [[0, 1, 2], [0, 1, 1]], "cell 1 is a zero-area"),
        (torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]], dtype=F64), [[0, 1, 2]], "cell 0 is a zero-area"),
        (_tri(), [[0, 1], [2, 2]], "cell 1 is a zero-length segment"),
        (torch.tensor([[0.0, 0, 0], [float("nan"), 0, 0], [0, 1, 0]], dtype=F64), [[0, 1, 2]], "NaN"),
        (torch.tensor([[0.0, 0, 0], [float("inf"), 0, 0], [0, 1, 0]], dtype=F64), None, "NaN or infinite"),
        (torch.zeros(0, 3, dtype=F64), None, "empty"),
        (torch.zeros(0, 3, dtype=F64), torch.zeros(0, 3, dtype=torch.int64), "empty"),
        (_tri(), torch.zeros(0, 3, dtype=torch.int64), "cells is empty"),
        (_tri(), [[0, 1, 2, 3]], r"\(F, 2\)"),
        (torch.rand(4, 2, dtype=F64), [[0, 1, 2]], "triangles need 3-D points"),
        (torch.zeros(3, dtype=F64), None, r"\(N, D\)"),
    ],
)
def test_bad_shapes_raise_value_error(points, cells, match):
    with pytest.raises(ValueError, match=match):
        shapes.Shape(points, cells)


def test_bad_shape_types_and_pairs():
    with pytest.raises(TypeError, match="integers"):
        shapes.Shape(_tri(), torch.tensor([[0.0, 1, 2]]))
    with pytest.raises(TypeError, match="points"):
        shapes.Shape([[0.0, 1.0]])
    with pytest.raises(ValueError, match="weights"):
        shapes.Shape(_tri(), weights=torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="weights"):
        shapes.Shape(_tri(), weights=-torch.ones(4, dtype=F64))
    surf, curve = shapes.Shape(_tri(), [[0, 1, 2]]), shapes.Shape(_tri(), [[0, 1]])
    cloud = shapes.Shape(_tri())
    with pytest.raises(ValueError, match="a surface and a curve"):
        shapes.Varifold("gaussian", 1.0)(surf, curve)
    with pytest.raises(ValueError, match="point clouds"):
        shapes.Current("gaussian", 1.0)(cloud, cloud)
    with pytest.raises(ValueError, match="dimensions 3 and 2"):
        shapes.KernelNorm("gaussian", 1.0)(cloud, shapes.Shape(torch.rand(3, 2, dtype=F64)))
    with pytest.raises(TypeError, match="dtypes"):
        shapes.KernelNorm("gaussian", 1.0)(cloud, cloud.to(torch.float32))
    with pytest.raises(TypeError, match="Shape"):
        shapes.KernelNorm("gaussian", 1.0)(cloud, _tri())
    with pytest.raises(ValueError, match="orientation"):
        shapes.Varifold("gaussian", 1.0, orientation="signed")
    with pytest.raises(ValueError, match="new points"):
        surf.with_points(torch.zeros(3, 3, dtype=F64))


def test_numpy_input_and_geometry():
    P = np.array([[0.0, 0, 0], [2, 0, 0], [0, 3, 0]])
    s = shapes.Shape(P, np.array([[0, 1, 2]]))
    assert s.kind == "surface" and s.points.dtype == F64
    assert torch.allclose(s.normals(), torch.tensor([[0.0, 0, 3]], dtype=F64))
    assert torch.allclose(s.measures(), torch.tensor([3.0], dtype=F64))
    assert torch.allclose(s.centers(), torch.tensor([[2 / 3, 1, 0]], dtype=F64))
    c = shapes.Shape(P[:, :2], [[0, 1], [1, 2]])
    assert c.kind == "curve" and torch.allclose(c.measures(), torch.tensor([2.0, math.sqrt(13)], dtype=F64))


def test_sinkhorn_term_needs_pykp_ot():
    try:
        import pykp.ot  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pykp.ot"):
            shapes.SinkhornDivergence(blur=0.1)
        return
    A, B = _surface(0), _surface(0, seed=3)
    term = shapes.SinkhornDivergence(blur=0.05)
    assert float(term(A, A)) < 1e-6 < float(term(A, B))


def test_to_target_matches_the_distance():
    A, B = _surface(1, 0), _surface(1, 1)
    for kind in ("mmd", "current", "varifold", "oriented"):
        term = _term(kind, 0.4)
        assert abs(float(term.to_target(B)(A)) - float(term(A, B))) < 1e-13
    with pytest.raises(ValueError, match="a curve and a surface"):
        shapes.Varifold("gaussian", 0.4).to_target(B)(_curve(5, 3))
