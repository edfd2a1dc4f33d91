//! The cluster control protocol on the node side: API actions on connections applied to this
//! node's sessions (locally and for commands from other nodes), survey answers and this
//! node's `info` entry.

use std::sync::Arc;

use gyre_protocol::Disconnect;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ServiceError;
use super::events::NodeEvents;
use crate::hub::Hub;
use crate::outbound::{Control, Outbound, ServerSubscribe, SessionHandle};

/// `unsubscribe`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct UnsubscribeRequest {
    /// Channel.
    pub channel: String,
    /// User.
    pub user: String,
    /// Only this client.
    pub client: String,
    /// Session (unused).
    pub session: String,
}

/// Disconnect code and reason of an API disconnect.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct DisconnectSpec {
    /// Close code.
    pub code: u32,
    /// Reason.
    pub reason: String,
}

/// `disconnect`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct DisconnectRequest {
    /// User.
    pub user: String,
    /// Only this client.
    pub client: String,
    /// Session (unused).
    pub session: String,
    /// Clients to keep.
    pub whitelist: Vec<String>,
    /// Code and reason (default 3503).
    pub disconnect: Option<DisconnectSpec>,
}

/// `refresh`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RefreshRequest {
    /// User.
    pub user: String,
    /// Only this client.
    pub client: String,
    /// Session (unused).
    pub session: String,
    /// Disconnect as expired.
    pub expired: bool,
    /// New expiry (unix seconds).
    pub expire_at: i64,
}

fn parse_value<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T, ServiceError> {
    T::deserialize(body).map_err(|e| ServiceError::bad_request(&format!("bad request: {e}")))
}

/// Applies an action on connections (`subscribe`, `unsubscribe`, `disconnect`, `refresh`)
/// to this node's connections; runs for the API and for commands from other nodes.
pub(crate) fn apply_control(hub: &Hub, method: &str, body: &Value) -> Result<(), ServiceError> {
    match method {
        "subscribe" => subscribe(hub, parse_value(body)?),
        "unsubscribe" => unsubscribe(hub, parse_value(body)?),
        "disconnect" => disconnect(hub, parse_value(body)?),
        "refresh" => refresh(hub, parse_value(body)?),
        _ => Err(ServiceError::method_not_found()),
    }
}

/// Connections a user-scoped command applies to.
fn targets(hub: &Hub, user: &str, client: &str) -> Vec<Arc<SessionHandle>> {
    if user.is_empty() && !client.is_empty() {
        return hub.session(client).into_iter().collect();
    }
    hub.user_sessions(user)
        .into_iter()
        .filter(|h| client.is_empty() || *h.client == *client)
        .collect()
}

fn subscribe(hub: &Hub, req: ServerSubscribe) -> Result<(), ServiceError> {
    if req.channel.is_empty() {
        return Err(ServiceError::bad_request("bad request: channel required"));
    }
    for handle in targets(hub, &req.user, &req.client) {
        handle.send(Outbound::Control(Box::new(Control::Subscribe(req.clone()))));
    }
    Ok(())
}

fn unsubscribe(hub: &Hub, req: UnsubscribeRequest) -> Result<(), ServiceError> {
    if req.channel.is_empty() {
        return Err(ServiceError::bad_request("bad request: channel required"));
    }
    for handle in targets(hub, &req.user, &req.client) {
        handle.send(Outbound::Control(Box::new(Control::Unsubscribe {
            channel: req.channel.clone(),
            code: gyre_protocol::codes::unsubscribe::SERVER,
            reason: "server unsubscribe".to_owned(),
        })));
    }
    Ok(())
}

fn disconnect(hub: &Hub, req: DisconnectRequest) -> Result<(), ServiceError> {
    let d = match &req.disconnect {
        Some(spec) if spec.code > 0 => {
            let code = u16::try_from(spec.code)
                .map_err(|_| ServiceError::bad_request("bad request: code"))?;
            Disconnect::custom(code, &spec.reason)
        }
        _ => Disconnect::FORCE_NO_RECONNECT,
    };
    for handle in targets(hub, &req.user, &req.client) {
        if !req.whitelist.iter().any(|c| *c == *handle.client) {
            handle.disconnect(d.clone());
        }
    }
    Ok(())
}

fn refresh(hub: &Hub, req: RefreshRequest) -> Result<(), ServiceError> {
    for handle in targets(hub, &req.user, &req.client) {
        handle.send(Outbound::Control(Box::new(Control::Refresh {
            expired: req.expired,
            expire_at: req.expire_at,
        })));
    }
    Ok(())
}

/// Channels with local subscribers matching a `channels` pattern, with their counts.
pub(crate) fn local_channels(
    hub: &Hub,
    pattern: &str,
) -> Result<Vec<(String, usize)>, ServiceError> {
    let pattern = if pattern.is_empty() { "*" } else { pattern };
    let pattern = glob::Pattern::new(pattern)
        .map_err(|_| ServiceError::bad_request("bad request: pattern"))?;
    Ok(hub
        .channels()
        .into_iter()
        .filter(|(name, _)| pattern.matches(name))
        .collect())
}

/// Answers another node's survey (see [`crate::engine::ControlBus::survey`]) from this
/// node's state; `None` for an unknown question.
pub(crate) fn answer_survey(hub: &Hub, op: &str, body: &Value) -> Option<Value> {
    match op {
        "channels" => {
            let pattern = body["pattern"].as_str().unwrap_or_default();
            let channels: serde_json::Map<String, Value> = local_channels(hub, pattern)
                .ok()?
                .into_iter()
                .map(|(name, n)| (name, json!(n)))
                .collect();
            Some(json!({ "channels": channels }))
        }
        _ => None,
    }
}

/// This node's entry in `info`.
pub(crate) fn node_info(local: &NodeEvents) -> Value {
    let counts = local.hub.counts();
    json!({
        "uid": local.id,
        "name": local.name,
        "version": super::VERSION,
        "num_clients": counts.clients,
        "num_users": counts.users,
        "num_channels": counts.channels,
        "num_subs": counts.subscriptions,
        "uptime": local.started.elapsed().as_secs(),
        // Counters in the shape of upstream's node metrics (`interval`, `items`).
        "metrics": {
            "interval": 0,
            "items": { "tags_filter_dropped_publications": counts.tags_filter_dropped },
        },
    })
}
