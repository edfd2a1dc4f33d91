//! The connection endpoints: each checks its HTTP request with its transport's adapter
//! ([`crate::transport`]) and runs a session ([`crate::session::run`]) over the result.
//! - `/connection/websocket`: [`websocket`];
//! - `/connection/http_stream` and `/connection/sse`: [`stream`];
//! - `/emulation`, the commands of the latter two: [`emulation`];
//! - `/connection/uni_websocket`, `/connection/uni_http_stream` and `/connection/uni_sse`
//!   (unidirectional): [`uni`].

pub(crate) mod emulation;
pub(crate) mod stream;
pub(crate) mod uni;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::node::Node;
use crate::transport::cors;
use crate::transport::ws::handshake;

/// Adds the CORS headers `client.allowed_origins` grants the request's origin.
fn with_cors(node: &Node, request_headers: &HeaderMap, mut response: Response) -> Response {
    cors::apply(
        &node.config.client.allowed_origins,
        request_headers,
        response.headers_mut(),
    );
    response
}

/// A POST endpoint of a browser transport: `OPTIONS` is a CORS pre-flight (204), methods other
/// than POST get 405, POST runs `post`, and every answer carries the CORS headers.
async fn post_only<F, Fut>(node: &Node, req: Request<Body>, post: F) -> Response
where
    F: FnOnce(Request<Body>) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let headers = req.headers().clone();
    let response = if req.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        cors::preflight(response.headers_mut());
        response
    } else if req.method() != Method::POST {
        StatusCode::METHOD_NOT_ALLOWED.into_response()
    } else {
        post(req).await
    };
    with_cors(node, &headers, response)
}

/// `/connection/websocket`: the upgrade, then a session on the upgraded connection.
pub(crate) async fn websocket(State(node): State<Arc<Node>>, req: Request<Body>) -> Response {
    let (response, mut accepted) =
        match handshake::accept(&node, req, handshake::deflate_settings(&node)) {
            Ok(accepted) => accepted,
            Err(refusal) => return *refusal,
        };
    node.tasks.clone().spawn(async move {
        let Some(transport) = accepted.transport().await else {
            return;
        };
        let _counted = accepted.counted;
        let conn = Arc::new(accepted.conn);
        crate::session::run(node, transport, accepted.protocol, conn).await;
    });
    response
}
