//! HTTP-streaming, SSE and `/emulation` with a plain HTTP/1.1 client over loopback: commands
//! through `/emulation` reach the session, and broken requests get upstream's status codes
//! (400 bad JSON or no `cf_connect`, 404 unknown node, 204 unknown session, 405 wrong method,
//! 413 oversized body) or disconnect codes (3501 for garbage commands), CORS headers only for
//! allowed origins, and a client that stops reading or goes away is dropped: the session count
//! returns to zero every time.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Gyre;
use support::http_stream::{Stream, request};

/// How long a test waits for something that should happen.
const WAIT: Duration = Duration::from_secs(10);

fn start(extra: Value) -> Gyre {
    let mut config = json!({
        "client": { "insecure": true, "allowed_origins": ["http://good.example"] },
        "channel": { "without_namespace": { "history_size": 10, "history_ttl": "60s" } },
        "http_stream": { "max_request_body_size": 1024 },
        "sse": { "max_request_body_size": 1024 },
        "emulation": { "max_request_body_size": 1024 },
    });
    if let (Value::Object(c), Value::Object(e)) = (&mut config, extra) {
        c.extend(e);
    }
    Gyre::start(&support::config(config))
}

/// `{node, session}` of a connect reply.
fn ids(reply: &Value) -> (String, String) {
    let connect = &reply["connect"];
    let node = connect["node"].as_str().expect("node id").to_owned();
    let session = connect["session"].as_str().expect("session id").to_owned();
    (node, session)
}

fn emulate(gyre: &Gyre, node: &str, session: &str, commands: &str) -> u16 {
    let body = json!({ "node": node, "session": session, "data": commands }).to_string();
    let headers = [("Content-Type", "application/json")];
    request(&gyre.addr, "POST", "/emulation", &headers, body.as_bytes()).0
}

fn clients(gyre: &Gyre) -> u64 {
    gyre.api("info", json!({}))["nodes"][0]["num_clients"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

/// Waits until no client is connected.
fn wait_no_clients(gyre: &Gyre) {
    let deadline = Instant::now() + WAIT;
    while clients(gyre) != 0 {
        assert!(Instant::now() < deadline, "clients left: {}", clients(gyre));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn commands_through_emulation_and_a_disconnect_push() {
    let gyre = start(json!({}));
    let mut stream = Stream::open(
        &gyre.addr,
        "/connection/http_stream",
        r#"{"id":1,"connect":{}}"#,
    );
    let reply = stream.next().expect("connect reply");
    let (node, session) = ids(&reply);
    assert_eq!(clients(&gyre), 1);

    let status = emulate(
        &gyre,
        &node,
        &session,
        r#"{"id":2,"subscribe":{"channel":"news"}}"#,
    );
    assert_eq!(status, 204);
    let subscribed = stream.next().expect("subscribe reply");
    assert_eq!(subscribed["id"], 2, "{subscribed}");
    gyre.api("publish", json!({ "channel": "news", "data": { "n": 1 } }));
    let push = stream.next().expect("publication");
    assert_eq!(push["push"]["pub"]["data"], json!({ "n": 1 }), "{push}");

    // Garbage commands: disconnect 3501 as a push, then the end of the response.
    assert_eq!(emulate(&gyre, &node, &session, "not a command"), 204);
    let last = stream.last().expect("disconnect push");
    assert_eq!(last["push"]["disconnect"]["code"], 3501, "{last}");
    wait_no_clients(&gyre);
    // The session is gone: its id is unknown now (upstream answers 204 all the same).
    assert_eq!(
        emulate(&gyre, &node, &session, r#"{"id":3,"ping":{}}"#),
        204
    );
}

#[test]
fn broken_requests_get_upstream_statuses() {
    let gyre = start(json!({}));
    let json_type = [("Content-Type", "application/json")];
    let addr = &gyre.addr;
    assert_eq!(
        request(addr, "POST", "/emulation", &json_type, b"{not json").0,
        400
    );
    let unknown_node = json!({ "node": "nope", "session": "s", "data": "{}" }).to_string();
    assert_eq!(
        request(
            addr,
            "POST",
            "/emulation",
            &json_type,
            unknown_node.as_bytes()
        )
        .0,
        404
    );
    assert_eq!(
        request(
            addr,
            "POST",
            "/emulation",
            &[("Content-Type", "application/octet-stream")],
            &[0xff, 0xff, 0xff]
        )
        .0,
        400
    );
    let big = vec![b' '; 4096];
    assert_eq!(request(addr, "POST", "/emulation", &json_type, &big).0, 413);
    assert_eq!(
        request(addr, "POST", "/connection/http_stream", &json_type, &big).0,
        413
    );
    assert_eq!(
        request(addr, "POST", "/connection/sse", &json_type, &big).0,
        413
    );
    assert_eq!(request(addr, "GET", "/emulation", &[], b"").0, 405);
    assert_eq!(
        request(addr, "GET", "/connection/http_stream", &[], b"").0,
        405
    );
    assert_eq!(request(addr, "GET", "/connection/sse", &[], b"").0, 400);
    assert_eq!(request(addr, "PUT", "/connection/sse", &[], b"").0, 405);

    // CORS: an allowed origin is echoed, another is not.
    let (status, head) = request(
        addr,
        "OPTIONS",
        "/emulation",
        &[
            ("Origin", "http://good.example"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    );
    assert_eq!(status, 204);
    assert!(
        head.contains("access-control-allow-origin: http://good.example"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-credentials: true"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-headers: content-type"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-methods: post, options"),
        "{head}"
    );
    let (status, head) = request(
        addr,
        "OPTIONS",
        "/connection/http_stream",
        &[("Origin", "http://evil.example")],
        b"",
    );
    assert_eq!(status, 204);
    assert!(!head.contains("access-control-allow-origin"), "{head}");

    // A connect request that is not one: the stream answers disconnect 3501 and ends.
    let mut stream = Stream::open(addr, "/connection/http_stream", "garbage");
    let last = stream.last().expect("disconnect push");
    assert_eq!(last["push"]["disconnect"]["code"], 3501, "{last}");
    let mut sse = Stream::open(
        addr,
        "/connection/sse",
        r#"{"id":1,"subscribe":{"channel":"x"}}"#,
    );
    let last = sse.last().expect("disconnect push");
    assert_eq!(last["push"]["disconnect"]["code"], 3501, "{last}");
    wait_no_clients(&gyre);
}

#[test]
fn a_client_that_goes_away_is_forgotten() {
    let gyre = start(json!({}));
    let mut streams = Vec::new();
    for path in ["/connection/http_stream", "/connection/sse"] {
        let mut stream = Stream::open(&gyre.addr, path, r#"{"id":1,"connect":{}}"#);
        assert!(stream.next().expect("connect reply")["connect"].is_object());
        streams.push(stream);
    }
    assert_eq!(clients(&gyre), 2);
    // Half-open: the client closes its socket without a word.
    for stream in streams {
        let _ = stream.tcp.shutdown(std::net::Shutdown::Both);
    }
    wait_no_clients(&gyre);
}

#[test]
fn a_client_that_stops_reading_is_disconnected_as_slow() {
    let gyre = start(json!({
        "client": { "insecure": true, "queue_max_size": 65536 },
    }));
    let mut stream = Stream::open(
        &gyre.addr,
        "/connection/http_stream",
        r#"{"id":1,"connect":{}}"#,
    );
    let (node, session) = ids(&stream.next().expect("connect reply"));
    assert_eq!(
        emulate(
            &gyre,
            &node,
            &session,
            r#"{"id":2,"subscribe":{"channel":"big"}}"#
        ),
        204
    );
    assert_eq!(stream.next().expect("subscribe reply")["id"], 2);
    // The client reads nothing more while far more than its queue and the socket buffers
    // hold is published.
    let payload = "x".repeat(32 * 1024);
    let deadline = Instant::now() + WAIT * 3;
    let mut published = 0;
    while clients(&gyre) != 0 {
        assert!(
            Instant::now() < deadline,
            "still connected after {published} publications"
        );
        for _ in 0..20 {
            gyre.api(
                "publish",
                json!({ "channel": "big", "data": { "p": payload } }),
            );
            published += 1;
        }
    }
    drop(stream);
}
