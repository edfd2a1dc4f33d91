//! The Redis engine: many nodes sharing one or more Redis instances.
//!
//! - Streams: per channel a meta hash (`e` epoch, `s` top offset) and a Redis stream whose
//!   entry ids are `<offset>-0`. One Lua script creates the epoch, increments the offset,
//!   XADDs with MAXLEN, sets expiries and PUBLISHes the encoded publication, so every node
//!   receives a channel's publications in offset order and history matches delivery.
//! - Delivery: one Pub/Sub connection per shard, owned by one task; each message is decoded
//!   once per node and handed to the node ([`EngineEvents`]) with its offset and epoch. The task batches first
//!   subscribes (and last unsubscribes) that queue up meanwhile into one SUBSCRIBE
//!   (UNSUBSCRIBE). When the connection is lost, the node reconnects with backoff,
//!   resubscribes every channel it has subscribers for and tells positioned subscribers their
//!   state is insufficient, so clients resubscribe and recover (or learn `recovered: false`);
//!   subscribers without positions just go on. The node starts (and serves) while Redis is
//!   down: requests that need Redis fail until it is reachable.
//! - Maps: [`map`] keeps map subscription state (`map_broker.type: redis`) and delivers
//!   its changes through the same Pub/Sub connections.
//! - Presence: a hash (client to info) and a zset (client to expiry) per channel; each node
//!   refreshes its own entries, so entries of a dead node expire.
//! - Control: a Pub/Sub channel every node hears and one per node, carrying the node's control
//!   messages (commands, heartbeats, surveys: [`crate::node::cluster`]) as bytes.
//! - Shards: channels are spread over the configured addresses by consistent (jump) hashing.
//! - Topology, TLS and authentication (standalone, Sentinel, Cluster) live in
//!   [`conn`]: each shard is a [`Link`]. In a Redis Cluster every key of a channel
//!   carries the hash tag `{<channel>}` so one channel's keys share a slot.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::{Script, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod broker;
mod conn;
mod control;
pub(crate) mod map;
mod presence;
mod pubsub;
mod scripts;

use pubsub::SubRequest;
use scripts::{HISTORY_LUA, PRESENCE_LUA, PUBLISH_LUA};

use crate::engine::presence::MemoryPresence;
use crate::engine::{EngineError, EngineEvents};
pub(crate) use conn::{Link, links};

/// A Pub/Sub connection is checked with a PING every three I/O timeouts, at most this often.
const PUBSUB_PING_MAX: Duration = Duration::from_secs(10);
/// How long an idempotent publication's result is kept.
const IDEMPOTENCY_TTL_SECS: u64 = 300;

/// An engine error caused by `e` (kept as its source).
fn err(e: impl std::error::Error + Send + Sync + 'static) -> EngineError {
    EngineError::caused_by(e)
}

/// One Redis instance: a multiplexed command connection and a Pub/Sub connection.
struct Shard {
    /// Command connection and the way to open the Pub/Sub connection (standalone, Sentinel
    /// or cluster).
    conn: Link,
    /// Subscribe/unsubscribe requests to the shard's Pub/Sub task, which batches them.
    requests: mpsc::UnboundedSender<SubRequest>,
    /// The receiving end, taken by the Pub/Sub task when it starts.
    requests_rx: Mutex<Option<mpsc::UnboundedReceiver<SubRequest>>>,
    /// Channels subscribed on the current Pub/Sub connection (SUBSCRIBE confirmed): a
    /// subscriber of one of them needs no request. Written by the Pub/Sub task only.
    confirmed: Mutex<HashSet<String>>,
    /// Whether the Pub/Sub connection is up.
    up: AtomicBool,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("to", &self.conn.describe())
            .field("up", &self.up.load(Ordering::Relaxed))
            .finish()
    }
}

/// The Redis engine (broker, presence manager and control bus).
pub(crate) struct RedisEngine {
    shards: Vec<Arc<Shard>>,
    prefix: String,
    /// Redis Cluster: channel names in keys are hash tags (`{channel}`).
    hash_tags: bool,
    /// Where deliveries, control commands and surveys go (the node).
    events: Arc<dyn EngineEvents>,
    presence_ttl: Duration,
    /// Bound of one connection attempt.
    connect_timeout: Duration,
    /// Bound of one Pub/Sub command (SUBSCRIBE, UNSUBSCRIBE, PING): past it the connection
    /// counts as lost.
    io_timeout: Duration,
    /// This node's own presence entries, refreshed periodically.
    local_presence: MemoryPresence,
    publish_script: Script,
    history_script: Script,
    presence_script: Script,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("shards", &self.shards)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// Jump consistent hash: a bucket in `0..buckets` that moves for few keys when `buckets`
/// grows.
fn jump_hash(key: &str, buckets: usize) -> usize {
    // FNV-1a, stable across processes and nodes.
    let mut k: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        k ^= u64::from(*b);
        k = k.wrapping_mul(0x0100_0000_01b3);
    }
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < buckets as i64 {
        b = j;
        k = k.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((k >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as usize
}

impl RedisEngine {
    /// Connects to every configured Redis address.
    pub(crate) async fn connect(
        config: &gyre_config::RedisConfig,
        events: Arc<dyn EngineEvents>,
    ) -> anyhow::Result<Arc<Self>> {
        // No I/O here: the node starts while Redis is down; each shard's Pub/Sub task
        // connects in the background and commands fail with an engine error until Redis is
        // reachable.
        let links = conn::links(config)?;
        let hash_tags = links.iter().any(Link::is_cluster);
        let shards: Vec<Arc<Shard>> = links
            .into_iter()
            .map(|conn| {
                let (requests, requests_rx) = mpsc::unbounded_channel();
                Arc::new(Shard {
                    conn,
                    requests,
                    requests_rx: Mutex::new(Some(requests_rx)),
                    confirmed: Mutex::default(),
                    up: AtomicBool::new(false),
                })
            })
            .collect();
        anyhow::ensure!(!shards.is_empty(), "no Redis address configured");
        Ok(Arc::new(Self {
            shards,
            prefix: config.prefix.clone(),
            hash_tags,
            events,
            presence_ttl: config.presence_ttl.0.max(Duration::from_secs(3)),
            connect_timeout: config.connect_timeout.0.max(Duration::from_millis(100)),
            io_timeout: config.io_timeout.0.max(Duration::from_millis(500)),
            local_presence: MemoryPresence::default(),
            publish_script: Script::new(PUBLISH_LUA),
            history_script: Script::new(HISTORY_LUA),
            presence_script: Script::new(PRESENCE_LUA),
        }))
    }

    /// Starts the Pub/Sub readers and the presence refresh, until `shutdown`.
    pub(crate) fn start(self: &Arc<Self>, shutdown: &CancellationToken) {
        for (index, shard) in self.shards.iter().enumerate() {
            let engine = self.clone();
            let shard = shard.clone();
            let token = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = token.cancelled() => {}
                    () = engine.pubsub_loop(index, shard) => {}
                }
            });
        }
        let engine = self.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut presence = tokio::time::interval(engine.presence_ttl / 3);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = presence.tick() => engine.refresh_presence().await,
                }
            }
        });
    }

    /// Waits until every shard's Pub/Sub connection is up, at most `bound` (a node starts
    /// serving either way; this only avoids missing control messages at start-up).
    pub(crate) async fn wait_connected(&self, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        loop {
            if self.shards.iter().all(|s| s.up.load(Ordering::Acquire)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn shard(&self, channel: &str) -> &Arc<Shard> {
        &self.shards[jump_hash(channel, self.shards.len())]
    }

    fn pubsub_name(&self, channel: &str) -> String {
        format!("{}.client.{channel}", self.prefix)
    }

    fn control_name(&self) -> String {
        format!("{}.control", self.prefix)
    }

    /// A node's own channel (survey answers addressed to it).
    fn node_name(&self, node: &str) -> String {
        format!("{}.node.{node}", self.prefix)
    }

    /// The channel as it appears in key names: a hash tag in a cluster, so that all keys of a
    /// channel share a slot.
    fn key_part(&self, channel: &str) -> String {
        if self.hash_tags {
            format!("{{{channel}}}")
        } else {
            channel.to_owned()
        }
    }

    fn stream_key(&self, channel: &str) -> String {
        format!("{}.stream.{}", self.prefix, self.key_part(channel))
    }

    fn meta_key(&self, channel: &str) -> String {
        format!("{}.meta.{}", self.prefix, self.key_part(channel))
    }

    fn presence_keys(&self, channel: &str) -> (String, String) {
        let part = self.key_part(channel);
        (
            format!("{}.presence.expire.{part}", self.prefix),
            format!("{}.presence.data.{part}", self.prefix),
        )
    }
}

/// Reads an integer or a numeric string.
fn value_u64(value: &Value) -> u64 {
    match value {
        Value::Int(n) => *n as u64,
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        Value::SimpleString(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn value_string(value: &Value) -> String {
    match value {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn jump_hash_is_stable_and_in_range() {
        for n in 1..8 {
            for key in ["a", "news", "chat:index", ""] {
                assert!(jump_hash(key, n) < n);
                assert_eq!(jump_hash(key, n), jump_hash(key, n));
            }
        }
        assert_eq!(jump_hash("x", 1), 0);
        let used: HashSet<usize> = (0..100).map(|i| jump_hash(&i.to_string(), 4)).collect();
        assert_eq!(used.len(), 4);
    }
}
