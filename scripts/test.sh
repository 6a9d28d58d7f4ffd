#!/usr/bin/env bash
# Every test: formatting, lints, unit, end-to-end and property tests, and the demo as a smoke test.
# Installs what it needs on a fresh machine and is safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# CI builds a fresh clone once: incremental compilation's cache would only add gigabytes to its disk.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

echo "==> toolchain"
cargo --version
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy

echo "==> system packages"
need=()
command -v zbarimg >/dev/null || need+=(zbar-tools)   # a real QR decoder for the checkout-code tests
# A real PostgreSQL 15 server for the PostgreSQL backend's tests.
[ -x "${LOYALTY_PG_BIN:-/usr/lib/postgresql/15/bin}/initdb" ] || need+=(postgresql-15)
command -v psql >/dev/null || need+=(postgresql-client-15)
# A real SMTP server (and openssl for its certificates) for the e-mail adapter's tests.
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || need+=(python3-aiosmtpd)
command -v openssl >/dev/null || need+=(openssl)
[ -x /usr/bin/chromium ] || need+=(chromium)   # a real browser for the console's tests
if [ ${#need[@]} -gt 0 ]; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
export LOYALTY_REQUIRE_ZBAR=1 LOYALTY_REQUIRE_SMTP=1

echo "==> the JavaScript protocol client's packages (.ci/install-js.sh, cached outside the clone)"
eval "$(bash .ci/install-js.sh)"
export LOYALTY_REQUIRE_JS=1   # tests/tests/e2e/js_client.rs: a client written from docs/protocol.md alone

echo "==> the console's browser-test packages (.ci/install-console.sh, cached outside the clone)"
eval "$(bash .ci/install-console.sh)"
export LOYALTY_REQUIRE_BROWSER=1   # tests/tests/e2e/console.rs: the console in Debian's Chromium
echo "==> the console's vendored Chart.js is the pinned release's file"
bash scripts/console-vendor.sh --check

echo "==> cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "==> build (the end-to-end tests run the loyalty binary)"
cargo build --workspace --bins

echo "==> PostgreSQL (scripts/postgres.sh: one throwaway server for the run; each test takes its own database)"
pg_dir=$(mktemp -d /tmp/loyalty-pg.XXXXXX)
trap 'bash scripts/postgres.sh stop "$pg_dir"; rm -rf "$pg_dir"' EXIT
LOYALTY_TEST_PG=$(bash scripts/postgres.sh start "$pg_dir")
export LOYALTY_TEST_PG

echo "==> cargo test"
log=$(mktemp)
cargo test --workspace 2>&1 | tee "$log"

echo "==> the end-to-end suite again, every server on PostgreSQL (LOYALTY_TEST_BACKEND=postgres; the postgres::, instances:: and failover:: tests ran above)"
LOYALTY_TEST_BACKEND=postgres cargo test -p loyalty-tests --test e2e -- --skip postgres:: --skip instances:: --skip failover:: 2>&1 | tee -a "$log"
read -r passed failed < <(awk '/^test result:/ {p += $4; f += $6} END {print p + 0, f + 0}' "$log")

echo "==> fuzz (scripts/fuzz.sh: each target ${FUZZ_SECONDS:-60} s; a crash is kept in fuzz/regressions/)"
bash scripts/fuzz.sh || { echo "==> fuzzing found a crash"; exit 1; }

echo "==> demo (smoke test of the main job)"
PROFILE=debug DEMO_EXIT=1 LOYALTY_LISTEN=127.0.0.1:0 DEMO_DATA="$(mktemp -d)/demo" bash scripts/demo.sh > /tmp/loyalty-demo.log 2>&1 \
  || { cat /tmp/loyalty-demo.log; echo "demo failed"; exit 1; }
grep -q "demo done" /tmp/loyalty-demo.log

echo "==> schemathesis against the OpenAPI document (scripts/schemathesis.sh: a real server, no 5xx, answers match)"
bash scripts/schemathesis.sh > /tmp/loyalty-schemathesis.log 2>&1 \
  || { cat /tmp/loyalty-schemathesis.log; echo "schemathesis found a failure"; exit 1; }
grep -E "^  [0-9]+ generated|took" /tmp/loyalty-schemathesis.log || true

echo "==> Kotlin and Swift API tests (scripts/mobile-tests.sh: real compilers, real server)"
mobile_counts=$(mktemp)
mobile_rc=0
MOBILE_COUNTS="$mobile_counts" bash scripts/mobile-tests.sh || mobile_rc=$?
read -r mobile_passed mobile_failed < "$mobile_counts" || { mobile_passed=0; mobile_failed=1; }
passed=$((passed + mobile_passed)); failed=$((failed + mobile_failed))
if [ "$mobile_rc" != 0 ]; then
  echo "==> the Kotlin or Swift tests failed"
  echo "$passed passed, $failed failed"
  exit 1
fi

echo "==> all tests passed in $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed"
