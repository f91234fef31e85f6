//! Fuzz target: hosted-email callback URLs; the invariant is `keyway::properties::callback_url`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyway::properties::callback_url(data));
