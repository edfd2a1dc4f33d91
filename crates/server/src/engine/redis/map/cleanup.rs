//! Key expiry of the Redis map broker: every node runs a cleanup task per shard that takes
//! the channels whose earliest key expiry has passed (a per-shard zset, scored in Redis
//! time), removes their expired keys through the publish script (which removes a key only if
//! it is still expired, so concurrent cleaners deliver each removal once) and schedules the
//! channel again at its next expiry.

use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::{Script, Value};
use tokio_util::sync::CancellationToken;

use super::scripts::{MAP_DUE_LUA, MAP_UNSCHEDULE_LUA};
use super::{RedisMapBroker, decode_options};
use crate::engine::EngineError;
use crate::engine::map::MapUpdate;
use crate::engine::redis::{err, value_string, value_u64};

/// Channels handled per shard and round.
const CHANNELS_PER_ROUND: usize = 100;

/// Runs the cleanup of every shard every `interval` until `shutdown` (or until the broker is
/// dropped).
pub(super) fn spawn(
    broker: &Arc<RedisMapBroker>,
    interval: Duration,
    batch: usize,
    shutdown: &CancellationToken,
) {
    let weak: Weak<RedisMapBroker> = Arc::downgrade(broker);
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let due = Script::new(MAP_DUE_LUA);
        let unschedule = Script::new(MAP_UNSCHEDULE_LUA);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    let Some(broker) = weak.upgrade() else { return };
                    for index in 0..broker.engine.shards.len() {
                        if let Err(e) = broker.cleanup_shard(index, &due, &unschedule, batch).await {
                            // Redis away: the next round tries again.
                            tracing::debug!("map key cleanup failed: {e}");
                        }
                    }
                }
            }
        }
    });
}

impl RedisMapBroker {
    /// One cleanup round on shard `index`.
    async fn cleanup_shard(
        &self,
        index: usize,
        due: &Script,
        unschedule: &Script,
        batch: usize,
    ) -> Result<(), EngineError> {
        let mut conn = self.engine.shards[index].conn.clone();
        let due_key = self.due_key();
        let (_, channels) = due_members(due, &due_key, CHANNELS_PER_ROUND, &mut conn).await?;
        for channel in channels {
            self.cleanup_channel(&channel, due, unschedule, batch)
                .await?;
        }
        Ok(())
    }

    /// Removes a channel's expired keys (delivering their removals) and schedules its next
    /// expiry.
    async fn cleanup_channel(
        &self,
        channel: &str,
        due: &Script,
        unschedule: &Script,
        batch: usize,
    ) -> Result<(), EngineError> {
        let keys = self.keys(channel);
        let mut conn = self.conn(channel);
        let options: Option<String> = redis::cmd("HGET")
            .arg(&keys.meta)
            .arg("o")
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        let options = decode_options(options.as_deref().unwrap_or_default());
        let (now, expired) = due_members(due, &keys.expire, batch, &mut conn).await?;
        for key in expired {
            let update = MapUpdate {
                key,
                removed: true,
                ..Default::default()
            };
            self.change(channel, options, update, true).await?;
        }
        let next: Vec<(String, u64)> = redis::cmd("ZRANGE")
            .arg(&keys.expire)
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        let mut shard = self.engine.shard(channel).conn.clone();
        match next.first() {
            Some((_, at)) => redis::cmd("ZADD")
                .arg(self.due_key())
                .arg(*at)
                .arg(channel)
                .query_async::<()>(&mut shard)
                .await
                .map_err(err),
            None => unschedule
                .key(self.due_key())
                .arg(channel)
                .arg(now)
                .invoke_async::<()>(&mut shard)
                .await
                .map_err(err),
        }
    }
}

/// The members of `key` (a zset scored in ms) due now, at most `count`, and Redis' time.
async fn due_members(
    script: &Script,
    key: &str,
    count: usize,
    conn: &mut crate::engine::redis::conn::Link,
) -> Result<(u64, Vec<String>), EngineError> {
    let value: Value = script
        .key(key)
        .arg(count)
        .invoke_async(conn)
        .await
        .map_err(err)?;
    let Value::Array(parts) = value else {
        return Err(EngineError::new("unexpected map cleanup reply"));
    };
    let now = parts.first().map_or(0, value_u64);
    let members = match parts.get(1) {
        Some(Value::Array(members)) => members.iter().map(value_string).collect(),
        _ => Vec::new(),
    };
    Ok((now, members))
}
