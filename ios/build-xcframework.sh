#!/usr/bin/env bash
# Builds LoyaltyCoreFFI.xcframework (static libloyalty_ffi.a for iOS devices, iOS simulators and
# macOS, with the generated C header and module map) next to Package.swift, and regenerates the
# Swift bindings from the same sources. macOS with Xcode and rustup only; it cannot run on Linux.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(uname)" = Darwin ] || { echo "build-xcframework.sh needs macOS with Xcode" >&2; exit 1; }
TARGET=${CARGO_TARGET_DIR:-target}
OUT=ios/LoyaltyCoreFFI.xcframework
targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
rustup target add "${targets[@]}"

# 1. The bindings, generated from a host build of the same crate (one command, same features).
cargo build -p loyalty-ffi --features bindgen --lib --bin uniffi-bindgen
gen=$(mktemp -d)
"$TARGET/debug/uniffi-bindgen" generate --no-format "$TARGET/debug/libloyalty_ffi.dylib" --language swift --out-dir "$gen"
cp "$gen/LoyaltyCore.swift" ios/Sources/LoyaltyCore/LoyaltyCore.swift
cp "$gen/LoyaltyCoreFFI.h" ios/Sources/LoyaltyCoreFFI/LoyaltyCoreFFI.h
cp "$gen/LoyaltyCoreFFI.modulemap" ios/Sources/LoyaltyCoreFFI/module.modulemap

# 2. The static library for every Apple target, with the size-tuned `mobile` profile (fat LTO,
#    one codegen unit, opt-level "z"; Cargo.toml). Its output lies under <target>/mobile/.
PROFILE=mobile
for t in "${targets[@]}"; do
  IPHONEOS_DEPLOYMENT_TARGET=15.0 MACOSX_DEPLOYMENT_TARGET=12.0 \
    cargo build --profile "$PROFILE" -p loyalty-ffi --lib --target "$t"
done
fat=$(mktemp -d)
mkdir -p "$fat/sim" "$fat/mac" "$fat/headers"
lipo -create "$TARGET/aarch64-apple-ios-sim/$PROFILE/libloyalty_ffi.a" "$TARGET/x86_64-apple-ios/$PROFILE/libloyalty_ffi.a" \
  -output "$fat/sim/libloyalty_ffi.a"
lipo -create "$TARGET/aarch64-apple-darwin/$PROFILE/libloyalty_ffi.a" "$TARGET/x86_64-apple-darwin/$PROFILE/libloyalty_ffi.a" \
  -output "$fat/mac/libloyalty_ffi.a"
cp "$gen/LoyaltyCoreFFI.h" "$fat/headers/"
cp "$gen/LoyaltyCoreFFI.modulemap" "$fat/headers/module.modulemap"

# 3. The XCFramework.
rm -rf "$OUT"
xcodebuild -create-xcframework \
  -library "$TARGET/aarch64-apple-ios/$PROFILE/libloyalty_ffi.a" -headers "$fat/headers" \
  -library "$fat/sim/libloyalty_ffi.a" -headers "$fat/headers" \
  -library "$fat/mac/libloyalty_ffi.a" -headers "$fat/headers" \
  -output "$OUT"
echo "built $OUT"
