//! `/connection/websocket`: the upgrade handshake (origin check, protocol selection,
//! permessage-deflate negotiation) and the hand-over of the upgraded connection to a session.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use gyre_protocol::Protocol;
use hyper_util::rt::TokioIo;

use super::WsTransport;
use super::codec::{Deflate, WsStream, deflate};
use crate::node::Node;
use crate::transport::OpenConnection;
use crate::transport::cors::origin_allowed;

const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
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

/// An accepted upgrade: the connection to come, once the switching response is sent.
pub(crate) struct Accepted {
    upgrade: hyper::upgrade::OnUpgrade,
    node: Arc<Node>,
    /// The encoding the client chose.
    pub protocol: Protocol,
    /// The upgrade request's metadata.
    pub conn: crate::proxy::ConnMeta,
    /// Counts the connection until dropped.
    pub counted: OpenConnection,
    /// permessage-deflate, when negotiated.
    deflate: Option<Deflate>,
}

/// The transport a session runs over, on an upgraded connection.
pub(crate) type UpgradedTransport = WsTransport<TokioIo<hyper::upgrade::Upgraded>>;

impl Accepted {
    /// Waits for the upgrade; `None` when it failed. Messages over `message_size_limit`
    /// bytes (0: no limit) are refused with 1009.
    pub(crate) async fn upgraded(
        &mut self,
        message_size_limit: usize,
    ) -> Option<WsStream<TokioIo<hyper::upgrade::Upgraded>>> {
        let upgraded = match (&mut self.upgrade).await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                tracing::debug!("websocket upgrade failed: {err}");
                return None;
            }
        };
        // 0 means no limit, as in Centrifugo (and as before the framing was ours).
        let max_payload = if message_size_limit > 0 {
            message_size_limit
        } else {
            usize::MAX
        };
        Some(WsStream::new(TokioIo::new(upgraded), max_payload).with_deflate(self.deflate))
    }

    /// Waits for the upgrade of a bidirectional WebSocket; `None` when it failed.
    pub(crate) async fn transport(&mut self) -> Option<UpgradedTransport> {
        let config = &self.node.config.websocket;
        let (limit, write_timeout) = (config.message_size_limit, config.write_timeout.0);
        let ws = self.upgraded(limit).await?;
        Some(WsTransport::new(ws, self.protocol, write_timeout))
    }
}

/// The permessage-deflate settings of the bidirectional endpoint (`websocket.compression`),
/// used when a client offers the extension.
pub(crate) fn deflate_settings(node: &Node) -> Option<Deflate> {
    let c = &node.config.websocket;
    c.compression.then(|| Deflate {
        level: c.compression_level,
        min_size: c.compression_min_size,
        max_inflated: match c.effective_decompressed_limit() {
            0 => usize::MAX,
            n => n,
        },
    })
}

/// Checks a request to the WebSocket endpoint: the switching response and the connection to
/// come, or the refusal. `deflate` is negotiated when the client offers it.
pub(crate) fn accept(
    node: &Arc<Node>,
    mut req: Request<Body>,
    deflate: Option<Deflate>,
) -> Result<(Response, Accepted), Box<Response>> {
    let headers = req.headers();
    let is_upgrade = header_has_token(headers, header::CONNECTION, "upgrade")
        && header_has_token(headers, header::UPGRADE, "websocket");
    if req.method() != axum::http::Method::GET || !is_upgrade {
        return Err((
            StatusCode::BAD_REQUEST,
            "Can \"Upgrade\" only to \"WebSocket\".",
        )
            .into_response()
            .into());
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        return Err((StatusCode::BAD_REQUEST, "unsupported WebSocket version")
            .into_response()
            .into());
    }
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
    else {
        return Err((StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key")
            .into_response()
            .into());
    };
    if !OpenConnection::available(node) {
        return Err(
            (StatusCode::SERVICE_UNAVAILABLE, "connection limit reached")
                .into_response()
                .into(),
        );
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if !origin_allowed(&node.config.client.allowed_origins, origin) {
        tracing::info!(
            origin = origin.unwrap_or(""),
            "request origin is not allowed"
        );
        return Err((StatusCode::FORBIDDEN, "origin not allowed")
            .into_response()
            .into());
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
        remote: crate::transport::remote_addr(req.extensions()),
        transport: "websocket",
        session: None,
    };
    let deflate = deflate.filter(|_| {
        deflate::offered(
            req.headers()
                .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        )
    });
    let accepted = Accepted {
        deflate,
        upgrade: hyper::upgrade::on(&mut req),
        protocol,
        conn,
        counted: OpenConnection::count(node),
        node: node.clone(),
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if deflate.is_some() {
        h.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static(deflate::RESPONSE),
        );
    }
    if let Some((name, _)) = subprotocol {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(name),
        );
    }
    Ok((response, accepted))
}

#[cfg(test)]
mod tests {
    use super::*;

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
