"""A kernel product and its gradients over MPI ranks with pykp.distributed.

    mpirun -np 2 python examples/python/distributed.py [--n-local N] [--m-local M]
                                                   (add --oversubscribe on a small machine)

Every rank owns 2000 points x_i and 3000 points y_j (with weights b_j); the y
blocks travel around a ring (layout="ring"), so no rank holds all of them.
Each rank gets a_i = sum_j exp(-|x_i - y_j|^2 / s) b_j for its own x_i, and
torch autograd gives the gradients of the sum of the ranks' losses: x and y
gradients of the rank's own points, the gradient of the parameter s summed
over all ranks. Rank 0 checks its rows against pykp on all points.
"""
import argparse

import numpy as np
import torch
from mpi4py import MPI

import pykp
from pykp import distributed

parser = argparse.ArgumentParser(description="A kernel product and its gradients over MPI ranks (run with mpirun).")
parser.add_argument("--n-local", type=int, default=2000, help="x points per rank (default 2000)")
parser.add_argument("--m-local", type=int, default=3000, help="y points per rank (default 3000)")
opts = parser.parse_args()
comm = MPI.COMM_WORLD
rank, size = comm.rank, comm.size
N_LOCAL, M_LOCAL = opts.n_local, opts.m_local


def points(r):
    """Rank r's points (a function of r, so that rank 0 can rebuild them all)."""
    g = np.random.default_rng(r)
    return g.standard_normal((N_LOCAL, 3)), g.standard_normal((M_LOCAL, 3)), g.random((M_LOCAL, 1))


x, y, b = (torch.tensor(a, requires_grad=True) for a in points(rank))
s = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
aliases = ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)", "s = Pm(1)"]
kernel = distributed.Genred("Exp(-SqDist(x,y)/s)*b", aliases, "Sum", axis=1, layout="ring")

a = kernel(x, y, b, s)  # this rank's rows
loss = (a ** 2).sum()  # the global loss is the sum of the ranks' losses
loss.backward()
total = comm.allreduce(loss.item())

if rank == 0:
    X, Y, B = (np.concatenate(t) for t in zip(*(points(r) for r in range(size))))
    ref = pykp.Genred("Exp(-SqDist(x,y)/s)*b", aliases, "Sum", axis=1)(X, Y, B, np.array([2.0]))
    err = np.abs(a.detach().numpy() - ref[:N_LOCAL]).max() / np.abs(ref).max()
    print("%d ranks: %d x %d points, loss %.6f, ds %.6f, max relative error %.1e"
          % (size, N_LOCAL * size, M_LOCAL * size, total, s.grad.item(), err))
    assert err < 1e-12
