#!/usr/bin/env bash
# gpu_check_prepare.sh — run here (Debian 12, with a package registry) before
# scripts/gpu_check.sh runs on a machine with a GPU but no registry: saves the
# Debian packages of libkp's build dependencies that such a machine may lack
# (SLEEF, nettle, cmocka) in .gpu-deps/ (git-ignored, about 2.3 MB), which the
# device tool carries there (carry: [".gpu-deps"]). gpu_check.sh unpacks them
# into a private prefix, never into /, and only where the machine lacks them.
#
# usage: scripts/gpu_check_prepare.sh
set -euo pipefail
case "${1:-}" in -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac
cd "$(dirname "${BASH_SOURCE[0]}")/.."
packages=(libsleef3 libsleef-dev libnettle8 nettle-dev libcmocka0 libcmocka-dev)
rm -rf .gpu-deps && mkdir -p .gpu-deps
# apt-get download writes into the current directory; as root it warns that
# the _apt user cannot write there, which is harmless.
(cd .gpu-deps && apt-get download "${packages[@]}" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
for p in "${packages[@]}"; do
  ls .gpu-deps/"${p}"_*.deb >/dev/null 2>&1 || { echo "gpu_check_prepare.sh: $p was not downloaded" >&2; exit 1; }
done
du -sh .gpu-deps
