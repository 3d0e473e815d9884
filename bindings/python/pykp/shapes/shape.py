"""
shape.py -- shapes as (points, cells): point clouds (no cells), curves
((F, 2) segments) and triangle surfaces ((F, 3) triangles), with their
centers, normals and measures computed differentiably from the points.

    curve:    center (a + b) / 2,      normal = tangent b - a,             measure |b - a|
    surface:  center (a + b + c) / 3,  normal = (b - a) x (c - a) / 2,     measure |normal| (area)
    cloud:    center = the point,      no normal,                          measure = weight
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch


def _as_points(points, dtype) -> torch.Tensor:
    if isinstance(points, np.ndarray):
        points = torch.from_numpy(np.ascontiguousarray(points))
    if not isinstance(points, torch.Tensor):
        raise TypeError("pykp.shapes: points must be a torch tensor or a NumPy array, got %s" % type(points).__name__)
    if dtype is not None:
        points = points.to(dtype)
    elif not points.is_floating_point():
        points = points.to(torch.get_default_dtype())
    return points


class Shape:
    """A point cloud, a curve or a triangle surface.

    Parameters
    ----------
    points : (N, D) tensor or array
        Vertices (any float dtype; NumPy arrays are converted, integer ones to
        torch's default dtype).
    cells : (F, 2) or (F, 3) integer tensor or array, optional
        Segments of a curve or triangles of a surface (triangles need D = 3),
        indexing points. None for a point cloud.
    weights : (N,) tensor or array, optional
        Masses of a point cloud's points (default 1 / N each).
    dtype : torch.dtype, optional
        Convert the points (and weights) to this dtype.

    Raises
    ------
    ValueError
        Empty shapes, NaN or infinite points, cells of the wrong width, cell
        indices out of [0, N), zero-length segments or zero-area triangles,
        negative weights; the message names the first offending cell.
    """

    def __init__(self, points, cells=None, weights=None, dtype: Optional[torch.dtype] = None, _checked=False):
        self.points = _as_points(points, dtype)
        if isinstance(cells, np.ndarray):
            cells = torch.from_numpy(np.ascontiguousarray(cells))
        elif isinstance(cells, (list, tuple)):
            cells = torch.as_tensor(cells)
        if isinstance(cells, torch.Tensor) and (cells.is_floating_point() or cells.is_complex()):
            raise TypeError("pykp.shapes: cells must hold integers, got %s" % cells.dtype)
        self.cells = None if cells is None else cells.to(device=self.points.device, dtype=torch.int64) \
            if isinstance(cells, torch.Tensor) else cells
        if weights is not None:
            weights = _as_points(weights, self.points.dtype).to(self.points.device)
        self.weights = weights
        if not _checked:
            self._validate()

    # ------------------------------------------------------------- checks

    def _validate(self):
        P = self.points
        if P.ndim != 2 or P.shape[0] == 0 or P.shape[1] == 0:
            raise ValueError("pykp.shapes: points must have shape (N, D) with N, D > 0 (empty shape), got %s"
                             % (tuple(P.shape),))
        bad = ~torch.isfinite(P.detach()).all(1)
        if bad.any():
            raise ValueError("pykp.shapes: points contain NaN or infinite values (point %d)" % int(bad.nonzero()[0, 0]))
        if self.cells is not None:
            self._validate_cells()
        elif self.weights is not None:
            w = self.weights
            if w.shape != (P.shape[0],):
                raise ValueError("pykp.shapes: weights must have shape (%d,), got %s" % (P.shape[0], tuple(w.shape)))
            if not torch.isfinite(w).all() or (w < 0).any():
                raise ValueError("pykp.shapes: weights must be finite and non-negative")

    def _validate_cells(self):
        C, P = self.cells, self.points
        if not isinstance(C, torch.Tensor):
            raise TypeError("pykp.shapes: cells must be an integer tensor or array, got %s" % type(C).__name__)
        if C.ndim != 2 or C.shape[1] not in (2, 3):
            raise ValueError("pykp.shapes: cells must have shape (F, 2) (segments) or (F, 3) (triangles), got %s"
                             % (tuple(C.shape),))
        if C.shape[0] == 0:
            raise ValueError("pykp.shapes: cells is empty (a shape with no segments or triangles)")
        if self.weights is not None:
            raise ValueError("pykp.shapes: weights are for point clouds; a curve or surface is weighted by its cells")
        if C.shape[1] == 3 and P.shape[1] != 3:
            raise ValueError("pykp.shapes: triangles need 3-D points, got %d-D points" % P.shape[1])
        out = (C < 0) | (C >= P.shape[0])
        if out.any():
            f = int(out.any(1).nonzero()[0, 0])
            raise ValueError("pykp.shapes: cell %d indexes point %d, out of range for %d points"
                             % (f, int(C[f][out[f]][0]), P.shape[0]))
        # zero measure, relative to the shape's extent (computed in float64)
        m = _measures(P.detach().double(), C)
        ext = float((P.detach().double().max(0).values - P.detach().double().min(0).values).norm())
        tol = 1e-14 * max(ext, 1e-300) ** (C.shape[1] - 1)
        zero = m <= tol
        if zero.any():
            f = int(zero.nonzero()[0, 0])
            what = "zero-length segment" if C.shape[1] == 2 else "zero-area (degenerate) triangle"
            raise ValueError("pykp.shapes: cell %d is a %s (points %s)" % (f, what, C[f].tolist()))

    # ------------------------------------------------------------- geometry

    @property
    def kind(self) -> str:
        """'points', 'curve' or 'surface'."""
        if self.cells is None:
            return "points"
        return "curve" if self.cells.shape[1] == 2 else "surface"

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    def with_points(self, points: torch.Tensor) -> "Shape":
        """The same cells (or weights) on new points of the same shape, e.g.
        the deformed source; the cells are not checked again."""
        if not isinstance(points, torch.Tensor) or points.shape != self.points.shape:
            raise ValueError("pykp.shapes: new points must be a tensor of shape %s, got %s"
                             % (tuple(self.points.shape), tuple(getattr(points, "shape", ()))))
        return Shape(points, self.cells, self.weights, _checked=True)

    def to(self, dtype: torch.dtype) -> "Shape":
        return Shape(self.points.to(dtype), self.cells,
                     None if self.weights is None else self.weights.to(dtype), _checked=True)

    def centers(self) -> torch.Tensor:
        """(F, D) cell centers, or the points of a cloud."""
        if self.cells is None:
            return self.points
        return self.points[self.cells].mean(1)

    def normals(self) -> torch.Tensor:
        """(F, D) tangents b - a of segments, or area-weighted normals
        (b - a) x (c - a) / 2 of triangles (their norm is the cell's measure)."""
        if self.cells is None:
            raise ValueError("pykp.shapes: a point cloud has no normals (give cells: segments or triangles)")
        return _normals(self.points, self.cells)

    def measures(self) -> torch.Tensor:
        """(F,) lengths or areas of the cells, or the weights of a cloud (1/N by default)."""
        if self.cells is None:
            if self.weights is not None:
                return self.weights
            n = self.points.shape[0]
            return torch.full((n,), 1.0 / n, dtype=self.points.dtype, device=self.points.device)
        return _measures(self.points, self.cells)

    def __repr__(self):
        n = "" if self.cells is None else ", %d %s" % (self.cells.shape[0], "segments" if self.kind == "curve" else "triangles")
        return "Shape(%d points in %dD%s, %s)" % (self.points.shape[0], self.dim, n, str(self.points.dtype).replace("torch.", ""))


def _normals(P, C):
    if C.shape[1] == 2:
        return P[C[:, 1]] - P[C[:, 0]]
    a, b, c = P[C[:, 0]], P[C[:, 1]], P[C[:, 2]]
    return 0.5 * torch.linalg.cross(b - a, c - a)


def _measures(P, C):
    return _normals(P, C).norm(dim=1)
