//! Publishes, then reads history, presence and presence stats of a channel (the channel needs
//! history and presence enabled, e.g. `channel.without_namespace` with `presence`,
//! `history_size` and `history_ttl`).

//!
//! The server URL is `$GYRE_URL` (default `ws://127.0.0.1:8000/connection/websocket`).
mod support;

use gyre_client::{ClientOptions, HistoryOptions, SubscriptionOptions};

#[tokio::main]
async fn main() -> Result<(), gyre_client::Error> {
    let client = ClientOptions::new(support::url()).build()?;
    let sub = client.new_subscription("room", SubscriptionOptions::new())?;
    sub.subscribe();
    client.connect();
    sub.ready(None).await?;
    sub.publish(&br#"{"text":"hello"}"#[..]).await?;
    let history = sub
        .history(HistoryOptions {
            limit: 10,
            ..Default::default()
        })
        .await?;
    println!("epoch {} top {}", history.epoch, history.offset);
    for p in history.publications {
        println!("  #{} {}", p.offset, String::from_utf8_lossy(&p.data));
    }
    println!("presence: {:?}", sub.presence().await?.clients.keys());
    println!("stats: {:?}", sub.presence_stats().await?);
    client.close().await;
    Ok(())
}
