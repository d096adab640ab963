//! Fuzz target `trace`: see `shared::fuzzing::trace`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::trace(data));
