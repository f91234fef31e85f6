//! Fuzz target: compact JWS and JWT parsing; the invariant is `keyway::properties::jws`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyway::properties::jws(data));
