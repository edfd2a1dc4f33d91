//! The standalone `broker` and `presence_manager` sections (Centrifugo v6): two nodes on the
//! memory engine whose broker is one Redis and whose presence manager is another deliver each
//! other's publications and see each other's clients, and the two Redis instances hold only
//! their own part.

mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::json_conn::{client, next_pub, subscribe};
use support::{Gyre, config};

struct Redis {
    child: std::process::Child,
    port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis() -> Redis {
    let port = support::free_port();
    Redis {
        child: support::spawn_redis(port),
        port,
    }
}

fn node(broker: &Redis, presence: &Redis) -> Gyre {
    Gyre::start(&config(json!({
        "broker": {
            "enabled": true,
            "type": "redis",
            "redis": { "address": [format!("redis://127.0.0.1:{}", broker.port)] },
        },
        "presence_manager": {
            "enabled": true,
            "type": "redis",
            "redis": { "address": [format!("redis://127.0.0.1:{}", presence.port)] },
        },
        "channel": { "without_namespace": {
            "presence": true,
            "history_size": 10,
            "history_ttl": "300s",
            "allow_subscribe_for_client": true,
        } },
    })))
}

/// Keys in a Redis instance matching `pattern`.
fn keys(redis: &Redis, pattern: &str) -> Vec<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "--raw", "KEYS", pattern])
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_and_presence_manager_run_on_their_own_redis() {
    let (broker, presence) = (redis(), redis());
    let a = node(&broker, &presence);
    let b = node(&broker, &presence);
    let mut on_b = client(&b, "bob").await;
    subscribe(&mut on_b, 2, json!({ "channel": "room" })).await;

    let r = a.api("publish", json!({ "channel": "room", "data": { "n": 1 } }));
    assert_eq!(r["offset"], 1, "{r}");
    let p = next_pub(&mut on_b, "room").await;
    assert_eq!(p["data"]["n"], 1);

    // Presence asked on A lists the client connected to B.
    let present = a.api("presence", json!({ "channel": "room" }));
    let users: Vec<&Value> = present["presence"]
        .as_object()
        .map(|m| m.values().map(|i| &i["user"]).collect())
        .unwrap_or_default();
    assert_eq!(users, vec![&json!("bob")], "{present}");

    // Streams live in the broker's Redis, presence in the presence manager's.
    assert!(!keys(&broker, "*stream*").is_empty());
    assert!(keys(&broker, "*presence*").is_empty());
    assert!(!keys(&presence, "*presence*").is_empty());
    assert!(keys(&presence, "*stream*").is_empty());
}
