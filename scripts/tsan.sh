#!/usr/bin/env bash
# tsan.sh — ThreadSanitizer build and run of the thread stress test.
#
# Builds libkp and tests/test_threads.c with clang -fsanitize=thread in
# build-tsan/ and runs the test (T threads, each with its own context; shared
# formulas and plans: what kp.h promises, see the test's header), with each
# libkp call using 1 or 2 OpenMP threads. LLVM's OpenMP runtime (libomp) is
# used with its ThreadSanitizer support (libarcher, loaded as an OMPT tool),
# and libomp itself (not instrumented) is ignored (ignore_noninstrumented_modules),
# so the runtime's own synchronization is not reported as races. Any report
# fails the run (exit 66).
#
# usage: scripts/tsan.sh [--threads T] [--rounds R] [--test NAME...]
#   --threads T   threads of the stress test (default 8)
#   --rounds R    calls per thread (default 3)
#   --test NAME   also run this ctest entry of the TSan build (e.g. joint, grad)
#   -h, --help    this text
# Needs clang, libclang-rt-14-dev, libomp-14-dev and libcmocka-dev.
set -euo pipefail
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
threads=8 rounds=3 extra=()
while (($#)); do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --test) extra+=("$2"); shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "tsan.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

cc=$(command -v clang || command -v clang-14 || true)
[[ -n "$cc" ]] || { echo "tsan.sh: clang not found" >&2; exit 1; }
build="$root/build-tsan"
echo "== tsan.sh: build ($cc -fsanitize=thread) in $build"
CC="$cc" cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKP_SANITIZE=thread \
  -DKP_BUILD_BENCH=OFF -DKP_BUILD_EXAMPLES=OFF -DKP_CUDA_AOT=OFF >/dev/null
targets=(test_threads)
for t in "${extra[@]}"; do targets+=("test_$t"); done
cmake --build "$build" -j2 --target "${targets[@]}" >/dev/null

archer=$("$cc" -print-file-name=libarcher.so) # the bare name when not in clang's own dirs
[[ -f "$archer" ]] || archer=$(find /usr/lib/llvm-*/lib -name libarcher.so 2>/dev/null | head -n 1)
[[ -f "$archer" ]] || { echo "tsan.sh: libarcher.so not found (apt-get install libomp-14-dev)" >&2; exit 1; }
export OMP_TOOL_LIBRARIES="$archer"
export TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1:ignore_noninstrumented_modules=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
export KP_TEST_THREADS="$threads" KP_TEST_ROUNDS="$rounds" KP_TEST_SKIP_LARGE=1

echo "== tsan.sh: test_threads ($threads threads, $rounds rounds)"
start=$(date +%s)
"$build/tests/test_threads"
for t in "${extra[@]}"; do
  echo "== tsan.sh: $t"
  ctest --test-dir "$build" --output-on-failure -R "^$t\$"
done
echo "== tsan.sh: no data race reported ($(($(date +%s) - start)) s)"
