//! The `client` section: connection-level behaviour and token verification settings.

use serde::{Deserialize, Serialize};

use crate::Duration;

/// JWT verification settings (`client.token` and, with `enabled`, `client.subscription_token`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenOptions {
    /// Secret for HS256/HS384/HS512 tokens.
    pub hmac_secret_key: String,
    /// Previous HMAC secret, still accepted until `hmac_previous_secret_key_valid_until`.
    pub hmac_previous_secret_key: String,
    /// Unix timestamp (seconds) until which the previous HMAC secret is accepted.
    pub hmac_previous_secret_key_valid_until: i64,
    /// PEM-encoded RSA public key for RS256/RS384/RS512 tokens.
    pub rsa_public_key: String,
    /// PEM-encoded ECDSA public key for ES256/ES384/ES512 tokens.
    pub ecdsa_public_key: String,
    /// JWKS endpoint URL (may be a template filled from `issuer_regex`/`audience_regex` groups).
    pub jwks_public_endpoint: String,
    /// Required `aud` claim value, if set.
    pub audience: String,
    /// Regular expression the `aud` claim must match, if set.
    pub audience_regex: String,
    /// Required `iss` claim value, if set.
    pub issuer: String,
    /// Regular expression the `iss` claim must match, if set.
    pub issuer_regex: String,
    /// Claim holding the user id (empty means `sub`).
    pub user_id_claim: String,
}

/// `client.subscription_token`: a separate verifier for subscription tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubscriptionTokenOptions {
    /// When false, subscription tokens are verified with `client.token` settings.
    pub enabled: bool,
    /// Verification settings used when `enabled` is true.
    #[serde(flatten)]
    pub token: TokenOptions,
}

/// `client.subscribe_to_user_personal_channel`: automatic personal channel subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PersonalChannelConfig {
    /// Subscribe every authenticated user to its personal channel on connect.
    pub enabled: bool,
    /// Namespace of the personal channel ("" means no namespace).
    pub personal_channel_namespace: String,
    /// Keep only one connection per user (needs presence in that namespace).
    pub single_connection: bool,
}

/// The `client` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientConfig {
    /// Allowed `Origin` header patterns for browser transports (empty: only no-Origin requests).
    /// A single string is accepted too and split on commas/whitespace.
    #[serde(deserialize_with = "crate::de::string_or_vec")]
    pub allowed_origins: Vec<String>,
    /// Connection token verification.
    pub token: TokenOptions,
    /// Connect and refresh proxies.
    pub proxy: crate::ClientProxyConfig,
    /// Subscription token verification.
    pub subscription_token: SubscriptionTokenOptions,
    /// Allow connecting without a token as anonymous user "".
    pub allow_anonymous_connect_without_token: bool,
    /// Reject connection tokens with an empty `sub` (disconnect 3507).
    pub disallow_anonymous_connection_tokens: bool,
    /// Development mode: everything is allowed without tokens.
    pub insecure: bool,
    /// Skip token signature verification (development only).
    pub insecure_skip_token_signature_verify: bool,
    /// Interval between server pings.
    pub ping_interval: Duration,
    /// Time the client has to answer a ping with a pong.
    pub pong_timeout: Duration,
    /// Grace period after connection expiry before disconnecting.
    pub expired_close_delay: Duration,
    /// Grace period after subscription expiry before unsubscribing.
    pub expired_sub_close_delay: Duration,
    /// Close connections that did not send a connect command within this time.
    pub stale_close_delay: Duration,
    /// Maximum number of channels per connection.
    pub channel_limit: usize,
    /// Maximum size in bytes of a connection's outgoing queue.
    pub queue_max_size: usize,
    /// Interval of the per-connection presence/expiry timer.
    pub presence_update_interval: Duration,
    /// Concurrency for processing commands of one connection (0 = sequential).
    pub concurrency: usize,
    /// Interval between stream position checks for positioned subscriptions.
    pub channel_position_check_delay: Duration,
    /// Maximum connections per user per node (0 = unlimited).
    pub user_connection_limit: usize,
    /// Maximum connections per node (0 = unlimited).
    pub connection_limit: usize,
    /// Include server time in connect results.
    pub connect_include_server_time: bool,
    /// Maximum number of publications returned by a history call.
    pub history_max_publication_limit: usize,
    /// Maximum number of publications returned when recovering.
    pub recovery_max_publication_limit: usize,
    /// Automatic personal channel subscription.
    pub subscribe_to_user_personal_channel: PersonalChannelConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            allowed_origins: Vec::new(),
            token: TokenOptions::default(),
            proxy: crate::ClientProxyConfig::default(),
            subscription_token: SubscriptionTokenOptions::default(),
            allow_anonymous_connect_without_token: false,
            disallow_anonymous_connection_tokens: false,
            insecure: false,
            insecure_skip_token_signature_verify: false,
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(8),
            expired_close_delay: Duration::from_secs(25),
            expired_sub_close_delay: Duration::from_secs(25),
            stale_close_delay: Duration::from_secs(10),
            channel_limit: 128,
            queue_max_size: 1_048_576,
            presence_update_interval: Duration::from_secs(27),
            concurrency: 0,
            channel_position_check_delay: Duration::from_secs(40),
            user_connection_limit: 0,
            connection_limit: 0,
            connect_include_server_time: false,
            history_max_publication_limit: 300,
            recovery_max_publication_limit: 300,
            subscribe_to_user_personal_channel: PersonalChannelConfig::default(),
        }
    }
}
