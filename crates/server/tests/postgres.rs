//! The PostgreSQL broker and controller across nodes: each test starts its own PostgreSQL
//! (`support::services::spawn_postgres`, installed by `scripts/install-test-deps.sh`) and
//! `gyre serve` nodes on it alone (no Redis), then checks delivery to the real npm client,
//! shared history and recovery, transactional publishing from the application's own
//! transaction, control (info, disconnect) over PostgreSQL, and a PostgreSQL restart.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::json_conn::{client, next_pub, subscribe, wait_for};
use support::services::{Postgres, spawn_postgres, spawn_postgres_tls};
use support::{Gyre, config};

/// A gyre node on PostgreSQL alone: broker and controller (LISTEN/NOTIFY on), memory
/// presence. Channels without a namespace keep history and recovery.
fn node(pg: &Postgres) -> Gyre {
    let section = json!({ "dsn": pg.dsn, "use_notify": true });
    // No sslmode for the controller: libpq's `prefer`, plain with this server.
    let plain = json!({ "dsn": pg.dsn.replace("?sslmode=disable", ""), "use_notify": true });
    Gyre::start(&config(json!({
        "engine": { "type": "memory" },
        "broker": { "enabled": true, "type": "postgres", "postgres": section },
        "controller": { "enabled": true, "type": "postgres", "postgres": plain },
        "channel": {
            "without_namespace": {
                "presence": true,
                "join_leave": true,
                "history_size": 10,
                "history_ttl": "300s",
                "force_recovery": true,
                "allow_subscribe_for_client": true,
                "allow_publish_for_client": true,
                "allow_presence_for_client": true,
                "allow_history_for_client": true,
            },
        },
    })))
}

fn pg() -> Postgres {
    spawn_postgres(support::free_port())
}

fn offsets(publications: &Value) -> Vec<u64> {
    publications
        .as_array()
        .expect("publications")
        .iter()
        .map(|p| p["offset"].as_u64().expect("offset"))
        .collect()
}

/// Publishes through `node`'s API, retrying while the node cannot reach PostgreSQL (at most
/// 20 s); the publish result.
async fn publish_when_up(node: &Gyre, channel: &str, data: Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, reply) = node.api_raw(
            "publish",
            &json!({ "channel": channel, "data": data }),
            &[("X-API-Key", support::API_KEY)],
        );
        if status == 200 && reply.get("error").is_none() {
            return reply.get("result").cloned().unwrap_or(reply);
        }
        assert!(Instant::now() < deadline, "publish kept failing: {reply}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

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

/// Connects as the application does, once the nodes created the schema (at most 20 s).
async fn application(pg: &Postgres) -> tokio_postgres::Client {
    let app = application_before_start(pg).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while app
        .query_one("SELECT to_regproc('cf_stream_publish') IS NOT NULL", &[])
        .await
        .map(|r| !r.get::<_, bool>(0))
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "the schema was never created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_start_while_postgres_is_down_and_work_once_it_appears() {
    let port = support::free_port();
    let dsn = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
    let section = json!({ "dsn": dsn, "use_notify": true });
    let start = || {
        Gyre::start(&config(json!({
            "engine": { "type": "memory" },
            "broker": { "enabled": true, "type": "postgres", "postgres": section },
            "controller": { "enabled": true, "type": "postgres", "postgres": section },
            "channel": { "without_namespace": { "history_size": 10, "history_ttl": "60s", "allow_subscribe_for_client": true } },
        })))
    };
    let a = start();
    let b = start();
    // Serving already: publish answers an error while PostgreSQL is away.
    let (status, reply) = a.api_raw(
        "publish",
        &json!({ "channel": "late", "data": {} }),
        &[("X-API-Key", support::API_KEY)],
    );
    assert_eq!(status, 200);
    assert!(reply.get("error").is_some(), "{reply}");

    let _pg = spawn_postgres(port);
    let mut on_b = client(&b, "bob").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut id = 2;
    loop {
        on_b.send(&json!({ "id": id, "subscribe": { "channel": "late" } }))
            .await;
        if on_b.reply(id).await["subscribe"].is_object() {
            break;
        }
        assert!(Instant::now() < deadline, "subscribe kept failing");
        id += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Once B's reader is connected (its cursors taken), A's publications reach it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    loop {
        n += 1;
        publish_when_up(&a, "late", json!({ "n": n })).await;
        let got =
            tokio::time::timeout(Duration::from_millis(500), next_pub(&mut on_b, "late")).await;
        if let Ok(p) = got {
            assert!(p["data"]["n"].as_u64().is_some(), "{p}");
            break;
        }
        assert!(Instant::now() < deadline, "publications never reached B");
    }
}

/// `binary_data: true`: payloads in BYTEA (`cf_binary_stream_*`), so an application may
/// publish any bytes; clients of JSON channels still get its JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_data_keeps_payloads_in_bytea() {
    let pg = pg();
    let section =
        json!({ "dsn": pg.dsn, "use_notify": true, "binary_data": true, "table_prefix": "app" });
    let a = Gyre::start(&config(json!({
        "engine": { "type": "memory" },
        "broker": { "enabled": true, "type": "postgres", "postgres": section },
        "channel": { "without_namespace": { "history_size": 10, "history_ttl": "60s", "allow_subscribe_for_client": true, "force_recovery": true } },
    })));
    let mut on_a = client(&a, "bob").await;
    subscribe(
        &mut on_a,
        2,
        json!({ "channel": "bin", "recoverable": true }),
    )
    .await;
    a.api(
        "publish",
        json!({ "channel": "bin", "data": { "from": "api" } }),
    );
    assert_eq!(next_pub(&mut on_a, "bin").await["data"]["from"], "api");

    let (app, connection) = tokio_postgres::connect(&pg.dsn, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let row = app
        .query_one(
            "SELECT out_channel_offset FROM app_binary_stream_publish('bin', $1::BYTEA)",
            &[&br#"{"from":"sql"}"#.as_slice()],
        )
        .await
        .expect("publish bytes");
    assert_eq!(row.get::<_, i64>(0), 2);
    let p = next_pub(&mut on_a, "bin").await;
    assert_eq!(
        (p["offset"].clone(), p["data"]["from"].clone()),
        (json!(2), json!("sql"))
    );
    let stored: i64 = app
        .query_one(
            "SELECT COUNT(*) FROM app_binary_stream WHERE channel = 'bin'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(stored, 2);
}

/// A PostgreSQL that accepts TLS only: the broker verifies it with the `tls` section (CA and
/// server name), the controller with the DSN's `sslmode=verify-full` and `sslrootcert`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_tls_section_or_the_dsn() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
        .expect("ca cert");
    let server_key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["pg.test".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params")
        .signed_by(&server_key, &ca)
        .expect("server cert");
    let port = support::free_port();
    let pg = spawn_postgres_tls(port, &server.pem(), &server_key.serialize_pem());
    let ca_path = std::env::temp_dir().join(format!("gyre-pg-ca-{port}.pem"));
    std::fs::write(&ca_path, ca.pem()).expect("write ca");
    let plain = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let refused =
        tokio_postgres::connect(&format!("{plain}?sslmode=disable"), tokio_postgres::NoTls)
            .await
            .is_err();
    assert!(refused, "the server accepted a plain connection");
    let broker = json!({
        "dsn": plain.clone(),
        "use_notify": true,
        "tls": { "enabled": true, "server_ca_pem": ca.pem(), "server_name": "pg.test" },
    });
    let controller = json!({
        "dsn": format!("{plain}?sslmode=verify-full&sslrootcert={}", ca_path.display()),
        "use_notify": true,
    });
    let start = || {
        Gyre::start(&config(json!({
            "engine": { "type": "memory" },
            "broker": { "enabled": true, "type": "postgres", "postgres": broker },
            "controller": { "enabled": true, "type": "postgres", "postgres": controller },
            "channel": { "without_namespace": { "history_size": 10, "history_ttl": "60s", "allow_subscribe_for_client": true } },
        })))
    };
    let a = start();
    let b = start();
    let mut on_b = client(&b, "bob").await;
    subscribe(&mut on_b, 2, json!({ "channel": "secure" })).await;
    let r = publish_when_up(&a, "secure", json!({ "n": 1 })).await;
    assert_eq!(r["offset"], 1, "{r}");
    assert_eq!(next_pub(&mut on_b, "secure").await["data"]["n"], 1);
    let deadline = Instant::now() + Duration::from_secs(15);
    while a.api("info", json!({}))["nodes"].as_array().map(Vec::len) != Some(2) {
        assert!(
            Instant::now() < deadline,
            "control over TLS never joined the nodes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(pg);
    let _ = std::fs::remove_file(ca_path);
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

/// A child process killed when the test ends (or fails).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// History keeps the newest `history_size` publications younger than `history_ttl` (applied
/// when read), and a channel whose meta TTL passed is forgotten by the periodic cleanup: its
/// next stream has a new epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_expires_and_idle_channels_are_forgotten() {
    let pg = pg();
    let section = json!({ "dsn": pg.dsn, "use_notify": true, "cleanup_interval": "1s" });
    let a = Gyre::start(&config(json!({
        "engine": { "type": "memory" },
        "broker": { "enabled": true, "type": "postgres", "postgres": section },
        "channel": {
            "without_namespace": { "history_size": 3, "history_ttl": "1s", "history_meta_ttl": "2s" },
        },
    })));
    let mut epoch = String::new();
    for n in 1..=5 {
        let r = a.api("publish", json!({ "channel": "short", "data": { "n": n } }));
        epoch = r["epoch"].as_str().expect("epoch").to_owned();
    }
    let h = a.api("history", json!({ "channel": "short", "limit": -1 }));
    assert_eq!(offsets(&h["publications"]), vec![3, 4, 5], "{h}");

    // Past history_ttl the publications are gone, the position stays.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h = a.api("history", json!({ "channel": "short", "limit": -1 }));
        if h["publications"].as_array().is_none_or(Vec::is_empty) {
            // (On a slow machine the cleanup may have forgotten the channel already.)
            if h["epoch"] == epoch.as_str() {
                assert_eq!(h["offset"], 5, "{h}");
            }
            break;
        }
        assert_eq!(h["epoch"], epoch.as_str(), "{h}");
        assert!(Instant::now() < deadline, "history never expired: {h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Past the meta TTL the cleanup forgets the channel: a new epoch from offset 0.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let top = probe_top(&pg).await;
        if top.is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the channel row was never deleted: {top:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = a.api("publish", json!({ "channel": "short", "data": { "n": 6 } }));
    assert_eq!(r["offset"], 1, "{r}");
    assert_ne!(r["epoch"], epoch.as_str(), "{r}");
}

/// The channel row of `short` (top offset, epoch), read as an application would.
async fn probe_top(pg: &Postgres) -> Option<(i64, String)> {
    let (app, connection) = tokio_postgres::connect(&pg.dsn, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    app.query_opt(
        "SELECT top_offset, epoch FROM cf_stream_meta WHERE channel = 'short'",
        &[],
    )
    .await
    .expect("meta")
    .map(|r| (r.get(0), r.get(1)))
}

/// Daily partitions: today's and the lookahead days exist, and partitions past their
/// retention are dropped by the periodic upkeep (stream table and control messages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_partitions_are_dropped_and_new_ones_created() {
    let pg = pg();
    let mut app = application_before_start(&pg).await;
    let section = json!({ "dsn": pg.dsn, "cleanup_interval": "1s", "partition_lookahead_days": 3 });
    let controller = json!({ "dsn": pg.dsn, "partition_cleanup_interval": "1s" });
    let _a = Gyre::start(&config(json!({
        "engine": { "type": "memory" },
        "broker": { "enabled": true, "type": "postgres", "postgres": section },
        "controller": { "enabled": true, "type": "postgres", "postgres": controller },
    })));
    let partitions = async |app: &tokio_postgres::Client, table: &str| -> Vec<String> {
        app.query(
            "SELECT c.relname::TEXT FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
             WHERE p.relname = $1 ORDER BY 1",
            &[&table],
        )
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default()
    };
    // Wait for the schema, then plant partitions from 2020.
    let deadline = Instant::now() + Duration::from_secs(20);
    while partitions(&app, "cf_controller_messages").await.is_empty()
        || partitions(&app, "cf_stream").await.len() < 4
    {
        assert!(Instant::now() < deadline, "partitions were never created");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        partitions(&app, "cf_stream").await.len(),
        4,
        "today and 3 days ahead"
    );
    let tx = app.transaction().await.expect("begin");
    for table in ["cf_stream", "cf_controller_messages"] {
        tx.batch_execute(&format!(
            "CREATE TABLE {table}_2020_01_01 PARTITION OF {table}
             FOR VALUES FROM ('2020-01-01 00:00:00+00') TO ('2020-01-02 00:00:00+00')"
        ))
        .await
        .expect("old partition");
    }
    tx.commit().await.expect("commit");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stream = partitions(&app, "cf_stream").await;
        let control = partitions(&app, "cf_controller_messages").await;
        let old = |names: &[String]| names.iter().any(|n| n.ends_with("2020_01_01"));
        if !old(&stream) && !old(&control) {
            assert_eq!(stream.len(), 4, "{stream:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old partitions stayed: {stream:?} {control:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A connection as the application's, before any node runs.
async fn application_before_start(pg: &Postgres) -> tokio_postgres::Client {
    let (app, connection) = tokio_postgres::connect(&pg.dsn, tokio_postgres::NoTls)
        .await
        .expect("connect to postgres");
    tokio::spawn(connection);
    app
}
