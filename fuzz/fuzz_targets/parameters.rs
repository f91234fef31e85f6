//! Fuzz target: query/form parameter reading and secret removal; the invariant is `keyway::properties::parameters`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyway::properties::parameters(data));
