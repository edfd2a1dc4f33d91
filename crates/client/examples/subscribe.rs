//! Subscribes to a channel and prints its publications. Run `gyre serve --client.insecure`,
//! then `cargo run -p gyre-client --example subscribe -- news` and publish with
//! `curl -X POST -H 'X-API-Key: <key>' -d '{"channel":"news","data":{"text":"hi"}}' \
//!   http://127.0.0.1:8000/api/publish`.

//!
//! The server URL is `$GYRE_URL` (default `ws://127.0.0.1:8000/connection/websocket`).
mod support;

use gyre_client::{ClientOptions, SubscriptionEvent, SubscriptionOptions};

#[tokio::main]
async fn main() -> Result<(), gyre_client::Error> {
    let channel = std::env::args().nth(1).unwrap_or_else(|| "news".into());
    let client = ClientOptions::new(support::url()).build()?;
    let sub = client.new_subscription(
        &channel,
        SubscriptionOptions::new()
            .recoverable(true)
            .positioned(true),
    )?;
    let mut events = sub.events();
    sub.subscribe(); // before connect: sent right after the connect reply
    client.connect();
    while let Some(event) = events.recv().await {
        match event {
            SubscriptionEvent::Subscribed(ctx) => println!(
                "subscribed (was_recovering={}, recovered={})",
                ctx.was_recovering, ctx.recovered
            ),
            SubscriptionEvent::Publication(p) => {
                println!("#{} {}", p.offset, String::from_utf8_lossy(&p.data));
            }
            other => println!("{other:?}"),
        }
    }
    Ok(())
}
