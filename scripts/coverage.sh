#!/usr/bin/env bash
# coverage.sh — line and branch coverage of libkp's C sources by the C test
# suites (gcc --coverage, gcov, lcov).
#
# Builds libkp and its tests with --coverage -O0 in build-cov/, runs the ctest
# suites of the CPU engine (ops, reductions, errors, grad, joint, threads, the
# fuzz corpus replays, the C example; without the largest cases and without
# the GPU suites), then prints the line and branch coverage of src/formula,
# src/plan and src/cpu, each and together, and of all of src/. An HTML report
# goes to build-cov/html/index.html, the per-file table to build-cov/coverage.txt.
#
# usage: scripts/coverage.sh [--gpu] [--large] [--add-fuzz]
#   --gpu       also run the gpu-labelled suites (OpenCL on PoCL, CUDA emulator; slow)
#   --large     also run the largest cases (KP_TEST_SKIP_LARGE unset)
#   --add-fuzz  keep the counts of the previous run and only replay the fuzz
#               corpus again (after a fuzzing session grew it), then report
#   -h, --help
# Needs gcc, lcov (genhtml) and the test dependencies (libcmocka-dev).
set -euo pipefail
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
gpu=0 large=0 add_fuzz=0
while (($#)); do
  case "$1" in
    --gpu) gpu=1; shift ;;
    --large) large=1; shift ;;
    --add-fuzz) add_fuzz=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "coverage.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
command -v lcov >/dev/null || { echo "coverage.sh: lcov not found (apt-get install lcov)" >&2; exit 1; }

build="$root/build-cov"
echo "== coverage.sh: build (gcc --coverage -O0) in $build"
CC=gcc cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DKP_BUILD_BENCH=OFF -DKP_CUDA_AOT=OFF \
  -DCMAKE_C_FLAGS="--coverage -O0" -DCMAKE_EXE_LINKER_FLAGS=--coverage -DCMAKE_SHARED_LINKER_FLAGS=--coverage \
  >/dev/null
cmake --build "$build" -j2 >/dev/null
if ((add_fuzz)); then
  echo "== coverage.sh: fuzz corpus replay, added to the previous counts"
  # Objects rebuilt since (sources changed) lost their counts: say so, drop the stale files.
  while IFS= read -r gcda; do
    if [[ "${gcda%.gcda}.gcno" -nt "$gcda" ]]; then
      echo "coverage.sh: ${gcda#$build/} predates its rebuilt object: its earlier counts are dropped" >&2
      rm -f "$gcda"
    fi
  done < <(find "$build" -name '*.gcda')
  ctest --test-dir "$build" --output-on-failure -L fuzz
else
  find "$build" -name '*.gcda' -delete

  echo "== coverage.sh: test suites"
  exclude="large|gpu"
  ((gpu)) && exclude="large"
  ((large)) && exclude=${exclude/large|/} && exclude=${exclude/large/}
  ((large)) || export KP_TEST_SKIP_LARGE=1
  if [[ -n "$exclude" ]]; then
    ctest --test-dir "$build" --output-on-failure -j2 -LE "$exclude"
  else
    ctest --test-dir "$build" --output-on-failure -j2
  fi
fi

echo "== coverage.sh: lcov"
rc=(--rc lcov_branch_coverage=1)
lcov "${rc[@]}" --quiet --capture --directory "$build" --base-directory "$root" --output-file "$build/all.info"
lcov "${rc[@]}" --quiet --extract "$build/all.info" "$root/src/*" --output-file "$build/src.info"
: >"$build/coverage.txt"
for part in formula plan cpu; do
  lcov "${rc[@]}" --quiet --extract "$build/src.info" "$root/src/$part/*" --output-file "$build/$part.info"
done
lcov "${rc[@]}" --quiet -a "$build/formula.info" -a "$build/plan.info" -a "$build/cpu.info" \
  --output-file "$build/core3.info"
summary() { # name info: "name: lines x% (a of b), branches y% (c of d)"
  lcov "${rc[@]}" --summary "$2" 2>&1 | awk -v n="$1" '
    /lines\.*:/ { l = $2 " " $3 " " $4 " " $5 " " $6 }
    /branches\.*:/ { b = $2 " " $3 " " $4 " " $5 " " $6 }
    END { printf "%-22s lines %s   branches %s\n", n, l, b }'
}
{
  for part in formula plan cpu; do summary "src/$part" "$build/$part.info"; done
  summary "formula+plan+cpu" "$build/core3.info"
  summary "all of src/" "$build/src.info"
  echo
  lcov "${rc[@]}" --list "$build/core3.info"
} | tee "$build/coverage.txt"
genhtml "${rc[@]}" --quiet --branch-coverage --output-directory "$build/html" "$build/src.info" >/dev/null
echo "== coverage.sh: HTML report in $build/html/index.html"
