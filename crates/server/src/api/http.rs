//! The axum adapter of the server API: API key check, body decoding, error modes.

use gyre_config::ErrorMode;
use gyre_protocol::ErrorCode;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use serde_json::value::RawValue;

use crate::node::Node;

/// Query parameters the API accepts.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ApiQuery {
    /// API key in the query string.
    pub api_key: Option<String>,
}

fn authorized(node: &Node, headers: &HeaderMap, uri: &Uri) -> bool {
    let cfg = &node.config.http_api;
    if cfg.insecure {
        return true;
    }
    if cfg.key.is_empty() {
        return false;
    }
    let from_headers = headers.get("x-api-key").map(|v| v.as_bytes()).or_else(|| {
        let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, key) = auth.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("apikey")
            .then(|| key.trim().as_bytes())
    });
    if let Some(given) = from_headers {
        return constant_time_eq(given, cfg.key.as_bytes());
    }
    // The query string is parsed only when no header carries a key.
    Query::<ApiQuery>::try_from_uri(uri)
        .ok()
        .and_then(|Query(q)| q.api_key)
        .is_some_and(|k| constant_time_eq(k.as_bytes(), cfg.key.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Upstream's API error 113 (conflict), which has no client protocol error code.
const CONFLICT: u32 = 113;

fn transport_status(code: u32) -> StatusCode {
    match ErrorCode::from_code(code) {
        Some(ErrorCode::UnknownChannel | ErrorCode::MethodNotFound) => StatusCode::NOT_FOUND,
        Some(ErrorCode::BadRequest | ErrorCode::NotAvailable) => StatusCode::BAD_REQUEST,
        Some(ErrorCode::UnrecoverablePosition) => StatusCode::RANGE_NOT_SATISFIABLE,
        None if code == CONFLICT => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The largest API request body (axum's default body limit, as before).
const MAX_BODY: usize = 2 * 1024 * 1024;

/// `POST <prefix>/<method>`. Takes the request whole, so the headers are borrowed rather than
/// copied and the query string is parsed only when it must carry the key.
pub(crate) async fn handle(
    State(node): State<Arc<Node>>,
    Path(method): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    if !authorized(&node, &parts.headers, &parts.uri) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(e) => return body_error(e),
    };
    let Some(body) = json_body(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed JSON").into_response();
    };
    respond(&node, &parts.headers, &method, body).await
}

/// The answer to a body that could not be read: 413 past the limit, 400 otherwise (as axum's
/// `Bytes` extractor answers).
fn body_error(e: axum::Error) -> Response {
    let too_large = std::error::Error::source(&e)
        .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        || e.into_inner().is::<http_body_util::LengthLimitError>();
    if too_large {
        StatusCode::PAYLOAD_TOO_LARGE.into_response()
    } else {
        (StatusCode::BAD_REQUEST, "cannot read the request body").into_response()
    }
}

/// The body of the legacy single endpoint: a method and its parameters.
#[derive(serde::Deserialize)]
struct LegacyCommand {
    method: String,
    #[serde(default)]
    params: Option<Box<RawValue>>,
}

/// `POST <prefix>` with `{"method": ..., "params": {...}}`: the API's older single endpoint,
/// answered like `POST <prefix>/<method>`.
pub(crate) async fn handle_legacy(
    State(node): State<Arc<Node>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&node, &headers, &uri) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(command) = serde_json::from_slice::<LegacyCommand>(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed JSON").into_response();
    };
    let params = match command.params {
        Some(params) => params,
        None => match RawValue::from_string("{}".to_owned()) {
            Ok(empty) => empty,
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
    };
    respond(&node, &headers, &command.method, &params).await
}

/// A request body as JSON, borrowed from the body (an empty body is `{}`).
fn json_body(body: &[u8]) -> Option<&RawValue> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return serde_json::from_str("{}").ok();
    }
    serde_json::from_slice(body).ok()
}

/// Runs `method` and answers in the configured error mode.
async fn respond(node: &Node, headers: &HeaderMap, method: &str, body: &RawValue) -> Response {
    let transport_errors = node.config.http_api.error_mode == ErrorMode::Transport
        || headers
            .get("x-centrifugo-error-mode")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"transport"));
    let json_response = |status: StatusCode, text: String| {
        (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
    };
    match super::execute(node, method, body).await {
        Ok(result) => json_response(StatusCode::OK, format!("{{\"result\":{}}}", result.get())),
        Err(e) if transport_errors => json_response(
            transport_status(e.code),
            json!({ "code": e.code, "message": e.message }).to_string(),
        ),
        Err(e) => json_response(
            StatusCode::OK,
            json!({ "error": { "code": e.code, "message": e.message } }).to_string(),
        ),
    }
}
