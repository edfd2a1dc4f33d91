//! The node: the single façade for channel-level operations (publish, history, presence,
//! join/leave) over the hub and the engine, plus the server's configuration and token verifiers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gyre_auth::{TokenVerifier, VerifierOptions};
use gyre_config::{ChannelOptions, Config, ResolvedChannel, TokenOptions};
use gyre_protocol::{ClientInfo, ErrorCode, Publication};
use tokio_util::sync::CancellationToken;

pub(crate) mod channels;
pub(crate) mod cluster;
pub(crate) mod control;
pub(crate) mod events;
pub(crate) mod maps;

pub(crate) use crate::time::unix_now;
pub(crate) use events::NodeEvents;

use crate::engine::{
    Broker, BrokerPublication, ControlBus, HistoryFilter, HistoryResult, PresenceManager,
    StreamOptions,
};
use crate::hub::Hub;
use crate::jwks::JwksSource;
use crate::pinger::Pinger;

/// Version string sent to clients in connect and refresh results.
pub(crate) const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " gyre");

/// What to do with a publication besides delivering it.
#[derive(Debug, Clone, Default)]
pub(crate) struct PublishOptions {
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
    /// Versioned publishing: stale versions are dropped.
    pub version: Option<crate::engine::PublicationVersion>,
}

/// Where a publication landed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PublishResult {
    /// Offset (0 without history).
    pub offset: u64,
    /// Epoch ("" without history).
    pub epoch: String,
}

/// The node: configuration, registry and engine.
#[derive(Debug)]
pub(crate) struct Node {
    /// The loaded configuration.
    pub config: Config,
    /// Local sessions and subscriptions.
    pub hub: Arc<Hub>,
    /// Delivery and streams (history).
    pub broker: Arc<dyn Broker>,
    /// Presence.
    pub presence: Arc<dyn PresenceManager>,
    /// Node-to-node control.
    pub control: Arc<dyn ControlBus>,
    /// Keyed state of map channels.
    pub map: Arc<dyn crate::engine::map::MapBroker>,
    /// Presence keys of local subscribers kept alive in map_clients channels.
    pub map_keepalive: maps::MapKeepAlive,
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
    /// This node's identity, as the engines report to it.
    pub events: Arc<NodeEvents>,
    /// Prometheus metrics (`prometheus.enabled` serves them).
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The keep-alive HTTP client for proxy calls.
    pub(crate) proxy: crate::http_client::HttpClient,
    /// The GRPC channels to `grpc://` proxy backends.
    pub(crate) grpc_proxy: crate::grpc_client::GrpcClients,
    /// Where connection token keys come from, with `client.token.jwks_public_endpoint`.
    pub(crate) connect_jwks: Option<Arc<JwksSource>>,
    /// Where subscription token keys come from (the connection one unless separately set).
    pub(crate) subscribe_jwks: Option<Arc<JwksSource>>,
    /// HTTP-streaming and SSE sessions by session id, for `/emulation`.
    pub(crate) emulation: Arc<crate::emulation::Registry>,
    /// Shared poll channels and their pollers.
    pub(crate) shared_poll: crate::shared_poll::SharedPoll,
}

/// A service error: a code and a message (the server API's error object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceError {
    /// Error code.
    pub code: u32,
    /// Message.
    pub message: String,
}

impl From<ErrorCode> for ServiceError {
    fn from(code: ErrorCode) -> Self {
        Self {
            code: code.code(),
            message: code.message().to_owned(),
        }
    }
}

impl ServiceError {
    /// A bad request (107) with its own message.
    pub(crate) fn bad_request(message: &str) -> Self {
        Self {
            code: ErrorCode::BadRequest.code(),
            message: message.to_owned(),
        }
    }

    /// An unknown method (104).
    pub(crate) fn method_not_found() -> Self {
        Self {
            code: ErrorCode::MethodNotFound.code(),
            message: "method not found".to_owned(),
        }
    }

    /// Whether the same request may succeed later: an internal error (an engine, broker or
    /// other node not reachable, ...) or too many requests. Every other error is the
    /// request's own (bad request, unknown method or channel, ...) and repeats on a retry.
    pub(crate) fn is_temporary(&self) -> bool {
        matches!(
            ErrorCode::from_code(self.code),
            Some(ErrorCode::Internal | ErrorCode::TooManyRequests)
        )
    }
}

fn verifier_options(
    token: &TokenOptions,
    skip_signature_verify: bool,
    jwks: Option<gyre_auth::Jwks>,
) -> Option<VerifierOptions> {
    let has_key = !token.hmac_secret_key.is_empty()
        || !token.rsa_public_key.is_empty()
        || !token.ecdsa_public_key.is_empty()
        || jwks.is_some();
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
        jwks,
    })
}

/// Token verifiers and the JWKS key sets they read (filled by [`crate::jwks::JwksSource`]).
struct Verifiers {
    connect: Option<TokenVerifier>,
    subscribe: Option<TokenVerifier>,
    connect_jwks: Option<(String, gyre_auth::Jwks)>,
    subscribe_jwks: Option<(String, gyre_auth::Jwks)>,
}

fn verifiers(config: &Config) -> Result<Verifiers, gyre_auth::AuthError> {
    let skip = config.client.insecure_skip_token_signature_verify;
    let jwks_of = |token: &TokenOptions| {
        (!token.jwks_public_endpoint.is_empty())
            .then(|| (token.jwks_public_endpoint.clone(), gyre_auth::Jwks::new()))
    };
    let connect_jwks = jwks_of(&config.client.token);
    let connect = verifier_options(
        &config.client.token,
        skip,
        connect_jwks.as_ref().map(|(_, k)| k.clone()),
    )
    .map(TokenVerifier::new)
    .transpose()?;
    let sub = &config.client.subscription_token;
    let (subscribe, subscribe_jwks) = if sub.enabled {
        let jwks = jwks_of(&sub.token);
        let verifier = verifier_options(&sub.token, skip, jwks.as_ref().map(|(_, k)| k.clone()))
            .map(TokenVerifier::new)
            .transpose()?;
        (verifier, jwks)
    } else {
        (connect.clone(), connect_jwks.clone())
    };
    Ok(Verifiers {
        connect,
        subscribe,
        connect_jwks,
        subscribe_jwks,
    })
}

/// The connection and subscription token verifiers a configuration asks for (`None` where no
/// key is configured; subscription tokens use the connection settings unless
/// `client.subscription_token.enabled`).
pub fn token_verifiers(
    config: &Config,
) -> Result<(Option<TokenVerifier>, Option<TokenVerifier>), gyre_auth::AuthError> {
    let v = verifiers(config)?;
    Ok((v.connect, v.subscribe))
}

impl Node {
    /// Builds a node on the memory engine from a validated configuration.
    #[cfg(test)]
    pub(crate) fn new(
        config: Config,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, gyre_auth::AuthError> {
        let events = NodeEvents::new(&config.node.name);
        let engine = Engine::memory(events.clone(), &shutdown);
        Self::with_engine(config, shutdown, events, engine)
    }

    /// Builds a node over an engine reporting to `events`.
    pub(crate) fn with_engine(
        config: Config,
        shutdown: CancellationToken,
        events: Arc<NodeEvents>,
        engine: Engine,
    ) -> Result<Arc<Self>, gyre_auth::AuthError> {
        let Verifiers {
            connect: connect_verifier,
            subscribe: subscribe_verifier,
            connect_jwks,
            subscribe_jwks,
        } = verifiers(&config)?;
        let http = crate::http_client::HttpClient::default();
        let source = |jwks: Option<(String, gyre_auth::Jwks)>| {
            jwks.map(|(endpoint, keys)| {
                let source = JwksSource::new(&endpoint, keys, http.clone());
                let first = source.clone();
                tokio::spawn(async move { first.refresh_for(None).await });
                source
            })
        };
        let connect_jwks = source(connect_jwks);
        // The same endpoint serves both kinds of tokens unless subscription tokens have their own.
        let subscribe_jwks = match (&connect_jwks, config.client.subscription_token.enabled) {
            (Some(shared), false) => Some(shared.clone()),
            _ => source(subscribe_jwks),
        };
        let ping = config.client.ping_interval.0;
        let pong = config.client.pong_timeout.0;
        events.cluster.attach(engine.control.clone());
        let shared_poll = crate::shared_poll::SharedPoll::new(&config, shutdown.clone());
        let _ = events.shared_poll.set(shared_poll.clone());
        let node = Arc::new(Self {
            map: engine.map,
            map_keepalive: maps::MapKeepAlive::default(),
            hub: events.hub.clone(),
            broker: engine.broker,
            presence: engine.presence,
            control: engine.control,
            connect_verifier,
            subscribe_verifier,
            pinger: Pinger::new(ping, pong),
            shutdown,
            open_connections: std::sync::atomic::AtomicUsize::new(0),
            tasks: tokio_util::task::TaskTracker::new(),
            events,
            proxy: http,
            grpc_proxy: crate::grpc_client::GrpcClients::default(),
            connect_jwks,
            subscribe_jwks,
            emulation: Arc::default(),
            metrics: crate::metrics::Metrics::new(VERSION),
            shared_poll,
            config,
        });
        maps::spawn_keepalive(&node);
        Ok(node)
    }

    /// Resolves a channel's namespace options and checks its name: an unknown namespace is
    /// error 102; a name that is too long, not ASCII or not matching `channel_regex` is 107.
    pub(crate) fn channel(&self, channel: &str) -> Result<ResolvedChannel<'_>, ErrorCode> {
        self.config.check_channel(channel).map_err(|e| match e {
            gyre_config::ChannelError::UnknownNamespace(_) => ErrorCode::UnknownChannel,
            _ => ErrorCode::BadRequest,
        })
    }

    /// The stream options of a channel.
    pub(crate) fn stream_options(resolved: &ResolvedChannel<'_>) -> StreamOptions {
        let o: &ChannelOptions = resolved.options;
        StreamOptions {
            history_size: o.history_size as usize,
            history_ttl: o.history_ttl.0,
            meta_ttl: resolved.history_meta_ttl.0.max(Duration::from_secs(1)),
        }
    }

    /// Publishes into a channel: appends to its stream (when it keeps history) and delivers to
    /// the subscribers of every node, atomically per channel.
    pub(crate) async fn publish(
        &self,
        channel: &str,
        stream: &StreamOptions,
        data: Bytes,
        options: PublishOptions,
    ) -> Result<PublishResult, ErrorCode> {
        let publication = Publication {
            data,
            info: options.info,
            tags: options.tags,
            // Carried to subscribers and kept in history, as upstream.
            version: options.version.as_ref().map_or(0, |v| v.version),
            ..Default::default()
        };
        let request = BrokerPublication {
            publication,
            stream: *stream,
            append: stream.enabled() && !options.skip_history,
            delta: options.delta,
            idempotency_key: options.idempotency_key,
            version: options.version.filter(|v| v.version > 0),
        };
        let position = self.broker.publish(channel, request).await.map_err(|err| {
            tracing::debug!("publish to {channel} failed: {err}");
            ErrorCode::from(err)
        })?;
        self.metrics.publication_sent();
        Ok(PublishResult {
            offset: position.offset,
            epoch: position.epoch,
        })
    }

    /// Reads a channel's history.
    pub(crate) async fn history(
        &self,
        channel: &str,
        stream: &StreamOptions,
        filter: &HistoryFilter,
    ) -> Result<HistoryResult, ErrorCode> {
        self.broker
            .history(channel, stream, filter)
            .await
            .map_err(|err| {
                tracing::debug!("history of {channel} failed: {err}");
                ErrorCode::from(err)
            })
    }

    /// Sends an API action on connections to the other nodes (the caller applies it here).
    pub(crate) async fn send_command(
        &self,
        command: &cluster::ControlCommand,
    ) -> Result<(), crate::engine::EngineError> {
        self.events
            .cluster
            .send_command(&self.events, command)
            .await
    }

    /// Asks every other live node a question and returns their answers (see
    /// [`cluster::Cluster::survey`]).
    pub(crate) async fn survey(
        &self,
        op: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<serde_json::Value>, crate::engine::EngineError> {
        self.events.cluster.survey(&self.events, op, body).await
    }

    /// Runs the cluster heartbeats (when the engine's control bus reaches other nodes) until
    /// shutdown.
    pub(crate) fn start_heartbeats(self: &Arc<Self>) {
        if !self.control.shared() {
            return;
        }
        let node = self.clone();
        tokio::spawn(async move {
            node.events
                .cluster
                .heartbeats(&node.events, node.shutdown.clone())
                .await;
        });
    }

    /// Forgets a channel's history.
    pub(crate) async fn remove_history(&self, channel: &str) -> Result<(), ErrorCode> {
        self.broker
            .remove_history(channel)
            .await
            .map_err(ErrorCode::from)
    }

    /// Adds presence and, when asked, announces the join.
    pub(crate) async fn join(
        &self,
        channel: &str,
        info: &ClientInfo,
        presence: bool,
        announce: bool,
    ) {
        if presence && let Err(err) = self.presence.add(channel, info).await {
            tracing::debug!("presence add in {channel} failed: {err}");
        }
        if announce && let Err(err) = self.broker.publish_join_leave(channel, info, true).await {
            tracing::debug!("join in {channel} failed: {err}");
        }
    }

    /// Removes presence and, when asked, announces the leave.
    pub(crate) async fn leave(
        &self,
        channel: &str,
        info: &ClientInfo,
        presence: bool,
        announce: bool,
    ) {
        if presence && let Err(err) = self.presence.remove(channel, &info.client).await {
            tracing::debug!("presence remove in {channel} failed: {err}");
        }
        if announce && let Err(err) = self.broker.publish_join_leave(channel, info, false).await {
            tracing::debug!("leave in {channel} failed: {err}");
        }
    }

    /// Removes a local subscriber and stops receiving the channel (from the map broker for
    /// map channels) when it was the last one.
    pub(crate) async fn hub_unsubscribe(&self, channel: &str, client: &str) -> bool {
        let removed = self.hub.unsubscribe(channel, client);
        if removed && !self.hub.has_subscribers(channel) {
            let left = if self.map_channel(channel).is_ok() {
                self.map.unsubscribe(channel).await
            } else {
                self.broker.unsubscribe(channel).await
            };
            if let Err(err) = left {
                tracing::debug!("unsubscribe of {channel} failed: {err}");
            }
        }
        removed
    }
}

pub(crate) use crate::engine::Engine;
