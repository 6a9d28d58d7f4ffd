#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time (FUZZ_SECONDS each, default 60) and fails
# on any crash, after copying the crashing input to fuzz/regressions/<target>/, where the normal
# `cargo test` replays it (tests/tests/e2e/fuzz_regressions.rs): commit it with the fix.
# Installs cargo-fuzz when missing; safe to run twice. Caches outside the clone: the build in
# $LOYALTY_TOOLCHAINS/fuzz-target, the growing corpus in $LOYALTY_TOOLCHAINS/fuzz-corpus/<target>.
# FUZZ_TARGETS="a b" runs some only. How it works on a stable toolchain: docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECONDS_EACH=${FUZZ_SECONDS:-60}
TOOLCHAINS=${LOYALTY_TOOLCHAINS:-/opt/loyalty-toolchains}
TARGETS=${FUZZ_TARGETS:-sync_request member_document checkout_code enroll_body delivery_receipt}
CARGO_FUZZ_VERSION=0.13.2

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

# cargo-fuzz passes nightly flags (-Zsanitizer, -Cpasses=sancov-module...): a stable compiler
# accepts them with RUSTC_BOOTSTRAP=1. The address sanitizer's runtime ships with the stable
# toolchain's rust-std on x86_64 Linux; where it does not, FUZZ_SANITIZER=none works.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$TOOLCHAINS/fuzz-target"
SANITIZER=${FUZZ_SANITIZER:-address}

# Largest input per target: a sync body, a member document and an enrollment body far above what a
# real one is, yet small enough that each run stays fast.
max_len() {
  case "$1" in
    member_document) echo 4096 ;;
    checkout_code) echo 256 ;;
    *) echo 2048 ;;
  esac
}

echo "==> fuzz: build ($SANITIZER sanitizer, into $CARGO_TARGET_DIR)"
cargo fuzz build --fuzz-dir fuzz -s "$SANITIZER"

failed=()
for target in $TARGETS; do
  corpus="$TOOLCHAINS/fuzz-corpus/$target"
  artifacts=$(mktemp -d "/tmp/loyalty-fuzz-$target.XXXXXX")
  mkdir -p "$corpus"
  echo "==> fuzz: $target for ${SECONDS_EACH} s"
  # The first corpus folder collects what the run learns; the seeds and the regressions are read.
  if cargo fuzz run --fuzz-dir fuzz -s "$SANITIZER" "$target" \
      "$corpus" "fuzz/seeds/$target" "fuzz/regressions/$target" -- \
      -max_total_time="$SECONDS_EACH" -max_len="$(max_len "$target")" -timeout=20 \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" \
      > "$artifacts/log" 2>&1; then
    grep -E "^stat::number_of_executed_units|^Done [0-9]+ runs" "$artifacts/log" | tail -1 | sed "s/^/    /"
    rm -rf "$artifacts"
  else
    tail -40 "$artifacts/log"
    for crash in "$artifacts"/crash-* "$artifacts"/timeout-* "$artifacts"/oom-* "$artifacts"/leak-*; do
      [ -e "$crash" ] || continue
      cp "$crash" "$ROOT/fuzz/regressions/$target/"
      echo "    kept $(basename "$crash") in fuzz/regressions/$target/: fix it and commit it"
    done
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "==> fuzz: crashes in ${failed[*]}"
  exit 1
fi
echo "==> fuzz: no crash in $TARGETS"
