#!/usr/bin/env bash
# fresh_check.sh — the README's first command on a bare Debian, as a newcomer
# runs it:
#
#   1. debootstrap a minimal Debian root (--variant=minbase: dpkg, apt, bash,
#      coreutils; no compiler, no cmake) of the host's suite (bookworm on
#      Debian 12, trixie on Debian 13) from the mirror the host's apt uses;
#      the finished root is cached under .fresh-root/ (git-ignored) and copied
#      for each run, so every run starts from the same pristine root;
#   2. copies a clean checkout (git archive of HEAD: only what is committed)
#      into it, chroots (as root, with the root's own, never-updated apt) and
#      runs scripts/demo.sh there: it must install what it needs and build;
#   3. then scripts/check_install.sh in the same root: the library's install
#      and the C examples built against it (pkg-config and find_package).
#
# A command that forgets a dependency fails here, since nothing but minbase
# and what the commands install themselves is in the root.
#
# usage: scripts/fresh_check.sh [options]
#   --suite NAME     Debian suite (default: the host's, from /etc/os-release)
#   --mirror URL     Debian mirror (default: the one in the host's apt sources)
#   --cache DIR      cache of the base root and downloaded .debs (default .fresh-root/)
#   --rev REV        test this git revision instead of HEAD (e.g. to see an old
#                    demo.sh fail)
#   --worktree       test the working tree (git stash create) instead of HEAD
#   --demo-n N       points per cloud for the demo (default 20000: the check is
#                    that it builds and runs, not its speed)
#   --fresh-debs     do not reuse the .deb files downloaded by earlier runs
#   --keep           keep the run's root (cache/run-SUITE) for inspection
#   -h, --help       this text
# Needs root (debootstrap, chroot, mount) and network to the Debian mirror.
# Exit status 0 only if the demo and the install check passed.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rev=HEAD suite="" mirror="" cache="$root_dir/.fresh-root" use_worktree=0 demo_n=20000 keep=0 reuse_debs=1
while (($#)); do
  case "$1" in
    --suite) suite=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --rev) rev=$2; shift 2 ;;
    --worktree) use_worktree=1; shift ;;
    --demo-n) demo_n=$2; shift 2 ;;
    --fresh-debs) reuse_debs=0; shift ;;
    --keep) keep=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "fresh_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

step() { printf '\n== fresh_check [%s]: %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { echo "fresh_check: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, chroot, mount); try sudo $0"
command -v debootstrap >/dev/null || {
  step "installing debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
}

# The host's suite: VERSION_CODENAME of os-release (bookworm, trixie, ...).
if [[ -z "$suite" ]]; then
  # shellcheck disable=SC1091
  suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [[ -n "$suite" ]] || die "cannot read the suite from /etc/os-release; pass --suite"
fi

# The host's mirror: the first Debian archive URI (not -security) in the deb822
# .sources files (Debian 12 and 13) or the one-line sources.list format.
find_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; break } }' "$f"
  done
}
if [[ -z "$mirror" ]]; then
  mirror=$(find_mirror | grep -E '/debian/?$' | grep -v -- '-security' | head -n 1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
fi

base="$cache/base-$suite"
run="$cache/run-$suite"
debs="$cache/debs-$suite"
mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
  for m in proc sys dev var/cache/apt/archives; do
    if mountpoint -q "$run/$m" 2>/dev/null; then
      echo "fresh_check: $run/$m still mounted; not removing $run" >&2
      return
    fi
  done
  if [[ $keep -eq 0 && -d "$run" ]]; then rm -rf --one-file-system "$run"; fi
}
trap cleanup EXIT

start=$(date +%s)
if [[ ! -f "$base/.fresh-check-complete" ]]; then
  step "debootstrap --variant=minbase $suite from $mirror into $base (cached for later runs)"
  rm -rf --one-file-system "$base"
  mkdir -p "$cache"
  debootstrap --variant=minbase "$suite" "$base" "$mirror"
  apt-get -qq clean -o RootDir="$base" 2>/dev/null || rm -f "$base"/var/cache/apt/archives/*.deb
  touch "$base/.fresh-check-complete"
fi
t_base=$(date +%s)

step "a pristine copy of the $suite root"
rm -rf --one-file-system "$run"
cp -a "$base" "$run"
rm -f "$run/.fresh-check-complete"
cp /etc/resolv.conf "$run/etc/resolv.conf"
for m in proc sys dev; do
  case $m in
    proc) mount -t proc proc "$run/proc" ;;
    sys) mount -t sysfs sys "$run/sys" ;;
    dev) mount --rbind /dev "$run/dev" ;;
  esac
  mounted+=("$run/$m")
done
if [[ $reuse_debs -eq 1 ]]; then
  # Only the download is reused: apt in the root still resolves every
  # dependency from its own, freshly updated lists.
  mkdir -p "$debs"
  mount --bind "$debs" "$run/var/cache/apt/archives"
  mounted+=("$run/var/cache/apt/archives")
fi

if [[ $use_worktree -eq 1 ]]; then
  rev=$(git -C "$root_dir" stash create)
  rev=${rev:-HEAD}
fi
step "clean checkout ($(git -C "$root_dir" rev-parse --short "$rev")) into /root/libkp"
mkdir -p "$run/root/libkp"
git -C "$root_dir" archive "$rev" | tar -x -C "$run/root/libkp"

in_root() {
  chroot "$run" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c "cd /root/libkp && $1"
}

step "scripts/demo.sh $demo_n (as a newcomer: root, bare $suite)"
in_root "scripts/demo.sh $demo_n"
t_demo=$(date +%s)

step "scripts/check_install.sh (install, then the C examples against it)"
in_root "scripts/check_install.sh -DKP_CUDA_AOT=OFF"
t_end=$(date +%s)

step "passed: base root $((t_base - start)) s, demo $((t_demo - t_base)) s, install check $((t_end - t_demo)) s, total $((t_end - start)) s"
