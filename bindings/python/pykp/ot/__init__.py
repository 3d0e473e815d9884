"""
pykp.ot -- optimal transport between point clouds on pykp reductions.

Sinkhorn divergences (debiased, unbalanced, annealed), Hausdorff and kernel
losses with GeomLoss's SamplesLoss conventions, the transport plan as a pykp
LazyTensor, and free-support Wasserstein barycenters; all in O(N + M) memory.
See docs/ot.md.
"""
from ._sinkhorn import SinkhornResult, epsilon_schedule
from .barycenter import barycenter
from .plan import TransportPlan
from .samples_loss import SamplesLoss

__all__ = ["SamplesLoss", "TransportPlan", "SinkhornResult", "barycenter", "epsilon_schedule"]
