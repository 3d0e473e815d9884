#!/usr/bin/env bash
# gpu_check.sh — everything that still needs an NVIDIA GPU, in one prepared run
# (not yet run on a GPU: on 2 cores without one it takes 5 minutes, mostly the
# build; each step has its own time limit). Logs and a
# summary go to $OUT (the device tool's output folder; default ./gpu-check-out),
# seven files at most:
#
#   summary.md      the card, each step's status and time, the benchmark tables
#   build.log       1. Release build in build-gpu/ with the ahead-of-time kernels
#                      (nvcc) for sm_75/80/90; warnings do not stop it there (the
#                      machine's compiler may be newer than CI's, which builds with
#                      -Werror)
#   ctest.log       2. the CUDA suites of `ctest -L gpu`: the GPU case list against
#                      the CPU three ways (host arrays, device arrays on a stream,
#                      AUTO), with split-j + merge, with 3 rows per thread; partial
#                      states (dense, ranged, exact sums) against the CPU's; the op,
#                      reduction, gradient and joint suites on the CUDA engine; the
#                      sum schemes; the kernel cache; the ahead-of-time table; the
#                      quick GPU benchmark (NVRTC compiles and the PoCL suites run in CI)
#   bench_gpu.log   3. kp_bench_gpu: Gaussian kernel product, N = M in {1e4, 1e5,
#                      1e6}, forward and forward + backward, both math modes,
#                      NVRTC and first-call times, the card's fp32 floor; then
#                      N = M = 1e4 under the exact sum scheme (KP_SUM_EXACT)
#   pytest.log      4. pykp on CUDA tensors (test_cuda_tensors.py, test_cuda_aot.py),
#                      then pykp's whole suite
#   bench_torch.log 5. bench/python/bench_torch.py --device cuda: pykp against
#                      dense torch on the same GPU
#
# The machine has no package registry: where SLEEF, nettle or cmocka is missing,
# the Debian packages that scripts/gpu_check_prepare.sh saved in .gpu-deps/ are
# unpacked into a private prefix (never into /) and used from there. Every step
# runs, under its own time limit, even when an earlier one failed; the exit
# status is nonzero when any step failed. With no GPU the CUDA checks report
# "SKIPPED: no CUDA device" and pass, so the script can be tried anywhere.
#
# usage, from the development machine (device tool):
#   scripts/gpu_check_prepare.sh                     # once, here: fills .gpu-deps/
#   run(command="scripts/gpu_check.sh", carry=[".gpu-deps"], timeout_s=600)
# Should one call's 600 s not be enough, split it over two calls on the warm
# machine (build-gpu/ stays there between calls): KP_GPU_CHECK_SKIP="pytest_cuda
# pytest bench_torch" first, then KP_GPU_CHECK_SKIP="build ctest bench_gpu".
# environment: OUT (output folder), PYTHON (a python3 with torch),
#   KP_GPU_CHECK_DEPS=1 (use .gpu-deps even where the system has the packages:
#   to test this script), KP_GPU_CHECK_SKIP="pytest bench_torch" (steps to skip).
set -uo pipefail
case "${1:-}" in -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
OUT=${OUT:-$root/gpu-check-out}
mkdir -p "$OUT"
summary=$OUT/summary.md
jobs=$(nproc 2>/dev/null || echo 2)
failed=0

say() { printf '%s\n' "$*" | tee -a "$summary"; }

# step NAME LOG SECONDS 'SHELL COMMAND': runs the command (in bash, from the
# repository root) with a time limit, output appended to $OUT/LOG, and records
# its status and time in the summary.
step() {
  local name=$1 log=$OUT/$2 limit=$3 cmd=$4
  if [[ " ${KP_GPU_CHECK_SKIP:-} " == *" $name "* ]]; then
    say "| $name | skipped (KP_GPU_CHECK_SKIP) | |"
    return
  fi
  local t0=$SECONDS rc
  echo "== $name: $cmd" >>"$log"
  timeout --kill-after=10 "$limit" bash -c "cd '$root' && $cmd" >>"$log" 2>&1
  rc=$?
  local what="passed"
  case $rc in
  0) ;;
  77) what="skipped: no CUDA device (see the log)" ;; # kp_bench_gpu's exit status without a GPU
  124 | 137) what="TIMED OUT after ${limit} s" failed=1 ;;
  *) what="FAILED (exit $rc)" failed=1 ;;
  esac
  say "| $name | $what | $((SECONDS - t0)) s |"
}

: >"$summary"
say "# libkp GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
say ""
say '```'
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.sm --format=csv 2>&1 | tee -a "$summary"
else
  say "nvidia-smi: not found (no NVIDIA driver)"
fi
if command -v nvcc >/dev/null; then nvcc --version 2>&1 | grep -i release | tee -a "$summary"; else say "nvcc: not found"; fi
echo "$(uname -m), $jobs cores, $(gcc --version 2>&1 | head -1)" | tee -a "$summary"
say '```'
say ""

# ---- 0. dependencies: the system's, else the carried Debian packages
prefix=""
need_deps=${KP_GPU_CHECK_DEPS:-0}
for h in sleef.h nettle/sha2.h cmocka.h; do
  echo "#include <$h>" | gcc -E -x c - >/dev/null 2>&1 || need_deps=1
done
if [[ $need_deps == 1 ]]; then
  prefix=/tmp/kp-gpu-deps
  rm -rf "$prefix" && mkdir -p "$prefix"
  if ! ls "$root"/.gpu-deps/*.deb >/dev/null 2>&1; then
    say "dependencies: SLEEF, nettle or cmocka missing and no .gpu-deps/ (run scripts/gpu_check_prepare.sh and carry .gpu-deps)"
  fi
  for deb in "$root"/.gpu-deps/*.deb; do
    [[ -e $deb ]] || continue
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$deb" "$prefix"
    else # a Debian 12 .deb is an ar archive holding data.tar.xz
      ar p "$deb" data.tar.xz | tar -xJ -C "$prefix"
    fi
  done
  libdir=$(dirname "$(find "$prefix" -name 'libsleef.so*' | head -1)")
  export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export CPATH="$prefix/usr/include${CPATH:+:$CPATH}"
  say "dependencies: unpacked $(ls "$root"/.gpu-deps/*.deb 2>/dev/null | wc -l) carried packages into $prefix"
  say ""
fi

say "| step | result | time |"
say "|---|---|---:|"

# ---- 1. build
cmake_args="-S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DKP_WERROR=OFF -DKP_CUDA_AOT=AUTO"
[[ -n $prefix ]] && cmake_args+=" -DCMAKE_PREFIX_PATH=$prefix/usr"
step build build.log 420 "cmake $cmake_args && cmake --build build-gpu -j$jobs"
grep -E "SLEEF_LIBRARY|NETTLE_LIBRARY|CMOCKA_LIBRARY|KP_CUDA_AOT" build-gpu/CMakeCache.txt >>"$OUT/build.log" 2>/dev/null

# ---- 2. CUDA test suites (the NVRTC-compile and PoCL suites run in CI)
# NVRTC compiles (one process each) dominate: as many at once as there are cores, up to 8.
ctest_jobs=$((jobs < 8 ? jobs : 8))
step ctest ctest.log 420 "ctest --test-dir build-gpu -L gpu -E 'gpu_nvrtc|opencl' -j$ctest_jobs --output-on-failure"

# ---- 3. the GPU benchmark
step bench_gpu bench_gpu.log 300 "build-gpu/bench/kp_bench_gpu"
step bench_gpu_exact bench_gpu.log 120 "build-gpu/bench/kp_bench_gpu --quick --sum-scheme exact"

# ---- 4. pykp on CUDA tensors, then its whole suite (from the source tree, on the library just built)
py=${PYTHON:-}
if [[ -z $py ]]; then
  for c in python3 /usr/bin/python3; do
    if "$c" -c "import torch" >/dev/null 2>&1; then py=$c; break; fi
  done
fi
export LIBKP_PATH=$root/build-gpu/src/libkp.so PYTHONPATH=$root/bindings/python${PYTHONPATH:+:$PYTHONPATH}
export PYKP_MOCK_CUDA=$root/build-gpu/tests/gpu/libkp_mock_cuda.so
if [[ -z $py ]]; then
  say "| pytest | FAILED (no python3 with torch) | |"
  failed=1
else
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" >>"$OUT/pytest.log" 2>&1
  tests=bindings/python/tests
  step pytest_cuda pytest.log 240 \
    "$py -m pytest -q -rs -p no:cacheprovider $tests/test_cuda_tensors.py $tests/test_cuda_aot.py $tests/test_cuda_mock.py"
  step pytest pytest.log 300 "$py -m pytest -q -p no:cacheprovider $tests"
  # ---- 5. pykp against dense torch on the GPU
  if "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; then
    step bench_torch bench_torch.log 300 \
      "$py bench/python/bench_torch.py --device cuda --sizes 1000,10000,100000,1000000 --dense-limit-gb 60"
  else
    say "| bench_torch | skipped: this torch sees no CUDA device | |"
  fi
fi

say ""
say "## Benchmark tables"
for f in bench_gpu.log bench_torch.log; do
  [[ -f $OUT/$f ]] || continue
  say ""
  say "From $f:"
  say ""
  grep -E '^(\||device|# |machine|timing|\(first-call|SKIPPED)' "$OUT/$f" | tee -a "$summary" >/dev/null
done
say ""
say "$([[ $failed == 0 ]] && echo "all steps passed" || echo "some steps FAILED: see the logs")"
exit $failed
