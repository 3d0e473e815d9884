"""
kernels.py -- radial kernels of the deformation model and of the data terms.

A kernel knows two spellings of itself: a libkp formula (for pykp.Genred, with
its widths passed as parameters so one compiled formula serves every width) and
a dense torch matrix (the reference, and the "torch" backend for small
problems). The convention is libkp's / Deformetrica's: the Gaussian of width
sigma is exp(-|x - y|^2 / sigma^2).

    GaussianKernel(sigma)               exp(-|x-y|^2 / s^2)
    CauchyKernel(sigma)                 1 / (1 + |x-y|^2 / s^2)
    SumOfGaussiansKernel(sigmas, w)     sum_k w_k exp(-|x-y|^2 / s_k^2)
"""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import torch


def _check_width(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError("pykp.shapes: %s must be a positive number, got %r" % (name, value)) from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError("pykp.shapes: %s must be a positive finite number, got %r" % (name, value))
    return v


def sqdist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Dense (N, M) squared distances |x_i - y_j|^2, smooth to any order (no
    square root, unlike torch.cdist, whose gradient at x_i = y_j is singular)."""
    return (x * x).sum(-1)[:, None] + (y * y).sum(-1)[None, :] - 2 * x @ y.T


class Kernel:
    """Base class: a radial kernel k(x, y) = f(|x - y|^2)."""

    #: parameter names and values, in the order of the formula's Pm aliases
    def params(self) -> List[Tuple[str, float]]:
        raise NotImplementedError

    def formula(self, x: str, y: str, prefix: str = "k") -> Tuple[str, List[Tuple[str, float]]]:
        """(libkp formula of k(x, y), [(alias, value)] of its Pm(1) parameters);
        prefix keeps the aliases of two kernels in one formula apart."""
        raise NotImplementedError

    def dense(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The (N, M) kernel matrix as a dense torch tensor."""
        raise NotImplementedError

    def with_sigma(self, sigma) -> "Kernel":
        """The same kind of kernel at another width (multi-scale registration)."""
        raise NotImplementedError


class GaussianKernel(Kernel):
    """k(x, y) = exp(-|x - y|^2 / sigma^2)."""

    def __init__(self, sigma: float):
        self.sigma = _check_width(sigma, "sigma")

    def formula(self, x, y, prefix="k"):
        g = prefix + "g0"
        return "Exp(-SqDist(%s,%s)*%s)" % (x, y, g), [(g, 1.0 / self.sigma**2)]

    def dense(self, x, y):
        return torch.exp(-sqdist(x, y) / self.sigma**2)

    def with_sigma(self, sigma):
        return GaussianKernel(sigma)

    def __repr__(self):
        return "GaussianKernel(sigma=%g)" % self.sigma


class CauchyKernel(Kernel):
    """k(x, y) = 1 / (1 + |x - y|^2 / sigma^2): heavy tails, so far points still
    move together (useful when source and target barely overlap)."""

    def __init__(self, sigma: float):
        self.sigma = _check_width(sigma, "sigma")

    def formula(self, x, y, prefix="k"):
        g = prefix + "g0"
        return "Inv(1+SqDist(%s,%s)*%s)" % (x, y, g), [(g, 1.0 / self.sigma**2)]

    def dense(self, x, y):
        return 1.0 / (1.0 + sqdist(x, y) / self.sigma**2)

    def with_sigma(self, sigma):
        return CauchyKernel(sigma)

    def __repr__(self):
        return "CauchyKernel(sigma=%g)" % self.sigma


class SumOfGaussiansKernel(Kernel):
    """k(x, y) = sum_k w_k exp(-|x - y|^2 / sigma_k^2): several scales of
    deformation at once (coarse motion and fine detail in one model)."""

    def __init__(self, sigmas: Sequence[float], weights: Sequence[float] | None = None):
        sigmas = list(sigmas) if not isinstance(sigmas, (int, float)) else [sigmas]
        if not sigmas:
            raise ValueError("pykp.shapes: sigmas must hold at least one width")
        self.sigmas = [_check_width(s, "sigmas[%d]" % i) for i, s in enumerate(sigmas)]
        if weights is None:
            weights = [1.0 / len(self.sigmas)] * len(self.sigmas)
        weights = list(weights)
        if len(weights) != len(self.sigmas):
            raise ValueError(
                "pykp.shapes: weights has %d entries for %d sigmas" % (len(weights), len(self.sigmas))
            )
        self.weights = [_check_width(w, "weights[%d]" % i) for i, w in enumerate(weights)]

    def formula(self, x, y, prefix="k"):
        terms, params = [], []
        for k, (s, w) in enumerate(zip(self.sigmas, self.weights)):
            g, a = "%sg%d" % (prefix, k), "%sw%d" % (prefix, k)
            terms.append("%s*Exp(-SqDist(%s,%s)*%s)" % (a, x, y, g))
            params += [(g, 1.0 / s**2), (a, w)]
        return "(" + "+".join(terms) + ")", params

    def dense(self, x, y):
        d2 = sqdist(x, y)
        return sum(w * torch.exp(-d2 / s**2) for s, w in zip(self.sigmas, self.weights))

    def with_sigma(self, sigma):
        """Scales every width by sigma / max(sigmas) (the largest becomes sigma)."""
        f = _check_width(sigma, "sigma") / max(self.sigmas)
        return SumOfGaussiansKernel([s * f for s in self.sigmas], self.weights)

    @property
    def sigma(self) -> float:
        return max(self.sigmas)

    def __repr__(self):
        return "SumOfGaussiansKernel(sigmas=%s, weights=%s)" % (self.sigmas, self.weights)


def as_kernel(kernel, sigma=None) -> Kernel:
    """A Kernel from a Kernel, or from a name ("gaussian", "cauchy") and sigma."""
    if isinstance(kernel, Kernel):
        return kernel
    if isinstance(kernel, str):
        name = kernel.strip().lower()
        if sigma is None:
            raise ValueError("pykp.shapes: kernel %r needs sigma" % kernel)
        if name in ("gaussian", "gauss"):
            return GaussianKernel(sigma)
        if name == "cauchy":
            return CauchyKernel(sigma)
        if name in ("sum_of_gaussians", "sumofgaussians"):
            return SumOfGaussiansKernel(sigma)
        raise ValueError("pykp.shapes: unknown kernel %r; expected gaussian, cauchy or sum_of_gaussians" % kernel)
    raise TypeError("pykp.shapes: kernel must be a Kernel or a name, got %s" % type(kernel).__name__)
