//! Map subscriptions: the namespace `map` options and their checks (the `map_broker` section
//! is in [`crate::map_broker`]).

use serde::{Deserialize, Serialize};

use crate::Duration;
use crate::values::{MapClientKey, MapMode, SubscriptionType};

/// Change stream size of stream-backed modes when `stream_size` is 0.
pub const DEFAULT_MAP_STREAM_SIZE: usize = 100;
/// Change stream TTL of stream-backed modes when `stream_ttl` is 0.
pub const DEFAULT_MAP_STREAM_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// State page size when neither the client nor `default_page_size` says.
pub const DEFAULT_MAP_PAGE_SIZE: usize = 100;
/// Smallest page size when `min_page_size` is 0.
pub const DEFAULT_MAP_MIN_PAGE_SIZE: usize = 100;
/// Largest page size when `max_page_size` is 0.
pub const DEFAULT_MAP_MAX_PAGE_SIZE: usize = 1000;

/// A namespace's `map` section (map, map_clients and map_users subscription types).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MapOptions {
    /// "ephemeral", "recoverable" or "persistent" (required for map namespaces).
    pub mode: MapMode,
    /// How long a key lives after its last update (ephemeral and recoverable; required there).
    pub key_ttl: Duration,
    /// Updates kept in the change stream (stream-backed modes; 0: 100).
    pub stream_size: usize,
    /// How long the change stream is kept after the last update (0: one minute).
    pub stream_ttl: Duration,
    /// How long the stream's epoch and top offset are kept (0: derived from the mode).
    pub meta_ttl: Duration,
    /// The key a client publication writes: "" (the client's), "client_id" or "user_id".
    pub client_key: MapClientKey,
    /// Any authenticated client may publish keys.
    pub allow_publish_for_client: bool,
    /// Subscribers may publish keys.
    pub allow_publish_for_subscriber: bool,
    /// The publish permissions above extend to anonymous clients.
    pub allow_publish_for_anonymous: bool,
    /// Any authenticated client may remove keys.
    pub allow_remove_for_client: bool,
    /// Subscribers may remove keys.
    pub allow_remove_for_subscriber: bool,
    /// The remove permissions above extend to anonymous clients.
    pub allow_remove_for_anonymous: bool,
    /// State page size when the client asks none (0: 100).
    pub default_page_size: usize,
    /// Smallest page size honoured (0: 100).
    pub min_page_size: usize,
    /// Largest page size honoured (0: 1000).
    pub max_page_size: usize,
    /// Most publications a subscriber may catch up on when going live (0: `max_page_size`).
    pub live_transition_max_publication_limit: usize,
}

impl MapOptions {
    /// Whether the mode keeps a change stream (positions, recovery).
    pub fn has_stream(&self) -> bool {
        matches!(self.mode, MapMode::Recoverable | MapMode::Persistent)
    }

    /// Whether keys expire.
    pub fn has_expiry(&self) -> bool {
        matches!(self.mode, MapMode::Ephemeral | MapMode::Recoverable)
    }

    /// The change stream's size (0 without a stream).
    pub fn effective_stream_size(&self) -> usize {
        match (self.has_stream(), self.stream_size) {
            (false, _) => 0,
            (true, 0) => DEFAULT_MAP_STREAM_SIZE,
            (true, n) => n,
        }
    }

    /// The change stream's TTL.
    pub fn effective_stream_ttl(&self) -> std::time::Duration {
        if self.stream_ttl.is_zero() {
            DEFAULT_MAP_STREAM_TTL
        } else {
            self.stream_ttl.get()
        }
    }

    /// How long the epoch and top offset live (`None`: forever).
    pub fn effective_meta_ttl(&self) -> Option<std::time::Duration> {
        if !self.meta_ttl.is_zero() {
            return Some(self.meta_ttl.get());
        }
        match self.mode {
            MapMode::Recoverable => {
                Some((self.effective_stream_ttl() * 10).max(self.key_ttl.get()))
            }
            MapMode::Ephemeral => Some(self.key_ttl.get().max(DEFAULT_MAP_STREAM_TTL)),
            _ => None,
        }
    }

    /// A page size for a client's `limit` (0: the default), within the bounds.
    pub fn page_size(&self, limit: i32) -> usize {
        let or = |v: usize, d: usize| if v == 0 { d } else { v };
        let default = or(self.default_page_size, DEFAULT_MAP_PAGE_SIZE);
        let min = or(self.min_page_size, DEFAULT_MAP_MIN_PAGE_SIZE);
        let max = or(self.max_page_size, DEFAULT_MAP_MAX_PAGE_SIZE).max(min);
        let asked = if limit <= 0 { default } else { limit as usize };
        asked.clamp(min, max)
    }

    /// Most publications a subscriber may catch up on when going live.
    pub fn live_transition_limit(&self) -> usize {
        match (
            self.live_transition_max_publication_limit,
            self.max_page_size,
        ) {
            (0, 0) => DEFAULT_MAP_MAX_PAGE_SIZE,
            (0, max) => max,
            (n, _) => n,
        }
    }
}

impl SubscriptionType {
    /// Whether subscriptions of this type are maps (map, map_clients, map_users).
    pub fn is_map(&self) -> bool {
        matches!(self, Self::Map | Self::MapClients | Self::MapUsers)
    }
}

impl crate::Config {
    /// Every map configuration error as `(key, reason)`.
    pub(crate) fn map_violations(&self) -> Vec<(String, String)> {
        let mut out = self.map_broker_violations();
        let clients_namespaces: Vec<&str> = self
            .channel
            .namespaces
            .iter()
            .filter(|ns| ns.options.subscription_type == SubscriptionType::MapClients)
            .map(|ns| ns.name.as_str())
            .collect();
        let boundary = self.channel.namespace_boundary.as_str();
        for (prefix, o) in self.channel_options_by_key() {
            let key = |field: &str| format!("{prefix}.map.{field}");
            let m = &o.map;
            if !m.mode.is_known() {
                out.push((
                    key("mode"),
                    format!(
                        "unknown map mode {:?} (expected \"ephemeral\", \"recoverable\" or \"persistent\")",
                        m.mode.as_str()
                    ),
                ));
            }
            if !m.client_key.is_known() {
                out.push((
                    key("client_key"),
                    format!(
                        "unknown client key {:?} (expected \"client_id\" or \"user_id\")",
                        m.client_key.as_str()
                    ),
                ));
            }
            let is_map = o.subscription_type.is_map();
            if is_map && m.mode == MapMode::Unset {
                out.push((
                    key("mode"),
                    "required when subscription_type is a map type".into(),
                ));
            }
            if m.has_expiry() && m.key_ttl.is_zero() {
                out.push((
                    key("key_ttl"),
                    format!("required when map.mode is {:?}", m.mode.as_str()),
                ));
            }
            if m.mode == MapMode::Persistent && !m.key_ttl.is_zero() {
                out.push((
                    key("key_ttl"),
                    "must not be set when map.mode is \"persistent\" (entries don't expire)".into(),
                ));
            }
            if m.mode == MapMode::Persistent
                && matches!(
                    o.subscription_type,
                    SubscriptionType::MapClients | SubscriptionType::MapUsers
                )
            {
                out.push((key("mode"), "\"persistent\" is not allowed for map_clients and map_users (presence entries need key_ttl)".into()));
            }
            if m.mode == MapMode::Ephemeral {
                for (field, set) in [
                    ("stream_size", m.stream_size > 0),
                    ("stream_ttl", !m.stream_ttl.is_zero()),
                    ("meta_ttl", !m.meta_ttl.is_zero()),
                ] {
                    if set {
                        out.push((key(field), "must be 0 for map.mode \"ephemeral\"".into()));
                    }
                }
            }
            if m.has_stream()
                && !m.meta_ttl.is_zero()
                && m.meta_ttl.get() < m.effective_stream_ttl()
            {
                out.push((
                    key("meta_ttl"),
                    "must be >= map.stream_ttl (metadata must outlive the stream)".into(),
                ));
            }
            let p = &o.map_clients_presence_channel_prefix;
            if !p.is_empty() {
                let ns = p.strip_suffix(boundary).unwrap_or(p);
                if !clients_namespaces.contains(&ns) {
                    out.push((
                        format!("{prefix}.map_clients_presence_channel_prefix"),
                        format!("{p:?} must name a namespace with subscription_type \"map_clients\" followed by the namespace boundary"),
                    ));
                }
            }
        }
        out
    }

    /// Warnings about map settings parsed but not served.
    pub(crate) fn map_warnings(&self) -> Vec<String> {
        let mut out = self.map_broker_warnings();
        for (key, o) in self.channel_options_by_key() {
            if o.subscription_type.is_map() && o.proxy.subscribe_proxy_enabled {
                out.push(format!(
                    "key \"{key}.subscribe_proxy_enabled\": the subscribe proxy does not authorize map subscriptions yet; map subscribes without a subscription token fail with error 108 (not available)"
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::{ConfigError, Format, load_str};

    fn violations(namespace: &str) -> Vec<String> {
        let text = format!(
            r#"{{"channel":{{"namespaces":[{namespace},{{"name":"who","subscription_type":"map_clients","map":{{"mode":"ephemeral","key_ttl":"60s"}}}}]}}}}"#
        );
        match load_str(&text, Format::Json, &[], &[]) {
            Ok(_) => Vec::new(),
            Err(ConfigError::Validation(v)) => v,
            Err(other) => vec![other.to_string()],
        }
    }

    #[test]
    fn map_options_are_checked_like_upstream() {
        let ok = r#"{"name":"m1","subscription_type":"map","map_clients_presence_channel_prefix":"who:","map":{"mode":"persistent","stream_size":5}}"#;
        assert!(violations(ok).is_empty(), "{:?}", violations(ok));
        for (namespace, key) in [
            (r#"{"name":"m1","subscription_type":"map"}"#, "map.mode"),
            (
                r#"{"name":"m1","subscription_type":"map","map":{"mode":"lasting"}}"#,
                "map.mode",
            ),
            (
                r#"{"name":"m1","subscription_type":"map","map":{"mode":"ephemeral"}}"#,
                "map.key_ttl",
            ),
            (
                r#"{"name":"m1","subscription_type":"map","map":{"mode":"persistent","key_ttl":"5s"}}"#,
                "map.key_ttl",
            ),
            (
                r#"{"name":"m1","subscription_type":"map","map":{"mode":"ephemeral","key_ttl":"5s","stream_size":3}}"#,
                "map.stream_size",
            ),
            (
                r#"{"name":"m1","subscription_type":"map","map":{"mode":"persistent","client_key":"ip"}}"#,
                "map.client_key",
            ),
            (
                r#"{"name":"m1","subscription_type":"map","map_clients_presence_channel_prefix":"nobody:","map":{"mode":"persistent"}}"#,
                "map_clients_presence_channel_prefix",
            ),
        ] {
            let v = violations(namespace);
            assert!(
                v.iter()
                    .any(|m| m.starts_with(&format!("channel.namespaces[0].{key}"))),
                "{namespace}: {v:?}"
            );
        }
    }

    #[test]
    fn page_sizes_and_stream_defaults() {
        let mut m = crate::MapOptions {
            mode: crate::MapMode::Persistent,
            ..Default::default()
        };
        assert_eq!(m.effective_stream_size(), super::DEFAULT_MAP_STREAM_SIZE);
        assert_eq!(m.effective_meta_ttl(), None);
        assert_eq!(m.page_size(0), 100);
        assert_eq!(m.page_size(5), 100, "below min_page_size");
        m.min_page_size = 1;
        assert_eq!(m.page_size(5), 5);
        assert_eq!(m.page_size(5000), 1000);
        assert_eq!(m.live_transition_limit(), 1000);
    }
}
