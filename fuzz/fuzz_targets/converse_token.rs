//! Fuzz target: converse tokens; the invariant is `keyway::properties::converse_token`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyway::properties::converse_token(data));
