//! Fuzz target: the user-token opener; the invariant is `keyway::properties::user_token`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyway::properties::user_token(data));
