//! # loyalty-ffi
//!
//! The UniFFI surface over `loyalty-core`: the only API Kotlin and Swift developers see. This crate
//! only adapts types and errors; all behaviour lives in the core. The mobile API (the
//! `LoyaltyClient` object, async methods, foreign traits for the secret store and change listener)
//! is built in the mobile-API issue; until then this crate links the core so the workspace layout
//! and the library artefacts (`cdylib`, `staticlib`) are already in place.

/// The version of the core this library was built from.
pub fn core_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[cfg(test)]
mod tests {
    #[test]
    fn reports_the_workspace_version() {
        assert_eq!(super::core_version(), "0.1.0");
    }
}
