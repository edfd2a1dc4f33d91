//! libFuzzer entry for `gyre_fuzzing::config_load` (see crates/fuzzing).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gyre_fuzzing::config_load(data);
});
