"""pykp's CUDA path with real results, without a GPU: libkp's CUDA emulator.

Runs tests/cuda_emul_cases.py (see its docstring for what it asserts) in a
child pytest with the fake CUDA driver (KP_CUDA_LIBRARY) and the emulator's
NVRTC (KP_NVRTC_LIBRARY: the generated CUDA C++ built for the CPU by the host
C++ compiler, run by the fake driver on launch), the built-in GPU kernel images
refused (MOCK_CUDA_REJECT_FATBIN=1), new device memory filled with NaN bytes
(MOCK_CUDA_GARBAGE=1: an output pykp or libkp leaves unwritten shows) and a
fresh kernel cache, and reports each of its cases as one test here. Compiling
a kernel takes 0.3-0.5 s (g++).

The mock driver is found as by test_cuda_mock.py ($PYKP_MOCK_CUDA, the build
tree of the loaded libkp, <repository>/build-test or build*/); the emulator is
$PYKP_EMUL_NVRTC, else libkp_emul_nvrtc.so next to the mock driver
(tests/cuda_child.py). Skipped, saying so, when either is missing; a path
given in PYKP_MOCK_CUDA or PYKP_EMUL_NVRTC that does not exist is a failure.
"""
import pytest

from cuda_child import case_names, check_case, find_emulator, find_mock, require, run_child

CASES = "cuda_emul_cases.py"


@pytest.fixture(scope="module")
def child_results(tmp_path_factory):
    mock = require(*find_mock(), "PYKP_MOCK_CUDA")
    emul = require(*find_emulator(mock), "PYKP_EMUL_NVRTC")
    tmp = tmp_path_factory.mktemp("cuda_emul")
    env = dict(KP_CUDA_LIBRARY=mock, KP_NVRTC_LIBRARY=emul, MOCK_CUDA_REJECT_FATBIN="1", MOCK_CUDA_GARBAGE="1",
               KP_CACHE_DIR=str(tmp / "kcache"))
    results, output = run_child(CASES, env, tmp)
    return results, output, "mock driver %s, emulator %s" % (mock, emul)


@pytest.mark.parametrize("case", case_names(CASES, dict(KP_CUDA_LIBRARY="collect-only",
                                                        KP_NVRTC_LIBRARY="collect-only")))
def test_cuda_path_on_the_emulator(child_results, case):
    results, output, what = child_results
    check_case(results, output, case, what)
