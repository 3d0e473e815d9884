"""
barycenter.py -- free-support Wasserstein barycenter of K point clouds.

Minimises sum_k lambda_k S_eps(beta_z, alpha_k) over the positions z of a
cloud beta_z = sum_i b_i delta_{z_i} (fixed weights b), S the debiased
Sinkhorn divergence of SamplesLoss. For p = 2 the gradient step

    z_i <- z_i - lr * grad_{z_i} sum_k lambda_k S(beta_z, alpha_k) / b_i

with lr = 1 moves each z_i to the lambda-average of its barycentric targets
(corrected by the debiasing term): the fixed-point iteration of free-support
barycenters. Each step is one Sinkhorn solve per cloud plus its gradient.
"""
from typing import List, Optional, Sequence

import numpy as np
import torch

from .samples_loss import SamplesLoss


def _tensor(v, name, dtype=None):
    if isinstance(v, np.ndarray):
        v = torch.from_numpy(np.ascontiguousarray(v))
    if not isinstance(v, torch.Tensor):
        raise TypeError("pykp.ot: %s must be a torch tensor or a NumPy array, got %s" % (name, type(v).__name__))
    return v if dtype is None else v.to(dtype)


def barycenter(
    clouds: Sequence,
    weights: Optional[Sequence] = None,
    lambdas: Optional[Sequence[float]] = None,
    init=None,
    n_points: Optional[int] = None,
    n_iter: int = 10,
    lr: float = 1.0,
    tol: float = 0.0,
    seed: int = 0,
    callback=None,
    tol_sinkhorn: Optional[float] = None,
    **loss_kwargs,
):
    """Free-support barycenter of clouds[k] ((N_k, D) arrays, weights[k] (N_k,)).

    Parameters
    ----------
    clouds : sequence of (N_k, D) arrays (torch or NumPy, one dtype)
    weights : sequence of (N_k,) weights, or None (uniform)
    lambdas : barycentric coordinates (>= 0, normalised to sum 1), or None (uniform)
    init : (M, D) starting positions, or None: n_points points drawn from the clouds
    n_points : size of the barycenter when init is None (default: N_0)
    n_iter, lr, tol : at most n_iter steps of size lr; stop when the largest
        move of a point is below tol
    callback : called as callback(step, z, value) after each step
    tol_sinkhorn : marginal tolerance of each Sinkhorn solve (SamplesLoss's tol)
    loss_kwargs : passed to SamplesLoss("sinkhorn", ...) (p, blur, scaling, reach, ...)

    Returns
    -------
    (z, history): the (M, D) positions (NumPy in, NumPy out) and the list of
    objective values sum_k lambda_k S(beta_z, alpha_k), one per step.
    """
    if len(clouds) == 0:
        raise ValueError("pykp.ot: clouds must hold at least one point cloud")
    as_numpy = isinstance(clouds[0], np.ndarray)
    xs = [_tensor(c, "clouds[%d]" % k) for k, c in enumerate(clouds)]
    dtype = xs[0].dtype
    for k, x in enumerate(xs):
        if x.dim() != 2 or x.shape[1] != xs[0].shape[1]:
            raise ValueError("pykp.ot: clouds[%d] must be (N, %d), got %s" % (k, xs[0].shape[1], tuple(x.shape)))
        xs[k] = x.to(dtype).detach()
    if weights is None:
        ws = [torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=dtype) for x in xs]
    else:
        if len(weights) != len(xs):
            raise ValueError("pykp.ot: weights must hold one array per cloud (%d), got %d" % (len(xs), len(weights)))
        ws = [_tensor(w, "weights[%d]" % k, dtype).detach() for k, w in enumerate(weights)]
    lam = np.full(len(xs), 1.0 / len(xs)) if lambdas is None else np.asarray(lambdas, dtype=float)
    if lam.shape != (len(xs),) or (lam < 0).any() or lam.sum() <= 0:
        raise ValueError("pykp.ot: lambdas must be %d nonnegative numbers, not all zero" % len(xs))
    lam = lam / lam.sum()
    if init is None:
        m = xs[0].shape[0] if n_points is None else int(n_points)
        gen = torch.Generator().manual_seed(seed)
        pool = torch.cat(xs)
        z = pool[torch.randint(pool.shape[0], (m,), generator=gen)].clone()
        z += 1e-3 * pool.std() * torch.randn(z.shape, generator=gen, dtype=dtype)
    else:
        z = _tensor(init, "init", dtype).detach().clone()
    b = torch.full((z.shape[0],), 1.0 / z.shape[0], dtype=dtype)
    loss = SamplesLoss("sinkhorn", tol=tol_sinkhorn, **loss_kwargs)
    history: List[float] = []
    for step in range(n_iter):
        z.requires_grad_(True)
        value = sum(float(l) * loss(b, z, w, x) for l, w, x in zip(lam, ws, xs) if l > 0)
        (grad,) = torch.autograd.grad(value, [z])
        with torch.no_grad():
            move = lr * grad / b[:, None]
            z = (z - move).detach()
        history.append(float(value.detach()))
        if callback is not None:
            callback(step, z, history[-1])
        if float(move.norm(dim=1).max()) <= tol:
            break
    return (z.numpy() if as_numpy else z), history
