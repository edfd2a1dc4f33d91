//! Logs every client state change. Run `gyre serve --client.insecure` (port 8000), then
//! `cargo run -p gyre-client --example state_logging`.

//!
//! The server URL is `$GYRE_URL` (default `ws://127.0.0.1:8000/connection/websocket`).
mod support;

use gyre_client::{ClientEvent, ClientOptions};

#[tokio::main]
async fn main() -> Result<(), gyre_client::Error> {
    let client = ClientOptions::new(support::url()).build()?;
    let mut events = client.events(); // register before connect to see everything
    client.connect();
    while let Some(event) = events.recv().await {
        match event {
            ClientEvent::Connecting { code, reason } => println!("connecting: {code} {reason}"),
            ClientEvent::Connected(ctx) => println!("connected with id {}", ctx.client),
            ClientEvent::Disconnected { code, reason } => {
                println!("disconnected: {code} {reason}");
                break;
            }
            ClientEvent::Error { kind, error } => println!("error ({kind:?}): {error}"),
            other => println!("{other:?}"),
        }
    }
    client.close().await;
    Ok(())
}
