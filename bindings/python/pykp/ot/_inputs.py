"""
_inputs.py -- checks and normalises the arguments of SamplesLoss calls.

Inputs: loss(x, y) or loss(a, x, b, y); x (N, D) or (B, N, D), weights (N,)
or (B, N) (or (..., N, 1)); torch tensors or NumPy arrays of float32/float64.
Out: batched torch tensors (B, N, D), (B, N) and what to give back.
"""
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Inputs:
    a: torch.Tensor  # (B, N)
    x: torch.Tensor  # (B, N, D)
    b: torch.Tensor  # (B, M)
    y: torch.Tensor  # (B, M, D)
    batched: bool  # the caller gave (B, N, D) clouds
    numpy: bool  # the caller gave NumPy arrays: give NumPy back


def _as_tensor(v, name):
    if isinstance(v, np.ndarray):
        if v.dtype not in (np.float32, np.float64):
            raise TypeError("pykp.ot: %s must be float32 or float64, got a %s array" % (name, v.dtype))
        return torch.from_numpy(np.ascontiguousarray(v)), True
    if isinstance(v, torch.Tensor):
        if v.dtype not in (torch.float32, torch.float64):
            raise TypeError("pykp.ot: %s must be float32 or float64, got %s" % (name, v.dtype))
        return v, False
    raise TypeError("pykp.ot: %s must be a torch tensor or a NumPy array, got %s" % (name, type(v).__name__))


def _uniform(x):
    n = x.shape[-2]
    return torch.full(x.shape[:-1], 1.0 / n, dtype=x.dtype, device=x.device)


def _check_points(v, name):
    if v.dim() not in (2, 3):
        raise ValueError("pykp.ot: %s must be a (N, D) or (B, N, D) array of points, got shape %s" % (name, tuple(v.shape)))
    if v.shape[-2] == 0 or v.shape[-1] == 0:
        raise ValueError("pykp.ot: %s holds no points (shape %s)" % (name, tuple(v.shape)))
    if not bool(torch.isfinite(v.detach()).all()):
        raise ValueError("pykp.ot: %s holds NaN or infinite coordinates" % name)


def _check_weights(w, v, name, vname):
    if w.dim() == v.dim() and w.shape[-1] == 1:  # (..., N, 1), as GeomLoss accepts
        w = w.squeeze(-1)
    if tuple(w.shape) != tuple(v.shape[:-1]):
        raise ValueError(
            "pykp.ot: the weights %s must have shape %s to match the points %s %s, got %s"
            % (name, tuple(v.shape[:-1]), vname, tuple(v.shape), tuple(w.shape))
        )
    wd = w.detach()
    if not bool(torch.isfinite(wd).all()):
        raise ValueError("pykp.ot: the weights %s hold NaN or infinite values" % name)
    if bool((wd < 0).any()):
        raise ValueError("pykp.ot: the weights %s must be nonnegative" % name)
    if bool((wd.sum(-1) <= 0).any()):
        raise ValueError("pykp.ot: the weights %s sum to zero (in some batch): the measure is empty" % name)
    return w


def process(args) -> Inputs:
    """Checks loss(x, y) / loss(a, x, b, y) arguments, returns batched tensors."""
    if len(args) == 2:
        names = ("x", "y")
    elif len(args) == 4:
        names = ("a", "x", "b", "y")
    else:
        raise ValueError(
            "pykp.ot: SamplesLoss takes (x, y) or (a, x, b, y), got %d arguments%s"
            % (len(args), " (cluster labels are not supported)" if len(args) == 6 else "")
        )
    conv = [_as_tensor(v, n) for v, n in zip(args, names)]
    tensors = [t for t, _ in conv]
    is_numpy = all(f for _, f in conv)
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1:
        raise TypeError("pykp.ot: mixed dtypes %s; convert all inputs to one dtype" % sorted(str(d) for d in dtypes))
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise ValueError("pykp.ot: the inputs are on different devices %s" % sorted(str(d) for d in devices))
    if len(args) == 2:
        x, y = tensors
        a = b = None
    else:
        a, x, b, y = tensors
    _check_points(x, "x")
    _check_points(y, "y")
    if x.dim() != y.dim():
        raise ValueError("pykp.ot: x and y must both be (N, D) or both (B, N, D), got shapes %s and %s" % (tuple(x.shape), tuple(y.shape)))
    if x.shape[-1] != y.shape[-1]:
        raise ValueError("pykp.ot: x and y must have the same dimension D, got %d and %d" % (x.shape[-1], y.shape[-1]))
    batched = x.dim() == 3
    if batched and x.shape[0] != y.shape[0]:
        raise ValueError("pykp.ot: x and y must have the same batch size, got %d and %d" % (x.shape[0], y.shape[0]))
    a = _uniform(x) if a is None else _check_weights(a, x, "a", "x")
    b = _uniform(y) if b is None else _check_weights(b, y, "b", "y")
    if not batched:
        a, x, b, y = a.unsqueeze(0), x.unsqueeze(0), b.unsqueeze(0), y.unsqueeze(0)
    return Inputs(a, x, b, y, batched, is_numpy)


def output(t, inp: Inputs):
    """Unbatches (when the caller did not batch) and converts back to NumPy
    (when the caller gave NumPy)."""
    if not inp.batched:
        t = t[0]
    if inp.numpy:
        return t.detach().cpu().numpy()
    return t
