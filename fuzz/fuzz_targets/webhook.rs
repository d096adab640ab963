//! Fuzz target `webhook`: see `shared::fuzzing::webhook`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::webhook(data));
