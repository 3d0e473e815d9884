"""Runs a cases file against libkp's fake CUDA driver in a child pytest (not a test module).

Shared by test_cuda_mock.py (cuda_mock_cases.py: the plumbing, kernels
recorded) and test_cuda_emul.py (cuda_emul_cases.py: results, kernels run by
the CUDA emulator). The child process is where the fake driver is loaded
(through KP_CUDA_LIBRARY, read by libkp when its CUDA engine first starts), so
that it never replaces a real driver in the main test process; each case of
the child is reported as one test of the parent (`check_case`).

The mock driver is the C build's tests/gpu/libkp_mock_cuda.so (target
kp_mock_cuda, tests/gpu/mock_cuda.c). `find_mock` looks, in this order, at:
  - $PYKP_MOCK_CUDA (a path; a missing file there is a failure, not a skip);
  - tests/gpu/ of the build tree of the libkp pykp loaded (LIBKP_PATH=<build>/src);
  - tests/gpu/ of <repository>/build-test (scripts/test.sh) or of another
    <repository>/build*/ tree not built with sanitizers.
The emulator's NVRTC (target kp_emul_nvrtc, tests/gpu/emul/emul_nvrtc.c) is
found by `find_emulator`: $PYKP_EMUL_NVRTC, else libkp_emul_nvrtc.so next to
the mock driver (the same tests/gpu/ folder).
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
EMUL_NAME = "libkp_emul_nvrtc.so"


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


def find_emulator(mock):
    """(path or None, why not found) of the emulator's NVRTC, given the mock driver's path."""
    env = os.environ.get("PYKP_EMUL_NVRTC")
    if env:
        return env, None
    p = os.path.join(os.path.dirname(mock), EMUL_NAME)
    if os.path.isfile(p):
        return p, None
    return None, ("no %s next to the mock driver %s: the C build makes it (target kp_emul_nvrtc) when it finds a "
                  "host C++ compiler; or set PYKP_EMUL_NVRTC" % (EMUL_NAME, mock))


def require(path, why, env_name):
    """path, found by find_mock or find_emulator: skips (saying why) when none was found, fails
    when the path named in $env_name does not exist."""
    if path is None:
        pytest.skip(why)
    if not os.path.isfile(path):
        pytest.fail("%s=%s: no such file" % (env_name, path))
    return path


def case_names(cases, env):
    """The test ids of the cases file `cases` (a name in this folder), as the
    child pytest names them. env: what the cases file needs set to be collected."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", os.path.join(HERE, cases)],
        env=dict(os.environ, **env), capture_output=True, text=True,
    )
    names = [line.split("::", 1)[1] for line in out.stdout.splitlines() if "::" in line]
    return names or ["<collection of %s failed: %s>" % (cases, (out.stdout + out.stderr)[-2000:])]


def run_child(cases, env, tmp, timeout=900):
    """Runs the cases file `cases` in a child pytest with env added to this
    process's environment. Returns ({test id: (status, text)}, the end of its output)."""
    xml = os.path.join(str(tmp), "results.xml")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", xml, os.path.join(HERE, cases)],
        env=dict(os.environ, **env), capture_output=True, text=True, timeout=timeout,
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
    return results, proc.stdout[-6000:] + proc.stderr[-3000:]


def check_case(results, output, case, what):
    """Passes, skips or fails as the child's case did. what: the libraries used, for the messages."""
    if case not in results:
        pytest.fail("case %s did not run in the child pytest (%s):\n%s" % (case, what, output))
    status, text = results[case]
    if status == "skipped":
        pytest.skip(text.strip().splitlines()[0] if text.strip() else "skipped in the child")
    if status != "passed":
        pytest.fail("%s (%s):\n%s" % (status, what, text[-6000:]))
