#!/usr/bin/env bash
# A nested test host with hardware-assisted KVM, for machines whose own /dev/kvm emulates
# guest kernel code (nested KVM without VT-x: a real Linux kernel cannot boot there).
#
# QEMU TCG emulates an AMD-V CPU (`-cpu max,+svm,+npt`); Debian's generic kernel boots in it
# from an initramfs (busybox-static, kvm/kvm-amd, tun, virtio-pci and 9p modules), loads
# kvm-amd, so /dev/kvm appears, makes a persistent TAP tap0 at 10.0.2.1/24, and runs one
# command. microvm and any guest files travel in a per-run initramfs overlay; a folder of the
# caller can be shared both ways over 9p.
#
#   resources/nested-host.sh build
#       fetch (cached in resources/out/debs) and build the host image in
#       resources/out/nested-host; does nothing when it is current
#   resources/nested-host.sh run [--timeout S] [--share DIR] [--microvm BIN]
#                                [--file SRC:DEST]... -- CMD [ARGS...]
#       boot the host, run CMD ARGS with sh in it and exit with CMD's exit code; CMD's
#       stdout and stderr come back on ours. Inside: microvm is /bin/microvm (with the
#       glibc libraries `ldd` names), each --file SRC is at DEST, DIR is mounted at /share
#       (read-write; the working directory), /dev/kvm and tap0 exist, /tmp is RAM.
#       Exit codes besides CMD's: 124 the host did not finish within S seconds (default
#       600), or its heartbeat (a write to the control folder every 10 s) stopped for
#       SILENT_S seconds: a wedged host kernel (it is killed either way); 125 it ended
#       without reporting CMD's exit code (a panic, or /dev/kvm never appeared); 2 usage.
#
# Nested hosts are CPU-heavy (TCG); runs take a machine-wide lock
# (${TMPDIR:-/tmp}/microvm-nested-host.lock), so parallel callers queue instead of
# starving each other. Needs qemu-system-x86 (installed with apt-get when missing and we
# are root), apt, dpkg-deb, cpio. Console log of the last run: resources/out/nested-host/last-console.log.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=$here/out/nested-host
say() { echo "nested-host: $*" >&2; }
# shellcheck source=resources/debian-pkg.sh
. "$here/debian-pkg.sh"

# Host-kernel modules, in insmod order (no modprobe: modules.dep is not shipped in the .deb).
# kvm-amd needs ccp; 9p over virtio-pci needs the virtio core, the PCI transport and netfs.
HOST_MODULES="virt/lib/irqbypass arch/x86/kvm/kvm drivers/crypto/ccp/ccp arch/x86/kvm/kvm-amd
  drivers/net/tun drivers/virtio/virtio_ring drivers/virtio/virtio
  drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci_modern_dev
  drivers/virtio/virtio_pci fs/netfs/netfs fs/fscache/fscache net/9p/9pnet
  net/9p/9pnet_virtio fs/9p/9p"

# The host's init. Kept small: it prepares /dev/kvm, tap0 and the 9p folders, runs the
# command with its output in the control folder (9p writes are synchronous, so a wedged
# host still leaves what was printed), and powers off.
read -r -d '' HOST_INIT <<'INIT' || true
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /nh /share /dev/pts /dev/shm
mount -t tmpfs -o size=75% tmp /tmp
for m in $(cat /modules/order); do
  insmod /modules/$m.ko || echo "NESTED-HOST: insmod $m failed"
done
fail() { echo "NESTED-HOST-FAIL: $*"; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 nh /nh || fail "cannot mount the control folder"
case " $(cat /proc/cmdline) " in *" nh.share "*)
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 share /share || fail "cannot mount /share" ;;
esac
[ -c /dev/kvm ] || fail "no /dev/kvm after insmod kvm-amd: $(dmesg | grep -i -E 'kvm|svm' | tail -3)"
ip link set lo up
tunctl -t tap0 >/dev/null || fail "cannot create tap0"
ip addr add 10.0.2.1/24 dev tap0
ip link set tap0 up
echo "NESTED-HOST-READY $(cut -d' ' -f1 /proc/uptime)s"
# The heartbeat the caller watches for a wedged kernel.
( while :; do cut -d' ' -f1 /proc/uptime > /nh/alive; sleep 10; done ) &
hb=$!
cd /share
sh /nh/cmd.sh > /nh/stdout 2> /nh/stderr < /dev/null
rc=$?
kill $hb
cd /
sync
echo "$rc" > /nh/rc
umount /share 2>/dev/null
umount /nh
echo "NESTED-HOST-RC=$rc"
poweroff -f
INIT

build() {
  dp_need cpio:cpio dpkg-deb:dpkg apt-get:apt
  local kpkg kver bver stamp work root m
  kpkg=$(dp_concrete linux-image-amd64)
  kver=$(dp_version "$kpkg")
  bver=$(dp_version busybox-static)
  stamp="$kpkg $kver busybox-static $bver $(printf '%s\n%s' "$HOST_MODULES" "$HOST_INIT" | cksum)"
  if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] && [ -s "$out/vmlinuz" ] &&
     [ -s "$out/base.cpio" ]; then
    return 0
  fi
  mkdir -p "$out"
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # expand $work now
  trap "rm -rf '$work'" EXIT
  dp_extract "$kpkg" "$work/kernel"
  dp_extract busybox-static "$work/bb"
  root=$work/root
  mkdir -p "$root/bin" "$root/modules" "$root/proc" "$root/sys" "$root/dev"
  cp "$work/bb/bin/busybox" "$root/bin/busybox"
  for m in $HOST_MODULES; do
    cp "$work/kernel/lib/modules/"*/kernel/"$m".ko "$root/modules/" ||
      { say "module $m.ko not in $kpkg"; exit 1; }
    basename "$m" >> "$root/modules/order"
  done
  printf '%s\n' "$HOST_INIT" > "$root/init"
  chmod 755 "$root/init"
  # Uncompressed: unpacking is quicker than decompressing under TCG.
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --owner=0:0) > "$out/base.cpio.tmp"
  cp "$work"/kernel/boot/vmlinuz-* "$out/vmlinuz.tmp"
  mv "$out/base.cpio.tmp" "$out/base.cpio"
  mv "$out/vmlinuz.tmp" "$out/vmlinuz"
  echo "$stamp" > "$out/.stamp"
  rm -rf "$work"
  trap - EXIT
  say "built in $out ($kpkg $kver, busybox-static $bver)"
}

# A host whose heartbeat file is older than this is wedged (it is written every 10 s).
SILENT_S=90

# watch_qemu PID T0 TIMEOUT HEARTBEAT: runs until QEMU PID ends (reaped by the caller); kills it (TERM, then KILL
# 5 s later) TIMEOUT s after T0 or once HEARTBEAT is SILENT_S s old, printing why.
watch_qemu() {
  local now why=""
  while kill -0 "$1" 2>/dev/null; do
    sleep 2
    now=$(date +%s)
    if [ $((now - $2)) -ge "$3" ]; then
      why="did not finish within ${3}s"
    elif [ -f "$4" ] && [ $((now - $(stat -c %Y "$4"))) -ge "$SILENT_S" ]; then
      why="stopped its heartbeat (nothing for ${SILENT_S}s: a wedged kernel)"
    fi
    [ -z "$why" ] && continue
    kill -TERM "$1" 2>/dev/null || true
    local i=0
    while [ $i -lt 5 ] && kill -0 "$1" 2>/dev/null; do sleep 1; i=$((i + 1)); done
    kill -KILL "$1" 2>/dev/null || true
    echo "$why"
    return 0
  done
}

# Quotes one word for sh: 'it'\''s'.
shquote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

run() {
  local timeout=600 share="" bin="" files=() a
  while [ $# -gt 0 ]; do
    case $1 in
      --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
      --share) share=${2:?--share needs a folder}; shift 2 ;;
      --microvm) bin=${2:?--microvm needs a path}; shift 2 ;;
      --file) files+=("${2:?--file needs SRC:DEST}"); shift 2 ;;
      --) shift; break ;;
      *) say "unknown option $1 (usage: run [--timeout S] [--share DIR] [--microvm BIN] [--file SRC:DEST]... -- CMD...)"; exit 2 ;;
    esac
  done
  [ $# -gt 0 ] || { say "run: no command after --"; exit 2; }
  case $timeout in '' | *[!0-9]*) say "--timeout takes whole seconds, not '$timeout'"; exit 2 ;; esac
  [ -z "$share" ] || [ -d "$share" ] || { say "--share $share: not a folder"; exit 2; }
  dp_need qemu-system-x86_64:qemu-system-x86 timeout:coreutils flock:util-linux
  build

  local tmp ov
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT
  ov=$tmp/overlay
  mkdir -p "$ov/bin" "$tmp/nh"
  if [ -n "$bin" ]; then
    [ -x "$bin" ] || { say "--microvm $bin: not an executable"; exit 2; }
    cp "$bin" "$ov/bin/microvm"
    # The glibc libraries and the loader, at the paths the binary asks for.
    for a in $(ldd "$bin" | awk '/=> \// {print $3} /^[[:space:]]*\// {print $1}'); do
      mkdir -p "$ov$(dirname "$a")"
      cp -L "$a" "$ov$a"
    done
  fi
  for a in "${files[@]}"; do
    local src=${a%%:*} dest=${a#*:}
    [ -f "$src" ] && [ "${dest#/}" != "$dest" ] || { say "--file $a: needs an existing SRC and an absolute DEST"; exit 2; }
    mkdir -p "$ov$(dirname "$dest")"
    cp "$src" "$ov$dest"
  done
  {
    printf '#!/bin/sh\n'
    for a in "$@"; do shquote "$a"; printf ' '; done
    printf '\n'
  } > "$tmp/nh/cmd.sh"
  # The overlay's cpio first, then the base image's: the kernel unpacks both.
  { (cd "$ov" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --owner=0:0); cat "$out/base.cpio"; } > "$tmp/initrd"

  local qemu=(qemu-system-x86_64 -M q35 -accel tcg -cpu max,+svm,+npt -smp 2 -m 3072
    -display none -monitor none -nodefaults -no-reboot
    -serial "file:$tmp/console.log"
    -kernel "$out/vmlinuz" -initrd "$tmp/initrd"
    -virtfs "local,path=$tmp/nh,mount_tag=nh,security_model=none,id=nh")
  local append="console=ttyS0 panic=-1 quiet"
  if [ -n "$share" ]; then
    qemu+=(-virtfs "local,path=$(cd "$share" && pwd),mount_tag=share,security_model=none,id=share")
    append+=" nh.share"
  fi
  qemu+=(-append "$append")

  local lock=${TMPDIR:-/tmp}/microvm-nested-host.lock t0 rc=0
  exec 9>"$lock"
  if ! flock -n 9; then
    say "waiting for another nested host to finish ($lock)"
    flock 9
  fi
  t0=$(date +%s)
  local qpid wpid why
  "${qemu[@]}" </dev/null >"$tmp/qemu.out" 2>&1 &
  qpid=$!
  watch_qemu "$qpid" "$t0" "$timeout" "$tmp/nh/alive" >"$tmp/why" &
  wpid=$!
  wait "$qpid" || rc=$?
  wait "$wpid" || true
  why=$(cat "$tmp/why")
  exec 9>&-
  cp "$tmp/console.log" "$out/last-console.log" 2>/dev/null || true
  [ -f "$tmp/nh/stdout" ] && cat "$tmp/nh/stdout"
  [ -f "$tmp/nh/stderr" ] && cat "$tmp/nh/stderr" >&2
  if [ -n "$why" ]; then
    say "TIMEOUT: the nested host $why and was killed; last console lines:"
    tail -n 15 "$tmp/console.log" | tr -d '\r' | sed 's/^/nested-host:   /' >&2
    exit 124
  fi
  if [ ! -s "$tmp/nh/rc" ]; then
    say "the nested host ended (QEMU status $rc) without reporting the command's exit code; last console lines:"
    tail -n 15 "$tmp/console.log" | tr -d '\r' | sed 's/^/nested-host:   /' >&2
    sed 's/^/nested-host: qemu: /' "$tmp/qemu.out" >&2
    exit 125
  fi
  say "ran in $(($(date +%s) - t0)) s wall ($(grep -o 'NESTED-HOST-READY [0-9.]*s' "$tmp/console.log" | cut -d' ' -f2) of host time to ready)"
  exit "$(cat "$tmp/nh/rc")"
}

case ${1:-} in
  build) build ;;
  run) shift; run "$@" ;;
  *) say "usage: $0 build | run [--timeout S] [--share DIR] [--microvm BIN] [--file SRC:DEST]... -- CMD [ARGS...]"; exit 2 ;;
esac
