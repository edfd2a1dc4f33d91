//! Bad input gets upstream's error or disconnect code, and never harms other connections.

mod support;

use std::time::Duration;

use prost::Message as _;
use serde_json::{Value, json};
use support::raw::{Incoming, RawWs};
use support::{Gyre, config, now, token};

fn insecure_server(extra: Value) -> Gyre {
    let mut cfg = config(json!({
        "client": { "insecure": true, "channel_limit": 2 },
        "channel": { "max_length": 32, "without_namespace": { "presence": true } },
        "websocket": { "message_size_limit": 2048 },
    }));
    if let (Value::Object(base), Value::Object(extra)) = (&mut cfg, extra) {
        for (k, v) in extra {
            base.insert(k, v);
        }
    }
    Gyre::start(&cfg)
}

/// A connected client that subscribes, publishes and receives: proof the server still serves.
async fn assert_still_serving(gyre: &Gyre) {
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    let reply = ws.connect_json("").await;
    assert!(reply["connect"]["client"].is_string(), "{reply}");
    ws.send_text(r#"{"id":2,"subscribe":{"channel":"alive"}}"#)
        .await;
    assert!(ws.reply(2).await["subscribe"].is_object());
    ws.send_text(r#"{"id":3,"publish":{"channel":"alive","data":{"ok":true}}}"#)
        .await;
    let mut got_pub = false;
    let mut got_reply = false;
    while !(got_pub && got_reply) {
        match ws.next(Duration::from_secs(5)).await {
            Incoming::Text(text) => {
                for line in text.split('\n') {
                    let v: Value = serde_json::from_str(line).expect("json");
                    got_reply |= v["id"] == 3;
                    got_pub |= v["push"]["pub"]["data"]["ok"] == true;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn expect_close(gyre: &Gyre, frames: &[&str], code: u16) {
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    for f in frames {
        ws.try_send_text(f).await;
    }
    assert_eq!(ws.close_code().await, code, "frames {frames:?}");
}

#[tokio::test]
async fn protocol_violations_get_3501_and_others_keep_working() {
    let gyre = insecure_server(json!({}));
    let connect = r#"{"id":1,"connect":{}}"#;
    // Command before connect.
    expect_close(&gyre, &[r#"{"id":1,"subscribe":{"channel":"a"}}"#], 3501).await;
    // Malformed JSON.
    expect_close(&gyre, &["{not json"], 3501).await;
    // Empty message.
    expect_close(&gyre, &[""], 3501).await;
    // Blank line between commands.
    expect_close(
        &gyre,
        &["{\"id\":1,\"connect\":{}}\n\n{\"id\":2,\"presence\":{\"channel\":\"a\"}}"],
        3501,
    )
    .await;
    // Unknown command (no known request field).
    expect_close(&gyre, &[connect, r#"{"id":2,"frobnicate":{}}"#], 3501).await;
    // Legacy ping command.
    expect_close(&gyre, &[connect, r#"{"id":2,"ping":{}}"#], 3501).await;
    // Second connect.
    expect_close(&gyre, &[connect, r#"{"id":2,"connect":{}}"#], 3501).await;
    // Pong without a ping.
    expect_close(&gyre, &[connect, "{}"], 3501).await;
    // Command with id 0 that is not send/pong.
    expect_close(&gyre, &[connect, r#"{"subscribe":{"channel":"a"}}"#], 3501).await;
    // Empty channel.
    expect_close(
        &gyre,
        &[connect, r#"{"id":2,"subscribe":{"channel":""}}"#],
        3501,
    )
    .await;
    // Unknown delta type.
    expect_close(
        &gyre,
        &[
            connect,
            r#"{"id":2,"subscribe":{"channel":"a","delta":"zstd"}}"#,
        ],
        3501,
    )
    .await;
    // send without a handler: 3508 as upstream.
    expect_close(&gyre, &[connect, r#"{"send":{"data":{}}}"#], 3508).await;
    assert_still_serving(&gyre).await;
}

#[tokio::test]
async fn protobuf_garbage_gets_3501() {
    let gyre = insecure_server(json!({}));
    let mut ws = RawWs::connect(&gyre.ws_url(), Some("centrifuge-protobuf")).await;
    ws.send_binary(vec![0x05, 0xff, 0xff]).await;
    assert_eq!(ws.close_code().await, 3501);
    let mut ws = RawWs::connect(&format!("{}?format=protobuf", gyre.ws_url()), None).await;
    ws.send_binary(vec![0xff; 12]).await;
    assert_eq!(ws.close_code().await, 3501);
    assert_still_serving(&gyre).await;
}

#[tokio::test]
async fn oversized_message_closes_with_1009() {
    let gyre = insecure_server(json!({}));
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    ws.connect_json("").await;
    let big = format!(
        r#"{{"id":2,"publish":{{"channel":"a","data":"{}"}}}}"#,
        "x".repeat(4096)
    );
    ws.try_send_text(&big).await;
    assert_eq!(ws.close_code().await, 1009);
    assert_still_serving(&gyre).await;
}

#[tokio::test]
async fn reply_errors_use_upstream_codes() {
    let gyre = insecure_server(json!({
        "channel": { "max_length": 32, "without_namespace": { "presence": true } },
    }));
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    ws.connect_json("").await;
    let cases: &[(&str, u64)] = &[
        (
            r#"{"id":2,"subscribe":{"channel":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}"#,
            107,
        ),
        (r#"{"id":3,"subscribe":{"channel":"nope:x"}}"#, 102),
        (r#"{"id":4,"subscribe":{"channel":"a"}}"#, 0),
        (r#"{"id":5,"subscribe":{"channel":"a"}}"#, 105),
        (r#"{"id":6,"subscribe":{"channel":"b"}}"#, 0),
        (r#"{"id":7,"subscribe":{"channel":"c"}}"#, 106),
        (r#"{"id":8,"history":{"channel":"a"}}"#, 108),
        (r#"{"id":9,"rpc":{"method":"x","data":{}}}"#, 108),
        (r#"{"id":10,"presence":{"channel":"nope:x"}}"#, 102),
        (r#"{"id":11,"publish":{"channel":"nope:x","data":{}}}"#, 102),
        (
            r#"{"id":12,"sub_refresh":{"channel":"zzz","token":"x"}}"#,
            103,
        ),
        // Channel names must be ASCII unless a channel_regex says otherwise.
        (
            r#"{"id":13,"publish":{"channel":"caf\u00e9","data":{}}}"#,
            107,
        ),
    ];
    for (frame, code) in cases {
        ws.send_text(frame).await;
        let id: Value = serde_json::from_str(frame).expect("json");
        let reply = ws.reply(id["id"].as_u64().expect("id")).await;
        assert_eq!(
            reply["error"]["code"].as_u64().unwrap_or(0),
            *code,
            "{frame} -> {reply}"
        );
    }
}

#[tokio::test]
async fn tokens_get_upstream_outcomes() {
    let gyre = Gyre::start(&config(json!({})));
    // No credentials without insecure/anonymous mode: 3501.
    expect_close(&gyre, &[r#"{"id":1,"connect":{}}"#], 3501).await;
    // Invalid token: 3500.
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    ws.send_text(r#"{"id":1,"connect":{"token":"not.a.jwt"}}"#)
        .await;
    assert_eq!(ws.close_code().await, 3500);
    // Signed with another secret: 3500.
    let bad = gyre_auth::sign_hs256("other", &json!({"sub": "u"})).expect("sign");
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    ws.send_text(&json!({"id":1,"connect":{"token": bad}}).to_string())
        .await;
    assert_eq!(ws.close_code().await, 3500);
    // Expired: error 109 in the reply.
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    let reply = ws
        .connect_json(&token(json!({"sub": "u", "exp": now() - 10})))
        .await;
    assert_eq!(reply["error"]["code"], 109, "{reply}");
    // Valid token with expiry: expires and ttl in the result.
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    let reply = ws
        .connect_json(&token(json!({"sub": "u", "exp": now() + 100})))
        .await;
    assert_eq!(reply["connect"]["expires"], true, "{reply}");
    let ttl = reply["connect"]["ttl"].as_u64().expect("ttl");
    assert!((95..=100).contains(&ttl), "{reply}");
    // Subscription token: invalid → 103, expired → 109, other channel → 3500.
    ws.send_text(r#"{"id":2,"subscribe":{"channel":"$p","token":"bad"}}"#)
        .await;
    assert_eq!(ws.reply(2).await["error"]["code"], 103);
    let expired = token(json!({"sub": "u", "channel": "$p", "exp": now() - 5}));
    ws.send_text(&json!({"id":3,"subscribe":{"channel":"$p","token": expired}}).to_string())
        .await;
    assert_eq!(ws.reply(3).await["error"]["code"], 109);
    // Private channel without a token: 103.
    ws.send_text(r#"{"id":4,"subscribe":{"channel":"$p"}}"#)
        .await;
    assert_eq!(ws.reply(4).await["error"]["code"], 103);
    let good = token(json!({"sub": "u", "channel": "$p"}));
    ws.send_text(&json!({"id":5,"subscribe":{"channel":"$p","token": good}}).to_string())
        .await;
    assert!(ws.reply(5).await["subscribe"].is_object());
    let other = token(json!({"sub": "u", "channel": "$q"}));
    ws.send_text(&json!({"id":6,"subscribe":{"channel":"$p2","token": other}}).to_string())
        .await;
    assert_eq!(ws.close_code().await, 3500);
}

#[tokio::test]
async fn binary_payload_disconnects_only_the_json_subscriber() {
    let gyre = insecure_server(json!({}));
    let mut json_client = RawWs::connect(&gyre.ws_url(), None).await;
    json_client.connect_json("").await;
    json_client
        .send_text(r#"{"id":2,"subscribe":{"channel":"bin"}}"#)
        .await;
    json_client.reply(2).await;

    let mut pb = RawWs::connect(&gyre.ws_url(), Some("centrifuge-protobuf")).await;
    let frame = |cmd: gyre_protocol::Command| cmd.encode_length_delimited_to_vec();
    pb.send_binary(frame(gyre_protocol::Command {
        id: 1,
        connect: Some(Default::default()),
        ..Default::default()
    }))
    .await;
    let _ = pb.next(Duration::from_secs(5)).await;
    pb.send_binary(frame(gyre_protocol::Command {
        id: 2,
        subscribe: Some(gyre_protocol::SubscribeRequest {
            channel: "bin".into(),
            ..Default::default()
        }),
        ..Default::default()
    }))
    .await;
    let _ = pb.next(Duration::from_secs(5)).await;
    pb.send_binary(frame(gyre_protocol::Command {
        id: 3,
        publish: Some(gyre_protocol::PublishRequest {
            channel: "bin".into(),
            data: bytes::Bytes::from_static(&[0, 159, 146, 150]),
            ..Default::default()
        }),
        ..Default::default()
    }))
    .await;
    assert_eq!(json_client.close_code().await, 3506);
    // The protobuf publisher got its reply and the publication, and stays connected.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match pb.next(Duration::from_secs(5)).await {
            Incoming::Binary(b) => {
                let replies: Vec<gyre_protocol::Reply> =
                    gyre_protocol::codec::decode_all(gyre_protocol::Protocol::Protobuf, &b)
                        .expect("decode");
                seen.extend(replies);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(seen.iter().any(|r| r.id == 3 && r.error.is_none()));
    assert!(seen.iter().any(|r| {
        r.push
            .as_ref()
            .and_then(|p| p.publication.as_ref())
            .is_some_and(|p| p.data[..] == [0, 159, 146, 150])
    }));
    assert_still_serving(&gyre).await;
}

#[tokio::test]
async fn stale_connection_and_missing_pong() {
    let gyre = insecure_server(json!({
        "client": { "insecure": true, "stale_close_delay": "1s", "ping_interval": "2s", "pong_timeout": "1s" },
    }));
    // No connect command: 3502 stale.
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    assert_eq!(ws.close_code().await, 3502);
    // Connected but never answers pings: 3012 no pong.
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    let reply = ws.connect_json("").await;
    assert_eq!(reply["connect"]["ping"], 2, "{reply}");
    assert_eq!(reply["connect"]["pong"], true, "{reply}");
    assert_eq!(ws.close_code().await, 3012);
    // A client that answers every ping stays connected for several intervals.
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    ws.connect_json("").await;
    let mut pings = 0;
    while pings < 3 {
        match ws.next(Duration::from_secs(5)).await {
            Incoming::Text(t) if t == "{}" => {
                pings += 1;
                ws.send_text("{}").await;
            }
            Incoming::Text(_) => {}
            other => panic!("answered pings but got {other:?}"),
        }
    }
}

// Multi-threaded: the API calls below block, and the slow reader must keep running meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_disconnected_without_harming_others() {
    let gyre = insecure_server(json!({
        "client": { "insecure": true, "queue_max_size": 65536 },
        // Writes never time out here, so the slow-client disconnect (not a write error) ends it.
        "websocket": { "message_size_limit": 65536, "write_timeout": "60s" },
    }));
    let mut slow = RawWs::connect(&gyre.ws_url(), None).await;
    slow.connect_json("").await;
    slow.send_text(r#"{"id":2,"subscribe":{"channel":"firehose"}}"#)
        .await;
    slow.reply(2).await;
    let mut fast = RawWs::connect(&gyre.ws_url(), None).await;
    fast.connect_json("").await;
    fast.send_text(r#"{"id":2,"subscribe":{"channel":"other"}}"#)
        .await;
    fast.reply(2).await;
    // The slow client reads one message every 50 ms while publications arrive much faster.
    let reader = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Incoming::Closed(code, reason) = slow.next(Duration::from_secs(30)).await {
                return (code, reason);
            }
        }
    });
    let payload = json!({ "blob": "y".repeat(30_000) });
    let started = std::time::Instant::now();
    loop {
        for _ in 0..20 {
            gyre.api("publish", json!({ "channel": "firehose", "data": payload }));
        }
        let info = gyre.api("info", json!({}));
        if info["nodes"][0]["num_clients"] == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "slow client never disconnected"
        );
    }
    let code = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("reader finished")
        .expect("reader task");
    assert_eq!(code.0, 3008, "{code:?}");
    gyre.api(
        "publish",
        json!({ "channel": "other", "data": {"still": "here"} }),
    );
    loop {
        match fast.next(Duration::from_secs(5)).await {
            Incoming::Text(t) if t.contains("still") => break,
            Incoming::Text(_) => {}
            other => panic!("fast client affected: {other:?}"),
        }
    }
}

#[tokio::test]
async fn plain_http_get_and_bad_api_requests() {
    let gyre = insecure_server(json!({}));
    let (status, _) = support::http_post(&gyre.addr, "/api/publish", "{}", &[]);
    assert_eq!(status, 401, "API without key");
    let (status, _) = support::http_post(
        &gyre.addr,
        "/api/publish",
        "{",
        &[("X-API-Key", support::API_KEY)],
    );
    assert_eq!(status, 400, "malformed API JSON");
    let (status, body) = gyre.api_raw(
        "nope",
        &json!({}),
        &[("Authorization", "apikey test-api-key")],
    );
    assert_eq!((status, body["error"]["code"].as_u64()), (200, Some(104)));
    let (status, body) = gyre.api_raw(
        "publish",
        &json!({"channel": "nope:x", "data": {}}),
        &[
            ("X-API-Key", support::API_KEY),
            ("X-Centrifugo-Error-Mode", "transport"),
        ],
    );
    assert_eq!((status, body["code"].as_u64()), (404, Some(102)));
    // A plain GET of the WebSocket endpoint answers an HTTP status.
    let mut s = std::net::TcpStream::connect(&gyre.addr).expect("connect");
    use std::io::{Read, Write};
    write!(
        s,
        "GET /connection/websocket HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
}
