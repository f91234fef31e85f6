//! Fuzz target: request targets (path policy); the invariant is `keyway::properties::request_target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyway::properties::request_target(data));
