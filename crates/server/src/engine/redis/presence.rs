//! Presence in Redis: a hash (client to info) and a zset (client to expiry) per channel,
//! refreshed by the node that owns the entries.

use std::collections::HashMap;

use bytes::Bytes;
use gyre_protocol::ClientInfo;
use prost::Message as _;

use super::*;
use crate::engine::{BoxFuture, EngineError, PresenceManager};

impl RedisEngine {
    /// Re-adds this node's presence entries (one pipeline per channel), so they outlive
    /// the TTL while the node lives and expire when it dies.
    pub(super) async fn refresh_presence(&self) {
        let ttl = self.presence_ttl.as_secs();
        for (channel, infos) in self.local_presence.all() {
            let (expire_key, data_key) = self.presence_keys(&channel);
            let expire_at = crate::time::unix_secs() + ttl;
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

    pub(super) async fn presence_add(
        &self,
        channel: &str,
        info: &ClientInfo,
    ) -> Result<(), EngineError> {
        let (expire_key, data_key) = self.presence_keys(channel);
        let ttl = self.presence_ttl.as_secs();
        let mut conn = self.shard(channel).conn.clone();
        redis::pipe()
            .atomic()
            .zadd(&expire_key, &info.client, crate::time::unix_secs() + ttl)
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
                .arg(crate::time::unix_secs())
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
