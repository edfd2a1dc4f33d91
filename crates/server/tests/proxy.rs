//! Proxies against a real HTTP backend (an axum app in the test on a free loopback port):
//! connect without a token, RPC, subscribe and publish decisions, server-side refresh,
//! `disconnect` and `error` replies, replies that are not usable, and a slow backend that
//! must not stall anything but the command waiting for it.

mod support;

mod proxy_backend;

use std::sync::atomic::Ordering;

use proxy_backend::{backend, gyre};
use serde_json::{Value, json};
use support::json_conn::{Conn, next_pub, subscribe, wait_for};
use support::{Gyre, config};

/// Connects without a token, authenticated by the connect proxy from the `x-user` header.
async fn connect_as(node: &Gyre, user: &str) -> (Conn, Value) {
    let mut conn = Conn::open_with(&node.ws_url(), &[("x-user", user)]).await;
    conn.send(&json!({"id": 1, "connect": {}})).await;
    let reply = conn.reply(1).await;
    (conn, reply)
}

async fn rpc(conn: &mut Conn, id: u64, method: &str, data: Value) -> Value {
    conn.send(&json!({"id": id, "rpc": {"method": method, "data": data}}))
        .await;
    conn.reply(id).await
}

#[tokio::test]
async fn connect_rpc_subscribe_and_publish_through_proxies() {
    let (base, _) = backend().await;
    let node = gyre(&base);
    let (mut conn, reply) = connect_as(&node, "alice").await;
    assert_eq!(
        reply["connect"]["data"],
        json!({"hello": "alice"}),
        "{reply}"
    );

    let echo = rpc(&mut conn, 2, "echo", json!({"x": 1})).await;
    let data = &echo["rpc"]["data"];
    assert_eq!(data["user"], "alice", "{echo}");
    assert_eq!(data["meta"], json!({"team": "blue"}), "{echo}");
    assert_eq!(data["data"], json!({"x": 1}), "{echo}");
    assert_eq!(data["header"], "alice", "forwarded header: {echo}");
    assert_eq!(data["static"], "s1", "static header: {echo}");
    assert_eq!(
        (
            &data["encoding"],
            &data["protocol"],
            &data["transport"],
            &data["client_set"]
        ),
        (
            &json!("json"),
            &json!("json"),
            &json!("websocket"),
            &json!(true)
        ),
        "{echo}"
    );
    // The built-in ping method keeps working beside the proxy.
    let ping = rpc(&mut conn, 3, "ping", json!({})).await;
    assert!(ping["rpc"].is_object(), "{ping}");

    conn.send(&json!({"id": 4, "subscribe": {"channel": "sp:deny"}}))
        .await;
    let denied = conn.reply(4).await;
    assert_eq!(denied["error"]["code"], 1403, "{denied}");
    assert_eq!(denied["error"]["message"], "not in this room", "{denied}");

    let sub = subscribe(&mut conn, 5, json!({"channel": "sp:room"})).await;
    assert_eq!(sub["data"], json!({"welcome": "sp:room"}), "{sub}");
    conn.send(&json!({"id": 6, "publish": {"channel": "sp:room", "data": {"text": "hi"}}}))
        .await;
    // The reply and the publication may come in either order.
    let (mut publication, mut published) = (None, None);
    while publication.is_none() || published.is_none() {
        let v = wait_for(&mut conn, |v| Some(v.clone())).await;
        if v["id"] == 6 {
            published = Some(v);
        } else if v["push"]["pub"].is_object() {
            publication = Some(v["push"]["pub"].clone());
        }
    }
    let (publication, published) = (
        publication.unwrap_or_default(),
        published.unwrap_or_default(),
    );
    assert!(published["publish"].is_object(), "{published}");
    assert_eq!(
        publication["data"],
        json!({"rewritten": {"text": "hi"}}),
        "{publication}"
    );
    assert_eq!(
        publication["info"]["chan_info"],
        json!({"seat": 7}),
        "{publication}"
    );
}

#[tokio::test]
async fn token_meta_reaches_the_rpc_proxy() {
    let (base, _) = backend().await;
    let node = gyre(&base);
    let mut conn = Conn::open(&node.ws_url()).await;
    let token = support::token(json!({"sub": "dave", "meta": {"team": "red"}}));
    conn.send(&json!({"id": 1, "connect": {"token": token}}))
        .await;
    let reply = conn.reply(1).await;
    assert!(reply["connect"].is_object(), "{reply}");
    let echo = rpc(&mut conn, 2, "echo", json!({})).await;
    assert_eq!(echo["rpc"]["data"]["user"], "dave", "{echo}");
    assert_eq!(
        echo["rpc"]["data"]["meta"],
        json!({"team": "red"}),
        "{echo}"
    );
}

#[tokio::test]
async fn error_and_disconnect_replies_reach_the_client() {
    let (base, _) = backend().await;
    let node = gyre(&base);
    let (_, reply) = connect_as(&node, "").await;
    assert_eq!(reply["error"]["code"], 1001, "{reply}");
    let (mut banned, _) = connect_as_raw(&node, "banned").await;
    let closed = banned.next().await.err();
    assert_eq!(closed.map(|c| c.0), Some(4501));

    let (mut conn, _) = connect_as(&node, "bob").await;
    let failed = rpc(&mut conn, 2, "fail", json!({})).await;
    assert_eq!(failed["error"]["code"], 1000, "{failed}");
    assert_eq!(failed["error"]["message"], "custom", "{failed}");
    conn.send(&json!({"id": 3, "rpc": {"method": "bye"}})).await;
    let closed = loop {
        match conn.next().await {
            Ok(_) => continue,
            Err(closed) => break closed,
        }
    };
    assert_eq!(closed, (4001, "bye".to_owned()));
}

/// Sends the connect command without waiting for a reply.
async fn connect_as_raw(node: &Gyre, user: &str) -> (Conn, ()) {
    let mut conn = Conn::open_with(&node.ws_url(), &[("x-user", user)]).await;
    conn.send(&json!({"id": 1, "connect": {}})).await;
    (conn, ())
}

#[tokio::test]
async fn unusable_replies_give_internal_error_and_the_connection_goes_on() {
    let (base, _) = backend().await;
    let node = gyre(&base);
    let (mut conn, _) = connect_as(&node, "carol").await;
    for (id, method) in [
        (2, "garbage"),
        (3, "nothing"),
        (4, "b64bad"),
        (5, "status"),
        (6, "slow"),
    ] {
        let reply = rpc(&mut conn, id, method, json!({})).await;
        assert_eq!(reply["error"]["code"], 100, "{method}: {reply}");
        assert_eq!(reply["error"]["temporary"], true, "{method}: {reply}");
    }
    let echo = rpc(&mut conn, 7, "echo", json!({})).await;
    assert_eq!(echo["rpc"]["data"]["user"], "carol", "{echo}");
    // A backend that refuses connections: a node whose RPC proxy points at a closed port.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let other = Gyre::start(&config(json!({
        "client": {"allow_anonymous_connect_without_token": true},
        "rpc": {"proxy": {"endpoint": format!("http://{closed}/rpc")}, "without_namespace": {"proxy_enabled": true}},
    })));
    let mut conn = Conn::open(&other.ws_url()).await;
    conn.send(&json!({"id": 1, "connect": {}})).await;
    conn.reply(1).await;
    let reply = rpc(&mut conn, 2, "echo", json!({})).await;
    assert_eq!(reply["error"]["code"], 100, "{reply}");
}

#[tokio::test]
async fn server_side_refresh_keeps_the_connection() {
    let (base, backend) = backend().await;
    let node = gyre(&base);
    let (mut conn, reply) = connect_as(&node, "refresher").await;
    assert!(reply["connect"].is_object(), "{reply}");
    assert!(
        reply["connect"].get("expires").is_none(),
        "server-side refresh: {reply}"
    );
    // The connection expires every second; the refresh proxy prolongs it each time.
    while backend.refreshes.load(Ordering::SeqCst) < 3 {
        let notified = backend.refreshed.notified();
        if backend.refreshes.load(Ordering::SeqCst) >= 3 {
            break;
        }
        notified.await;
    }
    let echo = rpc(&mut conn, 2, "echo", json!({})).await;
    assert_eq!(echo["rpc"]["data"]["user"], "refresher", "{echo}");
}

#[tokio::test]
async fn a_stuck_backend_stalls_only_the_commands_waiting_for_it() {
    let (base, _) = backend().await;
    let node = gyre(&base);
    let mut stuck = Vec::new();
    for i in 0..20 {
        let (mut conn, reply) = connect_as(&node, &format!("u{i}")).await;
        assert!(reply["connect"].is_object(), "{reply}");
        subscribe(&mut conn, 2, json!({"channel": "news"})).await;
        conn.send(&json!({"id": 3, "rpc": {"method": "stuck:wait"}}))
            .await;
        stuck.push(conn);
    }
    let (mut watcher, _) = connect_as(&node, "watcher").await;
    subscribe(&mut watcher, 2, json!({"channel": "news"})).await;
    for n in 0..20 {
        node.api("publish", json!({"channel": "news", "data": {"n": n}}));
        let publication = next_pub(&mut watcher, "news").await;
        assert_eq!(publication["data"]["n"], n);
    }
    // The stuck connections get the publications too, and answer other commands meanwhile
    // (out of order: command 4 is answered while command 3 still waits for its 60 s timeout).
    for conn in &mut stuck {
        for n in 0..20 {
            let publication = next_pub(conn, "news").await;
            assert_eq!(publication["data"]["n"], n);
        }
        conn.send(&json!({"id": 4, "rpc": {"method": "echo"}}))
            .await;
        let first = wait_for(conn, |v| (v["id"] == 3 || v["id"] == 4).then(|| v.clone())).await;
        assert_eq!(first["id"], 4, "{first}");
        assert!(first["rpc"].is_object(), "{first}");
    }
}

#[tokio::test]
async fn sub_refresh_proxy_keeps_or_ends_subscriptions() {
    let (base, backend) = backend().await;
    let node = gyre(&base);
    let (mut conn, _) = connect_as(&node, "erin").await;
    let sub = subscribe(&mut conn, 2, json!({"channel": "sr:room"})).await;
    assert!(
        sub.get("expires").is_none(),
        "server-side sub refresh: {sub}"
    );
    // The subscription expires every second; the sub_refresh proxy prolongs it each time.
    while backend.sub_refreshes.load(Ordering::SeqCst) < 2 {
        let notified = backend.sub_refreshed.notified();
        if backend.sub_refreshes.load(Ordering::SeqCst) >= 2 {
            break;
        }
        notified.await;
    }
    node.api(
        "publish",
        json!({"channel": "sr:room", "data": {"still": "here"}}),
    );
    let publication = next_pub(&mut conn, "sr:room").await;
    assert_eq!(publication["data"], json!({"still": "here"}));
    // An `expired` answer ends the subscription with an unsubscribe push.
    subscribe(&mut conn, 3, json!({"channel": "sr:end"})).await;
    let code = wait_for(&mut conn, |v| {
        (v["push"]["channel"] == "sr:end" && v["push"]["unsubscribe"].is_object())
            .then(|| v["push"]["unsubscribe"]["code"].clone())
    })
    .await;
    assert_eq!(code, 2501, "unsubscribe code");
}
