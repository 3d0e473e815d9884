"""
_reductions.py -- the few pykp reductions that transport is made of.

Every solver step of pykp.ot is one of these reductions, built once per
(cost, dimension) and cached:

    softmin:   f_i = -eps log sum_j exp(h_j - C(x_i, y_j) / eps)       (LogSumExp over j)
    kernel:    v_i = sum_j k(x_i, y_j) w_j                              (Sum over j)
    plan:      (pi w)_i = sum_j exp(u_i + v_j - C(x_i, y_j) / eps) w_j  (Sum over j or i)
    barycentric map: sum_j softmax_j(v_j - C_ij / eps) y_j             (SumSoftMaxWeight)

Costs are libkp formulas in the variables X (indexed by i) and Y (indexed by
j), as GeomLoss writes its KeOps costs.
"""
import functools

import pykp

# C(x, y) = |x - y|^p / p, GeomLoss's convention
BUILTIN_COSTS = {1: "Norm2(X-Y)", 2: "(SqDist(X,Y)/IntCst(2))"}

# k(x, y) for the kernel norms; e is a parameter (see kernel_parameter)
KERNELS = {
    "gaussian": "Exp(-SqDist(X,Y)*e)",
    "laplacian": "Exp(-Norm2(X-Y)*e)",
    "energy": "(-Norm2(X-Y))",
}


def kernel_parameter(name, blur):
    """The value of e in KERNELS[name]: k = exp(-|x-y|^2 / (2 blur^2)),
    exp(-|x-y| / blur), or -|x-y| (e unused)."""
    if name == "gaussian":
        return 1.0 / (2.0 * blur * blur)
    if name == "laplacian":
        return 1.0 / blur
    return 1.0


def _aliases(dim, *extra):
    return ["X = Vi(%d)" % dim, "Y = Vj(%d)" % dim] + list(extra)


@functools.lru_cache(maxsize=64)
def _softmin_genred(cost, dim):
    return pykp.Genred("h - (%s)*e" % cost, _aliases(dim, "h = Vj(1)", "e = Pm(1)"), reduction_op="LogSumExp", axis=1)


@functools.lru_cache(maxsize=64)
def _kernel_genred(kernel, dim):
    return pykp.Genred("(%s)*w" % kernel, _aliases(dim, "w = Vj(1)", "e = Pm(1)"), reduction_op="Sum", axis=1)


@functools.lru_cache(maxsize=64)
def _plan_genred(cost, dim, axis):
    # the plan's entries exp(u_i + v_j - C_ij / eps) times w, w indexed by the reduced variable
    w = "w = Vj(1)" if axis == 1 else "w = Vi(1)"
    return pykp.Genred(
        "Exp(u + v - (%s)*e) * w" % cost, _aliases(dim, "u = Vi(1)", "v = Vj(1)", "e = Pm(1)", w),
        reduction_op="Sum", axis=axis,
    )


@functools.lru_cache(maxsize=64)
def _barycentric_genred(cost, dim):
    return pykp.Genred(
        "v - (%s)*e" % cost, _aliases(dim, "v = Vj(1)", "e = Pm(1)"),
        reduction_op="SumSoftMaxWeight", formula2="Y", axis=1,
    )


def softmin(cost, eps, x, y, h, ranges=None):
    """f_i = -eps log sum_j exp(h_j - C(x_i, y_j) / eps), the soft C-transform.

    x: (..., N, D), y: (..., M, D), h: (..., M) tensors of one dtype; returns (..., N).
    Entries h_j = -inf (zero weights) drop out; gradients flow to x, y and h
    through pykp's autograd (LogSumExp's gradient is a softmax-weighted Sum).
    ranges: block-sparse ranges (KeOps' 6-tuple, i = x, j = y) or None (dense);
    a row with no kept pair gets +inf."""
    red = _softmin_genred(cost, x.shape[-1])
    return -eps * red(x, y, h.unsqueeze(-1), 1.0 / eps, ranges=ranges).squeeze(-1)


def kernel_apply(kernel, param, x, y, w):
    """v_i = sum_j k(x_i, y_j) w_j; x (..., N, D), y (..., M, D), w (..., M) -> (..., N)."""
    red = _kernel_genred(kernel, x.shape[-1])
    return red(x, y, w.unsqueeze(-1), param).squeeze(-1)


def plan_apply(cost, eps, x, y, u, v, w, axis):
    """sum over the reduced axis of exp(u_i + v_j - C_ij / eps) w; axis=1 reduces
    over j (w: (..., M), result (..., N)), axis=0 over i (w: (..., N), result (..., M))."""
    red = _plan_genred(cost, x.shape[-1], axis)
    return red(x, y, u.unsqueeze(-1), v.unsqueeze(-1), 1.0 / eps, w.unsqueeze(-1)).squeeze(-1)


def barycentric(cost, eps, x, y, v):
    """sum_j softmax_j(v_j - C(x_i, y_j) / eps) y_j, shape (..., N, D)."""
    red = _barycentric_genred(cost, x.shape[-1])
    return red(x, y, v.unsqueeze(-1), 1.0 / eps)
