//! Map subscriptions on the Redis map broker (`map_broker.type: redis`): each test starts its
//! own `redis-server` on a free loopback port and two `gyre serve` nodes sharing it. The real
//! npm `centrifuge` client checks state pages, live changes, removals, recovery on the other
//! node and key expiry across the nodes (`conformance/js/map_cross_node.mjs`); the server API
//! checks that both nodes read, count and clear the same state, also on a Redis Cluster; a
//! subscriber survives a Redis restart (`conformance/js/map_redis_restart.mjs`).

mod support;

use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Gyre, config};

/// A `redis-server` on a free loopback port, killed on drop.
struct Redis(Child, u16);

impl Redis {
    fn start() -> Self {
        let port = support::free_port();
        Redis(support::spawn_redis(port), port)
    }

    fn section(&self, prefix: &str) -> Value {
        json!({
            "address": [format!("redis://127.0.0.1:{}", self.1)],
            "prefix": prefix,
        })
    }

    /// A node on the Redis engine with the Redis map broker on the same section.
    fn node(&self, prefix: &str) -> Gyre {
        let section = self.section(prefix);
        Gyre::start(&config(json!({
            "engine": {"type": "redis", "redis": section.clone()},
            "map_broker": {"type": "redis", "redis": section},
            "channel": {"namespaces": namespaces()},
        })))
    }

    /// A node on the memory engine keeping only its map state in Redis.
    fn map_only_node(&self, prefix: &str) -> Gyre {
        Gyre::start(&config(json!({
            "map_broker": {"type": "redis", "redis": self.section(prefix)},
            "channel": {"namespaces": namespaces()},
        })))
    }
}

impl Redis {
    /// Kills Redis (losing everything: nothing is persisted) and starts it on the same port.
    fn restart(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        self.0 = support::spawn_redis(self.1);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn namespaces() -> Value {
    json!([
        {
            "name": "live",
            "subscription_type": "map",
            "allow_subscribe_for_client": true,
            "map": {"mode": "persistent", "min_page_size": 1, "allow_publish_for_client": true},
        },
        {
            "name": "eph",
            "subscription_type": "map",
            "allow_subscribe_for_client": true,
            "map": {"mode": "ephemeral", "key_ttl": "1s"},
        },
    ])
}

/// Every key of a channel's state read through `node`'s API, page by page (2 a page).
fn state_keys(node: &Gyre, channel: &str) -> (Vec<String>, Value) {
    let mut keys = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = node.api(
            "map_read_state",
            json!({"channel": channel, "limit": 2, "cursor": cursor}),
        );
        for entry in page["entries"].as_array().into_iter().flatten() {
            keys.push(entry["key"].as_str().unwrap_or_default().to_owned());
        }
        cursor = page["cursor"].as_str().unwrap_or_default().to_owned();
        if cursor.is_empty() {
            return (keys, page);
        }
    }
}

fn num_keys(node: &Gyre, channel: &str) -> u64 {
    node.api("map_stats", json!({"channel": channel}))["num_keys"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn real_client_across_nodes() {
    let redis = Redis::start();
    for protocol in ["json", "protobuf"] {
        let prefix = format!("cross-{protocol}");
        let (a, b) = (redis.node(&prefix), redis.node(&prefix));
        support::run_cross_node_script(&a, &b, protocol, "map_cross_node.mjs", &[]);
    }
}

#[test]
fn map_subscriber_survives_a_redis_restart() {
    let mut redis = Redis::start();
    let mut node = redis.node("restart");
    let env = [("GYRE_TOKEN", support::js::user_token("u1", json!({})))];
    support::js::run_script(
        &mut node,
        "map_redis_restart.mjs",
        "json",
        &env,
        |action, _| match action {
            "restart-redis" => redis.restart(),
            other => panic!("unexpected action {other}"),
        },
    );
}

#[test]
fn state_stats_and_clear_agree_across_nodes() {
    let redis = Redis::start();
    let (a, b) = (redis.map_only_node("api"), redis.map_only_node("api"));
    let channel = "live:shared";
    let mut epoch = String::new();
    for (i, key) in ["c", "a", "e", "b", "d"].iter().enumerate() {
        let r = a.api(
            "map_publish",
            json!({"channel": channel, "key": key, "data": {"i": i}}),
        );
        assert_eq!(r["offset"], json!(i + 1), "{r}");
        epoch = r["epoch"].as_str().unwrap_or_default().to_owned();
    }
    b.api("map_remove", json!({"channel": channel, "key": "e"}));
    for node in [&a, &b] {
        let (keys, last) = state_keys(node, channel);
        assert_eq!(keys, ["a", "b", "c", "d"], "state pages in key order");
        assert_eq!(
            (last["offset"].as_u64(), last["epoch"].as_str()),
            (Some(6), Some(epoch.as_str()))
        );
        assert_eq!(num_keys(node, channel), 4);
        let stream = node.api(
            "map_read_stream",
            json!({"channel": channel, "since_offset": 4, "since_epoch": epoch, "limit": 10}),
        );
        let changes: Vec<(Value, Value)> = stream["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| (e["key"].clone(), e["offset"].clone()))
            .collect();
        // c1 a2 e3 b4 d5, then the removal of e at 6.
        assert_eq!(
            changes,
            [(json!("d"), json!(5)), (json!("e"), json!(6))],
            "{stream}"
        );
    }
    // Removing a missing key changes nothing.
    let same = a.api("map_remove", json!({"channel": channel, "key": "nope"}));
    assert_eq!(
        same.get("offset").and_then(Value::as_u64).unwrap_or(6),
        6,
        "{same}"
    );

    b.api("map_clear", json!({"channel": channel}));
    for node in [&a, &b] {
        assert_eq!(state_keys(node, channel).0, Vec::<String>::new());
        assert_eq!(num_keys(node, channel), 0);
    }
    let fresh = a.api(
        "map_publish",
        json!({"channel": channel, "key": "x", "data": {}}),
    );
    assert_eq!(fresh["offset"], json!(1), "a cleared map starts over");
    assert_ne!(fresh["epoch"], json!(epoch), "in a new epoch");
}

#[test]
fn expired_keys_leave_every_node() {
    let redis = Redis::start();
    let (a, b) = (redis.map_only_node("ttl"), redis.map_only_node("ttl"));
    let channel = "eph:room";
    a.api(
        "map_publish",
        json!({"channel": channel, "key": "short", "data": {}}),
    );
    assert_eq!(state_keys(&b, channel).0, ["short"], "visible on B");
    assert_eq!(num_keys(&b, channel), 1);
    // key_ttl is 1 s; the keys go within the deadline (the cleanup runs every second).
    let deadline = Instant::now() + Duration::from_secs(10);
    while num_keys(&a, channel) + num_keys(&b, channel) > 0 {
        assert!(Instant::now() < deadline, "the key did not expire");
        std::thread::sleep(Duration::from_millis(100));
    }
    for node in [&a, &b] {
        assert!(state_keys(node, channel).0.is_empty());
    }
}

/// Three cluster-enabled `redis-server`s joined into one Redis Cluster, killed on drop.
struct Cluster {
    servers: Vec<Child>,
    ports: Vec<u16>,
    dir: std::path::PathBuf,
}

impl Cluster {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "gyre-map-cluster-{}-{}",
            std::process::id(),
            support::now()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut servers = Vec::new();
        let mut ports = Vec::new();
        for i in 0..3 {
            let port = support::free_port();
            let bus = support::free_port();
            let child = std::process::Command::new("redis-server")
                .current_dir(&dir)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                .args(["--cluster-port", &bus.to_string()])
                .args(["--cluster-config-file", &format!("nodes-{i}.conf")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            servers.push(child);
            ports.push(port);
        }
        for port in &ports {
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "redis-server on {port} did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let cluster = Cluster {
            servers,
            ports,
            dir,
        };
        let mut args = vec!["--cluster".to_owned(), "create".to_owned()];
        args.extend(cluster.seeds());
        args.extend(["--cluster-replicas", "0", "--cluster-yes"].map(String::from));
        let out = std::process::Command::new("redis-cli")
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        for port in &cluster.ports {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let info = std::process::Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "cluster", "info"])
                    .output()
                    .expect("redis-cli");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster never became ok");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        cluster
    }

    fn seeds(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }

    fn node(&self) -> Gyre {
        let section = json!({ "cluster_address": self.seeds() });
        Gyre::start(&config(json!({
            "engine": {"type": "redis", "redis": section.clone()},
            "map_broker": {"type": "redis", "redis": section},
            "channel": {"namespaces": namespaces()},
        })))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn maps_on_a_redis_cluster() {
    let cluster = Cluster::start();
    let (a, b) = (cluster.node(), cluster.node());
    // Channels spread over the cluster's slots: every script touches one slot only.
    let channels: Vec<String> = (0..6).map(|i| format!("live:slot{i}")).collect();
    for channel in &channels {
        for key in ["x", "y", "z"] {
            a.api(
                "map_publish",
                json!({"channel": channel, "key": key, "data": {}}),
            );
        }
        b.api("map_remove", json!({"channel": channel, "key": "y"}));
    }
    for channel in &channels {
        for node in [&a, &b] {
            let (keys, last) = state_keys(node, channel);
            assert_eq!(keys, ["x", "z"], "{channel}");
            assert_eq!(last["offset"], json!(4), "{channel}");
            assert_eq!(num_keys(node, channel), 2);
        }
    }
    b.api("map_clear", json!({"channel": channels[0]}));
    assert_eq!(num_keys(&a, &channels[0]), 0);
    a.api(
        "map_publish",
        json!({"channel": "eph:c", "key": "short", "data": {}}),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while num_keys(&b, "eph:c") > 0 {
        assert!(Instant::now() < deadline, "the key did not expire");
        std::thread::sleep(Duration::from_millis(100));
    }
    support::run_cross_node_script(&a, &b, "json", "map_cross_node.mjs", &[]);
}
