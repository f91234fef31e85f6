//! Fuzz target: strict JSON; the invariant is `keyway::properties::strict_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyway::properties::strict_json(data));
