//! `/connection/websocket`: the upgrade handshake (origin check, protocol selection) and the
//! hand-over of the upgraded connection to a session.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use gyre_protocol::Protocol;
use hyper_util::rt::TokioIo;

use crate::node::Node;
use crate::websocket::WsStream;

const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Counts an open connection for `client.connection_limit` until dropped.
struct OpenConnection(Arc<Node>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Whether a request's `Origin` is allowed by `client.allowed_origins`.
pub(crate) fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.to_ascii_lowercase();
    allowed.iter().any(|pattern| {
        pattern == "*"
            || glob::Pattern::new(&pattern.to_ascii_lowercase()).is_ok_and(|p| p.matches(&origin))
    })
}

fn query_protocol(query: Option<&str>) -> Option<Protocol> {
    let query = query?;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if (key == "format" || key == "cf_protocol") && value == "protobuf" {
            return Some(Protocol::Protobuf);
        }
    }
    None
}

/// The subprotocol to echo and the encoding it selects.
fn select_subprotocol(headers: &HeaderMap) -> Option<(&'static str, Protocol)> {
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    for name in offered {
        match name {
            "centrifuge-protobuf" => return Some(("centrifuge-protobuf", Protocol::Protobuf)),
            "centrifuge-json" => return Some(("centrifuge-json", Protocol::Json)),
            _ => {}
        }
    }
    None
}

/// Handles a request to the WebSocket endpoint.
pub(crate) async fn handle(State(node): State<Arc<Node>>, mut req: Request<Body>) -> Response {
    let headers = req.headers();
    let is_upgrade = header_has_token(headers, header::CONNECTION, "upgrade")
        && header_has_token(headers, header::UPGRADE, "websocket");
    if req.method() != axum::http::Method::GET || !is_upgrade {
        return (
            StatusCode::BAD_REQUEST,
            "Can \"Upgrade\" only to \"WebSocket\".",
        )
            .into_response();
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        return (StatusCode::BAD_REQUEST, "unsupported WebSocket version").into_response();
    }
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
    else {
        return (StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key").into_response();
    };
    let limit = node.config.client.connection_limit;
    if limit > 0 && node.open_connections.load(Ordering::Relaxed) >= limit {
        return (StatusCode::SERVICE_UNAVAILABLE, "connection limit reached").into_response();
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if !origin_allowed(&node.config.client.allowed_origins, origin) {
        tracing::info!(
            origin = origin.unwrap_or(""),
            "request origin is not allowed"
        );
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(WS_GUID.as_bytes());
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes());
    let subprotocol = select_subprotocol(headers);
    let protocol = query_protocol(req.uri().query())
        .or(subprotocol.map(|(_, p)| p))
        .unwrap_or(Protocol::Json);

    let conn = crate::proxy::ConnMeta {
        headers: req.headers().clone(),
    };
    let upgrade = hyper::upgrade::on(&mut req);
    let limit = node.config.websocket.message_size_limit;
    let tracker = node.tasks.clone();
    node.open_connections.fetch_add(1, Ordering::Relaxed);
    let counted = OpenConnection(node.clone());
    tracker.spawn(async move {
        let _counted = counted;
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                tracing::debug!("websocket upgrade failed: {err}");
                return;
            }
        };
        // 0 means no limit, as in Centrifugo (and as before the framing was ours).
        let max_payload = if limit > 0 { limit } else { usize::MAX };
        let ws = WsStream::new(TokioIo::new(upgraded), max_payload);
        crate::session::run(node, ws, protocol, conn).await;
    });

    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some((name, _)) = subprotocol {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(name),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(origin_allowed(&[], None));
        assert!(!origin_allowed(&[], Some("http://a.com")));
        let allowed = vec!["https://*.example.com".to_owned()];
        assert!(origin_allowed(&allowed, Some("https://app.Example.com")));
        assert!(!origin_allowed(&allowed, Some("https://evil.com")));
        assert!(origin_allowed(&["*".to_owned()], Some("http://x")));
    }

    #[test]
    fn protocol_from_query() {
        assert_eq!(
            query_protocol(Some("format=protobuf")),
            Some(Protocol::Protobuf)
        );
        assert_eq!(
            query_protocol(Some("cf_protocol_version=v2&cf_protocol=protobuf")),
            Some(Protocol::Protobuf)
        );
        assert_eq!(query_protocol(Some("x=1")), None);
    }
}
