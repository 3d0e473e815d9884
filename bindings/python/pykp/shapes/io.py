"""
io.py -- shapes from and to mesh files through meshio (.vtk, .vtu, .ply, .obj,
.stl, .off, ...): triangle cells make a surface, line cells a curve, a file with
neither a point cloud.
"""
from __future__ import annotations

import numpy as np
import torch

from .shape import Shape


def _meshio():
    try:
        import meshio
    except ImportError:
        raise ImportError("pykp.shapes: reading and writing meshes needs meshio (pip install meshio, "
                          "or Debian's python3-meshio)") from None
    return meshio


def read_mesh(path: str, dtype: torch.dtype = torch.float64, dim: int | None = None) -> Shape:
    """A Shape from a mesh file: its triangles, else its line segments, else its points.

    dim keeps the first dim coordinates (meshio pads 2-D points to 3-D in some
    formats; dim=2 gives planar curves back)."""
    meshio = _meshio()
    mesh = meshio.read(path)
    pts = np.asarray(mesh.points, dtype=np.float64)
    if dim is not None:
        pts = pts[:, :dim]
    for kind in ("triangle", "line"):
        blocks = [np.asarray(c.data, dtype=np.int64) for c in mesh.cells if c.type == kind]
        if blocks:
            return Shape(torch.from_numpy(pts).to(dtype), torch.from_numpy(np.concatenate(blocks)))
    return Shape(torch.from_numpy(pts).to(dtype))


def write_mesh(path: str, shape: Shape, point_data: dict | None = None) -> None:
    """Write a Shape (its points, triangles or segments) with meshio; the format
    comes from the file's extension. point_data: name -> (N, ...) arrays, e.g.
    the momenta."""
    meshio = _meshio()
    if not isinstance(shape, Shape):
        raise TypeError("pykp.shapes: shape must be a Shape, got %s" % type(shape).__name__)
    pts = shape.points.detach().cpu().numpy().astype(np.float64)
    if pts.shape[1] == 2:  # most formats store 3-D points
        pts = np.concatenate([pts, np.zeros((len(pts), 1))], 1)
    if shape.cells is None:
        cells = [("vertex", np.arange(len(pts), dtype=np.int64)[:, None])]
    else:
        cells = [("line" if shape.kind == "curve" else "triangle", shape.cells.cpu().numpy())]
    data = {k: np.asarray(v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v)
            for k, v in (point_data or {}).items()}
    meshio.write(path, meshio.Mesh(pts, cells, point_data=data or None))
