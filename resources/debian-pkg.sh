# Helpers for the scripts that build images from Debian's package archive only
# (make-linux-guest.sh, nested-host.sh). Sourced, not run; the caller sets `set -euo pipefail`
# and defines `say`.
#
# Packages are fetched with `apt-get download` (no root install) into a cache folder, once per
# package version, so reruns and both scripts share one download.

# The download cache (git-ignored, like everything under resources/out).
dp_cache=${DP_CACHE:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/out/debs}

# dp_need TOOL:PACKAGE... installs the packages of missing tools when we are root, or fails
# with one line naming them.
dp_need() {
  local pkgs=() missing=() tp
  for tp in "$@"; do
    command -v "${tp%%:*}" >/dev/null || { missing+=("${tp%%:*}"); pkgs+=("${tp#*:}"); }
  done
  [ ${#pkgs[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || { say "missing ${missing[*]}: install ${pkgs[*]}"; exit 1; }
  say "installing ${pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
}

# dp_concrete META prints the concrete kernel package behind a metapackage
# (linux-image-amd64 -> linux-image-6.1.0-NN-amd64), running apt-get update once if the
# package lists are empty and we are root.
dp_concrete() {
  local p
  p=$(apt-cache depends "$1" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$p" ] && [ "$(id -u)" -eq 0 ]; then
    say "no package lists yet: running apt-get update"
    apt-get update -qq
    p=$(apt-cache depends "$1" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  fi
  [ -n "$p" ] || { say "cannot find $1 in the package lists (run apt-get update)"; exit 1; }
  echo "$p"
}

# dp_version PACKAGE prints the candidate version apt would fetch.
dp_version() { apt-cache policy "$1" | awk '/Candidate:/ {print $2}'; }

# dp_extract PACKAGE DIR downloads PACKAGE's candidate .deb into the cache (unless it is
# there) and unpacks it into DIR with dpkg-deb -x.
dp_extract() {
  local pkg=$1 dir=$2 ver deb
  ver=$(dp_version "$pkg")
  [ -n "$ver" ] && [ "$ver" != "(none)" ] || { say "package $pkg not found (run apt-get update)"; exit 1; }
  mkdir -p "$dp_cache"
  # apt-get names the file with the epoch's ':' escaped as %3a.
  deb=$(find "$dp_cache" -maxdepth 1 -name "${pkg}_${ver//:/%3a}_*.deb" -print -quit)
  if [ -z "$deb" ]; then
    say "downloading $pkg $ver"
    # _apt may not write into the cache folder, which only costs a warning.
    (cd "$dp_cache" && apt-get download -q "$pkg=$ver" 2>&1 | grep -v 'unsandboxed' >&2 || true)
    deb=$(find "$dp_cache" -maxdepth 1 -name "${pkg}_${ver//:/%3a}_*.deb" -print -quit)
    [ -n "$deb" ] || { say "apt-get download $pkg=$ver failed"; exit 1; }
  fi
  mkdir -p "$dir"
  dpkg-deb -x "$deb" "$dir"
}
