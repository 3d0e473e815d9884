#!/usr/bin/env bash
# fuzz.sh — builds libkp's libFuzzer targets (tests/fuzz/: parse, exec, grad)
# with clang, AddressSanitizer and UndefinedBehaviorSanitizer (LeakSanitizer
# included) in build-fuzz/, and runs each target in turn, one process at a
# time, for the given time, starting from the kept corpus tests/fuzz/corpus/<t>/.
#
# Found inputs go to build-fuzz/corpus/<t>/ and crashes, leaks and timeouts
# (over --timeout seconds on one input) to build-fuzz/artifacts/<t>/. With
# --save the corpus is minimized (libFuzzer -merge=1: the smallest set of
# inputs with the same coverage) back into tests/fuzz/corpus/<t>/, and every
# crash found is copied to tests/fuzz/regressions/<t>/, which the ordinary
# test builds replay (ctest -L fuzz).
#
# usage: scripts/fuzz.sh [options] [target...]       (targets: parse exec grad; default all)
#   --time S      seconds per target (default 60)
#   --timeout S   an input running longer than S seconds is a failure (default 1)
#   --save        minimize the corpus into tests/fuzz/corpus, keep crashes as regressions
#   --keep-going  fork mode: continue after a crash (-fork=1 -ignore_crashes=1 ...)
#   --build-only  configure and build, run nothing
#   -h, --help    this text
# Exit status 0 when no target crashed, leaked or timed out in this run. A summary line per
# target (runs, seconds, corpus size) is printed and appended to build-fuzz/fuzz-log.txt.
set -euo pipefail
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
secs=60 timeout=1 save=0 keep_going=0 build_only=0 targets=()
while (($#)); do
  case "$1" in
    --time) secs=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --save) save=1; shift ;;
    --keep-going) keep_going=1; shift ;;
    --build-only) build_only=1; shift ;;
    -h | --help) usage; exit 0 ;;
    parse | exec | grad) targets+=("$1"); shift ;;
    *) echo "fuzz.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
((${#targets[@]})) || targets=(parse exec grad)

cc=$(command -v clang || command -v clang-14 || true)
[[ -n "$cc" ]] || { echo "fuzz.sh: clang not found (apt-get install clang libclang-rt-14-dev libomp-14-dev)" >&2; exit 1; }
build="$root/build-fuzz"
echo "== fuzz.sh: build ($cc, ASan + UBSan, libFuzzer) in $build"
CC="$cc" cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKP_FUZZ=ON \
  -DKP_SANITIZE=address,undefined -DKP_BUILD_TESTS=OFF -DKP_BUILD_BENCH=OFF -DKP_BUILD_EXAMPLES=OFF \
  -DKP_CUDA_AOT=OFF >/dev/null
cmake --build "$build" -j2 >/dev/null
((build_only)) && exit 0

# One thread per execution unless the target asks for two; leaks are failures.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=2
status=0
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_$t"
  work="$build/corpus/$t" art="$build/artifacts/$t"
  kept="$root/tests/fuzz/corpus/$t"
  mkdir -p "$work" "$art" "$kept"
  log="$build/fuzz-$t.log"
  echo "== fuzz.sh: $t for $secs s (log $log)"
  extra=()
  ((keep_going)) && extra=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  rc=0
  stamp="$build/started-$t" # failures of this run only: older artifacts stay for inspection
  touch "$stamp"
  "$bin" -max_total_time="$secs" -timeout="$timeout" -rss_limit_mb=2048 -max_len=512 \
    -print_final_stats=1 -artifact_prefix="$art/" "${extra[@]}" "$work" "$kept" >"$log" 2>&1 || rc=$?
  runs=$(grep -Eo '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1 || true)
  if [[ -z "$runs" ]]; then # fork mode prints no final stats: the last status line
    runs=$(grep -Eo '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
  fi
  found=$(find "$art" -maxdepth 1 -type f -newer "$stamp" \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  line="$(date -u +%FT%TZ) $t: ${runs:-?} inputs in $secs s, exit $rc, $found failing inputs in $art"
  echo "$line" | tee -a "$build/fuzz-log.txt"
  if ((rc != 0 || found > 0)); then
    status=1
    grep -E 'ERROR|SUMMARY|fuzz check failed|runtime error' "$log" | head -n 20 || true
  fi
  if ((save)); then
    new="$build/merge-$t"
    rm -rf "$new" && mkdir -p "$new"
    "$bin" -merge=1 -timeout="$timeout" -max_len=512 -artifact_prefix="$art/" "$new" "$kept" "$work" \
      >"$build/merge-$t.log" 2>&1
    rm -rf "$kept" && mv "$new" "$kept"
    echo "   corpus kept: $(find "$kept" -type f | wc -l) inputs, $(du -sk "$kept" | cut -f1) KiB in tests/fuzz/corpus/$t"
    for f in "$art"/crash-* "$art"/leak-* "$art"/timeout-*; do
      [[ -f "$f" ]] && cp "$f" "$root/tests/fuzz/regressions/$t/"
    done
  fi
done
exit $status
