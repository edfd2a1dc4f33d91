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
//! - Presence: a hash (client to info) and a zset (client to expiry) per channel; each node
//!   refreshes its own entries, so entries of a dead node expire.
//! - Control: a Pub/Sub channel for API actions on connections and node heartbeats (`info`).
//! - Shards: channels are spread over the configured addresses by consistent (jump) hashing.
//! - Topology, TLS and authentication (standalone, Sentinel, Cluster) live in
//!   [`super::redis_conn`]: each shard is a [`Link`]. In a Redis Cluster every key of a channel
//!   carries the hash tag `{<channel>}` so one channel's keys share a slot.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use gyre_protocol::{ClientInfo, Publication};
use parking_lot::Mutex;
use prost::Message as _;
use redis::aio::PubSubSink;
use redis::{Script, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::presence::MemoryPresence;
use super::redis_conn::Link;
use super::{
    BoxFuture, Broker, BrokerPublication, ControlBus, ControlCommand, EngineError, EngineEvents,
    HistoryFilter, HistoryResult, PresenceManager, StreamOptions,
};

/// How often a node announces itself on the control channel.
const HEARTBEAT: Duration = Duration::from_secs(3);
/// A node not heard of for this long is gone.
const NODE_TTL: Duration = Duration::from_secs(10);
/// A Pub/Sub connection is checked with a PING every three I/O timeouts, at most this often.
const PUBSUB_PING_MAX: Duration = Duration::from_secs(10);
/// How long a survey waits for the other nodes' answers.
const SURVEY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an idempotent publication's result is kept.
const IDEMPOTENCY_TTL_SECS: u64 = 300;

const PUBLISH_LUA: &str = r"
-- KEYS: stream, meta, idempotency result
-- ARGV: payload, size, history ttl, meta ttl, new epoch, pubsub channel, delta, append, idem ttl
if ARGV[9] ~= '0' then
  local found = redis.call('get', KEYS[3])
  if found then
    local at = string.find(found, ':', 1, true)
    return {tonumber(string.sub(found, 1, at - 1)), string.sub(found, at + 1)}
  end
end
local offset = 0
local epoch = ''
if ARGV[8] == '1' then
  epoch = redis.call('hget', KEYS[2], 'e')
  if not epoch then
    epoch = ARGV[5]
    redis.call('del', KEYS[1])
    redis.call('hset', KEYS[2], 'e', epoch, 's', 0)
  end
  offset = redis.call('hincrby', KEYS[2], 's', 1)
  redis.call('expire', KEYS[2], ARGV[4])
  redis.call('xadd', KEYS[1], 'MAXLEN', ARGV[2], offset .. '-0', 'd', ARGV[1])
  redis.call('expire', KEYS[1], ARGV[3])
end
redis.call('publish', ARGV[6], 'p' .. offset .. ' ' .. epoch .. ' ' .. ARGV[7] .. ARGV[1])
if ARGV[9] ~= '0' then
  redis.call('set', KEYS[3], offset .. ':' .. epoch, 'EX', ARGV[9])
end
return {offset, epoch}
";

const HISTORY_LUA: &str = r"
-- KEYS: stream, meta
-- ARGV: new epoch, meta ttl, mode (none|fwd|rev), start, end, count (0: all)
local epoch = redis.call('hget', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('del', KEYS[1])
  redis.call('hset', KEYS[2], 'e', epoch, 's', 0)
  redis.call('expire', KEYS[2], ARGV[2])
end
local top = tonumber(redis.call('hget', KEYS[2], 's') or '0')
local entries = {}
if ARGV[3] == 'fwd' then
  if ARGV[6] == '0' then
    entries = redis.call('xrange', KEYS[1], ARGV[4], ARGV[5])
  else
    entries = redis.call('xrange', KEYS[1], ARGV[4], ARGV[5], 'COUNT', ARGV[6])
  end
elseif ARGV[3] == 'rev' then
  if ARGV[6] == '0' then
    entries = redis.call('xrevrange', KEYS[1], ARGV[5], ARGV[4])
  else
    entries = redis.call('xrevrange', KEYS[1], ARGV[5], ARGV[4], 'COUNT', ARGV[6])
  end
end
return {top, epoch, entries}
";

const PRESENCE_LUA: &str = r"
-- KEYS: expiry zset, data hash; ARGV: now
local expired = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1])
for _, client in ipairs(expired) do
  redis.call('hdel', KEYS[2], client)
end
redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1])
return redis.call('hgetall', KEYS[2])
";

fn err(e: impl std::fmt::Display) -> EngineError {
    EngineError(e.to_string())
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

/// A request to the Pub/Sub task of a shard.
#[derive(Debug)]
enum SubRequest {
    /// Subscribe the channel (client name); answered once SUBSCRIBE is confirmed.
    Subscribe(String, oneshot::Sender<()>),
    /// Unsubscribe the channel if it has no local subscriber when the request is handled.
    Unsubscribe(String),
}

/// At most this many requests are handled (and channels sent in one SUBSCRIBE) at once.
const SUBSCRIBE_BATCH: usize = 4096;

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("to", &self.conn.describe())
            .field("up", &self.up.load(Ordering::Relaxed))
            .finish()
    }
}

/// The Redis engine (broker, presence manager and control bus).
pub struct RedisEngine {
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
    /// Other live nodes: uid to (info, last heard).
    nodes: Mutex<HashMap<String, (serde_json::Value, Instant)>>,
    /// Surveys this node waits answers for, by request id.
    surveys: Mutex<HashMap<String, PendingSurvey>>,
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

/// Exponential reconnect delays with jitter: 100 ms doubling up to 3 s.
#[derive(Debug, Default)]
struct Backoff {
    attempts: u32,
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let base = 100u64.saturating_mul(1 << self.attempts.min(5)).min(3000);
        self.attempts = self.attempts.saturating_add(1);
        let jitter = rand::random_range(0..=base / 2);
        Duration::from_millis(base / 2 + jitter)
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A survey waiting for answers.
#[derive(Debug)]
struct PendingSurvey {
    /// Nodes whose answer is still awaited.
    waiting: HashSet<String>,
    /// Answers so far.
    answers: Vec<serde_json::Value>,
    /// Fired when the last awaited answer arrived.
    done: Option<oneshot::Sender<()>>,
}

/// The Pub/Sub task's view of a shard's channels.
#[derive(Debug, Default)]
struct Subscriptions {
    /// Channels (client names) the node must receive.
    wanted: HashSet<String>,
    /// Subscribers waiting for a channel's SUBSCRIBE to be confirmed.
    waiters: HashMap<String, Vec<oneshot::Sender<()>>>,
}

impl Subscriptions {
    /// Records requests; returns the channels whose wanted state may have changed.
    fn absorb(
        &mut self,
        events: &dyn EngineEvents,
        shard: &Shard,
        batch: impl Iterator<Item = SubRequest>,
    ) -> Vec<String> {
        let mut touched = Vec::new();
        let mut leaving = Vec::new();
        for request in batch {
            match request {
                SubRequest::Subscribe(channel, waiter) => {
                    if shard.confirmed.lock().contains(&channel) {
                        let _ = waiter.send(());
                        continue;
                    }
                    let waiters = self.waiters.entry(channel.clone()).or_default();
                    waiters.retain(|w| !w.is_closed());
                    waiters.push(waiter);
                    self.wanted.insert(channel.clone());
                    touched.push(channel);
                }
                SubRequest::Unsubscribe(channel) => leaving.push(channel),
            }
        }
        for channel in leaving {
            // Forget the channel as confirmed first: a subscriber arriving from now on
            // asks (and is handled after this); one that arrived before shows in the hub.
            let was_confirmed = shard.confirmed.lock().remove(&channel);
            if events.has_subscribers(&channel) {
                if was_confirmed {
                    shard.confirmed.lock().insert(channel);
                }
                continue;
            }
            // Its waiters (if any) have left too.
            self.waiters.remove(&channel);
            if self.wanted.remove(&channel) || was_confirmed {
                touched.push(channel);
            }
        }
        touched
    }

    /// Brings the connection in line with `wanted` for `touched` channels: one UNSUBSCRIBE
    /// and one SUBSCRIBE (per batch) for all of them; answers the waiters.
    async fn sync(
        &mut self,
        engine: &RedisEngine,
        shard: &Shard,
        sink: &mut PubSubSink,
        mut touched: Vec<String>,
    ) -> Result<(), EngineError> {
        touched.sort_unstable();
        touched.dedup();
        let (subscribe, unsubscribe): (Vec<String>, Vec<String>) = touched
            .into_iter()
            .partition(|channel| self.wanted.contains(channel));
        if !unsubscribe.is_empty() {
            let names: Vec<String> = unsubscribe.iter().map(|c| engine.pubsub_name(c)).collect();
            engine.bounded(sink.unsubscribe(names)).await?;
        }
        if !subscribe.is_empty() {
            engine.subscribe_names(sink, &[], &subscribe).await?;
            shard.confirmed.lock().extend(subscribe);
            self.answer_confirmed(shard);
        }
        Ok(())
    }

    /// Answers every waiter whose channel is confirmed.
    fn answer_confirmed(&mut self, shard: &Shard) {
        let confirmed = shard.confirmed.lock();
        self.waiters.retain(|channel, waiters| {
            if !confirmed.contains(channel) {
                return true;
            }
            for waiter in waiters.drain(..) {
                let _ = waiter.send(());
            }
            false
        });
    }
}

impl RedisEngine {
    /// Connects to every configured Redis address.
    pub async fn connect(
        config: &gyre_config::RedisConfig,
        events: Arc<dyn EngineEvents>,
    ) -> anyhow::Result<Arc<Self>> {
        // No I/O here: the node starts while Redis is down; each shard's Pub/Sub task
        // connects in the background and commands fail with an engine error until Redis is
        // reachable.
        let links = super::redis_conn::links(config)?;
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
            nodes: Mutex::default(),
            surveys: Mutex::default(),
            publish_script: Script::new(PUBLISH_LUA),
            history_script: Script::new(HISTORY_LUA),
            presence_script: Script::new(PRESENCE_LUA),
        }))
    }

    /// Starts the Pub/Sub readers, heartbeats and presence refresh, until `shutdown`.
    pub fn start(self: &Arc<Self>, shutdown: &CancellationToken) {
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
            let mut heartbeat = tokio::time::interval(HEARTBEAT);
            let mut presence = tokio::time::interval(engine.presence_ttl / 3);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => {
                        // The others stop counting on this node (surveys, info) at once.
                        let gone = serde_json::json!({ "node": engine.events.node_id(), "gone": true });
                        let _ = tokio::time::timeout(
                            Duration::from_millis(500),
                            engine.publish_control(gone.to_string()),
                        )
                        .await;
                        return;
                    }
                    _ = heartbeat.tick() => {
                        let info = engine.events.node_info();
                        let message =
                            serde_json::json!({ "node": engine.events.node_id(), "info": info });
                        let _ = engine.publish_control(message.to_string()).await;
                        engine.nodes.lock().retain(|_, (_, at)| at.elapsed() < NODE_TTL);
                    }
                    _ = presence.tick() => engine.refresh_presence().await,
                }
            }
        });
    }

    /// Waits until every shard's Pub/Sub connection is up, at most `bound` (a node starts
    /// serving either way; this only avoids missing control messages at start-up).
    pub async fn wait_connected(&self, bound: Duration) -> bool {
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

    /// Keeps shard `index`'s Pub/Sub connection: connects (with backoff), subscribes every
    /// wanted channel, then reads messages while handling subscribe/unsubscribe requests in
    /// batches (one SUBSCRIBE for every first subscribe that arrived meanwhile). After a loss
    /// it tells local subscribers of its channels to resubscribe.
    async fn pubsub_loop(self: Arc<Self>, index: usize, shard: Arc<Shard>) {
        let Some(mut requests) = shard.requests_rx.lock().take() else {
            return;
        };
        let mut subs = Subscriptions::default();
        let mut batch = Vec::with_capacity(SUBSCRIBE_BATCH);
        // Channels subscribed on the connection that was lost: their delivery was
        // interrupted (channels first wanted during an outage were not).
        let mut interrupted: HashSet<String> = HashSet::new();
        let mut backoff = Backoff::default();
        // Logged once per outage: state changes only, not every attempt.
        let mut down_logged = false;
        loop {
            let connecting = self.connect_shard(&shard);
            tokio::pin!(connecting);
            // Requests keep being recorded while connecting (so the queue stays short).
            let connected = loop {
                tokio::select! {
                    connected = &mut connecting => break connected,
                    n = requests.recv_many(&mut batch, SUBSCRIBE_BATCH) => {
                        if n == 0 {
                            return;
                        }
                        subs.absorb(&*self.events, &shard, batch.drain(..));
                    }
                }
            };
            let pubsub = match connected {
                Ok(pubsub) => pubsub,
                Err(e) => {
                    if !down_logged {
                        tracing::warn!(
                            "redis at {} is unreachable ({e}); retrying in the background",
                            shard.conn.describe()
                        );
                        down_logged = true;
                    }
                    let pause = tokio::time::sleep(backoff.next_delay());
                    tokio::pin!(pause);
                    loop {
                        tokio::select! {
                            () = &mut pause => break,
                            n = requests.recv_many(&mut batch, SUBSCRIBE_BATCH) => {
                                if n == 0 {
                                    return;
                                }
                                subs.absorb(&*self.events, &shard, batch.drain(..));
                            }
                        }
                    }
                    continue;
                }
            };
            let (mut sink, mut stream) = pubsub;
            let mut names: Vec<String> = subs.wanted.iter().cloned().collect();
            let mut first = Vec::new();
            if index == 0 {
                first.push(self.control_name());
                first.push(self.node_name(self.events.node_id()));
            }
            if let Err(e) = self.subscribe_names(&mut sink, &first, &names).await {
                if !down_logged {
                    tracing::warn!("redis resubscribe on {} failed: {e}", shard.conn.describe());
                    down_logged = true;
                }
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
            backoff = Backoff::default();
            tracing::info!("redis at {} is connected", shard.conn.describe());
            shard.confirmed.lock().extend(names.iter().cloned());
            shard.up.store(true, Ordering::Release);
            // Publications may have been missed while disconnected: positioned subscribers
            // resubscribe and recover from history (or learn they could not); the others
            // just go on, as they could not recover anyway.
            for channel in names.drain(..).filter(|c| interrupted.contains(c)) {
                self.events.stream_lost(&channel);
            }
            interrupted.clear();
            subs.answer_confirmed(&shard);
            // A silently dead connection (no close) is found by pinging it.
            let mut health = tokio::time::interval((self.io_timeout * 3).min(PUBSUB_PING_MAX));
            health.reset();
            let lost = loop {
                tokio::select! {
                    message = stream.next() => match message {
                        Some(message) => self.on_message(&message),
                        None => break None,
                    },
                    _ = health.tick() => {
                        if let Err(e) = self.bounded(sink.ping::<Value>()).await {
                            break Some(e);
                        }
                    }
                    n = requests.recv_many(&mut batch, SUBSCRIBE_BATCH) => {
                        if n == 0 {
                            return;
                        }
                        let touched = subs.absorb(&*self.events, &shard, batch.drain(..));
                        if let Err(e) = subs.sync(&self, &shard, &mut sink, touched).await {
                            break Some(e);
                        }
                    }
                }
            };
            match lost {
                Some(e) => {
                    tracing::warn!(
                        "redis pub/sub connection to {} lost ({e})",
                        shard.conn.describe()
                    )
                }
                None => {
                    tracing::warn!("redis pub/sub connection to {} lost", shard.conn.describe())
                }
            }
            // The loss is the state change logged for this outage.
            down_logged = true;
            shard.up.store(false, Ordering::Release);
            interrupted = std::mem::take(&mut *shard.confirmed.lock());
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// SUBSCRIBEs `first` and `names` in batches.
    async fn subscribe_names(
        &self,
        sink: &mut PubSubSink,
        first: &[String],
        names: &[String],
    ) -> Result<(), EngineError> {
        if !first.is_empty() {
            self.bounded(sink.subscribe(first)).await?;
        }
        for chunk in names.chunks(SUBSCRIBE_BATCH) {
            let redis_names: Vec<String> = chunk.iter().map(|c| self.pubsub_name(c)).collect();
            self.bounded(sink.subscribe(redis_names)).await?;
        }
        Ok(())
    }

    /// A Pub/Sub command bounded by the I/O timeout.
    async fn bounded<T>(
        &self,
        command: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, EngineError> {
        tokio::time::timeout(self.io_timeout, command)
            .await
            .map_err(|_| EngineError("pub/sub command timed out".to_owned()))?
            .map_err(err)
    }

    /// Handles one Pub/Sub message (on the shard task: decoded once for all subscribers).
    fn on_message(&self, message: &redis::Msg) {
        let name = message.get_channel_name();
        let payload = message.get_payload_bytes();
        if let Some(channel) = name
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix(".client."))
        {
            self.deliver(channel, payload);
        } else if let Some(rest) = name.strip_prefix(self.prefix.as_str()) {
            if rest == ".control" {
                self.on_control(payload);
            } else if rest.strip_prefix(".node.") == Some(self.events.node_id()) {
                self.on_answer(payload);
            }
        }
    }

    /// Opens a Pub/Sub connection to a shard and makes sure its command connection works
    /// too (the command connection reconnects lazily: one successful command here means
    /// requests succeed as soon as the shard is reported up).
    async fn connect_shard(
        &self,
        shard: &Shard,
    ) -> Result<(PubSubSink, super::redis_conn::MessageStream), EngineError> {
        let pubsub = tokio::time::timeout(self.connect_timeout, shard.conn.pubsub())
            .await
            .map_err(|_| EngineError("connection timed out".to_owned()))?
            .map_err(err)?;
        let mut last = EngineError("not tried".to_owned());
        // A failed lazy connection answers its error once before reconnecting.
        for _ in 0..3 {
            let mut conn = shard.conn.clone();
            match redis::cmd("PING").query_async::<()>(&mut conn).await {
                Ok(()) => return Ok(pubsub),
                Err(e) => last = err(e),
            }
        }
        Err(last)
    }

    /// Decodes a channel message once and hands it to the hub.
    fn deliver(&self, channel: &str, payload: &[u8]) {
        match payload.first() {
            Some(b'p') => {
                // `p<offset> <epoch> <delta flag><publication>`
                let mut parts = payload[1..].splitn(3, |b| *b == b' ');
                let (Some(offset), Some(epoch), Some(rest)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return;
                };
                let offset = std::str::from_utf8(offset)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
                let epoch = std::str::from_utf8(epoch).unwrap_or_default();
                let Some((delta, encoded)) = rest.split_first() else {
                    return;
                };
                let Ok(mut publication) = Publication::decode(encoded) else {
                    tracing::debug!("undecodable publication in {channel}");
                    return;
                };
                publication.offset = offset;
                self.events
                    .publication(channel, &publication, *delta == b'1', epoch);
            }
            Some(kind @ (b'j' | b'l')) => {
                if let Ok(info) = ClientInfo::decode(&payload[1..]) {
                    self.events.join_leave(channel, &info, *kind == b'j');
                }
            }
            _ => {}
        }
    }

    fn on_control(&self, payload: &[u8]) {
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return;
        };
        let from = message["node"].as_str().unwrap_or_default();
        if from == self.events.node_id() {
            return;
        }
        if let Some(info) = message.get("info") {
            self.nodes
                .lock()
                .insert(from.to_owned(), (info.clone(), Instant::now()));
        } else if message.get("gone").is_some() {
            self.nodes.lock().remove(from);
        } else if let Some(command) = message.get("command")
            && let Ok(command) = serde_json::from_value::<ControlCommand>(command.clone())
        {
            self.events.control(&command);
        } else if let Some(survey) = message.get("survey") {
            let (Some(id), Some(op)) = (survey["id"].as_str(), survey["op"].as_str()) else {
                return;
            };
            let (id, op, body) = (id.to_owned(), op.to_owned(), survey["body"].clone());
            let node = self.events.node_id().to_owned();
            let channel = self.node_name(from);
            let mut conn = self.shards[0].conn.clone();
            let events = self.events.clone();
            // Off the Pub/Sub task: the answer may walk every local channel.
            tokio::spawn(async move {
                let data = events
                    .answer_survey(&op, &body)
                    .unwrap_or(serde_json::Value::Null);
                let answer = serde_json::json!({ "node": node, "id": id, "data": data });
                let sent = redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(answer.to_string())
                    .query_async::<()>(&mut conn)
                    .await;
                if let Err(e) = sent {
                    tracing::debug!("survey answer not sent: {e}");
                }
            });
        }
    }

    /// Records another node's answer to one of this node's surveys.
    fn on_answer(&self, payload: &[u8]) {
        let Ok(answer) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return;
        };
        let (Some(id), Some(from)) = (answer["id"].as_str(), answer["node"].as_str()) else {
            return;
        };
        let mut surveys = self.surveys.lock();
        let Some(pending) = surveys.get_mut(id) else {
            return;
        };
        if pending.waiting.remove(from) {
            pending.answers.push(answer["data"].clone());
        }
        if pending.waiting.is_empty()
            && let Some(done) = pending.done.take()
        {
            let _ = done.send(());
        }
    }

    async fn publish_control(&self, message: String) -> Result<(), EngineError> {
        let mut conn = self.shards[0].conn.clone();
        redis::cmd("PUBLISH")
            .arg(self.control_name())
            .arg(message)
            .query_async::<()>(&mut conn)
            .await
            .map_err(err)
    }

    /// Re-adds this node's presence entries (one pipeline per channel), so they outlive
    /// the TTL while the node lives and expire when it dies.
    async fn refresh_presence(&self) {
        let ttl = self.presence_ttl.as_secs();
        for (channel, infos) in self.local_presence.all() {
            let (expire_key, data_key) = self.presence_keys(&channel);
            let expire_at = now_secs() + ttl;
            let mut pipe = redis::pipe();
            pipe.atomic();
            for info in &infos {
                pipe.zadd(&expire_key, &info.client, expire_at)
                    .ignore()
                    .hset(&data_key, &info.client, info.encode_to_vec())
                    .ignore();
            }
            pipe.expire(&expire_key, ttl as i64)
                .ignore()
                .expire(&data_key, ttl as i64)
                .ignore();
            let mut conn = self.shard(&channel).conn.clone();
            if let Err(e) = pipe.query_async::<()>(&mut conn).await {
                tracing::debug!("presence refresh failed: {e}");
                return;
            }
        }
    }

    async fn presence_add(&self, channel: &str, info: &ClientInfo) -> Result<(), EngineError> {
        let (expire_key, data_key) = self.presence_keys(channel);
        let ttl = self.presence_ttl.as_secs();
        let mut conn = self.shard(channel).conn.clone();
        redis::pipe()
            .atomic()
            .zadd(&expire_key, &info.client, now_secs() + ttl)
            .ignore()
            .hset(&data_key, &info.client, info.encode_to_vec())
            .ignore()
            .expire(&expire_key, ttl as i64)
            .ignore()
            .expire(&data_key, ttl as i64)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(err)
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

/// A stream entry (`[id, [field, value, ...]]`) as a publication.
fn entry_publication(entry: &Value) -> Option<Publication> {
    let Value::Array(parts) = entry else {
        return None;
    };
    let id = value_string(parts.first()?);
    let offset: u64 = id.split('-').next()?.parse().ok()?;
    let Value::Array(fields) = parts.get(1)? else {
        return None;
    };
    let data = fields.chunks(2).find_map(|pair| match pair {
        [Value::BulkString(k), Value::BulkString(v)] if k == b"d" => Some(v),
        _ => None,
    })?;
    let mut publication = Publication::decode(data.as_slice()).ok()?;
    publication.offset = offset;
    Some(publication)
}

impl Broker for RedisEngine {
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        p: BrokerPublication,
    ) -> BoxFuture<'a, Result<(u64, String), EngineError>> {
        Box::pin(async move {
            let payload = p.publication.encode_to_vec();
            let idem_key = format!(
                "{}.idempotency.{}.{}",
                self.prefix,
                self.key_part(channel),
                p.idempotency_key.as_deref().unwrap_or_default()
            );
            let mut conn = self.shard(channel).conn.clone();
            let (offset, epoch): (u64, String) = self
                .publish_script
                .key(self.stream_key(channel))
                .key(self.meta_key(channel))
                .key(idem_key)
                .arg(payload)
                .arg(p.stream.history_size)
                .arg(p.stream.history_ttl.as_secs().max(1))
                .arg(p.stream.meta_ttl.max(p.stream.history_ttl).as_secs().max(1))
                .arg(super::memory::new_epoch())
                .arg(self.pubsub_name(channel))
                .arg(if p.delta { "1" } else { "0" })
                .arg(if p.append { "1" } else { "0" })
                .arg(if p.idempotency_key.is_some() {
                    IDEMPOTENCY_TTL_SECS
                } else {
                    0
                })
                .invoke_async(&mut conn)
                .await
                .map_err(err)?;
            Ok((offset, epoch))
        })
    }

    fn publish_join_leave<'a>(
        &'a self,
        channel: &'a str,
        info: &'a ClientInfo,
        joined: bool,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let mut message = vec![if joined { b'j' } else { b'l' }];
            info.encode(&mut message).map_err(err)?;
            let mut conn = self.shard(channel).conn.clone();
            redis::cmd("PUBLISH")
                .arg(self.pubsub_name(channel))
                .arg(message)
                .query_async::<()>(&mut conn)
                .await
                .map_err(err)
        })
    }

    fn history<'a>(
        &'a self,
        channel: &'a str,
        stream: &'a StreamOptions,
        filter: &'a HistoryFilter,
    ) -> BoxFuture<'a, Result<HistoryResult, EngineError>> {
        Box::pin(async move {
            let count = filter.limit.unwrap_or(0);
            let (mode, start, end) = if filter.limit == Some(0) {
                ("none", "-".to_owned(), "+".to_owned())
            } else if filter.reverse {
                match filter.since {
                    Some(0 | 1) => ("none", "-".to_owned(), "+".to_owned()),
                    Some(since) => ("rev", "-".to_owned(), format!("{}-0", since - 1)),
                    None => ("rev", "-".to_owned(), "+".to_owned()),
                }
            } else {
                match filter.since {
                    Some(since) => ("fwd", format!("{}-0", since + 1), "+".to_owned()),
                    None => ("fwd", "-".to_owned(), "+".to_owned()),
                }
            };
            let mut conn = self.shard(channel).conn.clone();
            let value: Value = self
                .history_script
                .key(self.stream_key(channel))
                .key(self.meta_key(channel))
                .arg(super::memory::new_epoch())
                .arg(stream.meta_ttl.max(stream.history_ttl).as_secs().max(1))
                .arg(mode)
                .arg(start)
                .arg(end)
                .arg(count)
                .invoke_async(&mut conn)
                .await
                .map_err(err)?;
            let Value::Array(parts) = value else {
                return Err(EngineError("unexpected history reply".to_owned()));
            };
            let offset = parts.first().map_or(0, value_u64);
            let epoch = parts.get(1).map(value_string).unwrap_or_default();
            let publications = match parts.get(2) {
                Some(Value::Array(entries)) => {
                    entries.iter().filter_map(entry_publication).collect()
                }
                _ => Vec::new(),
            };
            Ok(HistoryResult {
                publications,
                offset,
                epoch,
            })
        })
    }

    fn remove_history<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let mut conn = self.shard(channel).conn.clone();
            redis::cmd("DEL")
                .arg(self.stream_key(channel))
                .query_async::<()>(&mut conn)
                .await
                .map_err(err)
        })
    }

    fn subscribe<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let shard = self.shard(channel);
            if shard.confirmed.lock().contains(channel) {
                return Ok(());
            }
            // While Redis is away, wait a little for the connection (it subscribes every
            // wanted channel); when up, the batch this request joins is one round trip.
            let wait = if shard.up.load(Ordering::Acquire) {
                Duration::from_secs(10)
            } else {
                Duration::from_secs(2)
            };
            let (waiter, confirmed) = oneshot::channel();
            shard
                .requests
                .send(SubRequest::Subscribe(channel.to_owned(), waiter))
                .map_err(|_| EngineError("redis engine stopped".to_owned()))?;
            match tokio::time::timeout(wait, confirmed).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(EngineError("redis engine stopped".to_owned())),
                Err(_) => Err(EngineError("redis pub/sub is not connected".to_owned())),
            }
        })
    }

    fn unsubscribe<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.shard(channel)
                .requests
                .send(SubRequest::Unsubscribe(channel.to_owned()))
                .map_err(|_| EngineError("redis engine stopped".to_owned()))
        })
    }
}

impl PresenceManager for RedisEngine {
    fn add<'a>(
        &'a self,
        channel: &'a str,
        info: &'a ClientInfo,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.local_presence.add(channel, info.clone());
            self.presence_add(channel, info).await
        })
    }

    fn remove<'a>(
        &'a self,
        channel: &'a str,
        client: &'a str,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.local_presence.remove(channel, client);
            let (expire_key, data_key) = self.presence_keys(channel);
            let mut conn = self.shard(channel).conn.clone();
            redis::pipe()
                .atomic()
                .zrem(&expire_key, client)
                .ignore()
                .hdel(&data_key, client)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(err)
        })
    }

    fn presence<'a>(
        &'a self,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<HashMap<String, ClientInfo>, EngineError>> {
        Box::pin(async move {
            let (expire_key, data_key) = self.presence_keys(channel);
            let mut conn = self.shard(channel).conn.clone();
            let flat: Vec<Vec<u8>> = self
                .presence_script
                .key(expire_key)
                .key(data_key)
                .arg(now_secs())
                .invoke_async(&mut conn)
                .await
                .map_err(err)?;
            let mut out = HashMap::new();
            for pair in flat.chunks(2) {
                if let [client, info] = pair
                    && let Ok(info) = ClientInfo::decode(Bytes::copy_from_slice(info))
                {
                    out.insert(String::from_utf8_lossy(client).into_owned(), info);
                }
            }
            Ok(out)
        })
    }
}

impl ControlBus for RedisEngine {
    fn send<'a>(&'a self, command: &'a ControlCommand) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let node = self.events.node_id().to_owned();
            let message = serde_json::json!({ "node": node, "command": command });
            self.publish_control(message.to_string()).await
        })
    }

    fn other_nodes(&self) -> Vec<serde_json::Value> {
        self.nodes
            .lock()
            .values()
            .filter(|(_, at)| at.elapsed() < NODE_TTL)
            .map(|(info, _)| info.clone())
            .collect()
    }

    fn survey<'a>(
        &'a self,
        op: &'a str,
        body: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<Vec<serde_json::Value>, EngineError>> {
        Box::pin(async move {
            let waiting: HashSet<String> = self
                .nodes
                .lock()
                .iter()
                .filter(|(_, (_, at))| at.elapsed() < NODE_TTL)
                .map(|(id, _)| id.clone())
                .collect();
            if waiting.is_empty() {
                return Ok(Vec::new());
            }
            let id = uuid::Uuid::new_v4().to_string();
            let (done, all_answered) = oneshot::channel();
            self.surveys.lock().insert(
                id.clone(),
                PendingSurvey {
                    waiting,
                    answers: Vec::new(),
                    done: Some(done),
                },
            );
            let node = self.events.node_id().to_owned();
            let message = serde_json::json!({
                "node": node,
                "survey": { "id": id, "op": op, "body": body },
            });
            let sent = self.publish_control(message.to_string()).await;
            let answered = match sent {
                Ok(()) => tokio::time::timeout(SURVEY_TIMEOUT, all_answered)
                    .await
                    .is_ok(),
                Err(_) => false,
            };
            let pending = self.surveys.lock().remove(&id);
            sent?;
            let pending = pending.ok_or_else(|| EngineError("survey vanished".to_owned()))?;
            if !answered {
                tracing::warn!(
                    "survey {op}: no answer from {} node(s) within {SURVEY_TIMEOUT:?}",
                    pending.waiting.len()
                );
            }
            Ok(pending.answers)
        })
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
