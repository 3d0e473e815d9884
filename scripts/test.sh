#!/usr/bin/env bash
# test.sh — the whole test suite, from a fresh Debian 12 machine:
#
#   1. installs the Debian packages the build and the tests need, if missing;
#   2. Release build with -Werror in build-test/, runs every ctest suite
#      (ops, reductions incl. the large cases, errors, grad, gpu: NVRTC compiles
#      of every generated CUDA kernel, the ahead-of-time CUDA kernel table when
#      nvcc is installed, and the OpenCL engine on PoCL, the CUDA engine on
#      the CPU emulator of tests/gpu/emul/, bench smoke run, examples,
#      libkp_mpi under mpirun on 1 to 4 processes);
#   3. the same suites under AddressSanitizer + UndefinedBehaviorSanitizer
#      (LeakSanitizer included) in build-asan/, without the largest cases and
#      without the gpu ones that run PoCL or NVRTC-compiled code (not
#      instrumented), but with the kernel cache and the mock-driver CUDA tests;
#   4. scripts/check_install.sh: install, then build examples against the
#      installed library with pkg-config and with find_package;
#   5. the Python binding (pykp): pip-installed into a venv (python3 on PATH,
#      torch==2.13.0 and bindings/python/requirements-test.txt), then its
#      pytest suite;
#   6. the R binding (rkp): scripts/test_r.sh over the Release build;
#   7. the Octave/MATLAB binding: MEX gateway built with mkoctfile against
#      build-test, its octave-cli tests (scripts/test_octave.sh);
#   8. reliability: the README's demo on a debootstrapped bare Debian root
#      (scripts/fresh_check.sh), 60 s of fuzzing, ThreadSanitizer
#      (docs/testing.md).
#
# usage: scripts/test.sh          (exit status 0 only if everything passed)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs=$(nproc 2>/dev/null || echo 2)

# pocl-opencl-icd + ocl-icd-libopencl1: the OpenCL engine's tests run on the CPU through PoCL.
# libmpfr-dev: the exact sums' reference values (tests/test_device_exact.c).
# debootstrap: the fresh-machine check; clang, its runtime and libomp: fuzzing and ThreadSanitizer.
# llvm-dev (+ clang): the CPU engine's compiled kernels (KP_JIT, src/jit).
# openmpi-bin + libopenmpi-dev: libkp_mpi and its mpirun tests (pykp.distributed: mpi4py from pip).
packages=(build-essential cmake pkg-config libsleef-dev libcmocka-dev libmpfr-dev nettle-dev pocl-opencl-icd ocl-icd-libopencl1
          debootstrap clang libclang-rt-dev libomp-dev openmpi-bin libopenmpi-dev llvm-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "test.sh: installing ${missing[*]}"
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# NVRTC compiles every generated CUDA kernel in the gpu suites. Where the CUDA
# toolkit came without it, pip's nvidia-cuda-nvrtc provides the library.
nvrtc_args=()
if ! ls /usr/local/cuda*/lib64/libnvrtc.so* /usr/local/cuda*/targets/*/lib/libnvrtc.so* >/dev/null 2>&1 &&
   ! ldconfig -p 2>/dev/null | grep -q libnvrtc; then
  nvrtc=build-nvrtc/nvidia/cu13/lib/libnvrtc.so.13
  if [[ ! -e $nvrtc ]] && command -v python3 >/dev/null; then
    python3 -m pip install --quiet --target build-nvrtc "nvidia-cuda-nvrtc>=13,<14" ||
      echo "test.sh: pip could not install nvidia-cuda-nvrtc: the NVRTC compile checks will be skipped"
  fi
  if [[ -e $nvrtc ]]; then
    nvrtc_args=(-DKP_NVRTC_LIBRARY="$PWD/$nvrtc")
    export KP_NVRTC_LIBRARY="$PWD/$nvrtc"  # libkp finds it so at run time (pykp's CUDA mock tests)
  fi
fi

echo "== test.sh: Release build (-Werror) and all suites"
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Release -DKP_WERROR=ON "${nvrtc_args[@]}" >/dev/null
cmake --build build-test -j"$jobs"
ctest --test-dir build-test --output-on-failure -j2

echo "== test.sh: AddressSanitizer + UndefinedBehaviorSanitizer build and suites"
# KP_CUDA_AOT=OFF: the ahead-of-time CUDA kernel table (a few minutes of nvcc) is
# the same data in every build; the Release build above builds and tests it.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKP_WERROR=ON \
  -DKP_SANITIZE=address,undefined -DKP_BUILD_BENCH=OFF -DKP_CUDA_AOT=OFF >/dev/null
cmake --build build-asan -j"$jobs"
# "mpi": Open MPI's own allocations live until exit and LeakSanitizer reports them;
# libkp_mpi's libkp side (partial states) runs here through the "partial" suite.
KP_TEST_SKIP_LARGE=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -LE "large|gpu|mpi"
# The GPU checks that are libkp's own host code: kernel cache, engine refusals,
# the CUDA engine against the fake driver (NVRTC itself is not instrumented).
# pip's NVRTC fails its compiles under ASan here, so this pass runs without it,
# as on a machine without the CUDA toolkit (its tests then skip cleanly).
env -u KP_NVRTC_LIBRARY KP_TEST_SKIP_LARGE=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -R "^(gpu_kcache|gpu_noengine|gpu_cuda|gpu_cuda_mock.*)$"

echo "== test.sh: install and use the installed library"
scripts/check_install.sh -DKP_CUDA_AOT=OFF >/dev/null  # installing does not depend on the kernel table
echo "== test.sh: Python binding (pykp): build, install in a venv, pytest"
# The venv is made with the first python3 on PATH and pip: torch==2.13.0 (a CPU
# build, taken offline from the machine's wheel folder where it has one) and the
# test requirements (bindings/python/requirements-test.txt) from the package index.
python=${KP_TEST_PYTHON:-python3}
"$python" -m venv --help >/dev/null 2>&1 || {
  sudo=(); [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv python3-pip
}
root=$PWD
rm -rf build-py && "$python" -m venv build-py/venv
build-py/venv/bin/pip install --quiet --upgrade pip setuptools wheel
build-py/venv/bin/pip install --quiet -r bindings/python/requirements-test.txt
# LIBKP_PATH: pykp bundles the Release library built and tested above (with its
# ahead-of-time kernel table) instead of building libkp a second time.
LIBKP_PATH="$root/build-test/src" build-py/venv/bin/pip install --quiet --no-build-isolation ./bindings/python
build-py/venv/bin/python -c 'import sys, torch, numpy; print("pykp suite on Python %s, torch %s, numpy %s" % (sys.version.split()[0], torch.__version__, numpy.__version__))'
# PYKP_TEST_LARGE=1: the Hamiltonian test at N = 100,000, a few minutes.
# PYKP_MOCK_CUDA: the fake libcuda that the CUDA-tensor plumbing tests load (a
# missing file fails them instead of skipping).
(cd build-py && PYKP_MOCK_CUDA="$root/build-test/tests/gpu/libkp_mock_cuda.so" PYKP_TEST_LARGE=1 \
  venv/bin/python -m pytest -q "$root/bindings/python/tests")

echo "== test.sh: pykp's wheel in a fresh venv, and the documentation site (Sphinx, -W)"
PYTHON="$root/build-py/venv/bin/python" scripts/test_wheel.sh build-test/src/libkp.so
PYTHON="$root/build-py/venv/bin/python" scripts/build_docs.sh build-test/src/libkp.so

echo "== test.sh: R binding (rkp): R CMD build + check, testthat suite, examples"
scripts/test_r.sh --libkp-dir build-test

echo "== test.sh: Octave/MATLAB binding: MEX gateway over build-test, octave-cli tests"
scripts/test_octave.sh build-test

echo "== test.sh: the README's demo and the install check on a bare Debian root (debootstrap)"
# The base root is cached outside the checkout, so later runs on this machine reuse it.
scripts/fresh_check.sh --cache /var/cache/libkp-fresh-check

echo "== test.sh: 60 seconds of fuzzing (clang, ASan + UBSan) and the ThreadSanitizer stress test"
# The three targets, 20 s each (parse, exec, grad). --timeout 5: the long sessions
# hold 1 s (docs/testing.md); CI machines may be busier.
scripts/fuzz.sh --time 20 --timeout 5 parse exec grad
scripts/tsan.sh

echo "== test.sh: all passed"
