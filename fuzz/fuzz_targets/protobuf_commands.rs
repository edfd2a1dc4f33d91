//! libFuzzer entry for `gyre_fuzzing::protobuf_commands` (see crates/fuzzing).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gyre_fuzzing::protobuf_commands(data);
});
