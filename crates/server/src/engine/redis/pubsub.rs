//! Delivery: one Pub/Sub task per shard keeps its connection, batches subscribes and
//! unsubscribes, decodes messages once and reports them to the node.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use gyre_protocol::{ClientInfo, Publication};
use prost::Message as _;
use redis::Value;
use redis::aio::PubSubSink;
use tokio::sync::oneshot;

use super::*;
use crate::engine::{EngineError, EngineEvents};

/// A request to the Pub/Sub task of a shard.
#[derive(Debug)]
pub(super) enum SubRequest {
    /// Subscribe the channel (client name); answered once SUBSCRIBE is confirmed.
    Subscribe(String, oneshot::Sender<()>),
    /// Unsubscribe the channel if it has no local subscriber when the request is handled.
    Unsubscribe(String),
}

/// At most this many requests are handled (and channels sent in one SUBSCRIBE) at once.
pub(super) const SUBSCRIBE_BATCH: usize = 4096;

/// Exponential reconnect delays with jitter: 100 ms doubling up to 3 s.
#[derive(Debug, Default)]
pub(super) struct Backoff {
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

/// The Pub/Sub task's view of a shard's channels.
#[derive(Debug, Default)]
pub(super) struct Subscriptions {
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
    /// Keeps shard `index`'s Pub/Sub connection: connects (with backoff), subscribes every
    /// wanted channel, then reads messages while handling subscribe/unsubscribe requests in
    /// batches (one SUBSCRIBE for every first subscribe that arrived meanwhile). After a loss
    /// it tells local subscribers of its channels to resubscribe.
    pub(super) async fn pubsub_loop(self: Arc<Self>, index: usize, shard: Arc<Shard>) {
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
    pub(super) async fn subscribe_names(
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
    pub(super) async fn bounded<T>(
        &self,
        command: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, EngineError> {
        tokio::time::timeout(self.io_timeout, command)
            .await
            .map_err(|_| EngineError::new("pub/sub command timed out"))?
            .map_err(err)
    }

    /// Handles one Pub/Sub message (on the shard task: decoded once for all subscribers).
    pub(super) fn on_message(&self, message: &redis::Msg) {
        let name = message.get_channel_name();
        let payload = message.get_payload_bytes();
        if let Some(channel) = name
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix(".client."))
        {
            self.deliver(channel, payload);
        } else if let Some(rest) = name.strip_prefix(self.prefix.as_str())
            && (rest == ".control" || rest.strip_prefix(".node.") == Some(self.events.node_id()))
        {
            self.events.control(payload);
        }
    }

    /// Opens a Pub/Sub connection to a shard and makes sure its command connection works
    /// too (the command connection reconnects lazily: one successful command here means
    /// requests succeed as soon as the shard is reported up).
    pub(super) async fn connect_shard(
        &self,
        shard: &Shard,
    ) -> Result<(PubSubSink, super::conn::MessageStream), EngineError> {
        let pubsub = tokio::time::timeout(self.connect_timeout, shard.conn.pubsub())
            .await
            .map_err(|_| EngineError::new("connection timed out"))?
            .map_err(err)?;
        let mut last = EngineError::new("not tried");
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

    /// Decodes a map change (`<offset> <epoch> <delta flag><length> <entry><previous
    /// entry>`, see [`super::map`]) and hands it to the hub with the key's previous data.
    fn deliver_map_change(&self, channel: &str, payload: &[u8]) {
        let mut parts = payload.splitn(3, |b| *b == b' ');
        let (Some(offset), Some(epoch), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let offset = std::str::from_utf8(offset)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        let epoch = std::str::from_utf8(epoch).unwrap_or_default();
        let Some((delta, rest)) = rest.split_first() else {
            return;
        };
        let Some(space) = rest.iter().position(|b| *b == b' ') else {
            return;
        };
        let Some(len) = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            return;
        };
        let body = &rest[space + 1..];
        let (Some(encoded), Some(previous)) = (body.get(..len), body.get(len..)) else {
            return;
        };
        let Ok(mut publication) = Publication::decode(encoded) else {
            tracing::debug!("undecodable map change in {channel}");
            return;
        };
        publication.offset = offset;
        if !publication.removed
            && !previous.is_empty()
            && let Ok(previous) = Publication::decode(previous)
        {
            publication.prev_data = previous.data;
        }
        self.events
            .publication(channel, &publication, *delta == b'1', epoch);
    }

    /// Decodes a channel message once and hands it to the hub.
    pub(super) fn deliver(&self, channel: &str, payload: &[u8]) {
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
            Some(b'm') => self.deliver_map_change(channel, &payload[1..]),
            Some(kind @ (b'j' | b'l')) => {
                if let Ok(info) = ClientInfo::decode(&payload[1..]) {
                    self.events.join_leave(channel, &info, *kind == b'j');
                }
            }
            _ => {}
        }
    }
}
