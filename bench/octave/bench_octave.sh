#!/usr/bin/env bash
# Benchmark of the Octave binding: the Gaussian kernel product (D = 3) from
# Octave against the C call (overhead in %) and the dense Octave code, for
# N = M = 1e4 and 1e5, double and single, in one run (bench_octave.m says what
# is timed). Prints Markdown tables for docs/benchmarks.md. About 3-5 minutes
# on 2 cores (the 1e5 rows are single calls of 15-35 s each).
#
# usage: bench/octave/bench_octave.sh [--help] [BUILD_DIR [SIZES]]
#   BUILD_DIR  libkp's CMake build folder (default build/, built if needed)
#   SIZES      an Octave vector of N = M values (default "[1e4 1e5]")
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
sizes=${2:-[1e4 1e5]}
if [[ ! -e "$build/src/libkp.so" ]]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DKP_CUDA_AOT=OFF >/dev/null
    cmake --build "$build" -j2 --target kp >/dev/null
fi
libdir=$(cd "$build/src" && pwd)
cbin="$build/c_gauss_octave_bench"
cc -O2 -std=c11 -I"$root/include" "$root/bench/octave/c_gauss.c" -L"$libdir" -lkp -Wl,-rpath,"$libdir" -o "$cbin"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $(octave-cli --version | head -1)"
octave-cli --no-gui --norc --no-history -q --eval "
  addpath('$root/bindings/matlab'); kp_build('$libdir', '$root/include');
  addpath('$root/bench/octave'); bench_octave('$cbin', $sizes);" 2>&1 | grep -v 'ignoring const execution_exception'
