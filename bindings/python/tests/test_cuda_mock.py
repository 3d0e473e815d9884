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
"""
import glob
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from pykp import _lib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
MOCK_NAME = "libkp_mock_cuda.so"


def _sanitized(build):
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("KP_SANITIZE:"):
                    return line.split("=", 1)[1].strip() != ""
    except OSError:
        pass
    return False


def find_mock():
    """(path or None, why not found)."""
    env = os.environ.get("PYKP_MOCK_CUDA")
    if env:
        return env, None
    builds = []
    lib_dir = os.path.dirname(os.path.realpath(_lib.library_path))
    builds.append(os.path.dirname(lib_dir))  # <build>/src/libkp.so -> <build>
    builds.append(os.path.join(REPO, "build-test"))
    builds += sorted(glob.glob(os.path.join(REPO, "build*")))
    for b in builds:
        p = os.path.join(b, "tests", "gpu", MOCK_NAME)
        if os.path.isfile(p) and not _sanitized(b):  # a sanitized mock needs the sanitizer runtime preloaded
            return p, None
    return None, "no %s in %s: build the C library (tests/gpu, target kp_mock_cuda) or set PYKP_MOCK_CUDA" % (
        MOCK_NAME, ", ".join(os.path.join(b, "tests", "gpu") for b in builds[:3]))


def case_names():
    """The test ids of cuda_mock_cases.py, as the child pytest names them."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         os.path.join(HERE, "cuda_mock_cases.py")],
        env=dict(os.environ, KP_CUDA_LIBRARY="collect-only"), capture_output=True, text=True,
    )
    names = [line.split("::", 1)[1] for line in out.stdout.splitlines() if "::" in line]
    return names or ["<collection of cuda_mock_cases.py failed: %s>" % (out.stdout + out.stderr)[-2000:]]


@pytest.fixture(scope="module")
def child_results(tmp_path_factory):
    path, why = find_mock()
    if path is None:
        pytest.skip(why)
    if not os.path.isfile(path):
        pytest.fail("PYKP_MOCK_CUDA=%s: no such file" % path)
    tmp = tmp_path_factory.mktemp("cuda_mock")
    xml = str(tmp / "results.xml")
    env = dict(os.environ, KP_CUDA_LIBRARY=path, KP_CACHE_DIR=str(tmp / "kcache"))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", xml,
         os.path.join(HERE, "cuda_mock_cases.py")],
        env=env, capture_output=True, text=True, timeout=900,
    )
    results = {}
    if os.path.exists(xml):
        for tc in ET.parse(xml).iter("testcase"):
            name = tc.get("name")
            status, text = "passed", ""
            for tag in ("failure", "error", "skipped"):
                e = tc.find(tag)
                if e is not None:
                    status = tag
                    text = (e.get("message") or "") + "\n" + (e.text or "")
                    break
            if name in results and status == "passed":  # keep a setup/teardown error
                continue
            results[name] = (status, text)
    return results, proc.stdout[-6000:] + proc.stderr[-3000:], path


@pytest.mark.parametrize("case", case_names())
def test_cuda_path_against_the_mock_driver(child_results, case):
    results, output, path = child_results
    if case not in results:
        pytest.fail("case %s did not run in the child pytest (mock %s):\n%s" % (case, path, output))
    status, text = results[case]
    if status == "skipped":
        pytest.skip(text.strip().splitlines()[0] if text.strip() else "skipped in the child")
    if status != "passed":
        pytest.fail("%s (mock driver %s):\n%s" % (status, path, text[-6000:]))
