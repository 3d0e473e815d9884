#!/usr/bin/env bash
# demo.sh — the first command to run: installs what is missing (Debian/Ubuntu),
# builds libkp and kp_demo in build-demo/ (Release) and runs the demo
# (examples/demo.c: 200,000 x 200,000 Gaussian kernel product, log-sum-exp and
# 5-nearest-neighbours, without the 160 GB matrix).
#
# usage: scripts/demo.sh [N]      (N = M points per cloud, default 200000)
set -euo pipefail
case "${1:-}" in -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# gcc's own OpenMP runtime (libgomp, part of build-essential) is used.
packages=(build-essential cmake pkg-config libsleef-dev nettle-dev)
missing=()
if command -v dpkg >/dev/null 2>&1; then
  for p in "${packages[@]}"; do
    if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
      missing+=("$p")
    fi
  done
else
  echo "demo.sh: not a Debian system; make sure a C compiler, cmake and SLEEF are installed" >&2
fi
if ((${#missing[@]})); then
  echo "demo.sh: installing ${missing[*]}"
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "demo.sh: run as root or install sudo" >&2; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    "${missing[@]}"
fi

# KP_CUDA_AOT=OFF: the demo runs on the CPU; the ahead-of-time CUDA kernel table
# (minutes of nvcc when the CUDA toolkit is installed) is for GPU users.
# KP_BUILD_TESTS/BENCH=OFF: the demo needs only the packages above (the test
# suites need cmocka, which scripts/test.sh installs). scripts/fresh_check.sh
# runs this script on a bare Debian root to keep it that way.
cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=Release -DKP_CUDA_AOT=OFF \
  -DKP_BUILD_TESTS=OFF -DKP_BUILD_BENCH=OFF
cmake --build build-demo --target kp_demo -j"$(nproc)"
exec ./build-demo/examples/kp_demo "$@"
