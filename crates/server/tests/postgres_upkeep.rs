//! The PostgreSQL broker's operations: nodes starting while PostgreSQL is down, TLS (the
//! `tls` section and the DSN's `sslmode`), `binary_data` tables, history expiry and the
//! periodic upkeep (forgotten channels, daily partitions). Each test starts its own
//! PostgreSQL.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::json_conn::{client, next_pub, subscribe};
use support::pg_nodes::{application_before_start, offsets, pg, publish_when_up};
use support::services::{Postgres, spawn_postgres, spawn_postgres_tls};
use support::{Gyre, config};

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
    // The node serves before its first connection created the schema: wait for it.
    publish_when_up(&a, "warm-up", json!({})).await;
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
