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
    ClientEvent, ClientOptions, Error, HistoryOptions, Protocol, State, SubscriptionEvent,
    SubscriptionOptions, SubscriptionState,
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
        assert!(
            before
                .iter()
                .any(|e| matches!(e, ClientEvent::Connected(_)))
        );
        let mut sub_states = Vec::new();
        while let Ok(Some(e)) =
            tokio::time::timeout(Duration::from_millis(50), sub_events.recv()).await
        {
            if is_sub_state(&e) {
                sub_states.push(e);
            }
        }
        server.restart();
        let e1 = wait_client(&mut events, "connecting", is_state).await;
        assert!(matches!(e1, ClientEvent::Connecting { .. }), "{e1:?}");
        let e2 = wait_client(&mut events, "connected", is_state).await;
        assert!(matches!(e2, ClientEvent::Connected(_)), "{e2:?}");
        let s1 = wait_sub(&mut sub_events, "subscribing", is_sub_state).await;
        assert!(
            matches!(s1, SubscriptionEvent::Subscribing { code: 1, .. }),
            "{s1:?}"
        );
        match wait_sub(&mut sub_events, "subscribed", is_sub_state).await {
            SubscriptionEvent::Subscribed(ctx) => {
                assert!(ctx.was_recovering);
                assert!(!ctx.recovered, "new epoch after restart: {ctx:?}");
            }
            other => panic!("{other:?}"),
        }
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
            matches!(e, ClientEvent::Error(Error::Timeout))
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
