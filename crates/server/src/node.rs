//! The node: the single façade for channel-level operations (publish, history, presence,
//! join/leave) over the hub and the engine, plus the server's configuration and token verifiers.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gyre_auth::{TokenVerifier, VerifierOptions};
use gyre_config::{ChannelOptions, Config, ResolvedChannel, TokenOptions};
use gyre_protocol::{ClientInfo, ErrorCode, Publication};
use tokio_util::sync::CancellationToken;

use crate::engine::memory::{IdempotencyCache, MemoryStreams};
use crate::engine::presence::MemoryPresence;
use crate::engine::{HistoryFilter, HistoryResult, StreamOptions};
use crate::hub::Hub;
use crate::pinger::Pinger;

/// Version string sent to clients in connect and refresh results.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " gyre");

/// What to do with a publication besides delivering it.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Do not save it in history.
    pub skip_history: bool,
    /// Allow fossil patches for delta subscribers.
    pub delta: bool,
    /// Publication tags.
    pub tags: std::collections::HashMap<String, String>,
    /// Publisher info (client publications).
    pub info: Option<ClientInfo>,
    /// Idempotency key: a repeated publication with the same key within five minutes is not
    /// published again and returns the first result.
    pub idempotency_key: Option<String>,
}

/// Where a publication landed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishResult {
    /// Offset (0 without history).
    pub offset: u64,
    /// Epoch ("" without history).
    pub epoch: String,
}

/// The node: configuration, registry and engine.
#[derive(Debug)]
pub struct Node {
    /// The loaded configuration.
    pub config: Config,
    /// Local sessions and subscriptions.
    pub hub: Hub,
    /// Streams (history).
    pub streams: MemoryStreams,
    /// Presence.
    pub presence: MemoryPresence,
    /// Results of recent publications made with an idempotency key.
    pub idempotency: IdempotencyCache,
    /// Connection token verifier, when a key is configured.
    pub connect_verifier: Option<TokenVerifier>,
    /// Subscription token verifier (the connection one unless `subscription_token.enabled`).
    pub subscribe_verifier: Option<TokenVerifier>,
    /// Shared ping timer.
    pub pinger: Pinger,
    /// Cancelled at shutdown.
    pub shutdown: CancellationToken,
    /// Open WebSocket connections (connected or not), for `client.connection_limit`.
    pub open_connections: std::sync::atomic::AtomicUsize,
    /// Tracks connection tasks, so shutdown can wait for them.
    pub tasks: tokio_util::task::TaskTracker,
    /// Node id.
    pub id: String,
    /// Node name.
    pub name: String,
    /// When the node started.
    pub started: std::time::Instant,
}

fn verifier_options(token: &TokenOptions, skip_signature_verify: bool) -> Option<VerifierOptions> {
    let has_key = !token.hmac_secret_key.is_empty()
        || !token.rsa_public_key.is_empty()
        || !token.ecdsa_public_key.is_empty();
    (has_key || skip_signature_verify).then(|| VerifierOptions {
        hmac_secret_key: token.hmac_secret_key.clone(),
        hmac_previous_secret_key: token.hmac_previous_secret_key.clone(),
        hmac_previous_secret_key_valid_until: token.hmac_previous_secret_key_valid_until,
        rsa_public_key: token.rsa_public_key.clone(),
        ecdsa_public_key: token.ecdsa_public_key.clone(),
        audience: token.audience.clone(),
        audience_regex: token.audience_regex.clone(),
        issuer: token.issuer.clone(),
        issuer_regex: token.issuer_regex.clone(),
        user_id_claim: token.user_id_claim.clone(),
        skip_signature_verify,
    })
}

/// Current unix time in seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Node {
    /// Builds a node from a validated configuration.
    pub fn new(
        config: Config,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, gyre_auth::AuthError> {
        let skip = config.client.insecure_skip_token_signature_verify;
        let connect_verifier = verifier_options(&config.client.token, skip)
            .map(TokenVerifier::new)
            .transpose()?;
        let subscribe_verifier = if config.client.subscription_token.enabled {
            verifier_options(&config.client.subscription_token.token, skip)
                .map(TokenVerifier::new)
                .transpose()?
        } else {
            connect_verifier.clone()
        };
        let ping = config.client.ping_interval.0;
        let pong = config.client.pong_timeout.0;
        let name = if config.node.name.is_empty() {
            hostname()
        } else {
            config.node.name.clone()
        };
        Ok(Arc::new(Self {
            hub: Hub::default(),
            streams: MemoryStreams::default(),
            presence: MemoryPresence::default(),
            idempotency: IdempotencyCache::default(),
            connect_verifier,
            subscribe_verifier,
            pinger: Pinger::new(ping, pong),
            shutdown,
            open_connections: std::sync::atomic::AtomicUsize::new(0),
            tasks: tokio_util::task::TaskTracker::new(),
            id: uuid::Uuid::new_v4().to_string(),
            name,
            started: std::time::Instant::now(),
            config,
        }))
    }

    /// Resolves a channel's namespace options and checks its name: an unknown namespace is
    /// error 102; a name that is too long, not ASCII or not matching `channel_regex` is 107.
    pub fn channel(&self, channel: &str) -> Result<ResolvedChannel<'_>, ErrorCode> {
        self.config.check_channel(channel).map_err(|e| match e {
            gyre_config::ChannelError::UnknownNamespace(_) => ErrorCode::UnknownChannel,
            _ => ErrorCode::BadRequest,
        })
    }

    /// The stream options of a channel.
    pub fn stream_options(resolved: &ResolvedChannel<'_>) -> StreamOptions {
        let o: &ChannelOptions = resolved.options;
        StreamOptions {
            history_size: o.history_size as usize,
            history_ttl: o.history_ttl.0,
            meta_ttl: resolved.history_meta_ttl.0.max(Duration::from_secs(1)),
        }
    }

    /// Publishes into a channel: appends to its stream (when it keeps history) and delivers to
    /// local subscribers, atomically per channel.
    pub fn publish(
        &self,
        channel: &str,
        stream: &StreamOptions,
        data: Bytes,
        options: PublishOptions,
    ) -> PublishResult {
        let publication = Publication {
            data,
            info: options.info,
            tags: options.tags,
            ..Default::default()
        };
        let mut lock = self.streams.lock(channel);
        if let Some((offset, epoch)) = options
            .idempotency_key
            .as_ref()
            .and_then(|key| self.idempotency.get(channel, key))
        {
            return PublishResult { offset, epoch };
        }
        let (publication, epoch) = if stream.enabled() && !options.skip_history {
            lock.append(publication, stream)
        } else {
            (publication, String::new())
        };
        self.hub
            .broadcast_publication(channel, &publication, options.delta);
        if let Some(key) = &options.idempotency_key {
            self.idempotency
                .put(channel, key, publication.offset, epoch.clone());
        }
        drop(lock);
        PublishResult {
            offset: publication.offset,
            epoch,
        }
    }

    /// Reads a channel's history.
    pub fn history(
        &self,
        channel: &str,
        stream: &StreamOptions,
        filter: &HistoryFilter,
    ) -> HistoryResult {
        self.streams.lock(channel).read(filter, stream)
    }

    /// Forgets a channel's history.
    pub fn remove_history(&self, channel: &str) {
        self.streams.lock(channel).remove_history();
    }

    /// Adds presence and, when asked, announces the join.
    pub fn join(&self, channel: &str, info: &ClientInfo, presence: bool, announce: bool) {
        if presence {
            self.presence.add(channel, info.clone());
        }
        if announce {
            self.hub.broadcast_join_leave(channel, info, true);
        }
    }

    /// Removes presence and, when asked, announces the leave.
    pub fn leave(&self, channel: &str, info: &ClientInfo, presence: bool, announce: bool) {
        if presence {
            self.presence.remove(channel, &info.client);
        }
        if announce {
            self.hub.broadcast_join_leave(channel, info, false);
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "gyre".to_owned())
}
