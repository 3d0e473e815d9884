"""pykp.distributed under mpirun (1, 2 and 3 processes of this machine):
distributed_child.py checks every rank's rows against one process (forward,
both layouts and axes, float32, float64 and float16, complex128, LazyTensor, torch autograd of Sum,
LogSumExp, Min and SumSoftMaxWeight with replicated, split and parameter gradients, second derivatives
on both axes, parameter gradients differentiated again) and that bad input on one rank
raises the same error on all. Skipped when mpi4py or mpirun is missing."""
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


def test_reduce_refuses_ranges_before_any_mpi_call():
    """A LazyTensor's ranges are refused, not dropped (no communicator is touched)."""
    from pykp import Vi, Vj
    from pykp.distributed import reduce

    x, y = torch.rand(4, 3), torch.rand(5, 3)
    K = Vi(x).sqdist(Vj(y))
    K.ranges = tuple(torch.tensor(a) for a in ([[0, 4]], [1], [[0, 5]], [[0, 5]], [1], [[0, 4]]))
    with pytest.raises(NotImplementedError, match="ranges"):
        reduce(K, "Sum", axis=1, comm=object())
