//! The default policy: connection and subscription JWTs, the anonymous and insecure client
//! options, namespace permissions and the built-in ping RPC.

use bytes::Bytes;
use gyre_auth::ChannelOverride;
use gyre_config::{ChannelOptions, ResolvedChannel};
use gyre_protocol::{Disconnect, ErrorCode, ProtocolError};

use super::token::{self, TokenUse};
use super::{
    Access, ConnectDecision, Grant, PublishDecision, RefreshDecision, RpcDecision,
    SubRefreshDecision, Subject, SubscribeDecision,
};
use crate::node::Node;

type Outcome<T> = Result<T, ProtocolError>;

/// May a connection with this token (empty for none) connect, and with what credentials.
pub(crate) fn connect(
    node: &Node,
    client: &str,
    token: &str,
    now: i64,
) -> Outcome<ConnectDecision> {
    let cfg = &node.config.client;
    if token.is_empty() {
        if cfg.insecure || cfg.allow_anonymous_connect_without_token {
            return Ok(ConnectDecision::default());
        }
        tracing::debug!(client, "connect without credentials");
        return Err(Disconnect::BAD_REQUEST.into());
    }
    let claims = token::verify_connect(
        node.connect_verifier.as_ref(),
        TokenUse::Connect,
        client,
        token,
        now,
    )?;
    if claims.user.is_empty() && cfg.disallow_anonymous_connection_tokens {
        return Err(Disconnect::PERMISSION_DENIED.into());
    }
    let subs = if claims.subs.is_empty() {
        claims
            .channels
            .iter()
            .map(|c| Grant {
                channel: c.clone(),
                ..Default::default()
            })
            .collect()
    } else {
        claims
            .subs
            .iter()
            .map(|(c, o)| Grant {
                channel: c.clone(),
                info: o.info.clone().map(Bytes::from).unwrap_or_default(),
                data: o.data.clone().map(Bytes::from).unwrap_or_default(),
                overrides: o.override_,
            })
            .collect()
    };
    Ok(ConnectDecision {
        user: claims.user,
        expire_at: if cfg.insecure { None } else { claims.expire_at },
        info: claims.info.map(Bytes::from).unwrap_or_default(),
        data: Bytes::new(),
        subs,
        meta: claims
            .meta
            .and_then(|m| serde_json::value::to_raw_value(&m).ok())
            .map(std::sync::Arc::from),
    })
}

/// Whether a subscription token was issued for this channel, user and client.
fn token_matches(claims: &gyre_auth::SubscribeToken, who: Subject<'_>, channel: &str) -> bool {
    claims.channel == channel
        && claims.user == who.user
        && (claims.client.is_empty() || claims.client == who.client)
}

/// May `who` subscribe to a channel (with a subscription token, or by namespace rules).
pub(crate) fn subscribe(
    node: &Node,
    who: Subject<'_>,
    channel: &str,
    resolved: &ResolvedChannel<'_>,
    token: &str,
    now: i64,
) -> Outcome<SubscribeDecision> {
    if !token.is_empty() {
        let claims = token::verify_subscribe(
            node.subscribe_verifier.as_ref(),
            TokenUse::Subscribe,
            who.client,
            token,
            now,
        )?;
        if !token_matches(&claims, who, channel) {
            return Err(Disconnect::INVALID_TOKEN.into());
        }
        if claims.expire_at.is_some_and(|at| at <= now) {
            return Err(ErrorCode::TokenExpired.into());
        }
        return Ok(SubscribeDecision {
            info: claims.info.map(Bytes::from).unwrap_or_default(),
            data: claims.data.map(Bytes::from).unwrap_or_default(),
            expire_at: claims.expire_at,
            overrides: claims.override_,
        });
    }
    if resolved.private {
        return Err(ErrorCode::PermissionDenied.into());
    }
    let options = resolved.options;
    let user_limited = options.allow_user_limited_channels
        && node.config.user_allowed_in_channel(channel, who.user);
    let by_namespace = options.allow_subscribe_for_client
        && (!who.user.is_empty() || options.allow_subscribe_for_anonymous);
    if !(user_limited || by_namespace || node.config.client.insecure) {
        return Err(ErrorCode::PermissionDenied.into());
    }
    Ok(SubscribeDecision {
        overrides: ChannelOverride::default(),
        ..Default::default()
    })
}

/// Whether `who` may use `access` on a channel with these options; `subscribed` tells whether
/// the connection is subscribed to it.
pub(crate) fn access_allowed(
    node: &Node,
    who: Subject<'_>,
    access: Access,
    subscribed: bool,
    o: &ChannelOptions,
) -> bool {
    if node.config.client.insecure {
        return true;
    }
    let (client, subscriber, anon) = match access {
        Access::Publish => (
            o.allow_publish_for_client,
            o.allow_publish_for_subscriber,
            o.allow_publish_for_anonymous,
        ),
        Access::Presence => (
            o.allow_presence_for_client,
            o.allow_presence_for_subscriber,
            o.allow_presence_for_anonymous,
        ),
        Access::History => (
            o.allow_history_for_client,
            o.allow_history_for_subscriber,
            o.allow_history_for_anonymous,
        ),
    };
    (client || (subscriber && subscribed)) && (!who.user.is_empty() || anon)
}

/// May `who` publish to a channel.
pub(crate) fn publish(
    node: &Node,
    who: Subject<'_>,
    subscribed: bool,
    resolved: &ResolvedChannel<'_>,
) -> Outcome<PublishDecision> {
    if !access_allowed(node, who, Access::Publish, subscribed, resolved.options) {
        return Err(ErrorCode::PermissionDenied.into());
    }
    Ok(PublishDecision::default())
}

/// The answer to an RPC call: only the built-in ping method exists without a proxy.
pub(crate) fn rpc(node: &Node, method: &str) -> Outcome<RpcDecision> {
    let ping = &node.config.rpc.ping;
    if ping.enabled && method == ping.method {
        return Ok(RpcDecision::default());
    }
    Err(ErrorCode::NotAvailable.into())
}

/// May `who` refresh its connection with this token.
pub(crate) fn refresh(
    node: &Node,
    who: Subject<'_>,
    token: &str,
    now: i64,
) -> Outcome<RefreshDecision> {
    if token.is_empty() {
        return Err(Disconnect::BAD_REQUEST.into());
    }
    let claims = token::verify_connect(
        node.connect_verifier.as_ref(),
        TokenUse::Refresh,
        who.client,
        token,
        now,
    )?;
    if claims.user != who.user {
        return Err(Disconnect::INVALID_TOKEN.into());
    }
    Ok(RefreshDecision {
        expire_at: claims.expire_at,
        info: claims.info.map(Bytes::from),
    })
}

/// May `who` refresh its subscription to `channel` with this token.
pub(crate) fn sub_refresh(
    node: &Node,
    who: Subject<'_>,
    channel: &str,
    token: &str,
    now: i64,
) -> Outcome<SubRefreshDecision> {
    if token.is_empty() {
        return Err(ErrorCode::BadRequest.into());
    }
    let claims = token::verify_subscribe(
        node.subscribe_verifier.as_ref(),
        TokenUse::SubRefresh,
        who.client,
        token,
        now,
    )?;
    if !token_matches(&claims, who, channel) {
        return Err(Disconnect::INVALID_TOKEN.into());
    }
    Ok(SubRefreshDecision {
        expire_at: claims.expire_at,
    })
}
