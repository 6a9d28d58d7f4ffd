#![no_main]
//! cargo fuzz run sync_request: see `fuzz/src/lib.rs` and `docs/fuzzing.md`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| loyalty_fuzz::sync_request(data));
