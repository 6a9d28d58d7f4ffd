// The Android library of loyalty-core. Build the AAR (needs the Android SDK + NDK, cargo-ndk and
// the Rust Android targets; see docs/android.md):  ./gradlew :loyalty:assembleRelease
pluginManagement {
    repositories { google(); mavenCentral(); gradlePluginPortal() }
}
dependencyResolutionManagement {
    repositories { google(); mavenCentral() }
}
rootProject.name = "loyalty-android"
include(":loyalty")
