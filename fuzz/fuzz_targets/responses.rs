//! Fuzz target `responses`: see `shared::fuzzing::responses`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::responses(data));
