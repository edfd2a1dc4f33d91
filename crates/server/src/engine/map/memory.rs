//! The in-memory map broker: per-channel keyed state in key order, a change stream with
//! offsets and an epoch (stream-backed modes), key expiry with removal publications.
//!
//! Every change and its delivery happen under the channel's shard lock, so delivery order is
//! offset order and a read made after joining the hub misses nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gyre_protocol::{ClientInfo, Publication, StreamPosition};

use super::{
    MapBroker, MapChannelOptions, MapReadError, MapStatePage, MapStats, MapStreamPage, MapUpdate,
    MapUpdateResult,
};
use crate::engine::memory::new_epoch;
use crate::engine::{BoxFuture, EngineError, EngineEvents};
use crate::sharded::Sharded;

const SHARDS: usize = 64;
/// How often expired keys are removed (and their removals delivered).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How long a channel that was read but never written keeps its epoch.
const UNWRITTEN_TTL: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Entry {
    data: Bytes,
    offset: u64,
    info: Option<ClientInfo>,
    tags: HashMap<String, String>,
    expire: Option<Instant>,
}

#[derive(Debug)]
struct MapChannel {
    options: MapChannelOptions,
    entries: BTreeMap<String, Entry>,
    epoch: String,
    top: u64,
    stream: VecDeque<Publication>,
    stream_expire: Instant,
    meta_expire: Option<Instant>,
    created: Instant,
}

impl MapChannel {
    fn new(now: Instant, options: MapChannelOptions) -> Self {
        Self {
            options,
            entries: BTreeMap::new(),
            epoch: new_epoch(),
            top: 0,
            stream: VecDeque::new(),
            stream_expire: now,
            meta_expire: None,
            created: now,
        }
    }

    fn position(&self) -> StreamPosition {
        if self.options.has_stream() {
            StreamPosition {
                offset: self.top,
                epoch: self.epoch.clone(),
            }
        } else {
            StreamPosition::default()
        }
    }

    fn expire_stream(&mut self, now: Instant) {
        if now >= self.stream_expire {
            self.stream.clear();
        }
    }

    /// Applies a change; returns the publication to deliver (`None`: nothing changed).
    fn apply(&mut self, now: Instant, update: MapUpdate) -> Option<Publication> {
        self.expire_stream(now);
        let previous = if update.removed {
            let previous = self.entries.remove(&update.key)?;
            Some(previous.data)
        } else {
            self.entries.get(&update.key).map(|e| e.data.clone())
        };
        let offset = if self.options.has_stream() {
            self.top += 1;
            self.top
        } else {
            0
        };
        let publication = Publication {
            key: update.key.clone(),
            data: if update.removed {
                Bytes::new()
            } else {
                update.data.clone()
            },
            removed: update.removed,
            offset,
            info: update.info.clone(),
            tags: update.tags.clone(),
            ..Default::default()
        };
        if !update.removed {
            self.entries.insert(
                update.key,
                Entry {
                    data: update.data,
                    offset,
                    info: update.info,
                    tags: update.tags,
                    expire: self.options.key_ttl.map(|ttl| now + ttl),
                },
            );
        }
        if self.options.has_stream() {
            self.stream.push_back(publication.clone());
            while self.stream.len() > self.options.stream_size {
                self.stream.pop_front();
            }
            self.stream_expire = now + self.options.stream_ttl;
        }
        self.meta_expire = self.options.meta_ttl.map(|ttl| now + ttl);
        let mut delivered = publication;
        if !delivered.removed
            && let Some(previous) = previous
        {
            delivered.prev_data = previous;
        }
        Some(delivered)
    }

    fn forgotten(&self, now: Instant) -> bool {
        self.entries.is_empty()
            && match self.meta_expire {
                Some(at) => now >= at,
                None => self.top == 0 && now >= self.created + UNWRITTEN_TTL,
            }
    }
}

type Shard = HashMap<String, MapChannel>;

/// The memory map broker.
#[derive(Debug)]
pub(crate) struct MemoryMapBroker {
    channels: Sharded<Shard>,
    events: Arc<dyn EngineEvents>,
}

impl MemoryMapBroker {
    /// A broker delivering to `events`, removing expired keys until `shutdown` (or until the
    /// broker is dropped). Needs a Tokio runtime.
    pub(crate) fn start(
        events: Arc<dyn EngineEvents>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Arc<Self> {
        let broker = Arc::new(Self {
            channels: Sharded::new(SHARDS),
            events,
        });
        let weak = Arc::downgrade(&broker);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {
                        let Some(broker) = weak.upgrade() else { return };
                        broker.sweep(Instant::now());
                    }
                }
            }
        });
        broker
    }

    /// Removes expired keys (delivering their removals) and forgets idle channels.
    fn sweep(&self, now: Instant) {
        for shard in self.channels.iter() {
            let mut shard = shard.lock();
            for (name, channel) in shard.iter_mut() {
                let expired: Vec<String> = channel
                    .entries
                    .iter()
                    .filter(|(_, e)| e.expire.is_some_and(|at| now >= at))
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in expired {
                    let update = MapUpdate {
                        key,
                        removed: true,
                        ..Default::default()
                    };
                    if let Some(publication) = channel.apply(now, update) {
                        let epoch = channel.position().epoch;
                        self.events.publication(name, &publication, false, &epoch);
                    }
                }
                channel.expire_stream(now);
            }
            shard.retain(|_, channel| !channel.forgotten(now));
        }
    }

    /// Runs `f` on a channel (created when missing, reset when its metadata expired) under
    /// its shard lock.
    fn with_channel<T>(
        &self,
        name: &str,
        options: MapChannelOptions,
        f: impl FnOnce(&mut MapChannel, Instant) -> T,
    ) -> T {
        let now = Instant::now();
        let mut shard = self.channels.get(name).lock();
        let channel = shard
            .entry(name.to_owned())
            .or_insert_with(|| MapChannel::new(now, options));
        if channel.meta_expire.is_some_and(|at| now >= at) {
            *channel = MapChannel::new(now, options);
        }
        channel.options = options;
        f(channel, now)
    }
}

impl MapBroker for MemoryMapBroker {
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        options: MapChannelOptions,
        update: MapUpdate,
    ) -> BoxFuture<'a, Result<MapUpdateResult, EngineError>> {
        let delta = update.delta;
        let result = self.with_channel(channel, options, |ch, now| {
            match ch.apply(now, update) {
                Some(publication) => {
                    let position = ch.position();
                    // Delivered under the channel's lock: delivery order is offset order.
                    self.events
                        .publication(channel, &publication, delta, &position.epoch);
                    MapUpdateResult {
                        position,
                        suppressed: false,
                    }
                }
                None => MapUpdateResult {
                    position: ch.position(),
                    suppressed: true,
                },
            }
        });
        Box::pin(std::future::ready(Ok(result)))
    }

    fn read_state<'a>(
        &'a self,
        channel: &'a str,
        options: MapChannelOptions,
        after: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<MapStatePage, EngineError>> {
        let page = self.with_channel(channel, options, |ch, now| {
            let lower = if after.is_empty() {
                Bound::Unbounded
            } else {
                Bound::Excluded(after.to_owned())
            };
            let mut live = ch
                .entries
                .range((lower, Bound::Unbounded))
                .filter(|(_, e)| e.expire.is_none_or(|at| now < at));
            let mut entries = Vec::new();
            for (key, e) in live.by_ref().take(limit.max(1)) {
                entries.push(Publication {
                    key: key.clone(),
                    data: e.data.clone(),
                    offset: e.offset,
                    info: e.info.clone(),
                    tags: e.tags.clone(),
                    ..Default::default()
                });
            }
            let more = live.next().is_some();
            MapStatePage {
                next_after: match (more, entries.last()) {
                    (true, Some(last)) => last.key.clone(),
                    _ => String::new(),
                },
                entries,
                position: ch.position(),
            }
        });
        Box::pin(std::future::ready(Ok(page)))
    }

    fn read_stream<'a>(
        &'a self,
        channel: &'a str,
        options: MapChannelOptions,
        since: Option<&'a StreamPosition>,
        limit: usize,
    ) -> BoxFuture<'a, Result<MapStreamPage, MapReadError>> {
        let result = self.with_channel(channel, options, |ch, now| {
            ch.expire_stream(now);
            let position = ch.position();
            let Some(since) = since.filter(|_| ch.options.has_stream()) else {
                return Ok(MapStreamPage {
                    publications: Vec::new(),
                    position,
                });
            };
            if (!since.epoch.is_empty() && since.epoch != ch.epoch) || since.offset > ch.top {
                return Err(MapReadError::Unrecoverable);
            }
            if since.offset < ch.top {
                let first = ch.stream.front().map_or(u64::MAX, |p| p.offset);
                if first > since.offset + 1 {
                    return Err(MapReadError::Unrecoverable);
                }
            }
            let publications = ch
                .stream
                .iter()
                .filter(|p| p.offset > since.offset)
                .take(limit)
                .cloned()
                .collect();
            Ok(MapStreamPage {
                publications,
                position,
            })
        });
        Box::pin(std::future::ready(result))
    }

    fn touch<'a>(
        &'a self,
        channel: &'a str,
        options: MapChannelOptions,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        self.with_channel(channel, options, |ch, now| {
            if let (Some(entry), Some(ttl)) = (ch.entries.get_mut(key), options.key_ttl) {
                entry.expire = Some(now + ttl);
            }
        });
        Box::pin(std::future::ready(Ok(())))
    }

    fn stats<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<MapStats, EngineError>> {
        let now = Instant::now();
        let shard = self.channels.get(channel).lock();
        let stats = shard
            .get(channel)
            .map_or_else(MapStats::default, |ch| MapStats {
                keys: ch
                    .entries
                    .values()
                    .filter(|e| e.expire.is_none_or(|at| now < at))
                    .count(),
            });
        Box::pin(std::future::ready(Ok(stats)))
    }

    fn clear<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        self.channels.get(channel).lock().remove(channel);
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests;
