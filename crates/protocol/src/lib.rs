//! The Centrifugo client protocol (v2) as Gyre speaks it: the wire types and their codecs.
//!
//! This crate is the contract shared by the server, the client SDK, the load generator and the
//! tests. It is pure data and pure functions: no sockets, no runtime.
//!
//! - [`types`]: `Command`, `Reply`, `Push` and every request, result and push body, described once
//!   for both encodings (prost for Protobuf, serde for JSON).
//! - [`codes`]: reply error codes, disconnect codes and unsubscribe codes as values.
//! - [`codec`]: framing of several messages in one WebSocket message, for both encodings.
//! - [`raw`]: the JSON "raw bytes" convention (payloads embedded as JSON, never base64).

#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod codec;
pub mod codes;
mod connect_result;
pub mod raw;
pub mod types;

pub use codec::{DecodeError, EncodeError, Protocol};
pub use codes::{Disconnect, ErrorCode, ProtocolError};
pub use types::*;
