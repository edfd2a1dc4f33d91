//! Server-side subscriptions: the server subscribes the connection (token `channels` claim,
//! or `POST /api/subscribe {"channel":"news","client":"<id>"}`); their events arrive on the
//! client event stream, and client-level `publish`/`history`/`presence` work by channel.

//!
//! The server URL is `$GYRE_URL` (default `ws://127.0.0.1:8000/connection/websocket`).
mod support;

use gyre_client::{ClientEvent, ClientOptions};

#[tokio::main]
async fn main() -> Result<(), gyre_client::Error> {
    let client = ClientOptions::new(support::url()).build()?;
    let mut events = client.events();
    client.connect();
    while let Some(e) = events.recv().await {
        match e {
            ClientEvent::Connected(ctx) => println!("connected, client id {}", ctx.client),
            ClientEvent::Subscribed(ctx) => println!("server-side subscribed: {}", ctx.channel),
            ClientEvent::Subscribing { channel, .. } => println!("subscribing: {channel}"),
            ClientEvent::Unsubscribed { channel, .. } => println!("unsubscribed: {channel}"),
            ClientEvent::Publication(p) => {
                println!("{}: {}", p.channel, String::from_utf8_lossy(&p.data));
                let stats = client.presence_stats(&p.channel).await;
                println!("  presence stats: {stats:?}");
            }
            other => println!("{other:?}"),
        }
    }
    Ok(())
}
