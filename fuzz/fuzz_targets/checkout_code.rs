#![no_main]
//! cargo fuzz run checkout_code: see `fuzz/src/lib.rs` and `docs/fuzzing.md`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| loyalty_fuzz::checkout_code(data));
