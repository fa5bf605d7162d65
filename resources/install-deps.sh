#!/usr/bin/env bash
# Installs what building and testing microvm needs on Debian, if it is missing:
# a C toolchain for the tiny guest (gcc, binutils, make), util-linux (unshare, setpriv)
# and iproute2 for the tests. Rust itself comes from rustup (https://rustup.rs).
set -euo pipefail
need=()
command -v gcc >/dev/null || need+=(gcc)
command -v ld >/dev/null || need+=(binutils)
command -v make >/dev/null || need+=(make)
command -v unshare >/dev/null || need+=(util-linux)
command -v setpriv >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
command -v strace >/dev/null || need+=(strace)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
if ! command -v cargo >/dev/null; then
  echo "install-deps: cargo not found: install Rust with rustup (https://rustup.rs), then rerun" >&2
  exit 1
fi
if [ ! -e /dev/kvm ]; then
  echo "install-deps: warning: /dev/kvm is missing; microvm needs KVM to boot anything" >&2
fi
