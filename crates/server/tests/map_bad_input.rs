//! Bad map requests get upstream's error codes and never harm other subscribers: cursors that
//! do not decode, publications without a key or with an oversized one, phases out of order,
//! a wrong subscription type.

mod support;

use serde_json::{Value, json};
use support::raw::RawWs;
use support::{Gyre, config};

fn map_server() -> Gyre {
    Gyre::start(&config(json!({
        "client": { "insecure": true, "channel_limit": 2 },
        "channel": { "namespaces": [
            {
                "name": "mp",
                "subscription_type": "map",
                "map": { "mode": "persistent", "min_page_size": 1 },
                "allow_subscribe_for_client": true,
            },
            {
                "name": "ep",
                "subscription_type": "map",
                "map": { "mode": "ephemeral", "key_ttl": "60s" },
                "allow_subscribe_for_client": true,
            },
        ] },
    })))
}

/// Sends `frame` and returns the reply's error code (0 for success).
async fn code(ws: &mut RawWs, frame: Value) -> u64 {
    ws.send_text(&frame.to_string()).await;
    let id = frame["id"].as_u64().expect("id");
    let reply = ws.reply(id).await;
    reply["error"]["code"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn bad_map_requests_get_upstream_codes_and_others_keep_their_state() {
    let gyre = map_server();
    let mut watcher = RawWs::connect(&gyre.ws_url(), None).await;
    watcher.connect_json("").await;
    // A live subscriber of mp:a (state page that goes live at once).
    watcher
        .send_text(r#"{"id":2,"subscribe":{"channel":"mp:a","type":1,"phase":2}}"#)
        .await;
    let live = watcher.reply(2).await;
    assert_eq!(live["subscribe"]["recoverable"], true, "{live}");
    assert!(live["subscribe"].get("phase").is_none(), "live: {live}");

    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    ws.connect_json("").await;
    let long_key = "k".repeat(2000);
    let cases: Vec<(Value, u64)> = vec![
        // Publications without a key or with an oversized one.
        (
            json!({"id": 2, "publish": {"channel": "mp:a", "type": 1, "data": {}}}),
            107,
        ),
        (
            json!({"id": 3, "publish": {"channel": "mp:a", "type": 1, "key": long_key, "data": {}}}),
            107,
        ),
        (
            json!({"id": 4, "publish": {"channel": "mp:a", "type": 1, "key": "", "removed": true}}),
            107,
        ),
        // A map publication to a stream channel.
        (
            json!({"id": 5, "publish": {"channel": "plain", "type": 1, "key": "k", "data": {}}}),
            108,
        ),
        // A continuation page without a first one, a stream phase without state.
        (
            json!({"id": 6, "subscribe": {"channel": "mp:b", "type": 1, "phase": 2, "cursor": "azE"}}),
            103,
        ),
        (
            json!({"id": 7, "subscribe": {"channel": "mp:b", "type": 1, "phase": 1}}),
            103,
        ),
        // The wrong subscription type, an unknown phase, a stream phase on a streamless map.
        (
            json!({"id": 8, "subscribe": {"channel": "mp:b", "type": 2, "phase": 2}}),
            107,
        ),
        (
            json!({"id": 9, "subscribe": {"channel": "mp:b", "type": 1, "phase": 7}}),
            107,
        ),
        (
            json!({"id": 10, "subscribe": {"channel": "ep:b", "type": 1, "phase": 1, "recover": true}}),
            107,
        ),
        // A map subscribe to a stream channel.
        (
            json!({"id": 11, "subscribe": {"channel": "plain", "type": 1, "phase": 2}}),
            108,
        ),
        // A position of another epoch.
        (
            json!({"id": 12, "subscribe": {"channel": "mp:b", "type": 1, "phase": 0, "recover": true, "offset": 1, "epoch": "nope"}}),
            112,
        ),
    ];
    for (frame, expected) in cases {
        assert_eq!(code(&mut ws, frame.clone()).await, expected, "{frame}");
    }

    // A cursor that does not decode, after a real first page.
    for n in 0..3 {
        let frame = json!({"id": 20 + n, "publish": {"channel": "mp:b", "type": 1, "key": format!("k{n}"), "data": {"n": n}}});
        assert_eq!(code(&mut ws, frame).await, 0);
    }
    ws.send_text(r#"{"id":30,"subscribe":{"channel":"mp:b","type":1,"phase":2,"limit":1}}"#)
        .await;
    let first = ws.reply(30).await;
    assert_eq!(first["subscribe"]["phase"], 2, "{first}");
    assert!(first["subscribe"]["cursor"].is_string(), "{first}");
    let bad = json!({"id": 31, "subscribe": {"channel": "mp:b", "type": 1, "phase": 2, "limit": 1, "cursor": "%%% not base64 %%%"}});
    assert_eq!(code(&mut ws, bad).await, 107);
    // The failed flow is forgotten: a new first page starts over.
    ws.send_text(r#"{"id":32,"subscribe":{"channel":"mp:b","type":1,"phase":2}}"#)
        .await;
    let again = ws.reply(32).await;
    assert_eq!(
        again["subscribe"]["state"].as_array().map(Vec::len),
        Some(3),
        "{again}"
    );

    // Unfinished map subscribes count against the channel limit (2 here: mp:b is live and
    // mp:c stays on its first page).
    for n in 0..2 {
        let frame = json!({"id": 36 + n, "publish": {"channel": "mp:c", "type": 1, "key": format!("k{n}"), "data": {}}});
        assert_eq!(code(&mut ws, frame).await, 0);
    }
    ws.send_text(r#"{"id":33,"subscribe":{"channel":"mp:c","type":1,"phase":2,"limit":1}}"#)
        .await;
    let open = ws.reply(33).await;
    assert_eq!(open["subscribe"]["phase"], 2, "{open}");
    let third = json!({"id": 34, "subscribe": {"channel": "mp:d", "type": 1, "phase": 2}});
    assert_eq!(code(&mut ws, third).await, 106);
    // A duplicate first page keeps the flow that is open.
    let dup = json!({"id": 35, "subscribe": {"channel": "mp:c", "type": 1, "phase": 2}});
    assert_eq!(code(&mut ws, dup).await, 105);

    // The watcher still gets live keyed updates.
    let frame = json!({"id": 40, "publish": {"channel": "mp:a", "type": 1, "key": "ok", "data": {"ok": true}}});
    assert_eq!(code(&mut ws, frame).await, 0);
    let push = loop {
        match watcher.next(std::time::Duration::from_secs(5)).await {
            support::raw::Incoming::Text(text) => {
                let v: Value =
                    serde_json::from_str(text.lines().next().unwrap_or("{}")).expect("json");
                if v["push"]["pub"].is_object() {
                    break v;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(push["push"]["pub"]["key"], "ok", "{push}");
    assert_eq!(push["push"]["pub"]["data"], json!({"ok": true}), "{push}");
}
