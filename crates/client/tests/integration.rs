//! Integration tests against the real `gyre` server, in JSON and Protobuf.
//!
//! The server binary comes from `$GYRE_BIN` or is built from this workspace (see
//! `tests/common/mod.rs`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use gyre_client::{
    ClientEvent, ClientOptions, Error, HistoryOptions, Protocol, Publication, State,
    SubscribedContext, SubscriptionEvent, SubscriptionOptions, SubscriptionState, TagsFilter,
};

const PROTOCOLS: [Protocol; 2] = [Protocol::Json, Protocol::Protobuf];

fn options(server: &Server, protocol: Protocol) -> ClientOptions {
    ClientOptions::new(server.url())
        .protocol(protocol)
        .timeout(Duration::from_secs(3))
        .reconnect_delay(Duration::from_millis(100), Duration::from_millis(500))
        .seed(1)
}

#[tokio::test]
async fn connect_disconnect_close_states() {
    let server = Server::start(insecure_config());
    for protocol in PROTOCOLS {
        let client = options(&server, protocol).build().expect("client");
        let mut events = client.events();
        assert_eq!(client.state(), State::Disconnected);
        client.connect();
        client.ready(None).await.expect("connected");
        assert_eq!(client.state(), State::Connected);
        client.disconnect();
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let e = wait_client(&mut events, "state", is_state).await;
            seen.push(e);
        }
        assert!(matches!(seen[0], ClientEvent::Connecting { code: 0, .. }));
        match &seen[1] {
            ClientEvent::Connected(ctx) => assert!(!ctx.client.is_empty()),
            other => panic!("expected connected, got {other:?}"),
        }
        assert!(matches!(seen[2], ClientEvent::Disconnected { code: 0, .. }));
        // Calls in the disconnected state fail at once.
        assert_eq!(
            client.publish("x", &b"{}"[..]).await,
            Err(Error::Disconnected)
        );
        client.close().await;
        assert_eq!(client.state(), State::Closed);
        assert_eq!(client.publish("x", &b"{}"[..]).await, Err(Error::Closed));
    }
}

#[tokio::test]
async fn subscribe_before_connect_publish_history_presence() {
    let server = Server::start(insecure_config());
    for protocol in PROTOCOLS {
        let ch = format!("chat-{protocol:?}");
        let client = options(&server, protocol).build().expect("client");
        let sub = client
            .new_subscription(&ch, SubscriptionOptions::new())
            .expect("sub");
        let mut sub_events = sub.events();
        sub.subscribe();
        assert_eq!(
            wait_sub(&mut sub_events, "subscribing", is_sub_state).await,
            SubscriptionEvent::Subscribing {
                code: 0,
                reason: "subscribe called".into()
            }
        );
        client.connect();
        sub.ready(None).await.expect("subscribed");
        assert_eq!(sub.state(), SubscriptionState::Subscribed);
        sub.publish(&br#"{"text":"hello"}"#[..])
            .await
            .expect("publish");
        match wait_sub(&mut sub_events, "publication", |e| {
            matches!(e, SubscriptionEvent::Publication(_))
        })
        .await
        {
            SubscriptionEvent::Publication(p) => {
                assert_eq!(&p.data[..], br#"{"text":"hello"}"#);
                assert_eq!(p.offset, 1);
                assert!(p.info.is_some(), "client publications carry info");
            }
            _ => unreachable!(),
        }
        let h = sub
            .history(HistoryOptions {
                limit: -1,
                ..Default::default()
            })
            .await
            .expect("history");
        assert_eq!(h.publications.len(), 1);
        assert_eq!(h.offset, 1);
        assert!(!h.epoch.is_empty());
        let p = sub.presence().await.expect("presence");
        assert_eq!(p.clients.len(), 1);
        let s = sub.presence_stats().await.expect("presence stats");
        assert_eq!((s.num_clients, s.num_users), (1, 1));
        // Client-level calls by channel.
        let h2 = client
            .history(&ch, HistoryOptions::default())
            .await
            .expect("client history");
        assert_eq!(h2.offset, 1);
        client.close().await;
        assert_eq!(sub.state(), SubscriptionState::Unsubscribed);
    }
}

#[tokio::test]
async fn rpc_without_handler_is_error_108_and_json_needs_json() {
    let server = Server::start(insecure_config());
    for protocol in PROTOCOLS {
        let client = options(&server, protocol).build().expect("client");
        client.connect();
        let err = client
            .rpc("method", &b"{}"[..])
            .await
            .expect_err("no rpc handler");
        assert_eq!(err.code(), Some(108), "{err:?}");
        if protocol == Protocol::Json {
            assert!(matches!(
                client.publish("c", &b"not json"[..]).await,
                Err(Error::InvalidData(_))
            ));
        }
        client.close().await;
    }
}

#[tokio::test]
async fn registry_rejects_duplicates_and_removes() {
    let server = Server::start(insecure_config());
    let client = options(&server, Protocol::Json).build().expect("client");
    let sub = client
        .new_subscription("dup", SubscriptionOptions::new())
        .expect("first");
    assert_eq!(
        client
            .new_subscription("dup", SubscriptionOptions::new())
            .err(),
        Some(Error::DuplicateSubscription("dup".into()))
    );
    assert_eq!(
        client
            .get_subscription("dup")
            .map(|s| s.channel().to_owned()),
        Some("dup".into())
    );
    assert_eq!(client.subscriptions().len(), 1);
    client.remove_subscription(&sub).expect("remove");
    assert!(client.get_subscription("dup").is_none());
    client
        .new_subscription("dup", SubscriptionOptions::new())
        .expect("again after removal");
    client.close().await;
}

#[tokio::test]
async fn recovery_after_unsubscribe_and_after_server_restart() {
    let mut server = Server::start(insecure_config());
    for protocol in PROTOCOLS {
        let ch = format!("rec-{protocol:?}");
        let client = options(&server, protocol).build().expect("client");
        let mut events = client.events();
        let sub = client
            .new_subscription(
                &ch,
                SubscriptionOptions::new()
                    .recoverable(true)
                    .positioned(true)
                    .resubscribe_delay(Duration::from_millis(100), Duration::from_millis(500)),
            )
            .expect("sub");
        let mut sub_events = sub.events();
        sub.subscribe();
        client.connect();
        sub.ready(None).await.expect("subscribed");
        // Missed while unsubscribed, recovered on subscribe.
        sub.unsubscribe();
        for i in 0..3 {
            let r = server
                .api(
                    "publish",
                    serde_json::json!({"channel": ch, "data": {"i": i}}),
                )
                .await;
            assert!(r.get("result").is_some(), "{r}");
        }
        sub.subscribe();
        let mut offsets = Vec::new();
        let mut recovered = None;
        while offsets.len() < 3 {
            match wait_sub(&mut sub_events, "recovery", |e| {
                matches!(
                    e,
                    SubscriptionEvent::Subscribed(_) | SubscriptionEvent::Publication(_)
                )
            })
            .await
            {
                SubscriptionEvent::Subscribed(ctx) => {
                    if ctx.was_recovering {
                        recovered = Some(ctx.recovered);
                    }
                }
                SubscriptionEvent::Publication(p) => offsets.push(p.offset),
                _ => unreachable!(),
            }
        }
        assert_eq!(recovered, Some(true));
        assert_eq!(offsets, vec![1, 2, 3]);

        // Kill and restart on the same port: connected → connecting → connected,
        // subscribed → subscribing → subscribed (memory engine: history lost).
        let before: Vec<ClientEvent> = {
            let mut v = Vec::new();
            while let Ok(Some(e)) =
                tokio::time::timeout(Duration::from_millis(50), events.recv()).await
            {
                v.push(e);
            }
            v
        };
        // The states before the restart: connected and subscribed.
        assert!(
            matches!(
                before.iter().rev().find(|e| is_state(e)),
                Some(ClientEvent::Connected(_))
            ),
            "{before:?}"
        );
        let sub_before = drain(&mut sub_events, Duration::from_millis(50)).await;
        assert!(
            sub_before.iter().all(|e| !is_sub_state(e)),
            "no state change since the recovery: {sub_before:?}"
        );
        assert_eq!(sub.state(), SubscriptionState::Subscribed);
        server.restart();
        // Exactly connected → connecting → connected and subscribed → subscribing →
        // subscribed: the failed attempts while the server is down change no state.
        let e1 = wait_client(&mut events, "connecting", is_state).await;
        assert!(
            matches!(&e1, ClientEvent::Connecting { code: 1, reason } if reason.starts_with("transport closed")),
            "{e1:?}"
        );
        let e2 = wait_client(&mut events, "connected", is_state).await;
        assert!(matches!(e2, ClientEvent::Connected(_)), "{e2:?}");
        let s1 = wait_sub(&mut sub_events, "subscribing", is_sub_state).await;
        assert_eq!(
            s1,
            SubscriptionEvent::Subscribing {
                code: 1,
                reason: "transport closed".into()
            }
        );
        match wait_sub(&mut sub_events, "subscribed", is_sub_state).await {
            SubscriptionEvent::Subscribed(ctx) => {
                assert!(ctx.was_recovering);
                assert!(!ctx.recovered, "new epoch after restart: {ctx:?}");
            }
            other => panic!("{other:?}"),
        }
        let after: Vec<ClientEvent> = drain(&mut events, Duration::from_millis(300))
            .await
            .into_iter()
            .filter(is_state)
            .collect();
        assert!(after.is_empty(), "extra client transitions: {after:?}");
        let sub_after: Vec<SubscriptionEvent> = drain(&mut sub_events, Duration::from_millis(50))
            .await
            .into_iter()
            .filter(is_sub_state)
            .collect();
        assert!(
            sub_after.is_empty(),
            "extra subscription transitions: {sub_after:?}"
        );
        assert_eq!(client.state(), State::Connected);
        assert_eq!(sub.state(), SubscriptionState::Subscribed);
        client.close().await;
    }
}

#[tokio::test]
async fn token_refresh_and_unauthorized() {
    let server = Server::start(token_config());
    for protocol in PROTOCOLS {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let client = options(&server, protocol)
            .get_token(move |_| {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    // Short-lived tokens: the first expires in 2 s, refreshes last longer.
                    Ok(connection_token("alice", if n == 0 { 2 } else { 60 }))
                }
            })
            .build()
            .expect("client");
        let mut events = client.events();
        client.connect();
        client.ready(None).await.expect("connected");
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(calls.load(Ordering::SeqCst) >= 2, "token was refreshed");
        assert_eq!(client.state(), State::Connected);
        // Still one connection: no reconnect happened.
        let mut connected = 0;
        while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(50), events.recv()).await
        {
            if matches!(e, ClientEvent::Connected(_)) {
                connected += 1;
            }
        }
        assert_eq!(connected, 1);
        client.close().await;

        // Empty token: unauthorized.
        let client = options(&server, protocol)
            .get_token(|_| async { Ok(String::new()) })
            .build()
            .expect("client");
        let mut events = client.events();
        client.connect();
        wait_client(&mut events, "connecting", is_state).await;
        let e = wait_client(&mut events, "disconnected", is_state).await;
        assert_eq!(
            e,
            ClientEvent::Disconnected {
                code: 1,
                reason: "unauthorized".into()
            }
        );
        client.close().await;

        // Invalid token: the server closes with 3500 (terminal).
        let client = options(&server, protocol)
            .token("not-a-jwt")
            .build()
            .expect("client");
        let mut events = client.events();
        client.connect();
        wait_client(&mut events, "connecting", is_state).await;
        match wait_client(&mut events, "disconnected", is_state).await {
            ClientEvent::Disconnected { code, .. } => assert_eq!(code, 3500),
            other => panic!("{other:?}"),
        }
        client.close().await;
    }
}

#[tokio::test]
async fn operations_time_out_while_connecting() {
    // A listener that accepts TCP but never answers the WebSocket handshake.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            conns.push(s);
        }
    });
    for protocol in PROTOCOLS {
        let client = ClientOptions::new(format!("ws://127.0.0.1:{port}/connection/websocket"))
            .protocol(protocol)
            .timeout(Duration::from_millis(300))
            .build()
            .expect("client");
        let mut events = client.events();
        client.connect();
        let started = std::time::Instant::now();
        assert_eq!(client.publish("c", &b"{}"[..]).await, Err(Error::Timeout));
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert_eq!(
            client.ready(Some(Duration::from_millis(100))).await,
            Err(Error::Timeout)
        );
        wait_client(&mut events, "handshake timeout error", |e| {
            matches!(
                e,
                ClientEvent::Error {
                    kind: gyre_client::ErrorKind::Connect,
                    error: Error::Timeout
                }
            )
        })
        .await;
        assert_eq!(client.state(), State::Connecting);
        client.close().await;
    }
    hold.abort();
}

#[tokio::test]
async fn dropping_all_handles_stops_the_task() {
    let server = Server::start(insecure_config());
    let client = options(&server, Protocol::Json).build().expect("client");
    let mut events = client.events();
    client.connect();
    client.ready(None).await.expect("connected");
    drop(client);
    // The task closes the client and ends: the stream sees Closed and then ends.
    let mut saw_closed = false;
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(e) = events.recv().await {
            saw_closed |= e == ClientEvent::Closed;
        }
    })
    .await;
    assert!(end.is_ok(), "task still running");
    assert!(saw_closed);
}

#[tokio::test]
async fn fossil_delta_publications_are_patched() {
    let server = Server::start(insecure_config());
    for protocol in PROTOCOLS {
        let ch = format!("delta-{protocol:?}");
        let client = options(&server, protocol).build().expect("client");
        let sub = client
            .new_subscription(&ch, SubscriptionOptions::new().delta(true))
            .expect("sub");
        let mut events = sub.events();
        sub.subscribe();
        client.connect();
        sub.ready(None).await.expect("subscribed");
        let payloads: Vec<String> = (0..4)
            .map(|i| {
                format!(
                    r#"{{"title":"a long enough document to make a patch worthwhile","version":{i},"body":"lorem ipsum dolor sit amet, consectetur adipiscing elit"}}"#
                )
            })
            .collect();
        for p in &payloads {
            let data: serde_json::Value = serde_json::from_str(p).expect("json");
            let r = server
                .api(
                    "publish",
                    serde_json::json!({"channel": ch, "data": data, "delta": true}),
                )
                .await;
            assert!(r.get("result").is_some(), "{r}");
        }
        for p in &payloads {
            match wait_sub(&mut events, "publication", |e| {
                matches!(e, SubscriptionEvent::Publication(_))
            })
            .await
            {
                SubscriptionEvent::Publication(got) => {
                    let got: serde_json::Value =
                        serde_json::from_slice(&got.data).expect("patched payload is JSON");
                    let want: serde_json::Value = serde_json::from_str(p).expect("json");
                    assert_eq!(got, want);
                }
                _ => unreachable!(),
            }
        }
        client.close().await;
    }
}

/// Runs an `async fn(Protocol)` scenario as two tests, `<name>::json` and `<name>::protobuf`,
/// each against its own server (so they run in parallel).
macro_rules! both_protocols {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn json() {
                super::$name(super::Protocol::Json).await;
            }
            #[tokio::test]
            async fn protobuf() {
                super::$name(super::Protocol::Protobuf).await;
            }
        }
    };
}

fn json_of(data: &[u8]) -> serde_json::Value {
    serde_json::from_slice(data).expect("JSON payload")
}

/// Collects client events until `done` says the collection is complete.
async fn collect_client(
    events: &mut gyre_client::EventStream<ClientEvent>,
    what: &str,
    done: impl Fn(&[ClientEvent]) -> bool,
) -> Vec<ClientEvent> {
    let mut seen = Vec::new();
    let fut = async {
        while let Some(e) = events.recv().await {
            eprintln!("event: {e:?}");
            seen.push(e);
            if done(&seen) {
                return;
            }
        }
        panic!("event stream ended while waiting for {what}");
    };
    if tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .is_err()
    {
        panic!("timed out waiting for {what}; got {seen:?}");
    }
    seen
}

fn subscribed_to<'a>(events: &'a [ClientEvent], channel: &str) -> Vec<&'a SubscribedContext> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Subscribed(ctx) if ctx.channel == channel => Some(ctx),
            _ => None,
        })
        .collect()
}

fn position(events: &[ClientEvent], pred: impl Fn(&ClientEvent) -> bool) -> usize {
    events
        .iter()
        .position(pred)
        .unwrap_or_else(|| panic!("event missing in {events:?}"))
}

/// Server-side subscriptions: the token `channels` claim, the personal channel and the API
/// `subscribe`/`unsubscribe`; their events on the client stream; client-level publish,
/// history, presence and presence stats by channel; recovery and removal on reconnect.
async fn server_side_subscriptions(protocol: Protocol) {
    let mut config = token_config();
    config["client"]["subscribe_to_user_personal_channel"] = serde_json::json!({"enabled": true});
    config["channel"]["without_namespace"] = serde_json::json!({
        "presence": true, "history_size": 10, "history_ttl": "300s", "force_recovery": true,
        "allow_publish_for_subscriber": true, "allow_history_for_subscriber": true,
        "allow_presence_for_subscriber": true
    });
    let server = Server::start(config);
    let token = sign(&serde_json::json!({
        "sub": "alice", "exp": now() + 3600, "channels": ["news"]
    }));
    let client = options(&server, protocol)
        .token(token)
        .build()
        .expect("client");
    let mut events = client.events();
    client.connect();

    // The claim's channel and the personal channel, right after connected.
    let seen = collect_client(&mut events, "server-side subscribed", |s| {
        subscribed_to(s, "news").len() == 1 && subscribed_to(s, "#alice").len() == 1
    })
    .await;
    let connected = position(&seen, |e| matches!(e, ClientEvent::Connected(_)));
    for ch in ["news", "#alice"] {
        let at = position(
            &seen,
            |e| matches!(e, ClientEvent::Subscribed(c) if c.channel == ch),
        );
        assert!(at > connected, "{ch} subscribed before connected: {seen:?}");
        let ctx = subscribed_to(&seen, ch)[0];
        assert!(ctx.recoverable && ctx.positioned, "{ctx:?}");
        assert!(!ctx.was_recovering && !ctx.recovered, "{ctx:?}");
    }
    assert!(
        client.get_subscription("news").is_none(),
        "not in the client registry"
    );

    // Publications of server-side subscriptions arrive on the client stream.
    for (ch, text) in [("news", "n1"), ("#alice", "personal")] {
        let r = server
            .api(
                "publish",
                serde_json::json!({"channel": ch, "data": {"text": text}}),
            )
            .await;
        assert!(r.get("result").is_some(), "{r}");
        match wait_client(&mut events, "server-side publication", |e| {
            matches!(e, ClientEvent::Publication(_))
        })
        .await
        {
            ClientEvent::Publication(p) => {
                assert_eq!(p.channel, ch);
                assert_eq!(json_of(&p.data), serde_json::json!({"text": text}));
                assert_eq!(p.offset, 1);
            }
            _ => unreachable!(),
        }
    }

    // API subscribe of the user: a subscribed event during the connection's lifetime.
    let r = server
        .api(
            "subscribe",
            serde_json::json!({"user": "alice", "channel": "extra"}),
        )
        .await;
    assert!(r.get("error").is_none(), "{r}");
    match wait_client(&mut events, "API subscribe", |e| {
        matches!(e, ClientEvent::Subscribed(_))
    })
    .await
    {
        ClientEvent::Subscribed(ctx) => assert_eq!(ctx.channel, "extra"),
        _ => unreachable!(),
    }

    // Client-level calls by channel.
    client
        .publish("extra", &br#"{"text":"mine"}"#[..])
        .await
        .expect("client-level publish");
    match wait_client(&mut events, "own publication", |e| {
        matches!(e, ClientEvent::Publication(_))
    })
    .await
    {
        ClientEvent::Publication(p) => {
            assert_eq!(p.channel, "extra");
            assert_eq!(json_of(&p.data), serde_json::json!({"text": "mine"}));
            assert_eq!(p.info.map(|i| i.user), Some("alice".to_owned()));
        }
        _ => unreachable!(),
    }
    let h = client
        .history(
            "extra",
            HistoryOptions {
                limit: -1,
                ..Default::default()
            },
        )
        .await
        .expect("client-level history");
    assert_eq!(h.publications.len(), 1);
    assert_eq!(h.offset, 1);
    let p = client
        .presence("extra")
        .await
        .expect("client-level presence");
    assert_eq!(p.clients.len(), 1);
    assert!(p.clients.values().all(|i| i.user == "alice"), "{p:?}");
    let s = client
        .presence_stats("extra")
        .await
        .expect("client-level presence stats");
    assert_eq!((s.num_clients, s.num_users), (1, 1));
    // Not subscribed to it: the server refuses (103 permission denied).
    assert_eq!(
        client
            .publish("elsewhere", &b"{}"[..])
            .await
            .expect_err("not subscribed")
            .code(),
        Some(103)
    );

    // API unsubscribe: an unsubscribed event.
    let r = server
        .api(
            "unsubscribe",
            serde_json::json!({"user": "alice", "channel": "extra"}),
        )
        .await;
    assert!(r.get("error").is_none(), "{r}");
    match wait_client(&mut events, "API unsubscribe", |e| {
        matches!(e, ClientEvent::Unsubscribed { .. })
    })
    .await
    {
        ClientEvent::Unsubscribed { channel, .. } => assert_eq!(channel, "extra"),
        _ => unreachable!(),
    }

    // Reconnect (server disconnect with a reconnect code): every server-side subscription
    // goes subscribing; after the reconnect the token's and the personal channel come back
    // recovered, the API one is gone (unsubscribed), and a publication made while the client
    // was away arrives exactly once.
    let r = server
        .api(
            "subscribe",
            serde_json::json!({"user": "alice", "channel": "extra2"}),
        )
        .await;
    assert!(r.get("error").is_none(), "{r}");
    wait_client(
        &mut events,
        "extra2 subscribed",
        |e| matches!(e, ClientEvent::Subscribed(c) if c.channel == "extra2"),
    )
    .await;
    let r = server
        .api(
            "disconnect",
            serde_json::json!({"user": "alice", "disconnect": {"code": 3011, "reason": "x"}}),
        )
        .await;
    assert!(r.get("error").is_none(), "{r}");
    let r = server
        .api(
            "publish",
            serde_json::json!({"channel": "news", "data": {"text": "n2"}}),
        )
        .await;
    assert!(r.get("result").is_some(), "{r}");
    let seen = collect_client(&mut events, "reconnect", |s| {
        subscribed_to(s, "news").len() == 1
            && subscribed_to(s, "#alice").len() == 1
            && s.iter().any(
                |e| matches!(e, ClientEvent::Unsubscribed { channel, .. } if channel == "extra2"),
            )
            && s.iter()
                .any(|e| matches!(e, ClientEvent::Publication(p) if p.offset == 2))
    })
    .await;
    let connecting = position(&seen, |e| matches!(e, ClientEvent::Connecting { .. }));
    assert_eq!(
        seen[connecting],
        ClientEvent::Connecting {
            code: 3011,
            reason: "x".into()
        }
    );
    let connected = position(&seen, |e| matches!(e, ClientEvent::Connected(_)));
    assert!(connecting < connected);
    for ch in ["news", "#alice", "extra2"] {
        let at = position(
            &seen,
            |e| matches!(e, ClientEvent::Subscribing { channel, code: 1, .. } if channel == ch),
        );
        assert!(at < connected, "{ch}: {seen:?}");
    }
    for ch in ["news", "#alice"] {
        let ctx = subscribed_to(&seen, ch)[0];
        assert!(ctx.was_recovering && ctx.recovered, "{ctx:?}");
        let at = position(
            &seen,
            |e| matches!(e, ClientEvent::Subscribed(c) if c.channel == ch),
        );
        assert!(at > connected);
    }
    let gone = position(
        &seen,
        |e| matches!(e, ClientEvent::Unsubscribed { channel, .. } if channel == "extra2"),
    );
    assert!(gone > connected);
    // Exactly one n2, and nothing else afterwards.
    let mut rest = seen;
    rest.extend(drain(&mut events, Duration::from_millis(300)).await);
    let n2: Vec<&Publication> = rest
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Publication(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(n2.len(), 1, "{rest:?}");
    assert_eq!(n2[0].channel, "news");
    assert_eq!(json_of(&n2[0].data), serde_json::json!({"text": "n2"}));
    assert_eq!(client.state(), State::Connected);
    client.close().await;
}
both_protocols!(server_side_subscriptions);

/// Subscription tokens on a private channel: refreshed through `get_token` (`sub_refresh`)
/// before the server's `expired_sub_close_delay` runs out; without a callback the expired
/// subscription is unsubscribed by the server (2501), and the resubscribe with the expired
/// token fails (109, unsubscribed); a callback returning "" unsubscribes (code 1).
async fn subscription_token_refresh(protocol: Protocol) {
    let mut config = token_config();
    config["client"]["expired_sub_close_delay"] = serde_json::json!("1s");
    config["channel"]["without_namespace"] =
        serde_json::json!({"presence": true, "allow_presence_for_subscriber": true});
    let server = Server::start(config);
    let client = options(&server, protocol)
        .token(connection_token("alice", 3600))
        .build()
        .expect("client");
    let sub_token =
        |ch: &str| sign(&serde_json::json!({"sub": "alice", "channel": ch, "exp": now() + 3}));

    let refreshed_calls = Arc::new(AtomicUsize::new(0));
    let c = refreshed_calls.clone();
    let refreshed = client
        .new_subscription(
            "$refreshed",
            SubscriptionOptions::new().get_token(move |ctx| {
                c.fetch_add(1, Ordering::SeqCst);
                let ch = ctx
                    .channel
                    .expect("subscription token context has the channel");
                async move { Ok(sub_token(&ch)) }
            }),
        )
        .expect("sub");
    let fixed = client
        .new_subscription(
            "$fixed",
            SubscriptionOptions::new().token(sub_token("$fixed")),
        )
        .expect("sub");
    let revoked_calls = Arc::new(AtomicUsize::new(0));
    let c = revoked_calls.clone();
    let revoked = client
        .new_subscription(
            "$revoked",
            SubscriptionOptions::new().get_token(move |ctx| {
                let n = c.fetch_add(1, Ordering::SeqCst);
                let ch = ctx.channel.unwrap_or_default();
                async move {
                    Ok(if n == 0 {
                        sub_token(&ch)
                    } else {
                        String::new()
                    })
                }
            }),
        )
        .expect("sub");
    let mut streams = [refreshed.events(), fixed.events(), revoked.events()];
    for s in [&refreshed, &fixed, &revoked] {
        s.subscribe();
    }
    client.connect();
    let started = std::time::Instant::now();
    for s in [&refreshed, &fixed, &revoked] {
        s.ready(None).await.expect("subscribed");
    }
    let [refreshed_events, fixed_events, revoked_events] = &mut streams;

    // Without a callback: unsubscribed by the server once expired (+1 s), then the
    // resubscribe with the same, expired token is refused.
    let mut fixed_states = Vec::new();
    while fixed_states.len() < 4 {
        fixed_states.push(wait_sub(fixed_events, "fixed token expiry", is_sub_state).await);
    }
    assert!(matches!(
        fixed_states[0],
        SubscriptionEvent::Subscribing { code: 0, .. }
    ));
    assert!(matches!(fixed_states[1], SubscriptionEvent::Subscribed(_)));
    assert_eq!(
        fixed_states[2],
        SubscriptionEvent::Subscribing {
            code: 2501,
            reason: "subscription expired".into()
        }
    );
    assert!(
        matches!(
            fixed_states[3],
            SubscriptionEvent::Unsubscribed { code: 109, .. }
        ),
        "{:?}",
        fixed_states[3]
    );
    assert_eq!(fixed.state(), SubscriptionState::Unsubscribed);

    // The callback returning "": unsubscribed, unauthorized.
    let mut revoked_states = Vec::new();
    while revoked_states.len() < 3 {
        revoked_states.push(wait_sub(revoked_events, "revoked token", is_sub_state).await);
    }
    assert!(matches!(
        revoked_states[1],
        SubscriptionEvent::Subscribed(_)
    ));
    assert_eq!(
        revoked_states[2],
        SubscriptionEvent::Unsubscribed {
            code: 1,
            reason: "unauthorized".into()
        }
    );
    assert_eq!(revoked_calls.load(Ordering::SeqCst), 2);

    // Refreshed: still subscribed well after the first token's expiry plus the grace delay,
    // with no resubscribe in between.
    if let Some(left) = Duration::from_millis(5500).checked_sub(started.elapsed()) {
        tokio::time::sleep(left).await;
    }
    assert!(
        refreshed_calls.load(Ordering::SeqCst) >= 2,
        "token refreshed"
    );
    assert_eq!(refreshed.state(), SubscriptionState::Subscribed);
    let states: Vec<SubscriptionEvent> = drain(refreshed_events, Duration::from_millis(100))
        .await
        .into_iter()
        .filter(is_sub_state)
        .collect();
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(matches!(states[1], SubscriptionEvent::Subscribed(_)));
    // Calls on the refreshed subscription still work.
    let stats = refreshed.presence_stats().await.expect("presence stats");
    assert_eq!((stats.num_clients, stats.num_users), (1, 1));
    assert_eq!(client.state(), State::Connected);
    client.close().await;
}
both_protocols!(subscription_token_refresh);

/// Join and leave between clients: forced (`force_push_join_leave`) on client-side and
/// server-side subscriptions, asked for with `join_leave(true)` in a namespace that only
/// allows it, and absent for a subscriber that did not ask.
async fn join_leave_between_clients(protocol: Protocol) {
    let mut config = token_config();
    config["channel"]["without_namespace"] = serde_json::json!({
        "presence": true, "join_leave": true, "force_push_join_leave": true,
        "allow_subscribe_for_client": true, "allow_presence_for_subscriber": true
    });
    config["channel"]["namespaces"] = serde_json::json!([{
        "name": "jl", "presence": true, "join_leave": true, "allow_subscribe_for_client": true
    }]);
    let server = Server::start(config);
    let alice_token = sign(&serde_json::json!({
        "sub": "alice", "exp": now() + 3600, "channels": ["room"]
    }));
    let alice = options(&server, protocol)
        .token(alice_token)
        .build()
        .expect("client");
    let mut alice_events = alice.events();
    let lobby = alice
        .new_subscription("lobby", SubscriptionOptions::new())
        .expect("sub");
    let chat = alice
        .new_subscription("jl:chat", SubscriptionOptions::new().join_leave(true))
        .expect("sub");
    let mut lobby_events = lobby.events();
    let mut chat_events = chat.events();
    lobby.subscribe();
    chat.subscribe();
    alice.connect();
    lobby.ready(None).await.expect("lobby");
    chat.ready(None).await.expect("chat");
    wait_client(
        &mut alice_events,
        "room",
        |e| matches!(e, ClientEvent::Subscribed(c) if c.channel == "room"),
    )
    .await;

    // Carol is in jl:chat without asking for join/leave.
    let carol = options(&server, protocol)
        .token(connection_token("carol", 3600))
        .build()
        .expect("client");
    let carol_chat = carol
        .new_subscription("jl:chat", SubscriptionOptions::new())
        .expect("sub");
    let mut carol_events = carol_chat.events();
    carol_chat.subscribe();
    carol.connect();
    carol_chat.ready(None).await.expect("carol chat");
    // (Subscribers see their own join too, so joins are told apart by user.)
    wait_sub(
        &mut chat_events,
        "carol joins",
        |e| matches!(e, SubscriptionEvent::Join(i) if i.user == "carol"),
    )
    .await;

    // Bob joins all three.
    let bob = options(&server, protocol)
        .token(connection_token("bob", 3600))
        .build()
        .expect("client");
    let mut bob_events = bob.events();
    let bob_subs: Vec<_> = ["lobby", "jl:chat", "room"]
        .iter()
        .map(|ch| {
            bob.new_subscription(*ch, SubscriptionOptions::new())
                .expect("sub")
        })
        .collect();
    for s in &bob_subs {
        s.subscribe();
    }
    bob.connect();
    let bob_id = match wait_client(&mut bob_events, "bob connected", |e| {
        matches!(e, ClientEvent::Connected(_))
    })
    .await
    {
        ClientEvent::Connected(ctx) => ctx.client,
        _ => unreachable!(),
    };
    for s in &bob_subs {
        s.ready(None).await.expect("bob subscribed");
    }
    let is_bob = |i: &gyre_client::ClientInfo| i.user == "bob" && i.client == bob_id;
    for (events, what) in [(&mut lobby_events, "lobby"), (&mut chat_events, "jl:chat")] {
        wait_sub(
            events,
            what,
            |e| matches!(e, SubscriptionEvent::Join(i) if is_bob(i)),
        )
        .await;
    }
    match wait_client(
        &mut alice_events,
        "server-side join",
        |e| matches!(e, ClientEvent::Join { info, .. } if info.user == "bob"),
    )
    .await
    {
        ClientEvent::Join { channel, info } => {
            assert_eq!(channel, "room");
            assert!(is_bob(&info), "{info:?}");
        }
        _ => unreachable!(),
    }
    let stats = lobby.presence_stats().await.expect("presence stats");
    assert_eq!((stats.num_clients, stats.num_users), (2, 2));
    let presence = lobby.presence().await.expect("presence");
    assert!(presence.clients.contains_key(&bob_id), "{presence:?}");

    // Bob leaves: unsubscribe, remove, close.
    bob_subs[0].unsubscribe();
    wait_sub(
        &mut lobby_events,
        "lobby leave",
        |e| matches!(e, SubscriptionEvent::Leave(i) if is_bob(i)),
    )
    .await;
    bob.remove_subscription(&bob_subs[1]).expect("remove");
    wait_sub(
        &mut chat_events,
        "chat leave",
        |e| matches!(e, SubscriptionEvent::Leave(i) if is_bob(i)),
    )
    .await;
    bob.close().await;
    match wait_client(
        &mut alice_events,
        "server-side leave",
        |e| matches!(e, ClientEvent::Leave { info, .. } if info.user == "bob"),
    )
    .await
    {
        ClientEvent::Leave { channel, info } => {
            assert_eq!(channel, "room");
            assert!(is_bob(&info), "{info:?}");
        }
        _ => unreachable!(),
    }
    // Carol did not ask: no join/leave of bob reached her.
    let carols = drain(&mut carol_events, Duration::from_millis(300)).await;
    assert!(
        !carols.iter().any(|e| matches!(
            e,
            SubscriptionEvent::Join(i) | SubscriptionEvent::Leave(i) if i.user == "bob"
        )),
        "{carols:?}"
    );
    carol.close().await;
    alice.close().await;
}
both_protocols!(join_leave_between_clients);

#[tokio::test]
async fn tags_filter_delivers_only_matching_publications() {
    let mut config = insecure_config();
    config["channel"]["namespaces"] = serde_json::json!([
        {"name": "tf", "allow_tags_filter": true, "history_size": 10, "history_ttl": "300s"}
    ]);
    let server = Server::start(config);
    for protocol in PROTOCOLS {
        let ch = format!("tf:ticks-{protocol:?}");
        let client = options(&server, protocol).build().expect("client");
        client.connect();
        let filter = TagsFilter::and([
            TagsFilter::eq("ticker", "AAPL"),
            TagsFilter::or([
                TagsFilter::gt("price", "100"),
                TagsFilter::exists("priority"),
            ]),
        ]);
        let sub = client
            .new_subscription(&ch, SubscriptionOptions::new().tags_filter(filter))
            .expect("sub");
        let mut sub_events = sub.events();
        sub.subscribe();
        sub.ready(None).await.expect("subscribed");
        let sent = [
            (
                r#"{"n":1}"#,
                serde_json::json!({"ticker": "AAPL", "price": "150"}),
            ),
            (
                r#"{"n":2}"#,
                serde_json::json!({"ticker": "MSFT", "price": "150"}),
            ),
            (
                r#"{"n":3}"#,
                serde_json::json!({"ticker": "AAPL", "price": "99"}),
            ),
            (
                r#"{"n":4}"#,
                serde_json::json!({"ticker": "AAPL", "priority": "high"}),
            ),
        ];
        for (data, tags) in &sent {
            let data: serde_json::Value = serde_json::from_str(data).expect("json");
            let reply = server
                .api(
                    "publish",
                    serde_json::json!({"channel": ch, "data": data, "tags": tags}),
                )
                .await;
            assert!(reply.get("error").is_none(), "{reply}");
        }
        let mut got = Vec::new();
        while got.len() < 2 {
            match wait_sub(&mut sub_events, "publication", |e| {
                matches!(e, SubscriptionEvent::Publication(_))
            })
            .await
            {
                SubscriptionEvent::Publication(p) => got.push((p.data.clone(), p.offset)),
                _ => unreachable!(),
            }
        }
        // Publications 1 and 4 match; the stream's offsets still count every publication.
        assert_eq!(&got[0].0[..], br#"{"n":1}"#);
        assert_eq!(&got[1].0[..], br#"{"n":4}"#);
        assert_eq!((got[0].1, got[1].1), (1, 4));
        let rest = drain(&mut sub_events, Duration::from_millis(300)).await;
        assert!(
            !rest
                .iter()
                .any(|e| matches!(e, SubscriptionEvent::Publication(_))),
            "{rest:?}"
        );

        // A namespace without allow_tags_filter refuses the filter.
        let refused = client
            .new_subscription(
                format!("plain-{protocol:?}"),
                SubscriptionOptions::new().tags_filter(TagsFilter::eq("a", "b")),
            )
            .expect("sub");
        let mut refused_events = refused.events();
        refused.subscribe();
        let end = wait_sub(&mut refused_events, "unsubscribed", |e| {
            matches!(e, SubscriptionEvent::Unsubscribed { .. })
        })
        .await;
        assert!(
            matches!(end, SubscriptionEvent::Unsubscribed { code: 107, .. }),
            "a filter where it is not allowed is refused with 107: {end:?}"
        );
        client.close().await;
    }
}
