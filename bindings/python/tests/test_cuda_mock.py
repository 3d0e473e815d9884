"""pykp's CUDA plumbing against libkp's fake CUDA driver, without a GPU.

Runs tests/cuda_mock_cases.py (see its docstring for what it asserts) in a
child pytest with KP_CUDA_LIBRARY set to the mock driver, so that the mock is
never loaded in this process (where a real driver may serve
tests/test_cuda_tensors.py), and reports each of its cases as one test here.

The mock driver is the C build's tests/gpu/libkp_mock_cuda.so (target
kp_mock_cuda, tests/gpu/mock_cuda.c). It is found through, in this order:
  - $PYKP_MOCK_CUDA (a path; a missing file there is a failure, not a skip);
  - tests/gpu/ of the build tree of the libkp pykp loaded (LIBKP_PATH=<build>/src);
  - tests/gpu/ of <repository>/build-test (scripts/test.sh) or of another
    <repository>/build*/ tree not built with sanitizers.
Skipped, saying so, when none is found (e.g. pykp installed without the C build).
The search and the child run are tests/cuda_child.py, shared with test_cuda_emul.py.
"""
import pytest

from cuda_child import case_names, check_case, find_mock, require, run_child

CASES = "cuda_mock_cases.py"


@pytest.fixture(scope="module")
def child_results(tmp_path_factory):
    path = require(*find_mock(), "PYKP_MOCK_CUDA")
    tmp = tmp_path_factory.mktemp("cuda_mock")
    env = dict(KP_CUDA_LIBRARY=path, KP_CACHE_DIR=str(tmp / "kcache"))
    results, output = run_child(CASES, env, tmp)
    return results, output, path


@pytest.mark.parametrize("case", case_names(CASES, dict(KP_CUDA_LIBRARY="collect-only")))
def test_cuda_path_against_the_mock_driver(child_results, case):
    results, output, path = child_results
    check_case(results, output, case, "mock driver %s" % path)
