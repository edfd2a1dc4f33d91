//! Shared poll subscriptions: the top-level `shared_poll` section (the key that signs track
//! requests) and the per-namespace `shared_poll` options (which proxy is polled, how often, in
//! which mode, with which limits).

use serde::{Deserialize, Serialize};

use crate::Duration;
use crate::values::{SharedPollMode, SubscriptionType};

/// The top-level `shared_poll` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SharedPollConfig {
    /// HMAC-SHA256 key that track signatures are verified with (required when a namespace is
    /// of type `shared_poll`).
    pub hmac_secret_key: String,
    /// Previous key, still accepted during a key rotation.
    pub hmac_previous_secret_key: String,
    /// Unix time after which signatures issued with the previous key are refused (0: no limit).
    pub hmac_previous_secret_key_valid_until: i64,
    /// How many backend refresh calls the node makes at once over all channels (0: 64).
    pub concurrency_limit: usize,
}

/// Per-namespace `shared_poll` options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SharedPollOptions {
    /// Named proxy (`proxies[]`) that answers `shared_poll_refresh` requests ("" or
    /// "default": `channel.proxy.shared_poll_refresh`).
    pub proxy_name: String,
    /// How often the tracked keys of a channel are polled (default 10s).
    pub refresh_interval: Duration,
    /// Most keys per backend request (0: 1000).
    pub refresh_batch_size: usize,
    /// Most keys one connection may track in one channel (0: 5000).
    pub max_keys_per_connection: usize,
    /// Versioned or versionless backend.
    pub mode: SharedPollMode,
    /// How long a channel's poller keeps running after its last key is untracked (default 1s).
    pub channel_shutdown_delay: Duration,
    /// Extra time a key stays tracked after its signature expired, for the client to renew
    /// it with a new track (default 25s).
    pub track_expired_extra_delay: Option<Duration>,
    /// Allow the `shared_poll_publish` API method (versioned mode only).
    pub publish_enabled: bool,
}

impl Default for SharedPollOptions {
    fn default() -> Self {
        SharedPollOptions {
            proxy_name: String::new(),
            refresh_interval: Duration::from_secs(10),
            refresh_batch_size: 0,
            max_keys_per_connection: 0,
            mode: SharedPollMode::Versionless,
            channel_shutdown_delay: Duration::from_secs(1),
            track_expired_extra_delay: None,
            publish_enabled: false,
        }
    }
}

impl SharedPollOptions {
    /// How long a tracking outlives its signature's expiry.
    pub fn track_expired_extra_delay(&self) -> std::time::Duration {
        self.track_expired_extra_delay
            .map_or(std::time::Duration::from_secs(25), |d| d.0)
    }

    /// Keys per backend request.
    pub fn batch_size(&self) -> usize {
        if self.refresh_batch_size == 0 {
            1000
        } else {
            self.refresh_batch_size
        }
    }

    /// Keys one connection may track in one channel.
    pub fn max_keys(&self) -> usize {
        if self.max_keys_per_connection == 0 {
            5000
        } else {
            self.max_keys_per_connection
        }
    }
}

impl crate::Config {
    /// The proxy a namespace's `shared_poll.proxy_name` refers to ("" or "default":
    /// `channel.proxy.shared_poll_refresh`), `None` when there is none.
    pub fn shared_poll_proxy(&self, name: &str) -> Option<&crate::ProxyOptions> {
        if crate::is_default_name(name) {
            let p = &self.channel.proxy.shared_poll_refresh;
            return (!p.endpoint.is_empty()).then_some(p);
        }
        self.proxies
            .iter()
            .find(|n| n.name == name)
            .map(|n| &n.options)
    }

    /// Every shared poll configuration error as `(key, reason)`.
    pub(crate) fn shared_poll_violations(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (base, o) in self.channel_options_by_key() {
            if o.subscription_type != SubscriptionType::SharedPoll {
                continue;
            }
            let p = &o.shared_poll;
            let key = |field: &str| format!("{base}.shared_poll.{field}");
            if self.shared_poll.hmac_secret_key.is_empty() {
                out.push((
                    "shared_poll.hmac_secret_key".to_owned(),
                    "required when a namespace has subscription_type \"shared_poll\"".to_owned(),
                ));
            }
            if !p.mode.is_known() {
                out.push((
                    key("mode"),
                    format!(
                        "unknown mode {:?} (expected \"versioned\" or \"versionless\")",
                        p.mode.as_str()
                    ),
                ));
            }
            if self.shared_poll_proxy(&p.proxy_name).is_none() {
                let reason = if crate::is_default_name(&p.proxy_name) {
                    "no proxy named and channel.proxy.shared_poll_refresh has no endpoint"
                        .to_owned()
                } else {
                    format!("unknown proxy \"{}\"", p.proxy_name)
                };
                out.push((key("proxy_name"), reason));
            }
            if p.refresh_interval.0.is_zero() {
                out.push((key("refresh_interval"), "must be positive".to_owned()));
            }
            if p.publish_enabled && p.mode != SharedPollMode::Versioned {
                out.push((
                    key("publish_enabled"),
                    "needs mode \"versioned\" (publications carry explicit versions)".to_owned(),
                ));
            }
        }
        out.dedup();
        out
    }

    /// Warnings about subscription types and shared poll options Gyre parses but does not serve
    /// yet, each naming its key.
    pub(crate) fn subscription_type_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, o) in self.channel_options_by_key() {
            match o.subscription_type {
                SubscriptionType::Stream
                | SubscriptionType::SharedPoll
                | SubscriptionType::Map
                | SubscriptionType::MapClients => {}
                _ => out.push(format!(
                    "key \"{key}.subscription_type\": {:?} subscriptions are not implemented yet; subscribing to these channels fails with error 108 (not available)",
                    o.subscription_type.as_str()
                )),
            }
            if o.subscription_type == SubscriptionType::SharedPoll
                && o.proxy.subscribe_proxy_enabled
            {
                out.push(format!(
                    "key \"{key}.subscribe_proxy_enabled\" is not implemented for shared_poll channels; subscribing without a token fails with error 108 (not available)"
                ));
            }
        }
        out
    }
}
