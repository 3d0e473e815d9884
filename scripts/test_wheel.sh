#!/usr/bin/env bash
# test_wheel.sh — pykp's wheel and sdist, as a user installs them.
#
#   1. `pip wheel ./bindings/python` with LIBKP_PATH pointing at an existing
#      libkp build (no CMake run; the wheel bundles that library): the wheel
#      holds pykp/libkp.so and a platform tag (not py3-none-any);
#   2. a fresh venv (the machine's python3), the wheel installed with
#      `pip install --no-index` from a folder holding only the wheel and a numpy
#      wheel, with PATH reduced to the venv (no compiler, no CMake reachable);
#   3. a smoke test from outside the repository, without LIBKP_PATH/PYTHONPATH:
#      pykp loads its bundled libkp and a Genred, a LazyTensor reduction and
#      kernel_product agree with dense NumPy;
#   4. the sdist: made, it must carry libkp's sources (libkp-src/CMakeLists.txt,
#      include/kp.h, src/); with PYKP_TEST_SDIST_BUILD=1 it is also built into a
#      wheel from those sources (CMake, minutes) and smoke-tested the same way.
#
# usage: scripts/test_wheel.sh [path/to/libkp.so]
#   default library: build/src/libkp.so (configure and build it first:
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build)
#   PYTHON: the Python that builds (default: python3; it needs pip, setuptools
#   >= 64 and, for the numpy wheel, access to the package index or its cache).
set -euo pipefail
case "${1:-}" in -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
lib=${1:-build/src/libkp.so}
py=${PYTHON:-python3}
[[ -f $lib ]] || { echo "test_wheel.sh: no libkp at $lib (build it first, or pass its path)" >&2; exit 2; }
lib=$(realpath "$lib")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== test_wheel.sh: work dir $work, library $lib"

# 1. the wheel, bundling the given library (no build isolation: offline-safe)
LIBKP_PATH=$lib "$py" -m pip wheel --no-deps --no-build-isolation -q -w "$work/wheels" ./bindings/python
rm -rf bindings/python/build bindings/python/pykp.egg-info
whl=$(ls "$work"/wheels/pykp-*.whl)
echo "wheel: $(basename "$whl")"
case $(basename "$whl") in *-none-any.whl) echo "FAIL: the wheel has no platform tag" >&2; exit 1 ;; esac
"$py" - "$whl" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
assert "pykp/libkp.so" in names, names
assert "pykp/_version.py" in names, names
meta = [n for n in names if n.endswith("METADATA")][0]
text = zipfile.ZipFile(sys.argv[1]).read(meta).decode()
for needed in ("Provides-Extra: torch", "Provides-Extra: ot", "Provides-Extra: shapes", "Requires-Dist: numpy",
               "License-Expression: MIT", "License-File: LICENSE"):
    assert needed in text, needed
assert any(n.endswith("licenses/LICENSE") for n in names), names
print("wheel contents and metadata: ok")
EOF

# numpy for the fresh venv, as a wheel next to ours (pip's cache or the index)
numpy_version=$("$py" -c "import numpy; print(numpy.__version__)" 2>/dev/null || echo "")
"$py" -m pip download -q --only-binary=:all: -d "$work/wheels" "numpy${numpy_version:+==$numpy_version}"

smoke() { # $1: wheel to install into a fresh venv
  rm -rf "$work/venv"
  python3 -m venv "$work/venv"
  # PATH: the venv only, so no compiler or CMake could be run by the install
  env -i HOME="$work" PATH="$work/venv/bin" "$work/venv/bin/python" -m pip install -q --no-index \
    --find-links "$work/wheels" "$1"
  cd "$work"
  env -i HOME="$work" PATH="$work/venv/bin" "$work/venv/bin/python" - <<'EOF'
import os
import numpy as np
import pykp

lib = pykp.library_path
assert lib.startswith(os.path.dirname(pykp.__file__)), ("not the bundled libkp", lib)
rng = np.random.default_rng(0)
x, y, b = rng.random((200, 3)), rng.random((300, 3)), rng.random((300, 2))
ref = np.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) / 0.25) @ b
g = pykp.Genred("Exp(-SqDist(x,y)*g)*b", ["x=Vi(3)", "y=Vj(3)", "g=Pm(1)", "b=Vj(2)"], axis=1)
assert np.allclose(g(x, y, np.array([4.0]), b), ref, rtol=1e-12)
X, Y = pykp.LazyTensor(x[:, None, :]), pykp.LazyTensor(y[None, :, :])
assert np.allclose((-((X - Y) ** 2).sum(-1) * 4.0).exp() @ b, ref, rtol=1e-12)
assert np.allclose(pykp.kernel_product(x, y, b, "gaussian", sigma=0.5), ref, rtol=1e-12)
print("smoke test: pykp %s, bundled %s: ok" % (pykp.__version__, os.path.basename(lib)))
EOF
  cd "$repo"
}
smoke "$whl"

# 4. the sdist carries libkp's sources
"$py" - "$work/sdist" <<'EOF'
import os, subprocess, sys, tarfile
out = sys.argv[1]
subprocess.check_call([sys.executable, "setup.py", "-q", "sdist", "-d", out], cwd="bindings/python",
                      stdout=subprocess.DEVNULL)
tar = [f for f in os.listdir(out) if f.endswith(".tar.gz")][0]
names = tarfile.open(os.path.join(out, tar)).getnames()
top = names[0].split("/")[0]
for needed in ("libkp-src/CMakeLists.txt", "libkp-src/include/kp.h", "libkp-src/src/CMakeLists.txt",
               "libkp-src/cmake/install.cmake", "LICENSE", "pyproject.toml", "setup.py", "pykp/genred.py"):
    assert "%s/%s" % (top, needed) in names, needed
print("sdist %s carries libkp's sources: ok" % tar)
EOF
rm -rf bindings/python/build bindings/python/pykp.egg-info bindings/python/libkp-src

if [[ ${PYKP_TEST_SDIST_BUILD:-0} == 1 ]]; then
  echo "== building the sdist from source (CMake)"
  rm -f "$work"/wheels/pykp-*.whl
  LIBKP_CMAKE_ARGS="-DKP_CUDA_AOT=OFF" LIBKP_BUILD_JOBS=${LIBKP_BUILD_JOBS:-2} env -u LIBKP_PATH \
    "$py" -m pip wheel --no-deps --no-build-isolation -q -w "$work/wheels" "$work"/sdist/pykp-*.tar.gz
  smoke "$(ls "$work"/wheels/pykp-*.whl)"
fi
echo "== test_wheel.sh: all passed"
