//! Map channel services shared by the client protocol and the server API: resolving a map
//! channel, checking keys and publishing or removing them through the map broker.

use std::collections::HashMap;

use base64::Engine as _;
use bytes::Bytes;
use gyre_config::ChannelOptions;
use gyre_protocol::{ClientInfo, ErrorCode};

use super::{Node, ServiceError};
use crate::engine::map::{MapChannelOptions, MapReadError, MapUpdate, MapUpdateResult};

/// Longest map key accepted, in bytes.
pub(crate) const MAX_MAP_KEY_LEN: usize = 1024;

/// A resolved map channel: its namespace options and the broker's view of them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MapChannel<'a> {
    /// The namespace's options.
    pub options: &'a ChannelOptions,
    /// How the broker keeps the channel.
    pub broker: MapChannelOptions,
}

/// A key change asked for by a client or the API.
#[derive(Debug, Clone, Default)]
pub(crate) struct MapChange {
    /// The key.
    pub key: String,
    /// The value (ignored for removals).
    pub data: Bytes,
    /// Remove the key.
    pub removed: bool,
    /// Publisher info.
    pub info: Option<ClientInfo>,
    /// Publication tags.
    pub tags: HashMap<String, String>,
}

/// Checks a map key: present and not oversized (107 otherwise).
pub(crate) fn check_key(key: &str) -> Result<(), ServiceError> {
    if key.is_empty() {
        return Err(ServiceError::bad_request("bad request: key required"));
    }
    if key.len() > MAX_MAP_KEY_LEN {
        return Err(ServiceError::bad_request("bad request: key too long"));
    }
    Ok(())
}

/// A map read error as the protocol's code.
pub(crate) fn read_error(channel: &str, err: MapReadError) -> ErrorCode {
    match err {
        MapReadError::Unrecoverable => ErrorCode::UnrecoverablePosition,
        MapReadError::Engine(err) => {
            tracing::debug!("map read of {channel} failed: {err}");
            ErrorCode::Internal
        }
    }
}

/// Presence keys this node's subscribers hold in map_clients channels, touched before their
/// key TTL runs out so they only expire when the node stops holding them.
#[derive(Debug, Default)]
pub(crate) struct MapKeepAlive {
    held: parking_lot::Mutex<HashMap<(String, String), std::time::Instant>>,
}

impl MapKeepAlive {
    /// Starts holding `key` of `channel`.
    pub(crate) fn hold(&self, channel: &str, key: &str) {
        self.held.lock().insert(
            (channel.to_owned(), key.to_owned()),
            std::time::Instant::now(),
        );
    }

    /// Stops holding `key` of `channel`.
    pub(crate) fn release(&self, channel: &str, key: &str) {
        self.held
            .lock()
            .remove(&(channel.to_owned(), key.to_owned()));
    }

    /// The held keys last touched a third of their TTL ago (`ttl_of` gives a channel's key
    /// TTL), marked as touched now.
    fn due(
        &self,
        now: std::time::Instant,
        ttl_of: impl Fn(&str) -> Option<std::time::Duration>,
    ) -> Vec<(String, String)> {
        let mut held = self.held.lock();
        let mut out = Vec::new();
        for ((channel, key), touched) in held.iter_mut() {
            if let Some(ttl) = ttl_of(channel)
                && now.duration_since(*touched) >= ttl / 3
            {
                *touched = now;
                out.push((channel.clone(), key.clone()));
            }
        }
        out
    }
}

/// Touches the node's held presence keys every second until shutdown (or until the node is
/// dropped).
pub(crate) fn spawn_keepalive(node: &std::sync::Arc<Node>) {
    let weak = std::sync::Arc::downgrade(node);
    let shutdown = node.shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    let Some(node) = weak.upgrade() else { return };
                    let ttl_of = |channel: &str| {
                        node.map_channel(channel).ok().and_then(|t| t.broker.key_ttl)
                    };
                    for (channel, key) in node.map_keepalive.due(std::time::Instant::now(), ttl_of) {
                        let Ok(target) = node.map_channel(&channel) else { continue };
                        if let Err(err) = node.map.touch(&channel, target.broker, &key).await {
                            tracing::debug!("map presence keep-alive in {channel} failed: {err}");
                        }
                    }
                }
            }
        }
    });
}

/// A state page cursor: the last key of the page, base64url encoded (opaque to clients).
pub(crate) fn encode_cursor(after: &str) -> String {
    if after.is_empty() {
        return String::new();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after)
}

/// The key a cursor continues after (`None`: not a cursor).
pub(crate) fn decode_cursor(cursor: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    String::from_utf8(raw).ok().filter(|k| !k.is_empty())
}

impl Node {
    /// Resolves a map channel: unknown namespaces are 102, bad names 107, channels that are
    /// not maps 108.
    pub(crate) fn map_channel(&self, channel: &str) -> Result<MapChannel<'_>, ErrorCode> {
        let resolved = self.channel(channel)?;
        if !resolved.options.subscription_type.is_map() {
            return Err(ErrorCode::NotAvailable);
        }
        Ok(MapChannel {
            options: resolved.options,
            broker: MapChannelOptions::from_config(&resolved.options.map),
        })
    }

    /// Sets or removes a key of a map channel and delivers the change everywhere.
    pub(crate) async fn map_change(
        &self,
        channel: &str,
        change: MapChange,
    ) -> Result<MapUpdateResult, ServiceError> {
        check_key(&change.key)?;
        let target = self.map_channel(channel)?;
        if !change.removed
            && !super::channels::data_format_ok(
                &target.options.publication_data_format,
                &change.data,
            )
        {
            return Err(ServiceError::bad_request(
                "bad request: invalid data format",
            ));
        }
        let update = MapUpdate {
            key: change.key,
            data: change.data,
            removed: change.removed,
            info: change.info,
            tags: change.tags,
            delta: target.options.delta_publish,
        };
        self.map
            .publish(channel, target.broker, update)
            .await
            .map_err(|err| {
                tracing::debug!("map publish to {channel} failed: {err}");
                ErrorCode::Internal.into()
            })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::MapKeepAlive;

    #[test]
    fn held_keys_come_due_every_third_of_their_ttl_until_released() {
        let keep = MapKeepAlive::default();
        keep.hold("who:room", "c1");
        keep.hold("other:x", "c2");
        let ttl = |channel: &str| {
            channel
                .starts_with("who:")
                .then_some(Duration::from_secs(30))
        };
        let now = Instant::now();
        assert!(keep.due(now, ttl).is_empty(), "just held");
        let later = now + Duration::from_secs(10);
        assert_eq!(
            keep.due(later, ttl),
            [("who:room".to_owned(), "c1".to_owned())]
        );
        assert!(
            keep.due(later, ttl).is_empty(),
            "touched again only a third later"
        );
        keep.release("who:room", "c1");
        assert!(keep.due(later + Duration::from_secs(60), ttl).is_empty());
    }
}
