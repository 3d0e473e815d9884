"""Run by test_distributed.py under mpirun: pykp.distributed against one
process (pykp.Genred on all points), every rank checking its own rows; prints
"OK rank R" at the end. Any failure raises (mpirun then exits nonzero).
The ranged checks pass the block-sparse ranges of the whole problem (RANGES:
a cluster of i with no range, rows and points in no cluster, clusters cut by
the ranks' shares) and compare with one ranged pykp call; check_batched_ranges
does so on two batches with ranges in both."""
import sys

import numpy as np
import torch
from mpi4py import MPI

import pykp
from pykp import distributed

comm = MPI.COMM_WORLD
rank, size = comm.rank, comm.size
N, M = 157, 1203


def share(n, r):
    """Rank r's slice of n points: weights r + 1, rank 1 empty with 3+ ranks."""
    w = [0 if (size >= 3 and q == 1) else q + 1 for q in range(size)]
    acc = sum(w[:r])
    return slice(n * acc // sum(w), n * (acc + w[r]) // sum(w))


rng = np.random.default_rng(3)
X, Y, B = rng.standard_normal((N, 2)), rng.standard_normal((M, 2)), rng.random((M, 1))
ALIASES = ["x = Vi(2)", "y = Vj(2)", "b = Vj(1)"]
CASES = [("Sum", "Exp(-SqDist(x,y))*b", None), ("LogSumExp", "-SqDist(x,y)+b", None),
         ("Min_ArgMin", "SqDist(x,y)+b", None), ("KMin", "SqDist(x,y)", 3), ("ArgKMin", "SqDist(x,y)", 3),
         ("Max", "Concat(SqDist(x,y),b)", None)]


def _ranges():
    """KeOps' 6-tuple of the whole problem from a cluster mask
    (pykp.cluster.from_matrix): rows [60, 70) and points [500, 540) in no
    cluster, i cluster 2 with nothing to reduce."""
    from pykp.cluster import from_matrix

    ci = np.array([[0, 25], [25, 60], [70, 100], [100, 130], [130, N]])
    cj = np.array([[0, 200], [200, 500], [540, 800], [800, 1000], [1000, M]])
    keep = np.array([[a != 2 and (a + 2 * b) % 3 != 0 for b in range(len(cj))] for a in range(len(ci))])
    return from_matrix(ci, cj, keep)


RANGES = _ranges()


def mine(layout, x, y, b):
    si = share(N, rank)
    sj = share(M, rank) if layout == "ring" else slice(0, M)
    return x[si], y[sj], b[sj], si, sj


def check_forward(dtype, ranges=None):
    x, y, b = X.astype(dtype), Y.astype(dtype), B.astype(dtype)
    cases = CASES + ([("SumSoftMaxWeight", "-SqDist(x,y)", None), ("ArgMax", "SqDist(x,y)", None)] if ranges else [])
    for red, form, k in cases:
        f2 = "Concat(b,y)" if red == "SumSoftMaxWeight" else None
        for axis in (0, 1):
            full = pykp.Genred(form, ALIASES, red, axis=axis, opt_arg=k, formula2=f2)(x, y, b, ranges=ranges)
            for layout in distributed.LAYOUTS:
                xm, ym, bm, si, sj = mine(layout, x, y, b)
                got = distributed.Genred(form, ALIASES, red, axis=axis, opt_arg=k, formula2=f2,
                                         layout=layout)(xm, ym, bm, ranges=ranges)
                rows = si if axis == 1 else sj
                refs = full if isinstance(full, tuple) else (full,)
                gots = got if isinstance(got, tuple) else (got,)
                for r, g in zip(refs, gots):
                    r = r[rows]
                    if red in ("Sum", "LogSumExp", "SumSoftMaxWeight"):
                        # float16: both results are float32 ones rounded once, 1 half ulp apart at most
                        tol = {np.float32: 1e-6, np.float64: 1e-13, np.float16: 2.0**-10}[dtype]
                        big = np.abs(r[np.isfinite(r)]).max(initial=1)  # neutral values: -inf, NaN
                        np.testing.assert_allclose(g, r, rtol=tol, atol=tol * big, equal_nan=True)
                    else:
                        assert np.array_equal(g, r, equal_nan=True), (red, axis, layout, ranges is not None)


def check_complex():
    """complex128 arrays travel as they are (libkp's KP_COMPLEX128): a complex result per rank."""
    z = (X[:, :1] + 1j * X[:, 1:]).astype(np.complex128)
    w = (Y[:, :1] + 1j * Y[:, 1:]).astype(np.complex128)
    al = ["z = Vi(2)", "w = Vj(2)", "b = Vj(1)"]
    form = "ComplexMult(ComplexExp(ComplexMult(z,Conj(w))),Real2Complex(b))"
    full = pykp.Genred(form, al, "Sum", axis=1)(z, w, B)
    assert full.dtype == np.complex128 and full.shape == (N, 1)
    for layout in distributed.LAYOUTS:
        zm, wm, bm, si, _ = mine(layout, z, w, B)
        got = distributed.Genred(form, al, "Sum", axis=1, layout=layout)(zm, wm, bm)
        assert got.dtype == np.complex128
        np.testing.assert_allclose(got, full[si], rtol=1e-13, atol=1e-13 * np.abs(full).max())


def check_lazy():
    xm, ym, _, si, _ = mine("ring", X, Y, B)
    got = distributed.reduce(pykp.Vi(xm).sqdist(pykp.Vj(ym)), "ArgMin", axis=1, layout="ring")
    ref = (pykp.Vi(X).sqdist(pykp.Vj(Y))).argmin(axis=1)
    assert np.array_equal(got, ref[si])
    # lazy.ranges (torch tensors here) are those of the whole problem
    for layout in distributed.LAYOUTS:
        xm, ym, _, si, _ = mine(layout, X, Y, B)
        K = pykp.Vi(xm).sqdist(pykp.Vj(ym))
        K.ranges = tuple(torch.from_numpy(a) for a in RANGES)
        got = distributed.reduce(K, "ArgMin", axis=1, layout=layout)
        Kf = pykp.Vi(X).sqdist(pykp.Vj(Y))
        Kf.ranges = RANGES
        ref = Kf.argmin(axis=1)
        assert np.array_equal(got, ref[si])
        assert (ref[60:70] == -1).all()  # rows in no cluster


def check_autograd(red, ranges=None):
    t = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)  # noqa: E731
    form = {"Sum": "Exp(-SqDist(x,y)*g)*b", "LogSumExp": "-SqDist(x,y)*g+b", "Min": "SqDist(x,y)*g+b"}[red]
    al = ALIASES + ["g = Pm(1)"]
    W = np.random.default_rng(5).standard_normal((N, 1))
    if ranges is not None and red != "Sum":  # rows in no cluster: -inf or +inf, which W must not weigh
        W[60:70] = 0
    for layout in distributed.LAYOUTS:
        x, y, b, g = t(X), t(Y), t(B), t([0.7])
        full = pykp.Genred(form, al, red, axis=1)(x, y, b, g, ranges=ranges)
        (full * torch.from_numpy(W)).sum().backward()
        xm, ym, bm, si, sj = mine(layout, X, Y, B)
        xm, ym, bm, gm = t(xm), t(ym), t(bm), t([0.7])
        out = distributed.Genred(form, al, red, axis=1, layout=layout)(xm, ym, bm, gm, ranges=ranges)
        (out * torch.from_numpy(W[si])).sum().backward()  # the global loss is the sum of the ranks'
        np.testing.assert_allclose(xm.grad.numpy(), x.grad.numpy()[si], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ym.grad.numpy(), y.grad.numpy()[sj], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(bm.grad.numpy(), b.grad.numpy()[sj], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gm.grad.numpy(), g.grad.numpy(), rtol=1e-10, atol=1e-12)


def check_softmax_autograd(ranges=None):
    """SumSoftMaxWeight: its gradient takes the forward output and the
    log-sum-exp, both distributed reductions themselves."""
    t = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)  # noqa: E731
    W = np.random.default_rng(6).standard_normal((N, 1))
    args = dict(reduction_op="SumSoftMaxWeight", axis=1, formula2="b")
    valid = np.ones(N, bool)
    if ranges is not None:  # rows that meet no pair are NaN (a mean of nothing): out of the loss
        valid[60:100] = False
    for layout in distributed.LAYOUTS:
        x, y, b = t(X), t(Y), t(B)
        out = pykp.Genred("-SqDist(x,y)", ALIASES, **args)(x, y, b, ranges=ranges)
        (out[torch.from_numpy(valid)] * torch.from_numpy(W[valid])).sum().backward()
        xm, ym, bm, si, sj = mine(layout, X, Y, B)
        xm, ym, bm = t(xm), t(ym), t(bm)
        out = distributed.Genred("-SqDist(x,y)", ALIASES, layout=layout, **args)(xm, ym, bm, ranges=ranges)
        v = valid[si]
        (out[torch.from_numpy(v)] * torch.from_numpy(W[si][v])).sum().backward()
        for got, ref, rows in ((xm, x, si), (ym, y, sj), (bm, b, sj)):
            np.testing.assert_allclose(got.grad.numpy(), ref.grad.numpy()[rows], rtol=1e-10, atol=1e-12)


def check_double_backward(axis, ranges=None):
    """Second derivatives: the gradient in x (computed with create_graph) is
    differentiated again, through distributed gradient reductions."""
    t = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)  # noqa: E731
    form = "Exp(-SqDist(x,y))*b"
    rows_n = N if axis == 1 else M
    W = np.random.default_rng(7).standard_normal((rows_n, 1))

    def second(x, y, b, g, w):
        (gx,) = torch.autograd.grad((g(x, y, b) * torch.from_numpy(w)).sum(), [x], create_graph=True)
        return (gx**2).sum()

    for layout in distributed.LAYOUTS:
        x, y, b = t(X), t(Y), t(B)
        second(x, y, b, lambda *a: pykp.Genred(form, ALIASES, "Sum", axis=axis)(*a, ranges=ranges), W).backward()
        xm, ym, bm, si, sj = mine(layout, X, Y, B)
        xm, ym, bm = t(xm), t(ym), t(bm)
        w = W[si] if axis == 1 else W[sj]
        if axis == 0 and layout == "rows":  # replicated outputs: rank 0 alone carries the output loss
            w = W if rank == 0 else np.zeros_like(W)
        gen = distributed.Genred(form, ALIASES, "Sum", axis=axis, layout=layout)
        second(xm, ym, bm, lambda *a: gen(*a, ranges=ranges), w).backward()  # the global loss is the sum of the ranks'
        for got, ref, rows in ((xm, x, si), (ym, y, sj), (bm, b, sj)):
            np.testing.assert_allclose(got.grad.numpy(), ref.grad.numpy()[rows], rtol=1e-9, atol=1e-11)


def check_param_double_backward(red, axis):
    """A parameter gradient (a reduction summing its rows over every rank,
    computed with create_graph) differentiated again in every argument."""
    t = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)  # noqa: E731
    form = {"Sum": "Exp(-SqDist(x,y)*g)*b", "LogSumExp": "-SqDist(x,y)*g+b"}[red]
    al = ALIASES + ["g = Pm(1)"]
    W = np.random.default_rng(8).standard_normal((N if axis == 1 else M, 1))

    def second(x, y, b, g, gen, w):
        (gg,) = torch.autograd.grad((gen(x, y, b, g) * torch.from_numpy(w)).sum(), [g], create_graph=True)
        return (gg**2).sum()

    for layout in distributed.LAYOUTS:
        x, y, b, g = t(X), t(Y), t(B), t([0.7])
        second(x, y, b, g, pykp.Genred(form, al, red, axis=axis), W).backward()
        xm, ym, bm, si, sj = mine(layout, X, Y, B)
        xm, ym, bm, gm = t(xm), t(ym), t(bm), t([0.7])
        w = W[si] if axis == 1 else W[sj]
        if axis == 0 and layout == "rows":  # replicated outputs: rank 0 alone carries the output loss
            w = W if rank == 0 else np.zeros_like(W)
        gen = distributed.Genred(form, al, red, axis=axis, layout=layout)
        if red == "LogSumExp" and axis == 0 and layout == "rows":  # refused, not miscounted
            try:
                second(xm, ym, bm, gm, gen, w)
            except NotImplementedError as e:
                assert "layout='ring'" in str(e), e
                continue
            raise AssertionError("no error raised")
        loss = second(xm, ym, bm, gm, gen, w)
        # (gg**2) is the same on every rank: rank 0 alone carries it, so that the global loss is one process's
        (loss if rank == 0 else 0 * loss).backward()
        for got, ref, rows in ((xm, x, si), (ym, y, sj), (bm, b, sj)):
            np.testing.assert_allclose(got.grad.numpy(), ref.grad.numpy()[rows], rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(gm.grad.numpy(), g.grad.numpy(), rtol=1e-9, atol=1e-11)


NB = 2  # batches of the batched ranged checks


def _batched_ranges():
    """Ranges of NB = 2 batches of the whole problem, in flattened (batch,
    point) indices: batch 0 keeps RANGES, batch 1 other clusters (cut at other
    places by the ranks' shares; rows [0, 20) and points [1100, M) in no
    cluster)."""
    from pykp.cluster import from_matrix

    ci = np.array([[20, 50], [50, 90], [90, N]])
    cj = np.array([[0, 300], [300, 700], [700, 1100]])
    keep = np.array([[True, False, True], [False, True, True], [True, True, False]])
    one = from_matrix(ci, cj, keep)
    r0, r1 = [np.asarray(a, np.int64) for a in RANGES], [np.asarray(a, np.int64) for a in one]
    return (np.vstack([r0[0], r1[0] + N]), np.concatenate([r0[1], r1[1] + len(r0[2])]),
            np.vstack([r0[2], r1[2] + M]), np.vstack([r0[3], r1[3] + M]),
            np.concatenate([r0[4], r1[4] + len(r0[5])]), np.vstack([r0[5], r1[5] + N]))


def check_batched_ranges():
    """Batched arrays (NB, points, dim) on the ranges of the whole batched
    problem: forward (every reduction family, both axes and layouts) and torch
    gradients (x, y, b and a parameter shared by the batches; Sum on both
    axes, LogSumExp and Min on axis 1) against one process."""
    br = _batched_ranges()
    brng = np.random.default_rng(11)
    X3, Y3, B3 = brng.standard_normal((NB, N, 2)), brng.standard_normal((NB, M, 2)), brng.random((NB, M, 1))

    def mine3(layout, x, y, b):
        si = share(N, rank)
        sj = share(M, rank) if layout == "ring" else slice(0, M)
        return x[:, si], y[:, sj], b[:, sj], si, sj

    cases = CASES + [("SumSoftMaxWeight", "-SqDist(x,y)", None), ("ArgMax", "SqDist(x,y)", None)]
    for red, form, k in cases:
        f2 = "Concat(b,y)" if red == "SumSoftMaxWeight" else None
        for axis in (0, 1):
            full = pykp.Genred(form, ALIASES, red, axis=axis, opt_arg=k, formula2=f2)(X3, Y3, B3, ranges=br)
            for layout in distributed.LAYOUTS:
                xm, ym, bm, si, sj = mine3(layout, X3, Y3, B3)
                got = distributed.Genred(form, ALIASES, red, axis=axis, opt_arg=k, formula2=f2,
                                         layout=layout)(xm, ym, bm, ranges=br)
                rows = si if axis == 1 else sj
                refs = full if isinstance(full, tuple) else (full,)
                gots = got if isinstance(got, tuple) else (got,)
                for r, g in zip(refs, gots):
                    r = r[:, rows]
                    assert g.shape == r.shape, (red, axis, layout, g.shape, r.shape)
                    if red in ("Sum", "LogSumExp", "SumSoftMaxWeight"):
                        big = np.abs(r[np.isfinite(r)]).max(initial=1)
                        np.testing.assert_allclose(g, r, rtol=1e-13, atol=1e-13 * big, equal_nan=True)
                    else:
                        assert np.array_equal(g, r, equal_nan=True), (red, axis, layout)
    # the ranges are read per batch: batch 1's rows [0, 20) meet no pair, batch 0's do
    full = pykp.Genred("Exp(-SqDist(x,y))*b", ALIASES, "Sum", axis=1)(X3, Y3, B3, ranges=br)
    assert (full[1, :20] == 0).all() and (full[0, :20] != 0).all()

    t = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)  # noqa: E731
    al = ALIASES + ["g = Pm(1)"]
    forms = {"Sum": "Exp(-SqDist(x,y)*g)*b", "LogSumExp": "-SqDist(x,y)*g+b", "Min": "SqDist(x,y)*g+b"}
    for red, axis in (("Sum", 0), ("Sum", 1), ("LogSumExp", 1), ("Min", 1)):
        form = forms[red]
        W = np.random.default_rng(12).standard_normal((NB, N if axis == 1 else M, 1))
        for layout in distributed.LAYOUTS:
            x, y, b, g = t(X3), t(Y3), t(B3), t([0.7])
            full = pykp.Genred(form, al, red, axis=axis)(x, y, b, g, ranges=br)
            W[~np.isfinite(full.detach().numpy())] = 0  # rows that meet no pair: -inf or +inf, out of the loss
            (full * torch.from_numpy(W)).sum().backward()
            xm, ym, bm, si, sj = mine3(layout, X3, Y3, B3)
            xm, ym, bm, gm = t(xm), t(ym), t(bm), t([0.7])
            out = distributed.Genred(form, al, red, axis=axis, layout=layout)(xm, ym, bm, gm, ranges=br)
            w = W[:, si] if axis == 1 else W[:, sj]
            if axis == 0 and layout == "rows":  # replicated outputs: rank 0 alone carries the output loss
                w = W if rank == 0 else np.zeros_like(W)
            (out * torch.from_numpy(w)).sum().backward()  # the global loss is the sum of the ranks'
            for got, ref, rows in ((xm, x, si), (ym, y, sj), (bm, b, sj)):
                np.testing.assert_allclose(got.grad.numpy(), ref.grad.numpy()[:, rows], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(gm.grad.numpy(), g.grad.numpy(), rtol=1e-10, atol=1e-12)


def check_range_errors():
    """Ranges that differ on one rank, or that only the whole problem shows
    malformed (a range past the last point): ValueError everywhere, with one
    message."""
    bad = [np.array(a) for a in RANGES]
    bad[2][-1, 1] = M + 1  # the last redranges_j
    short = [np.array(a) for a in RANGES]
    short[2][-1, 1] -= 1
    for layout in distributed.LAYOUTS:
        xm, ym, bm, _, _ = mine(layout, X, Y, B)
        g = distributed.Genred("SqDist(x,y)*b", ALIASES, "Sum", axis=1, layout=layout)
        for ranges, want in ((short if rank == size - 1 else RANGES, "disagree on the ranges"),
                             (bad, "redranges_j"), (None if rank == size - 1 else RANGES, "disagree on the ranges")):
            if size == 1 and want.startswith("disagree"):
                continue
            try:
                g(xm, ym, bm, ranges=ranges)
            except ValueError as e:
                msg = str(e)
            else:
                raise AssertionError("no error raised")
            assert want in msg, msg
            msgs = comm.allgather(msg)
            assert len(set(msgs)) == 1, msgs


def check_exact(ranges=None):
    """Under the exact sum scheme, Sum, LogSumExp and SumSoftMaxWeight and the
    torch gradients of a Sum are one process's bits in every layout (a parameter's gradient adds the ranks'
    row sums in floating point: close only)."""
    pykp.set_sum_scheme("exact")
    try:
        for dtype in (np.float32, np.float64):
            x, y, b = X.astype(dtype), Y.astype(dtype), B.astype(dtype)
            for red, form, f2 in (("Sum", "Exp(-SqDist(x,y))*b-x", None), ("LogSumExp", "-SqDist(x,y)*9+b", None),
                                  ("SumSoftMaxWeight", "-SqDist(x,y)*9", "Concat(b,y)")):
                for axis in (0, 1):
                    full = pykp.Genred(form, ALIASES, red, axis=axis, formula2=f2)(x, y, b, ranges=ranges)
                    for layout in distributed.LAYOUTS:
                        xm, ym, bm, si, sj = mine(layout, x, y, b)
                        got = distributed.Genred(form, ALIASES, red, axis=axis, formula2=f2,
                                                 layout=layout)(xm, ym, bm, ranges=ranges)
                        rows = full[si if axis == 1 else sj]
                        assert np.array_equal(got, rows, equal_nan=True), (red, dtype, axis, layout)
        t = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)  # noqa: E731
        form, al = "Exp(-SqDist(x,y)*g)*b", ALIASES + ["g = Pm(1)"]
        W = np.random.default_rng(6).standard_normal((N, 1))
        for layout in distributed.LAYOUTS:
            x, y, b, g = t(X), t(Y), t(B), t([0.7])
            (pykp.Genred(form, al, "Sum", axis=1)(x, y, b, g, ranges=ranges) * torch.from_numpy(W)).sum().backward()
            xm, ym, bm, si, sj = mine(layout, X, Y, B)
            xm, ym, bm, gm = t(xm), t(ym), t(bm), t([0.7])
            out = distributed.Genred(form, al, "Sum", axis=1, layout=layout)(xm, ym, bm, gm, ranges=ranges)
            (out * torch.from_numpy(W[si])).sum().backward()
            assert np.array_equal(xm.grad.numpy(), x.grad.numpy()[si]), layout
            assert np.array_equal(ym.grad.numpy(), y.grad.numpy()[sj]), layout
            assert np.array_equal(bm.grad.numpy(), b.grad.numpy()[sj]), layout
            np.testing.assert_allclose(gm.grad.numpy(), g.grad.numpy(), rtol=1e-10, atol=1e-12)
    finally:
        pykp.set_sum_scheme("block")


def check_errors():
    for layout in distributed.LAYOUTS:
        xm, ym, bm, _, _ = mine(layout, X, Y, B)
        if rank == size - 1:
            bm = np.zeros((bm.shape[0], 2))  # another dimension than the others'
        try:
            distributed.Genred("SqDist(x,y)*b", ALIASES, "Sum", axis=1, layout=layout)(xm, ym, bm)
        except ValueError as e:
            msg = str(e)
        else:
            raise AssertionError("no error raised")
        msgs = comm.allgather(msg)
        assert len(set(msgs)) == 1, msgs


check_forward(np.float32)
check_forward(np.float64)
check_forward(np.float16)
check_complex()
check_lazy()
check_autograd("Sum")
check_autograd("LogSumExp")
check_autograd("Min")  # the gradient compares global indices (IndexJ) with the forward's
check_softmax_autograd()
check_double_backward(1)
check_double_backward(0)
for red in ("Sum", "LogSumExp"):
    check_param_double_backward(red, 1)
    check_param_double_backward(red, 0)
check_errors()
check_exact()
check_exact(RANGES)
check_forward(np.float32, RANGES)
check_forward(np.float64, RANGES)
check_autograd("Sum", RANGES)
check_autograd("LogSumExp", RANGES)
check_autograd("Min", RANGES)
check_softmax_autograd(RANGES)
check_double_backward(1, RANGES)
check_double_backward(0, RANGES)
check_batched_ranges()
check_range_errors()
print("OK rank %d of %d" % (rank, size))
sys.stdout.flush()
