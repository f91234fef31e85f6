//! Fuzz target: JWK sets and PEM keys; the invariant is `keyway::properties::jwk_set`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyway::properties::jwk_set(data));
