//! The `channel` section: channel name rules, namespaces and per-namespace channel options.

use serde::{Deserialize, Serialize};

use crate::Duration;
use crate::values::{DataFormat, DeltaType, RecoveryMode, SubscriptionType};

/// Options applied to channels of one namespace (or to channels without a namespace).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelOptions {
    /// Keep presence information for channels.
    pub presence: bool,
    /// Emit join/leave messages when clients subscribe/unsubscribe.
    pub join_leave: bool,
    /// Push join/leave messages to all subscribers, not only those that asked for them.
    pub force_push_join_leave: bool,
    /// Number of publications kept in history (0 disables history).
    pub history_size: u32,
    /// How long history is kept after the last publication (0 disables history).
    pub history_ttl: Duration,
    /// Lifetime of stream meta information; `None` uses `channel.history_meta_ttl`.
    pub history_meta_ttl: Option<Duration>,
    /// Always enable positioning for subscriptions.
    pub force_positioning: bool,
    /// Let clients ask for positioning.
    pub allow_positioning: bool,
    /// Always enable recovery for subscriptions.
    pub force_recovery: bool,
    /// Let clients ask for recovery.
    pub allow_recovery: bool,
    /// Recovery mode: "stream" (default) or "cache".
    pub force_recovery_mode: RecoveryMode,
    /// Recover every subscription from the cache (the latest publication) on each
    /// (re)subscribe, even when the client did not ask (needs `force_recovery` and
    /// `force_recovery_mode: cache`).
    pub auto_cache_recover: bool,
    /// Delta compression types clients may negotiate (only "fossil" exists).
    pub allowed_delta_types: Vec<DeltaType>,
    /// Publish with delta compression by default.
    pub delta_publish: bool,
    /// Allow any authenticated client to subscribe without a token.
    pub allow_subscribe_for_client: bool,
    /// Extend `allow_subscribe_for_client` to anonymous users.
    pub allow_subscribe_for_anonymous: bool,
    /// Allow any authenticated client to publish.
    pub allow_publish_for_client: bool,
    /// Allow subscribers of a channel to publish into it.
    pub allow_publish_for_subscriber: bool,
    /// Extend publish permissions to anonymous users.
    pub allow_publish_for_anonymous: bool,
    /// Allow any authenticated client to call presence.
    pub allow_presence_for_client: bool,
    /// Allow subscribers of a channel to call presence.
    pub allow_presence_for_subscriber: bool,
    /// Extend presence permissions to anonymous users.
    pub allow_presence_for_anonymous: bool,
    /// Allow any authenticated client to call history.
    pub allow_history_for_client: bool,
    /// Allow subscribers of a channel to call history.
    pub allow_history_for_subscriber: bool,
    /// Extend history permissions to anonymous users.
    pub allow_history_for_anonymous: bool,
    /// Allow subscribing to `...#user1,user2` channels by the listed users without a token.
    pub allow_user_limited_channels: bool,
    /// Let clients send a tags filter on subscribe, so they receive only publications whose
    /// tags match it.
    pub allow_tags_filter: bool,
    /// Regular expression the channel name (after the namespace) must match.
    pub channel_regex: String,
    /// Publication data format: "", "json", "json_object" or "binary".
    pub publication_data_format: DataFormat,
    /// What a subscription to these channels is: a stream (default), a map or a shared poll.
    pub subscription_type: SubscriptionType,
    /// Map subscription options (`map.mode`, `map.key_ttl`, ...).
    pub map: crate::MapOptions,
    /// When set, subscribers of these channels are listed as keys (their client ids) of the
    /// map_clients channel named by this prefix followed by the channel.
    pub map_clients_presence_channel_prefix: String,
    /// How long the SDK debounces client publications to these channels (0: none).
    pub client_publish_debounce_interval: Duration,
    /// Options of `shared_poll` subscriptions (used when `subscription_type` is `shared_poll`).
    pub shared_poll: crate::SharedPollOptions,
    /// Proxy switches (`subscribe_proxy_enabled`, `publish_proxy_name`, ...).
    #[serde(flatten)]
    pub proxy: crate::NamespaceProxyOptions,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            presence: false,
            join_leave: false,
            force_push_join_leave: false,
            history_size: 0,
            history_ttl: Duration::ZERO,
            history_meta_ttl: None,
            force_positioning: false,
            allow_positioning: false,
            force_recovery: false,
            allow_recovery: false,
            force_recovery_mode: RecoveryMode::Stream,
            auto_cache_recover: false,
            allowed_delta_types: Vec::new(),
            delta_publish: false,
            allow_subscribe_for_client: false,
            allow_subscribe_for_anonymous: false,
            allow_publish_for_client: false,
            allow_publish_for_subscriber: false,
            allow_publish_for_anonymous: false,
            allow_presence_for_client: false,
            allow_presence_for_subscriber: false,
            allow_presence_for_anonymous: false,
            allow_history_for_client: false,
            allow_history_for_subscriber: false,
            allow_history_for_anonymous: false,
            allow_user_limited_channels: false,
            allow_tags_filter: false,
            channel_regex: String::new(),
            publication_data_format: DataFormat::Any,
            subscription_type: SubscriptionType::Stream,
            map: crate::MapOptions::default(),
            map_clients_presence_channel_prefix: String::new(),
            client_publish_debounce_interval: Duration::ZERO,
            shared_poll: crate::SharedPollOptions::default(),
            proxy: crate::NamespaceProxyOptions::default(),
        }
    }
}

impl ChannelOptions {
    /// True when channels keep history: `history_size > 0` and `history_ttl > 0`.
    pub fn history_enabled(&self) -> bool {
        self.history_size > 0 && !self.history_ttl.is_zero()
    }

    /// True when channels recover from the latest publication only (`force_recovery_mode`
    /// "cache").
    pub fn cache_recovery(&self) -> bool {
        self.force_recovery_mode == RecoveryMode::Cache
    }

    /// True when the delta type is listed in `allowed_delta_types`.
    pub fn delta_allowed(&self, delta_type: &DeltaType) -> bool {
        self.allowed_delta_types.contains(delta_type)
    }
}

/// A named namespace: `name` plus channel options, flattened in the file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Namespace {
    /// Namespace name (must match `^[-a-zA-Z0-9_.]{2,}$`).
    pub name: String,
    /// Options for channels in this namespace.
    #[serde(flatten)]
    pub options: ChannelOptions,
}

/// The `channel` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelConfig {
    /// Default channel proxies (`channel.proxy.subscribe`, ...).
    pub proxy: crate::ChannelProxyConfig,
    /// Options for channels without a namespace.
    pub without_namespace: ChannelOptions,
    /// Configured namespaces.
    pub namespaces: Vec<Namespace>,
    /// Default lifetime of stream meta information (epoch and top offset).
    pub history_meta_ttl: Duration,
    /// Default publication data format for namespaces that do not set one.
    pub publication_data_format: DataFormat,
    /// Maximum channel name length in bytes.
    pub max_length: usize,
    /// Prefix of private channels (subscription requires a token).
    pub private_prefix: String,
    /// Separator between namespace name and the rest of the channel.
    pub namespace_boundary: String,
    /// Separator before the list of users in user-limited channels.
    pub user_boundary: String,
    /// Separator between user ids in user-limited channels.
    pub user_separator: String,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            proxy: crate::ChannelProxyConfig::default(),
            without_namespace: ChannelOptions::default(),
            namespaces: Vec::new(),
            history_meta_ttl: Duration::from_secs(720 * 3600),
            publication_data_format: DataFormat::Any,
            max_length: 255,
            private_prefix: "$".to_owned(),
            namespace_boundary: ":".to_owned(),
            user_boundary: "#".to_owned(),
            user_separator: ",".to_owned(),
        }
    }
}
