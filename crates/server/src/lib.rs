//! Gyre, a Centrifugo-compatible real-time messaging server.
//!
//! - [`node`]: the service layer over the hub and the engine (publish, history, presence,
//!   channel checks, the cluster control protocol); engines report to it through
//!   [`engine::EngineEvents`].
//! - [`hub`]: local sessions and subscribers; broadcasting encodes once per shape.
//! - [`tags_filter`]: subscribers' tags filters, checked at subscribe, matched at fan-out.
//! - [`engine`]: streams, delivery, presence and control: memory (one node) or Redis.
//! - [`session`]: one task per connection, running the client protocol.
//! - [`outbound`]: the shared half of a session and its byte-bounded queue.
//! - [`pinger`]: one shared timer for all pings.
//! - `policy`: who may connect, subscribe, publish, call RPC and refresh.
//! - [`proxy`]: the application backend's decisions over HTTP (connect, refresh, subscribe,
//!   publish, RPC).
//! - `endpoint`: the connection endpoints, each running sessions over its transport;
//! - [`transport`]: the client transports (WebSocket, HTTP-streaming, SSE) sessions run over;
//!   [`api`]: the server HTTP API.
//! - `shared_poll`: shared poll subscriptions, the keys one poller per channel asks the
//!   backend about for all of a node's subscribers.
//! - [`app`]: wiring of all the above into an HTTP server.

#![warn(unreachable_pub)]

pub(crate) mod api;
pub mod app;
pub(crate) mod delta;
pub(crate) mod emulation;
pub(crate) mod endpoint;
pub(crate) mod engine;
pub(crate) mod http_client;
pub mod hub;
pub(crate) mod jwks;
pub(crate) mod metrics;
pub(crate) mod node;
pub mod outbound;
pub(crate) mod pinger;
pub(crate) mod policy;
pub(crate) mod proxy;
pub(crate) mod session;
pub(crate) mod sharded;
pub(crate) mod shared_poll;
pub mod tags_filter;
pub(crate) mod time;
pub(crate) mod transport;

pub use node::token_verifiers;
pub use time::unix_now;
