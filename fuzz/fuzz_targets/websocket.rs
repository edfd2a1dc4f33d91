//! libFuzzer entry for `gyre_fuzzing::websocket` (see crates/fuzzing).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gyre_fuzzing::websocket(data);
});
