//! Streams and publishing in Redis: the Broker side of the engine.

use std::sync::atomic::Ordering;
use std::time::Duration;

use gyre_protocol::{ClientInfo, Publication};
use prost::Message as _;
use redis::Value;
use tokio::sync::oneshot;

use super::*;
use crate::engine::{
    BoxFuture, Broker, BrokerPublication, EngineError, HistoryFilter, HistoryResult, StreamOptions,
    StreamPosition,
};

/// A stream entry (`[id, [field, value, ...]]`) as a publication.
pub(super) fn entry_publication(entry: &Value) -> Option<Publication> {
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
    ) -> BoxFuture<'a, Result<StreamPosition, EngineError>> {
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
                .arg(crate::engine::memory::new_epoch())
                .arg(self.pubsub_name(channel))
                .arg(if p.delta { "1" } else { "0" })
                .arg(if p.append { "1" } else { "0" })
                .arg(if p.idempotency_key.is_some() {
                    IDEMPOTENCY_TTL_SECS
                } else {
                    0
                })
                .arg(p.version.as_ref().map_or(0, |v| v.version))
                .arg(p.version.as_ref().map_or("", |v| v.epoch.as_str()))
                .invoke_async(&mut conn)
                .await
                .map_err(err)?;
            Ok(StreamPosition { offset, epoch })
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
                    // Nothing can follow the largest offset (a client may send it).
                    Some(u64::MAX) => ("none", "-".to_owned(), "+".to_owned()),
                    Some(since) => ("fwd", format!("{}-0", since + 1), "+".to_owned()),
                    None => ("fwd", "-".to_owned(), "+".to_owned()),
                }
            };
            let mut conn = self.shard(channel).conn.clone();
            let value: Value = self
                .history_script
                .key(self.stream_key(channel))
                .key(self.meta_key(channel))
                .arg(crate::engine::memory::new_epoch())
                .arg(stream.meta_ttl.max(stream.history_ttl).as_secs().max(1))
                .arg(mode)
                .arg(start)
                .arg(end)
                .arg(count)
                .invoke_async(&mut conn)
                .await
                .map_err(err)?;
            let Value::Array(parts) = value else {
                return Err(EngineError::new("unexpected history reply"));
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
                .map_err(|_| EngineError::new("redis engine stopped"))?;
            match tokio::time::timeout(wait, confirmed).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(EngineError::new("redis engine stopped")),
                Err(_) => Err(EngineError::new("redis pub/sub is not connected")),
            }
        })
    }

    fn unsubscribe<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.shard(channel)
                .requests
                .send(SubRequest::Unsubscribe(channel.to_owned()))
                .map_err(|_| EngineError::new("redis engine stopped"))
        })
    }
}
