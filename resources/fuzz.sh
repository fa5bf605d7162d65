#!/usr/bin/env bash
# Builds every cargo-fuzz target under fuzz/ and runs each, one after another, for
# SECONDS_PER_TARGET seconds (default 60), starting from its committed seed corpus
# (fuzz/corpus/<target>/, never modified: new inputs go to a temporary directory).
# Exits non-zero if a target fails to build or finds a crash, leak, timeout or OOM; the
# reproducer is in fuzz/artifacts/<target>/. See docs/fuzzing.md.
#
#   resources/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
case "$secs" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET [TARGET...]]" >&2; exit 2 ;;
esac

# cargo-fuzz needs a nightly toolchain (for -Zsanitizer) and the cargo-fuzz subcommand.
if ! cargo +nightly --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo +nightly install cargo-fuzz --locked
fi

# Longest input per target: enough for rings + buffers, a small kernel image, a filter file.
max_len() {
  case "$1" in
    kernel_loader) echo 32768 ;;
    strace_parser | virtio_net_rng) echo 16384 ;;
    seccomp_json) echo 8192 ;;
    legacy_ports) echo 2048 ;;
    *) echo 4096 ;;
  esac
}

# The seccomp readers leak, by design, the strings they turn into the rules' &'static str
# (once per process in microvm), so leak detection (libFuzzer's and LeakSanitizer's at
# exit) is off for them.
extra_args() {
  case "$1" in
    seccomp_json | strace_parser) echo -detect_leaks=0 ;;
  esac
}
asan_options() {
  case "$1" in
    seccomp_json | strace_parser) echo detect_leaks=0 ;;
  esac
}

targets=$(cargo +nightly fuzz list)
if [ $# -gt 1 ]; then
  shift
  targets="$*"
fi
echo "fuzz: building every target" >&2
cargo +nightly fuzz build

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for t in $targets; do
  echo "fuzz: $t for ${secs}s" >&2
  mkdir -p "$work/$t" "fuzz/corpus/$t"
  log="$work/$t.log"
  if ASAN_OPTIONS="$(asan_options "$t")" cargo +nightly fuzz run "$t" "$work/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 $(extra_args "$t") > "$log" 2>&1; then
    runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
    echo "fuzz: $t: ${runs:-?} inputs, no finding" >&2
  else
    # The fuzzer's own report (crash, leak, timeout, OOM) with the reproducer's path.
    tail -n 60 "$log" >&2
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (reproducers in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: all targets ran ${secs}s without a finding" >&2
