#!/usr/bin/env bash
# Strong and weak scaling of libkp_mpi on 1 to 4 processes of this machine
# (bench/bench_mpi.c). Usage: bench/mpi_scaling.sh [build dir] [--n N]
# Prints a Markdown table (docs/distributed.md keeps one). On a machine with
# fewer cores than processes the ranks share cores: strong scaling then shows
# the overhead of the layouts (communication, merges, oversubscription), not
# a speedup; see docs/distributed.md.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
build=${1:-build}
shift || true
exe="$build/bench/kp_bench_mpi"
[ -x "$exe" ] || { echo "build $exe first: cmake --build $build --target kp_bench_mpi" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader KP_NUM_THREADS=1
for p in 1 2 3 4; do
  extra=()
  [ "$p" = 1 ] && extra=(--header)
  mpirun -np "$p" --oversubscribe "$exe" "${extra[@]}" "$@"
done
