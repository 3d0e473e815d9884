#!/usr/bin/env bash
# Builds the Octave/MATLAB binding (bindings/matlab: the MEX gateway kp_mex)
# against a libkp build and runs its tests with octave-cli.
#
# usage: scripts/test_octave.sh [--help] [BUILD_DIR [PATTERN]]
#   BUILD_DIR  a CMake build folder of libkp (default: build/, configured and
#              built here with -DKP_CUDA_AOT=OFF if it has no libkp.so yet),
#              or a folder holding libkp.so itself (e.g. an install's lib/)
#   PATTERN    run only the test files whose name matches (an Octave regexp),
#              e.g. 'errors|gradients'
# Installs the Debian packages octave and liboctave-dev when octave-cli or
# mkoctfile is missing. Prints one line per test and "N passed, M failed";
# exits nonzero on any failure. Takes about 1 minute on 2 cores (the N = M =
# 10^5 case most of it).
# KP_OCTAVE_VALGRIND=1: runs Octave under valgrind's memcheck (any invalid
# read/write or use of uninitialised memory fails the run; installs valgrind
# if missing), by default without the large and examples files (~8 min).
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
pattern=${2:-}

if ! command -v octave-cli >/dev/null || ! command -v mkoctfile >/dev/null; then
    echo "test_octave: installing octave and liboctave-dev"
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q octave liboctave-dev
fi

libdir=""
for d in "$build/src" "$build" "$build/lib"; do
    if [[ -e "$d/libkp.so" ]]; then libdir=$(cd "$d" && pwd); break; fi
done
if [[ -z "$libdir" ]]; then
    echo "test_octave: building libkp in $build"
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DKP_CUDA_AOT=OFF >/dev/null
    cmake --build "$build" -j2 --target kp >/dev/null
    libdir=$(cd "$build/src" && pwd)
fi
echo "test_octave: MEX gateway against $libdir/libkp.so"
cd "$root"
runner=()
if [[ "${KP_OCTAVE_VALGRIND:-0}" == "1" ]]; then
    if ! command -v valgrind >/dev/null; then
        sudo=""
        [[ $(id -u) -ne 0 ]] && sudo="sudo"
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q valgrind
    fi
    runner=(valgrind -q --error-exitcode=99 --leak-check=no)
    pattern=${pattern:-'^test_(reductions|gradients|errors|api|batches)$'}
    export KP_OCTAVE_VALGRIND
fi
# --no-history: Octave 7 writes its command history at exit into
# ~/.local/share/octave/, and where that folder does not exist (a fresh
# account, CI) it prints "error: ignoring const execution_exception& while
# preparing to exit" and still exits 0. An error Octave prints on stderr
# outside the tests (at exit, or from the gateway's mexAtExit) fails the run.
errlog=$(mktemp)
trap 'rm -f "$errlog"' EXIT
set +e
"${runner[@]}" octave-cli --no-gui --norc --no-history -q --eval "
  addpath('$root/bindings/matlab');
  kp_build('$libdir', '$root/include');
  addpath('$root/bindings/matlab/tests');
  exit(run_tests('$pattern') > 0);" 2> >(tee "$errlog" >&2)
rc=$?
set -e
wait
if grep -q '^error:' "$errlog"; then
    echo "test_octave: octave-cli printed errors outside the tests (above)"
    rc=1
fi
exit $rc
