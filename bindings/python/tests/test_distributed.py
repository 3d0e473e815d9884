"""pykp.distributed under mpirun (1, 2 and 3 processes of this machine):
distributed_child.py checks every rank's rows against one process (forward,
both layouts and axes, float32, float64 and float16, complex128, LazyTensor, torch autograd of Sum,
LogSumExp, Min and SumSoftMaxWeight with replicated, split and parameter gradients, second derivatives
on both axes, parameter gradients differentiated again; the same on block-sparse ranges of the
whole problem, every reduction family, gradients and second derivatives included, and on two
batches with ranges in both, forward and gradients, a parameter shared by the batches included; Sums and their
gradients, LogSumExp and SumSoftMaxWeight bit for bit under the exact sum scheme) and that bad
input on one rank (ranges too) raises the same error on all. Skipped when mpi4py or mpirun is
missing."""
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("mpi4py")
torch = pytest.importorskip("torch")
MPIRUN = shutil.which("mpirun")
HERE = os.path.dirname(os.path.abspath(__file__))


def _env():
    env = dict(os.environ)
    # Open MPI refuses to run as root unless told; harmless otherwise. One thread per rank.
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", KP_NUM_THREADS="1",
               OMPI_MCA_btl="self,vader", OMP_NUM_THREADS="1", OMPI_MCA_mpi_yield_when_idle="1")
    # the child imports the pykp this process imported (the installed one in CI, with its libkp)
    import pykp

    parent = os.path.dirname(os.path.dirname(os.path.abspath(pykp.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([parent] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


@pytest.mark.skipif(MPIRUN is None, reason="mpirun (Open MPI) is not installed")
@pytest.mark.parametrize("np_", [1, 2, 3])
def test_distributed_matches_one_process(np_):
    env = _env()
    cmd = [MPIRUN, "-np", str(np_), "--oversubscribe", sys.executable, os.path.join(HERE, "distributed_child.py")]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for k in range(np_):
        assert "OK rank %d of %d" % (k, np_) in r.stdout


@pytest.mark.skipif(MPIRUN is None, reason="mpirun (Open MPI) is not installed")
def test_example_runs():
    """examples/python/distributed.py on 2 ranks (small): rank 0 checks its rows itself."""
    script = os.path.join(HERE, "..", "..", "..", "examples", "python", "distributed.py")
    if not os.path.exists(script):
        pytest.skip("the examples are not next to this test file")
    cmd = [MPIRUN, "-np", "2", "--oversubscribe", sys.executable, script, "--n-local", "300", "--m-local", "400"]
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "2 ranks: 600 x 800 points" in r.stdout


def test_bad_ranges_refused_before_any_mpi_call():
    """Ranges of the wrong type or shape are refused on the calling rank before
    any collective call (no communicator is touched), as pykp.Genred does."""
    from pykp import Vi, Vj
    from pykp.distributed import Genred, reduce

    x, y = torch.rand(4, 3), torch.rand(5, 3)
    K = Vi(x).sqdist(Vj(y))
    K.ranges = tuple(torch.tensor(a) for a in ([[0, 4]], [1], [[0, 5]], [[0, 5]], [1.0], [[0, 4]]))
    with pytest.raises(TypeError, match="slices_j"):
        reduce(K, "Sum", axis=1, comm=object())
    g = Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], "Sum", axis=1, comm=object())
    with pytest.raises(TypeError, match="6-tuple"):
        g(x, y, ranges=([[0, 4]], [1]))


def test_clip_keeps_the_part_of_the_whole():
    """_clip: a part's triple, in its own coordinates, holds the pairs of the
    whole problem's triple that fall in the part (against the dense masks),
    batches included."""
    import numpy as np
    from pykp.distributed import _clip

    rng = np.random.default_rng(0)
    nb, wr, wc = 2, 23, 31
    rows, slices, cols = [], [], []
    for b in range(nb):
        cuts = np.unique(np.r_[0, rng.integers(0, wr, 4), wr])
        for s, e in zip(cuts[:-1], cuts[1:]):
            if rng.random() < 0.2:
                continue  # rows in no cluster
            rows.append((b * wr + s, b * wr + e))
            c = np.unique(rng.integers(0, wc + 1, 2 * int(rng.integers(0, 4))))
            for cs, ce in zip(c[0::2], c[1::2]):
                cols.append((b * wc + cs, b * wc + ce))
            slices.append(len(cols))
    whole = (np.array(rows, np.int64).reshape(-1, 2), np.array(slices, np.int64),
             np.array(cols, np.int64).reshape(-1, 2))

    def mask(triple, nr, nc):
        m = np.zeros((nb * nr, nb * nc), bool)
        r, sl, c = triple
        for k, (s, e) in enumerate(r):
            for cs, ce in c[(sl[k - 1] if k else 0): sl[k]]:
                m[s:e, cs:ce] = True
        return m

    full = mask(whole, wr, wc)
    for r0, nr, c0, nc in ((0, wr, 0, wc), (5, 9, 7, 11), (0, 0, 3, 4), (20, 3, 0, 31), (4, 10, 30, 1), (3, 5, 9, 0)):
        part = _clip(whole, (wr, wc), (r0, nr), (c0, nc))
        got = mask(part[:3], nr, nc)
        for b in range(nb):
            want = full[b * wr + r0: b * wr + r0 + nr, b * wc + c0: b * wc + c0 + nc]
            assert np.array_equal(got[b * nr:(b + 1) * nr, b * nc:(b + 1) * nc], want), (r0, nr, c0, nc, b)
        assert got.sum() == sum(full[b * wr + r0: b * wr + r0 + nr, b * wc + c0: b * wc + c0 + nc].sum()
                                for b in range(nb))  # nothing outside the batches' blocks
