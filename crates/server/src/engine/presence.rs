//! In-memory presence: who is subscribed to each channel, with their client info.

use std::collections::{HashMap, HashSet};

use gyre_protocol::ClientInfo;
use parking_lot::Mutex;

use crate::sharded::Sharded;

const SHARDS: usize = 16;

/// One shard: channel to client id to info.
type Shard = HashMap<String, HashMap<String, ClientInfo>>;

/// Presence of every channel on this node.
#[derive(Debug)]
pub(crate) struct MemoryPresence {
    shards: Sharded<Shard>,
}

impl Default for MemoryPresence {
    fn default() -> Self {
        Self {
            shards: Sharded::new(SHARDS),
        }
    }
}

impl MemoryPresence {
    fn shard(&self, channel: &str) -> &Mutex<Shard> {
        self.shards.get(channel)
    }

    /// Adds or updates a client's presence in a channel.
    pub(crate) fn add(&self, channel: &str, info: ClientInfo) {
        self.shard(channel)
            .lock()
            .entry(channel.to_owned())
            .or_default()
            .insert(info.client.clone(), info);
    }

    /// Removes a client's presence from a channel.
    pub(crate) fn remove(&self, channel: &str, client: &str) {
        let mut shard = self.shard(channel).lock();
        if let Some(map) = shard.get_mut(channel) {
            map.remove(client);
            if map.is_empty() {
                shard.remove(channel);
            }
        }
    }

    /// Everyone present in a channel.
    pub(crate) fn presence(&self, channel: &str) -> HashMap<String, ClientInfo> {
        self.shard(channel)
            .lock()
            .get(channel)
            .cloned()
            .unwrap_or_default()
    }

    /// Every channel with its entries.
    pub(crate) fn all(&self) -> Vec<(String, Vec<ClientInfo>)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            for (channel, map) in shard.lock().iter() {
                out.push((channel.clone(), map.values().cloned().collect()));
            }
        }
        out
    }

    /// Number of clients and distinct users present in a channel.
    pub(crate) fn stats(&self, channel: &str) -> (u32, u32) {
        let shard = self.shard(channel).lock();
        let Some(map) = shard.get(channel) else {
            return (0, 0);
        };
        let users: HashSet<&str> = map.values().map(|i| i.user.as_str()).collect();
        (map.len() as u32, users.len() as u32)
    }
}

impl super::PresenceManager for MemoryPresence {
    fn add<'a>(
        &'a self,
        channel: &'a str,
        info: &'a ClientInfo,
    ) -> super::BoxFuture<'a, Result<(), super::EngineError>> {
        MemoryPresence::add(self, channel, info.clone());
        Box::pin(std::future::ready(Ok(())))
    }

    fn remove<'a>(
        &'a self,
        channel: &'a str,
        client: &'a str,
    ) -> super::BoxFuture<'a, Result<(), super::EngineError>> {
        MemoryPresence::remove(self, channel, client);
        Box::pin(std::future::ready(Ok(())))
    }

    fn presence<'a>(
        &'a self,
        channel: &'a str,
    ) -> super::BoxFuture<'a, Result<HashMap<String, ClientInfo>, super::EngineError>> {
        Box::pin(std::future::ready(Ok(MemoryPresence::presence(
            self, channel,
        ))))
    }

    fn stats<'a>(
        &'a self,
        channel: &'a str,
    ) -> super::BoxFuture<'a, Result<(u32, u32), super::EngineError>> {
        Box::pin(std::future::ready(Ok(MemoryPresence::stats(self, channel))))
    }
}
