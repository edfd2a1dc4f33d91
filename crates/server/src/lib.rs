//! Gyre, a Centrifugo-compatible real-time messaging server.
//!
//! - [`node`]: the service layer over the hub and the engine (publish, history, presence,
//!   channel checks, the cluster control protocol); engines report to it through
//!   [`engine::EngineEvents`].
//! - [`hub`]: local sessions and subscribers; broadcasting encodes once per shape.
//! - [`tags_filter`]: subscribers' tags filters, checked at subscribe, matched at fan-out.
//! - [`engine`]: streams, delivery, presence and control: memory (one node) or Redis.
//! - [`session`]: one task per connection, running the client protocol.
//! - [`outbound`]: the shared half of a session and its byte-bounded queue.
//! - [`pinger`]: one shared timer for all pings.
//! - `policy`: who may connect, subscribe, publish, call RPC and refresh.
//! - [`proxy`]: the application backend's decisions over HTTP or GRPC (connect, refresh,
//!   subscribe, publish, RPC); `http_client` and `grpc_client` hold the node's connections.
//! - `endpoint`: the connection endpoints, each running sessions over its transport;
//! - [`transport`]: the client transports (WebSocket, HTTP-streaming, SSE) sessions run over;
//!   [`api`]: the server HTTP API.
//! - `shared_poll`: shared poll subscriptions, the keys one poller per channel asks the
//!   backend about for all of a node's subscribers.
//! - [`app`]: wiring of all the above into an HTTP server.

#![warn(unreachable_pub)]

pub(crate) mod api;
pub mod app;
pub(crate) mod consumer;
pub(crate) mod delta;
pub(crate) mod emulation;
pub(crate) mod endpoint;
pub(crate) mod engine;
pub(crate) mod grpc_client;
pub(crate) mod http_client;
pub mod hub;
pub(crate) mod jwks;
pub(crate) mod metrics;
pub(crate) mod node;
pub mod outbound;
pub(crate) mod pinger;
pub(crate) mod policy;
pub(crate) mod proxy;
pub(crate) mod session;
pub(crate) mod sharded;
pub(crate) mod shared_poll;
pub mod tags_filter;
pub(crate) mod time;
pub(crate) mod tls;
pub(crate) mod transport;

pub use node::token_verifiers;
pub use time::unix_now;

/// Feeds `input` to the server's WebSocket frame reader as a client's bytes, `chunk` bytes per
/// read, and returns the sizes of the data messages it handed out and the close code it ended
/// with (`None` for a clean end of input). Each message is checked against the RFC 6455 rules
/// the reader enforces (text is UTF-8, no message over `max_payload`). Fuzzing and tests only.
#[doc(hidden)]
pub fn fuzz_websocket_read(
    input: &[u8],
    chunk: usize,
    max_payload: usize,
) -> (Vec<usize>, Option<u16>) {
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// Reads `input` in chunks; swallows every write.
    struct Feed<'a> {
        input: &'a [u8],
        chunk: usize,
    }
    impl AsyncRead for Feed<'_> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let n = self.input.len().min(self.chunk.max(1)).min(buf.remaining());
            let (head, tail) = self.input.split_at(n);
            buf.put_slice(head);
            self.input = tail;
            Poll::Ready(Ok(()))
        }
    }
    impl AsyncWrite for Feed<'_> {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    let mut ws = transport::ws::codec::WsStream::new(Feed { input, chunk }, max_payload);
    let mut cx = Context::from_waker(Waker::noop());
    let mut sizes = Vec::new();
    // Every poll consumes input or ends, so this loop is bounded by the input's length.
    for _ in 0..=input.len() + 1 {
        let next = std::pin::pin!(ws.next());
        match next.poll(&mut cx) {
            Poll::Ready(Some(Ok(message))) => {
                let payload = message.as_payload();
                assert!(payload.len() <= max_payload, "message over the limit");
                if message.is_text() {
                    assert!(
                        std::str::from_utf8(payload).is_ok(),
                        "text message not UTF-8"
                    );
                }
                sizes.push(payload.len());
            }
            Poll::Ready(Some(Err(transport::ws::codec::WsError::Protocol { code, .. }))) => {
                return (sizes, Some(code));
            }
            Poll::Ready(Some(Err(transport::ws::codec::WsError::Io(_)))) => {
                return (sizes, Some(1006));
            }
            Poll::Ready(None) => return (sizes, None),
            Poll::Pending => unreachable!("in-memory reads are always ready"),
        }
    }
    unreachable!("the reader made no progress")
}
