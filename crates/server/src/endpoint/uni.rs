//! The unidirectional endpoints, for clients without an SDK (`EventSource`, `fetch`
//! streaming, a plain WebSocket): `uni_websocket` (see [`crate::transport::ws::uni`]),
//! `uni_http_stream` (`POST`, the connect request as the JSON body) and
//! `uni_sse` (`GET` with the connect request as JSON in `cf_connect`, none meaning an empty
//! one, or `POST` with it as the body). The response carries a connect push, then
//! publications, joins, leaves and pings of the server-side subscriptions (token `channels`,
//! the personal channel, API subscribe) as bare pushes; nothing is expected back.
//! Status codes as upstream: 400 for a connect request that is not JSON, 405 for another
//! method, 413 over `max_request_body_size`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use gyre_protocol::{ConnectRequest, Protocol};
use serde::Deserialize;

use super::stream::{read_body, start};
use crate::node::Node;
use crate::transport::stream::Framing;
use crate::transport::ws::uni::UniWsTransport;
use crate::transport::ws::{WsTransport, handshake};

/// A connect request as a unidirectional client sends it: JSON (`null` reads as empty).
fn connect_request(data: Bytes) -> Result<Bytes, StatusCode> {
    match serde_json::from_slice::<Option<ConnectRequest>>(&data) {
        Ok(_) => Ok(data),
        Err(err) => {
            tracing::debug!("malformed connect request: {err}");
            Err(StatusCode::BAD_REQUEST)
        }
    }
}

/// `POST /connection/uni_http_stream` (and its pre-flight `OPTIONS`).
pub(crate) async fn http_stream(State(node): State<Arc<Node>>, req: Request<Body>) -> Response {
    super::post_only(&node, req, |req| async {
        let (parts, body) = req.into_parts();
        let limit = node.config.uni_http_stream.max_request_body_size;
        match read_body(body, limit).await.and_then(connect_request) {
            Ok(first) => start(&node, Framing::UniHttpStream, Protocol::Json, first, &parts),
            Err(status) => status.into_response(),
        }
    })
    .await
}

/// `uni_sse`'s query: the connect request.
#[derive(Debug, Deserialize)]
struct Connect {
    cf_connect: Option<String>,
}

/// `GET /connection/uni_sse[?cf_connect=...]` or `POST /connection/uni_sse`.
pub(crate) async fn sse(State(node): State<Arc<Node>>, req: Request<Body>) -> Response {
    let headers = req.headers().clone();
    let (parts, body) = req.into_parts();
    let first = if parts.method == Method::GET {
        match Query::<Connect>::try_from_uri(&parts.uri) {
            Ok(Query(Connect {
                cf_connect: Some(connect),
            })) if !connect.is_empty() => connect_request(Bytes::from(connect)),
            Ok(_) => Ok(Bytes::from_static(b"{}")),
            Err(_) => Err(StatusCode::BAD_REQUEST),
        }
    } else if parts.method == Method::POST {
        let limit = node.config.uni_sse.max_request_body_size;
        read_body(body, limit).await.and_then(connect_request)
    } else {
        Err(StatusCode::METHOD_NOT_ALLOWED)
    };
    let response = match first {
        Ok(first) => start(&node, Framing::UniSse, Protocol::Json, first, &parts),
        Err(status) => status.into_response(),
    };
    super::with_cors(&node, &headers, response)
}

/// `GET /connection/uni_websocket[?cf_connect=...]`: the upgrade, then a unidirectional
/// session (the connect request from the query or the first message).
pub(crate) async fn websocket(State(node): State<Arc<Node>>, req: Request<Body>) -> Response {
    let first = match Query::<Connect>::try_from_uri(req.uri()) {
        Ok(Query(Connect {
            cf_connect: Some(connect),
        })) if !connect.is_empty() => match connect_request(Bytes::from(connect)) {
            Ok(first) => Some(first),
            Err(status) => return (status, "invalid connect request").into_response(),
        },
        _ => None,
    };
    let (response, mut accepted) = match handshake::accept(&node, req, None) {
        Ok(accepted) => accepted,
        Err(refusal) => return *refusal,
    };
    node.tasks.clone().spawn(async move {
        let config = &node.config.uni_websocket;
        let (limit, write_timeout) = (config.message_size_limit, config.write_timeout.0);
        let (join, disconnect_push) = (config.join_push_messages, !config.disable_disconnect_push);
        let Some(ws) = accepted.upgraded(limit).await else {
            return;
        };
        let ws = WsTransport::new(ws, Protocol::Json, write_timeout);
        let transport = UniWsTransport::new(ws, first, join, disconnect_push);
        let _counted = accepted.counted;
        let mut conn = accepted.conn;
        conn.transport = "uni_websocket";
        conn.session = Some(Arc::from(uuid::Uuid::new_v4().to_string()));
        crate::session::run(node, transport, Protocol::Json, Arc::new(conn)).await;
    });
    response
}
