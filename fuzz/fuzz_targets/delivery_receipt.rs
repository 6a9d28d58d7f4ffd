#![no_main]
//! cargo fuzz run delivery_receipt: see `fuzz/src/lib.rs` and `docs/fuzzing.md`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| loyalty_fuzz::delivery_receipt(data));
