#![no_main]
//! cargo fuzz run enroll_body: see `fuzz/src/lib.rs` and `docs/fuzzing.md`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| loyalty_fuzz::enroll_body(data));
