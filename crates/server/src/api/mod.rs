//! The server HTTP API: `POST <prefix>/<method>` with upstream's request and response JSON.
//!
//! [`execute`] is transport-agnostic: it takes a method name and a JSON body and returns the
//! result object or an API error. [`http`] adapts it to axum.

pub mod http;
pub mod types;

use std::collections::HashMap;

use base64::Engine as _;
use bytes::Bytes;
use gyre_protocol::{Disconnect, ErrorCode, HistoryResult, StreamPosition};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::engine::HistoryFilter;
use crate::engine::StreamOptions;
use crate::hub::Hub;
use crate::node::{Node, PublishOptions, VERSION};
use crate::outbound::{Control, Outbound, SessionHandle};
use types::*;

/// An API error: a code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Error code.
    pub code: u32,
    /// Message.
    pub message: String,
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        Self {
            code: code.code(),
            message: code.message().to_owned(),
        }
    }
}

impl ApiError {
    fn bad_request(message: &str) -> Self {
        Self {
            code: 107,
            message: message.to_owned(),
        }
    }

    fn method_not_found() -> Self {
        Self {
            code: 104,
            message: "method not found".to_owned(),
        }
    }
}

/// A method's result as JSON text: payloads inside it stay byte for byte as published.
type ApiResult = Result<Box<RawValue>, ApiError>;

fn parse<T: serde::de::DeserializeOwned>(body: &RawValue) -> Result<T, ApiError> {
    serde_json::from_str(body.get())
        .map_err(|e| ApiError::bad_request(&format!("bad request: {e}")))
}

fn parse_value<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T, ApiError> {
    T::deserialize(body).map_err(|e| ApiError::bad_request(&format!("bad request: {e}")))
}

/// Serializes a result (raw payloads are written verbatim).
fn raw<T: serde::Serialize>(value: &T) -> ApiResult {
    serde_json::value::to_raw_value(value).map_err(|_| ErrorCode::Internal.into())
}

/// Whether `data` suits a namespace's `publication_data_format`.
pub fn data_format_ok(format: &str, data: &[u8]) -> bool {
    match format {
        "json" => gyre_protocol::raw::is_json(data),
        "json_object" => serde_json::from_slice::<serde_json::Map<String, Value>>(data).is_ok(),
        _ => true,
    }
}

/// Reads history with protocol semantics (limit, since, reverse, cap, epoch check).
pub(crate) async fn read_history(
    node: &Node,
    channel: &str,
    stream: &StreamOptions,
    limit: i32,
    since: Option<&StreamPosition>,
    reverse: bool,
    max: usize,
) -> Result<HistoryResult, ErrorCode> {
    let filter = history_filter(limit, since, reverse, max);
    let h = node.history(channel, stream, &filter).await?;
    check_epoch(since, &h.epoch)?;
    Ok(HistoryResult {
        publications: h.publications,
        epoch: h.epoch,
        offset: h.offset,
    })
}

/// Runs one API method.
pub fn execute<'a>(
    node: &'a Node,
    method: &'a str,
    body: &'a RawValue,
) -> crate::engine::BoxFuture<'a, ApiResult> {
    Box::pin(async move {
        match method {
            "publish" => publish(node, parse(body)?).await,
            "broadcast" => broadcast(node, parse(body)?).await,
            "subscribe" | "unsubscribe" | "disconnect" | "refresh" => {
                control(node, method, body).await
            }
            "presence" => presence(node, parse(body)?).await,
            "presence_stats" => presence_stats(node, parse(body)?).await,
            "history" => history(node, parse(body)?).await,
            "history_remove" => history_remove(node, parse(body)?).await,
            "channels" => channels(node, parse(body)?).await,
            "info" => raw(&info(node)),
            "batch" => batch(node, parse(body)?).await,
            _ => Err(ApiError::method_not_found()),
        }
    })
}

/// An API action on connections: applied here, then sent to the other nodes.
async fn control(node: &Node, method: &str, body: &RawValue) -> ApiResult {
    if method == "subscribe" {
        let req: SubscribeRequest = parse(body)?;
        if !req.channel.is_empty() {
            node.channel(&req.channel)?;
        }
    }
    let body: Value = parse(body)?;
    let result = apply_control(&node.hub, method, &body)?;
    let command = crate::engine::ControlCommand {
        method: method.to_owned(),
        body,
    };
    node.control.send(&command).await.map_err(|err| {
        tracing::warn!("control {method} not sent to other nodes: {err}");
        ApiError::from(ErrorCode::Internal)
    })?;
    Ok(result)
}

/// Applies an API action on connections (`subscribe`, `unsubscribe`, `disconnect`,
/// `refresh`) to this node's connections; also runs for commands from other nodes.
pub fn apply_control(hub: &Hub, method: &str, body: &Value) -> ApiResult {
    match method {
        "subscribe" => subscribe(hub, parse_value(body)?),
        "unsubscribe" => unsubscribe(hub, parse_value(body)?),
        "disconnect" => disconnect(hub, parse_value(body)?),
        "refresh" => refresh(hub, parse_value(body)?),
        _ => Err(ApiError::method_not_found()),
    }
}

fn payload(req: &PublishRequest) -> Result<Bytes, ApiError> {
    if !req.b64data.is_empty() {
        return base64::engine::general_purpose::STANDARD
            .decode(&req.b64data)
            .map(Bytes::from)
            .map_err(|_| ApiError::bad_request("bad request: invalid b64data"));
    }
    Ok(req.data.clone())
}

async fn publish_one(node: &Node, channel: &str, req: &PublishRequest, data: Bytes) -> ApiResult {
    if channel.is_empty() {
        return Err(ApiError::bad_request("bad request: channel required"));
    }
    if channel.len() > node.config.channel.max_length {
        return Err(ErrorCode::BadRequest.into());
    }
    let resolved = node.channel(channel)?;
    if data.is_empty() && resolved.publication_data_format != "binary" {
        return Err(ApiError::bad_request("bad request: data required"));
    }
    if !data_format_ok(resolved.publication_data_format, &data) {
        return Err(ApiError::bad_request(
            "bad request: data does not match publication_data_format",
        ));
    }
    let stream = Node::stream_options(&resolved);
    let options = PublishOptions {
        skip_history: req.skip_history,
        delta: req.delta || resolved.options.delta_publish,
        tags: req.tags.clone(),
        info: None,
        idempotency_key: (!req.idempotency_key.is_empty()).then(|| req.idempotency_key.clone()),
    };
    let result = node.publish(channel, &stream, data, options).await?;
    let mut out = serde_json::Map::new();
    if result.offset > 0 {
        out.insert("offset".into(), json!(result.offset));
    }
    if !result.epoch.is_empty() {
        out.insert("epoch".into(), json!(result.epoch));
    }
    raw(&Value::Object(out))
}

async fn publish(node: &Node, req: PublishRequest) -> ApiResult {
    let data = payload(&req)?;
    publish_one(node, &req.channel, &req, data).await
}

async fn broadcast(node: &Node, req: PublishRequest) -> ApiResult {
    if req.channels.is_empty() {
        return Err(ApiError::bad_request("bad request: channels required"));
    }
    let data = payload(&req)?;
    let mut responses: Vec<Value> = Vec::with_capacity(req.channels.len());
    for channel in &req.channels {
        responses.push(match publish_one(node, channel, &req, data.clone()).await {
            Ok(result) => json!({ "result": result }),
            Err(e) => json!({ "error": { "code": e.code, "message": e.message } }),
        });
    }
    raw(&json!({ "responses": responses }))
}

/// Connections a user-scoped API command applies to.
fn targets(hub: &Hub, user: &str, client: &str) -> Vec<std::sync::Arc<SessionHandle>> {
    if user.is_empty() && !client.is_empty() {
        return hub.session(client).into_iter().collect();
    }
    hub.user_sessions(user)
        .into_iter()
        .filter(|h| client.is_empty() || *h.client == *client)
        .collect()
}

fn subscribe(hub: &Hub, req: SubscribeRequest) -> ApiResult {
    if req.channel.is_empty() {
        return Err(ApiError::bad_request("bad request: channel required"));
    }
    for handle in targets(hub, &req.user, &req.client) {
        handle.send(Outbound::Control(Box::new(Control::Subscribe(req.clone()))));
    }
    raw(&json!({}))
}

fn unsubscribe(hub: &Hub, req: UnsubscribeRequest) -> ApiResult {
    if req.channel.is_empty() {
        return Err(ApiError::bad_request("bad request: channel required"));
    }
    for handle in targets(hub, &req.user, &req.client) {
        handle.send(Outbound::Control(Box::new(Control::Unsubscribe {
            channel: req.channel.clone(),
            code: gyre_protocol::codes::unsubscribe::SERVER,
            reason: "server unsubscribe".to_owned(),
        })));
    }
    raw(&json!({}))
}

fn disconnect(hub: &Hub, req: DisconnectRequest) -> ApiResult {
    let d = match &req.disconnect {
        Some(spec) if spec.code > 0 => {
            let code =
                u16::try_from(spec.code).map_err(|_| ApiError::bad_request("bad request: code"))?;
            Disconnect::custom(code, &spec.reason)
        }
        _ => Disconnect::FORCE_NO_RECONNECT,
    };
    for handle in targets(hub, &req.user, &req.client) {
        if !req.whitelist.iter().any(|c| *c == *handle.client) {
            handle.disconnect(d.clone());
        }
    }
    raw(&json!({}))
}

fn refresh(hub: &Hub, req: RefreshRequest) -> ApiResult {
    for handle in targets(hub, &req.user, &req.client) {
        handle.send(Outbound::Control(Box::new(Control::Refresh {
            expired: req.expired,
            expire_at: req.expire_at,
        })));
    }
    raw(&json!({}))
}

fn presence_channel(node: &Node, channel: &str) -> Result<(), ApiError> {
    if channel.is_empty() {
        return Err(ApiError::bad_request("bad request: channel required"));
    }
    if !node.channel(channel)?.options.presence {
        return Err(ErrorCode::NotAvailable.into());
    }
    Ok(())
}

async fn presence(node: &Node, req: ChannelRequest) -> ApiResult {
    presence_channel(node, &req.channel)?;
    let result = gyre_protocol::PresenceResult {
        presence: node
            .presence
            .presence(&req.channel)
            .await
            .map_err(ErrorCode::from)?,
    };
    raw(&result)
}

async fn presence_stats(node: &Node, req: ChannelRequest) -> ApiResult {
    presence_channel(node, &req.channel)?;
    let (num_clients, num_users) = node
        .presence
        .stats(&req.channel)
        .await
        .map_err(ErrorCode::from)?;
    raw(&json!({ "num_clients": num_clients, "num_users": num_users }))
}

async fn history(node: &Node, req: HistoryRequest) -> ApiResult {
    if req.channel.is_empty() {
        return Err(ApiError::bad_request("bad request: channel required"));
    }
    let resolved = node.channel(&req.channel)?;
    let stream = Node::stream_options(&resolved);
    if !stream.enabled() {
        return Err(ErrorCode::NotAvailable.into());
    }
    let result = read_history(
        node,
        &req.channel,
        &stream,
        req.limit,
        req.since.as_ref(),
        req.reverse,
        0,
    )
    .await?;
    raw(&result)
}

async fn history_remove(node: &Node, req: ChannelRequest) -> ApiResult {
    if req.channel.is_empty() {
        return Err(ApiError::bad_request("bad request: channel required"));
    }
    node.channel(&req.channel)?;
    node.remove_history(&req.channel).await?;
    raw(&json!({}))
}

/// Channels with local subscribers matching a `channels` pattern, with their counts.
fn local_channels(hub: &Hub, pattern: &str) -> Result<Vec<(String, usize)>, ApiError> {
    let pattern = if pattern.is_empty() { "*" } else { pattern };
    let pattern =
        glob::Pattern::new(pattern).map_err(|_| ApiError::bad_request("bad request: pattern"))?;
    Ok(hub
        .channels()
        .into_iter()
        .filter(|(name, _)| pattern.matches(name))
        .collect())
}

/// `channels`: active channels of every live node, with their subscriber counts summed.
async fn channels(node: &Node, req: ChannelsRequest) -> ApiResult {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for (name, n) in local_channels(&node.hub, &req.pattern)? {
        *counts.entry(name).or_default() += n as u64;
    }
    let answers = node
        .control
        .survey("channels", &json!({ "pattern": req.pattern }))
        .await
        .map_err(|err| {
            tracing::warn!("channels survey failed: {err}");
            ApiError::from(ErrorCode::Internal)
        })?;
    for answer in answers {
        if let Some(map) = answer["channels"].as_object() {
            for (name, n) in map {
                *counts.entry(name.clone()).or_default() += n.as_u64().unwrap_or(0);
            }
        }
    }
    let map: HashMap<String, Value> = counts
        .into_iter()
        .map(|(name, n)| (name, json!({ "num_clients": n })))
        .collect();
    raw(&json!({ "channels": map }))
}

/// Answers another node's survey (see [`crate::engine::ControlBus::survey`]) from this
/// node's state; `None` for an unknown question.
pub fn answer_survey(hub: &Hub, op: &str, body: &Value) -> Option<Value> {
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

fn info(node: &Node) -> Value {
    let mut nodes = vec![node_info(node)];
    nodes.extend(node.control.other_nodes());
    json!({ "nodes": nodes })
}

/// This node's entry in `info`.
pub fn node_info(node: &Node) -> Value {
    let counts = node.hub.counts();
    json!({
        "uid": node.id,
        "name": node.name,
        "version": VERSION,
        "num_clients": counts.clients,
        "num_users": counts.users,
        "num_channels": counts.channels,
        "num_subs": counts.subscriptions,
        "uptime": node.started.elapsed().as_secs(),
    })
}

async fn batch(node: &Node, req: BatchRequest) -> ApiResult {
    let mut replies: Vec<Box<RawValue>> = Vec::with_capacity(req.commands.len());
    for command in &req.commands {
        let reply = match command.iter().next() {
            None => {
                raw(&json!({ "error": { "code": 107, "message": "bad request: empty command" } }))
            }
            Some((method, body)) => match execute(node, method, body).await {
                Ok(result) => raw(&HashMap::from([(method.as_str(), result)])),
                Err(e) => raw(&json!({ "error": { "code": e.code, "message": e.message } })),
            },
        }?;
        replies.push(reply);
    }
    raw(&HashMap::from([("replies", replies)]))
}

/// A history position check: the client's epoch must match the stream's.
pub(crate) fn check_epoch(since: Option<&StreamPosition>, epoch: &str) -> Result<(), ErrorCode> {
    match since {
        Some(since) if !since.epoch.is_empty() && since.epoch != epoch => {
            Err(ErrorCode::UnrecoverablePosition)
        }
        _ => Ok(()),
    }
}

/// Translates a protocol history limit into a filter limit, capped at `max` (0: no cap).
pub(crate) fn history_filter(
    limit: i32,
    since: Option<&StreamPosition>,
    reverse: bool,
    max: usize,
) -> HistoryFilter {
    let cap = if max == 0 { usize::MAX } else { max };
    let limit = match limit {
        0 => Some(0),
        n if n < 0 => (max > 0).then_some(cap),
        n => Some((n as usize).min(cap)),
    };
    HistoryFilter {
        since: since.map(|s| s.offset),
        limit,
        reverse,
    }
}
