//! Gyre nodes on a throwaway PostgreSQL (`services::spawn_postgres`) for the PostgreSQL
//! broker suites (`tests/postgres.rs`, `tests/postgres_upkeep.rs`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::services::{Postgres, spawn_postgres};
use super::{Gyre, config};

/// A gyre node on PostgreSQL alone: broker and controller (LISTEN/NOTIFY on), memory
/// presence. Channels without a namespace keep history and recovery.
pub fn node(pg: &Postgres) -> Gyre {
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

pub fn pg() -> Postgres {
    spawn_postgres(super::free_port())
}

pub fn offsets(publications: &Value) -> Vec<u64> {
    publications
        .as_array()
        .expect("publications")
        .iter()
        .map(|p| p["offset"].as_u64().expect("offset"))
        .collect()
}

/// Publishes through `node`'s API, retrying while the node cannot reach PostgreSQL (at most
/// 20 s); the publish result.
pub async fn publish_when_up(node: &Gyre, channel: &str, data: Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, reply) = node.api_raw(
            "publish",
            &json!({ "channel": channel, "data": data }),
            &[("X-API-Key", super::API_KEY)],
        );
        if status == 200 && reply.get("error").is_none() {
            return reply.get("result").cloned().unwrap_or(reply);
        }
        assert!(Instant::now() < deadline, "publish kept failing: {reply}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Connects as the application does, once the nodes created the schema (at most 20 s).
pub async fn application(pg: &Postgres) -> tokio_postgres::Client {
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

/// A connection as the application's, before any node runs.
pub async fn application_before_start(pg: &Postgres) -> tokio_postgres::Client {
    let (app, connection) = tokio_postgres::connect(&pg.dsn, tokio_postgres::NoTls)
        .await
        .expect("connect to postgres");
    tokio::spawn(connection);
    app
}

/// A child process killed when the test ends (or fails).
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
