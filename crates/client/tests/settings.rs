//! Run-time settings and serde helpers against `gyre serve`: `set_data` and `set_headers`
//! reach the connect proxy on the next connect, `set_token` makes the next connect succeed,
//! bad values are refused, `rpc_json` through the RPC proxy and `publish_json` /
//! `Publication::json` round trips; and lossy-mode loss reports against a stalled consumer.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State as AxState;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use common::{Server, connection_token, token_config, wait_client, wait_sub};
use gyre_client::{
    ClientEvent, ClientOptions, Error, HistoryOptions, State, StreamPosition, SubscriptionEvent,
    SubscriptionOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What the backend saw of each connect proxy call: (data, x-team header).
type Seen = Arc<Mutex<Vec<(Value, String)>>>;

async fn connect(
    AxState(seen): AxState<Seen>,
    headers: HeaderMap,
    Json(req): Json<Value>,
) -> Json<Value> {
    let team = headers
        .get("x-team")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    seen.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((payload(&req), team));
    Json(json!({"result": {"user": "u1"}}))
}

/// The request's payload: `data` from JSON clients, `b64data` from Protobuf ones.
fn payload(req: &Value) -> Value {
    use base64::Engine;
    match req["b64data"].as_str() {
        Some(b) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or(Value::Null),
        None => req["data"].clone(),
    }
}

async fn rpc(Json(req): Json<Value>) -> Json<Value> {
    let n = payload(&req)["n"].as_i64().unwrap_or(0);
    Json(json!({"result": {"data": {"doubled": n * 2, "method": req["method"]}}}))
}

/// An HTTP backend for the connect and RPC proxies on a free port.
async fn backend() -> (u16, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/connect", post(connect))
        .route("/rpc", post(rpc))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, seen)
}

fn proxy_config(backend: u16) -> Value {
    let endpoint = |p: &str| format!("http://127.0.0.1:{backend}/{p}");
    json!({
        "http_server": {"address": "127.0.0.1", "port": 0},
        "client": {"proxy": {"connect": {
            "enabled": true, "endpoint": endpoint("connect"), "http_headers": ["x-team"]
        }}},
        "channel": {"without_namespace": {
            "allow_subscribe_for_client": true, "allow_publish_for_client": true,
            "history_size": 1000, "history_ttl": "300s", "force_recovery": true,
            "allow_history_for_subscriber": true
        }},
        "rpc": {
            "proxy": {"endpoint": endpoint("rpc")},
            "without_namespace": {"proxy_enabled": true}
        },
    })
}

async fn connected(
    client: &gyre_client::Client,
    events: &mut gyre_client::EventStream<ClientEvent>,
) {
    client.connect();
    wait_client(events, "connected", |e| {
        matches!(e, ClientEvent::Connected(_))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_data_and_set_headers_reach_the_next_connect() {
    let (port, seen) = backend().await;
    let server = Server::start(proxy_config(port));
    let client = ClientOptions::new(server.url())
        .data(&br#"{"v":1}"#[..])
        .header("x-team", "red")
        .build()
        .expect("build");
    let mut events = client.events();
    connected(&client, &mut events).await;

    client.set_data(&br#"{"v":2}"#[..]).expect("set data");
    client
        .set_headers([("x-team", "blue")])
        .expect("set headers");
    // Invalid values are refused and change nothing.
    assert!(matches!(
        client.set_data(&b"not json"[..]),
        Err(Error::InvalidData(_))
    ));
    assert!(matches!(
        client.set_headers([("bad name", "x")]),
        Err(Error::Configuration(_))
    ));
    // The current connection is not touched; the next connect carries the new values.
    assert_eq!(client.state(), State::Connected);
    client.disconnect();
    connected(&client, &mut events).await;

    let seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert_eq!(
        seen,
        vec![
            (json!({"v": 1}), "red".to_owned()),
            (json!({"v": 2}), "blue".to_owned())
        ]
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_token_makes_the_next_connect_succeed() {
    let server = Server::start(token_config());
    let client = ClientOptions::new(server.url())
        .token("not-a-jwt")
        .build()
        .expect("build");
    let mut events = client.events();
    client.connect();
    let gone = wait_client(&mut events, "disconnected", |e| {
        matches!(e, ClientEvent::Disconnected { .. })
    })
    .await;
    assert!(
        matches!(gone, ClientEvent::Disconnected { code: 3500, .. }),
        "{gone:?}"
    );
    client
        .set_token(connection_token("alice", 3600))
        .expect("set token");
    connected(&client, &mut events).await;
    client.close().await;
}

#[derive(Serialize)]
struct Double {
    n: i64,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Doubled {
    doubled: i64,
    method: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Chat {
    text: String,
    seq: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_json_and_publish_json_round_trip() {
    let (port, _seen) = backend().await;
    let server = Server::start(proxy_config(port));
    for protocol in [gyre_client::Protocol::Json, gyre_client::Protocol::Protobuf] {
        let client = ClientOptions::new(server.url())
            .protocol(protocol)
            .build()
            .expect("build");
        client.connect();
        let r: Doubled = client
            .rpc_json("double", &Double { n: 21 })
            .await
            .expect("rpc_json");
        assert_eq!(
            r,
            Doubled {
                doubled: 42,
                method: "double".into()
            }
        );
        // A result that does not fit the type is an InvalidData error, not a panic.
        let wrong: Result<Chat, Error> = client.rpc_json("double", &Double { n: 1 }).await;
        assert!(matches!(wrong, Err(Error::InvalidData(_))), "{wrong:?}");

        let channel = format!("chat-{protocol:?}");
        let sub = client
            .new_subscription(channel.as_str(), SubscriptionOptions::new())
            .expect("sub");
        let mut events = sub.events();
        sub.subscribe();
        sub.ready(None).await.expect("subscribed");
        let msg = Chat {
            text: "hi".into(),
            seq: 7,
        };
        sub.publish_json(&msg).await.expect("publish_json");
        client
            .publish_json(
                &channel,
                &Chat {
                    text: "again".into(),
                    seq: 8,
                },
            )
            .await
            .expect("client publish_json");
        for want in [
            msg,
            Chat {
                text: "again".into(),
                seq: 8,
            },
        ] {
            let ev = wait_sub(&mut events, "publication", |e| {
                matches!(e, SubscriptionEvent::Publication(_))
            })
            .await;
            let SubscriptionEvent::Publication(p) = ev else {
                unreachable!()
            };
            assert_eq!(p.json::<Chat>().expect("decodes"), want);
        }
        client.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_mode_reports_what_it_dropped_and_where_to_recover() {
    const COUNT: u64 = 200;
    const CAPACITY: usize = 16;
    let (port, _seen) = backend().await;
    let server = Server::start(proxy_config(port));
    let reader = ClientOptions::new(server.url())
        .backpressure(false)
        .event_capacity(CAPACITY)
        .build()
        .expect("build");
    reader.connect();
    let sub = reader
        .new_subscription("lossy", SubscriptionOptions::new().recoverable(true))
        .expect("sub");
    let mut events = sub.events();
    sub.subscribe();
    sub.ready(None).await.expect("subscribed");
    let writer = ClientOptions::new(server.url()).build().expect("writer");
    writer.connect();
    for n in 1..=COUNT {
        writer
            .publish_json("lossy", &json!({ "n": n }))
            .await
            .expect("publish");
    }
    // Wait (bounded) until the reader's task has seen every publication: then the
    // consumer, which read nothing so far, has lost all but the first CAPACITY events.
    let mut dropped = 0;
    for _ in 0..500 {
        let top = sub
            .history(HistoryOptions::default())
            .await
            .map(|h| h.offset)
            .unwrap_or(0);
        dropped = reader.stats().await.expect("stats").publications_dropped;
        if top == COUNT && dropped > 0 && dropped + (CAPACITY as u64) >= COUNT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Now read: the buffered events, then at once (no later publication needed) the notice.
    let mut delivered = Vec::new();
    let lag = loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("an event or the notice in time")
            .expect("stream open");
        match ev {
            SubscriptionEvent::Publication(p) => delivered.push(p.offset),
            SubscriptionEvent::Lagged {
                missed,
                publications,
                recover_from,
            } => break (missed, publications, recover_from),
            _ => {}
        }
    };
    let (missed, publications, recover_from) = lag;
    assert_eq!(publications, dropped, "the notice and the stats agree");
    assert_eq!(missed, publications, "only publications were dropped");
    assert_eq!(
        delivered.len() as u64 + publications,
        COUNT,
        "{delivered:?}"
    );
    let last = *delivered.last().expect("some delivered");
    let from: StreamPosition = recover_from.expect("a position to recover from");
    assert_eq!(
        from.offset, last,
        "recover from just after the last delivered"
    );
    // History from that position returns exactly what was lost.
    let lost = sub
        .history(HistoryOptions {
            limit: -1,
            since: Some(from),
            ..Default::default()
        })
        .await
        .expect("history since");
    let offsets: Vec<u64> = lost.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, ((last + 1)..=COUNT).collect::<Vec<_>>());
    reader.close().await;
    writer.close().await;
}
