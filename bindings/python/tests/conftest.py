"""Shared helpers: dense float64 references of every reduction."""
import numpy as np
import pytest
import torch

torch.set_default_dtype(torch.float64)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


def dense_reduce(F, reduction, axis, K=None, G=None):
    """Reference reduction of a dense (N, M, D) tensor F over axis (1: j, 0: i),
    with KeOps output conventions. G: (N, M, E) weights for SumSoftMaxWeight."""
    if axis == 0:
        F = F.transpose(0, 1)
        if G is not None:
            G = G.transpose(0, 1)
    if reduction == "Sum":
        return F.sum(1)
    if reduction == "LogSumExp":
        return torch.logsumexp(F, 1)
    if reduction == "SumSoftMaxWeight":
        w = torch.softmax(F, 1)  # (N, M, 1)
        return (w * G).sum(1)
    if reduction == "Min":
        return F.min(1).values
    if reduction == "Max":
        return F.max(1).values
    if reduction == "ArgMin":
        return F.argmin(1)
    if reduction == "ArgMax":
        return F.argmax(1)
    if reduction == "Min_ArgMin":
        r = F.min(1)
        return r.values, r.indices
    if reduction == "Max_ArgMax":
        r = F.max(1)
        return r.values, r.indices
    s = torch.sort(F, dim=1, stable=True)
    vals, idx = s.values[:, :K], s.indices[:, :K]  # (N, K, D)
    if F.shape[-1] == 1:
        vals, idx = vals[..., 0], idx[..., 0]
    if reduction == "KMin":
        return vals
    if reduction == "ArgKMin":
        return idx
    return vals, idx


def assert_close(a, b, rtol=1e-10, atol=1e-10):
    a = torch.as_tensor(np.asarray(a) if isinstance(a, np.ndarray) else a)
    b = torch.as_tensor(np.asarray(b) if isinstance(b, np.ndarray) else b)
    assert tuple(a.shape) == tuple(b.shape), (a.shape, b.shape)
    if a.dtype in (torch.int64, torch.int32):
        assert torch.equal(a.long(), b.long())
        return
    torch.testing.assert_close(a.double(), b.double(), rtol=rtol, atol=atol, equal_nan=True)
