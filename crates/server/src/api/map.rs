//! The map methods of the server API: `map_publish`, `map_remove`, `map_read_state`,
//! `map_read_stream`, `map_stats` and `map_clear`.

use std::collections::HashMap;

use base64::Engine as _;
use bytes::Bytes;
use gyre_protocol::{ErrorCode, Publication, StreamPosition};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{ApiError, ApiResult, parse, raw};
use crate::engine::map::MapUpdateResult;
use crate::node::Node;
use crate::node::maps::{MapChange, decode_cursor, encode_cursor, read_error};

/// `map_publish` and `map_remove`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct ChangeRequest {
    channel: String,
    key: String,
    #[serde(with = "gyre_protocol::raw")]
    data: Bytes,
    b64data: String,
    tags: HashMap<String, String>,
}

/// `map_read_state`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct ReadStateRequest {
    channel: String,
    cursor: String,
    limit: i32,
}

/// `map_read_stream`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct ReadStreamRequest {
    channel: String,
    since_offset: u64,
    since_epoch: String,
    limit: i32,
}

/// Requests naming only a channel (`map_stats`, `map_clear`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct ChannelRequest {
    channel: String,
}

/// A state entry or a change as the API returns it.
#[derive(Debug, Serialize)]
struct Entry {
    key: String,
    #[serde(with = "gyre_protocol::raw", skip_serializing_if = "Bytes::is_empty")]
    data: Bytes,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    tags: HashMap<String, String>,
    #[serde(skip_serializing_if = "is_zero")]
    offset: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    removed: bool,
}

/// A page of `map_read_state` or `map_read_stream`.
#[derive(Debug, Serialize)]
struct Page {
    entries: Vec<Entry>,
    offset: u64,
    epoch: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    cursor: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn entries(publications: Vec<Publication>) -> Vec<Entry> {
    publications
        .into_iter()
        .map(|p| Entry {
            key: p.key,
            data: p.data,
            tags: p.tags,
            offset: p.offset,
            removed: p.removed,
        })
        .collect()
}

/// Runs one map method (`None` for a method that is not one).
pub(super) async fn execute(node: &Node, method: &str, body: &RawValue) -> Option<ApiResult> {
    Some(match method {
        "map_publish" => change(node, parse(body), false).await,
        "map_remove" => change(node, parse(body), true).await,
        "map_read_state" => read_state(node, parse(body)).await,
        "map_read_stream" => read_stream(node, parse(body)).await,
        "map_stats" => stats(node, parse(body)).await,
        "map_clear" => clear(node, parse(body)).await,
        _ => return None,
    })
}

fn check_channel(node: &Node, channel: &str) -> Result<(), ApiError> {
    if channel.is_empty() {
        return Err(ApiError::bad_request("bad request: channel required"));
    }
    node.map_channel(channel)?;
    Ok(())
}

fn update_result(result: &MapUpdateResult) -> ApiResult {
    let mut out = serde_json::Map::new();
    if result.position.offset > 0 {
        out.insert("offset".into(), result.position.offset.into());
    }
    if !result.position.epoch.is_empty() {
        out.insert("epoch".into(), result.position.epoch.clone().into());
    }
    if result.suppressed {
        out.insert("suppressed".into(), true.into());
        out.insert("suppress_reason".into(), "key not found".into());
    }
    raw(&out)
}

async fn change(node: &Node, req: Result<ChangeRequest, ApiError>, removed: bool) -> ApiResult {
    let req = req?;
    check_channel(node, &req.channel)?;
    let data = if removed {
        Bytes::new()
    } else if !req.b64data.is_empty() {
        base64::engine::general_purpose::STANDARD
            .decode(&req.b64data)
            .map(Bytes::from)
            .map_err(|_| ApiError::bad_request("bad request: invalid b64data"))?
    } else {
        req.data
    };
    let change = MapChange {
        key: req.key,
        data,
        removed,
        info: None,
        tags: req.tags,
    };
    let result = node.map_change(&req.channel, change).await?;
    update_result(&result)
}

async fn read_state(node: &Node, req: Result<ReadStateRequest, ApiError>) -> ApiResult {
    let req = req?;
    check_channel(node, &req.channel)?;
    let target = node.map_channel(&req.channel)?;
    let after = if req.cursor.is_empty() {
        String::new()
    } else {
        decode_cursor(&req.cursor)
            .ok_or_else(|| ApiError::bad_request("bad request: invalid cursor"))?
    };
    let limit = if req.limit > 0 {
        req.limit as usize
    } else {
        target.options.map.page_size(0)
    };
    let page = node
        .map
        .read_state(&req.channel, target.broker, &after, limit)
        .await
        .map_err(|_| ApiError::from(ErrorCode::Internal))?;
    raw(&Page {
        entries: entries(page.entries),
        offset: page.position.offset,
        epoch: page.position.epoch,
        cursor: encode_cursor(&page.next_after),
    })
}

async fn read_stream(node: &Node, req: Result<ReadStreamRequest, ApiError>) -> ApiResult {
    let req = req?;
    check_channel(node, &req.channel)?;
    let target = node.map_channel(&req.channel)?;
    let since = StreamPosition {
        offset: req.since_offset,
        epoch: req.since_epoch,
    };
    let limit = if req.limit > 0 {
        req.limit as usize
    } else {
        usize::MAX
    };
    let page = node
        .map
        .read_stream(&req.channel, target.broker, Some(&since), limit)
        .await
        .map_err(|e| ApiError::from(read_error(&req.channel, e)))?;
    raw(&Page {
        entries: entries(page.publications),
        offset: page.position.offset,
        epoch: page.position.epoch,
        cursor: String::new(),
    })
}

async fn stats(node: &Node, req: Result<ChannelRequest, ApiError>) -> ApiResult {
    let req = req?;
    check_channel(node, &req.channel)?;
    let stats = node
        .map
        .stats(&req.channel)
        .await
        .map_err(|_| ApiError::from(ErrorCode::Internal))?;
    raw(&serde_json::json!({ "num_keys": stats.keys }))
}

async fn clear(node: &Node, req: Result<ChannelRequest, ApiError>) -> ApiResult {
    let req = req?;
    check_channel(node, &req.channel)?;
    node.map
        .clear(&req.channel)
        .await
        .map_err(|_| ApiError::from(ErrorCode::Internal))?;
    raw(&serde_json::json!({}))
}
