//! libFuzzer entry for `gyre_fuzzing::fossil_delta` (see crates/fuzzing).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gyre_fuzzing::fossil_delta(data);
});
