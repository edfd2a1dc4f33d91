//! Shared by the examples: the server URL.

/// The WebSocket endpoint: `$GYRE_URL`, or a local server on port 8000.
pub fn url() -> String {
    std::env::var("GYRE_URL")
        .unwrap_or_else(|_| "ws://127.0.0.1:8000/connection/websocket".to_owned())
}
