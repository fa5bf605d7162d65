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
#
# Usage: resources/make-linux-guest.sh [OUT_DIR]     (default: resources/out/linux)
# Idempotent: it does nothing when OUT_DIR already holds what the current packages give.
# Packages are fetched with `apt-get download` (no root install). Needs: apt, dpkg-deb,
# xz, cpio, gzip (installed with apt-get when missing and we are root).
#
# Why the generic kernel first: Debian builds its cloud kernel without CONFIG_X86_MPPARSE
# (it finds CPUs through ACPI only), so it cannot see the MP table microvm builds and boots
# on one CPU whatever --cpus says.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out/linux}
mkdir -p "$out"
out=$(cd "$out" && pwd)

say() { echo "make-linux-guest: $*" >&2; }

need_tools=()
for t in apt-get dpkg-deb xz cpio gzip od; do
  command -v "$t" >/dev/null || need_tools+=("$t")
done
if [ ${#need_tools[@]} -gt 0 ]; then
  pkgs=()
  for t in "${need_tools[@]}"; do
    case $t in xz) pkgs+=(xz-utils) ;; od) pkgs+=(coreutils) ;; *) pkgs+=("$t") ;; esac
  done
  [ "$(id -u)" -eq 0 ] || { say "missing ${need_tools[*]}: install ${pkgs[*]}"; exit 1; }
  say "installing ${pkgs[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

# The concrete kernel package behind a metapackage (linux-image-amd64 -> linux-image-6.1...).
concrete() { apt-cache depends "$1" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
kpkg=$(concrete linux-image-amd64)
if [ -z "$kpkg" ] && [ "$(id -u)" -eq 0 ]; then
  say "no package lists yet: running apt-get update"
  apt-get update -qq
  kpkg=$(concrete linux-image-amd64)
fi
cpkg=$(concrete linux-image-cloud-amd64)
[ -n "$kpkg" ] && [ -n "$cpkg" ] ||
  { say "cannot find linux-image-amd64 / linux-image-cloud-amd64 in the package lists (run apt-get update)"; exit 1; }
kver=$(apt-cache policy "$kpkg" | awk '/Candidate:/ {print $2}')
cver=$(apt-cache policy "$cpkg" | awk '/Candidate:/ {print $2}')
bver=$(apt-cache policy busybox-static | awk '/Candidate:/ {print $2}')
stamp="$kpkg $kver $cpkg $cver busybox-static $bver"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] && [ -s "$out/bzImage" ] &&
   [ -s "$out/bzImage-cloud" ] && [ -s "$out/vmlinux" ] && [ -s "$out/initramfs.cpio.gz" ]; then
  say "up to date in $out ($stamp)"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say "downloading $kpkg $kver, $cpkg $cver and busybox-static $bver"
# apt-get download writes into the current directory; _apt may not write there, which
# only costs a warning.
(cd "$work" && apt-get download -q "$kpkg" "$cpkg" busybox-static 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
ls "$work/$kpkg"_*.deb "$work/$cpkg"_*.deb "$work"/busybox-static_*.deb >/dev/null

dpkg-deb -x "$work/$kpkg"_*.deb "$work/kernel"
cp "$work"/kernel/boot/vmlinuz-* "$out/bzImage.tmp"
dpkg-deb -x "$work/$cpkg"_*.deb "$work/cloud"
cp "$work"/cloud/boot/vmlinuz-* "$out/bzImage-cloud.tmp"

# The compressed vmlinux sits at (setup_sects + 1) * 512 + payload_offset, payload_length
# bytes long (boot protocol 2.08+, Documentation/arch/x86/boot.rst).
img="$out/bzImage.tmp"
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
  *) say "unknown kernel payload compression (magic $magic)"; exit 1 ;;
esac
tail -c +$((start + 1)) "$img" | head -c "$payload_length" | $decomp > "$out/vmlinux.tmp" 2>/dev/null || true
if [ "$(head -c 4 "$out/vmlinux.tmp" | od -An -t x1 | tr -d ' ')" != "7f454c46" ]; then
  say "extracting vmlinux from the bzImage failed (payload at $start, $payload_length bytes, $decomp)"
  exit 1
fi

dpkg-deb -x "$work"/busybox-static_*.deb "$work/bb"
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

mv "$out/bzImage.tmp" "$out/bzImage"
mv "$out/bzImage-cloud.tmp" "$out/bzImage-cloud"
mv "$out/vmlinux.tmp" "$out/vmlinux"
mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
echo "$stamp" > "$out/.stamp"
say "made in $out:"
say "  bzImage           $(stat -c %s "$out/bzImage") bytes ($kpkg $kver)"
say "  bzImage-cloud     $(stat -c %s "$out/bzImage-cloud") bytes ($cpkg $cver)"
say "  vmlinux           $(stat -c %s "$out/vmlinux") bytes (ELF, extracted with $decomp)"
say "  initramfs.cpio.gz $(stat -c %s "$out/initramfs.cpio.gz") bytes (busybox-static $bver)"
