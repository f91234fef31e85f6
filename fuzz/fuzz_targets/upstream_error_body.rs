//! Fuzz target: the upstream error-body rewrite; the invariant is `keyway::properties::upstream_error_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyway::properties::upstream_error_body(data));
