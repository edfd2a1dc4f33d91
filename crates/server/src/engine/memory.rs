//! The in-memory stream store: per-channel history with offsets, an epoch, size and TTL limits.
//!
//! Appending and delivering a publication happen under the channel's shard lock (see
//! [`MemoryStreams::publish`]), so delivery order equals offset order, and a subscriber that
//! reads history under the same lock misses nothing and sees nothing twice.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use gyre_protocol::Publication;
use parking_lot::{Mutex, MutexGuard};
use rand::Rng;

use super::{HistoryFilter, HistoryResult, StreamOptions};

use crate::sharded::Sharded;

const SHARDS: usize = 64;

#[derive(Debug)]
struct Stream {
    epoch: String,
    top: u64,
    items: VecDeque<Publication>,
    /// When the publications expire (history TTL after the last publish).
    items_expire: Instant,
    /// When the epoch and top offset are forgotten.
    meta_expire: Instant,
    /// Version (and its epoch) of the newest versioned publication, 0 before any.
    version: u64,
    version_epoch: String,
}

impl Stream {
    fn new(now: Instant, options: &StreamOptions) -> Self {
        Self {
            epoch: new_epoch(),
            top: 0,
            items: VecDeque::new(),
            items_expire: now,
            meta_expire: now + options.meta_ttl,
            version: 0,
            version_epoch: String::new(),
        }
    }

    fn is_stale(&self, v: &super::PublicationVersion) -> bool {
        v.version > 0
            && self.version > 0
            && (v.epoch.is_empty() || v.epoch == self.version_epoch)
            && v.version <= self.version
    }

    fn expire(&mut self, now: Instant) {
        if now >= self.items_expire {
            self.items.clear();
        }
    }
}

/// A new random epoch: 8 ASCII letters.
pub(crate) fn new_epoch() -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| LETTERS[rng.random_range(0..LETTERS.len())] as char)
        .collect()
}

type Shard = HashMap<String, Stream>;

/// The memory stream store.
#[derive(Debug)]
pub(crate) struct MemoryStreams {
    shards: Sharded<Shard>,
}

impl Default for MemoryStreams {
    fn default() -> Self {
        Self {
            shards: Sharded::new(SHARDS),
        }
    }
}

/// The lock over one channel's stream; delivery and subscription happen while it is held.
pub(crate) struct ChannelLock<'a> {
    guard: MutexGuard<'a, Shard>,
    channel: &'a str,
}

impl std::fmt::Debug for ChannelLock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelLock")
            .field("channel", &self.channel)
            .finish()
    }
}

impl ChannelLock<'_> {
    /// Appends a publication, assigning its offset; returns (offset, epoch).
    pub(crate) fn append(
        &mut self,
        mut publication: Publication,
        options: &StreamOptions,
        version: Option<&super::PublicationVersion>,
    ) -> (Publication, String) {
        let now = Instant::now();
        let stream = self.stream_mut(now, options);
        stream.expire(now);
        Self::record_version(stream, version);
        stream.top += 1;
        publication.offset = stream.top;
        stream.items.push_back(publication.clone());
        while stream.items.len() > options.history_size {
            stream.items.pop_front();
        }
        stream.items_expire = now + options.history_ttl;
        stream.meta_expire = now + options.meta_ttl.max(options.history_ttl);
        (publication, stream.epoch.clone())
    }

    /// Versioned publishing: when `version` is not newer than the stream's (same version
    /// epoch, or none given), the publication is stale and the stream's top position is
    /// returned instead; otherwise the version is recorded. Streams that do not exist (or
    /// expired) accept any version.
    pub(crate) fn stale_version(
        &mut self,
        version: &super::PublicationVersion,
    ) -> Option<super::StreamPosition> {
        let now = Instant::now();
        let stream = self
            .guard
            .get_mut(self.channel)
            .filter(|s| now < s.meta_expire)?;
        stream.is_stale(version).then(|| super::StreamPosition {
            offset: stream.top,
            epoch: stream.epoch.clone(),
        })
    }

    /// Records the version of a publication about to be appended.
    fn record_version(stream: &mut Stream, version: Option<&super::PublicationVersion>) {
        if let Some(v) = version.filter(|v| v.version > 0) {
            stream.version = v.version;
            stream.version_epoch.clone_from(&v.epoch);
        }
    }

    /// Reads history. Creates the stream (and its epoch) when it does not exist.
    pub(crate) fn read(
        &mut self,
        filter: &HistoryFilter,
        options: &StreamOptions,
    ) -> HistoryResult {
        let now = Instant::now();
        let stream = self.stream_mut(now, options);
        stream.expire(now);
        let mut result = HistoryResult {
            offset: stream.top,
            epoch: stream.epoch.clone(),
            ..Default::default()
        };
        if filter.limit == Some(0) {
            return result;
        }
        let take = filter.limit.unwrap_or(usize::MAX);
        let since = filter.since;
        let items = &stream.items;
        result.publications = if filter.reverse {
            items
                .iter()
                .rev()
                .filter(|p| since.is_none_or(|s| p.offset < s))
                .take(take)
                .cloned()
                .collect()
        } else {
            items
                .iter()
                .filter(|p| since.is_none_or(|s| p.offset > s))
                .take(take)
                .cloned()
                .collect()
        };
        result
    }

    /// Forgets the channel's publications (keeps epoch and offset).
    pub(crate) fn remove_history(&mut self) {
        if let Some(stream) = self.guard.get_mut(self.channel) {
            stream.items.clear();
        }
    }

    fn stream_mut(&mut self, now: Instant, options: &StreamOptions) -> &mut Stream {
        let stream = self
            .guard
            .entry(self.channel.to_owned())
            .or_insert_with(|| Stream::new(now, options));
        if now >= stream.meta_expire {
            *stream = Stream::new(now, options);
        }
        stream
    }
}

impl MemoryStreams {
    /// Locks one channel's stream.
    pub(crate) fn lock<'a>(&'a self, channel: &'a str) -> ChannelLock<'a> {
        ChannelLock {
            guard: self.shards.get(channel).lock(),
            channel,
        }
    }

    /// Drops streams whose metadata expired and publications whose TTL passed.
    pub(crate) fn sweep(&self) {
        let now = Instant::now();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.retain(|_, s| now < s.meta_expire);
            for stream in shard.values_mut() {
                stream.expire(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn opts(size: usize) -> StreamOptions {
        StreamOptions {
            history_size: size,
            history_ttl: Duration::from_secs(60),
            meta_ttl: Duration::from_secs(3600),
        }
    }

    fn pubn(n: u8) -> Publication {
        Publication {
            data: bytes::Bytes::from(vec![b'0' + n]),
            ..Default::default()
        }
    }

    #[test]
    fn offsets_grow_and_history_is_trimmed() {
        let streams = MemoryStreams::default();
        let o = opts(2);
        let mut lock = streams.lock("c");
        for n in 1..=3 {
            let (p, _) = lock.append(pubn(n), &o, None);
            assert_eq!(p.offset, u64::from(n));
        }
        let all = lock.read(&HistoryFilter::default(), &o);
        assert_eq!(all.offset, 3);
        assert_eq!(
            all.publications
                .iter()
                .map(|p| p.offset)
                .collect::<Vec<_>>(),
            vec![2, 3]
        );
        let since = lock.read(
            &HistoryFilter {
                since: Some(2),
                ..Default::default()
            },
            &o,
        );
        assert_eq!(since.publications.len(), 1);
        let rev = lock.read(
            &HistoryFilter {
                reverse: true,
                limit: Some(1),
                ..Default::default()
            },
            &o,
        );
        assert_eq!(rev.publications[0].offset, 3);
        let top = lock.read(
            &HistoryFilter {
                limit: Some(0),
                ..Default::default()
            },
            &o,
        );
        assert!(top.publications.is_empty());
        assert_eq!(top.epoch.len(), 8);
    }

    #[test]
    fn stale_versions_are_recognised() {
        use super::super::PublicationVersion as V;
        let v = |version: u64, epoch: &str| V {
            version,
            epoch: epoch.into(),
        };
        let streams = MemoryStreams::default();
        let o = opts(10);
        let mut lock = streams.lock("c");
        // No stream yet: anything goes.
        assert!(lock.stale_version(&v(5, "a")).is_none());
        lock.append(pubn(1), &o, Some(&v(5, "a")));
        for stale in [v(5, "a"), v(4, "a"), v(5, "")] {
            let top = lock.stale_version(&stale).map(|p| p.offset);
            assert_eq!(top, Some(1), "{stale:?}");
        }
        assert!(lock.stale_version(&v(6, "a")).is_none());
        assert!(lock.stale_version(&v(1, "b")).is_none(), "another epoch");
        // An unversioned publication keeps the recorded version.
        lock.append(pubn(2), &o, None);
        assert_eq!(lock.stale_version(&v(5, "")).map(|p| p.offset), Some(2));
    }
}

/// Results of publications made with an idempotency key, kept for a while so that a retried
/// publication returns the first result instead of publishing twice.
#[derive(Debug, Default)]
pub(crate) struct IdempotencyCache {
    entries: Mutex<HashMap<(String, String), IdempotentResult>>,
}

/// Offset, epoch and expiry of a remembered publication.
type IdempotentResult = (u64, String, Instant);

impl IdempotencyCache {
    /// How long a result is remembered (upstream's default).
    pub(crate) const TTL: std::time::Duration = std::time::Duration::from_secs(300);

    /// The remembered (offset, epoch) of a publication with this key, if still fresh.
    pub(crate) fn get(&self, channel: &str, key: &str) -> Option<super::StreamPosition> {
        let entries = self.entries.lock();
        let (offset, epoch, expires) = entries.get(&(channel.to_owned(), key.to_owned()))?;
        (Instant::now() < *expires).then(|| super::StreamPosition {
            offset: *offset,
            epoch: epoch.clone(),
        })
    }

    /// Remembers the result of a publication made with this key.
    pub(crate) fn put(&self, channel: &str, key: &str, offset: u64, epoch: String) {
        let expires = Instant::now() + Self::TTL;
        self.entries.lock().insert(
            (channel.to_owned(), key.to_owned()),
            (offset, epoch, expires),
        );
    }

    /// Forgets expired results.
    pub(crate) fn sweep(&self) {
        let now = Instant::now();
        self.entries
            .lock()
            .retain(|_, (_, _, expires)| now < *expires);
    }
}

/// How often the memory broker drops expired streams and idempotency results.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The memory broker: streams in this process, delivery to this node.
#[derive(Debug)]
pub(crate) struct MemoryBroker {
    streams: MemoryStreams,
    idempotency: IdempotencyCache,
    events: std::sync::Arc<dyn super::EngineEvents>,
}

impl MemoryBroker {
    /// A broker delivering to `events`, with its sweeper running until `shutdown` (or until
    /// the broker is dropped). Needs a Tokio runtime.
    pub(crate) fn start(
        events: std::sync::Arc<dyn super::EngineEvents>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> std::sync::Arc<Self> {
        let broker = std::sync::Arc::new(Self {
            streams: MemoryStreams::default(),
            idempotency: IdempotencyCache::default(),
            events,
        });
        let weak = std::sync::Arc::downgrade(&broker);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {
                        let Some(broker) = weak.upgrade() else { return };
                        broker.sweep();
                    }
                }
            }
        });
        broker
    }

    /// Drops expired streams and idempotency results.
    fn sweep(&self) {
        self.streams.sweep();
        self.idempotency.sweep();
    }
}

impl super::Broker for MemoryBroker {
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        p: super::BrokerPublication,
    ) -> super::BoxFuture<'a, Result<super::StreamPosition, super::EngineError>> {
        // Appending and delivering under the channel lock keeps delivery in offset order.
        let mut lock = self.streams.lock(channel);
        if let Some(found) = p
            .idempotency_key
            .as_ref()
            .and_then(|key| self.idempotency.get(channel, key))
        {
            return Box::pin(std::future::ready(Ok(found)));
        }
        if p.append
            && let Some(top) = p.version.as_ref().and_then(|v| lock.stale_version(v))
        {
            // An out-of-order or repeated version: dropped, not delivered.
            return Box::pin(std::future::ready(Ok(top)));
        }
        let (publication, epoch) = if p.append {
            lock.append(p.publication, &p.stream, p.version.as_ref())
        } else {
            (p.publication, String::new())
        };
        self.events
            .publication(channel, &publication, p.delta, &epoch);
        if let Some(key) = &p.idempotency_key {
            self.idempotency
                .put(channel, key, publication.offset, epoch.clone());
        }
        drop(lock);
        Box::pin(std::future::ready(Ok(super::StreamPosition {
            offset: publication.offset,
            epoch,
        })))
    }

    fn publish_join_leave<'a>(
        &'a self,
        channel: &'a str,
        info: &'a gyre_protocol::ClientInfo,
        joined: bool,
    ) -> super::BoxFuture<'a, Result<(), super::EngineError>> {
        self.events.join_leave(channel, info, joined);
        Box::pin(std::future::ready(Ok(())))
    }

    fn history<'a>(
        &'a self,
        channel: &'a str,
        stream: &'a StreamOptions,
        filter: &'a HistoryFilter,
    ) -> super::BoxFuture<'a, Result<HistoryResult, super::EngineError>> {
        let result = self.streams.lock(channel).read(filter, stream);
        Box::pin(std::future::ready(Ok(result)))
    }

    fn remove_history<'a>(
        &'a self,
        channel: &'a str,
    ) -> super::BoxFuture<'a, Result<(), super::EngineError>> {
        self.streams.lock(channel).remove_history();
        Box::pin(std::future::ready(Ok(())))
    }

    fn subscribe<'a>(&'a self, _: &'a str) -> super::BoxFuture<'a, Result<(), super::EngineError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn unsubscribe<'a>(
        &'a self,
        _: &'a str,
    ) -> super::BoxFuture<'a, Result<(), super::EngineError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Control of a single node: nothing to forward.
#[derive(Debug, Default)]
pub(crate) struct MemoryControl;

impl super::ControlBus for MemoryControl {
    fn publish<'a>(
        &'a self,
        _: String,
        _: Option<&'a str>,
    ) -> super::BoxFuture<'a, Result<(), super::EngineError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn shared(&self) -> bool {
        false
    }
}
