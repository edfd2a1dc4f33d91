//! Publishing and streams in PostgreSQL: the Broker side of the engine.

use std::time::Duration;

use gyre_protocol::ClientInfo;

use super::codec::{self, Data};
use super::conn::pool_err;
use super::*;
use crate::engine::{
    Broker, BrokerPublication, HistoryFilter, HistoryResult, StreamOptions, StreamPosition,
};

/// Milliseconds of `d` for an INTERVAL parameter (`None`: NULL, the stored value stays).
fn millis(d: Duration) -> Option<i64> {
    (!d.is_zero()).then(|| i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1))
}

/// The rows of a history read: first and last offset and how many, or `None` when nothing
/// can match.
fn window(top: u64, size: u64, filter: &HistoryFilter) -> Option<(u64, u64, u64)> {
    let mut first = 1u64;
    let mut last = top;
    if filter.reverse {
        if let Some(since) = filter.since {
            last = last.min(since.checked_sub(1)?);
        }
    } else if let Some(since) = filter.since {
        first = since.checked_add(1)?;
    }
    if size > 0 {
        first = first.max(top.saturating_sub(size) + 1);
    }
    let mut count = filter.limit.map_or(u64::MAX, |l| l as u64);
    if size > 0 {
        count = count.min(size);
    }
    (first <= last && count > 0).then_some((first, last, count))
}

impl PostgresBroker {
    /// How long a channel row is kept: the channel's meta TTL, else `stream_retention`.
    fn meta_ttl(&self, stream: &StreamOptions) -> Duration {
        if stream.meta_ttl.is_zero() {
            self.config.stream_retention.0
        } else {
            stream.meta_ttl
        }
    }

    /// The channel's top offset, epoch, history size and TTL (ms); the row is created (with
    /// a new epoch) when the channel has none.
    async fn meta(
        &self,
        client: &deadpool_postgres::Object,
        channel: &str,
        stream: &StreamOptions,
    ) -> Result<(u64, String, u64, i64), EngineError> {
        let read = async || -> Result<Option<(u64, String, u64, i64)>, EngineError> {
            let statement = client
                .prepare_cached(&self.sql.meta)
                .await
                .map_err(EngineError::caused_by)?;
            let row = client
                .query_opt(&statement, &[&channel])
                .await
                .map_err(EngineError::caused_by)?;
            let Some(row) = row else { return Ok(None) };
            let get = |e| EngineError::caused_by(e);
            let top: i64 = row.try_get(0).map_err(get)?;
            let epoch: String = row.try_get(1).map_err(get)?;
            let size: i32 = row.try_get(2).map_err(get)?;
            let ttl: Option<i64> = row.try_get(3).map_err(get)?;
            Ok(Some((
                u64::try_from(top).unwrap_or(0),
                epoch,
                u64::try_from(size).unwrap_or(0),
                ttl.unwrap_or(0),
            )))
        };
        if let Some(found) = read().await? {
            return Ok(found);
        }
        let keep = self.meta_ttl(stream).max(stream.history_ttl);
        let statement = client
            .prepare_cached(&self.sql.create_meta)
            .await
            .map_err(EngineError::caused_by)?;
        client
            .execute(
                &statement,
                &[
                    &channel,
                    &millis(stream.history_ttl).unwrap_or(60_000),
                    &(i32::try_from(stream.history_size).unwrap_or(i32::MAX)),
                    &millis(keep).unwrap_or(1),
                ],
            )
            .await
            .map_err(EngineError::caused_by)?;
        read()
            .await?
            .ok_or_else(|| EngineError::new("channel row vanished"))
    }
}

impl Broker for PostgresBroker {
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        p: BrokerPublication,
    ) -> BoxFuture<'a, Result<StreamPosition, EngineError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(pool_err)?;
            let tags = codec::tags_json(&p.publication.tags);
            let info = p.publication.info.as_ref();
            let client_id = info.map(|i| i.client.as_str()).filter(|s| !s.is_empty());
            let user_id = info.map(|i| i.user.as_str()).filter(|s| !s.is_empty());
            let conn_info = Data(info.map(|i| &i.conn_info[..]).filter(|b| !b.is_empty()));
            let chan_info = Data(info.map(|i| &i.chan_info[..]).filter(|b| !b.is_empty()));
            let shards = i32::try_from(self.config.num_shards).unwrap_or(1);
            let data = Data(Some(&p.publication.data[..]));
            let tags = Data(tags.as_deref());
            let idempotency_ttl = p
                .idempotency_key
                .as_ref()
                .and_then(|_| millis(self.config.idempotent_result_ttl.0));
            if !p.append {
                let statement = client
                    .prepare_cached(&self.sql.publish_live)
                    .await
                    .map_err(EngineError::caused_by)?;
                client
                    .execute(
                        &statement,
                        &[
                            &channel,
                            &data,
                            &tags,
                            &client_id,
                            &user_id,
                            &conn_info,
                            &chan_info,
                            &shards,
                            &p.idempotency_key.as_deref(),
                            &idempotency_ttl,
                        ],
                    )
                    .await
                    .map_err(EngineError::caused_by)?;
                return Ok(StreamPosition::default());
            }
            // The channel row outlives its history (the function keeps the larger of both).
            let keep = self.meta_ttl(&p.stream);
            let (version, version_epoch) = match &p.version {
                Some(v) if v.version > 0 => (
                    Some(i64::try_from(v.version).unwrap_or(i64::MAX)),
                    Some(v.epoch.as_str()),
                ),
                _ => (None, None),
            };
            let statement = client
                .prepare_cached(&self.sql.publish)
                .await
                .map_err(EngineError::caused_by)?;
            let row = client
                .query_one(
                    &statement,
                    &[
                        &channel,
                        &data,
                        &tags,
                        &millis(p.stream.history_ttl),
                        &i32::try_from(p.stream.history_size).ok().filter(|s| *s > 0),
                        &millis(keep),
                        &version,
                        &version_epoch,
                        &p.idempotency_key.as_deref(),
                        &idempotency_ttl,
                        &p.delta,
                        &client_id,
                        &user_id,
                        &conn_info,
                        &chan_info,
                        &shards,
                    ],
                )
                .await
                .map_err(EngineError::caused_by)?;
            let offset: i64 = row.try_get(0).map_err(EngineError::caused_by)?;
            let epoch: String = row.try_get(1).map_err(EngineError::caused_by)?;
            Ok(StreamPosition {
                offset: u64::try_from(offset).unwrap_or(0),
                epoch,
            })
        })
    }

    fn publish_join_leave<'a>(
        &'a self,
        channel: &'a str,
        info: &'a ClientInfo,
        joined: bool,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(pool_err)?;
            let sql = if joined {
                &self.sql.join
            } else {
                &self.sql.leave
            };
            let statement = client
                .prepare_cached(sql)
                .await
                .map_err(EngineError::caused_by)?;
            let shards = i32::try_from(self.config.num_shards).unwrap_or(1);
            client
                .execute(
                    &statement,
                    &[
                        &channel,
                        &info.client,
                        &info.user,
                        &Data::non_empty(&info.conn_info),
                        &Data::non_empty(&info.chan_info),
                        &shards,
                    ],
                )
                .await
                .map_err(EngineError::caused_by)?;
            Ok(())
        })
    }

    fn history<'a>(
        &'a self,
        channel: &'a str,
        stream: &'a StreamOptions,
        filter: &'a HistoryFilter,
    ) -> BoxFuture<'a, Result<HistoryResult, EngineError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(pool_err)?;
            let (top, epoch, size, ttl) = self.meta(&client, channel, stream).await?;
            let mut result = HistoryResult {
                publications: Vec::new(),
                offset: top,
                epoch,
            };
            let Some((first, last, count)) = window(top, size, filter) else {
                return Ok(result);
            };
            let sql = if filter.reverse {
                &self.sql.history_desc
            } else {
                &self.sql.history_asc
            };
            let statement = client
                .prepare_cached(sql)
                .await
                .map_err(EngineError::caused_by)?;
            let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            let rows = client
                .query(
                    &statement,
                    &[
                        &channel,
                        &result.epoch,
                        &as_i64(first),
                        &as_i64(last),
                        &ttl,
                        &as_i64(count),
                    ],
                )
                .await
                .map_err(EngineError::caused_by)?;
            for row in &rows {
                let (publication, _, _) =
                    codec::row_publication(row, 0).map_err(EngineError::caused_by)?;
                result.publications.push(publication);
            }
            Ok(result)
        })
    }

    fn remove_history<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(pool_err)?;
            let statement = client
                .prepare_cached(&self.sql.remove_history)
                .await
                .map_err(EngineError::caused_by)?;
            let shards = i32::try_from(self.config.num_shards).unwrap_or(1);
            client
                .execute(&statement, &[&channel, &shards])
                .await
                .map_err(EngineError::caused_by)?;
            Ok(())
        })
    }

    fn subscribe<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        // Every node reads every row: subscribing is remembering the channel, so that its
        // subscribers learn about a lost connection, and waiting (briefly) for the reading
        // connection, so that a publication after the subscribe is delivered live.
        self.subscribed.lock().insert(channel.to_owned());
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + SUBSCRIBE_WAIT_DOWN;
            while !self.up.load(std::sync::atomic::Ordering::Acquire) {
                if tokio::time::Instant::now() >= deadline {
                    return Err(EngineError::new("postgres is not connected"));
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Ok(())
        })
    }

    fn unsubscribe<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        let mut subscribed = self.subscribed.lock();
        if !self.events.has_subscribers(channel) {
            subscribed.remove(channel);
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

/// How long a subscribe waits for the reading connection while it is down.
const SUBSCRIBE_WAIT_DOWN: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    fn f(since: Option<u64>, limit: Option<usize>, reverse: bool) -> HistoryFilter {
        HistoryFilter {
            since,
            limit,
            reverse,
        }
    }

    #[test]
    fn windows_follow_size_since_and_direction() {
        assert_eq!(window(10, 5, &f(None, None, false)), Some((6, 10, 5)));
        assert_eq!(
            window(10, 0, &f(Some(7), None, false)),
            Some((8, 10, u64::MAX))
        );
        assert_eq!(window(10, 5, &f(Some(2), Some(2), false)), Some((6, 10, 2)));
        assert_eq!(window(10, 5, &f(Some(10), None, false)), None);
        assert_eq!(window(10, 5, &f(Some(u64::MAX), None, false)), None);
        assert_eq!(window(10, 5, &f(None, Some(0), false)), None);
        assert_eq!(window(10, 100, &f(Some(4), Some(2), true)), Some((1, 3, 2)));
        assert_eq!(window(10, 100, &f(Some(1), None, true)), None);
        assert_eq!(window(10, 100, &f(Some(0), None, true)), None);
        assert_eq!(window(0, 100, &f(None, None, false)), None);
    }

    #[test]
    fn intervals_are_null_when_unset() {
        assert_eq!(millis(Duration::ZERO), None);
        assert_eq!(millis(Duration::from_secs(2)), Some(2000));
        assert_eq!(millis(Duration::from_micros(10)), Some(1));
    }
}
