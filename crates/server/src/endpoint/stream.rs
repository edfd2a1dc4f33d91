//! `/connection/http_stream` and `/connection/sse`: the connect command comes with the request
//! (the POST body, or SSE's `cf_connect` query parameter), the response streams the session's
//! messages, and later commands come through `/emulation` by the session id of the connect
//! result. Status codes as upstream: 405 for another method, 400 for an SSE request without
//! `cf_connect`, 413 for a body over `max_request_body_size`, 503 over the connection limit.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use gyre_protocol::Protocol;
use serde::Deserialize;

use crate::node::Node;
use crate::proxy::ConnMeta;
use crate::transport::stream::{Framing, StreamTransport};
use crate::transport::{OpenConnection, Transport as _};

/// What upstream answers when the client went away while sending its request.
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// A request body, read up to `limit` bytes (0: upstream's default).
pub(super) async fn read_body(body: Body, limit: usize) -> Result<Bytes, StatusCode> {
    let limit = if limit == 0 {
        gyre_config::DEFAULT_MAX_REQUEST_BODY_SIZE
    } else {
        limit
    };
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(err) => {
            let too_large = std::error::Error::source(&err)
                .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
            tracing::info!("error reading request body: {err}");
            Err(if too_large {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::from_u16(CLIENT_CLOSED_REQUEST).unwrap_or(StatusCode::BAD_REQUEST)
            })
        }
    }
}

/// `POST /connection/http_stream` (and its pre-flight `OPTIONS`).
pub(crate) async fn http_stream(State(node): State<Arc<Node>>, req: Request<Body>) -> Response {
    super::post_only(&node, req, |req| async {
        let protocol = if content_type_is_binary(req.headers()) {
            Protocol::Protobuf
        } else {
            Protocol::Json
        };
        let limit = node.config.http_stream.max_request_body_size;
        let (parts, body) = req.into_parts();
        match read_body(body, limit).await {
            Ok(first) => start(
                &node,
                Framing::HttpStream(protocol),
                protocol,
                first,
                &parts,
            ),
            Err(status) => status.into_response(),
        }
    })
    .await
}

/// SSE's query: the connect command.
#[derive(Debug, Deserialize)]
struct SseQuery {
    cf_connect: Option<String>,
}

/// `GET /connection/sse?cf_connect=...` or `POST /connection/sse`.
pub(crate) async fn sse(State(node): State<Arc<Node>>, req: Request<Body>) -> Response {
    let headers = req.headers().clone();
    let (parts, body) = req.into_parts();
    let first = if parts.method == Method::GET {
        match Query::<SseQuery>::try_from_uri(&parts.uri) {
            Ok(Query(SseQuery {
                cf_connect: Some(connect),
            })) if !connect.is_empty() => Ok(Bytes::from(connect)),
            _ => {
                tracing::debug!("sse: no connect command");
                Err(StatusCode::BAD_REQUEST)
            }
        }
    } else if parts.method == Method::POST {
        read_body(body, node.config.sse.max_request_body_size).await
    } else {
        Err(StatusCode::METHOD_NOT_ALLOWED)
    };
    let response = match first {
        Ok(first) => start(&node, Framing::Sse, Protocol::Json, first, &parts),
        Err(status) => status.into_response(),
    };
    super::with_cors(&node, &headers, response)
}

fn content_type_is_binary(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/octet-stream")
}

/// Registers the session (emulation), starts it and answers with its stream.
pub(super) fn start(
    node: &Arc<Node>,
    framing: Framing,
    protocol: Protocol,
    first: Bytes,
    parts: &axum::http::request::Parts,
) -> Response {
    if !OpenConnection::available(node) {
        return (StatusCode::SERVICE_UNAVAILABLE, "connection limit reached").into_response();
    }
    let counted = OpenConnection::count(node);
    let emulation = (!framing.unidirectional()).then(|| node.emulation.register(protocol));
    let session = match &emulation {
        Some((registration, _)) => registration.session.clone(),
        None => Arc::from(uuid::Uuid::new_v4().to_string()),
    };
    let (transport, body) = StreamTransport::new(framing, first, emulation);
    let conn = Arc::new(ConnMeta {
        headers: parts.headers.clone(),
        remote: crate::transport::remote_addr(&parts.extensions),
        transport: transport.info().name,
        session: Some(session),
    });
    let session_node = node.clone();
    node.tasks.spawn(async move {
        let _counted = counted;
        crate::session::run(session_node, transport, protocol, conn).await;
    });
    let mut response = Response::new(body);
    let h = response.headers_mut();
    if parts.version < Version::HTTP_2 {
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    }
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if framing.is_sse() {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache, no-store, must-revalidate, max-age=0"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert("expire", HeaderValue::from_static("0"));
    response
}
