"""
samples.py -- shapes to test and demonstrate with: subdivided icosahedra
(spheres), their smooth deformations, and polygonal circles.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .shape import Shape


def icosphere(level: int = 3, radius: float = 1.0, dtype: torch.dtype = torch.float64) -> Shape:
    """A sphere triangulated by subdividing an icosahedron level times
    (10 * 4^level + 2 vertices, 20 * 4^level triangles, outward normals)."""
    if isinstance(level, bool) or not isinstance(level, int) or level < 0:
        raise ValueError("pykp.shapes: level must be a non-negative integer, got %r" % (level,))
    t = (1 + math.sqrt(5)) / 2
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t),
         (0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
         (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5),
         (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = np.array(v, dtype=np.float64)
    verts /= np.linalg.norm(verts, axis=1, keepdims=True)
    faces = np.array(f, dtype=np.int64)
    for _ in range(level):
        verts, faces = _subdivide(verts, faces)
    return Shape(torch.from_numpy(verts * radius).to(dtype), torch.from_numpy(faces))


def _subdivide(verts, faces):
    """Each triangle into 4, new vertices at the edge midpoints pushed to the unit sphere."""
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    uniq, inv = np.unique(edges, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    mid = verts[uniq[:, 0]] + verts[uniq[:, 1]]
    mid /= np.linalg.norm(mid, axis=1, keepdims=True)
    n, F = len(verts), len(faces)
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    ab, bc, ca = n + inv[:F], n + inv[F:2 * F], n + inv[2 * F:]
    new = np.concatenate([np.stack([a, ab, ca], 1), np.stack([b, bc, ab], 1),
                          np.stack([c, ca, bc], 1), np.stack([ab, bc, ca], 1)])
    return np.concatenate([verts, mid]), new


def bumped_ellipsoid(shape: Shape, axes=(1.3, 0.9, 0.8), bump: float = 0.25, width: float = 0.5) -> Shape:
    """A sphere's points stretched to an ellipsoid with a smooth Gaussian bump
    of height bump around the +z pole (the same triangles)."""
    P = shape.points
    ax = torch.tensor(axes, dtype=P.dtype)
    u = P / P.norm(dim=1, keepdim=True)
    r = 1 + bump * torch.exp(-((u - torch.tensor([0.0, 0.0, 1.0], dtype=P.dtype)) ** 2).sum(1, keepdim=True) / width**2)
    return Shape(P * ax * r, shape.cells)


def circle(n: int = 64, radius: float = 1.0, center=(0.0, 0.0), dtype: torch.dtype = torch.float64) -> Shape:
    """A closed regular n-gon, counter-clockwise (n segments)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 3:
        raise ValueError("pykp.shapes: n must be an integer >= 3, got %r" % (n,))
    t = torch.arange(n, dtype=dtype) * (2 * math.pi / n)
    pts = torch.stack([radius * torch.cos(t) + center[0], radius * torch.sin(t) + center[1]], 1)
    seg = torch.stack([torch.arange(n), (torch.arange(n) + 1) % n], 1)
    return Shape(pts, seg)
