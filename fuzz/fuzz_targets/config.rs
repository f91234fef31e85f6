//! Fuzz target: the config loader (check-config); the invariant is `keyway::properties::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyway::properties::config(data));
