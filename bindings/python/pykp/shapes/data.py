"""
data.py -- data terms: squared distances between two shapes seen as measures,
currents or varifolds in the dual of a reproducing kernel Hilbert space,

    d(A, B)^2 = <A, A> - 2 <A, B> + <B, B>

each inner product one libkp reduction over the pairs of cells (centers c,
normals n, measures m = |n|, unit normals u = n / |n|):

    KernelNorm (MMD)      <A, B> = sum_ij m_i m'_j k(c_i, c'_j)
    Current               <A, B> = sum_ij k(c_i, c'_j) <n_i, n'_j>
    Varifold unoriented   <A, B> = sum_ij m_i m'_j k(c_i, c'_j) <u_i, u'_j>^2        (Binet)
    Varifold oriented     <A, B> = sum_ij m_i m'_j k(c_i, c'_j) exp(2 (<u_i, u'_j> - 1) / s_n^2)

For point clouds, c are the points and m their weights. The unoriented varifold
does not see the orientation of segments or triangles; the current and the
oriented varifold do.
"""
from __future__ import annotations

from typing import Optional

import torch

from ._reduce import check_backend, kernel_sum
from .kernels import Kernel, _check_width, as_kernel
from .shape import Shape


def _check_pair(a, b, need_cells: bool, what: str):
    for name, s in (("the first shape", a), ("the second shape", b)):
        if not isinstance(s, Shape):
            raise TypeError("pykp.shapes: %s must be a Shape, got %s" % (name, type(s).__name__))
    if a.dim != b.dim:
        raise ValueError("pykp.shapes: shapes of dimensions %d and %d cannot be compared" % (a.dim, b.dim))
    if a.points.dtype != b.points.dtype:
        raise TypeError("pykp.shapes: shapes of dtypes %s and %s (convert one with Shape.to)"
                        % (a.points.dtype, b.points.dtype))
    if need_cells:
        if a.kind == "points" or b.kind == "points":
            raise ValueError("pykp.shapes: %s needs curves or surfaces (cells), not point clouds" % what)
        if a.kind != b.kind:
            raise ValueError("pykp.shapes: %s between a %s and a %s" % (what, a.kind, b.kind))


class DataTerm:
    """A squared kernel distance between shapes: term(A, B) -> 0-D tensor."""

    needs_cells = False
    name = "data term"

    def __init__(self, kernel: Kernel | str = "gaussian", sigma: Optional[float] = None, backend: str = "pykp"):
        self.kernel = as_kernel(kernel, sigma)
        self.backend = check_backend(backend)

    def inner(self, a: Shape, b: Shape) -> torch.Tensor:
        """<A, B> in the kernel's Hilbert space."""
        _check_pair(a, b, self.needs_cells, self.name)
        return self._inner(a, b)

    def __call__(self, a: Shape, b: Shape) -> torch.Tensor:
        """|A - B|^2 = <A, A> - 2 <A, B> + <B, B>."""
        _check_pair(a, b, self.needs_cells, self.name)
        return self._inner(a, a) - 2 * self._inner(a, b) + self._inner(b, b)

    def to_target(self, target: Shape):
        """A function a -> |A - target|^2 computing <target, target> once (a
        registration compares many deformed sources with one target)."""
        if not isinstance(target, Shape):
            raise TypeError("pykp.shapes: target must be a Shape, got %s" % type(target).__name__)
        with torch.no_grad():
            bb = self._inner(target, target)

        def distance(a: Shape) -> torch.Tensor:
            _check_pair(a, target, self.needs_cells, self.name)
            return self._inner(a, a) - 2 * self._inner(a, target) + bb

        return distance

    def with_sigma(self, sigma: float) -> "DataTerm":
        """The same term with the spatial kernel at another width."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.kernel = self.kernel.with_sigma(sigma)
        return other

    def _inner(self, a, b):
        raise NotImplementedError

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, self.kernel)


class KernelNorm(DataTerm):
    """Kernel norm (MMD) between measures: point clouds with their weights, or
    curves and surfaces as their cell centers weighted by length or area."""

    name = "the kernel norm"

    def _inner(self, a, b):
        ma, mb = a.measures(), b.measures()
        return (ma[:, None] * kernel_sum(self.kernel, a.centers(), b.centers(), mb[:, None], backend=self.backend)).sum()


class Current(DataTerm):
    """Currents: oriented tangents of curves or normals of surfaces, paired by
    the Gaussian (or other spatial) kernel times the linear kernel <n, n'>."""

    needs_cells = True
    name = "the current distance"

    def _inner(self, a, b):
        na = a.normals()
        return (na * kernel_sum(self.kernel, a.centers(), b.centers(), b.normals(), backend=self.backend)).sum()


class Varifold(DataTerm):
    """Varifolds: cells as (center, unit normal) with their measure.

    Parameters
    ----------
    kernel, sigma : the spatial kernel k(c, c') (e.g. GaussianKernel(0.1)).
    orientation : {"unoriented", "oriented"}
        unoriented: the Binet kernel <u, u'>^2 (a segment or triangle and its
        flip are the same); oriented: exp(-|u - u'|^2 / normal_sigma^2).
    normal_sigma : float
        Width of the oriented kernel on unit normals.
    """

    needs_cells = True
    name = "the varifold distance"

    def __init__(self, kernel: Kernel | str = "gaussian", sigma: Optional[float] = None,
                 orientation: str = "unoriented", normal_sigma: float = 0.5, backend: str = "pykp"):
        super().__init__(kernel, sigma, backend)
        if orientation not in ("unoriented", "oriented"):
            raise ValueError("pykp.shapes: orientation must be 'unoriented' or 'oriented', got %r" % (orientation,))
        self.orientation = orientation
        self.normal_sigma = _check_width(normal_sigma, "normal_sigma")

    def _inner(self, a, b):
        na, nb = a.normals(), b.normals()
        ma, mb = na.norm(dim=1, keepdim=True), nb.norm(dim=1, keepdim=True)
        ua, ub = na / ma, nb / mb
        if self.orientation == "unoriented":
            factor, fp = "binet", 0.0
        else:
            factor, fp = "gaussian_normals", 2.0 / self.normal_sigma**2
        s = kernel_sum(self.kernel, a.centers(), b.centers(), mb, ua, ub, factor, fp, backend=self.backend)
        return (ma * s).sum()

    def __repr__(self):
        return "Varifold(%r, orientation=%r)" % (self.kernel, self.orientation)


class SinkhornDivergence(DataTerm):
    """The debiased Sinkhorn divergence of pykp.ot between the two shapes'
    measures (cell centers weighted by length / area, or weighted points),
    normalized to probability measures. Needs pykp.ot.

    Parameters are passed to pykp.ot.SamplesLoss("sinkhorn", ...) (GeomLoss
    conventions: p, blur, scaling, reach).
    """

    name = "the Sinkhorn divergence"

    def __init__(self, **options):
        try:
            from pykp.ot import SamplesLoss  # built separately; optional here
        except ImportError as e:
            raise ImportError("pykp.shapes: SinkhornDivergence needs pykp.ot, which is not available (%s)" % e) from None
        self.options = dict(options)
        self.loss = SamplesLoss("sinkhorn", **options)
        self.kernel = None
        self.backend = "pykp"

    def __call__(self, a, b):
        _check_pair(a, b, False, self.name)
        ma, mb = a.measures(), b.measures()
        return self.loss(ma / ma.sum(), a.centers(), mb / mb.sum(), b.centers())

    def inner(self, a, b):
        raise NotImplementedError("pykp.shapes: the Sinkhorn divergence is not an inner product")

    def to_target(self, target):
        return lambda a: self(a, target)

    def with_sigma(self, sigma):
        return SinkhornDivergence(**dict(self.options, blur=sigma))

    def __repr__(self):
        return "SinkhornDivergence(%s)" % ", ".join("%s=%r" % kv for kv in self.options.items())
