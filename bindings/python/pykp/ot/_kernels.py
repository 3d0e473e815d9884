"""
_kernels.py -- kernel norms (energy, gaussian, laplacian) and the weighted
Hausdorff divergence, GeomLoss's non-transport losses.

Kernel norm: Loss(a, b) = 1/2 <a - b, k * (a - b)>
    = 1/2 <a, K_xx a> + 1/2 <b, K_yy b> - <a, K_xy b>,
three Sum reductions; gradients by pykp's autograd (any order).

Hausdorff: with the soft-min "distance to a measure"
    d_b(x_i) = damping softmin(eps, x, y, log b)_i,
    H(a, b) = 1/2 <a, d_b(x) - d_a(x)> + 1/2 <b, d_a(y) - d_b(y)>,
four LogSumExp reductions, no iteration.
"""
import torch

from ._reductions import KERNELS, kernel_apply, kernel_parameter, softmin
from ._sinkhorn import damping, log_weights


def _dot(a, f):
    return (a * f).sum(-1)


def kernel_loss(name, a, x, b, y, blur, potentials=False):
    """Kernel norm of a - b for the kernel `name` (KERNELS); with potentials,
    the pair (K_xx a - K_xy b on x, K_yy b - K_yx a on y)."""
    k, e = KERNELS[name], kernel_parameter(name, blur)
    a_x = kernel_apply(k, e, x, x, a)
    b_y = kernel_apply(k, e, y, y, b)
    b_x = kernel_apply(k, e, x, y, b)
    if potentials:
        a_y = kernel_apply(k, e, y, x, a)
        return a_x - b_x, b_y - a_y
    return 0.5 * _dot(a, a_x) + 0.5 * _dot(b, b_y) - _dot(a, b_x)


def hausdorff_loss(cost, a, x, b, y, eps, rho, potentials=False):
    """Weighted Hausdorff divergence at temperature eps (see the module text);
    with potentials, the pair (d_b(x) - d_a(x), d_a(y) - d_b(y))."""
    dmp = damping(eps, rho)
    a_log, b_log = log_weights(a), log_weights(b)
    a_x = dmp * softmin(cost, eps, x, x, a_log)
    b_y = dmp * softmin(cost, eps, y, y, b_log)
    b_x = dmp * softmin(cost, eps, x, y, b_log)
    a_y = dmp * softmin(cost, eps, y, x, a_log)
    if potentials:
        return b_x - a_x, a_y - b_y
    za = torch.zeros_like(a_x)
    zb = torch.zeros_like(b_y)
    ha = torch.where(a > 0, a * (b_x - a_x), za).sum(-1)
    hb = torch.where(b > 0, b * (a_y - b_y), zb).sum(-1)
    return 0.5 * (ha + hb)
