"""
_reduce.py -- the one reduction every part of pykp.shapes is made of:

    a_i = sum_j k(x_i, y_j) * f(u_i, v_j) * b_j

with k a spatial Kernel, f an optional factor on a second pair of features
(the normals of a varifold) and b_j a vector. The "pykp" backend runs it as one
libkp reduction (O(N + M) memory, symbolic gradients to any order); the "torch"
backend builds the dense (N, M) matrix, for references and small problems.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import torch

import pykp

from .kernels import Kernel

BACKENDS = ("pykp", "torch")

# factor name -> (libkp formula in u, v and the parameter "fg", dense f(U, V, fg))
# binet: (u.v)^2, the unoriented varifold kernel on unit normals;
# gaussian_normals: exp(-|u - v|^2 / s^2) = exp(2 (u.v - 1) / s^2) for unit u, v,
#   the oriented varifold kernel, fg = 2 / s^2;
# linear: u.v (a current with unit normals, or any oriented pairing).
FACTORS: Dict[str, Tuple[str, Callable]] = {
    "binet": ("Square((u|v))", lambda U, V, fg: (U @ V.T) ** 2),
    "gaussian_normals": ("Exp(((u|v)-1)*fg)", lambda U, V, fg: torch.exp((U @ V.T - 1) * fg)),
    "linear": ("(u|v)", lambda U, V, fg: U @ V.T),
}

_genreds: dict = {}


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError("pykp.shapes: backend must be one of %s, got %r" % (", ".join(BACKENDS), backend))
    return backend


def _genred(kernel: Kernel, d: int, du: int, e: int, factor: Optional[str]):
    text, params = kernel.formula("x", "y")
    aliases = ["x = Vi(%d)" % d, "y = Vj(%d)" % d]
    if factor is not None:
        text = "%s*%s" % (text, FACTORS[factor][0])
        aliases += ["u = Vi(%d)" % du, "v = Vj(%d)" % du]
        if "fg" in FACTORS[factor][0]:
            params = params + [("fg", None)]
    aliases += ["%s = Pm(1)" % name for name, _ in params] + ["b = Vj(%d)" % e]
    key = (text, tuple(aliases))
    g = _genreds.get(key)
    if g is None:
        if len(_genreds) > 256:
            _genreds.clear()
        g = _genreds[key] = pykp.Genred("(%s)*b" % text, aliases, reduction_op="Sum", axis=1)
    return g, params


def kernel_sum(
    kernel: Kernel,
    x: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    u: Optional[torch.Tensor] = None,
    v: Optional[torch.Tensor] = None,
    factor: Optional[str] = None,
    factor_param: float = 0.0,
    backend: str = "pykp",
) -> torch.Tensor:
    """a_i = sum_j k(x_i, y_j) f(u_i, v_j) b_j, an (N, E) tensor for b of shape (M, E)."""
    if backend == "torch":
        K = kernel.dense(x, y)
        if factor is not None:
            K = K * FACTORS[factor][1](u, v, factor_param)
        return K @ b
    g, params = _genred(kernel, x.shape[1], 0 if u is None else u.shape[1], b.shape[1], factor)
    args = [x, y] + ([u, v] if factor is not None else [])
    for name, value in params:
        value = factor_param if value is None else value
        args.append(torch.full((1,), value, dtype=x.dtype, device=x.device))
    return g(*args, b)
