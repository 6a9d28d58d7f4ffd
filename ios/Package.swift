// swift-tools-version:5.9
// The Swift package of loyalty-core: the generated bindings (Sources/LoyaltyCore/LoyaltyCore.swift),
// the idiomatic layer (Sources/LoyaltyCore/Loyalty.swift) and XCTest tests.
//
// On Apple platforms the Rust library comes as LoyaltyCoreFFI.xcframework, built on a Mac by
// build-xcframework.sh. On Linux (where the tests run here) it is the host-built
// libloyalty_ffi.so from UNIFFI_LIB_DIR (default: ../target/debug), with the generated C header
// and module map in Sources/LoyaltyCoreFFI.
import PackageDescription
import Foundation

#if os(Linux)
let libDir = ProcessInfo.processInfo.environment["UNIFFI_LIB_DIR"]
    ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../target/debug").standardized.path
let ffiTarget: Target = .systemLibrary(name: "LoyaltyCoreFFI", path: "Sources/LoyaltyCoreFFI")
let linkerSettings: [LinkerSetting] = [
    .linkedLibrary("loyalty_ffi"),
    .unsafeFlags(["-L", libDir, "-Xlinker", "-rpath", "-Xlinker", libDir]),
]
#else
let ffiTarget: Target = .binaryTarget(name: "LoyaltyCoreFFI", path: "LoyaltyCoreFFI.xcframework")
let linkerSettings: [LinkerSetting] = []
#endif

let package = Package(
    name: "LoyaltyCore",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [.library(name: "LoyaltyCore", targets: ["LoyaltyCore"])],
    targets: [
        ffiTarget,
        .target(name: "LoyaltyCore", dependencies: ["LoyaltyCoreFFI"], path: "Sources/LoyaltyCore",
                linkerSettings: linkerSettings),
        .testTarget(name: "LoyaltyCoreTests", dependencies: ["LoyaltyCore"], path: "Tests/LoyaltyCoreTests"),
    ]
)
