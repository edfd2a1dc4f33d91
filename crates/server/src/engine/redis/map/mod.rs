//! The Redis map broker: map state shared by every node on one Redis (`map_broker.type:
//! redis`).
//!
//! Per channel (the channel a hash tag `{channel}` in a Redis Cluster, as the stream keys):
//! - a state hash, key → `<offset> <encoded entry>` (data, info, tags);
//! - an order zset (score 0, the keys) for state pages in key order, the cursor being the
//!   last key of a page;
//! - an expiry zset (key → expiry in ms, Redis time) for `key_ttl`;
//! - the change stream, entry ids `<offset>-0` as the stream broker's, MAXLEN `stream_size`,
//!   expiring after `stream_ttl`;
//! - a meta hash: epoch `e`, top offset `s`, the channel's options `o` (for the cleanup).
//!
//! One Lua script changes the state, appends to the stream and PUBLISHes the change (with the
//! key's previous entry, for per-key delta) on the channel's Pub/Sub channel, so every node's
//! delivery task ([`super::pubsub`]) hands changes to the node in offset order, as the memory
//! broker does. Expired keys are removed (and their removals delivered) by a cleanup task of
//! every node, driven by a per-shard zset of channels with expiring keys.

mod cleanup;
mod scripts;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gyre_protocol::{Publication, StreamPosition};
use prost::Message as _;
use redis::{Script, Value};
use tokio_util::sync::CancellationToken;

use super::broker::entry_publication;
use super::{RedisEngine, err, value_string, value_u64};
use crate::engine::map::{
    MapBroker, MapChannelOptions, MapReadError, MapStatePage, MapStats, MapStreamPage, MapUpdate,
    MapUpdateResult,
};
use crate::engine::{BoxFuture, Broker, EngineError};
use scripts::{MAP_PUBLISH_LUA, MAP_STATE_LUA, MAP_STATS_LUA, MAP_TOUCH_LUA};

/// How long the epoch of a channel that was read but never written is kept.
const UNWRITTEN_TTL_SECS: u64 = 300;

/// The Redis map broker (over a Redis engine's connections and delivery).
pub(crate) struct RedisMapBroker {
    engine: Arc<RedisEngine>,
    publish_script: Script,
    state_script: Script,
    stats_script: Script,
    touch_script: Script,
}

impl std::fmt::Debug for RedisMapBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisMapBroker")
            .field("engine", &self.engine)
            .finish()
    }
}

/// The keys of one map channel.
struct Keys {
    state: String,
    order: String,
    expire: String,
    stream: String,
    meta: String,
}

/// A channel's options as kept in its meta hash (`o`), for the cleanup task.
fn encode_options(o: &MapChannelOptions) -> String {
    let ms = |d: Option<Duration>| d.map_or(0, |d| d.as_millis().max(1));
    format!(
        "{} {} {} {}",
        o.stream_size,
        o.stream_ttl.as_millis(),
        ms(o.meta_ttl),
        ms(o.key_ttl)
    )
}

/// The options [`encode_options`] wrote (defaults when missing or garbled).
fn decode_options(text: &str) -> MapChannelOptions {
    let mut parts = text.split(' ').map(|p| p.parse::<u64>().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    let (size, stream_ttl, meta_ttl, key_ttl) = (next(), next(), next(), next());
    let some = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
    MapChannelOptions {
        stream_size: size as usize,
        stream_ttl: Duration::from_millis(stream_ttl),
        meta_ttl: some(meta_ttl),
        key_ttl: some(key_ttl),
    }
}

/// Whole seconds for EXPIRE (at least 1).
fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

/// A state hash value (`<offset> <encoded entry>`) as a publication of `key`.
fn state_entry(key: String, value: &[u8]) -> Option<Publication> {
    let at = value.iter().position(|b| *b == b' ')?;
    let offset = std::str::from_utf8(&value[..at]).ok()?.parse().ok()?;
    let mut publication = Publication::decode(&value[at + 1..]).ok()?;
    publication.key = key;
    publication.offset = offset;
    Some(publication)
}

impl RedisMapBroker {
    /// A map broker over `engine`, removing expired keys every `cleanup_interval` (at most
    /// `cleanup_batch` per channel and round) until `shutdown`.
    pub(crate) fn start(
        engine: Arc<RedisEngine>,
        cleanup_interval: Duration,
        cleanup_batch: usize,
        shutdown: &CancellationToken,
    ) -> Arc<Self> {
        let broker = Arc::new(Self {
            engine,
            publish_script: Script::new(MAP_PUBLISH_LUA),
            state_script: Script::new(MAP_STATE_LUA),
            stats_script: Script::new(MAP_STATS_LUA),
            touch_script: Script::new(MAP_TOUCH_LUA),
        });
        cleanup::spawn(&broker, cleanup_interval, cleanup_batch, shutdown);
        broker
    }

    fn keys(&self, channel: &str) -> Keys {
        let prefix = &self.engine.prefix;
        let part = self.engine.key_part(channel);
        Keys {
            state: format!("{prefix}.map.state.{part}"),
            order: format!("{prefix}.map.order.{part}"),
            expire: format!("{prefix}.map.expire.{part}"),
            stream: format!("{prefix}.map.stream.{part}"),
            meta: format!("{prefix}.map.meta.{part}"),
        }
    }

    /// The zset (one per shard) of channels with expiring keys, scored by the earliest
    /// expiry that may be due.
    fn due_key(&self) -> String {
        format!("{}.map.expiring", self.engine.prefix)
    }

    fn conn(&self, channel: &str) -> super::conn::Link {
        self.engine.shard(channel).conn.clone()
    }

    /// Sets or removes a key; a removal with `only_if_expired` happens only when the key's
    /// expiry has passed (the cleanup's removals).
    async fn change(
        &self,
        channel: &str,
        options: MapChannelOptions,
        update: MapUpdate,
        only_if_expired: bool,
    ) -> Result<MapUpdateResult, EngineError> {
        let keys = self.keys(channel);
        let entry = Publication {
            key: update.key.clone(),
            data: if update.removed {
                Bytes::new()
            } else {
                update.data
            },
            removed: update.removed,
            info: update.info,
            tags: update.tags,
            ..Default::default()
        };
        let flag = |b: bool| if b { "1" } else { "0" };
        let mut conn = self.conn(channel);
        let reply: (u64, String, u8, u64) = self
            .publish_script
            .key(&keys.state)
            .key(&keys.order)
            .key(&keys.expire)
            .key(&keys.stream)
            .key(&keys.meta)
            .arg(&update.key)
            .arg(entry.encode_to_vec())
            .arg(flag(update.removed))
            .arg(options.stream_size)
            .arg(secs(options.stream_ttl))
            .arg(options.meta_ttl.map_or(0, secs))
            .arg(options.key_ttl.map_or(0, |d| d.as_millis().max(1) as u64))
            .arg(crate::engine::memory::new_epoch())
            .arg(self.engine.pubsub_name(channel))
            .arg(flag(update.delta))
            .arg(flag(only_if_expired))
            .arg(encode_options(&options))
            .arg(options.meta_ttl.map_or(UNWRITTEN_TTL_SECS, secs))
            .invoke_async(&mut conn)
            .await
            .map_err(err)?;
        let (offset, epoch, suppressed, expire_at) = reply;
        if expire_at > 0 {
            // Schedules the cleanup (an earlier schedule stays).
            redis::cmd("ZADD")
                .arg(self.due_key())
                .arg("LT")
                .arg(expire_at)
                .arg(channel)
                .query_async::<()>(&mut conn)
                .await
                .map_err(err)?;
        }
        Ok(MapUpdateResult {
            position: if options.has_stream() {
                StreamPosition { offset, epoch }
            } else {
                StreamPosition::default()
            },
            suppressed: suppressed == 1,
        })
    }
}

impl MapBroker for RedisMapBroker {
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        options: MapChannelOptions,
        update: MapUpdate,
    ) -> BoxFuture<'a, Result<MapUpdateResult, EngineError>> {
        Box::pin(self.change(channel, options, update, false))
    }

    fn read_state<'a>(
        &'a self,
        channel: &'a str,
        options: MapChannelOptions,
        after: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<MapStatePage, EngineError>> {
        Box::pin(async move {
            let limit = limit.max(1);
            let keys = self.keys(channel);
            let mut conn = self.conn(channel);
            let value: Value = self
                .state_script
                .key(&keys.state)
                .key(&keys.order)
                .key(&keys.expire)
                .key(&keys.meta)
                .arg(after)
                .arg(limit + 1)
                .arg(crate::engine::memory::new_epoch())
                .arg(options.meta_ttl.map_or(UNWRITTEN_TTL_SECS, secs))
                .invoke_async(&mut conn)
                .await
                .map_err(err)?;
            let Value::Array(parts) = value else {
                return Err(EngineError::new("unexpected map state reply"));
            };
            let offset = parts.first().map_or(0, value_u64);
            let epoch = parts.get(1).map(value_string).unwrap_or_default();
            let mut entries: Vec<Publication> = match parts.get(2) {
                Some(Value::Array(flat)) => flat
                    .chunks(2)
                    .filter_map(|pair| match pair {
                        [k, Value::BulkString(v)] => state_entry(value_string(k), v),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let more = entries.len() > limit;
            entries.truncate(limit);
            Ok(MapStatePage {
                next_after: match (more, entries.last()) {
                    (true, Some(last)) => last.key.clone(),
                    _ => String::new(),
                },
                entries,
                position: if options.has_stream() {
                    StreamPosition { offset, epoch }
                } else {
                    StreamPosition::default()
                },
            })
        })
    }

    fn read_stream<'a>(
        &'a self,
        channel: &'a str,
        options: MapChannelOptions,
        since: Option<&'a StreamPosition>,
        limit: usize,
    ) -> BoxFuture<'a, Result<MapStreamPage, MapReadError>> {
        Box::pin(async move {
            let keys = self.keys(channel);
            let since = since.filter(|_| options.has_stream());
            let (mode, start) = match since {
                Some(s) if s.offset < u64::MAX => ("fwd", format!("{}-0", s.offset + 1)),
                _ => ("none", "-".to_owned()),
            };
            let mut conn = self.conn(channel);
            let value: Value = self
                .engine
                .history_script
                .key(&keys.stream)
                .key(&keys.meta)
                .arg(crate::engine::memory::new_epoch())
                .arg(options.meta_ttl.map_or(UNWRITTEN_TTL_SECS, secs))
                .arg(mode)
                .arg(start)
                .arg("+")
                .arg(limit.max(1))
                .invoke_async(&mut conn)
                .await
                .map_err(err)?;
            let Value::Array(parts) = value else {
                return Err(EngineError::new("unexpected map stream reply").into());
            };
            let top = parts.first().map_or(0, value_u64);
            let epoch = parts.get(1).map(value_string).unwrap_or_default();
            let mut publications: Vec<Publication> = match parts.get(2) {
                Some(Value::Array(entries)) => {
                    entries.iter().filter_map(entry_publication).collect()
                }
                _ => Vec::new(),
            };
            let position = if options.has_stream() {
                StreamPosition { offset: top, epoch }
            } else {
                StreamPosition::default()
            };
            let Some(since) = since else {
                return Ok(MapStreamPage {
                    publications: Vec::new(),
                    position,
                });
            };
            if (!since.epoch.is_empty() && since.epoch != position.epoch) || since.offset > top {
                return Err(MapReadError::Unrecoverable);
            }
            if since.offset < top
                && publications.first().map_or(u64::MAX, |p| p.offset) > since.offset + 1
            {
                return Err(MapReadError::Unrecoverable);
            }
            publications.truncate(limit);
            Ok(MapStreamPage {
                publications,
                position,
            })
        })
    }

    fn touch<'a>(
        &'a self,
        channel: &'a str,
        options: MapChannelOptions,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let Some(ttl) = options.key_ttl else {
                return Ok(());
            };
            let keys = self.keys(channel);
            let mut conn = self.conn(channel);
            self.touch_script
                .key(&keys.state)
                .key(&keys.expire)
                .arg(key)
                .arg(ttl.as_millis().max(1) as u64)
                .invoke_async::<()>(&mut conn)
                .await
                .map_err(err)
        })
    }

    fn stats<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<MapStats, EngineError>> {
        Box::pin(async move {
            let keys = self.keys(channel);
            let mut conn = self.conn(channel);
            let live: i64 = self
                .stats_script
                .key(&keys.order)
                .key(&keys.expire)
                .invoke_async(&mut conn)
                .await
                .map_err(err)?;
            Ok(MapStats {
                keys: live.max(0) as usize,
            })
        })
    }

    fn clear<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let keys = self.keys(channel);
            let mut conn = self.conn(channel);
            redis::cmd("DEL")
                .arg(&keys.state)
                .arg(&keys.order)
                .arg(&keys.expire)
                .arg(&keys.stream)
                .arg(&keys.meta)
                .query_async::<()>(&mut conn)
                .await
                .map_err(err)
        })
    }

    fn subscribe<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Broker::subscribe(&*self.engine, channel)
    }

    fn unsubscribe<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Broker::unsubscribe(&*self.engine, channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip_through_the_meta_hash() {
        let o = MapChannelOptions {
            stream_size: 7,
            stream_ttl: Duration::from_secs(60),
            meta_ttl: Some(Duration::from_secs(600)),
            key_ttl: Some(Duration::from_millis(1500)),
        };
        assert_eq!(decode_options(&encode_options(&o)), o);
        assert_eq!(decode_options("garbage"), MapChannelOptions::default());
    }

    #[test]
    fn state_entries_decode_with_their_offset() {
        let entry = Publication {
            data: Bytes::from_static(b"{}"),
            ..Default::default()
        };
        let mut value = b"12 ".to_vec();
        value.extend(entry.encode_to_vec());
        let p = state_entry("k".into(), &value).expect("entry");
        assert_eq!(
            (p.key.as_str(), p.offset, &p.data[..]),
            ("k", 12, &b"{}"[..])
        );
        assert!(state_entry("k".into(), b"nospace").is_none());
    }
}
