//! Rust client SDK for Gyre and Centrifugo (client protocol v2, JSON or Protobuf over
//! WebSocket).
//!
//! # Quickstart
//!
//! ```no_run
//! use gyre_client::{ClientOptions, SubscriptionEvent, SubscriptionOptions};
//!
//! # async fn run() -> Result<(), gyre_client::Error> {
//! let client = ClientOptions::new("ws://127.0.0.1:8000/connection/websocket").build()?;
//! let sub = client.new_subscription("news", SubscriptionOptions::new())?;
//! let mut events = sub.events(); // a bounded, ordered stream of subscription events
//! sub.subscribe(); // fine before connect: sent right after the connect reply
//! client.connect(); // returns at once; the client reconnects with backoff on its own
//! sub.ready(None).await?; // wait until subscribed (operation timeout)
//! sub.publish(&br#"{"text":"hello"}"#[..]).await?;
//! while let Some(event) = events.recv().await {
//!     if let SubscriptionEvent::Publication(p) = event {
//!         println!("{}", String::from_utf8_lossy(&p.data));
//!     }
//! }
//! client.close().await; // no task keeps running after this
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! - [`core`] is a sans-IO state machine holding every protocol rule: client and
//!   subscription states, reconnect and resubscribe backoff (full jitter, seeded RNG),
//!   pending calls, ping/pong, token refresh, recovery, fossil deltas and server-side
//!   subscriptions. It takes inputs with the current time and queues outputs; it is tested
//!   by a deterministic simulation (`tests/simulation.rs`).
//! - One tokio task owns the WebSocket (tokio-websockets; subprotocol `centrifuge-protobuf`
//!   for Protobuf), runs the single core timer, calls the async token callbacks and delivers
//!   events. [`Client`] and [`Subscription`] are cheap clonable handles talking to it.
//! - **Events** are delivered through [`EventStream`]s ([`Client::events`],
//!   [`Subscription::events`]): ordered, bounded (capacity set with
//!   [`ClientOptions::event_capacity`]) and lossless: when a stream is full the client waits
//!   for its consumer and reads nothing from the socket meanwhile, so the server's
//!   slow-client limit decides ([`ClientOptions::backpressure`]`(false)` is the lossy mode,
//!   where a full stream loses the newest events and receives a `Lagged` notice, with the count and the position to recover from, as soon as it has room; [`Client::stats`] counts the dropped publications). Register streams
//!   before `connect`/`subscribe` to see every state change. Handle states are also
//!   readable at any time with [`Client::state`] and [`Subscription::state`]: a call that
//!   changes the state (`connect`, `disconnect`, `subscribe`, `unsubscribe`) sets it before
//!   returning, and the task then keeps it equal to the core's state.
//! - A [`Subscription`] handle refers to its own subscription: after
//!   [`Client::remove_subscription`] it is inert (calls fail with
//!   [`Error::SubscriptionNotFound`]) even when the channel is subscribed again.
//! - Dropping every `Client` and `Subscription` handle closes the client and ends the task.
//! - **Linear at scale**: the core keeps every per-command, per-call and per-subscription
//!   deadline in one ordered timer index, so finding the next deadline or the due ones never
//!   scans the registry; the subscribe commands of a connect (and of a burst of `subscribe`
//!   calls) are batched into frames of up to 60 KiB; a subscribe timeout retries only that
//!   subscription, after its own growing, jittered, capped backoff. [`Client::stats`]
//!   exposes the counts (`tests/scale.rs` checks 10,000 subscriptions with them).
//! - `wss://` runs over rustls (ring): the system roots are trusted, or only the CA given with
//!   [`ClientOptions::tls_ca_pem`]; [`ClientOptions::tls_client_cert_pem`] adds a client
//!   certificate; the server name (SNI) is the URL's host. A `wss://` URL is never sent in
//!   plaintext: a TLS failure is a [`ClientEvent::Error`] with [`Error::Transport`].
//! - Every transport failure (DNS, TCP, TLS, upgrade status, a lost socket) is reported as
//!   [`ClientEvent::Error`] of kind [`ErrorKind::Transport`] with [`Error::Transport`]; when
//!   it ends a connection, its text is also the `reason` of the `Connecting` event
//!   (`"transport closed: ..."`). [`ClientOptions::build`] refuses a URL that does not parse,
//!   a scheme other than `ws`/`wss`, bad header names or values and unusable certificates.
//!   The [`codes`] module names the state-change codes.
//!
//! # The Centrifugo client API, point by point
//!
//! | Spec point | Rust form |
//! |---|---|
//! | states `disconnected`/`connecting`/`connected`/`closed` | [`State`], [`Client::state`], [`ClientEvent::Connecting`]/[`Connected`](ClientEvent::Connected)/[`Disconnected`](ClientEvent::Disconnected)/[`Closed`](ClientEvent::Closed) with `code` and `reason` |
//! | new client starts `disconnected`; `connect()` → `connecting` → `connected` | [`ClientOptions::build`], [`Client::connect`], [`Client::ready`] |
//! | reconnect with exponential backoff and jitter | [`ClientOptions::reconnect_delay`] (500 ms – 20 s), [`core::backoff`]; the backoff starts again from the minimum only after a connection lasted the maximum delay, so connections that keep failing soon after connecting keep backing off |
//! | lost connection → `connecting`; terminal condition → `disconnected` | disconnect codes: reconnect iff `code < 3500 \|\| code >= 5000 \|\| 4000..4500` |
//! | `error` event with its `type` | [`ClientEvent::Error`], [`SubscriptionEvent::Error`]: `{ kind: ErrorKind, error: Error }` ([`ErrorKind`]: transport, connect, connect token, refresh, refresh token, subscribe, subscribe token, subscribe refresh, protocol, configuration) |
//! | `disconnect()`, `close()` (subscriptions → `unsubscribed`, unusable after) | [`Client::disconnect`], [`Client::close`] |
//! | options: token, connect data, timeout, backoff, max server ping delay, headers, name/version | [`ClientOptions::token`], [`data`](ClientOptions::data), [`timeout`](ClientOptions::timeout), [`reconnect_delay`](ClientOptions::reconnect_delay), [`max_server_ping_delay`](ClientOptions::max_server_ping_delay), [`header`](ClientOptions::header), [`name`](ClientOptions::name)/[`version`](ClientOptions::version), [`protocol`](ClientOptions::protocol) |
//! | changing token, data and headers (`setToken`, `setData`, `setHeaders`) | [`Client::set_token`], [`set_data`](Client::set_data), [`set_headers`](Client::set_headers) (upgrade request), [`set_connect_headers`](Client::set_connect_headers) (the connect command's `headers`, also [`ClientOptions::connect_header`]): all take effect on the next connect |
//! | proxies | [`ClientOptions::http_proxy`] (HTTP `CONNECT`), [`ClientOptions::socks5_proxy`] |
//! | methods `send(data)`, `rpc(method, data)` | [`Client::send`] (`send_message` is its deprecated old name), [`Client::rpc`]; with serde: [`Client::rpc_json`], [`Client::publish_json`], [`Subscription::publish_json`], [`Publication::json`] |
//! | connection token refresh via callback; empty → `disconnected`; error → retry after jittered delay | [`ClientOptions::get_token`]: refreshed after the `ttl` of an expiring connection; `Ok("")` → `Disconnected { code: 1 }`; error 109 on connect → new token and reconnect |
//! | PING/PONG; no ping for ping interval + delay → reconnect | pongs sent when the server asks (`pong: true`); `Connecting { code: 2, "no ping" }`; `max_server_ping_delay(Duration::ZERO)` disables the check |
//! | subscription states `unsubscribed`/`subscribing`/`subscribed` | [`SubscriptionState`], [`Subscription::state`], [`SubscriptionEvent`] |
//! | `newSubscription` (duplicate → error), `getSubscription`, `removeSubscription`, `subscriptions` | [`Client::new_subscription`] ([`Error::DuplicateSubscription`]), [`Client::get_subscription`], [`Client::remove_subscription`], [`Client::subscriptions`] |
//! | subscribe errors: temporary → resubscribe with backoff, otherwise `unsubscribed` | [`SubscriptionOptions::resubscribe_delay`]; 109 → new token and resubscribe; a subscribe timeout fails only that subscription (an `Error { kind: Subscribe, error: Timeout }`, then a retry after its backoff) |
//! | transport lost → `subscribing`, resubscribe on reconnect | `Subscribing { code: 1, "transport closed" }` |
//! | `unsubscribe()` keeps the registry entry and the stream position | [`Subscription::unsubscribe`], [`Subscription::subscribe`] |
//! | server unsubscribe push: code ≥ 2500 resubscribes, else `unsubscribed` | handled in [`core`] |
//! | publication context: data, offset, tags, info | [`Publication`] |
//! | subscribe before connect | [`Subscription::subscribe`] then [`Client::connect`] |
//! | recovery state; `wasRecovering`/`recovered` in `subscribed` | [`SubscriptionOptions::recoverable`]/[`positioned`](SubscriptionOptions::positioned)/[`since`](SubscriptionOptions::since); [`SubscribedContext`] |
//! | subscription options: token, data, resubscribe backoff | [`SubscriptionOptions::subscribe_timeout`], [`SubscriptionOptions::token`], [`get_token`](SubscriptionOptions::get_token), [`data`](SubscriptionOptions::data), [`resubscribe_delay`](SubscriptionOptions::resubscribe_delay), [`delta`](SubscriptionOptions::delta), [`join_leave`](SubscriptionOptions::join_leave) |
//! | subscription methods `publish`, `history`, `presence`, `presenceStats` | [`Subscription::publish`], [`history`](Subscription::history), [`presence`](Subscription::presence), [`presence_stats`](Subscription::presence_stats) (wait until subscribed) |
//! | client-wide `getSubscriptionToken` | [`ClientOptions::get_subscription_token`], used by subscriptions without a callback of their own |
//! | subscription token refresh; empty → `unsubscribed` | [`SubscriptionOptions::get_token`]; `sub_refresh` after `ttl`; `Unsubscribed { code: 1 }` |
//! | join/leave (v2 API) | [`SubscriptionEvent::Join`]/[`Leave`](SubscriptionEvent::Leave) |
//! | server-side subscriptions: `subscribed`/`subscribing`/`unsubscribed`/`publication` on the client | [`ClientEvent::Subscribed`], [`Subscribing`](ClientEvent::Subscribing), [`Unsubscribed`](ClientEvent::Unsubscribed), [`Publication`](ClientEvent::Publication), [`Join`](ClientEvent::Join)/[`Leave`](ClientEvent::Leave); positions sent back in the connect command for recovery |
//! | client-level `publish`/`history`/`presence`/`presenceStats` by channel | [`Client::publish`], [`Client::history`], [`Client::presence`], [`Client::presence_stats`] |
//! | async server messages | [`ClientEvent::Message`] |
//! | calls while connecting wait or time out; don't rely on state | calls queue while `Connecting`, fail [`Error::Timeout`] after the operation timeout, [`Error::Disconnected`] when disconnected, [`Error::ConnectionClosed`] when the connection drops in flight |
//! | callbacks must be fast | event streams are bounded; a full one makes the client wait (backpressure) unless `backpressure(false)` |

#![warn(missing_docs)]

mod client;
pub mod codes;
pub mod core;
mod delivery;
mod error;
pub mod event;
mod options;
mod proxy;
mod state_cell;
mod stats;
mod tags_filter;
mod tls;
mod transport;

pub use client::{Client, EventStream, Subscription};
pub use error::Error;
pub use event::*;
pub use options::{BoxError, ClientOptions, Protocol, SubscriptionOptions, TokenContext};
pub use stats::ClientStats;
pub use tags_filter::TagsFilter;
