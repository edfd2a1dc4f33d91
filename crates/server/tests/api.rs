//! The server HTTP API: every method, batch, auth variants and error shapes.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::raw::{Incoming, RawWs};
use support::{API_KEY, Gyre, config, token};

fn server() -> Gyre {
    Gyre::start(&config(json!({
        "channel": {
            "without_namespace": {
                "presence": true,
                "history_size": 10,
                "history_ttl": "300s",
                "allow_subscribe_for_client": true,
            },
        },
    })))
}

/// Collects JSON messages from a client until `done` says stop.
async fn read_until(ws: &mut RawWs, mut done: impl FnMut(&Value) -> bool) {
    loop {
        match ws.next(Duration::from_secs(5)).await {
            Incoming::Text(text) => {
                for line in text.split('\n') {
                    let v: Value = serde_json::from_str(line).expect("json");
                    if done(&v) {
                        return;
                    }
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_works() {
    let gyre = server();
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    ws.connect_json(&token(json!({"sub": "alice"}))).await;
    ws.send_text(r#"{"id":2,"subscribe":{"channel":"room"}}"#)
        .await;
    ws.reply(2).await;

    // publish / broadcast with offsets; history; history_remove.
    let r = gyre.api(
        "publish",
        json!({"channel": "room", "data": {"n": 1}, "tags": {"k": "v"}}),
    );
    assert_eq!(r["offset"], 1);
    let epoch = r["epoch"].as_str().expect("epoch").to_owned();
    let r = gyre.api(
        "broadcast",
        json!({"channels": ["room", "nope:x"], "data": {"n": 2}}),
    );
    assert_eq!(r["responses"][0]["result"]["offset"], 2, "{r}");
    assert_eq!(r["responses"][1]["error"]["code"], 102, "{r}");
    read_until(&mut ws, |v| v["push"]["pub"]["data"]["n"] == 2).await;
    let h = gyre.api("history", json!({"channel": "room", "limit": -1}));
    assert_eq!(h["publications"].as_array().map(Vec::len), Some(2), "{h}");
    assert_eq!(h["publications"][0]["tags"]["k"], "v");
    assert_eq!(h["epoch"], epoch.as_str());
    let h = gyre.api(
        "history",
        json!({"channel": "room", "limit": 1, "reverse": true}),
    );
    assert_eq!(h["publications"][0]["offset"], 2);
    let (_, err) = gyre.api_raw(
        "history",
        &json!({"channel": "room", "since": {"offset": 1, "epoch": "other"}}),
        &[("X-API-Key", API_KEY)],
    );
    assert_eq!(err["error"]["code"], 112, "{err}");
    gyre.api("history_remove", json!({"channel": "room"}));
    let h = gyre.api("history", json!({"channel": "room", "limit": -1}));
    assert_eq!(h["publications"], json!([]));
    assert_eq!(h["offset"], 2, "position survives history_remove");

    // presence, presence_stats, channels, info.
    let p = gyre.api("presence", json!({"channel": "room"}));
    assert_eq!(p["presence"].as_object().map(|m| m.len()), Some(1), "{p}");
    let p = gyre.api("presence_stats", json!({"channel": "room"}));
    assert_eq!(
        (p["num_clients"].as_u64(), p["num_users"].as_u64()),
        (Some(1), Some(1))
    );
    let c = gyre.api("channels", json!({"pattern": "ro*"}));
    assert_eq!(c["channels"]["room"]["num_clients"], 1, "{c}");
    let c = gyre.api("channels", json!({"pattern": "x*"}));
    assert_eq!(c["channels"], json!({}));
    let i = gyre.api("info", json!({}));
    assert_eq!(i["nodes"][0]["num_clients"], 1, "{i}");
    assert_eq!(i["nodes"][0]["num_channels"], 1, "{i}");

    // subscribe / unsubscribe pushes for a user.
    gyre.api(
        "subscribe",
        json!({"user": "alice", "channel": "extra", "data": {"hi": 1}}),
    );
    read_until(&mut ws, |v| {
        v["push"]["channel"] == "extra" && v["push"]["subscribe"]["data"]["hi"] == 1
    })
    .await;
    gyre.api("unsubscribe", json!({"user": "alice", "channel": "extra"}));
    read_until(&mut ws, |v| v["push"]["unsubscribe"]["code"] == 2000).await;

    // batch runs several commands and reports each outcome.
    let b = gyre.api(
        "batch",
        json!({"commands": [
            {"publish": {"channel": "room", "data": {"n": 3}}},
            {"presence_stats": {"channel": "room"}},
            {"publish": {"channel": ""}},
        ]}),
    );
    assert_eq!(b["replies"][0]["publish"]["offset"], 3, "{b}");
    assert_eq!(b["replies"][1]["presence_stats"]["num_clients"], 1, "{b}");
    assert_eq!(b["replies"][2]["error"]["code"], 107, "{b}");

    // refresh with expired: the connection is closed as expired (3005).
    gyre.api("refresh", json!({"user": "alice", "expired": true}));
    assert_eq!(ws.close_code().await, 3005);

    // disconnect with a custom code and reason, whitelist respected.
    let mut a = RawWs::connect(&gyre.ws_url(), None).await;
    let ca = a.connect_json(&token(json!({"sub": "bob"}))).await;
    let mut b2 = RawWs::connect(&gyre.ws_url(), None).await;
    b2.connect_json(&token(json!({"sub": "bob"}))).await;
    let keep = ca["connect"]["client"].as_str().expect("client").to_owned();
    gyre.api("disconnect", json!({"user": "bob", "whitelist": [keep], "disconnect": {"code": 4100, "reason": "go away"}}));
    match b2.next(Duration::from_secs(5)).await {
        Incoming::Closed(code, reason) => assert_eq!((code, reason.as_str()), (4100, "go away")),
        other => panic!("unexpected {other:?}"),
    }
    a.send_text(r#"{"id":2,"subscribe":{"channel":"room"}}"#)
        .await;
    assert!(
        a.reply(2).await["subscribe"].is_object(),
        "whitelisted client stays"
    );
}

#[test]
fn api_auth_variants() {
    let gyre = server();
    let body = json!({"channel": "room", "data": {}});
    assert_eq!(gyre.api_raw("publish", &body, &[]).0, 401);
    assert_eq!(
        gyre.api_raw("publish", &body, &[("X-API-Key", "wrong")]).0,
        401
    );
    assert_eq!(
        gyre.api_raw(
            "publish",
            &body,
            &[("Authorization", "apikey test-api-key")]
        )
        .0,
        200
    );
    assert_eq!(
        gyre.api_raw(
            "publish",
            &body,
            &[("Authorization", "Bearer test-api-key")]
        )
        .0,
        401
    );
    let (status, _) = support::http_post(
        &gyre.addr,
        "/api/publish?api_key=test-api-key",
        &body.to_string(),
        &[],
    );
    assert_eq!(status, 200);
}

#[tokio::test]
async fn handshake_tolerates_what_real_clients_send() {
    let gyre = Gyre::start(&config(json!({"client": {"insecure": true}})));
    // An empty Sec-WebSocket-Protocol header (centrifuge-python 0.5 with websockets 15).
    let mut ws = RawWs::connect(&gyre.ws_url(), Some("")).await;
    assert!(ws.connect_json("").await["connect"].is_object());
    // Unknown query parameters and the legacy protocol version parameter.
    let url = format!("{}?cf_protocol_version=v2&foo=bar", gyre.ws_url());
    let mut ws = RawWs::connect(&url, None).await;
    assert!(ws.connect_json("").await["connect"].is_object());
    // The JSON subprotocol is accepted too.
    let mut ws = RawWs::connect(&gyre.ws_url(), Some("centrifuge-json")).await;
    assert!(ws.connect_json("").await["connect"].is_object());
}

#[test]
fn idempotent_publish_is_published_once() {
    let gyre = server();
    let body = json!({"channel": "room", "data": {"n": 1}, "idempotency_key": "k1"});
    let first = gyre.api("publish", body.clone());
    let again = gyre.api("publish", body);
    assert_eq!(first, again);
    let other = gyre.api(
        "publish",
        json!({"channel": "room", "data": {"n": 2}, "idempotency_key": "k2"}),
    );
    assert_eq!(other["offset"], 2);
    let h = gyre.api("history", json!({"channel": "room", "limit": -1}));
    assert_eq!(h["publications"].as_array().map(Vec::len), Some(2), "{h}");
}

#[tokio::test]
async fn connection_limit_answers_503() {
    let gyre = Gyre::start(&config(
        json!({"client": {"insecure": true, "connection_limit": 1}}),
    ));
    let mut first = RawWs::connect(&gyre.ws_url(), None).await;
    assert!(first.connect_json("").await["connect"].is_object());
    let mut s = std::net::TcpStream::connect(&gyre.addr).expect("connect");
    use std::io::{Read, Write};
    write!(
        s,
        "GET /connection/websocket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .expect("write");
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 503"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_pass_through_verbatim() {
    let gyre = server();
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    ws.connect_json(&token(json!({"sub": "alice"}))).await;
    ws.send_text(r#"{"id":2,"subscribe":{"channel":"room"}}"#)
        .await;
    ws.reply(2).await;
    let body = r#"{"channel":"room","data":{"z":1,"a":[2, 3],"m":"x"}}"#;
    let (status, _) =
        support::http_post(&gyre.addr, "/api/publish", body, &[("X-API-Key", API_KEY)]);
    assert_eq!(status, 200);
    let text = loop {
        match ws.next(Duration::from_secs(5)).await {
            Incoming::Text(t) if t.contains("\"pub\"") => break t,
            Incoming::Text(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(
        text.contains(r#""data":{"z":1,"a":[2, 3],"m":"x"}"#),
        "{text}"
    );
    let batch = r#"{"commands":[{"history":{"channel":"room","limit":-1}}]}"#;
    let mut s = std::net::TcpStream::connect(&gyre.addr).expect("connect");
    use std::io::{Read, Write};
    write!(
        s,
        "POST /api/batch HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{batch}",
        batch.len()
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(
        out.contains(r#""data":{"z":1,"a":[2, 3],"m":"x"}"#),
        "{out}"
    );
}

#[test]
fn the_legacy_single_endpoint_and_a_custom_health_prefix() {
    let gyre = Gyre::start(&config(json!({
        "health": {"enabled": true, "handler_prefix": "/healthz"},
    })));
    let command = json!({"method": "publish", "params": {"channel": "room", "data": {"n": 1}}});
    let (status, reply) = support::http_post(
        &gyre.addr,
        "/api",
        &command.to_string(),
        &[("X-API-Key", API_KEY)],
    );
    assert_eq!(status, 200, "{reply}");
    assert!(reply.get("result").is_some(), "{reply}");
    let (status, reply) = support::http_post(
        &gyre.addr,
        "/api",
        &json!({"method": "info"}).to_string(),
        &[("X-API-Key", API_KEY)],
    );
    assert_eq!(status, 200);
    assert_eq!(
        reply["result"]["nodes"].as_array().map(Vec::len),
        Some(1),
        "{reply}"
    );
    let (status, reply) = support::http_post(
        &gyre.addr,
        "/api",
        &json!({"method": "nope", "params": {}}).to_string(),
        &[("X-API-Key", API_KEY)],
    );
    assert_eq!((status, reply["error"]["code"].as_u64()), (200, Some(104)));
    let (status, _) = support::http_post(&gyre.addr, "/api", &command.to_string(), &[]);
    assert_eq!(status, 401);

    let mut stream = std::net::TcpStream::connect(&gyre.addr).expect("connect");
    std::io::Write::write_all(
        &mut stream,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .expect("write");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).expect("read");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}
