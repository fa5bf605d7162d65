#!/usr/bin/env bash
# Installs what building and testing microvm needs on Debian, if it is missing:
# a C toolchain for the tiny guest (gcc, binutils, make), util-linux (unshare, setpriv, flock)
# and iproute2 for the tests; for the real-Linux tests (resources/make-linux-guest.sh and
# resources/nested-host.sh): QEMU (the nested host), cpio, lz4 and xz (images), busybox-static
# (applets for the host side of the scenarios) and e2fsprogs (mke2fs -d, debugfs, e2fsck).
# Rust itself comes from rustup (https://rustup.rs).
set -euo pipefail
need=()
command -v gcc >/dev/null || need+=(gcc)
command -v ld >/dev/null || need+=(binutils)
command -v make >/dev/null || need+=(make)
command -v unshare >/dev/null || need+=(util-linux)
command -v setpriv >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
command -v strace >/dev/null || need+=(strace)
command -v flock >/dev/null || need+=(util-linux)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
command -v lz4 >/dev/null || need+=(lz4)
command -v xz >/dev/null || need+=(xz-utils)
command -v busybox >/dev/null || need+=(busybox-static)
[ -x /usr/sbin/mke2fs ] && [ -x /usr/sbin/debugfs ] || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  # --no-install-recommends: QEMU's recommends pull in a desktop's worth of packages.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if ! command -v cargo >/dev/null; then
  echo "install-deps: cargo not found: install Rust with rustup (https://rustup.rs), then rerun" >&2
  exit 1
fi
if [ ! -e /dev/kvm ]; then
  echo "install-deps: warning: /dev/kvm is missing; microvm needs KVM to boot anything" >&2
fi
