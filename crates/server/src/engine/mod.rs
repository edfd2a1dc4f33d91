//! Engines: where streams (history, offsets, epochs) and presence live. The memory engine is
//! the default and serves a single node; Redis ([`redis`]) and PostgreSQL ([`postgres`])
//! serve many.

pub(crate) mod map;
pub(crate) mod memory;
pub(crate) mod nats;
pub(crate) mod postgres;
pub(crate) mod presence;
pub(crate) mod redis;
mod select;

use std::time::Duration;

/// How a channel keeps its stream.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StreamOptions {
    /// Publications kept (0: no history).
    pub history_size: usize,
    /// How long publications are kept after the last publish.
    pub history_ttl: Duration,
    /// How long the stream's epoch and top offset are kept.
    pub meta_ttl: Duration,
}

impl StreamOptions {
    /// Whether the channel keeps history.
    pub(crate) fn enabled(&self) -> bool {
        self.history_size > 0 && !self.history_ttl.is_zero()
    }
}

/// Which publications a history read returns.
#[derive(Debug, Clone, Default)]
pub(crate) struct HistoryFilter {
    /// Return publications after this position (epoch checked by the caller).
    pub since: Option<u64>,
    /// Maximum number of publications; `None` means all, `Some(0)` only the top position.
    pub limit: Option<usize>,
    /// Newest first.
    pub reverse: bool,
}

/// A history read (publications in the order asked for, the stream's top offset and epoch):
/// the protocol's own result, so the API and the session return it as is.
pub(crate) use gyre_protocol::HistoryResult;

/// Where a publication landed in its stream (offset 0 and epoch "" without history).
pub(crate) use gyre_protocol::StreamPosition;

/// What engines report to the node: deliveries for local subscribers, lost streams, control
/// commands and questions from other nodes. Implemented by the node
/// ([`crate::node::NodeEvents`]) and handed to engines when they start, so engines never
/// reach the hub or the API themselves.
pub(crate) trait EngineEvents: Send + Sync + std::fmt::Debug {
    /// This node's id (unique per start).
    fn node_id(&self) -> &str;

    /// A channel's publication, in offset order, for local subscribers.
    fn publication(
        &self,
        channel: &str,
        publication: &gyre_protocol::Publication,
        delta: bool,
        epoch: &str,
    );

    /// A join (`joined`) or leave in a channel, for local subscribers.
    fn join_leave(&self, channel: &str, info: &gyre_protocol::ClientInfo, joined: bool);

    /// Publications of a channel may have been missed (its delivery was interrupted).
    fn stream_lost(&self, channel: &str);

    /// Whether the channel has local subscribers.
    fn has_subscribers(&self, channel: &str) -> bool;

    /// A control message from another node (the node owns the control protocol; engines
    /// only carry its bytes).
    fn control(&self, message: &[u8]);
}

/// A boxed future, so engine traits stay object-safe.
pub(crate) type BoxFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// An engine failure (the backing store is unreachable or answered an error), with the
/// error that caused it when there is one. Cheap to clone.
#[derive(Debug, Clone, thiserror::Error)]
#[error("engine error: {message}")]
pub(crate) struct EngineError {
    message: String,
    /// The reply code clients get (internal when `None`).
    code: Option<gyre_protocol::ErrorCode>,
    #[source]
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl EngineError {
    /// A failure described by `message` alone.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: None,
            source: None,
        }
    }

    /// A request the engine refuses by its nature (not a failure): clients get `code`
    /// (`not available` for history on a broker without streams, `bad request` for a channel
    /// the broker cannot carry).
    pub(crate) fn refused(code: gyre_protocol::ErrorCode, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: Some(code),
            source: None,
        }
    }

    /// A failure caused by `source`.
    pub(crate) fn caused_by(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message: source.to_string(),
            code: None,
            source: Some(std::sync::Arc::new(source)),
        }
    }
}

impl From<EngineError> for gyre_protocol::ErrorCode {
    fn from(e: EngineError) -> Self {
        e.code.unwrap_or(gyre_protocol::ErrorCode::Internal)
    }
}

/// A publication handed to the broker.
#[derive(Debug, Clone)]
pub(crate) struct BrokerPublication {
    /// The publication (its offset is assigned by the broker).
    pub publication: gyre_protocol::Publication,
    /// The channel's stream options.
    pub stream: StreamOptions,
    /// Append to the stream (history enabled and not skipped).
    pub append: bool,
    /// Fossil patches allowed for delta subscribers.
    pub delta: bool,
    /// Idempotency key: a repeated publication returns the first result.
    pub idempotency_key: Option<String>,
    /// Version of the channel's state this publication carries (appended publications
    /// only): an older or equal version than the stream's newest is dropped.
    pub version: Option<PublicationVersion>,
}

/// The version of a versioned publication (API `version`, `version_epoch`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PublicationVersion {
    /// Incremental version (0: unversioned).
    pub version: u64,
    /// Epoch of the version numbering: versions compare only within one epoch ("" matches
    /// any).
    pub epoch: String,
}

/// Brokers deliver publications and join/leave messages to the subscribers of every node and
/// keep channel streams. Appending a publication and delivering it are atomic per channel, so
/// every node sees a channel's publications in offset order.
pub(crate) trait Broker: Send + Sync + std::fmt::Debug {
    /// Appends (when asked) and delivers a publication; returns where it landed.
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        publication: BrokerPublication,
    ) -> BoxFuture<'a, Result<StreamPosition, EngineError>>;

    /// Delivers a join (`joined`) or leave message to the channel's subscribers on every node.
    fn publish_join_leave<'a>(
        &'a self,
        channel: &'a str,
        info: &'a gyre_protocol::ClientInfo,
        joined: bool,
    ) -> BoxFuture<'a, Result<(), EngineError>>;

    /// Reads a channel's stream. Creates its epoch when the stream does not exist.
    fn history<'a>(
        &'a self,
        channel: &'a str,
        stream: &'a StreamOptions,
        filter: &'a HistoryFilter,
    ) -> BoxFuture<'a, Result<HistoryResult, EngineError>>;

    /// Forgets a channel's publications (keeps epoch and top offset).
    fn remove_history<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;

    /// Makes this node receive the channel's publications; resolves once it does.
    fn subscribe<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;

    /// Stops receiving the channel (when it still has no local subscriber).
    fn unsubscribe<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;
}

/// Presence of channels across all nodes.
pub(crate) trait PresenceManager: Send + Sync + std::fmt::Debug {
    /// Adds or refreshes a client's presence in a channel.
    fn add<'a>(
        &'a self,
        channel: &'a str,
        info: &'a gyre_protocol::ClientInfo,
    ) -> BoxFuture<'a, Result<(), EngineError>>;

    /// Removes a client's presence.
    fn remove<'a>(
        &'a self,
        channel: &'a str,
        client: &'a str,
    ) -> BoxFuture<'a, Result<(), EngineError>>;

    /// Everyone present in a channel, by client id.
    fn presence<'a>(
        &'a self,
        channel: &'a str,
    ) -> BoxFuture<
        'a,
        Result<std::collections::HashMap<String, gyre_protocol::ClientInfo>, EngineError>,
    >;

    /// Number of clients and distinct users present.
    fn stats<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(u32, u32), EngineError>> {
        Box::pin(async move {
            let map = self.presence(channel).await?;
            let users: std::collections::HashSet<&str> =
                map.values().map(|i| i.user.as_str()).collect();
            Ok((map.len() as u32, users.len() as u32))
        })
    }
}

/// Node-to-node control as bytes: the engine carries the node's control messages
/// ([`crate::node`] owns their meaning) to every other node or to one of them, and hands
/// those it receives to [`EngineEvents::control`].
pub(crate) trait ControlBus: Send + Sync + std::fmt::Debug {
    /// Sends a control message to every other node (`to: None`) or to node `to`.
    fn publish<'a>(
        &'a self,
        message: String,
        to: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), EngineError>>;

    /// Whether other nodes can hear this bus (so heartbeats are worth sending).
    fn shared(&self) -> bool;

    /// Waits until the bus hears other nodes, at most `bound`; `false` when it does not yet
    /// (a node starts serving either way: this only avoids missing control messages at
    /// start-up).
    fn wait_connected(&self, _bound: Duration) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(true))
    }
}

/// The parts of an engine a node runs on: built from the configuration by
/// [`Engine::from_config`] (the `engine`, `broker`, `presence_manager` and `map_broker`
/// sections).
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    /// Delivery and streams.
    pub broker: std::sync::Arc<dyn Broker>,
    /// Presence.
    pub presence: std::sync::Arc<dyn PresenceManager>,
    /// Node-to-node control.
    pub control: std::sync::Arc<dyn ControlBus>,
    /// Map subscription state (the `map_broker` section).
    pub map: std::sync::Arc<dyn map::MapBroker>,
}
