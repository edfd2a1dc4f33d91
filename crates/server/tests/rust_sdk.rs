//! Conformance: the official Rust SDK (crates.io `centrifuge-client` 0.1.0, library
//! `centrifuge`) against the real `gyre serve` binary, over JSON and over protobuf.
//!
//! Each scenario is an async function taking the protocol; the `scenario!` macro turns it into
//! a `json` and a `protobuf` test, each against its own server.

mod support;

use std::time::Duration;

use centrifuge::{
    Client, ClientBuilder, Error, HistoryOptions, HistoryResult, Protocol, ProxyConfig, State,
    StreamPosition, SubState,
};
use serde_json::{Value, json};
use support::Gyre;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// How long any single expected event may take.
const WAIT: Duration = Duration::from_secs(5);

fn config() -> Value {
    support::config(json!({
        "channel": {
            "without_namespace": {
                "presence": true,
                "join_leave": true,
                "force_push_join_leave": true,
                "history_size": 10,
                "history_ttl": "300s",
                "force_recovery": true,
                "allow_subscribe_for_client": true,
                "allow_publish_for_subscriber": true,
                "allow_presence_for_subscriber": true,
                "allow_presence_for_client": true,
                "allow_history_for_client": true
            }
        }
    }))
}

fn user_token(user: &str) -> String {
    support::token(json!({"sub": user, "exp": support::now() + 3600}))
}

/// A client builder for `gyre` with `protocol` and a connection token, never via a proxy.
fn builder(gyre: &Gyre, protocol: Protocol, token: &str) -> ClientBuilder {
    Client::builder(gyre.ws_url())
        .protocol(protocol)
        .proxy(ProxyConfig::None)
        .timeout(WAIT)
        .token(token)
}

/// Client-level events, in arrival order.
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Connecting(u32, String),
    Connected(String),
    Disconnected(u32, String),
    Error(String),
}

/// Subscription-level events, in arrival order.
#[derive(Debug, Clone, PartialEq)]
enum SubEv {
    Subscribing(u32),
    Subscribed {
        was_recovering: bool,
        recovered: bool,
        recoverable: bool,
        position: Option<StreamPosition>,
    },
    Unsubscribed(u32),
    /// offset, payload as JSON, publisher (user, client).
    Publication(u64, Value, Option<(String, String)>),
}

fn with_client_events(b: ClientBuilder, tx: &UnboundedSender<Ev>) -> ClientBuilder {
    let (t1, t2, t3, t4) = (tx.clone(), tx.clone(), tx.clone(), tx.clone());
    b.on_connecting(move |_, e| {
        let _ = t1.send(Ev::Connecting(e.code, e.reason));
    })
    .on_connected(move |_, e| {
        let _ = t2.send(Ev::Connected(e.client_id));
    })
    .on_disconnected(move |_, e| {
        let _ = t3.send(Ev::Disconnected(e.code, e.reason));
    })
    .on_error(move |_, e| {
        let _ = t4.send(Ev::Error(e.error.to_string()));
    })
}

/// A client with its events recorded.
fn client_with_events(b: ClientBuilder) -> (Client, UnboundedReceiver<Ev>) {
    let (tx, rx) = unbounded_channel();
    let client = with_client_events(b, &tx).build().expect("build client");
    (client, rx)
}

/// A subscription with its events recorded.
fn subscription(
    client: &Client,
    channel: &str,
    recoverable: bool,
) -> (centrifuge::Subscription, UnboundedReceiver<SubEv>) {
    let (tx, rx) = unbounded_channel();
    let (t1, t2, t3, t4) = (tx.clone(), tx.clone(), tx.clone(), tx);
    let sub = client
        .new_subscription(channel)
        .recoverable(recoverable)
        .on_subscribing(move |_, e| {
            let _ = t1.send(SubEv::Subscribing(e.code));
        })
        .on_subscribed(move |_, e| {
            let _ = t2.send(SubEv::Subscribed {
                was_recovering: e.was_recovering,
                recovered: e.recovered,
                recoverable: e.recoverable,
                position: e.stream_position,
            });
        })
        .on_unsubscribed(move |_, e| {
            let _ = t3.send(SubEv::Unsubscribed(e.code));
        })
        .on_publication(move |_, e| {
            let data = serde_json::from_slice(&e.data)
                .unwrap_or_else(|_| Value::String(format!("<not JSON: {:?}>", e.data)));
            let info = e.info.as_ref().map(|i| (i.user.clone(), i.client.clone()));
            let _ = t4.send(SubEv::Publication(e.offset, data, info));
        })
        .build()
        .expect("build subscription");
    (sub, rx)
}

async fn next<T>(rx: &mut UnboundedReceiver<T>, what: &str) -> T {
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("event stream ended while waiting for {what}"),
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Skips events until one matches `pick`.
async fn wait_for<T: std::fmt::Debug, R>(
    rx: &mut UnboundedReceiver<T>,
    what: &str,
    mut pick: impl FnMut(&T) -> Option<R>,
) -> R {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut skipped = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(item)) => match pick(&item) {
                Some(r) => return r,
                None => skipped.push(item),
            },
            Ok(None) => panic!("event stream ended while waiting for {what}; saw {skipped:?}"),
            Err(_) => panic!("timed out waiting for {what}; saw {skipped:?}"),
        }
    }
}

/// Asserts nothing arrives for `quiet`.
async fn assert_quiet<T: std::fmt::Debug>(
    rx: &mut UnboundedReceiver<T>,
    quiet: Duration,
    what: &str,
) {
    if let Ok(Some(item)) = tokio::time::timeout(quiet, rx.recv()).await {
        panic!("{what}: unexpected event {item:?}");
    }
}

/// Takes `n` publications, failing on any other subscription event in between.
async fn publications(rx: &mut UnboundedReceiver<SubEv>, n: usize) -> Vec<(u64, Value)> {
    let mut out = Vec::new();
    while out.len() < n {
        match next(rx, &format!("publication {} of {n}", out.len() + 1)).await {
            SubEv::Publication(offset, data, _) => out.push((offset, data)),
            other => panic!("expected a publication, got {other:?}"),
        }
    }
    out
}

/// Server API publish; returns (offset, epoch).
fn api_publish(gyre: &Gyre, channel: &str, data: Value) -> (u64, String) {
    let result = gyre.api("publish", json!({"channel": channel, "data": data}));
    (
        result["offset"].as_u64().unwrap_or(0),
        result["epoch"].as_str().unwrap_or_default().to_owned(),
    )
}

fn num_clients(gyre: &Gyre) -> u64 {
    gyre.api("info", json!({}))["nodes"][0]["num_clients"]
        .as_u64()
        .unwrap_or(0)
}

fn offsets(h: &HistoryResult) -> Vec<u64> {
    h.publications.iter().map(|p| p.offset).collect()
}

/// Every scenario in both protocols.
macro_rules! scenario {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn json() {
                super::$name(centrifuge::Protocol::Json).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn protobuf() {
                super::$name(centrifuge::Protocol::Protobuf).await;
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------

scenario!(connect_disconnect);
async fn connect_disconnect(protocol: Protocol) {
    let gyre = Gyre::start(&config());
    let (client, mut events) = client_with_events(builder(&gyre, protocol, &user_token("u1")));
    assert_eq!(client.state(), State::Disconnected);
    client.connect().expect("connect");
    client.ready(Some(WAIT)).await.expect("ready");
    assert_eq!(client.state(), State::Connected);
    assert_eq!(
        next(&mut events, "connecting").await,
        Ev::Connecting(0, "connect called".into())
    );
    let Ev::Connected(id) = next(&mut events, "connected").await else {
        panic!("expected connected");
    };
    assert!(!id.is_empty(), "client id");
    assert_eq!(num_clients(&gyre), 1, "server counts the connection");

    client.disconnect();
    let Ev::Disconnected(code, _) = next(&mut events, "disconnected").await else {
        panic!("expected disconnected");
    };
    assert_eq!(code, 0, "disconnect called");
    assert_eq!(client.state(), State::Disconnected);
    for _ in 0..50 {
        if num_clients(&gyre) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(num_clients(&gyre), 0, "server forgot the connection");
    client.close().await;
}

scenario!(subscribe_api_publish);
async fn subscribe_api_publish(protocol: Protocol) {
    let gyre = Gyre::start(&config());
    let (client, _events) = client_with_events(builder(&gyre, protocol, &user_token("u1")));
    let (sub, mut sub_events) = subscription(&client, "news", false);
    sub.subscribe();
    client.connect().expect("connect");
    sub.ready(Some(WAIT)).await.expect("subscribed");
    assert_eq!(sub.state(), SubState::Subscribed);
    assert_eq!(
        next(&mut sub_events, "subscribing").await,
        SubEv::Subscribing(0)
    );
    let SubEv::Subscribed {
        recoverable,
        position,
        was_recovering,
        ..
    } = next(&mut sub_events, "subscribed").await
    else {
        panic!("expected subscribed");
    };
    assert!(recoverable, "force_recovery channel is recoverable");
    assert!(!was_recovering);
    let position = position.expect("positioned subscription has a position");
    assert_eq!(position.offset, 0);
    assert!(!position.epoch.is_empty(), "epoch");

    let mut sent = Vec::new();
    for i in 1..=3u64 {
        let data = json!({"n": i, "text": format!("news {i}"), "list": [1, 2, i]});
        let (offset, epoch) = api_publish(&gyre, "news", data.clone());
        assert_eq!(offset, i);
        assert_eq!(epoch, position.epoch);
        sent.push((offset, data));
    }
    assert_eq!(publications(&mut sub_events, 3).await, sent);

    sub.unsubscribe();
    assert_eq!(
        next(&mut sub_events, "unsubscribed").await,
        SubEv::Unsubscribed(0)
    );
    api_publish(&gyre, "news", json!({"after": "unsubscribe"}));
    assert_quiet(
        &mut sub_events,
        Duration::from_millis(400),
        "after unsubscribe",
    )
    .await;
    client.close().await;
}

scenario!(client_publish);
async fn client_publish(protocol: Protocol) {
    let gyre = Gyre::start(&config());
    let (client, mut events) = client_with_events(builder(&gyre, protocol, &user_token("u1")));
    let (sub, mut sub_events) = subscription(&client, "chat", false);
    sub.subscribe();
    client.connect().expect("connect");
    sub.ready(Some(WAIT)).await.expect("subscribed");
    let id = wait_for(&mut events, "connected", |e| match e {
        Ev::Connected(id) => Some(id.clone()),
        _ => None,
    })
    .await;
    wait_for(&mut sub_events, "subscribed", |e| {
        matches!(e, SubEv::Subscribed { .. }).then_some(())
    })
    .await;

    sub.publish(r#"{"text":"hello"}"#)
        .await
        .expect("subscription publish");
    client
        .publish("chat", r#"{"text":"again"}"#)
        .await
        .expect("client publish");
    let mut got = Vec::new();
    for _ in 0..2 {
        match next(&mut sub_events, "publication").await {
            SubEv::Publication(offset, data, info) => got.push((offset, data, info)),
            other => panic!("expected a publication, got {other:?}"),
        }
    }
    let me = Some(("u1".to_owned(), id));
    assert_eq!(
        got,
        vec![
            (1, json!({"text": "hello"}), me.clone()),
            (2, json!({"text": "again"}), me),
        ]
    );
    // Both are in history too.
    let history = client
        .history("chat", HistoryOptions::new().all())
        .await
        .expect("history");
    assert_eq!(offsets(&history), vec![1, 2]);
    client.close().await;
}

scenario!(history);
async fn history(protocol: Protocol) {
    let gyre = Gyre::start(&config());
    let mut epoch = String::new();
    let mut sent = Vec::new();
    for i in 1..=5u64 {
        let data = json!({"i": i});
        let (offset, e) = api_publish(&gyre, "hist", data.clone());
        assert_eq!(offset, i);
        epoch = e;
        sent.push(data);
    }
    let (client, _events) = client_with_events(builder(&gyre, protocol, &user_token("u1")));
    client.connect().expect("connect");
    client.ready(Some(WAIT)).await.expect("ready");

    let top = client
        .history("hist", HistoryOptions::new())
        .await
        .expect("history");
    assert_eq!(
        (top.offset, top.epoch.as_str(), offsets(&top)),
        (5, epoch.as_str(), vec![])
    );

    let all = client
        .history("hist", HistoryOptions::new().all())
        .await
        .expect("history all");
    assert_eq!(offsets(&all), vec![1, 2, 3, 4, 5]);
    let payloads: Vec<Value> = all
        .publications
        .iter()
        .map(|p| serde_json::from_slice(&p.data).expect("JSON payload"))
        .collect();
    assert_eq!(payloads, sent);
    assert_eq!((all.offset, all.epoch.as_str()), (5, epoch.as_str()));

    let limited = client
        .history("hist", HistoryOptions::new().limit(2))
        .await
        .expect("limit");
    assert_eq!(offsets(&limited), vec![1, 2]);
    let since = HistoryOptions::new()
        .all()
        .since(StreamPosition::new(2, epoch.clone()));
    assert_eq!(
        offsets(&client.history("hist", since).await.expect("since")),
        vec![3, 4, 5]
    );
    let reverse = HistoryOptions::new().limit(2).reverse(true);
    assert_eq!(
        offsets(&client.history("hist", reverse).await.expect("reverse")),
        vec![5, 4]
    );
    let reverse_since = HistoryOptions::new()
        .all()
        .reverse(true)
        .since(StreamPosition::new(4, epoch.clone()));
    assert_eq!(
        offsets(
            &client
                .history("hist", reverse_since)
                .await
                .expect("reverse since")
        ),
        vec![3, 2, 1]
    );

    let stale = HistoryOptions::new()
        .all()
        .since(StreamPosition::new(1, "not-the-epoch"));
    match client.history("hist", stale).await {
        Err(Error::Server(e)) => assert_eq!(e.code, 112, "unrecoverable position"),
        other => panic!("history with a stale epoch: expected error 112, got {other:?}"),
    }
    assert_eq!(client.state(), State::Connected);
    client.close().await;
}

scenario!(presence_stats);
async fn presence_stats(protocol: Protocol) {
    let gyre = Gyre::start(&config());
    let mut clients = Vec::new();
    let mut subs = Vec::new();
    for user in ["u1", "u2", "u1"] {
        let (client, events) = client_with_events(builder(&gyre, protocol, &user_token(user)));
        let (sub, _sub_events) = subscription(&client, "room", false);
        sub.subscribe();
        client.connect().expect("connect");
        sub.ready(Some(WAIT)).await.expect("subscribed");
        clients.push((client, events));
        subs.push(sub);
    }
    let stats = clients[0]
        .0
        .presence_stats("room")
        .await
        .expect("presence stats");
    assert_eq!((stats.num_clients, stats.num_users), (3, 2));
    let stats = subs[1]
        .presence_stats()
        .await
        .expect("subscription presence stats");
    assert_eq!((stats.num_clients, stats.num_users), (3, 2));

    let presence = clients[1].0.presence("room").await.expect("presence");
    let mut users: Vec<&str> = presence.clients.values().map(|i| i.user.as_str()).collect();
    users.sort_unstable();
    assert_eq!(users, vec!["u1", "u1", "u2"]);
    for (id, info) in &presence.clients {
        assert_eq!(id, &info.client, "presence keyed by client id");
    }

    // The second connection of u1 goes away: 2 clients, 2 users.
    clients[2].0.close().await;
    let mut stats = clients[0]
        .0
        .presence_stats("room")
        .await
        .expect("presence stats");
    for _ in 0..50 {
        if stats.num_clients == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        stats = clients[0]
            .0
            .presence_stats("room")
            .await
            .expect("presence stats");
    }
    assert_eq!((stats.num_clients, stats.num_users), (2, 2));
    for (client, _) in &clients[..2] {
        client.close().await;
    }
}

scenario!(recovery);
async fn recovery(protocol: Protocol) {
    let gyre = Gyre::start(&config());
    // The reconnect waits 1.0-1.5 s: time to publish while the client is away.
    let b = builder(&gyre, protocol, &user_token("u1"))
        .min_reconnect_delay(Duration::from_millis(1000))
        .max_reconnect_delay(Duration::from_millis(1500));
    let (client, mut events) = client_with_events(b);
    let (sub, mut sub_events) = subscription(&client, "rec", true);
    sub.subscribe();
    client.connect().expect("connect");
    sub.ready(Some(WAIT)).await.expect("subscribed");
    let first = wait_for(&mut sub_events, "subscribed", |e| match e {
        SubEv::Subscribed { position, .. } => Some(position.clone()),
        _ => None,
    })
    .await
    .expect("position");

    let (offset0, epoch) = api_publish(&gyre, "rec", json!({"phase": "before"}));
    assert_eq!(epoch, first.epoch);
    assert_eq!(
        publications(&mut sub_events, 1).await,
        vec![(offset0, json!({"phase": "before"}))]
    );

    gyre.api(
        "disconnect",
        json!({"user": "u1", "disconnect": {"code": 3011, "reason": "force reconnect"}}),
    );
    wait_for(&mut events, "connecting 3011", |e| match e {
        Ev::Connecting(3011, reason) => Some(reason.clone()),
        _ => None,
    })
    .await;
    let mut missed = Vec::new();
    for i in 1..=3u64 {
        let data = json!({"phase": "missed", "i": i});
        let (offset, _) = api_publish(&gyre, "rec", data.clone());
        missed.push((offset, data));
    }
    assert_eq!(
        missed.iter().map(|m| m.0).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );

    // The subscription goes subscribing (transport closed) and resubscribes with recovery.
    assert_eq!(
        next(&mut sub_events, "subscribing").await,
        SubEv::Subscribing(1)
    );
    let SubEv::Subscribed {
        was_recovering,
        recovered,
        position,
        ..
    } = next(&mut sub_events, "resubscribed").await
    else {
        panic!("expected subscribed");
    };
    assert!(was_recovering, "was_recovering");
    assert!(recovered, "recovered");
    assert_eq!(
        publications(&mut sub_events, 3).await,
        missed,
        "the missed publications"
    );
    assert_quiet(
        &mut sub_events,
        Duration::from_millis(300),
        "after recovery",
    )
    .await;

    let (offset, _) = api_publish(&gyre, "rec", json!({"phase": "after"}));
    assert_eq!(
        publications(&mut sub_events, 1).await,
        vec![(offset, json!({"phase": "after"}))]
    );
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e, Ev::Disconnected(..)),
            "terminal disconnect: {e:?}"
        );
    }
    // Upstream answers a recovered subscribe with the position the client recovered from.
    let position = position.expect("position");
    assert_eq!(
        (position.offset, position.epoch),
        (offset0, epoch),
        "recovered subscribe position"
    );
    client.close().await;
}

scenario!(bad_token);
async fn bad_token(protocol: Protocol) {
    let gyre = Gyre::start(&config());
    let claims = json!({"sub": "u1", "exp": support::now() + 3600});
    let token = gyre_auth::sign_hs256("not-the-server-secret", &claims).expect("sign");
    let (client, mut events) = client_with_events(builder(&gyre, protocol, &token));
    client.connect().expect("connect");
    assert_eq!(
        next(&mut events, "connecting").await,
        Ev::Connecting(0, "connect called".into())
    );
    let (code, _) = wait_for(&mut events, "disconnected", |e| match e {
        Ev::Disconnected(code, reason) => Some((*code, reason.clone())),
        Ev::Connected(_) => panic!("connected with a bad token"),
        _ => None,
    })
    .await;
    assert_eq!(code, 3500, "invalid token");
    assert_eq!(client.state(), State::Disconnected);
    // Terminal: no reconnect.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e, Ev::Connecting(..) | Ev::Connected(_)),
            "reconnected after 3500: {e:?}"
        );
    }
    assert_eq!(client.state(), State::Disconnected);
    client.close().await;
}
