//! The bodies of Gyre's fuzz targets.
//!
//! Each target is a plain function over untrusted bytes that must never panic, hang or
//! allocate without bound, and that checks what the parser promises (round trips, limits).
//! `fuzz/fuzz_targets/*.rs` hand them to libFuzzer (`scripts/fuzz.sh`); `tests/corpus.rs`
//! runs each over its seed corpus (`fuzz/corpus/<target>/`) plus a fixed number of
//! deterministic mutations, so the short version runs in the normal test command.

#![warn(unreachable_pub)]

mod mutate;
mod targets;

pub use mutate::Mutator;
pub use targets::{
    TARGETS, Target, config_load, fossil_delta, json_commands, jwt, protobuf_commands, websocket,
};
