//! The `nats_jetstream` consumer against a real `nats-server` with JetStream: commands in
//! both shapes and publication data reach a real WebSocket subscriber, bad messages are
//! skipped and counted, and messages published while Gyre is down are delivered after a
//! restart (the durable consumer keeps the position).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use serde_json::{Value, json};
use support::json_conn::{client, next_pub, subscribe};
use support::services::spawn_nats;
use support::{Gyre, config, free_port};

/// Polls `check` every 50 ms until it returns something, failing after 20 s.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn gyre_config(url: &str, consumers: Value) -> Value {
    let mut c = config(json!({
        "channel": { "namespaces": [
            { "name": "feed", "history_size": 100, "history_ttl": "300s",
              "allow_subscribe_for_client": true }
        ] },
        "prometheus": { "enabled": true },
    }));
    let consumers: Vec<Value> = consumers
        .as_array()
        .expect("array")
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c["nats_jetstream"]["url"] = json!(url);
            c["nats_jetstream"]["stream_name"] = json!("COMMANDS");
            c
        })
        .collect();
    c["consumers"] = json!(consumers);
    c
}

fn history_ns(gyre: &Gyre, channel: &str) -> Vec<i64> {
    let result = gyre.api("history", json!({ "channel": channel, "limit": 100 }));
    result["publications"]
        .as_array()
        .map(|pubs| {
            pubs.iter()
                .filter_map(|p| p["data"]["n"].as_i64())
                .collect()
        })
        .unwrap_or_default()
}

fn metric(gyre: &Gyre, series: &str) -> f64 {
    let mut stream = TcpStream::connect(&gyre.addr).expect("connect");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in metrics"))
}

async fn context(url: &str) -> jetstream::Context {
    let client = async_nats::connect(url).await.expect("connect nats");
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: "COMMANDS".to_owned(),
        subjects: vec!["commands.>".to_owned()],
        ..Default::default()
    })
    .await
    .expect("create stream");
    js
}

async fn send(js: &jetstream::Context, subject: &str, headers: &[(&str, &str)], payload: Value) {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, *v);
    }
    let body = match payload {
        Value::String(text) => text,
        other => other.to_string(),
    };
    js.publish_with_headers(subject.to_owned(), map, body.into())
        .await
        .expect("publish")
        .await
        .expect("stored");
}

async fn settled(js: &jetstream::Context, durable: &str) {
    let stream = js.get_stream("COMMANDS").await.expect("stream");
    eventually("every message acknowledged", async || {
        let info = stream.consumer_info(durable).await.ok()?;
        (info.num_ack_pending == 0 && info.num_pending == 0).then_some(())
    })
    .await;
}

fn publish(channel: &str, n: i64) -> Value {
    json!({ "channel": channel, "data": { "n": n } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_commands_and_publications_reach_a_subscriber_and_bad_messages_are_skipped() {
    let nats = spawn_nats(free_port());
    let js = context(&nats.url).await;
    let gyre = Gyre::start(&gyre_config(
        &nats.url,
        json!([
            { "name": "commands", "enabled": true, "type": "nats_jetstream",
              "nats_jetstream": { "durable_consumer_name": "gyre_commands",
                                  "subjects": ["commands.api"], "deliver_policy": "all" } },
            { "name": "publications", "enabled": true, "type": "nats_jetstream",
              "nats_jetstream": { "durable_consumer_name": "gyre_publications",
                                  "subjects": ["commands.data"], "deliver_policy": "all",
                                  "publication_data_mode": { "enabled": true } } },
        ]),
    ));
    let mut sub = client(&gyre, "alice").await;
    subscribe(&mut sub, 2, json!({ "channel": "feed:items" })).await;
    send(
        &js,
        "commands.api",
        &[("centrifugo-method", "publish")],
        publish("feed:items", 1),
    )
    .await;
    assert_eq!(
        next_pub(&mut sub, "feed:items").await["data"],
        json!({ "n": 1 })
    );
    send(&js, "commands.api", &[], json!("not json")).await;
    send(
        &js,
        "commands.api",
        &[("centrifugo-method", "no_such_method")],
        json!({}),
    )
    .await;
    let envelope = json!({ "method": "publish", "payload": publish("feed:items", 2) });
    send(&js, "commands.api", &[], envelope).await;
    assert_eq!(
        next_pub(&mut sub, "feed:items").await["data"],
        json!({ "n": 2 })
    );
    send(
        &js,
        "commands.data",
        &[
            ("centrifugo-channels", "feed:items,feed:other"),
            ("centrifugo-tag-kind", "note"),
        ],
        json!({ "n": 3 }),
    )
    .await;
    let publication = next_pub(&mut sub, "feed:items").await;
    assert_eq!(publication["data"], json!({ "n": 3 }));
    assert_eq!(publication["tags"], json!({ "kind": "note" }));
    settled(&js, "gyre_commands").await;
    settled(&js, "gyre_publications").await;
    let series = |name: &str| format!("centrifugo_consumers_{name}{{consumer_name=\"commands\"}}");
    assert_eq!(metric(&gyre, &series("messages_skipped_total")), 2.0);
    assert_eq!(metric(&gyre, &series("messages_processed_total")), 4.0);
    assert_eq!(history_ns(&gyre, "feed:other"), vec![3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_messages_published_while_gyre_is_down_are_delivered_after_a_restart() {
    let nats = spawn_nats(free_port());
    let js = context(&nats.url).await;
    let cfg = gyre_config(
        &nats.url,
        json!([{ "name": "commands", "enabled": true, "type": "nats_jetstream",
                 "nats_jetstream": { "durable_consumer_name": "gyre", "subjects": ["commands.>"] } }]),
    );
    let gyre = Gyre::start(&cfg);
    let stream = js.get_stream("COMMANDS").await.expect("stream");
    // deliver_policy "new": only messages after the consumer exists.
    eventually("durable consumer", async || {
        stream.consumer_info("gyre").await.ok()
    })
    .await;
    let method = [("centrifugo-method", "publish")];
    send(&js, "commands.a", &method, publish("feed:items", 1)).await;
    eventually("first message applied", async || {
        (history_ns(&gyre, "feed:items") == vec![1]).then_some(())
    })
    .await;
    settled(&js, "gyre").await;
    drop(gyre);
    for n in 2..=6 {
        send(&js, "commands.b", &method, publish("feed:items", n)).await;
    }
    let gyre = Gyre::start(&cfg);
    eventually("messages published while down", async || {
        (history_ns(&gyre, "feed:items") == vec![2, 3, 4, 5, 6]).then_some(())
    })
    .await;
    settled(&js, "gyre").await;
    assert_eq!(history_ns(&gyre, "feed:items"), vec![2, 3, 4, 5, 6]);
}
