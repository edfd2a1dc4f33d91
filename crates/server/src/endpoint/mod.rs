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
use axum::http::Request;
use axum::response::Response;

use crate::node::Node;
use crate::transport::ws::handshake;

/// `/connection/websocket`: the upgrade, then a session on the upgraded connection.
pub(crate) async fn websocket(State(node): State<Arc<Node>>, req: Request<Body>) -> Response {
    let (response, mut accepted) = match handshake::accept(&node, req) {
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
