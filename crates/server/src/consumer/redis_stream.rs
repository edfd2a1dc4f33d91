//! `type: redis_stream`: entries `XADD`ed to Redis streams, read through a consumer group.
//!
//! Each stream gets `num_workers` workers, each with its own Redis connection (the
//! connection keys, Sentinel and Cluster as in the other Redis sections) and its own group
//! consumer name (`<node id>-<worker>`). A worker creates the group when missing
//! (`XGROUP CREATE <stream> <group> $ MKSTREAM`, as upstream: entries written before the
//! group existed are not read), reads with `XREADGROUP ... >`, applies each entry and
//! `XACK`s it only then (one `XACK` per read batch); a temporary failure is retried in place with a growing pause. An
//! entry left unacknowledged (a worker that crashed or was stopped mid-way) is taken over
//! with `XAUTOCLAIM` by any worker once it has been pending for `visibility_timeout`, which
//! is how entries of a killed node are delivered after a restart.
//!
//! An entry is an API command: field `payload_value` holds the request and `method_value`
//! the method, or, without that field, the payload is `{"method": ..., "payload": ...}`.
//! With `publication_data_mode` the payload field is publication data instead, published to
//! the comma-separated channels of field `channels_value` (with the idempotency key, delta
//! flag, version, epoch and `tags_value_prefix` tags of their fields).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gyre_config::RedisStreamConsumerConfig;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{FromRedisValue, RedisError, Value};

use super::publication::Fields;
use super::{Backoff, Consumer, Temporary};
use crate::engine::redis::{Link, links};

/// Entries read per `XREADGROUP` / `XAUTOCLAIM`.
const COUNT: usize = 64;
/// Longest `XREADGROUP` block: below the connection's response timeout.
const MAX_BLOCK: Duration = Duration::from_secs(2);
/// Longest pause between two `XAUTOCLAIM` rounds (upstream's reclaim interval).
const MAX_RECLAIM_INTERVAL: Duration = Duration::from_secs(5);

/// Starts the workers of every stream.
pub(super) fn spawn(consumer: Consumer, config: RedisStreamConsumerConfig) {
    let config = Arc::new(config);
    for stream in &config.streams {
        for index in 0..config.workers() {
            let worker = Worker {
                name: format!("{}-{index}", consumer.node.events.id),
                stream: stream.clone(),
                consumer: consumer.clone(),
                config: config.clone(),
            };
            tokio::spawn(worker.run());
        }
    }
}

/// One group consumer on one stream.
struct Worker {
    consumer: Consumer,
    config: Arc<RedisStreamConsumerConfig>,
    stream: String,
    /// Group consumer name.
    name: String,
}

impl Worker {
    async fn run(self) {
        let c = &self.consumer;
        let mut link = match links(&self.config.redis).map(|l| l.into_iter().next()) {
            Ok(Some(link)) => link,
            Ok(None) => return,
            Err(err) => {
                tracing::error!(consumer = %c.name, "redis_stream consumer not started: {err}");
                return;
            }
        };
        let visibility = self.config.visibility_timeout.0;
        let reclaim_every = visibility.min(MAX_RECLAIM_INTERVAL);
        let io = self
            .config
            .redis
            .io_timeout
            .0
            .max(Duration::from_millis(200));
        let block = MAX_BLOCK.min(io / 2);
        let mut group_ready = false;
        let mut last_reclaim: Option<Instant> = None;
        let mut backoff = Backoff::default();
        while !c.stopping() {
            let round = async {
                if !group_ready {
                    self.create_group(&mut link).await?;
                    group_ready = true;
                }
                if !visibility.is_zero()
                    && last_reclaim.is_none_or(|t| t.elapsed() >= reclaim_every)
                {
                    last_reclaim = Some(Instant::now());
                    self.reclaim(&mut link, visibility).await?;
                }
                let entries = self.read(&mut link, block).await?;
                self.handle(&mut link, entries).await
            };
            match round.await {
                Ok(()) => backoff.reset(),
                Err(err) => {
                    group_ready = false;
                    c.counters.errors.inc();
                    tracing::warn!(consumer = %c.name, stream = %self.stream, "redis stream read failed: {err}");
                    if !c.sleep(backoff.next()).await {
                        break;
                    }
                }
            }
        }
    }

    /// Creates the group at the stream's end (and the stream) unless it exists.
    async fn create_group(&self, link: &mut Link) -> Result<(), RedisError> {
        let created: Result<Value, RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(&self.config.consumer_group)
            .arg("$")
            .arg("MKSTREAM")
            .query_async(link)
            .await;
        match created {
            Err(err) if err.code() != Some("BUSYGROUP") => Err(err),
            _ => Ok(()),
        }
    }

    /// Takes over entries pending longer than `visibility` and applies them.
    async fn reclaim(&self, link: &mut Link, visibility: Duration) -> Result<(), RedisError> {
        let mut start = "0-0".to_owned();
        loop {
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(&self.stream)
                .arg(&self.config.consumer_group)
                .arg(&self.name)
                .arg(u64::try_from(visibility.as_millis()).unwrap_or(u64::MAX))
                .arg(&start)
                .arg("COUNT")
                .arg(COUNT)
                .query_async(link)
                .await?;
            let done = reply.claimed.is_empty() || reply.next_stream_id == "0-0";
            start = reply.next_stream_id;
            self.handle(link, reply.claimed).await?;
            if done || self.consumer.stopping() {
                return Ok(());
            }
        }
    }

    /// New entries for this consumer, waiting up to `block` for some.
    async fn read(&self, link: &mut Link, block: Duration) -> Result<Vec<StreamId>, RedisError> {
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.config.consumer_group)
            .arg(&self.name)
            .arg("COUNT")
            .arg(COUNT)
            .arg("BLOCK")
            .arg(u64::try_from(block.as_millis()).unwrap_or(1000))
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(link)
            .await?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .collect())
    }

    /// Applies each entry (retrying temporary failures until done or shutdown), then
    /// acknowledges the ones done with in one `XACK`. An entry not done with (shutdown came
    /// during its retries) stays pending, as do those after it.
    async fn handle(&self, link: &mut Link, entries: Vec<StreamId>) -> Result<(), RedisError> {
        let c = &self.consumer;
        let mut done: Vec<&str> = Vec::with_capacity(entries.len());
        'entries: for entry in &entries {
            let fields = text_fields(&entry.map);
            let mut backoff = Backoff::default();
            loop {
                match self.apply(&fields).await {
                    Ok(()) => break,
                    Err(reason) => {
                        tracing::warn!(consumer = %c.name, stream = %self.stream, id = %entry.id, "retrying stream entry: {reason}");
                        if !c.sleep(backoff.next()).await {
                            // Claimed again after the visibility timeout.
                            break 'entries;
                        }
                    }
                }
            }
            done.push(&entry.id);
        }
        if !done.is_empty() {
            let _: Value = redis::cmd("XACK")
                .arg(&self.stream)
                .arg(&self.config.consumer_group)
                .arg(&done)
                .query_async(link)
                .await?;
        }
        Ok(())
    }

    /// Applies one entry's command (or publication).
    async fn apply(&self, fields: &HashMap<String, String>) -> Result<(), Temporary> {
        let c = &self.consumer;
        let payload = fields.get(&self.config.payload_value);
        let mode = &self.config.publication_data_mode;
        if !mode.enabled {
            let method = fields.get(&self.config.method_value).map(String::as_str);
            return c.apply(method, payload.map_or("", String::as_str)).await;
        }
        let Some(data) = payload else {
            return c.skip("entry has no payload field");
        };
        let field = |key: &str| {
            fields
                .get(key)
                .filter(|_| !key.is_empty())
                .map_or("", String::as_str)
        };
        let tags = fields
            .iter()
            .filter(|_| !mode.tags_value_prefix.is_empty())
            .filter_map(|(k, v)| Some((k.strip_prefix(&mode.tags_value_prefix)?, v.as_str())))
            .collect();
        c.apply_publication(Fields {
            data,
            channels: field(&mode.channels_value),
            idempotency_key: field(&mode.idempotency_key_value),
            delta: field(&mode.delta_value),
            version: field(&mode.version_value),
            version_epoch: field(&mode.version_epoch_value),
            tags,
        })
        .await
    }
}

/// The entry's fields as text (non-text values are left out).
fn text_fields(map: &HashMap<String, Value>) -> HashMap<String, String> {
    map.iter()
        .filter_map(|(k, v)| Some((k.clone(), String::from_redis_value_ref(v).ok()?)))
        .collect()
}
