//! The Redis engine across nodes: each test starts its own `redis-server` on a free loopback
//! port (installed by `scripts/install-test-deps.sh` when missing) and two `gyre serve` nodes
//! sharing it, then checks delivery, history and recovery, presence, control and `info`
//! across the nodes with raw protocol clients.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::json_conn::{Conn, client, next_pub, subscribe, wait_for};
use support::{Gyre, config, token};

/// A `redis-server` on a free loopback port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Self {
        Self::start_on(support::free_port())
    }

    fn start_on(port: u16) -> Self {
        Self {
            child: Self::spawn(port),
            port,
        }
    }

    /// Kills Redis (losing everything, as nothing is persisted) and starts it again on the
    /// same port after `down`.
    fn restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        self.child = Self::spawn(self.port);
    }

    fn spawn(port: u16) -> Child {
        support::spawn_redis(port)
    }

    /// A gyre node on this Redis.
    fn node(&self) -> Gyre {
        node_on(&[self], json!({}))
    }
}

/// A gyre node on these Redis instances (channels sharded over them), `redis` config merged.
fn node_on(instances: &[&Redis], redis: Value) -> Gyre {
    node_with(
        &instances
            .iter()
            .map(|r| format!("redis://127.0.0.1:{}", r.port))
            .collect::<Vec<_>>(),
        redis,
    )
}

/// A gyre node on these Redis addresses, `redis` config merged. Channels without a namespace
/// keep history and recovery; the `plain` namespace has neither.
fn node_with(address: &[String], redis: Value) -> Gyre {
    let mut engine = json!({ "type": "redis", "redis": { "address": address } });
    if let (Some(Value::Object(into)), Value::Object(extra)) = (engine.get_mut("redis"), redis) {
        into.extend(extra);
    }
    Gyre::start(&config(json!({
        "engine": engine,
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
            "namespaces": [{
                "name": "plain",
                "allow_subscribe_for_client": true,
                "allow_publish_for_client": true,
            }],
        },
    })))
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publications_cross_nodes_in_order() {
    let redis = Redis::start();
    let a = redis.node();
    let b = redis.node();
    let mut on_b = client(&b, "bob").await;
    subscribe(&mut on_b, 2, json!({ "channel": "room" })).await;

    // API publish on A reaches the client on B, with offsets from Redis.
    let r = a.api("publish", json!({ "channel": "room", "data": { "n": 1 } }));
    assert_eq!(r["offset"], 1, "{r}");
    let p = next_pub(&mut on_b, "room").await;
    assert_eq!(
        (p["data"]["n"].clone(), p["offset"].clone()),
        (json!(1), json!(1))
    );

    // A client publish on A reaches B too.
    let mut on_a = client(&a, "alice").await;
    on_a.send(&json!({"id": 2, "publish": {"channel": "room", "data": {"n": 2}}}))
        .await;
    assert!(on_a.reply(2).await["publish"].is_object());
    let p = next_pub(&mut on_b, "room").await;
    assert_eq!(p["data"]["n"], 2);
    assert_eq!(p["offset"], 2);
    assert_eq!(p["info"]["user"], "alice");

    // Many publications from both nodes arrive in offset order.
    for n in 3..=20 {
        let node = if n % 2 == 0 { &a } else { &b };
        node.api("publish", json!({ "channel": "room", "data": { "n": n } }));
    }
    for offset in 3..=20 {
        assert_eq!(next_pub(&mut on_b, "room").await["offset"], offset);
    }

    // History is shared: B's API sees what A published.
    let h = b.api("history", json!({ "channel": "room", "limit": -1 }));
    let offsets: Vec<u64> = h["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .map(|p| p["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(offsets, (11..=20).collect::<Vec<_>>(), "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_moving_to_another_node_recovers() {
    let redis = Redis::start();
    let a = redis.node();
    let b = redis.node();
    let mut on_a = client(&a, "alice").await;
    let sub = subscribe(
        &mut on_a,
        2,
        json!({ "channel": "news", "recoverable": true }),
    )
    .await;
    let epoch = sub["epoch"].as_str().expect("epoch").to_owned();
    a.api("publish", json!({ "channel": "news", "data": { "n": 1 } }));
    assert_eq!(next_pub(&mut on_a, "news").await["offset"], 1);
    drop(on_a);

    // Missed while moving.
    a.api("publish", json!({ "channel": "news", "data": { "n": 2 } }));
    b.api("publish", json!({ "channel": "news", "data": { "n": 3 } }));

    let mut on_b = client(&b, "alice").await;
    let sub = subscribe(
        &mut on_b,
        2,
        json!({ "channel": "news", "recoverable": true, "recover": true, "offset": 1, "epoch": epoch }),
    )
    .await;
    assert_eq!(sub["recovered"], true, "{sub}");
    let offsets: Vec<u64> = sub["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .map(|p| p["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(offsets, vec![2, 3], "{sub}");
    // Live again after recovery, without duplicates.
    a.api("publish", json!({ "channel": "news", "data": { "n": 4 } }));
    assert_eq!(next_pub(&mut on_b, "news").await["offset"], 4);

    // A wrong epoch is not recovered.
    let mut other = client(&b, "carol").await;
    let sub = subscribe(
        &mut other,
        2,
        json!({ "channel": "news", "recoverable": true, "recover": true, "offset": 1, "epoch": "nope" }),
    )
    .await;
    assert_ne!(sub["recovered"], true, "{sub}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_join_leave_span_nodes() {
    let redis = Redis::start();
    let a = redis.node();
    let b = redis.node();
    let mut on_a = client(&a, "alice").await;
    subscribe(
        &mut on_a,
        2,
        json!({ "channel": "room", "join_leave": true }),
    )
    .await;
    let mut on_b = client(&b, "bob").await;
    subscribe(&mut on_b, 2, json!({ "channel": "room" })).await;

    // Bob's join (on B) reaches Alice (on A).
    let joined = wait_for(&mut on_a, |v| {
        (v["push"]["join"]["info"]["user"] == "bob").then(|| v["push"]["channel"].clone())
    })
    .await;
    assert_eq!(joined, "room");

    for node in [&a, &b] {
        let stats = node.api("presence_stats", json!({ "channel": "room" }));
        assert_eq!(stats, json!({ "num_clients": 2, "num_users": 2 }));
        let presence = node.api("presence", json!({ "channel": "room" }));
        assert_eq!(presence["presence"].as_object().expect("map").len(), 2);
    }
    on_b.send(&json!({"id": 3, "unsubscribe": {"channel": "room"}}))
        .await;
    on_b.reply(3).await;
    let left = wait_for(&mut on_a, |v| {
        (v["push"]["leave"]["info"]["user"] == "bob").then(|| v["push"]["channel"].clone())
    })
    .await;
    assert_eq!(left, "room");
    let stats = a.api("presence_stats", json!({ "channel": "room" }));
    assert_eq!(stats, json!({ "num_clients": 1, "num_users": 1 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_actions_on_a_reach_connections_on_b() {
    let redis = Redis::start();
    let a = redis.node();
    let b = redis.node();
    let mut on_b = client(&b, "carol").await;

    // subscribe / unsubscribe issued on A.
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

    // info lists both nodes once heartbeats went round.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = a.api("info", json!({}));
        if info["nodes"].as_array().map(Vec::len) == Some(2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "info never listed both nodes: {info}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_serves_recovery() {
    let redis = Redis::start();
    let mut a = redis.node();
    let b = redis.node();
    let mut on_a = client(&a, "alice").await;
    let sub = subscribe(
        &mut on_a,
        2,
        json!({ "channel": "news", "recoverable": true }),
    )
    .await;
    let epoch = sub["epoch"].as_str().expect("epoch").to_owned();
    b.api("publish", json!({ "channel": "news", "data": { "n": 1 } }));
    assert_eq!(next_pub(&mut on_a, "news").await["offset"], 1);

    // Node A goes away; its client comes back to a new node A after more publications.
    drop(on_a);
    assert!(a.terminate());
    b.api("publish", json!({ "channel": "news", "data": { "n": 2 } }));
    a = redis.node();
    let mut on_a = client(&a, "alice").await;
    let sub = subscribe(
        &mut on_a,
        2,
        json!({ "channel": "news", "recoverable": true, "recover": true, "offset": 1, "epoch": epoch }),
    )
    .await;
    assert_eq!(sub["recovered"], true, "{sub}");
    assert_eq!(sub["publications"][0]["offset"], 2, "{sub}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_is_never_a_silent_gap() {
    let mut redis = Redis::start();
    let a = redis.node();
    let b = redis.node();
    let mut on_b = client(&b, "bob").await;
    let sub = subscribe(
        &mut on_b,
        2,
        json!({ "channel": "news", "recoverable": true }),
    )
    .await;
    let epoch = sub["epoch"].as_str().expect("epoch").to_owned();
    a.api("publish", json!({ "channel": "news", "data": { "n": 1 } }));
    assert_eq!(next_pub(&mut on_b, "news").await["offset"], 1);

    // Traffic on node A all along (failures while Redis is away are expected).
    let publisher = support::BackgroundPublisher::start(&a.addr, "news", Duration::from_millis(5));
    tokio::time::sleep(Duration::from_millis(200)).await;
    redis.restart(Duration::from_millis(300));
    // Until it is told to resubscribe, the client sees a gapless sequence; then (Redis lost
    // its data) it is told its state is insufficient.
    let mut offsets = vec![1];
    let code = wait_for(&mut on_b, |v| {
        if v["push"]["channel"] == "news" && v["push"]["pub"].is_object() {
            offsets.push(v["push"]["pub"]["offset"].as_u64().expect("offset"));
        }
        (v["push"]["channel"] == "news" && v["push"]["unsubscribe"].is_object())
            .then(|| v["push"]["unsubscribe"]["code"].clone())
    })
    .await;
    assert_eq!(code, 2500);
    let expected: Vec<u64> = (1..=offsets.len() as u64).collect();
    assert_eq!(offsets, expected, "no silent gap before the resubscribe");
    assert!(
        offsets.len() > 2,
        "traffic reached the client before the restart"
    );
    // Resubscribing with its position: the stream is gone, so not recovered (never silent).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut id = 3;
    let sub = loop {
        let cmd = json!({ "id": id, "subscribe": { "channel": "news", "recoverable": true, "recover": true, "offset": 1, "epoch": epoch } });
        on_b.send(&cmd).await;
        let reply = on_b.reply(id).await;
        if reply["subscribe"].is_object() {
            break reply["subscribe"].clone();
        }
        assert!(Instant::now() < deadline, "subscribe kept failing: {reply}");
        id += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sub["was_recovering"], true, "{sub}");
    assert_ne!(sub["recovered"], true, "{sub}");
    assert_ne!(sub["epoch"], epoch.as_str(), "{sub}");
    // Live again, gapless from the new position, while traffic goes on.
    let at = sub["offset"].as_u64().unwrap_or(0);
    for next in at + 1..=at + 5 {
        let p = next_pub(&mut on_b, "news").await;
        assert_eq!(
            p["offset"], next,
            "gapless after the resubscribe: {p} {sub}"
        );
    }
    assert!(publisher.stop() > 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_history_answer_errors_while_redis_is_down() {
    let mut redis = Redis::start();
    let a = redis.node();
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    let (status, reply) = a.api_raw(
        "publish",
        &json!({ "channel": "news", "data": {} }),
        &[("X-API-Key", support::API_KEY)],
    );
    assert_eq!(status, 200);
    assert_eq!(reply["error"]["code"], 100, "{reply}");
    let (_, reply) = a.api_raw(
        "history",
        &json!({ "channel": "news" }),
        &[("X-API-Key", support::API_KEY)],
    );
    assert_eq!(reply["error"]["code"], 100, "{reply}");
    redis.restart(Duration::ZERO);
}

/// The real npm `centrifuge` client across two nodes (`conformance/js/cross_node.mjs`), in
/// JSON and in protobuf.
#[test]
fn real_client_across_nodes() {
    let redis = Redis::start();
    let a = redis.node();
    let b = redis.node();
    for protocol in ["json", "protobuf"] {
        support::run_cross_node_js(&a, &b, protocol);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_sharded_over_several_redis_instances() {
    let (r1, r2) = (Redis::start(), Redis::start());
    let a = node_on(&[&r1, &r2], json!({}));
    let b = node_on(&[&r1, &r2], json!({}));
    let mut on_b = client(&b, "bob").await;
    let channels: Vec<String> = (0..8).map(|i| format!("shard{i}")).collect();
    for (i, channel) in channels.iter().enumerate() {
        subscribe(&mut on_b, 10 + i as u64, json!({ "channel": channel })).await;
    }
    for channel in &channels {
        let r = a.api(
            "publish",
            json!({ "channel": channel, "data": { "c": channel } }),
        );
        assert_eq!(r["offset"], 1, "{r}");
        let p = next_pub(&mut on_b, channel).await;
        assert_eq!(p["data"]["c"], channel.as_str());
    }
    // Both instances hold streams.
    for r in [&r1, &r2] {
        let out = Command::new("redis-cli")
            .args([
                "-p",
                &r.port.to_string(),
                "--scan",
                "--pattern",
                "*.stream.*",
            ])
            .output()
            .expect("redis-cli");
        let keys = String::from_utf8_lossy(&out.stdout).lines().count();
        assert!(keys > 0, "no stream on the instance at port {}", r.port);
    }
    // info still lists both nodes (control goes through the first instance).
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.api("info", json!({}))["nodes"].as_array().map(Vec::len) != Some(2) {
        assert!(Instant::now() < deadline, "info never listed both nodes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_of_a_dead_node_expires() {
    let redis = Redis::start();
    let short = json!({ "presence_ttl": "3s" });
    let a = node_on(&[&redis], short.clone());
    let b = node_on(&[&redis], short);
    let mut on_a = client(&a, "alice").await;
    subscribe(&mut on_a, 2, json!({ "channel": "room" })).await;
    let mut on_b = client(&b, "bob").await;
    subscribe(&mut on_b, 2, json!({ "channel": "room" })).await;
    let stats = b.api("presence_stats", json!({ "channel": "room" }));
    assert_eq!(stats["num_clients"], 2, "{stats}");
    // Entries of a live node are refreshed past the TTL.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stats = b.api("presence_stats", json!({ "channel": "room" }));
    assert_eq!(stats["num_clients"], 2, "{stats}");
    // Node A dies without cleaning up (SIGKILL): its entries expire.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let stats = b.api("presence_stats", json!({ "channel": "room" }));
        if stats["num_clients"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "presence of the dead node kept: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(on_a);
}

/// Many first subscribes at once (one distinct channel per client) are all confirmed and all
/// receive their publication; the time to subscribe them all is printed (`--nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_first_subscribes_all_deliver() {
    const CLIENTS: usize = 2000;
    let redis = Redis::start();
    let a = redis.node();
    let b = redis.node();
    let url = b.ws_url();
    let connected = futures_util::future::join_all((0..CLIENTS).map(|i| {
        let url = url.clone();
        tokio::spawn(async move {
            let mut conn = Conn::open(&url).await;
            let t = token(json!({ "sub": format!("u{i}") }));
            conn.send(&json!({"id": 1, "connect": {"token": t}})).await;
            assert!(conn.reply(1).await["connect"].is_object());
            conn
        })
    }))
    .await;
    let mut conns: Vec<Conn> = connected
        .into_iter()
        .map(|c| c.expect("client task"))
        .collect();
    let started = Instant::now();
    for (i, conn) in conns.iter_mut().enumerate() {
        conn.send(&json!({"id": 2, "subscribe": {"channel": format!("plain:many{i}")}}))
            .await;
    }
    let replies = futures_util::future::join_all(conns.into_iter().map(|mut conn| {
        tokio::spawn(async move {
            let reply = conn.reply(2).await;
            (conn, reply)
        })
    }))
    .await;
    let elapsed = started.elapsed();
    let mut conns = Vec::with_capacity(CLIENTS);
    for joined in replies {
        let (conn, reply) = joined.expect("client task");
        assert!(reply["subscribe"].is_object(), "{reply}");
        conns.push(conn);
    }
    // Batched: far fewer SUBSCRIBE commands than channels.
    let stats = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "INFO", "commandstats"])
        .output()
        .expect("redis-cli");
    let stats = String::from_utf8_lossy(&stats.stdout);
    let calls: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_subscribe:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("SUBSCRIBE stats");
    eprintln!(
        "{CLIENTS} first subscribes (distinct channels) confirmed in {elapsed:?} \
         with {calls} SUBSCRIBE commands"
    );
    assert!(calls < CLIENTS as u64 / 10, "{calls} SUBSCRIBE commands");
    let channels: Vec<String> = (0..CLIENTS).map(|i| format!("plain:many{i}")).collect();
    let r = a.api(
        "broadcast",
        json!({ "channels": channels, "data": { "hello": true } }),
    );
    assert_eq!(r["responses"].as_array().map(Vec::len), Some(CLIENTS));
    let received =
        futures_util::future::join_all(conns.into_iter().enumerate().map(|(i, mut conn)| {
            tokio::spawn(async move {
                let p = next_pub(&mut conn, &format!("plain:many{i}")).await;
                p["data"]["hello"] == true
            })
        }))
        .await;
    let ok = received
        .into_iter()
        .filter(|r| matches!(r, Ok(true)))
        .count();
    assert_eq!(ok, CLIENTS, "every client received its publication");
}

/// A node starts while Redis is down: it serves connections, answers publish/history/presence
/// with internal errors, and works fully (across nodes) once Redis appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_start_while_redis_is_down_and_work_once_it_appears() {
    let port = support::free_port();
    let address = vec![format!("redis://127.0.0.1:{port}")];
    let a = node_with(&address, json!({}));
    let b = node_with(&address, json!({}));
    let mut on_a = client(&a, "alice").await;
    on_a.send(&json!({"id": 2, "publish": {"channel": "room", "data": {"n": 0}}}))
        .await;
    let reply = on_a.reply(2).await;
    assert_eq!(reply["error"]["code"], 100, "{reply}");
    for (method, body) in [
        ("publish", json!({ "channel": "room", "data": {} })),
        ("history", json!({ "channel": "room" })),
        ("presence", json!({ "channel": "room" })),
    ] {
        let (status, reply) = a.api_raw(method, &body, &[("X-API-Key", support::API_KEY)]);
        assert_eq!(status, 200);
        assert_eq!(reply["error"]["code"], 100, "{method}: {reply}");
    }

    let _redis = Redis::start_on(port);
    // The nodes reconnect in the background: publishing succeeds within the backoff.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut id = 3;
    loop {
        on_a.send(&json!({"id": id, "publish": {"channel": "room", "data": {"n": 0}}}))
            .await;
        let reply = on_a.reply(id).await;
        if reply["publish"].is_object() {
            break;
        }
        assert!(Instant::now() < deadline, "publish kept failing: {reply}");
        id += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Cross-node delivery and shared history work.
    let mut on_b = Conn::open(&b.ws_url()).await;
    on_b.send(&json!({"id": 1, "connect": {"token": token(json!({ "sub": "bob" }))}}))
        .await;
    assert!(on_b.reply(1).await["connect"].is_object());
    let mut id = 2;
    loop {
        on_b.send(&json!({"id": id, "subscribe": {"channel": "room"}}))
            .await;
        let reply = on_b.reply(id).await;
        if reply["subscribe"].is_object() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "subscribe on B kept failing: {reply}"
        );
        id += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = a.api("publish", json!({ "channel": "room", "data": { "n": 1 } }));
    let p = next_pub(&mut on_b, "room").await;
    assert_eq!(
        (p["data"]["n"].clone(), p["offset"].clone()),
        (json!(1), r["offset"].clone())
    );
    let stats = a.api("presence_stats", json!({ "channel": "room" }));
    assert_eq!(stats["num_clients"], 1, "{stats}");
}

/// After a Redis restart, subscribers of channels without positions are resubscribed
/// silently (the node resubscribes; they could not recover anyway) and keep receiving, while
/// positioned ones are told to resubscribe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_resubscribes_unpositioned_channels_silently() {
    let mut redis = Redis::start();
    let a = redis.node();
    let b = redis.node();
    let mut on_b = client(&b, "bob").await;
    subscribe(&mut on_b, 2, json!({ "channel": "plain:room" })).await;
    subscribe(
        &mut on_b,
        3,
        json!({ "channel": "news", "recoverable": true }),
    )
    .await;
    a.api(
        "publish",
        json!({ "channel": "plain:room", "data": { "n": 0 } }),
    );
    assert_eq!(next_pub(&mut on_b, "plain:room").await["data"]["n"], 0);

    let publisher =
        support::BackgroundPublisher::start(&a.addr, "plain:room", Duration::from_millis(20));
    redis.restart(Duration::from_millis(300));
    // The positioned subscription is told to resubscribe once the node is back; the plain
    // one never is, and publications reach it again after that.
    let mut resubscribed = false;
    wait_for(&mut on_b, |v| {
        let push = &v["push"];
        assert!(
            !(push["channel"] == "plain:room" && push["unsubscribe"].is_object()),
            "unpositioned subscription told to resubscribe: {v}"
        );
        if push["channel"] == "news" && push["unsubscribe"].is_object() {
            assert_eq!(push["unsubscribe"]["code"], 2500, "{v}");
            resubscribed = true;
        }
        (resubscribed && push["channel"] == "plain:room" && push["pub"].is_object()).then_some(())
    })
    .await;
    publisher.stop();
}

/// Positioned subscribers of brand-new channels, while another node publishes the first
/// offsets around their subscribe: every client gets exactly the publications after its
/// subscribe position, in order, and no spurious resubscribe (insufficient state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_channels_published_around_subscribe_need_no_resubscribe() {
    const CLIENTS: usize = 100;
    let redis = Redis::start();
    let a = redis.node();
    let b = redis.node();
    for round in 0..4 {
        let mut conns = Vec::with_capacity(CLIENTS);
        for i in 0..CLIENTS {
            conns.push(client(&b, &format!("u{i}")).await);
        }
        let channels: Vec<String> = (0..CLIENTS).map(|i| format!("fresh{round}-{i}")).collect();
        // Offsets 1 and 2 of every channel, published from A while B's clients subscribe.
        let publisher = {
            let (addr, channels) = (a.addr.clone(), channels.clone());
            std::thread::spawn(move || {
                for n in 1..=2 {
                    for channel in &channels {
                        let (_, r) = support::http_post(
                            &addr,
                            "/api/publish",
                            &json!({ "channel": channel, "data": { "n": n } }).to_string(),
                            &[("X-API-Key", support::API_KEY)],
                        );
                        assert_eq!(r["result"]["offset"], n, "{r}");
                    }
                }
            })
        };
        for (conn, channel) in conns.iter_mut().zip(&channels) {
            conn.send(&json!({"id": 2, "subscribe": {"channel": channel, "recoverable": true}}))
                .await;
        }
        let mut positions = Vec::with_capacity(CLIENTS);
        for conn in &mut conns {
            let reply = conn.reply(2).await;
            assert!(reply["subscribe"].is_object(), "{reply}");
            positions.push(reply["subscribe"]["offset"].as_u64().unwrap_or(0));
        }
        publisher.join().expect("publisher");
        let r = a.api(
            "broadcast",
            json!({ "channels": channels, "data": { "n": 3 } }),
        );
        assert_eq!(r["responses"].as_array().map(Vec::len), Some(CLIENTS));
        for ((conn, channel), position) in conns.iter_mut().zip(&channels).zip(positions) {
            let mut offsets = Vec::new();
            wait_for(conn, |v| {
                let push = &v["push"];
                assert!(
                    !push["unsubscribe"].is_object(),
                    "spurious resubscribe in {channel} (subscribed at {position}): {v}"
                );
                if push["pub"].is_object() {
                    offsets.push(push["pub"]["offset"].as_u64().unwrap_or(0));
                }
                offsets.contains(&3).then_some(())
            })
            .await;
            assert_eq!(
                offsets,
                (position + 1..=3).collect::<Vec<_>>(),
                "{channel} subscribed at {position}"
            );
        }
    }
}

/// `channels` aggregates every live node's channels (counts summed, pattern applied) and
/// `info` reports every node's numbers; a node that shut down is not waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_and_info_span_nodes() {
    let redis = Redis::start();
    let a = redis.node();
    let mut b = redis.node();
    let mut on_a = client(&a, "alice").await;
    subscribe(&mut on_a, 2, json!({ "channel": "room" })).await;
    subscribe(&mut on_a, 3, json!({ "channel": "a-only" })).await;
    let mut on_b = Vec::new();
    for user in ["bob", "carol"] {
        let mut conn = client(&b, user).await;
        subscribe(&mut conn, 2, json!({ "channel": "room" })).await;
        on_b.push(conn);
    }
    subscribe(&mut on_b[0], 3, json!({ "channel": "b-only" })).await;

    // Both nodes know each other from heartbeats, with B's numbers in A's info.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = a.api("info", json!({}));
        let nodes = info["nodes"].as_array().cloned().unwrap_or_default();
        let b_numbers = nodes.iter().find(|n| n["num_clients"] == 2).map(|n| {
            (
                n["num_users"].clone(),
                n["num_channels"].clone(),
                n["num_subs"].clone(),
            )
        });
        let known_by_b = b.api("info", json!({}))["nodes"].as_array().map(Vec::len) == Some(2);
        if nodes.len() == 2
            && known_by_b
            && let Some(numbers) = b_numbers
        {
            assert_eq!(numbers, (json!(2), json!(2), json!(3)), "{info}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nodes never saw each other: {info}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let expected = json!({
        "room": { "num_clients": 3 },
        "a-only": { "num_clients": 1 },
        "b-only": { "num_clients": 1 },
    });
    for node in [&a, &b] {
        assert_eq!(node.api("channels", json!({}))["channels"], expected);
    }
    let r = a.api("channels", json!({ "pattern": "b-*" }));
    assert_eq!(r["channels"], json!({ "b-only": { "num_clients": 1 } }));
    let r = b.api("channels", json!({ "pattern": "room" }));
    assert_eq!(r["channels"], json!({ "room": { "num_clients": 3 } }));

    // Node B shuts down: A answers at once with its own channels.
    drop(on_b);
    assert!(b.terminate());
    let started = Instant::now();
    let r = a.api("channels", json!({}));
    assert_eq!(
        r["channels"],
        json!({ "room": { "num_clients": 1 }, "a-only": { "num_clients": 1 } })
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited for a node that left: {:?}",
        started.elapsed()
    );
}

/// The real PyPI `centrifuge-python` client across two nodes
/// (`conformance/python/cross_node.py`): delivery from A to B (API and client publish),
/// presence across nodes, and recovery after moving from A to B; JSON and protobuf.
#[test]
fn real_python_client_across_nodes() {
    let redis = Redis::start();
    let a = redis.node();
    let b = redis.node();
    let dir = support::repo_root().join("conformance/python");
    for protocol in ["json", "protobuf"] {
        let exp = support::now() + 3600;
        let mut child = Command::new("python3")
            .arg("-u")
            .arg(dir.join("cross_node.py"))
            .current_dir(&dir)
            .env("PYTHONPATH", support::python_deps())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("GYRE_WS_URL", a.ws_url())
            .env("GYRE_API_URL", a.api_base())
            .env("GYRE_WS_URL_B", b.ws_url())
            .env("GYRE_API_URL_B", b.api_base())
            .env("GYRE_API_KEY", support::API_KEY)
            .env("GYRE_PROTOCOL", protocol)
            .env("GYRE_TOKEN_U1", token(json!({ "sub": "u1", "exp": exp })))
            .env("GYRE_TOKEN_U2", token(json!({ "sub": "u2", "exp": exp })))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn python3");
        let output = support::wait_bounded(&mut child, Duration::from_secs(45));
        assert!(
            output.0.is_some_and(|s| s.success()),
            "cross_node.py ({protocol}) failed: {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            output.0,
            output.1,
            output.2
        );
    }
}

/// A Redis that stops answering without closing connections (SIGSTOP): the node notices
/// through its Pub/Sub health PING, and once Redis answers again positioned subscribers are
/// told to resubscribe while unpositioned ones keep receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_redis_is_noticed_by_the_health_ping() {
    let redis = Redis::start();
    let timeouts = json!({ "io_timeout": "1s", "connect_timeout": "1s" });
    let a = node_on(&[&redis], timeouts.clone());
    let b = node_on(&[&redis], timeouts);
    let mut on_b = client(&b, "bob").await;
    subscribe(&mut on_b, 2, json!({ "channel": "plain:room" })).await;
    subscribe(
        &mut on_b,
        3,
        json!({ "channel": "news", "recoverable": true }),
    )
    .await;
    // Healthy past a few PINGs (every 3 s here): delivery goes on.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    a.api(
        "publish",
        json!({ "channel": "plain:room", "data": { "n": 1 } }),
    );
    assert_eq!(next_pub(&mut on_b, "plain:room").await["data"]["n"], 1);

    let pid = redis.child.id().to_string();
    let signal = |sig: &str| {
        let status = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    signal("-STOP");
    // The next PING (within 3 s) times out after 1 s.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    signal("-CONT");
    let code = wait_for(&mut on_b, |v| {
        let push = &v["push"];
        assert!(
            !(push["channel"] == "plain:room" && push["unsubscribe"].is_object()),
            "{v}"
        );
        (push["channel"] == "news" && push["unsubscribe"].is_object())
            .then(|| push["unsubscribe"]["code"].clone())
    })
    .await;
    assert_eq!(code, 2500);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, r) = a.api_raw(
            "publish",
            &json!({ "channel": "plain:room", "data": { "n": 2 } }),
            &[("X-API-Key", support::API_KEY)],
        );
        if r["error"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "publish kept failing: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(next_pub(&mut on_b, "plain:room").await["data"]["n"], 2);
}
