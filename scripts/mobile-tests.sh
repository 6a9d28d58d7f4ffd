#!/usr/bin/env bash
# The Kotlin and Swift API tests, end to end and for real:
#   1. installs the compilers (Kotlin from npm, Swift 6 in a Debian trixie chroot; idempotent),
#   2. builds libloyalty_ffi.so and uniffi-bindgen in one cargo command (same features, same .so),
#   3. generates the Kotlin and Swift bindings from that very library into android/ and ios/,
#   4. starts a real `loyalty server` on loopback with a fresh database (stopped by a trap),
#   5. compiles and runs the JUnit tests (JVM, JNA loads the host .so) and the XCTest tests
#      (swift test in the chroot, linked against the same .so).
# Ends with `mobile: N passed, M failed`; MOBILE_COUNTS=FILE also writes "N M" there.
# MOBILE_ONLY=kotlin|swift runs one side only. Needs root for the Swift chroot.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ONLY=${MOBILE_ONLY:-}
BUILD="$TARGET/mobile"
mkdir -p "$BUILD"

echo "==> mobile: toolchains"
[ "$ONLY" = swift ] || eval "$(bash .ci/install-kotlin.sh)"
[ "$ONLY" = kotlin ] || bash .ci/install-swift.sh >/dev/null

echo "==> mobile: build the library and the bindings generator (one command, same features)"
cargo build -p loyalty-ffi --features bindgen --lib --bin uniffi-bindgen
cargo build --bin loyalty
SO="$TARGET/debug/libloyalty_ffi.so"
BINDGEN="$TARGET/debug/uniffi-bindgen"

echo "==> mobile: generate the bindings from $SO"
# uniffi-bindgen reads bindings/uniffi.toml through cargo metadata, so it runs in the workspace.
rm -rf "$BUILD/gen"
"$BINDGEN" generate --no-format "$SO" --language kotlin --out-dir "$BUILD/gen/kotlin"
"$BINDGEN" generate --no-format "$SO" --language swift --out-dir "$BUILD/gen/swift"
KT_GEN=android/loyalty/src/main/kotlin/com/loyaltycore/loyalty_ffi.kt
cp "$BUILD/gen/kotlin/com/loyaltycore/loyalty_ffi.kt" "$KT_GEN"
mkdir -p ios/Sources/LoyaltyCoreFFI ios/Sources/LoyaltyCore
cp "$BUILD/gen/swift/LoyaltyCoreFFI.h" ios/Sources/LoyaltyCoreFFI/LoyaltyCoreFFI.h
cp "$BUILD/gen/swift/LoyaltyCoreFFI.modulemap" ios/Sources/LoyaltyCoreFFI/module.modulemap
cp "$BUILD/gen/swift/LoyaltyCore.swift" ios/Sources/LoyaltyCore/LoyaltyCore.swift
if ! git diff --quiet -- "$KT_GEN" ios/Sources 2>/dev/null; then
  echo "note: the generated bindings changed; commit android/ and ios/ with the Rust change"
fi

echo "==> mobile: start the server"
WORK=$(mktemp -d /tmp/loyalty-mobile.XXXXXX)
export LOYALTY_OPERATOR_TOKEN="mobile-operator-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export LOYALTY_TILL_TOKEN="mobile-till-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# Every test enrolls its own phone from this one address: no per-address enrollment limit here.
"$TARGET/debug/loyalty" server --listen 127.0.0.1:0 --database "$WORK/server.db" --enroll-per-minute 0 \
  > "$WORK/server.out" 2> "$WORK/server.log" &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for _ in $(seq 100); do
  grep -q "^listening on" "$WORK/server.out" 2>/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log"; echo "the server did not start"; exit 1; }
  sleep 0.1
done
LOYALTY_SERVER_URL=$(sed -n 's/^listening on //p' "$WORK/server.out" | head -1)
[ -n "$LOYALTY_SERVER_URL" ] || { cat "$WORK/server.log"; echo "the server did not start"; exit 1; }
export LOYALTY_SERVER_URL
# Where nothing listens: how the tests put a device offline.
LOYALTY_CLOSED_URL="http://127.0.0.1:$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export LOYALTY_CLOSED_URL
echo "server at $LOYALTY_SERVER_URL"

passed=0
failed=0
status=0

if [ "$ONLY" != swift ]; then
  echo "==> mobile: Kotlin (JUnit on the JVM, JNA loads $SO)"
  JAR="$BUILD/loyalty-kotlin-tests.jar"
  JAVA_OPTS="-Xmx2g -XX:TieredStopAtLevel=1" "$KOTLINC" -Werror -jvm-target 17 -cp "$KOTLIN_COMPILE_CP" \
    android/loyalty/src/main/kotlin/com/loyaltycore/*.kt \
    android/loyalty/src/test/kotlin/com/loyaltycore/*.kt -d "$JAR"
  set +e
  java -Djna.library.path="$(dirname "$SO")" -cp "$JAR:$KOTLIN_RUN_CP" \
    org.junit.runner.JUnitCore com.loyaltycore.LoyaltyClientTest 2>&1 | tee "$WORK/kotlin.log"
  rc=${PIPESTATUS[0]}
  set -e
  if grep -q '^OK (' "$WORK/kotlin.log"; then
    n=$(sed -n 's/^OK (\([0-9]*\) tests*)/\1/p' "$WORK/kotlin.log"); f=0
  else
    n=$(sed -n 's/^Tests run: *\([0-9]*\), *Failures: *\([0-9]*\).*/\1/p' "$WORK/kotlin.log")
    f=$(sed -n 's/^Tests run: *\([0-9]*\), *Failures: *\([0-9]*\).*/\2/p' "$WORK/kotlin.log")
    n=${n:-0}; f=${f:-1}; [ "$f" -gt 0 ] || f=1
    n=$((n - f))
  fi
  [ "$rc" = 0 ] || status=1
  passed=$((passed + n)); failed=$((failed + f))
  echo "kotlin: $n passed, $f failed"
fi

if [ "$ONLY" != kotlin ]; then
  echo "==> mobile: Swift (XCTest, swift test in the trixie chroot)"
  set +e
  # The chroot shares the host's network (loopback server) and sees $ROOT (package and target).
  bash .ci/swift-chroot.sh --env UNIFFI_LIB_DIR="$(dirname "$SO")" \
    --env LOYALTY_SERVER_URL="$LOYALTY_SERVER_URL" \
    --env LOYALTY_OPERATOR_TOKEN="$LOYALTY_OPERATOR_TOKEN" \
    --env LOYALTY_TILL_TOKEN="$LOYALTY_TILL_TOKEN" \
    --env LOYALTY_CLOSED_URL="$LOYALTY_CLOSED_URL" \
    $( [ "${TARGET#"$ROOT"/}" = "$TARGET" ] && echo --bind "$TARGET" ) \
    "$ROOT" swift test --package-path ios --disable-swift-testing 2>&1 | tee "$WORK/swift.log"
  rc=${PIPESTATUS[0]}
  set -e
  line=$(grep -E 'Executed [0-9]+ tests?, with [0-9]+ failures?' "$WORK/swift.log" | tail -1 || true)
  n=$(echo "$line" | sed -n 's/.*Executed \([0-9]*\) tests*, with \([0-9]*\) failures*.*/\1/p')
  f=$(echo "$line" | sed -n 's/.*Executed \([0-9]*\) tests*, with \([0-9]*\) failures*.*/\2/p')
  n=${n:-0}; f=${f:-0}
  if [ "$rc" != 0 ]; then status=1; [ "$f" -gt 0 ] || f=1; fi
  n=$((n - f)); [ "$n" -ge 0 ] || n=0
  passed=$((passed + n)); failed=$((failed + f))
  echo "swift: $n passed, $f failed"
fi

[ -z "${MOBILE_COUNTS:-}" ] || echo "$passed $failed" > "$MOBILE_COUNTS"
echo "mobile: $passed passed, $failed failed"
exit $status
