//! libFuzzer entry for `gyre_fuzzing::json_commands` (see crates/fuzzing).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gyre_fuzzing::json_commands(data);
});
