"""
model.py -- LDDMM landmark deformations: the Hamiltonian, geodesic shooting,
the flow of extra points and the deformation energy.

Control points q (N, D) carry momenta p (N, D). The velocity field is
v(x) = sum_j k~(x, q_j) p_j and geodesics solve Hamilton's equations

    dq/dt = dH/dp,   dp/dt = -dH/dq,   H(q, p) = 1/2 sum_ij k~(q_i, q_j) <p_i, p_j>

on t in [0, 1]; points carried along follow dx/dt = v(x). Both derivatives of
H come from torch.autograd on libkp reductions (create_graph=True when the
caller needs gradients through the shooting, which is then second order).
k~ is the kernel k itself, or a normalized version (see docs/shapes.md):

    normalize="row":      H = 1/2 sum_i <p_i, sum_j k_ij p_j> / m_i,  m_i = sum_j k_ij
    normalize="sinkhorn": H = 1/2 sum_ij d_i k_ij d_j <p_i, p_j>,  d = 1 / (K a), where a
                          is the symmetric Sinkhorn scaling a <- sqrt(a / (K a)) after n steps

so that a control point's velocity is a weighted average of momenta instead of a
sum, and the deformation does not depend on how densely a region is sampled.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional

import torch
import torch.utils.checkpoint

from ._reduce import check_backend, kernel_sum
from .kernels import Kernel, as_kernel

INTEGRATORS = ("euler", "ralston", "rk4")
NORMALIZATIONS = (None, "row", "sinkhorn")


class Shooting(NamedTuple):
    """The end of a geodesic: control points, momenta and carried points at
    t = 1 (points is None when none were given); with trajectory=True, the
    lists of the T + 1 states (t = 0, 1/T, ..., 1)."""

    q: torch.Tensor
    p: torch.Tensor
    points: Optional[torch.Tensor]
    q_path: Optional[List[torch.Tensor]] = None
    p_path: Optional[List[torch.Tensor]] = None
    points_path: Optional[List[torch.Tensor]] = None


def _check_qp(q, p):
    for name, a in (("q", q), ("p", p)):
        if not isinstance(a, torch.Tensor):
            raise TypeError("pykp.shapes: %s must be a torch tensor, got %s" % (name, type(a).__name__))
        if a.ndim != 2 or a.shape[0] == 0:
            raise ValueError("pykp.shapes: %s must have shape (N, D) with N > 0, got %s" % (name, tuple(a.shape)))
    if q.shape != p.shape:
        raise ValueError("pykp.shapes: q and p must have the same shape, got %s and %s" % (tuple(q.shape), tuple(p.shape)))
    if q.dtype != p.dtype:
        raise TypeError("pykp.shapes: q and p must have the same dtype, got %s and %s" % (q.dtype, p.dtype))


class Deformation:
    """An LDDMM deformation model: a kernel, an integrator and its step count.

    Parameters
    ----------
    kernel : Kernel or str
        The reproducing kernel of the velocity fields (GaussianKernel,
        CauchyKernel, SumOfGaussiansKernel), or "gaussian" / "cauchy" with sigma.
    sigma : float, optional
        Width when kernel is given by name.
    integrator : {"euler", "ralston", "rk4"}
        Explicit scheme of order 1, 2 or 4 for Hamilton's equations.
    steps : int
        Number of time steps T on [0, 1].
    normalize : {None, "row", "sinkhorn"}
        Normalized Hamiltonian (see the module docstring and docs/shapes.md).
    sinkhorn_iters : int
        Symmetric Sinkhorn iterations for normalize="sinkhorn".
    checkpoint : bool
        Recompute each time step in the backward pass (torch.utils.checkpoint)
        instead of storing it: memory stops growing with T, for about one more
        shooting of compute.
    backend : {"pykp", "torch"}
        libkp reductions, or dense torch matrices (references, small N).
    """

    def __init__(
        self,
        kernel: Kernel | str = "gaussian",
        sigma: Optional[float] = None,
        integrator: str = "rk4",
        steps: int = 10,
        normalize: Optional[str] = None,
        sinkhorn_iters: int = 10,
        checkpoint: bool = False,
        backend: str = "pykp",
    ):
        self.kernel = as_kernel(kernel, sigma)
        if integrator not in INTEGRATORS:
            raise ValueError("pykp.shapes: integrator must be one of %s, got %r" % (", ".join(INTEGRATORS), integrator))
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError("pykp.shapes: steps must be a positive integer, got %r" % (steps,))
        if normalize not in NORMALIZATIONS:
            raise ValueError("pykp.shapes: normalize must be None, 'row' or 'sinkhorn', got %r" % (normalize,))
        if isinstance(sinkhorn_iters, bool) or not isinstance(sinkhorn_iters, int) or sinkhorn_iters < 0:
            raise ValueError("pykp.shapes: sinkhorn_iters must be a non-negative integer, got %r" % (sinkhorn_iters,))
        self.integrator = integrator
        self.steps = steps
        self.normalize = normalize
        self.sinkhorn_iters = sinkhorn_iters
        self.checkpoint = bool(checkpoint)
        self.backend = check_backend(backend)

    def with_kernel(self, kernel: Kernel) -> "Deformation":
        """The same model with another kernel (multi-scale registration)."""
        return Deformation(kernel, None, self.integrator, self.steps, self.normalize, self.sinkhorn_iters,
                           self.checkpoint, self.backend)

    def __repr__(self):
        return "Deformation(%r, integrator=%r, steps=%d, normalize=%r, backend=%r)" % (
            self.kernel, self.integrator, self.steps, self.normalize, self.backend)

    # ------------------------------------------------------------- kernel sums

    def _K(self, x, y, b):
        return kernel_sum(self.kernel, x, y, b, backend=self.backend)

    def sinkhorn_scaling(self, q: torch.Tensor) -> torch.Tensor:
        """a (N, 1) after sinkhorn_iters steps of a <- sqrt(a / (K_q a)) from
        a = (K_q 1)^(-1/2): the symmetric scaling with a_i (K_q a)_i -> 1."""
        ones = torch.ones(q.shape[0], 1, dtype=q.dtype, device=q.device)
        a = self._K(q, q, ones).rsqrt()
        for _ in range(self.sinkhorn_iters):
            a = (a / self._K(q, q, a)).sqrt()
        return a

    # ------------------------------------------------------------- H and v

    def hamiltonian(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """H(q, p) = 1/2 sum_ij k~(q_i, q_j) <p_i, p_j>, a 0-D tensor."""
        _check_qp(q, p)
        if self.normalize is None:
            return 0.5 * (p * self._K(q, q, p)).sum()
        if self.normalize == "row":
            D = q.shape[1]
            ones = torch.ones(q.shape[0], 1, dtype=q.dtype, device=q.device)
            r = self._K(q, q, torch.cat([p, ones], 1))  # K p and the row sums m in one pass
            return 0.5 * (p * r[:, :D] / r[:, D:]).sum()
        a = self.sinkhorn_scaling(q)
        d = 1.0 / self._K(q, q, a)
        return 0.5 * (d * p * self._K(q, q, d * p)).sum()

    def velocity(self, x: torch.Tensor, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """v(x) = sum_j k~(x, q_j) p_j at the points x (M, D); at x = q it is dH/dp."""
        _check_qp(q, p)
        if x.ndim != 2 or x.shape[1] != q.shape[1]:
            raise ValueError("pykp.shapes: points must have shape (M, %d), got %s" % (q.shape[1], tuple(x.shape)))
        if self.normalize is None:
            return self._K(x, q, p)
        D = q.shape[1]
        if self.normalize == "row":
            # dH/dp_i = 1/2 (sum_j k_ij p_j / m_i + sum_j k_ij p_j / m_j), extended to any x
            ones = torch.ones(q.shape[0], 1, dtype=q.dtype, device=q.device)
            m = self._K(q, q, ones)
            r = self._K(x, q, torch.cat([p, p / m, ones], 1))
            return 0.5 * (r[:, :D] / r[:, 2 * D:] + r[:, D:2 * D])
        # d(x) = 1 / sum_j k(x, q_j) a_j equals d_i at x = q_i
        a = self.sinkhorn_scaling(q)
        d = 1.0 / self._K(q, q, a)
        r = self._K(x, q, torch.cat([d * p, a], 1))
        return r[:, :D] / r[:, D:]

    def energy(self, q0: torch.Tensor, p0: torch.Tensor) -> torch.Tensor:
        """The deformation energy H(q0, p0) = 1/2 |v_0|_V^2, constant along the
        geodesic (half its squared length in the space of velocity fields V)."""
        return self.hamiltonian(q0, p0)

    # ------------------------------------------------------------- shooting

    def equations(self, q, p, x=None, create_graph=False):
        """(dq/dt, dp/dt, dx/dt) = (dH/dp, -dH/dq, v(x)) through autograd."""
        with torch.enable_grad():
            qq = q if q.requires_grad else q.detach().requires_grad_(True)
            pp = p if p.requires_grad else p.detach().requires_grad_(True)
            H = self.hamiltonian(qq, pp)
            Hq, Hp = torch.autograd.grad(H, (qq, pp), create_graph=create_graph)
            if x is None:
                vx = None
            elif create_graph:
                vx = self.velocity(x, qq, pp)
            else:
                with torch.no_grad():
                    vx = self.velocity(x, q.detach(), p.detach())
        return Hp, -Hq, vx

    def _step(self, q, p, x, dt, create_graph):
        def f(s):
            return self.equations(s[0], s[1], s[2], create_graph)

        def axpy(s, k, h):
            return tuple(None if a is None else a + h * b for a, b in zip(s, k))

        s = (q, p, x)
        k1 = f(s)
        if self.integrator == "euler":
            out = axpy(s, k1, dt)
        elif self.integrator == "ralston":
            k2 = f(axpy(s, k1, 2 * dt / 3))
            out = axpy(axpy(s, k1, dt / 4), k2, 3 * dt / 4)
        else:
            k2 = f(axpy(s, k1, dt / 2))
            k3 = f(axpy(s, k2, dt / 2))
            k4 = f(axpy(s, k3, dt))
            out = s
            for k, w in ((k1, 1), (k2, 2), (k3, 2), (k4, 1)):
                out = axpy(out, k, dt * w / 6)
        if not create_graph:
            out = tuple(None if a is None else a.detach() for a in out)
        return out

    def shoot(
        self,
        q0: torch.Tensor,
        p0: torch.Tensor,
        points: Optional[torch.Tensor] = None,
        trajectory: bool = False,
    ) -> Shooting:
        """Integrate Hamilton's equations from (q0, p0) over [0, 1] in T steps,
        carrying points (M, D) along the flow.

        Gradients flow back to q0, p0 and points when torch's grad mode is on
        and one of them requires grad (the shooting is then differentiated
        through its second-order graph; with checkpoint=True each step is
        recomputed during backward instead of stored).
        """
        _check_qp(q0, p0)
        if points is not None:
            if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[1] != q0.shape[1]:
                raise ValueError("pykp.shapes: points must be a tensor of shape (M, %d)" % q0.shape[1])
            if points.dtype != q0.dtype:
                raise TypeError("pykp.shapes: points must have dtype %s, got %s" % (q0.dtype, points.dtype))
        create_graph = torch.is_grad_enabled() and any(
            a is not None and a.requires_grad for a in (q0, p0, points))
        q, p, x = q0, p0, points
        path = ([q], [p], [x]) if trajectory else None
        dt = 1.0 / self.steps
        for _ in range(self.steps):
            if self.checkpoint and create_graph:
                q, p, x = torch.utils.checkpoint.checkpoint(self._step, q, p, x, dt, True, use_reentrant=False)
            else:
                q, p, x = self._step(q, p, x, dt, create_graph)
            if trajectory:
                for lst, a in zip(path, (q, p, x)):
                    lst.append(a)
        if trajectory:
            return Shooting(q, p, x, path[0], path[1], path[2] if points is not None else None)
        return Shooting(q, p, x)

    def flow(self, points: torch.Tensor, q0: torch.Tensor, p0: torch.Tensor) -> torch.Tensor:
        """The points (M, D) moved by the deformation shot from (q0, p0)."""
        return self.shoot(q0, p0, points).points
