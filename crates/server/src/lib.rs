//! Gyre, a Centrifugo-compatible real-time messaging server.
//!
//! - [`node`]: the service layer over the hub and the engine (publish, history, presence,
//!   channel checks, the cluster control protocol); engines report to it through
//!   [`engine::EngineEvents`].
//! - [`hub`]: local sessions and subscribers; broadcasting encodes once per shape.
//! - [`engine`]: streams, delivery, presence and control: memory (one node) or Redis.
//! - [`session`]: one task per connection, running the client protocol.
//! - [`outbound`]: the shared half of a session and its byte-bounded queue.
//! - [`pinger`]: one shared timer for all pings.
//! - [`ws`]: the WebSocket endpoint; [`api`]: the server HTTP API.
//! - [`app`]: wiring of all the above into an HTTP server.

pub mod api;
pub mod app;
pub mod delta;
pub mod engine;
pub mod hub;
pub mod node;
pub mod outbound;
pub mod pinger;
pub mod session;
pub mod websocket;
pub mod ws;
