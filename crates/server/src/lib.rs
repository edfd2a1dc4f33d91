//! Gyre, a Centrifugo-compatible real-time messaging server.
//!
//! - [`node`]: the façade over the hub and the engine (publish, history, presence).
//! - [`hub`]: local sessions and subscribers; broadcasting encodes once per shape.
//! - [`engine`]: the memory stream store and presence.
//! - [`session`]: one task per connection, running the client protocol.
//! - [`outbound`]: the shared half of a session and its byte-bounded queue.
//! - [`pinger`]: one shared timer for all pings.
//! - `policy`: who may connect, subscribe, publish, call RPC and refresh.
//! - [`proxy`]: the application backend's decisions over HTTP (connect, refresh, subscribe,
//!   publish, RPC).
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
pub(crate) mod policy;
pub mod proxy;
pub mod session;
pub mod websocket;
pub mod ws;
