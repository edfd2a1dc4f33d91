//! The unidirectional transports with clients that have no SDK: a plain HTTP/1.1 reader on
//! `uni_http_stream` and `uni_sse` (GET with `cf_connect`, and POST), a plain WebSocket client
//! on `uni_websocket`. Each gets a bare connect push (no pong asked), then the publications
//! of its server-side subscriptions (token `channels`) as bare pushes; broken connect
//! requests get 400, a refused connect a disconnect push, and the session count returns to
//! zero.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Gyre;
use support::http_stream::{Stream, request};
use support::raw::{Incoming, RawWs};

const WAIT: Duration = Duration::from_secs(10);

fn start() -> Gyre {
    Gyre::start(&support::config(json!({
        "uni_http_stream": { "enabled": true },
        "uni_sse": { "enabled": true },
        "uni_websocket": { "enabled": true },
    })))
}

/// A connection token for user `u1` with a server-side subscription to `news`.
fn token() -> String {
    support::token(json!({ "sub": "u1", "exp": support::now() + 3600, "channels": ["news"] }))
}

fn clients(gyre: &Gyre) -> u64 {
    gyre.api("info", json!({}))["nodes"][0]["num_clients"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

fn wait_no_clients(gyre: &Gyre) {
    let deadline = Instant::now() + WAIT;
    while clients(gyre) != 0 {
        assert!(Instant::now() < deadline, "clients left: {}", clients(gyre));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The connect push: a bare push with the server-side subscription, no pong expected.
fn check_connect(push: &Value) {
    let connect = &push["connect"];
    assert!(connect["client"].is_string(), "{push}");
    assert!(connect["session"].is_string(), "{push}");
    assert!(connect["subs"]["news"].is_object(), "{push}");
    assert!(
        connect.get("pong").is_none(),
        "no pong for a unidirectional client: {push}"
    );
    assert!(push.get("id").is_none(), "a push, not a reply: {push}");
}

fn check_publication(push: &Value, n: u64) {
    assert_eq!(push["channel"], "news", "{push}");
    assert_eq!(push["pub"]["data"], json!({ "n": n }), "{push}");
}

#[test]
fn uni_http_stream_and_uni_sse_deliver_bare_pushes() {
    let gyre = start();
    let connect = json!({ "token": token() }).to_string();
    let query = format!(
        "/connection/uni_sse?cf_connect={}",
        connect
            .replace('"', "%22")
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace(':', "%3A")
    );
    let mut streams = vec![
        Stream::open(&gyre.addr, "/connection/uni_http_stream", &connect),
        Stream::open_with(&gyre.addr, "GET", &query, ""),
        Stream::open(&gyre.addr, "/connection/uni_sse", &connect),
    ];
    for stream in &mut streams {
        check_connect(&stream.next().expect("connect push"));
    }
    assert_eq!(clients(&gyre), 3);
    for n in 1..=2 {
        gyre.api("publish", json!({ "channel": "news", "data": { "n": n } }));
        for stream in &mut streams {
            check_publication(&stream.next().expect("publication"), n);
        }
    }
    // A server-side disconnect: a disconnect push, then the end of the response.
    gyre.api("disconnect", json!({ "user": "u1" }));
    for stream in &mut streams {
        let last = stream.last().expect("disconnect push");
        assert!(last["disconnect"]["code"].is_u64(), "{last}");
    }
    wait_no_clients(&gyre);
}

#[test]
fn broken_uni_connects() {
    let gyre = start();
    let addr = &gyre.addr;
    let json_type = [("Content-Type", "application/json")];
    assert_eq!(
        request(
            addr,
            "POST",
            "/connection/uni_http_stream",
            &json_type,
            b"xx"
        )
        .0,
        400
    );
    assert_eq!(
        request(addr, "POST", "/connection/uni_http_stream", &json_type, b"").0,
        400
    );
    assert_eq!(
        request(addr, "GET", "/connection/uni_http_stream", &[], b"").0,
        405
    );
    assert_eq!(
        request(addr, "GET", "/connection/uni_sse?cf_connect=zz", &[], b"").0,
        400
    );
    assert_eq!(
        request(addr, "POST", "/connection/uni_sse", &json_type, b"[1").0,
        400
    );
    assert_eq!(request(addr, "PUT", "/connection/uni_sse", &[], b"").0, 405);
    assert_eq!(
        request(
            addr,
            "GET",
            "/connection/uni_websocket?cf_connect=zz",
            &[],
            b""
        )
        .0,
        400
    );
    // A bad token: disconnect 3500 as a bare push, then the end.
    let mut stream = Stream::open(addr, "/connection/uni_http_stream", r#"{"token":"bad"}"#);
    let last = stream.last().expect("disconnect push");
    assert_eq!(last["disconnect"]["code"], 3500, "{last}");
    // No token and no anonymous access: upstream's disconnect for a refused connect.
    let mut stream = Stream::open(addr, "/connection/uni_http_stream", "null");
    let last = stream.last().expect("disconnect push");
    assert!(
        last["disconnect"]["code"]
            .as_u64()
            .is_some_and(|c| c >= 3000),
        "{last}"
    );
    wait_no_clients(&gyre);
}

async fn next_json(ws: &mut RawWs) -> Value {
    match ws.next(WAIT).await {
        Incoming::Text(text) => serde_json::from_str(&text).expect("a JSON message"),
        other => panic!("expected a text message, got {other:?}"),
    }
}

#[tokio::test]
async fn uni_websocket_with_a_plain_client() {
    let gyre = start();
    let url = format!("ws://{}/connection/uni_websocket", gyre.addr);
    let mut ws = RawWs::connect(&url, None).await;
    ws.send_text(&json!({ "token": token() }).to_string()).await;
    check_connect(&next_json(&mut ws).await);
    // Later messages are ignored.
    ws.send_text("ignored").await;
    gyre.api("publish", json!({ "channel": "news", "data": { "n": 1 } }));
    check_publication(&next_json(&mut ws).await, 1);
    // A refused connect: the disconnect push, then the close frame with the same code.
    let mut bad = RawWs::connect(&url, None).await;
    bad.send_text("not json").await;
    assert_eq!(next_json(&mut bad).await["disconnect"]["code"], 3501);
    assert_eq!(bad.close_code().await, 3501);
    drop(ws);
    let deadline = Instant::now() + WAIT;
    while clients(&gyre) != 0 {
        assert!(Instant::now() < deadline, "clients left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
