//! Calls an RPC method. Gyre answers 108 (not available) when no RPC handler is configured.

//!
//! The server URL is `$GYRE_URL` (default `ws://127.0.0.1:8000/connection/websocket`).
mod support;

use gyre_client::{ClientOptions, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let client = ClientOptions::new(support::url()).build()?;
    client.connect();
    match client.rpc("getCurrentYear", &br#"{}"#[..]).await {
        Ok(data) => println!("result: {}", String::from_utf8_lossy(&data)),
        Err(Error::Server { code, message, .. }) => println!("server error {code}: {message}"),
        Err(e) => println!("failed: {e}"),
    }
    client.close().await;
    Ok(())
}
