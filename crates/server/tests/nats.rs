//! The NATS broker (`broker.type: nats`) with a real `nats-server`: nodes deliver each other's
//! publications, joins and leaves, and API commands; history answers `not available` as
//! upstream's NATS broker does; raw mode talks to plain NATS clients; a restarted server is
//! reconnected to.

mod support;

use std::process::Child;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use support::json_conn::{Conn, client, next_pub, subscribe, wait_for};
use support::services::{Nats, spawn_nats, spawn_nats_with};
use support::{Gyre, config};

/// A `nats-server` and a `redis-server` (the presence manager) for a test's nodes.
struct Cluster {
    /// The server (`None` while it is down).
    nats: Option<Nats>,
    nats_url: String,
    nats_port: u16,
    redis: Child,
    redis_port: u16,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.redis.kill();
        let _ = self.redis.wait();
    }
}

impl Cluster {
    fn start() -> Self {
        let nats_port = support::free_port();
        let redis_port = support::free_port();
        let nats = spawn_nats(nats_port);
        Cluster {
            nats_url: nats.url.clone(),
            nats: Some(nats),
            nats_port,
            redis: support::spawn_redis(redis_port),
            redis_port,
        }
    }

    /// A node on this NATS server, with `nats` merged into `broker.nats` and `extra` over the
    /// whole config.
    fn node_with(&self, nats: Value, extra: Value) -> Gyre {
        let mut broker = json!({ "url": self.nats_url, "prefix": "gyre-test" });
        if let (Value::Object(b), Value::Object(n)) = (&mut broker, nats) {
            b.extend(n);
        }
        let mut c = config(json!({
            "engine": { "type": "memory" },
            "broker": { "enabled": true, "type": "nats", "nats": broker },
            "presence_manager": {
                "enabled": true,
                "type": "redis",
                "redis": { "address": [format!("redis://127.0.0.1:{}", self.redis_port)] },
            },
            "channel": {
                "without_namespace": {
                    "presence": true,
                    "join_leave": true,
                    "allow_subscribe_for_client": true,
                    "allow_publish_for_subscriber": true,
                    "allow_presence_for_subscriber": true,
                },
                "namespaces": [{
                    "name": "hist",
                    "history_size": 10,
                    "history_ttl": "300s",
                    "allow_recovery": true,
                    "allow_positioning": true,
                    "allow_history_for_subscriber": true,
                    "allow_subscribe_for_client": true,
                    "allow_publish_for_subscriber": true,
                }, {
                    "name": "chat",
                    "allow_subscribe_for_client": true,
                }],
            },
        }));
        if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
            c.extend(e);
        }
        Gyre::start(&c)
    }

    fn node(&self) -> Gyre {
        self.node_with(json!({}), json!({}))
    }
}

/// Waits until `a`'s `info` lists `n` nodes (heartbeats travel over NATS), at most 15 s.
async fn wait_nodes(a: &Gyre, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let info = a.api("info", json!({}));
        if info["nodes"].as_array().map(Vec::len) == Some(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "info never listed {n} nodes: {info}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The real npm `centrifuge` client across two nodes (`conformance/js/cross_node_pubsub.mjs`):
/// publications both ways, joins and leaves, presence of both nodes; JSON and protobuf.
#[test]
fn real_client_across_nodes() {
    let cluster = Cluster::start();
    let a = cluster.node();
    let b = cluster.node();
    for protocol in ["json", "protobuf"] {
        support::run_cross_node_script(&a, &b, protocol, "cross_node_pubsub.mjs", &[]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_commands_and_info_cross_nodes() {
    let cluster = Cluster::start();
    let a = cluster.node();
    let b = cluster.node();
    wait_nodes(&a, 2).await;
    wait_nodes(&b, 2).await;
    let mut on_b = client(&b, "carol").await;

    // subscribe / unsubscribe issued on A reach the client on B.
    a.api("subscribe", json!({ "user": "carol", "channel": "room" }));
    wait_for(&mut on_b, |v| {
        (v["push"]["channel"] == "room" && v["push"]["subscribe"].is_object()).then_some(())
    })
    .await;
    a.api("publish", json!({ "channel": "room", "data": { "n": 1 } }));
    assert_eq!(next_pub(&mut on_b, "room").await["data"]["n"], 1);
    a.api("unsubscribe", json!({ "user": "carol", "channel": "room" }));
    wait_for(&mut on_b, |v| {
        (v["push"]["channel"] == "room" && v["push"]["unsubscribe"].is_object()).then_some(())
    })
    .await;

    // Presence and channels of the other node, asked on A.
    let mut on_b2 = client(&b, "dave").await;
    subscribe(&mut on_b2, 2, json!({ "channel": "lobby" })).await;
    let presence = a.api("presence", json!({ "channel": "lobby" }));
    assert_eq!(
        presence["presence"].as_object().map(|p| p.len()),
        Some(1),
        "{presence}"
    );
    let channels = a.api("channels", json!({}));
    assert!(channels["channels"]["lobby"].is_object(), "{channels}");

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

/// A subscribe reply's error code, if it failed.
async fn subscribe_error(conn: &mut Conn, id: u64, sub: Value) -> Option<u64> {
    conn.send(&json!({ "id": id, "subscribe": sub })).await;
    let reply = conn.reply(id).await;
    reply["error"]["code"].as_u64()
}

/// As upstream's NATS broker: publishing into a channel with history succeeds without a
/// position; history, history removal, positioning and recovery answer 108 (not available).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_not_available() {
    let cluster = Cluster::start();
    let a = cluster.node();
    let key = [("X-API-Key", support::API_KEY)];

    let mut plain = client(&a, "erin").await;
    let sub = subscribe(&mut plain, 2, json!({ "channel": "hist:news" })).await;
    assert!(
        sub.get("offset").is_none() && sub.get("epoch").is_none(),
        "{sub}"
    );
    let r = a.api(
        "publish",
        json!({ "channel": "hist:news", "data": { "n": 1 } }),
    );
    assert_eq!(r, json!({}), "no stream position");
    let p = next_pub(&mut plain, "hist:news").await;
    assert_eq!(p["data"]["n"], 1);
    assert!(p.get("offset").is_none(), "{p}");

    for method in ["history", "history_remove"] {
        let (status, reply) = a.api_raw(method, &json!({ "channel": "hist:news" }), &key);
        assert_eq!(status, 200);
        assert_eq!(reply["error"]["code"], 108, "{method}: {reply}");
    }
    let mut c = client(&a, "frank").await;
    let recover = json!({
        "channel": "hist:news", "recoverable": true, "recover": true, "offset": 1, "epoch": "x",
    });
    assert_eq!(subscribe_error(&mut c, 2, recover).await, Some(108));
    let positioned = json!({ "channel": "hist:news", "positioned": true });
    assert_eq!(subscribe_error(&mut c, 3, positioned).await, Some(108));
    // A subscriber asking for history.
    plain
        .send(&json!({ "id": 3, "history": { "channel": "hist:news", "limit": 10 } }))
        .await;
    assert_eq!(plain.reply(3).await["error"]["code"], 108);

    // A wildcard channel is refused (allow_wildcards is off), publishing into one too.
    assert_eq!(
        subscribe_error(&mut c, 5, json!({ "channel": "news.*" })).await,
        Some(107)
    );
    let (_, reply) = a.api_raw("publish", &json!({ "channel": "news.*", "data": {} }), &key);
    assert_eq!(reply["error"]["code"], 107, "{reply}");
}

/// Raw mode: a plain NATS client publishing bare bytes on `raw.chat.index` reaches the
/// subscribers of `chat:index` (`:` replaced by `.`), and Gyre's publications arrive on that
/// subject as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_mode_talks_to_plain_nats_clients() {
    let cluster = Cluster::start();
    let raw = json!({ "raw_mode": {
        "enabled": true, "prefix": "raw.", "channel_replacements": { ":": "." },
    } });
    let a = cluster.node_with(raw, json!({}));
    let nats = async_nats::connect(cluster.nats_url.as_str())
        .await
        .expect("plain nats client");
    let mut outside = nats.subscribe("raw.chat.index").await.expect("subscribe");
    nats.flush().await.expect("flush");

    let mut on_a = client(&a, "gina").await;
    subscribe(&mut on_a, 2, json!({ "channel": "chat:index" })).await;
    nats.publish("raw.chat.index", r#"{"from":"outside"}"#.into())
        .await
        .expect("publish");
    let p = next_pub(&mut on_a, "chat:index").await;
    assert_eq!(p["data"], json!({ "from": "outside" }), "{p}");
    assert_eq!(
        p["channel"], "chat.index",
        "the subject's channel, as upstream"
    );
    // The plain subscriber saw it too.
    let seen = tokio::time::timeout(Duration::from_secs(5), outside.next())
        .await
        .expect("outside message in time")
        .expect("message");
    assert_eq!(&seen.payload[..], br#"{"from":"outside"}"#);

    a.api(
        "publish",
        json!({ "channel": "chat:index", "data": { "from": "gyre" } }),
    );
    let seen = tokio::time::timeout(Duration::from_secs(5), outside.next())
        .await
        .expect("gyre message in time")
        .expect("message");
    assert_eq!(
        serde_json::from_slice::<Value>(&seen.payload).expect("json"),
        json!({ "from": "gyre" })
    );
    assert_eq!(
        next_pub(&mut on_a, "chat:index").await["data"]["from"],
        "gyre"
    );
}

/// `allow_wildcards`: a subscriber of `news.*` gets the publications of every matching
/// channel, each naming its own channel; publishing into a pattern stays refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_subscriptions_when_allowed() {
    let cluster = Cluster::start();
    let a = cluster.node_with(json!({ "allow_wildcards": true }), json!({}));
    let b = cluster.node_with(json!({ "allow_wildcards": true }), json!({}));
    let mut on_b = client(&b, "ivy").await;
    subscribe(&mut on_b, 2, json!({ "channel": "news.*" })).await;
    for (n, channel) in ["news.sport", "news.tech"].into_iter().enumerate() {
        a.api("publish", json!({ "channel": channel, "data": { "n": n } }));
        let p = next_pub(&mut on_b, "news.*").await;
        assert_eq!(
            (p["data"]["n"].as_u64(), p["channel"].as_str()),
            (Some(n as u64), Some(channel)),
            "{p}"
        );
    }
    let key = [("X-API-Key", support::API_KEY)];
    let (_, reply) = a.api_raw("publish", &json!({ "channel": "news.*", "data": {} }), &key);
    assert_eq!(reply["error"]["code"], 107, "{reply}");
}

/// A restarted nats-server: both nodes reconnect, resubscribe and deliver again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_resumes_after_nats_restarts() {
    let mut cluster = Cluster::start();
    let a = cluster.node();
    let b = cluster.node();
    let mut on_b = client(&b, "hank").await;
    subscribe(&mut on_b, 2, json!({ "channel": "ticks" })).await;
    a.api("publish", json!({ "channel": "ticks", "data": { "n": 0 } }));
    assert_eq!(next_pub(&mut on_b, "ticks").await["data"]["n"], 0);

    // The server goes away: publishing fails (nothing is queued for later) once A noticed.
    cluster.nats = None;
    let key = [("X-API-Key", support::API_KEY)];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, reply) = a.api_raw("publish", &json!({ "channel": "ticks", "data": {} }), &key);
        if reply["error"]["code"] == 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "publishing never failed: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.nats = Some(spawn_nats(cluster.nats_port));

    // Publish until one arrives (publishes fail until A is back, some may be lost while B
    // resubscribes: delivery is at most once).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 1;
    let got = loop {
        assert!(Instant::now() < deadline, "delivery never resumed");
        let _ = a.api_raw(
            "publish",
            &json!({ "channel": "ticks", "data": { "n": n } }),
            &key,
        );
        n += 1;
        let next = tokio::time::timeout(Duration::from_millis(300), next_pub(&mut on_b, "ticks"));
        if let Ok(p) = next.await {
            break p;
        }
    };
    assert!(got["data"]["n"].as_u64().is_some_and(|v| v >= 1), "{got}");
    // And the cluster is whole again: control crosses too.
    a.api("disconnect", json!({ "user": "hank" }));
    loop {
        if on_b.next().await.is_err() {
            break;
        }
    }
}

/// TLS with client certificates: a nats-server that requires them (`--tlsverify`), nodes
/// with `broker.nats.tls` (the CA, their certificate and key as PEM text and as files).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
        .expect("ca cert");
    let server_key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("server params")
        .signed_by(&server_key, &ca)
        .expect("server cert");
    let client_key = KeyPair::generate().expect("client key");
    let client_cert = CertificateParams::new(vec!["gyre".to_owned()])
        .expect("client params")
        .signed_by(&client_key, &ca)
        .expect("client cert");
    let dir = std::env::temp_dir().join(format!("gyre-nats-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tls dir");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write pem");
        path.to_string_lossy().into_owned()
    };
    let ca_file = write("ca.pem", &ca.pem());
    let args = [
        "--tls".to_owned(),
        "--tlscert".to_owned(),
        write("server.pem", &server.pem()),
        "--tlskey".to_owned(),
        write("server.key", &server_key.serialize_pem()),
        "--tlsverify".to_owned(),
        "--tlscacert".to_owned(),
        ca_file.clone(),
    ];
    let port = support::free_port();
    let nats = spawn_nats_with(port, &args);
    let redis_port = support::free_port();
    let cluster = Cluster {
        nats_url: format!("tls://127.0.0.1:{port}"),
        nats: Some(nats),
        nats_port: port,
        redis: support::spawn_redis(redis_port),
        redis_port,
    };
    let a = cluster.node_with(
        json!({ "tls": {
            "enabled": true,
            "server_ca_pem": ca.pem(),
            "cert_pem": client_cert.pem(),
            "key_pem": client_key.serialize_pem(),
        } }),
        json!({}),
    );
    let b = cluster.node_with(
        json!({ "tls": {
            "enabled": true,
            "server_ca_pem_file": ca_file,
            "cert_pem_file": write("client.pem", &client_cert.pem()),
            "key_pem_file": write("client.key", &client_key.serialize_pem()),
        } }),
        json!({}),
    );
    let mut on_b = client(&b, "jill").await;
    subscribe(&mut on_b, 2, json!({ "channel": "secure" })).await;
    let key = [("X-API-Key", support::API_KEY)];
    // A may still be connecting: its first publishes can fail.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, reply) = a.api_raw(
            "publish",
            &json!({ "channel": "secure", "data": { "n": 1 } }),
            &key,
        );
        if reply.get("error").is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "publishing over TLS never worked: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(next_pub(&mut on_b, "secure").await["data"]["n"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node starts while its NATS server is not there yet and connects once it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_starts_before_nats_and_connects_later() {
    let mut cluster = Cluster::start();
    cluster.nats = None;
    let a = cluster.node();
    let key = [("X-API-Key", support::API_KEY)];
    let (_, reply) = a.api_raw("publish", &json!({ "channel": "early", "data": {} }), &key);
    assert_eq!(
        reply["error"]["code"], 100,
        "nothing is queued while away: {reply}"
    );
    cluster.nats = Some(spawn_nats(cluster.nats_port));
    let mut on_a = client(&a, "kim").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        on_a.send(&json!({ "id": 2, "subscribe": { "channel": "early" } }))
            .await;
        if on_a.reply(2).await["subscribe"].is_object() {
            break;
        }
        assert!(Instant::now() < deadline, "never subscribed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.api("publish", json!({ "channel": "early", "data": { "n": 1 } }));
    assert_eq!(next_pub(&mut on_a, "early").await["data"]["n"], 1);
}
