#!/usr/bin/env bash
# test_r.sh: the R binding (bindings/r, package rkp), from a fresh Debian 12 machine:
#
#   1. installs r-base-dev, r-cran-testthat, r-cran-matrix (sparse-input test) and
#      libkp's build packages if missing;
#   2. builds libkp (Release, no ahead-of-time CUDA table) in build-r/, unless a
#      build directory or install prefix is given;
#   3. R CMD build + R CMD check --no-manual (fails on any ERROR or WARNING);
#   4. installs the package into a temporary library and runs the testthat
#      suite (prints testthat's summary) and the two examples at small sizes.
#
# usage: scripts/test_r.sh [--libkp-dir DIR] [--no-check]
#   --libkp-dir DIR   a libkp CMake build directory or install prefix (default:
#                     $LIBKP_DIR, else build libkp into build-r/)
#   --no-check        skip R CMD check (build, install and test only)
# Exit status 0 only if everything passed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
libkp_dir=${LIBKP_DIR:-}
do_check=1
while (($#)); do
  case "$1" in
    --libkp-dir) libkp_dir=$2; shift 2 ;;
    --no-check) do_check=0; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test_r.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

packages=(r-base-dev r-cran-testthat r-cran-matrix build-essential cmake pkg-config libsleef-dev nettle-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "test_r.sh: installing ${missing[*]}"
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [[ -z "$libkp_dir" ]]; then
  echo "== test_r.sh: building libkp in build-r/"
  cmake -S . -B build-r -DCMAKE_BUILD_TYPE=Release -DKP_CUDA_AOT=OFF >/dev/null
  cmake --build build-r -j"${JOBS:-2}" --target kp >/dev/null
  libkp_dir=$root/build-r
fi
export LIBKP_DIR
LIBKP_DIR=$(cd "$libkp_dir" && pwd)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
echo "== test_r.sh: R CMD build"
R CMD build "$root/bindings/r" >build.log 2>&1 || { cat build.log; exit 1; }
tarball=$(ls rkp_*.tar.gz)

if ((do_check)); then
  echo "== test_r.sh: R CMD check --no-manual $tarball"
  if ! R CMD check --no-manual "$tarball" >check.log 2>&1; then
    cat check.log
    [[ -f rkp.Rcheck/tests/testthat.Rout.fail ]] && tail -60 rkp.Rcheck/tests/testthat.Rout.fail
    exit 1
  fi
  grep -E "^Status:" check.log
  if grep -qE "^Status:.*(ERROR|WARNING)" check.log; then
    grep -B2 -A12 -E "\.\.\. (ERROR|WARNING)" check.log
    exit 1
  fi
fi

echo "== test_r.sh: install into a temporary library, run the testthat suite"
mkdir lib
R CMD INSTALL -l lib "$tarball" >install.log 2>&1 || { cat install.log; exit 1; }
R_LIBS="$tmp/lib" Rscript -e '
  library(testthat)
  library(rkp)
  res <- test_dir(commandArgs(TRUE)[1], reporter = "summary", stop_on_failure = FALSE)
  df <- as.data.frame(res)
  cat(sprintf("testthat: %d tests, %d expectations, %d failed, %d errors, %d skipped\n",
              nrow(df), sum(df$nb), sum(df$failed), sum(df$error), sum(df$skipped)))
  if (sum(df$failed) > 0 || any(df$error)) quit(status = 1)
' "$root/bindings/r/tests/testthat"

echo "== test_r.sh: examples (small sizes)"
R_LIBS="$tmp/lib" Rscript "$root/bindings/r/examples/gaussian_kernel.R" 5000 4000
R_LIBS="$tmp/lib" Rscript "$root/bindings/r/examples/knn_classifier.R" 5000 2000 7
echo "test_r.sh: all R checks passed"
