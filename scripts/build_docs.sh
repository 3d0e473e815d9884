#!/usr/bin/env bash
# build_docs.sh — the documentation site (Sphinx + MyST) in docs/_build/html,
# warnings as errors. Pages: docs/*.md, the C API (generated from include/kp.h),
# pykp's API (docstrings), the examples.
#
# usage: scripts/build_docs.sh [path/to/libkp.so]
#   PYTHON: a Python with sphinx, myst-parser, numpy (default: python3);
#   the library (default: build/src/libkp.so) is what pykp loads for autodoc.
set -euo pipefail
case "${1:-}" in -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py=${PYTHON:-python3}
lib=${1:-${LIBKP_PATH:-build/src/libkp.so}}
[[ -f $lib ]] || { echo "build_docs.sh: no libkp at $lib (build it first, or pass its path)" >&2; exit 2; }
LIBKP_PATH=$(realpath "$lib") "$py" -m sphinx -E -W --keep-going -q -b html docs docs/_build/html
echo "build_docs.sh: docs/_build/html/index.html"
