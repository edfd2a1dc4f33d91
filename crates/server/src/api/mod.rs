//! The server HTTP API: `POST <prefix>/<method>` with upstream's request and response JSON.
//!
//! [`execute`] is transport-agnostic: it takes a method name and a JSON body and returns the
//! result object or an API error. [`http`] adapts it to axum, [`grpc`] to tonic (the GRPC API).

pub(crate) mod grpc;
pub(crate) mod http;
mod map;
pub(crate) mod shared_poll;
pub(crate) mod types;

use std::collections::HashMap;

use base64::Engine as _;
use bytes::Bytes;
use gyre_config::DataFormat;
use gyre_protocol::ErrorCode;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::node::channels::{data_format_ok, presence_channel, read_history};
use crate::node::control::{apply_control, local_channels, node_info};
use crate::node::{Node, PublishOptions};
use types::*;

/// An API error: a code and a message (the node's service error).
pub(crate) use crate::node::ServiceError as ApiError;

/// A method's result as JSON text: payloads inside it stay byte for byte as published.
type ApiResult = Result<Box<RawValue>, ApiError>;

fn parse<T: serde::de::DeserializeOwned>(body: &RawValue) -> Result<T, ApiError> {
    serde_json::from_str(body.get())
        .map_err(|e| ApiError::bad_request(&format!("bad request: {e}")))
}

/// Serializes a result (raw payloads are written verbatim).
fn raw<T: serde::Serialize>(value: &T) -> ApiResult {
    serde_json::value::to_raw_value(value).map_err(|_| ErrorCode::Internal.into())
}

/// Runs one API method.
pub(crate) fn execute<'a>(
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
            "shared_poll_publish" => shared_poll::shared_poll_publish(node, parse(body)?).await,
            _ => match map::execute(node, method, body).await {
                Some(result) => result,
                None => Err(ApiError::method_not_found()),
            },
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
    apply_control(&node.hub, method, &body)?;
    let command = crate::node::cluster::ControlCommand {
        method: method.to_owned(),
        body,
    };
    node.send_command(&command).await.map_err(|err| {
        tracing::warn!("control {method} not sent to other nodes: {err}");
        ApiError::from(ErrorCode::Internal)
    })?;
    raw(&json!({}))
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
    if data.is_empty() && *resolved.publication_data_format != DataFormat::Binary {
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
        version: Some(crate::engine::PublicationVersion {
            version: req.version,
            epoch: req.version_epoch.clone(),
        }),
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

/// `channels`: active channels of every live node, with their subscriber counts summed.
async fn channels(node: &Node, req: ChannelsRequest) -> ApiResult {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for (name, n) in local_channels(&node.hub, &req.pattern)? {
        *counts.entry(name).or_default() += n as u64;
    }
    let answers = node
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

fn info(node: &Node) -> Value {
    let mut nodes = vec![node_info(&node.events)];
    nodes.extend(node.events.cluster.other_nodes());
    json!({ "nodes": nodes })
}

async fn batch(node: &Node, req: BatchRequest) -> ApiResult {
    let mut replies: Vec<Box<RawValue>> = Vec::with_capacity(req.commands.len());
    for command in &req.commands {
        let reply = match command.iter().next() {
            None => {
                let code = ErrorCode::BadRequest.code();
                raw(&json!({ "error": { "code": code, "message": "bad request: empty command" } }))
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
