#!/usr/bin/env bash
# Makes a real Linux guest for microvm from Debian's package archive only:
#
#   <out>/bzImage             Debian's generic x86_64 kernel (package linux-image-amd64)
#   <out>/vmlinux             the same kernel as an uncompressed ELF vmlinux, extracted from
#                             the bzImage's payload (so both of microvm's load paths get a
#                             real kernel)
#   <out>/bzImage-cloud       Debian's cloud kernel (linux-image-cloud-amd64), LZ4-compressed:
#                             on hosts without VT-x/AMD-V, where KVM emulates guest kernel
#                             code, its decompressor finishes in about a minute while the
#                             generic kernel's XZ payload takes far longer
#   <out>/initramfs.cpio.gz   busybox-static with an /init that prints a marker line
#                             ("MICROVM-INIT-OK cpus=N") and reboots, which ends the VM
#   <out>/vmlinux-cloud       the cloud kernel as an uncompressed ELF vmlinux (LZ4 payload)
#   <out>/initramfs-cloud.cpio.gz
#                             busybox-static, the cloud kernel's own virtio modules
#                             (virtio_ring virtio virtio_mmio virtio_blk virtio-rng failover
#                             net_failover virtio_net; ext4 is built in) and the scenario
#                             /init of resources/linux-guest/init (mvtest=NAME on the kernel
#                             command line picks the scenario; results are "MVTEST ..." lines)
#
# Usage: resources/make-linux-guest.sh [OUT_DIR]     (default: resources/out/linux)
# Idempotent: it does nothing when OUT_DIR already holds what the current packages give.
# Packages are fetched with `apt-get download` (no root install; cached in resources/out/debs,
# see debian-pkg.sh). Needs: apt, dpkg-deb, lz4, xz, cpio, gzip (installed with apt-get when
# missing and we are root).
#
# The cloud kernel is built without CONFIG_X86_MPPARSE and CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES:
# it finds vCPUs and virtio devices through microvm's ACPI tables only (--acpi on). The
# generic kernel also reads the MP table.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out/linux}
mkdir -p "$out"
out=$(cd "$out" && pwd)

say() { echo "make-linux-guest: $*" >&2; }

# shellcheck source=resources/debian-pkg.sh
. "$here/debian-pkg.sh"
dp_need apt-get:apt dpkg-deb:dpkg xz:xz-utils lz4:lz4 cpio:cpio gzip:gzip od:coreutils

# The cloud kernel's modules the scenario initramfs loads, in insmod order.
CLOUD_MODULES="drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_mmio
  drivers/block/virtio_blk drivers/char/hw_random/virtio-rng net/core/failover
  drivers/net/net_failover drivers/net/virtio_net"

kpkg=$(dp_concrete linux-image-amd64)
cpkg=$(dp_concrete linux-image-cloud-amd64)
kver=$(dp_version "$kpkg")
cver=$(dp_version "$cpkg")
bver=$(dp_version busybox-static)
stamp="$kpkg $kver $cpkg $cver busybox-static $bver $(cat "$here/linux-guest/init" | cksum)"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] && [ -s "$out/bzImage" ] &&
   [ -s "$out/bzImage-cloud" ] && [ -s "$out/vmlinux" ] && [ -s "$out/initramfs.cpio.gz" ] &&
   [ -s "$out/vmlinux-cloud" ] && [ -s "$out/initramfs-cloud.cpio.gz" ]; then
  say "up to date in $out ($stamp)"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dp_extract "$kpkg" "$work/kernel"
cp "$work"/kernel/boot/vmlinuz-* "$out/bzImage.tmp"
dp_extract "$cpkg" "$work/cloud"
cp "$work"/cloud/boot/vmlinuz-* "$out/bzImage-cloud.tmp"
dp_extract busybox-static "$work/bb"

# extract_vmlinux BZIMAGE OUT: the ELF inside a bzImage. The compressed vmlinux sits at
# (setup_sects + 1) * 512 + payload_offset, payload_length bytes long (boot protocol 2.08+,
# Documentation/arch/x86/boot.rst).
extract_vmlinux() {
  local img=$1 setup_sects payload_offset payload_length start magic decomp
  u8()  { od -An -t u1 -j "$1" -N 1 "$img" | tr -d ' '; }
  u32() { od -An -t u4 -j "$1" -N 4 "$img" | tr -d ' '; }
  setup_sects=$(u8 $((0x1f1)))
  payload_offset=$(u32 $((0x248)))
  payload_length=$(u32 $((0x24c)))
  start=$(( (setup_sects + 1) * 512 + payload_offset ))
  magic=$(od -An -t x1 -j "$start" -N 6 "$img" | tr -d ' ')
  case $magic in
    fd377a585a00) decomp="xz -dc" ;;
    1f8b*) decomp="gzip -dc" ;;
    28b52ffd*) decomp="zstd -dc" ;;
    02214c18*) decomp="lz4 -dc" ;;
    *) say "unknown kernel payload compression in $img (magic $magic)"; exit 1 ;;
  esac
  # The legacy LZ4 stream has no end marker: lz4 reports trailing bytes, but the ELF is whole.
  tail -c +$((start + 1)) "$img" | head -c "$payload_length" | $decomp > "$2" 2>/dev/null || true
  if [ "$(head -c 4 "$2" | od -An -t x1 | tr -d ' ')" != "7f454c46" ]; then
    say "extracting vmlinux from $img failed (payload at $start, $payload_length bytes, $decomp)"
    exit 1
  fi
  say "extracted the ELF of $(basename "$img") with $decomp"
}
extract_vmlinux "$out/bzImage.tmp" "$out/vmlinux.tmp"
extract_vmlinux "$out/bzImage-cloud.tmp" "$out/vmlinux-cloud.tmp"

root="$work/initramfs"
mkdir -p "$root/bin" "$root/proc" "$root/dev"
cp "$work/bb/bin/busybox" "$root/bin/busybox"
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
# microvm test init: report, then reboot (with reboot=k the i8042 reset ends the VM).
/bin/busybox mount -t proc proc /proc
n=$(/bin/busybox grep -c ^processor /proc/cpuinfo)
/bin/busybox echo "MICROVM-INIT-OK cpus=$n"
/bin/busybox reboot -f
INIT
chmod 755 "$root/init"
find "$root" -exec touch -h -d @0 {} +   # reproducible archive
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --owner=0:0) | gzip -9n > "$out/initramfs.cpio.gz.tmp"

# The scenario initramfs for the cloud kernel: busybox, its virtio modules, the scenario init.
croot="$work/initramfs-cloud"
mkdir -p "$croot/bin" "$croot/proc" "$croot/sys" "$croot/dev" "$croot/modules"
cp "$work/bb/bin/busybox" "$croot/bin/busybox"
for m in $CLOUD_MODULES; do
  cp "$work/cloud/lib/modules/"*/kernel/"$m".ko "$croot/modules/" ||
    { say "module $m.ko not in $cpkg"; exit 1; }
done
cp "$here/linux-guest/init" "$croot/init"
chmod 755 "$croot/init"
find "$croot" -exec touch -h -d @0 {} +
(cd "$croot" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --owner=0:0) | gzip -9n > "$out/initramfs-cloud.cpio.gz.tmp"

mv "$out/bzImage.tmp" "$out/bzImage"
mv "$out/bzImage-cloud.tmp" "$out/bzImage-cloud"
mv "$out/vmlinux.tmp" "$out/vmlinux"
mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
mv "$out/vmlinux-cloud.tmp" "$out/vmlinux-cloud"
mv "$out/initramfs-cloud.cpio.gz.tmp" "$out/initramfs-cloud.cpio.gz"
echo "$stamp" > "$out/.stamp"
say "made in $out:"
say "  bzImage           $(stat -c %s "$out/bzImage") bytes ($kpkg $kver)"
say "  bzImage-cloud     $(stat -c %s "$out/bzImage-cloud") bytes ($cpkg $cver)"
say "  vmlinux           $(stat -c %s "$out/vmlinux") bytes (ELF of bzImage)"
say "  vmlinux-cloud     $(stat -c %s "$out/vmlinux-cloud") bytes (ELF of bzImage-cloud)"
say "  initramfs.cpio.gz $(stat -c %s "$out/initramfs.cpio.gz") bytes (busybox-static $bver)"
say "  initramfs-cloud.cpio.gz $(stat -c %s "$out/initramfs-cloud.cpio.gz") bytes (scenario init, cloud virtio modules)"
