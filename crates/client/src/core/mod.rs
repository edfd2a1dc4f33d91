//! The sans-IO protocol core: every rule of the client, and no I/O at all.
//!
//! [`Core`] owns the client state, the subscription registry, pending calls and all timers.
//! It never touches a socket, a clock or a runtime:
//!
//! - **inputs** are method calls: user calls ([`Core::connect`], [`Core::subscribe`],
//!   [`Core::call`], ...), transport events ([`Core::transport_opened`],
//!   [`Core::transport_frame`], [`Core::transport_closed`]), timers ([`Core::handle_timeout`])
//!   and token callback results ([`Core::connection_token`], [`Core::subscription_token`]).
//!   Each takes the current time `now` in milliseconds from an arbitrary origin.
//! - **outputs** are queued [`Output`] values, taken with [`Core::poll_output`]: open or close
//!   the transport, send a frame, emit an event, resolve a call (exactly once), or ask for a
//!   token. The single timer to arm is [`Core::next_deadline`]: the earliest of all internal
//!   deadlines, `None` when nothing is scheduled.
//! - randomness (backoff jitter) comes from a seeded RNG given to [`Core::new`], so a run is
//!   a pure function of its seed, inputs and times. `tests/simulation.rs` relies on that.
//!
//! The crate's async driver (the `transport` module) is a thin loop around this type.

mod backoff;
mod delta;
mod machine;

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use gyre_protocol::Protocol;
use rand::SeedableRng;
use rand::rngs::StdRng;

pub use backoff::backoff;
pub use delta::{MAX_PATCH_OUTPUT, apply_patch, decode_json_string};

use crate::Error;
use crate::event::{
    ClientEvent, HistoryOptions, HistoryResult, PresenceResult, PresenceStatsResult, State,
    StreamPosition, SubscriptionEvent, SubscriptionState,
};

/// Milliseconds since an arbitrary origin chosen by the driver.
pub type Millis = u64;

/// Client configuration as the core sees it (callbacks live in the driver).
#[derive(Debug, Clone)]
pub struct Config {
    /// Encoding.
    pub protocol: Protocol,
    /// Initial connection token ("" for none).
    pub token: String,
    /// Whether a token callback exists (the core emits [`Output::Token`] requests).
    pub has_get_token: bool,
    /// Connect data.
    pub data: Bytes,
    /// Client name sent in the connect command.
    pub name: String,
    /// Client version sent in the connect command.
    pub version: String,
    /// Timeout of each operation (connect handshake, calls, subscribe), ms.
    pub timeout: Millis,
    /// Minimum reconnect delay, ms.
    pub min_reconnect_delay: Millis,
    /// Maximum reconnect delay, ms.
    pub max_reconnect_delay: Millis,
    /// Extra time allowed after the server's ping interval before the connection is
    /// considered dead, ms.
    pub max_server_ping_delay: Millis,
    /// Commands produced together are batched into one frame up to this many bytes.
    pub max_frame_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            protocol: Protocol::Json,
            token: String::new(),
            has_get_token: false,
            data: Bytes::new(),
            name: "gyre-rust".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            timeout: 5_000,
            min_reconnect_delay: 500,
            max_reconnect_delay: 20_000,
            max_server_ping_delay: 10_000,
            max_frame_size: 60 * 1024,
        }
    }
}

/// Subscription configuration as the core sees it.
#[derive(Debug, Clone)]
pub struct SubConfig {
    /// Initial subscription token ("" for none).
    pub token: String,
    /// Whether a subscription token callback exists.
    pub has_get_token: bool,
    /// Subscribe data (sent with every subscribe).
    pub data: Bytes,
    /// Ask for fossil delta compression.
    pub delta: bool,
    /// Minimum resubscribe delay, ms.
    pub min_resubscribe_delay: Millis,
    /// Maximum resubscribe delay, ms.
    pub max_resubscribe_delay: Millis,
    /// Ask the server for a recoverable stream.
    pub recoverable: bool,
    /// Ask the server for positioning.
    pub positioned: bool,
    /// Ask for join/leave pushes.
    pub join_leave: bool,
    /// Start by recovering from this position.
    pub since: Option<StreamPosition>,
}

impl Default for SubConfig {
    fn default() -> Self {
        Self {
            token: String::new(),
            has_get_token: false,
            data: Bytes::new(),
            delta: false,
            min_resubscribe_delay: 500,
            max_resubscribe_delay: 20_000,
            recoverable: false,
            positioned: false,
            join_leave: false,
            since: None,
        }
    }
}

/// Identifies a user call until it is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// Identifies one transport (WebSocket) attempt; events of older transports are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransportId(pub u64);

/// A request for a token from the user's callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// Echo this id back with the result.
    pub id: u64,
    /// `None` for the connection token, the channel for a subscription token.
    pub channel: Option<String>,
}

/// A call the user makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Publish into a channel.
    Publish {
        /// Channel.
        channel: String,
        /// Payload.
        data: Bytes,
    },
    /// RPC.
    Rpc {
        /// Method.
        method: String,
        /// Payload.
        data: Bytes,
    },
    /// History of a channel.
    History {
        /// Channel.
        channel: String,
        /// Options.
        options: HistoryOptions,
    },
    /// Presence of a channel.
    Presence {
        /// Channel.
        channel: String,
    },
    /// Presence stats of a channel.
    PresenceStats {
        /// Channel.
        channel: String,
    },
    /// Asynchronous message to the server (no reply).
    Send {
        /// Payload.
        data: Bytes,
    },
    /// Wait until connected (client scope) or subscribed (subscription scope).
    Ready,
}

impl Request {
    fn data(&self) -> Option<&Bytes> {
        match self {
            Self::Publish { data, .. } | Self::Rpc { data, .. } | Self::Send { data } => Some(data),
            _ => None,
        }
    }
}

/// Whom a call waits for: the connection or one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Sent once the client is connected.
    Client,
    /// Sent once this client-side subscription is subscribed.
    Subscription(String),
}

/// Successful outcome of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallResult {
    /// `Ready` resolved.
    Ready,
    /// Publish accepted.
    Published,
    /// Send written to the transport.
    Sent,
    /// RPC result data.
    Rpc(Bytes),
    /// History result.
    History(HistoryResult),
    /// Presence result.
    Presence(PresenceResult),
    /// Presence stats result.
    PresenceStats(PresenceStatsResult),
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a new transport; report with `transport_opened` or `transport_closed`.
    Open(TransportId),
    /// Close this transport (do not report its closing back).
    Close {
        /// Which transport.
        transport: TransportId,
        /// Close code to send.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// Send one WebSocket message on this transport.
    Send {
        /// Which transport.
        transport: TransportId,
        /// The message payload (text for JSON, binary for Protobuf).
        frame: Bytes,
    },
    /// Deliver a client event.
    Client(ClientEvent),
    /// Deliver a subscription event.
    Subscription {
        /// Channel of the subscription.
        channel: String,
        /// The event.
        event: SubscriptionEvent,
    },
    /// Resolve a call; each call is resolved exactly once.
    Resolve {
        /// The call.
        call: CallId,
        /// Its outcome.
        result: Result<CallResult, Error>,
    },
    /// Ask the token callback; answer with `connection_token` / `subscription_token`.
    Token(TokenRequest),
}

/// Why a connection token was requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenPurpose {
    Connect,
    Refresh,
}

/// What a command in flight was for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Inflight {
    Connect,
    Subscribe(String),
    Unsubscribe(String),
    Refresh,
    SubRefresh(String),
    Call(CallId, Expect),
}

/// Which result a call's reply carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Publish,
    Rpc,
    History,
    Presence,
    PresenceStats,
}

/// A command waiting for its reply.
#[derive(Debug, Clone)]
struct Pending {
    kind: Inflight,
    /// Only for commands with their own timeout (not Connect, which uses the handshake one).
    deadline: Option<Millis>,
}

/// A call waiting for the connection or its subscription.
#[derive(Debug, Clone)]
struct Queued {
    id: CallId,
    scope: Scope,
    request: Request,
    deadline: Millis,
}

/// One client-side subscription.
#[derive(Debug, Clone)]
struct Sub {
    cfg: SubConfig,
    state: SubscriptionState,
    token: String,
    /// Position known and the stream was recoverable: send `recover` on subscribe.
    recover: bool,
    offset: u64,
    epoch: String,
    positioned: bool,
    delta: bool,
    prev_data: Option<Bytes>,
    subscribe_cmd: Option<u32>,
    resubscribe_at: Option<Millis>,
    attempts: u32,
    refresh_at: Option<Millis>,
    refresh_cmd: Option<u32>,
    refresh_attempts: u32,
    token_req: Option<(u64, TokenPurpose)>,
}

/// One server-side subscription.
#[derive(Debug, Clone, Default)]
struct ServerSub {
    subscribed: bool,
    recoverable: bool,
    offset: u64,
    epoch: String,
}

/// The sans-IO client state machine. See the module docs.
#[derive(Debug)]
pub struct Core {
    cfg: Config,
    rng: StdRng,
    out: VecDeque<Output>,
    units: Vec<Bytes>,
    units_len: usize,
    state: State,
    token: String,
    token_stale: bool,
    transport: Option<TransportId>,
    transport_open: bool,
    next_transport: u64,
    handshake_deadline: Option<Millis>,
    reconnect_at: Option<Millis>,
    reconnect_attempts: u32,
    ping_deadline: Option<Millis>,
    ping_interval: Millis,
    send_pong: bool,
    refresh_at: Option<Millis>,
    refresh_attempts: u32,
    conn_token: Option<(u64, TokenPurpose)>,
    next_token_req: u64,
    next_cmd: u32,
    inflight: BTreeMap<u32, Pending>,
    next_call: u64,
    queued: Vec<Queued>,
    subs: BTreeMap<String, Sub>,
    server_subs: BTreeMap<String, ServerSub>,
    client_id: String,
}

impl Core {
    /// A core in the `Disconnected` state; `seed` drives backoff jitter.
    pub fn new(cfg: Config, seed: u64) -> Self {
        Self {
            token: cfg.token.clone(),
            cfg,
            rng: StdRng::seed_from_u64(seed),
            out: VecDeque::new(),
            units: Vec::new(),
            units_len: 0,
            state: State::Disconnected,
            token_stale: false,
            transport: None,
            transport_open: false,
            next_transport: 0,
            handshake_deadline: None,
            reconnect_at: None,
            reconnect_attempts: 0,
            ping_deadline: None,
            ping_interval: 0,
            send_pong: false,
            refresh_at: None,
            refresh_attempts: 0,
            conn_token: None,
            next_token_req: 0,
            next_cmd: 0,
            inflight: BTreeMap::new(),
            next_call: 0,
            queued: Vec::new(),
            subs: BTreeMap::new(),
            server_subs: BTreeMap::new(),
            client_id: String::new(),
        }
    }

    /// Current client state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The encoding in use.
    pub fn protocol(&self) -> Protocol {
        self.cfg.protocol
    }

    /// Client id given by the server on the last successful connect ("" before).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// State of a client-side subscription, if it is in the registry.
    pub fn subscription_state(&self, channel: &str) -> Option<SubscriptionState> {
        self.subs.get(channel).map(|s| s.state)
    }

    /// Last known stream position of a client-side subscription.
    pub fn subscription_position(&self, channel: &str) -> Option<StreamPosition> {
        self.subs.get(channel).map(|s| StreamPosition {
            offset: s.offset,
            epoch: s.epoch.clone(),
        })
    }

    /// Channels in the client-side registry, sorted.
    pub fn subscriptions(&self) -> Vec<String> {
        self.subs.keys().cloned().collect()
    }

    /// Channels of the current server-side subscriptions, sorted.
    pub fn server_subscriptions(&self) -> Vec<String> {
        self.server_subs.keys().cloned().collect()
    }

    /// Number of unresolved calls (queued or in flight).
    pub fn pending_calls(&self) -> usize {
        self.queued.len()
            + self
                .inflight
                .values()
                .filter(|p| matches!(p.kind, Inflight::Call(..)))
                .count()
    }

    /// The current transport, if one is open or opening.
    pub fn transport(&self) -> Option<TransportId> {
        self.transport
    }

    /// Takes the next output, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The earliest deadline at which [`Core::handle_timeout`] must be called.
    pub fn next_deadline(&self) -> Option<Millis> {
        let mut d: Option<Millis> = None;
        let mut add = |t: Option<Millis>| {
            if let Some(t) = t {
                d = Some(d.map_or(t, |d| d.min(t)));
            }
        };
        add(self.handshake_deadline);
        add(self.reconnect_at);
        add(self.ping_deadline);
        add(self.refresh_at);
        for p in self.inflight.values() {
            add(p.deadline);
        }
        for q in &self.queued {
            add(Some(q.deadline));
        }
        for s in self.subs.values() {
            add(s.resubscribe_at);
            add(s.refresh_at);
        }
        d
    }

    /// User: start connecting (no-op unless `Disconnected`).
    pub fn connect(&mut self, now: Millis) {
        if self.state != State::Disconnected {
            return;
        }
        self.set_connecting(0, "connect called");
        self.reconnect_attempts = 0;
        self.start_connecting(now);
        self.flush();
    }

    /// User: disconnect (no reconnect until `connect` is called again).
    pub fn disconnect(&mut self, now: Millis) {
        if matches!(self.state, State::Disconnected | State::Closed) {
            return;
        }
        self.close_transport(1000, "disconnect called");
        self.connection_lost(now, 0, "disconnect called".into(), false);
        self.flush();
    }

    /// User: close for good. All subscriptions end `Unsubscribed`, every call fails `Closed`.
    pub fn close(&mut self, now: Millis) {
        if self.state == State::Closed {
            return;
        }
        if self.state != State::Disconnected {
            self.close_transport(1000, "client closed");
            self.connection_lost(now, 0, "disconnect called".into(), false);
        }
        let channels: Vec<String> = self.subs.keys().cloned().collect();
        for ch in channels {
            self.set_unsubscribed(now, &ch, 2, "client closed", false);
        }
        self.subs.clear();
        self.server_subs.clear();
        self.fail_queued(|_| true, &Error::Closed);
        let calls: Vec<CallId> = std::mem::take(&mut self.inflight)
            .into_values()
            .filter_map(|p| match p.kind {
                Inflight::Call(c, _) => Some(c),
                _ => None,
            })
            .collect();
        for c in calls {
            self.resolve(c, Err(Error::Closed));
        }
        self.state = State::Closed;
        self.emit(ClientEvent::Closed);
        self.flush();
    }

    /// User: add a subscription to the registry (`Unsubscribed`).
    pub fn new_subscription(&mut self, channel: &str, cfg: SubConfig) -> Result<(), Error> {
        if self.state == State::Closed {
            return Err(Error::Closed);
        }
        if self.subs.contains_key(channel) {
            return Err(Error::DuplicateSubscription(channel.to_owned()));
        }
        let (recover, offset, epoch) = match &cfg.since {
            Some(p) => (true, p.offset, p.epoch.clone()),
            None => (false, 0, String::new()),
        };
        self.subs.insert(
            channel.to_owned(),
            Sub {
                token: cfg.token.clone(),
                cfg,
                state: SubscriptionState::Unsubscribed,
                recover,
                offset,
                epoch,
                positioned: false,
                delta: false,
                prev_data: None,
                subscribe_cmd: None,
                resubscribe_at: None,
                attempts: 0,
                refresh_at: None,
                refresh_cmd: None,
                refresh_attempts: 0,
                token_req: None,
            },
        );
        Ok(())
    }

    /// User: unsubscribe and drop a subscription from the registry.
    pub fn remove_subscription(&mut self, now: Millis, channel: &str) -> Result<(), Error> {
        if !self.subs.contains_key(channel) {
            return Err(Error::SubscriptionNotFound(channel.to_owned()));
        }
        self.unsubscribe(now, channel)?;
        self.subs.remove(channel);
        Ok(())
    }

    /// User: subscribe (no-op unless `Unsubscribed`).
    pub fn subscribe(&mut self, now: Millis, channel: &str) -> Result<(), Error> {
        if self.state == State::Closed {
            return Err(Error::Closed);
        }
        let sub = self
            .subs
            .get_mut(channel)
            .ok_or_else(|| Error::SubscriptionNotFound(channel.to_owned()))?;
        if sub.state != SubscriptionState::Unsubscribed {
            return Ok(());
        }
        sub.state = SubscriptionState::Subscribing;
        sub.attempts = 0;
        self.emit_sub(
            channel,
            SubscriptionEvent::Subscribing {
                code: 0,
                reason: "subscribe called".into(),
            },
        );
        if self.state == State::Connected {
            self.start_subscribe(now, channel);
        }
        self.flush();
        Ok(())
    }

    /// User: unsubscribe (no-op when already `Unsubscribed`).
    pub fn unsubscribe(&mut self, now: Millis, channel: &str) -> Result<(), Error> {
        let sub = self
            .subs
            .get(channel)
            .ok_or_else(|| Error::SubscriptionNotFound(channel.to_owned()))?;
        if sub.state == SubscriptionState::Unsubscribed {
            return Ok(());
        }
        let send = self.state == State::Connected
            && (sub.state == SubscriptionState::Subscribed || sub.subscribe_cmd.is_some());
        self.set_unsubscribed(now, channel, 0, "unsubscribe called", send);
        self.flush();
        Ok(())
    }

    /// User: make a call. The outcome comes later as [`Output::Resolve`] (possibly already
    /// queued when this returns).
    pub fn call(&mut self, now: Millis, scope: Scope, request: Request) -> CallId {
        self.next_call += 1;
        let id = CallId(self.next_call);
        self.start_call(now, id, scope, request);
        self.flush();
        id
    }

    /// Transport: the transport opened (the WebSocket handshake succeeded).
    pub fn transport_opened(&mut self, now: Millis, transport: TransportId) {
        if self.transport != Some(transport) || self.transport_open {
            return;
        }
        self.transport_open = true;
        self.send_connect(now);
        self.flush();
    }

    /// Transport: one WebSocket message arrived.
    pub fn transport_frame(&mut self, now: Millis, transport: TransportId, frame: &[u8]) {
        if self.transport != Some(transport) || !self.transport_open {
            return;
        }
        self.handle_frame(now, frame);
        self.flush();
    }

    /// Transport: the transport closed or could not be opened. `code` is the close frame's
    /// code when there was one.
    pub fn transport_closed(
        &mut self,
        now: Millis,
        transport: TransportId,
        code: Option<u16>,
        reason: &str,
    ) {
        if self.transport != Some(transport) {
            return;
        }
        self.transport = None;
        self.transport_open = false;
        self.units.clear();
        self.units_len = 0;
        match code {
            Some(code) if code >= 3000 => {
                let code = u32::from(code);
                if code == 3005 {
                    self.token_stale = true;
                }
                let reconnect = gyre_protocol::Disconnect::reconnect(code);
                self.connection_lost(now, code, reason.to_owned(), reconnect);
            }
            _ => self.connection_lost(now, 1, "transport closed".into(), true),
        }
        self.flush();
    }

    /// Timer: call when `now >= next_deadline()` (calling early is harmless).
    pub fn handle_timeout(&mut self, now: Millis) {
        self.run_timers(now);
        self.flush();
    }

    /// Token callback: the result of a connection token request. `Ok("")` means unauthorized.
    pub fn connection_token(&mut self, now: Millis, id: u64, result: Result<String, String>) {
        self.on_connection_token(now, id, result);
        self.flush();
    }

    /// Token callback: the result of a subscription token request. `Ok("")` means
    /// unauthorized.
    pub fn subscription_token(
        &mut self,
        now: Millis,
        id: u64,
        channel: &str,
        result: Result<String, String>,
    ) {
        self.on_subscription_token(now, id, channel, result);
        self.flush();
    }
}
