//! Fuzz target: header-name folding and the strip/inject policy; the invariant is `keyway::properties::header_names`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyway::properties::header_names(data));
