//! Seed points asserted end to end: what the client sends (connect data, name, version,
//! upgrade headers, subscription data, `send`) as a recording WebSocket server sees it, a
//! successful RPC and subscription error events against `gyre serve`, the client-wide
//! subscription token callback, and `max_server_ping_delay(0)` disabling the no-ping check.

mod common;

use std::time::Duration;

use common::{Server, insecure_config, wait_client, wait_sub};
use futures_util::{SinkExt, StreamExt};
use gyre_client::core::{Config, Core, Output};
use gyre_client::{
    ClientEvent, ClientOptions, Error, SubscriptionEvent, SubscriptionOptions, SubscriptionState,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_websockets::{Message, ServerBuilder};

/// A one-connection WebSocket server that answers connect and subscribe commands and
/// reports the upgrade request's headers and every command it receives.
async fn recording_server() -> (u16, mpsc::UnboundedReceiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let Ok((req, mut ws)) = ServerBuilder::new().accept(tcp).await else {
            return;
        };
        let headers: serde_json::Map<String, Value> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
            .collect();
        let _ = tx.send(json!({ "headers": headers }));
        while let Some(Ok(msg)) = ws.next().await {
            let Some(text) = msg.as_text() else { continue };
            for line in text.lines() {
                let Ok(cmd) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                let id = cmd["id"].clone();
                let reply = if cmd.get("connect").is_some() {
                    Some(json!({"id": id, "connect": {"client": "c1", "version": "0.0.0"}}))
                } else if cmd.get("subscribe").is_some() {
                    Some(json!({"id": id, "subscribe": {}}))
                } else {
                    None
                };
                let _ = tx.send(cmd);
                if let Some(r) = reply
                    && ws.send(Message::text(r.to_string())).await.is_err()
                {
                    return;
                }
            }
        }
    });
    (port, rx)
}

async fn next_with(rx: &mut mpsc::UnboundedReceiver<Value>, key: &str) -> Value {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let v = rx.recv().await.expect("server still running");
            if v.get(key).is_some() {
                return v;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {key} command"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_data_name_version_headers_sub_data_and_send_reach_the_server() {
    let (port, mut rx) = recording_server().await;
    let client = ClientOptions::new(format!("ws://127.0.0.1:{port}/connection/websocket"))
        .data(&br#"{"hello":"world"}"#[..])
        .name("seed-test")
        .version("1.2.3")
        .header("authorization", "Bearer abc")
        .connect_header("x-emulated", "yes")
        .build()
        .expect("build");
    let sub = client
        .new_subscription(
            "news",
            SubscriptionOptions::new().data(&br#"{"sub":"data"}"#[..]),
        )
        .expect("sub");
    sub.subscribe();
    client.connect();
    let upgrade = next_with(&mut rx, "headers").await;
    assert_eq!(
        upgrade["headers"]["authorization"], "Bearer abc",
        "{upgrade}"
    );
    let connect = next_with(&mut rx, "connect").await;
    assert_eq!(
        connect["connect"]["data"],
        json!({"hello": "world"}),
        "{connect}"
    );
    assert_eq!(connect["connect"]["name"], "seed-test", "{connect}");
    assert_eq!(connect["connect"]["version"], "1.2.3", "{connect}");
    assert_eq!(
        connect["connect"]["headers"],
        json!({"x-emulated": "yes"}),
        "connect-command headers (header emulation): {connect}"
    );
    let subscribe = next_with(&mut rx, "subscribe").await;
    assert_eq!(subscribe["subscribe"]["channel"], "news", "{subscribe}");
    assert_eq!(
        subscribe["subscribe"]["data"],
        json!({"sub": "data"}),
        "{subscribe}"
    );
    client.send(&br#"{"async":1}"#[..]).await.expect("send");
    let send = next_with(&mut rx, "send").await;
    assert_eq!(send["send"]["data"], json!({"async": 1}), "{send}");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_rpc_and_subscription_error_events() {
    let mut config = insecure_config();
    config["rpc"] = json!({"ping": {"enabled": true, "method": "ping"}});
    let server = Server::start(config);
    let client = ClientOptions::new(server.url()).build().expect("build");
    client.connect();
    client.ready(None).await.expect("connected");
    let data = client
        .rpc("ping", &b"{}"[..])
        .await
        .expect("ping rpc succeeds");
    assert!(data.is_empty() || data.as_ref() == b"{}", "{data:?}");

    // A namespace the server does not know: error event, then unsubscribed with its code.
    let sub = client
        .new_subscription("missing:ch", SubscriptionOptions::new())
        .expect("sub");
    let mut events = sub.events();
    sub.subscribe();
    let e = wait_sub(&mut events, "error", |e| {
        matches!(e, SubscriptionEvent::Error { .. })
    })
    .await;
    assert!(
        matches!(
            e,
            SubscriptionEvent::Error {
                kind: gyre_client::ErrorKind::Subscribe,
                error: Error::Server { code: 102, .. }
            }
        ),
        "{e:?}"
    );
    let u = wait_sub(&mut events, "unsubscribed", |e| {
        matches!(e, SubscriptionEvent::Unsubscribed { .. })
    })
    .await;
    assert!(
        matches!(u, SubscriptionEvent::Unsubscribed { code: 102, .. }),
        "{u:?}"
    );
    assert_eq!(sub.state(), SubscriptionState::Unsubscribed);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_wide_subscription_token_callback() {
    let server = Server::start(common::token_config());
    let (asked_tx, mut asked) = mpsc::unbounded_channel();
    let client = ClientOptions::new(server.url())
        .token(common::connection_token("alice", 3600))
        .get_subscription_token(move |ctx| {
            let _ = asked_tx.send(ctx.channel.clone());
            async move {
                let ch = ctx.channel.unwrap_or_default();
                Ok(common::sign(&json!({
                    "sub": "alice", "channel": ch, "exp": common::now() + 3600
                })))
            }
        })
        .build()
        .expect("build");
    let mut client_events = client.events();
    let sub = client
        .new_subscription("tokened", SubscriptionOptions::new())
        .expect("sub");
    sub.subscribe();
    client.connect();
    wait_client(&mut client_events, "connected", |e| {
        matches!(e, ClientEvent::Connected(_))
    })
    .await;
    sub.ready(None)
        .await
        .expect("subscribed with the client-wide token");
    assert_eq!(asked.recv().await, Some(Some("tokened".to_owned())));
    client.close().await;
}

fn connected_core(max_server_ping_delay: u64) -> Core {
    let cfg = Config {
        max_server_ping_delay,
        ..Config::default()
    };
    let mut core = Core::new(cfg, 7);
    core.connect(0);
    let mut transport = None;
    let mut connect_id = None;
    while let Some(out) = core.poll_output() {
        if let Output::Open(t) = out {
            transport = Some(t);
        }
    }
    let t = transport.expect("transport opened");
    core.transport_opened(0, t);
    while let Some(out) = core.poll_output() {
        if let Output::Send { frame, .. } = out {
            let cmd: Value = serde_json::from_slice(&frame).expect("json connect");
            connect_id = cmd["id"].as_u64();
        }
    }
    let id = connect_id.expect("connect command sent");
    let reply =
        json!({"id": id, "connect": {"client": "c", "version": "v", "ping": 25, "pong": true}});
    core.transport_frame(1, t, reply.to_string().as_bytes());
    while core.poll_output().is_some() {}
    assert_eq!(core.state(), gyre_client::State::Connected);
    core
}

#[test]
fn zero_max_server_ping_delay_disables_the_no_ping_check() {
    assert_eq!(
        connected_core(10_000).next_deadline(),
        Some(1 + 25_000 + 10_000)
    );
    assert_eq!(connected_core(0).next_deadline(), None);
}
