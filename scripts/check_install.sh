#!/usr/bin/env bash
# check_install.sh — checks that an installed libkp is usable by others:
#
#   1. configure + build libkp (Release) and `cmake --install` it into a
#      temporary prefix; the build tree is then deleted, so nothing below can
#      lean on it;
#   2. build examples/c_api/ with its Makefile (pkg-config --cflags --libs libkp,
#      PKG_CONFIG_PATH pointing into the prefix) and run it;
#   3. configure + build examples/cmake_consumer/ (find_package(libkp) ->
#      libkp::kp, CMAKE_PREFIX_PATH = the prefix) and run it;
#   4. where libkp_mpi was built and mpicc is installed: build examples/mpi/
#      against the prefix with mpicc and run it under mpirun -np 2;
#   5. check that no installed file mentions the source or build directory.
#
# usage: scripts/check_install.sh [extra cmake configure arguments...]
# Exits nonzero on the first failure. KEEP_TMP=1 keeps the temporary directory.
set -euo pipefail
case "${1:-}" in -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kp-check-install.XXXXXX")
if [[ "${KEEP_TMP:-0}" == 1 ]]; then
  echo "check_install: keeping $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi
jobs=$(nproc 2>/dev/null || echo 2)
prefix="$tmp/prefix"
step() { printf '\n== check_install: %s\n' "$*"; }

step "configure, build and install libkp into $prefix"
cmake -S "$root" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release \
  -DKP_BUILD_TESTS=OFF -DKP_BUILD_BENCH=OFF -DKP_BUILD_EXAMPLES=OFF \
  -DCMAKE_INSTALL_PREFIX=/nonexistent/configure-time-prefix "$@"
cmake --build "$tmp/build" -j"$jobs"
# Installed with --prefix, different from the configure-time prefix: the
# package files must be relocatable.
cmake --install "$tmp/build" --prefix "$prefix"
rm -rf "$tmp/build"

pc=$(find "$prefix" -name libkp.pc -print -quit)
[[ -n "$pc" ]] || { echo "check_install: libkp.pc not installed" >&2; exit 1; }
cfg=$(find "$prefix" -name libkpConfig.cmake -print -quit)
[[ -n "$cfg" ]] || { echo "check_install: libkpConfig.cmake not installed" >&2; exit 1; }
[[ -f "$prefix/include/kp.h" ]] || { echo "check_install: kp.h not installed" >&2; exit 1; }
ls -R "$prefix"

step "pkg-config consumer (examples/c_api)"
export PKG_CONFIG_PATH="$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
echo "pkg-config --cflags --libs libkp: $(pkg-config --cflags --libs libkp)"
echo "pkg-config --static --libs libkp: $(pkg-config --static --libs libkp)"
pkg-config --atleast-version=0.1 libkp
cp -r "$root/examples/c_api" "$tmp/c_api"
make -C "$tmp/c_api" example
"$tmp/c_api/example"

step "CMake consumer (examples/cmake_consumer, find_package(libkp))"
cmake -S "$root/examples/cmake_consumer" -B "$tmp/consumer" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix"
cmake --build "$tmp/consumer" -j"$jobs"
"$tmp/consumer/kp_consumer"

if [[ -f "$prefix/include/kp_mpi.h" ]] && command -v mpicc >/dev/null && command -v mpirun >/dev/null; then
  step "libkp_mpi consumer (examples/mpi with mpicc, run by mpirun -np 2)"
  libdir=$(pkg-config --variable=libdir libkp)
  # shellcheck disable=SC2046  # pkg-config's flags are meant to split
  mpicc -std=c11 -O2 "$root/examples/mpi/distributed.c" -o "$tmp/mpi_example" $(pkg-config --cflags libkp) \
    -L"$libdir" -Wl,-rpath,"$libdir" -lkp_mpi $(pkg-config --libs libkp) -lm
  # Open MPI refuses root unless told; loopback transports only.
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader KP_NUM_THREADS=1 \
    mpirun -np 2 --oversubscribe "$tmp/mpi_example"
fi

step "installed files mention neither the source nor the build tree"
if grep -rIl -e "$root" -e "$tmp/build" "$prefix"; then
  echo "check_install: the files above refer to the source or build tree" >&2
  exit 1
fi

step "OK"
