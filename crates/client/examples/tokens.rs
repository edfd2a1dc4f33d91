//! Connection and subscription tokens with refresh through async callbacks.
//!
//! The callbacks here return a fixed string; a real application asks its backend for a JWT.
//! `Ok("")` means "not allowed" and moves the client to `Disconnected` (or the subscription
//! to `Unsubscribed`); an `Err` is retried after a jittered delay. Run against a server with
//! `client.token.hmac_secret_key` set and pass a token: `cargo run -p gyre-client --example
//! tokens -- <jwt>`.

//!
//! The server URL is `$GYRE_URL` (default `ws://127.0.0.1:8000/connection/websocket`).
mod support;

use gyre_client::{ClientEvent, ClientOptions, SubscriptionOptions, TokenContext};

#[tokio::main]
async fn main() -> Result<(), gyre_client::Error> {
    let jwt = std::env::args().nth(1).unwrap_or_default();
    let for_refresh = jwt.clone();
    let client = ClientOptions::new(support::url())
        .get_token(move |_ctx: TokenContext| {
            let token = for_refresh.clone();
            async move {
                println!("connection token requested");
                Ok(token)
            }
        })
        .build()?;
    let sub = client.new_subscription(
        "private",
        SubscriptionOptions::new().get_token(|ctx: TokenContext| async move {
            println!("subscription token requested for {:?}", ctx.channel);
            Ok(String::new()) // not allowed: the subscription ends unauthorized
        }),
    )?;
    let mut events = client.events();
    sub.subscribe();
    client.connect();
    while let Some(e) = events.recv().await {
        println!("{e:?}");
        if matches!(e, ClientEvent::Disconnected { .. }) {
            break;
        }
    }
    client.close().await;
    Ok(())
}
