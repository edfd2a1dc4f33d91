//! Asynchronous consumers against real servers: a PostgreSQL outbox table and Redis Streams
//! feed commands to `gyre serve`, whose real WebSocket subscribers (and `history` API) show
//! what was applied. Covers transactional insert / rollback, both message shapes, skipped
//! permanent errors (counted in the Prometheus metrics), retried temporary errors, and
//! kills and restarts of Gyre with messages written while it was down or left unacknowledged.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::json_conn::{client, next_pub, subscribe};
use support::services::{spawn_postgres, spawn_postgres_tls};
use support::{Gyre, config, free_port, spawn_redis};
use tokio_postgres::NoTls;

const OUTBOX_SQL: &str = "
CREATE TABLE centrifugo_outbox (
    id BIGSERIAL PRIMARY KEY,
    method TEXT NOT NULL,
    payload JSONB NOT NULL,
    partition BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL
);
CREATE TABLE app_items (id BIGSERIAL PRIMARY KEY, title TEXT NOT NULL);
CREATE OR REPLACE FUNCTION centrifugo_notify_partition_change() RETURNS TRIGGER AS $$
BEGIN
    PERFORM pg_notify('centrifugo_partition_change', NEW.partition::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER centrifugo_notify_partition_trigger AFTER INSERT ON centrifugo_outbox
FOR EACH ROW EXECUTE FUNCTION centrifugo_notify_partition_change();
";

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

async fn pg(dsn: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(dsn, NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

async fn outbox_rows(db: &tokio_postgres::Client) -> i64 {
    db.query_one("SELECT count(*) FROM centrifugo_outbox", &[])
        .await
        .expect("count")
        .get(0)
}

/// A config with history in namespace `feed` and `consumers`.
fn with_consumers(consumers: Value, extra: Value) -> Value {
    let mut c = config(json!({
        "channel": { "namespaces": [
            { "name": "feed", "history_size": 100, "history_ttl": "300s", "allow_subscribe_for_client": true }
        ] },
        "prometheus": { "enabled": true },
        "consumers": consumers,
    }));
    if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
        c.extend(extra);
    }
    c
}

fn outbox_consumer(dsn: &str, partitions: u32) -> Value {
    json!([{
        "name": "outbox",
        "enabled": true,
        "type": "postgresql",
        "postgresql": {
            "dsn": dsn,
            "outbox_table_name": "centrifugo_outbox",
            "num_partitions": partitions,
            "partition_poll_interval": "200ms",
            "partition_notification_channel": "centrifugo_partition_change",
        }
    }])
}

/// The `n` of every publication in `channel`'s history, oldest first.
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

/// One sample of Gyre's `/metrics`.
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

async fn insert(db: &tokio_postgres::Client, method: &str, payload: Value, partition: i64) {
    db.execute(
        "INSERT INTO centrifugo_outbox (method, payload, partition) VALUES ($1, $2::text::jsonb, $3)",
        &[&method, &payload.to_string(), &partition],
    )
    .await
    .expect("insert");
}

fn publish(channel: &str, n: i64) -> Value {
    json!({ "channel": channel, "data": { "n": n } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_row_of_a_committed_transaction_reaches_a_subscriber_and_a_rolled_back_one_never_does()
 {
    let postgres = spawn_postgres(free_port());
    let mut db = pg(&postgres.dsn).await;
    db.batch_execute(OUTBOX_SQL).await.expect("schema");
    let gyre = Gyre::start(&with_consumers(
        outbox_consumer(&postgres.dsn, 2),
        json!({}),
    ));
    let mut sub = client(&gyre, "alice").await;
    subscribe(&mut sub, 2, json!({ "channel": "feed:items" })).await;

    // Rolled back: the application row and its command vanish together.
    let tx = db.transaction().await.expect("begin");
    tx.execute("INSERT INTO app_items (title) VALUES ('draft')", &[])
        .await
        .expect("app row");
    tx.execute(
        "INSERT INTO centrifugo_outbox (method, payload) VALUES ('publish', $1::text::jsonb)",
        &[&publish("feed:items", 1).to_string()],
    )
    .await
    .expect("outbox row");
    tx.rollback().await.expect("rollback");

    // Committed, in the envelope shape (method inside the payload), on partition 1.
    let tx = db.transaction().await.expect("begin");
    tx.execute("INSERT INTO app_items (title) VALUES ('kept')", &[])
        .await
        .expect("app row");
    let envelope = json!({ "method": "publish", "payload": publish("feed:items", 2) });
    tx.execute(
        "INSERT INTO centrifugo_outbox (method, payload, partition) VALUES ('', $1::text::jsonb, 1)",
        &[&envelope.to_string()],
    )
    .await
    .expect("outbox row");
    tx.commit().await.expect("commit");

    assert_eq!(
        next_pub(&mut sub, "feed:items").await["data"],
        json!({ "n": 2 })
    );
    insert(&db, "publish", publish("feed:items", 3), 0).await;
    assert_eq!(
        next_pub(&mut sub, "feed:items").await["data"],
        json!({ "n": 3 })
    );
    // Any API method works: a broadcast, and a batch of two publishes.
    insert(
        &db,
        "broadcast",
        json!({ "channels": ["feed:items", "feed:other"], "data": { "n": 4 } }),
        1,
    )
    .await;
    assert_eq!(
        next_pub(&mut sub, "feed:items").await["data"],
        json!({ "n": 4 })
    );
    insert(
        &db,
        "batch",
        json!({ "commands": [
            { "publish": publish("feed:items", 5) },
            { "publish": publish("feed:items", 6) },
        ] }),
        0,
    )
    .await;
    assert_eq!(
        next_pub(&mut sub, "feed:items").await["data"],
        json!({ "n": 5 })
    );
    assert_eq!(
        next_pub(&mut sub, "feed:items").await["data"],
        json!({ "n": 6 })
    );
    assert_eq!(history_ns(&gyre, "feed:items"), vec![2, 3, 4, 5, 6]);
    assert_eq!(history_ns(&gyre, "feed:other"), vec![4]);
    eventually("applied rows deleted", async || {
        (outbox_rows(&db).await == 0).then_some(())
    })
    .await;
    assert_eq!(
        metric(
            &gyre,
            "centrifugo_consumers_messages_processed_total{consumer_name=\"outbox\"}"
        ),
        4.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_rows_with_permanent_errors_are_skipped_and_counted_and_the_next_row_is_applied() {
    let postgres = spawn_postgres(free_port());
    let db = pg(&postgres.dsn).await;
    db.batch_execute(OUTBOX_SQL).await.expect("schema");
    let gyre = Gyre::start(&with_consumers(
        outbox_consumer(&postgres.dsn, 1),
        json!({}),
    ));
    let mut sub = client(&gyre, "alice").await;
    subscribe(&mut sub, 2, json!({ "channel": "feed:items" })).await;
    insert(&db, "no_such_method", json!({}), 0).await;
    insert(&db, "publish", publish("unknown_namespace:x", 1), 0).await;
    insert(&db, "publish", json!({ "data": { "n": 1 } }), 0).await;
    insert(&db, "", json!({ "payload": {} }), 0).await;
    insert(&db, "publish", publish("feed:items", 7), 0).await;
    assert_eq!(
        next_pub(&mut sub, "feed:items").await["data"],
        json!({ "n": 7 })
    );
    eventually("every row done with", async || {
        (outbox_rows(&db).await == 0).then_some(())
    })
    .await;
    let series = |name: &str| format!("centrifugo_consumers_{name}{{consumer_name=\"outbox\"}}");
    assert_eq!(metric(&gyre, &series("messages_skipped_total")), 4.0);
    assert_eq!(metric(&gyre, &series("messages_processed_total")), 5.0);
    assert_eq!(metric(&gyre, &series("errors_total")), 0.0);
    assert_eq!(history_ns(&gyre, "feed:items"), vec![7]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_rows_written_while_gyre_is_down_are_delivered_after_a_restart_and_nothing_else() {
    let postgres = spawn_postgres(free_port());
    let db = pg(&postgres.dsn).await;
    db.batch_execute(OUTBOX_SQL).await.expect("schema");
    let cfg = with_consumers(outbox_consumer(&postgres.dsn, 2), json!({}));
    let gyre = Gyre::start(&cfg);
    insert(&db, "publish", publish("feed:items", 1), 0).await;
    insert(&db, "publish", publish("feed:items", 2), 1).await;
    eventually("first rows applied", async || {
        (history_ns(&gyre, "feed:items").len() == 2).then_some(())
    })
    .await;
    eventually("first rows deleted", async || {
        (outbox_rows(&db).await == 0).then_some(())
    })
    .await;
    // SIGKILL: no graceful stop.
    drop(gyre);
    for n in 3..=12 {
        insert(&db, "publish", publish("feed:items", n), n % 2).await;
    }
    assert_eq!(outbox_rows(&db).await, 10);
    let mut gyre = Gyre::start(&cfg);
    let mut applied = eventually("rows written while down applied", async || {
        let ns = history_ns(&gyre, "feed:items");
        (ns.len() >= 10).then_some(ns)
    })
    .await;
    applied.sort_unstable();
    assert_eq!(applied, (3..=12).collect::<Vec<_>>());
    // Live delivery goes on after the restart.
    let mut sub = client(&gyre, "alice").await;
    subscribe(&mut sub, 2, json!({ "channel": "feed:items" })).await;
    insert(&db, "publish", publish("feed:items", 13), 1).await;
    assert_eq!(
        next_pub(&mut sub, "feed:items").await["data"],
        json!({ "n": 13 })
    );
    // A graceful stop in between loses nothing either.
    assert!(gyre.terminate(), "gyre did not stop");
    insert(&db, "publish", publish("feed:items", 14), 0).await;
    let gyre = Gyre::start(&cfg);
    let applied = eventually("row written after a graceful stop", async || {
        let ns = history_ns(&gyre, "feed:items");
        (!ns.is_empty()).then_some(ns)
    })
    .await;
    assert_eq!(applied, vec![14]);
    assert_eq!(outbox_rows(&db).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_temporary_errors_are_retried_until_the_engine_is_back() {
    let postgres = spawn_postgres(free_port());
    let db = pg(&postgres.dsn).await;
    db.batch_execute(OUTBOX_SQL).await.expect("schema");
    let redis_port = free_port();
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    // The Redis engine is not running yet: every publish fails with an internal error.
    let gyre = Gyre::start(&with_consumers(
        outbox_consumer(&postgres.dsn, 1),
        json!({ "engine": { "type": "redis", "redis": { "address": [redis_url] } } }),
    ));
    insert(&db, "publish", publish("feed:items", 1), 0).await;
    insert(&db, "publish", publish("feed:items", 2), 0).await;
    let errors = "centrifugo_consumers_errors_total{consumer_name=\"outbox\"}";
    eventually("retries", async || {
        (metric(&gyre, errors) >= 2.0).then_some(())
    })
    .await;
    assert_eq!(outbox_rows(&db).await, 2, "a failed row must stay");
    let mut redis = spawn_redis(redis_port);
    eventually("rows applied once Redis is up", async || {
        (outbox_rows(&db).await == 0).then_some(())
    })
    .await;
    assert_eq!(history_ns(&gyre, "feed:items"), vec![1, 2]);
    let _ = redis.kill();
    let _ = redis.wait();
}

fn stream_consumer(redis_url: &str, extra: Value) -> Value {
    let mut options = json!({
        "address": redis_url,
        "streams": ["gyre_commands"],
        "consumer_group": "gyre",
        "visibility_timeout": "1s",
        "num_workers": 2,
    });
    if let (Value::Object(o), Value::Object(extra)) = (&mut options, extra) {
        o.extend(extra);
    }
    json!([{ "name": "streams", "enabled": true, "type": "redis_stream", "redis_stream": options }])
}

async fn xadd(redis: &mut redis::aio::MultiplexedConnection, fields: &[(&str, String)]) {
    let mut cmd = redis::cmd("XADD");
    cmd.arg("gyre_commands").arg("*");
    for (k, v) in fields {
        cmd.arg(*k).arg(v);
    }
    let _: String = cmd.query_async(redis).await.expect("xadd");
}

async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect redis")
}

/// Waits until the consumer group exists (the consumer created it).
async fn group_created(redis: &mut redis::aio::MultiplexedConnection) {
    eventually("consumer group", async || {
        let groups: redis::RedisResult<redis::Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg("gyre_commands")
            .query_async(redis)
            .await;
        matches!(groups, Ok(redis::Value::Array(g)) if !g.is_empty()).then_some(())
    })
    .await;
}

async fn pending(redis: &mut redis::aio::MultiplexedConnection) -> i64 {
    let reply: redis::Value = redis::cmd("XPENDING")
        .arg("gyre_commands")
        .arg("gyre")
        .query_async(redis)
        .await
        .expect("xpending");
    match reply {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(n)) => *n,
            _ => 0,
        },
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_entries_of_every_shape_reach_a_subscriber_and_bad_ones_are_skipped() {
    let port = free_port();
    let mut server = spawn_redis(port);
    let url = format!("redis://127.0.0.1:{port}");
    let mut redis = redis_conn(&url).await;
    let gyre = Gyre::start(&with_consumers(stream_consumer(&url, json!({})), json!({})));
    group_created(&mut redis).await;
    let mut sub = client(&gyre, "alice").await;
    subscribe(&mut sub, 2, json!({ "channel": "feed:items" })).await;
    // Method beside the payload.
    xadd(
        &mut redis,
        &[
            ("method", "publish".to_owned()),
            ("payload", publish("feed:items", 1).to_string()),
        ],
    )
    .await;
    assert_eq!(
        next_pub(&mut sub, "feed:items").await["data"],
        json!({ "n": 1 })
    );
    // Permanent errors, then an envelope.
    xadd(&mut redis, &[("payload", "not json".to_owned())]).await;
    xadd(
        &mut redis,
        &[
            ("method", "publish".to_owned()),
            ("payload", publish("nope:x", 0).to_string()),
        ],
    )
    .await;
    let envelope = json!({ "method": "publish", "payload": publish("feed:items", 2) });
    xadd(&mut redis, &[("payload", envelope.to_string())]).await;
    assert_eq!(
        next_pub(&mut sub, "feed:items").await["data"],
        json!({ "n": 2 })
    );
    eventually("every entry acknowledged", async || {
        (pending(&mut redis).await == 0).then_some(())
    })
    .await;
    let series = |name: &str| format!("centrifugo_consumers_{name}{{consumer_name=\"streams\"}}");
    eventually("skips counted", async || {
        (metric(&gyre, &series("messages_skipped_total")) == 2.0).then_some(())
    })
    .await;
    assert_eq!(metric(&gyre, &series("messages_processed_total")), 4.0);
    let _ = server.kill();
    let _ = server.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_publication_data_mode_publishes_the_payload_to_the_named_channels() {
    let port = free_port();
    let mut server = spawn_redis(port);
    let url = format!("redis://127.0.0.1:{port}");
    let mut redis = redis_conn(&url).await;
    let consumer = stream_consumer(
        &url,
        json!({ "publication_data_mode": { "enabled": true } }),
    );
    let gyre = Gyre::start(&with_consumers(consumer, json!({})));
    group_created(&mut redis).await;
    let mut sub = client(&gyre, "alice").await;
    subscribe(&mut sub, 2, json!({ "channel": "feed:items" })).await;
    xadd(
        &mut redis,
        &[
            ("payload", r#"{"n":1,"z":"a","a":"z"}"#.to_owned()),
            ("centrifugo-channels", "feed:items,feed:other".to_owned()),
            ("centrifugo-tag-kind", "note".to_owned()),
        ],
    )
    .await;
    let publication = next_pub(&mut sub, "feed:items").await;
    assert_eq!(publication["data"], json!({ "n": 1, "z": "a", "a": "z" }));
    assert_eq!(publication["tags"], json!({ "kind": "note" }));
    assert_eq!(history_ns(&gyre, "feed:other"), vec![1]);
    let _ = server.kill();
    let _ = server.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_entries_added_while_gyre_is_down_and_unacknowledged_ones_are_delivered_after_a_restart()
 {
    let port = free_port();
    let mut server = spawn_redis(port);
    let url = format!("redis://127.0.0.1:{port}");
    let mut redis = redis_conn(&url).await;
    let cfg = with_consumers(stream_consumer(&url, json!({})), json!({}));
    let gyre = Gyre::start(&cfg);
    group_created(&mut redis).await;
    let command = |n: i64| {
        vec![
            ("method", "publish".to_owned()),
            ("payload", publish("feed:items", n).to_string()),
        ]
    };
    xadd(&mut redis, &command(1)).await;
    eventually("first entry applied", async || {
        (history_ns(&gyre, "feed:items") == vec![1]).then_some(())
    })
    .await;
    eventually("first entry acknowledged", async || {
        (pending(&mut redis).await == 0).then_some(())
    })
    .await;
    drop(gyre);
    for n in 2..=6 {
        xadd(&mut redis, &command(n)).await;
    }
    // Another group member reads two entries and dies without acknowledging them: they
    // stay pending until the visibility timeout passes.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("gyre")
        .arg("crashed")
        .arg("COUNT")
        .arg(2)
        .arg("STREAMS")
        .arg("gyre_commands")
        .arg(">")
        .query_async(&mut redis)
        .await
        .expect("xreadgroup");
    assert_eq!(pending(&mut redis).await, 2);
    let gyre = Gyre::start(&cfg);
    let mut applied = eventually("entries applied after the restart", async || {
        let ns = history_ns(&gyre, "feed:items");
        (ns.len() >= 5).then_some(ns)
    })
    .await;
    applied.sort_unstable();
    assert_eq!(applied, vec![2, 3, 4, 5, 6]);
    eventually("nothing left pending", async || {
        (pending(&mut redis).await == 0).then_some(())
    })
    .await;
    assert_eq!(history_ns(&gyre, "feed:items").len(), 5);
    let _ = server.kill();
    let _ = server.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_outbox_apply_every_row_once_with_either_lock_mode() {
    let postgres = spawn_postgres(free_port());
    let db = pg(&postgres.dsn).await;
    db.batch_execute(OUTBOX_SQL).await.expect("schema");
    let node = |try_lock: bool| {
        let mut consumers = outbox_consumer(&postgres.dsn, 2);
        consumers[0]["postgresql"]["use_try_lock"] = json!(try_lock);
        consumers[0]["postgresql"]["partition_select_limit"] = json!(3);
        Gyre::start(&with_consumers(consumers, json!({})))
    };
    // Without a shared engine each node keeps what it applied in its own history.
    let (a, b) = (node(true), node(false));
    for n in 1..=60 {
        insert(&db, "publish", publish("feed:items", n), n % 2).await;
    }
    eventually("every row applied", async || {
        (outbox_rows(&db).await == 0).then_some(())
    })
    .await;
    let mut applied = history_ns(&a, "feed:items");
    applied.extend(history_ns(&b, "feed:items"));
    applied.sort_unstable();
    assert_eq!(
        applied,
        (1..=60).collect::<Vec<_>>(),
        "each row exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_over_tls_verified_with_the_configured_ca() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
        .expect("ca cert");
    let key = KeyPair::generate().expect("server key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("server params")
        .signed_by(&key, &ca)
        .expect("server cert");
    let postgres = spawn_postgres_tls(free_port(), &cert.pem(), &key.serialize_pem());
    // The test's own connection goes through the Unix socket; TCP requires TLS.
    let local = format!(
        "host={} port={} user=postgres dbname=postgres",
        postgres.socket_dir.display(),
        postgres.port
    );
    let db = pg(&local).await;
    db.batch_execute(OUTBOX_SQL).await.expect("schema");
    let dsn = format!("postgres://postgres@127.0.0.1:{}/postgres", postgres.port);
    let mut consumers = outbox_consumer(&dsn, 1);
    consumers[0]["postgresql"]["tls"] = json!({ "enabled": true, "server_ca_pem": ca.pem() });
    let gyre = Gyre::start(&with_consumers(consumers, json!({})));
    let mut sub = client(&gyre, "alice").await;
    subscribe(&mut sub, 2, json!({ "channel": "feed:items" })).await;
    insert(&db, "publish", publish("feed:items", 1), 0).await;
    assert_eq!(
        next_pub(&mut sub, "feed:items").await["data"],
        json!({ "n": 1 })
    );
    // Without TLS the server refuses the consumer's connections: nothing is applied.
    let plain = Gyre::start(&with_consumers(
        outbox_consumer(&postgres.dsn, 1),
        json!({}),
    ));
    let errors = "centrifugo_consumers_errors_total{consumer_name=\"outbox\"}";
    eventually("refused plain connections", async || {
        (metric(&plain, errors) >= 1.0).then_some(())
    })
    .await;
    drop(gyre);
    insert(&db, "publish", publish("feed:items", 2), 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(outbox_rows(&db).await, 1, "the plain node applied nothing");
    assert!(history_ns(&plain, "feed:items").is_empty());
}
