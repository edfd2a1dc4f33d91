//! Map brokers: keyed channel state (one entry per key, each with the offset of its last
//! change), an optional change stream with offsets and an epoch, and delivery of every
//! change to the subscribers of every node. The memory broker serves a single node; the
//! Redis one ([`crate::engine::redis::map`]) every node sharing a Redis.

pub(crate) mod memory;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use gyre_protocol::{ClientInfo, Publication, StreamPosition};

use super::{BoxFuture, EngineError};

/// How a map channel keeps its state, from its namespace's `map` options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MapChannelOptions {
    /// Changes kept in the stream (0: no stream, no offsets).
    pub stream_size: usize,
    /// How long the stream is kept after the last change.
    pub stream_ttl: Duration,
    /// How long the epoch and top offset are kept after the last change (`None`: forever).
    pub meta_ttl: Option<Duration>,
    /// How long a key lives after its last update (`None`: forever).
    pub key_ttl: Option<Duration>,
}

impl MapChannelOptions {
    /// The options of a namespace's `map` section.
    pub(crate) fn from_config(o: &gyre_config::MapOptions) -> Self {
        Self {
            stream_size: o.effective_stream_size(),
            stream_ttl: o.effective_stream_ttl(),
            meta_ttl: o.effective_meta_ttl(),
            key_ttl: (o.has_expiry() && !o.key_ttl.is_zero()).then(|| o.key_ttl.get()),
        }
    }

    /// Whether changes are kept in a stream (positions and recovery).
    pub(crate) fn has_stream(&self) -> bool {
        self.stream_size > 0
    }
}

/// A change of one key.
#[derive(Debug, Clone, Default)]
pub(crate) struct MapUpdate {
    /// The key.
    pub key: String,
    /// The new value (empty for a removal).
    pub data: Bytes,
    /// Remove the key instead of setting it.
    pub removed: bool,
    /// Publisher info (client publications).
    pub info: Option<ClientInfo>,
    /// Publication tags.
    pub tags: HashMap<String, String>,
    /// Fossil patches against the key's previous value allowed for delta subscribers.
    pub delta: bool,
}

/// What a change did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MapUpdateResult {
    /// Where the change landed (offset 0 without a stream).
    pub position: StreamPosition,
    /// Nothing changed (removal of a missing key): nothing was delivered.
    pub suppressed: bool,
}

/// One page of a map's state, in key order.
#[derive(Debug, Clone, Default)]
pub(crate) struct MapStatePage {
    /// Entries (key, data, offset of the last change, info, tags).
    pub entries: Vec<Publication>,
    /// The key to continue after ("" on the last page).
    pub next_after: String,
    /// The stream position when the page was read.
    pub position: StreamPosition,
}

/// Changes read from a map's stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct MapStreamPage {
    /// Changes after the position asked for, oldest first.
    pub publications: Vec<Publication>,
    /// The stream's top position.
    pub position: StreamPosition,
}

/// Sizes of a map channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MapStats {
    /// Keys in the state.
    pub keys: usize,
}

/// Why a map read failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum MapReadError {
    /// The position asked for is gone (another epoch, or changes after it were dropped).
    #[error("unrecoverable position")]
    Unrecoverable,
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Map brokers keep keyed state and its change stream, and deliver changes (keyed
/// publications, with `removed` for removals and `prev_data` for per-key delta) through
/// [`super::EngineEvents::publication`]. Changing the state, appending to the stream and
/// delivering are atomic per channel, so a subscriber that joins the hub before reading
/// misses nothing.
pub(crate) trait MapBroker: Send + Sync + std::fmt::Debug {
    /// Sets or removes a key and delivers the change.
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        options: MapChannelOptions,
        update: MapUpdate,
    ) -> BoxFuture<'a, Result<MapUpdateResult, EngineError>>;

    /// Reads up to `limit` entries of the state, with keys after `after` ("" from the start).
    fn read_state<'a>(
        &'a self,
        channel: &'a str,
        options: MapChannelOptions,
        after: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<MapStatePage, EngineError>>;

    /// Reads up to `limit` changes after `since` (`None`: only the position). Fails with
    /// [`MapReadError::Unrecoverable`] when `since` is of another epoch or changes after it
    /// were dropped.
    fn read_stream<'a>(
        &'a self,
        channel: &'a str,
        options: MapChannelOptions,
        since: Option<&'a StreamPosition>,
        limit: usize,
    ) -> BoxFuture<'a, Result<MapStreamPage, MapReadError>>;

    /// Extends a key's expiry by the channel's key TTL, delivering nothing (keeps presence
    /// entries alive while their client is subscribed).
    fn touch<'a>(
        &'a self,
        channel: &'a str,
        options: MapChannelOptions,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), EngineError>>;

    /// Sizes of a channel.
    fn stats<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<MapStats, EngineError>>;

    /// Forgets a channel's state and stream (a new epoch starts).
    fn clear<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;

    /// Makes this node receive the channel's changes (call after joining the hub, before
    /// reading); resolves once it does. Nothing to do where changes never leave the node.
    fn subscribe<'a>(&'a self, _channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Stops receiving the channel (when it still has no local subscriber).
    fn unsubscribe<'a>(&'a self, _channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}
