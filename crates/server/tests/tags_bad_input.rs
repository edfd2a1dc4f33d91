//! Malformed tags filters over the raw JSON and Protobuf protocols: answered with error 107
//! (or, for trees too deep for the decoders, a bad-request disconnect of that connection only),
//! while the same connection and the others go on.

mod support;

use std::time::Duration;

use prost::Message as _;
use serde_json::{Value, json};
use support::raw::{Incoming, RawWs};
use support::{Gyre, config};

fn server() -> Gyre {
    Gyre::start(&config(json!({
        "client": { "insecure": true },
        "channel": { "namespaces": [{ "name": "tg", "allow_tags_filter": true, "allow_subscribe_for_client": true }] },
    })))
}

fn nested(depth: usize) -> Value {
    let mut tree = json!({ "key": "a", "cmp": "eq", "val": "1" });
    for _ in 1..depth {
        tree = json!({ "op": "not", "nodes": [tree] });
    }
    tree
}

async fn subscribe(ws: &mut RawWs, id: u64, channel: &str, tf: Value) -> Value {
    let command = json!({ "id": id, "subscribe": { "channel": channel, "tf": tf } });
    ws.send_text(&command.to_string()).await;
    ws.reply(id).await
}

#[tokio::test]
async fn bad_filters_are_107_and_the_connection_goes_on() {
    let gyre = server();
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    ws.connect_json("").await;
    let bad = [
        json!({ "op": "nand", "nodes": [{ "key": "a", "cmp": "eq", "val": "1" }] }),
        json!({ "key": "a", "cmp": "regex", "val": "." }),
        json!({ "key": "", "cmp": "eq", "val": "1" }),
        json!({ "key": "a", "cmp": "ex", "val": "1" }),
        json!({ "op": "not", "nodes": [{ "key": "a", "cmp": "ex" }, { "key": "b", "cmp": "ex" }] }),
        json!({ "op": "or", "nodes": (0..300).map(|_| json!({ "key": "a", "cmp": "ex" })).collect::<Vec<_>>() }),
        nested(33),
    ];
    for (i, tf) in bad.into_iter().enumerate() {
        let reply = subscribe(&mut ws, 10 + i as u64, "tg:x", tf.clone()).await;
        assert_eq!(reply["error"]["code"], 107, "{tf} -> {reply}");
    }
    // Not allowed in this namespace.
    let reply = subscribe(&mut ws, 30, "other", json!({ "key": "a", "cmp": "ex" })).await;
    assert_eq!(reply["error"]["code"], 107, "{reply}");
    // The deepest accepted tree, then a valid subscribe on the same connection.
    let reply = subscribe(&mut ws, 31, "tg:deep", nested(32)).await;
    assert!(reply["subscribe"].is_object(), "{reply}");
    let reply = subscribe(
        &mut ws,
        32,
        "tg:x",
        json!({ "key": "a", "cmp": "gte", "val": "-1.5" }),
    )
    .await;
    assert!(reply["subscribe"].is_object(), "{reply}");
}

#[tokio::test]
async fn a_tree_too_deep_to_decode_closes_only_that_connection() {
    let gyre = server();
    let mut other = RawWs::connect(&gyre.ws_url(), None).await;
    other.connect_json("").await;
    let reply = subscribe(
        &mut other,
        2,
        "tg:x",
        json!({ "key": "a", "cmp": "eq", "val": "1" }),
    )
    .await;
    assert!(reply["subscribe"].is_object(), "{reply}");

    // JSON deeper than the decoder's nesting limit.
    let mut ws = RawWs::connect(&gyre.ws_url(), None).await;
    ws.connect_json("").await;
    let command = json!({ "id": 2, "subscribe": { "channel": "tg:x", "tf": nested(200) } });
    ws.try_send_text(&command.to_string()).await;
    assert_eq!(ws.close_code().await, 3501);

    // Protobuf deeper than the decoder's recursion limit.
    let mut pb = RawWs::connect(&gyre.ws_url(), Some("centrifuge-protobuf")).await;
    let mut tree = gyre_protocol::FilterNode {
        key: "a".into(),
        cmp: "eq".into(),
        val: "1".into(),
        ..Default::default()
    };
    for _ in 0..200 {
        tree = gyre_protocol::FilterNode {
            op: "not".into(),
            nodes: vec![tree],
            ..Default::default()
        };
    }
    let commands = [
        gyre_protocol::Command {
            id: 1,
            connect: Some(Default::default()),
            ..Default::default()
        },
        gyre_protocol::Command {
            id: 2,
            subscribe: Some(gyre_protocol::SubscribeRequest {
                channel: "tg:x".into(),
                tf: Some(tree),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    let mut frame = Vec::new();
    for c in &commands {
        c.encode_length_delimited(&mut frame).expect("encode");
    }
    pb.send_binary(frame).await;
    let code = loop {
        match pb.next(Duration::from_secs(5)).await {
            Incoming::Binary(_) => continue,
            Incoming::Closed(code, _) => break code,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, 3501);

    // The first client still gets its filtered publications.
    let api = gyre.api(
        "publish",
        json!({ "channel": "tg:x", "data": { "n": 1 }, "tags": { "a": "1" } }),
    );
    assert!(api.is_object(), "{api}");
    match other.next(Duration::from_secs(5)).await {
        Incoming::Text(text) => {
            let v: Value = serde_json::from_str(&text).expect("json");
            assert_eq!(v["push"]["pub"]["data"]["n"], 1, "{v}");
        }
        got => panic!("unexpected {got:?}"),
    }
}
