//! Shared poll across nodes on the Redis engine: a connection on node B tracks a key (its own
//! `redis-server` on a free port, two `gyre serve` nodes sharing it), and `shared_poll_publish`
//! on node A reaches it; a raw protocol client checks the track reply and the publication.

mod support;

use std::process::Child;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::json_conn::{client, next_pub, subscribe};
use support::{Gyre, config};

const POLL_SECRET: &str = "poll-secret";

/// A `redis-server` on a free loopback port, killed on drop.
struct Redis(Child, u16);

impl Redis {
    fn start() -> Self {
        let port = support::free_port();
        Redis(support::spawn_redis(port), port)
    }

    fn node(&self) -> Gyre {
        Gyre::start(&config(json!({
            "engine": {"type": "redis", "redis": {"address": [format!("redis://127.0.0.1:{}", self.1)]}},
            "shared_poll": {"hmac_secret_key": POLL_SECRET},
            "channel": {
                // The default proxy (no proxy_name). Nobody listens there: polls fail with a
                // warning; publications still flow.
                "proxy": {"shared_poll_refresh": {"endpoint": "http://127.0.0.1:9/refresh"}},
                "namespaces": [{
                    "name": "poll",
                    "subscription_type": "shared_poll",
                    "allow_subscribe_for_client": true,
                    "shared_poll": {"mode": "versioned", "publish_enabled": true},
                }],
            },
        })))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A track signature as the application computes it.
fn sign(channel: &str, keys: &[&str], user: &str) -> String {
    let now = support::now();
    let expiry = now + 3600;
    let keys_hash = hex(&Sha256::digest(keys.join("\0").as_bytes()));
    let mut mac = Hmac::<Sha256>::new_from_slice(POLL_SECRET.as_bytes()).expect("key");
    mac.update(format!("{now}\0{expiry}\0{user}\0{channel}\0{keys_hash}").as_bytes());
    format!("{now}:{expiry}:{}", hex(&mac.finalize().into_bytes()))
}

fn publish(node: &Gyre, version: u64, data: Value) -> Value {
    node.api(
        "shared_poll_publish",
        json!({"channel": "poll:x", "key": "k", "version": version, "data": data}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_poll_publish_reaches_trackers_on_other_nodes() {
    let redis = Redis::start();
    let (a, b) = (redis.node(), redis.node());
    let mut conn = client(&b, "u1").await;
    let sub = subscribe(&mut conn, 2, json!({"channel": "poll:x", "type": 4})).await;
    assert_eq!(sub["type"], 4, "{sub}");

    // A bad signature is refused; a good one tracks.
    let track = |id: u64, signature: String| {
        json!({"id": id, "sub_refresh": {"channel": "poll:x", "type": 1,
            "track": [{"signature": signature, "items": [{"key": "k"}]}]}})
    };
    conn.send(&track(3, sign("poll:x", &["k"], "u2"))).await;
    assert_eq!(conn.reply(3).await["error"]["code"], 103);
    conn.send(&track(4, sign("poll:x", &["k"], "u1"))).await;
    let reply = conn.reply(4).await;
    assert_eq!(reply["sub_refresh"]["expires"], true, "{reply}");

    // The publish on A goes through Redis to B's tracker (A has none): retried until B's
    // node has joined the control channel, bounded.
    let mut version = 0;
    let publication = loop {
        version += 1;
        assert!(version <= 50, "no publication reached node B");
        let result = tokio::task::block_in_place(|| publish(&a, version, json!({"v": version})));
        assert_eq!(result, json!({}), "publish result");
        let next = tokio::time::timeout(Duration::from_millis(200), next_pub(&mut conn, "poll:x"));
        if let Ok(publication) = next.await {
            break publication;
        }
    };
    assert_eq!(publication["key"], "k");
    assert_eq!(publication["version"], version);
    assert_eq!(publication["data"], json!({"v": version}));

    // An older version is not delivered; a newer one is.
    let older = tokio::task::block_in_place(|| publish(&a, version, json!({"old": true})));
    assert_eq!(older, json!({}));
    tokio::task::block_in_place(|| publish(&a, version + 1, json!({"v": "new"})));
    let newer = tokio::time::timeout(Duration::from_secs(5), next_pub(&mut conn, "poll:x"))
        .await
        .expect("newer version");
    assert_eq!(newer["version"], version + 1);
    assert_eq!(newer["data"], json!({"v": "new"}));

    // Bad requests.
    let (_, bad) = a.api_raw(
        "shared_poll_publish",
        &json!({"channel": "poll:x", "key": "k"}),
        &[("X-API-Key", support::API_KEY)],
    );
    assert_eq!(bad["error"]["code"], 107, "{bad}");
    let (_, stream) = a.api_raw(
        "shared_poll_publish",
        &json!({"channel": "other", "key": "k", "version": 1}),
        &[("X-API-Key", support::API_KEY)],
    );
    assert_eq!(stream["error"]["code"], 107, "{stream}");
}
