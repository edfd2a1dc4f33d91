//! The PostgreSQL broker and controller across nodes: each test starts its own PostgreSQL
//! (`support::services::spawn_postgres`, installed by `scripts/install-test-deps.sh`) and
//! `gyre serve` nodes on it alone (no Redis, but for presence in one test), then checks
//! delivery to the real npm client, shared history and recovery, transactional publishing
//! from the application's own transaction, idempotency and versions, joins and leaves, control
//! (info, disconnect) over PostgreSQL, and a PostgreSQL restart. Start-up, TLS, binary data
//! and upkeep are in `postgres_upkeep.rs`.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::json_conn::{client, next_pub, subscribe, wait_for};
use support::pg_nodes::{KillOnDrop, application, node, offsets, pg, publish_when_up};
use support::{Gyre, config};

/// The real npm `centrifuge` client across two nodes on PostgreSQL alone
/// (`conformance/js/cross_node.mjs`), JSON and protobuf. Presence is per node here (memory
/// presence manager).
#[test]
fn real_client_across_nodes() {
    let pg = pg();
    let a = node(&pg);
    let b = node(&pg);
    for protocol in ["json", "protobuf"] {
        support::run_cross_node_js_env(&a, &b, protocol, &[("GYRE_PRESENCE_SCOPE", "node")]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_recovery_are_shared_between_nodes() {
    let pg = pg();
    let a = node(&pg);
    let b = node(&pg);
    let mut on_b = client(&b, "bob").await;
    let sub = subscribe(
        &mut on_b,
        2,
        json!({ "channel": "news", "recoverable": true }),
    )
    .await;
    let epoch = sub["epoch"].as_str().expect("epoch").to_owned();
    assert!(!epoch.is_empty(), "{sub}");

    // Publications on A reach B in offset order, from both nodes' APIs.
    for n in 1..=12u64 {
        let node = if n % 3 == 0 { &b } else { &a };
        let r = node.api("publish", json!({ "channel": "news", "data": { "n": n } }));
        assert_eq!(
            (r["offset"].as_u64(), r["epoch"].as_str()),
            (Some(n), Some(epoch.as_str())),
            "{r}"
        );
    }
    for n in 1..=12u64 {
        let p = next_pub(&mut on_b, "news").await;
        assert_eq!(
            (p["offset"].as_u64(), p["data"]["n"].as_u64()),
            (Some(n), Some(n))
        );
    }

    // History is shared and keeps the newest history_size publications.
    let h = b.api("history", json!({ "channel": "news", "limit": -1 }));
    assert_eq!(
        offsets(&h["publications"]),
        (3..=12).collect::<Vec<_>>(),
        "{h}"
    );
    assert_eq!(
        (h["offset"].as_u64(), h["epoch"].as_str()),
        (Some(12), Some(epoch.as_str()))
    );
    let h = a.api(
        "history",
        json!({ "channel": "news", "limit": 2, "reverse": true }),
    );
    assert_eq!(offsets(&h["publications"]), vec![12, 11], "{h}");
    let h = a.api(
        "history",
        json!({ "channel": "news", "limit": 2, "since": { "offset": 8, "epoch": epoch } }),
    );
    assert_eq!(offsets(&h["publications"]), vec![9, 10], "{h}");

    // The client leaves, misses publications, comes back on B and recovers exactly them.
    drop(on_b);
    for n in 13..=15 {
        a.api("publish", json!({ "channel": "news", "data": { "n": n } }));
    }
    let mut on_b = client(&b, "bob").await;
    let sub = subscribe(
        &mut on_b,
        2,
        json!({ "channel": "news", "recoverable": true, "recover": true, "offset": 12, "epoch": epoch }),
    )
    .await;
    assert_eq!(sub["recovered"], true, "{sub}");
    assert_eq!(offsets(&sub["publications"]), vec![13, 14, 15], "{sub}");
    a.api("publish", json!({ "channel": "news", "data": { "n": 16 } }));
    assert_eq!(next_pub(&mut on_b, "news").await["offset"], 16);

    // remove_history keeps the position: an empty history at offset 16.
    a.api("history_remove", json!({ "channel": "news" }));
    let h = b.api("history", json!({ "channel": "news", "limit": -1 }));
    assert_eq!(
        (h["offset"].as_u64(), h["epoch"].as_str()),
        (Some(16), Some(epoch.as_str()))
    );
    assert!(
        h["publications"].as_array().is_none_or(Vec::is_empty),
        "{h}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_publish_commits_with_the_application_data() {
    let pg = pg();
    let a = node(&pg);
    let b = node(&pg);
    let mut app = application(&pg).await;
    app.batch_execute("CREATE TABLE orders (id INT PRIMARY KEY, item TEXT NOT NULL)")
        .await
        .expect("create orders");
    let mut on_b = client(&b, "bob").await;
    subscribe(
        &mut on_b,
        2,
        json!({ "channel": "orders", "recoverable": true }),
    )
    .await;
    let mut on_a = client(&a, "alice").await;
    subscribe(&mut on_a, 2, json!({ "channel": "orders" })).await;

    // The application's own transaction: its row and the publication commit together.
    let publish = "SELECT out_channel_offset, out_epoch FROM cf_stream_publish($1, $2::TEXT::JSONB, \
                   p_history_size => 10, p_history_ttl => interval '5 minutes')";
    let order = |id: i32, item: &str| json!({ "order": id, "item": item }).to_string();
    for (id, item, commit) in [(1, "tea", true), (2, "cake", false), (3, "jam", true)] {
        let data = order(id, item);
        let tx = app.transaction().await.expect("begin");
        tx.execute(
            "INSERT INTO orders (id, item) VALUES ($1, $2)",
            &[&id, &item],
        )
        .await
        .expect("insert order");
        let row = tx
            .query_one(publish, &[&"orders", &data])
            .await
            .expect("publish");
        let offset: i64 = row.get(0);
        assert!(offset > 0);
        if commit {
            tx.commit().await.expect("commit");
        } else {
            tx.rollback().await.expect("rollback");
        }
    }

    // Committed publications arrive once each, in order, on both nodes; the rolled-back one
    // never (it would have come between them) and took no offset.
    for conn in [&mut on_b, &mut on_a] {
        let first = next_pub(conn, "orders").await;
        let second = next_pub(conn, "orders").await;
        assert_eq!(
            [
                &first["data"]["order"],
                &first["offset"],
                &second["data"]["order"],
                &second["offset"]
            ],
            [&json!(1), &json!(1), &json!(3), &json!(2)],
            "{first} {second}"
        );
    }
    let h = a.api("history", json!({ "channel": "orders", "limit": -1 }));
    let items: Vec<Value> = h["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .map(|p| p["data"]["item"].clone())
        .collect();
    assert_eq!(items, vec![json!("tea"), json!("jam")], "{h}");
    assert_eq!(offsets(&h["publications"]), vec![1, 2]);
    let rows: Vec<i32> = app
        .query("SELECT id FROM orders ORDER BY id", &[])
        .await
        .expect("orders")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, vec![1, 3]);

    // The position an application reads with its state (top_position) is where a client
    // subscribes from and recovers what followed.
    let top = app
        .query_one(
            "SELECT out_top_offset, out_epoch FROM cf_stream_top_position('orders')",
            &[],
        )
        .await
        .expect("top position");
    let (top, epoch): (i64, String) = (top.get(0), top.get(1));
    assert_eq!(
        (top, epoch.as_str()),
        (2, h["epoch"].as_str().expect("epoch"))
    );
    app.execute(publish, &[&"orders", &order(4, "pie")])
        .await
        .expect("publish outside a transaction");
    let mut late = client(&a, "carol").await;
    let sub = subscribe(
        &mut late,
        2,
        json!({ "channel": "orders", "recoverable": true, "recover": true, "offset": top, "epoch": epoch }),
    )
    .await;
    assert_eq!(sub["recovered"], true, "{sub}");
    assert_eq!(offsets(&sub["publications"]), vec![3], "{sub}");
    assert_eq!(next_pub(&mut on_b, "orders").await["data"]["item"], "pie");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_between_nodes_goes_over_postgres() {
    let pg = pg();
    let a = node(&pg);
    let b = node(&pg);
    let mut on_b = client(&b, "carol").await;

    // info lists both nodes once heartbeats went round.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let info = a.api("info", json!({}));
        let known_by_b = b.api("info", json!({}))["nodes"].as_array().map(Vec::len) == Some(2);
        if info["nodes"].as_array().map(Vec::len) == Some(2) && known_by_b {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "info never listed both nodes: {info}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A server-side subscribe issued on A reaches the connection on B.
    a.api("subscribe", json!({ "user": "carol", "channel": "room" }));
    wait_for(&mut on_b, |v| {
        (v["push"]["channel"] == "room" && v["push"]["subscribe"].is_object()).then_some(())
    })
    .await;
    a.api("publish", json!({ "channel": "room", "data": { "n": 1 } }));
    assert_eq!(next_pub(&mut on_b, "room").await["data"]["n"], 1);

    // disconnect issued on A.
    a.api(
        "disconnect",
        json!({ "user": "carol", "disconnect": { "code": 4100, "reason": "go away" } }),
    );
    loop {
        if let Err((code, reason)) = on_b.next().await {
            assert_eq!((code, reason.as_str()), (4100, "go away"));
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_makes_positioned_subscribers_recover() {
    let mut pg = pg();
    let a = node(&pg);
    let b = node(&pg);
    let mut on_b = client(&b, "bob").await;
    let sub = subscribe(
        &mut on_b,
        2,
        json!({ "channel": "news", "recoverable": true }),
    )
    .await;
    let epoch = sub["epoch"].as_str().expect("epoch").to_owned();
    publish_when_up(&a, "news", json!({ "n": 1 })).await;
    assert_eq!(next_pub(&mut on_b, "news").await["offset"], 1);

    pg.restart(Duration::from_millis(300));

    // B's reader notices the loss, reconnects and tells the subscriber to recover.
    let code = wait_for(&mut on_b, |v| {
        (v["push"]["channel"] == "news" && v["push"]["unsubscribe"].is_object())
            .then(|| v["push"]["unsubscribe"]["code"].clone())
    })
    .await;
    assert_eq!(code, 2500);

    // A publishes again once it reaches PostgreSQL; the client resubscribes from its
    // position and recovers (PostgreSQL kept the stream).
    let r = publish_when_up(&a, "news", json!({ "n": 2 })).await;
    assert_eq!(r["offset"], 2, "{r}");
    let sub = subscribe(
        &mut on_b,
        3,
        json!({ "channel": "news", "recoverable": true, "recover": true, "offset": 1, "epoch": epoch }),
    )
    .await;
    assert_eq!(sub["recovered"], true, "{sub}");
    assert_eq!(offsets(&sub["publications"]), vec![2], "{sub}");
    publish_when_up(&a, "news", json!({ "n": 3 })).await;
    assert_eq!(next_pub(&mut on_b, "news").await["offset"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_and_versions_are_checked_in_postgres() {
    let pg = pg();
    let a = node(&pg);
    let b = node(&pg);
    let mut on_b = client(&b, "bob").await;
    subscribe(
        &mut on_b,
        2,
        json!({ "channel": "state", "recoverable": true }),
    )
    .await;

    // The same idempotency key on either node: one publication, the first result.
    let first = a.api(
        "publish",
        json!({ "channel": "state", "data": { "v": 1 }, "idempotency_key": "k1" }),
    );
    let again = b.api(
        "publish",
        json!({ "channel": "state", "data": { "v": 1 }, "idempotency_key": "k1" }),
    );
    assert_eq!(
        (first["offset"].clone(), &first["epoch"]),
        (json!(1), &again["epoch"]),
        "{first} {again}"
    );
    assert_eq!(again["offset"], 1, "{again}");

    // A version not newer than the stream's is dropped.
    for (version, expected) in [(5, 2), (4, 2), (5, 2), (6, 3)] {
        let r = a.api(
            "publish",
            json!({ "channel": "state", "data": { "version": version }, "version": version }),
        );
        assert_eq!(r["offset"], expected, "version {version}: {r}");
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        let p = next_pub(&mut on_b, "state").await;
        seen.push((p["offset"].as_u64(), p["data"].clone()));
    }
    assert_eq!(
        seen,
        vec![
            (Some(1), json!({ "v": 1 })),
            (Some(2), json!({ "version": 5 })),
            (Some(3), json!({ "version": 6 })),
        ]
    );
}

/// PostgreSQL delivers joins and leaves across nodes while presence lives in Redis
/// (`presence_manager`), and a channel without history honours idempotency keys too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_leave_over_postgres_with_presence_in_redis() {
    let pg = pg();
    let redis_port = support::free_port();
    let _redis = KillOnDrop(support::spawn_redis(redis_port));
    let section = json!({ "dsn": pg.dsn, "use_notify": true });
    let start = || {
        Gyre::start(&config(json!({
            "engine": { "type": "memory" },
            "broker": { "enabled": true, "type": "postgres", "postgres": section },
            "presence_manager": {
                "enabled": true,
                "type": "redis",
                "redis": { "address": [format!("redis://127.0.0.1:{redis_port}")] },
            },
            "channel": {
                "without_namespace": {
                    "presence": true,
                    "join_leave": true,
                    "allow_subscribe_for_client": true,
                },
            },
        })))
    };
    let a = start();
    let b = start();
    let mut on_a = client(&a, "alice").await;
    subscribe(
        &mut on_a,
        2,
        json!({ "channel": "room", "join_leave": true }),
    )
    .await;
    let mut on_b = client(&b, "bob").await;
    subscribe(&mut on_b, 2, json!({ "channel": "room" })).await;
    let joined = wait_for(&mut on_a, |v| {
        (v["push"]["join"]["info"]["user"] == "bob").then(|| v["push"]["channel"].clone())
    })
    .await;
    assert_eq!(joined, "room");
    for node in [&a, &b] {
        let stats = node.api("presence_stats", json!({ "channel": "room" }));
        assert_eq!(stats, json!({ "num_clients": 2, "num_users": 2 }));
    }

    // No history here: offset 0, and a repeated idempotency key is delivered once.
    for _ in 0..2 {
        let r = b.api(
            "publish",
            json!({ "channel": "room", "data": { "n": 1 }, "idempotency_key": "once" }),
        );
        assert!(r.get("offset").is_none_or(|o| o == 0), "{r}");
    }
    b.api("publish", json!({ "channel": "room", "data": { "n": 2 } }));
    let first = next_pub(&mut on_a, "room").await;
    let second = next_pub(&mut on_a, "room").await;
    assert_eq!(
        (first["data"]["n"].clone(), second["data"]["n"].clone()),
        (json!(1), json!(2))
    );

    on_b.send(&json!({"id": 3, "unsubscribe": {"channel": "room"}}))
        .await;
    on_b.reply(3).await;
    let left = wait_for(&mut on_a, |v| {
        (v["push"]["leave"]["info"]["user"] == "bob").then(|| v["push"]["channel"].clone())
    })
    .await;
    assert_eq!(left, "room");
}
