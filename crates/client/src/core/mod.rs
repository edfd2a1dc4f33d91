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
mod calls;
mod connection;
mod delta;
mod frames;
mod index;
mod inputs;
mod outputs;
mod pushes;
mod subscriptions;
mod timers;

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use gyre_protocol::Protocol;
use rand::SeedableRng;
use rand::rngs::StdRng;

pub use backoff::backoff;
pub use delta::{MAX_PATCH_OUTPUT, apply_patch, decode_json_string};
pub use index::CoreStats;

use index::{TimerIndex, TimerKey};

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
    /// Headers sent in the connect command (header emulation).
    pub headers: BTreeMap<String, String>,
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
            headers: BTreeMap::new(),
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
    /// Reply timeout of this subscription's subscribe commands, ms (`None`: the client's).
    pub subscribe_timeout: Option<Millis>,
    /// Server-side filter over publication tags, sent with every subscribe.
    pub tags_filter: Option<Box<gyre_protocol::FilterNode>>,
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
            subscribe_timeout: None,
            tags_filter: None,
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// The driver dropped publications after this offset (lossy delivery): the next
    /// recovering subscribe starts from here.
    rewind_to: Option<u64>,
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
    /// When the current connection got its connect reply.
    connected_at: Option<Millis>,
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
    /// Calls waiting, by scope, in call order.
    queued: BTreeMap<Scope, BTreeMap<CallId, Queued>>,
    subs: BTreeMap<String, Sub>,
    server_subs: BTreeMap<String, ServerSub>,
    client_id: String,
    /// Held inputs leave their commands unflushed (see [`Core::hold`]).
    held: bool,
    timers: TimerIndex,
    stats: CoreStats,
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
            connected_at: None,
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
            queued: BTreeMap::new(),
            subs: BTreeMap::new(),
            server_subs: BTreeMap::new(),
            client_id: String::new(),
            held: false,
            timers: TimerIndex::default(),
            stats: CoreStats::default(),
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
        self.queued.values().map(BTreeMap::len).sum::<usize>()
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

    /// The earliest deadline at which [`Core::handle_timeout`] must be called: the earliest of
    /// the connection's own four deadlines and the front of the timer index, without a scan.
    pub fn next_deadline(&self) -> Option<Millis> {
        [
            self.handshake_deadline,
            self.reconnect_at,
            self.ping_deadline,
            self.refresh_at,
            self.timers.first(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Counters of the work done so far (see [`CoreStats`]).
    pub fn stats(&self) -> CoreStats {
        self.stats
    }

    /// Number of entries in the timer index (live or stale), for tests.
    pub fn armed_timers(&self) -> usize {
        self.timers.len()
    }

    /// Holds the commands of the following inputs back, so that many inputs in a row (say,
    /// thousands of `subscribe` calls) are written as a few large frames; [`Core::release`]
    /// sends them. A frame that reaches `max_frame_size` is still sent at once.
    pub fn hold(&mut self) {
        self.held = true;
    }

    /// Ends [`Core::hold`] and sends what was held.
    pub fn release(&mut self) {
        self.held = false;
        self.finish();
    }
}
