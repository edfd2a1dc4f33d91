//! `POST /emulation`: client-to-server commands of HTTP-streaming and SSE connections.
//!
//! The body is an emulation request, `{node, session, data}`: JSON (`data` a JSON string
//! holding the session's JSON commands) or, with `Content-Type: application/octet-stream`,
//! Protobuf (`data` the session's length-delimited Protobuf commands). Answers as upstream:
//! 204 once handed to the session (or when the session is not there: it ended), 400 for a
//! body that does not parse, 404 for an unknown node, 413 over `max_request_body_size`, 405
//! for another method; pre-flight `OPTIONS` gets 204 and CORS headers as configured.
//!
//! A request for another live node of a Redis cluster is not forwarded yet: it is answered
//! like a request for an unknown session (204) and the commands are dropped.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use gyre_protocol::Protocol;
use prost::Message as _;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::node::Node;

/// The Protobuf form of an emulation request (upstream's `EmulationRequest`).
#[derive(Clone, PartialEq, prost::Message)]
struct EmulationRequestProto {
    #[prost(string, tag = "1")]
    node: String,
    #[prost(string, tag = "2")]
    session: String,
    #[prost(bytes = "bytes", tag = "3")]
    data: Bytes,
}

/// The JSON form of an emulation request; `data` is kept as written.
#[derive(Debug, Deserialize)]
struct EmulationRequestJson<'a> {
    #[serde(default)]
    node: String,
    #[serde(default)]
    session: String,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// An emulation request, decoded.
#[derive(Debug)]
struct EmulationRequest {
    node: String,
    session: String,
    /// The data field's bytes: Protobuf bytes, or the JSON text of the value.
    data: Bytes,
}

fn decode(binary: bool, body: &[u8]) -> Option<EmulationRequest> {
    if binary {
        let req = EmulationRequestProto::decode(body).ok()?;
        return Some(EmulationRequest {
            node: req.node,
            session: req.session,
            data: req.data,
        });
    }
    let req: EmulationRequestJson<'_> = serde_json::from_slice(body).ok()?;
    Some(EmulationRequest {
        node: req.node,
        session: req.session,
        data: req
            .data
            .map(|raw| Bytes::copy_from_slice(raw.get().as_bytes()))
            .unwrap_or_default(),
    })
}

/// The commands of a request for a session speaking `protocol`: a JSON session's data is a
/// JSON string of its commands.
fn commands(protocol: Protocol, data: &Bytes) -> Option<Bytes> {
    match protocol {
        Protocol::Protobuf => Some(data.clone()),
        Protocol::Json => serde_json::from_slice::<String>(data).ok().map(Bytes::from),
    }
}

/// Handles a request to the emulation endpoint.
pub(crate) async fn handle(State(node): State<Arc<Node>>, req: Request<Body>) -> Response {
    super::post_only(&node, req, |req| async {
        let binary = req
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == b"application/octet-stream");
        let limit = node.config.emulation.max_request_body_size;
        match super::stream::read_body(req.into_body(), limit).await {
            Ok(body) => emulate(&node, binary, &body).await.into_response(),
            Err(status) => status.into_response(),
        }
    })
    .await
}

/// Hands a request's commands to its session.
async fn emulate(node: &Node, binary: bool, body: &[u8]) -> StatusCode {
    let Some(req) = decode(binary, body) else {
        tracing::info!("can't decode emulation request");
        return StatusCode::BAD_REQUEST;
    };
    if req.node != node.events.id {
        if node.events.cluster.knows(&req.node) {
            tracing::debug!(node = %req.node, "emulation request for another node: not forwarded");
            return StatusCode::NO_CONTENT;
        }
        tracing::info!(node = %req.node, "emulation request for an unknown node");
        return StatusCode::NOT_FOUND;
    }
    let Some(session) = node.emulation.get(&req.session) else {
        tracing::debug!(session = %req.session, "emulation request for an unknown session");
        return StatusCode::NO_CONTENT;
    };
    let Some(frame) = commands(session.protocol, &req.data) else {
        tracing::info!(session = %req.session, "can't decode emulation request data");
        return StatusCode::NO_CONTENT;
    };
    if frame.is_empty() {
        return StatusCode::NO_CONTENT;
    }
    // Waits while the session has a few frames unread; fails only once it has ended.
    let _ = session.commands.send(frame).await;
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_forms() {
        let json = br#"{"node":"n","session":"s","data":"{\"id\":2,\"ping\":{}}"}"#;
        let req = decode(false, json).expect("json");
        assert_eq!((req.node.as_str(), req.session.as_str()), ("n", "s"));
        assert_eq!(
            commands(Protocol::Json, &req.data).as_deref(),
            Some(&br#"{"id":2,"ping":{}}"#[..])
        );
        let proto = EmulationRequestProto {
            node: "n".into(),
            session: "s".into(),
            data: Bytes::from_static(&[1, 2]),
        }
        .encode_to_vec();
        let req = decode(true, &proto).expect("protobuf");
        assert_eq!(
            commands(Protocol::Protobuf, &req.data).as_deref(),
            Some(&[1u8, 2][..])
        );
        assert!(decode(false, b"{not json").is_none());
        assert!(decode(true, &[0xff, 0xff]).is_none());
        // A JSON session's data must be a JSON string.
        assert!(commands(Protocol::Json, &Bytes::from_static(b"{}")).is_none());
    }
}
