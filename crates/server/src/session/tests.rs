//! Unit tests of the parent module.

use super::*;
use std::time::Duration;

/// Every connection holds its session future for its whole life, so its size is paid per
/// idle connection: command handling, server actions and clean-up are boxed while they run
/// instead of being laid out inline (inline, the future was 6.6 KB).
#[tokio::test]
async fn session_future_stays_small() {
    let node = Node::new(
        gyre_config::Config::default(),
        tokio_util::sync::CancellationToken::new(),
    )
    .expect("node");
    let (io, _peer) = tokio::io::duplex(64);
    let ws = crate::transport::ws::codec::WsStream::new(io, 1 << 16);
    let transport = crate::transport::ws::WsTransport::new(ws, Protocol::Json, Duration::ZERO);
    let future = run(node, transport, Protocol::Json, Arc::default());
    let size = std::mem::size_of_val(&future);
    assert!(size <= 1536, "session future is {size} bytes");
}

/// The same bound holds over the HTTP-streaming and SSE transport.
#[tokio::test]
async fn session_future_stays_small_when_streaming() {
    let node = Node::new(
        gyre_config::Config::default(),
        tokio_util::sync::CancellationToken::new(),
    )
    .expect("node");
    let (registration, commands) = node.emulation.register(Protocol::Json);
    let (transport, _body) = crate::transport::stream::StreamTransport::new(
        crate::transport::stream::Framing::Sse,
        Bytes::new(),
        Some((registration, commands)),
    );
    let future = run(node, transport, Protocol::Json, Arc::default());
    let size = std::mem::size_of_val(&future);
    assert!(size <= 1536, "session future is {size} bytes");
}
