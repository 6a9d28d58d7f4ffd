#![no_main]
//! cargo fuzz run member_document: see `fuzz/src/lib.rs` and `docs/fuzzing.md`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| loyalty_fuzz::member_document(data));
