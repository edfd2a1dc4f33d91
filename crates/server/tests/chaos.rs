//! Chaos with real processes: three `gyre serve` nodes on one `redis-server`, many recovering
//! raw WebSocket subscribers spread over the nodes (support/chaos_client.rs) and a publisher
//! on the HTTP API all along, while a node is killed with SIGKILL, Redis is restarted (losing
//! everything) or a node is partitioned from Redis through a fault proxy. Every client must
//! end subscribed at the stream's top with no duplicate and no silent gap (a gap is allowed
//! only when the client was told `recovered: false`), and the nodes' RSS must stay bounded.
//!
//! Each case prints a `CHAOS|...` summary line; `scripts/chaos.sh` runs the same cases with
//! more clients and longer load (`GYRE_CHAOS_CLIENTS`, `GYRE_CHAOS_LOAD_MS`,
//! `GYRE_CHAOS_PAUSE_MS`) and prints them as a table.

mod support;

use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::json;
use support::chaos_client::{ChaosClient, Stats};
use support::fault_proxy::FaultProxy;
use support::{BackgroundPublisher, Gyre, config};

/// The channel every client subscribes to.
const CHANNEL: &str = "chaos";
/// A generous ceiling for a node's resident memory after the chaos.
const RSS_CEILING_KIB: u64 = 256 * 1024;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How many clients, how long the load runs before and after the fault, and the pause
/// between publishes.
struct Scale {
    clients: usize,
    load: Duration,
    pause: Duration,
}

fn scale() -> Scale {
    Scale {
        clients: env_num("GYRE_CHAOS_CLIENTS", 30) as usize,
        load: Duration::from_millis(env_num("GYRE_CHAOS_LOAD_MS", 1500)),
        pause: Duration::from_millis(env_num("GYRE_CHAOS_PAUSE_MS", 10)),
    }
}

/// A `redis-server` on a fixed port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Self {
        let port = support::free_port();
        Self {
            child: support::spawn_redis(port),
            port,
        }
    }

    /// Kills Redis (everything is lost: nothing is persisted) and starts it on the same port
    /// after `down`.
    fn restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        self.child = support::spawn_redis(self.port);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node on the Redis at `port`, with history deep enough to recover the whole outage.
fn node(port: u16) -> Gyre {
    Gyre::start(&config(json!({
        "engine": { "type": "redis", "redis": {
            "address": [format!("redis://127.0.0.1:{port}")],
            "io_timeout": "1s", "connect_timeout": "1s",
        } },
        "client": { "recovery_max_publication_limit": 100000 },
        "channel": { "without_namespace": {
            "history_size": 100000, "history_ttl": "600s", "force_recovery": true,
            "allow_subscribe_for_client": true,
        } },
    })))
}

/// Starts `n` clients spread round-robin over `nodes` and waits until all are subscribed.
async fn start_clients(nodes: &[&Gyre], n: usize) -> Vec<ChaosClient> {
    let urls: Vec<String> = nodes.iter().map(|g| g.ws_url()).collect();
    let clients: Vec<ChaosClient> = (0..n)
        .map(|i| ChaosClient::start(urls.clone(), i % urls.len(), &format!("u{i}"), CHANNEL))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !clients.iter().all(|c| c.stats().subscribed) {
        assert!(Instant::now() < deadline, "clients did not subscribe");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    clients
}

/// The stream position of the channel as `api` reports it (retried while Redis recovers).
async fn top(api: &Gyre) -> (String, u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, r) = api.api_raw(
            "history",
            &json!({ "channel": CHANNEL, "limit": 0 }),
            &[("X-API-Key", support::API_KEY)],
        );
        if let (Some(epoch), Some(offset)) = (
            r["result"]["epoch"].as_str(),
            r["result"]["offset"].as_u64(),
        ) {
            return (epoch.to_owned(), offset);
        }
        assert!(Instant::now() < deadline, "history kept failing: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (20 s at most) until every client is subscribed at the stream's top, then checks
/// the counters, prints the summary line and returns the clients' final counters.
async fn settle(
    name: &str,
    clients: Vec<ChaosClient>,
    api: &Gyre,
    published: usize,
    nodes: &[&Gyre],
) -> Vec<Stats> {
    let (epoch, offset) = top(api).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let behind: Vec<Stats> = clients
            .iter()
            .map(ChaosClient::stats)
            .filter(|s| !(s.subscribed && s.epoch == epoch && s.offset == offset))
            .collect();
        if behind.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {} clients not at the top {epoch}/{offset}: {:?}",
            behind.len(),
            &behind[..behind.len().min(3)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut stats = Vec::new();
    for c in clients {
        stats.push(c.finish().await);
    }
    let sum = |f: fn(&Stats) -> u64| stats.iter().map(f).sum::<u64>();
    let rss = nodes.iter().filter_map(|g| g.rss_kib()).max().unwrap_or(0);
    println!(
        "CHAOS|{name}|{}|{published}|{}|{}|{}|{}|{}|{}|{}",
        stats.len(),
        sum(|s| s.received),
        sum(|s| s.recovered),
        sum(|s| s.not_recovered),
        sum(|s| s.lost),
        sum(|s| s.duplicated),
        sum(|s| s.reconnects),
        rss / 1024,
    );
    for s in &stats {
        assert_eq!(s.duplicated, 0, "{name}: duplicates: {s:?}");
        assert_eq!(s.lost, 0, "{name}: silent gap: {s:?}");
        assert_eq!(s.final_unsubscribes, 0, "{name}: final unsubscribe: {s:?}");
    }
    for g in nodes {
        let rss = g.rss_kib().expect("node alive");
        assert!(rss < RSS_CEILING_KIB, "{name}: node RSS {rss} KiB");
    }
    stats
}

fn publisher(api: &Gyre, pause: Duration) -> BackgroundPublisher {
    BackgroundPublisher::start(&api.addr, CHANNEL, pause)
}

/// Kill -9 one of three nodes under load: its clients reconnect to another node and recover.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_node_clients_move_and_recover() {
    let scale = scale();
    let redis = Redis::start();
    let (a, b, mut c) = (node(redis.port), node(redis.port), node(redis.port));
    let clients = start_clients(&[&a, &b, &c], scale.clients).await;
    let load = publisher(&a, scale.pause);
    tokio::time::sleep(scale.load).await;
    c.kill();
    tokio::time::sleep(scale.load).await;
    let published = load.stop();
    let stats = settle("node kill -9", clients, &a, published, &[&a, &b]).await;
    let moved = stats.iter().filter(|s| s.reconnects > 0).count();
    assert!(
        moved >= scale.clients / 3,
        "the killed node's clients moved"
    );
    assert!(
        stats
            .iter()
            .filter(|s| s.reconnects > 0)
            .all(|s| s.node != 2),
        "moved clients left the dead node"
    );
    assert!(
        stats.iter().map(|s| s.recovered).sum::<u64>() >= moved as u64,
        "moved clients recovered"
    );
}

/// Restart Redis twice (its data lost, so epochs change; the second time at once) under
/// load: every client ends subscribed, either recovered or told `recovered: false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restart_every_client_resubscribes() {
    let scale = scale();
    let mut redis = Redis::start();
    let (a, b, c) = (node(redis.port), node(redis.port), node(redis.port));
    let clients = start_clients(&[&a, &b, &c], scale.clients).await;
    let load = publisher(&a, scale.pause);
    tokio::time::sleep(scale.load).await;
    let (old_epoch, _) = top(&a).await;
    tokio::task::block_in_place(|| redis.restart(Duration::from_millis(300)));
    tokio::time::sleep(scale.load).await;
    // Again at once, while some clients may still be resubscribing.
    tokio::task::block_in_place(|| redis.restart(Duration::ZERO));
    tokio::time::sleep(scale.load).await;
    let published = load.stop();
    let stats = settle("redis restart", clients, &a, published, &[&a, &b, &c]).await;
    let (new_epoch, _) = top(&a).await;
    assert_ne!(old_epoch, new_epoch, "Redis lost the stream");
    for s in &stats {
        assert!(s.not_recovered >= 1, "told recovered: false: {s:?}");
    }
}

/// Partition one node from Redis (first silently, then with reset connections) under load,
/// then heal: its clients resubscribe and recover.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitioned_node_heals_and_recovers() {
    let scale = scale();
    let redis = Redis::start();
    let proxy = FaultProxy::start(redis.port).await;
    let (a, b, c) = (node(redis.port), node(redis.port), node(proxy.port));
    let clients = start_clients(&[&a, &b, &c], scale.clients).await;
    let load = publisher(&a, scale.pause);
    tokio::time::sleep(scale.load).await;
    // Silent: longer than the health PING interval (3 s) plus its timeout (1 s).
    proxy.pause();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    proxy.heal();
    tokio::time::sleep(scale.load).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.heal();
    tokio::time::sleep(scale.load).await;
    let published = load.stop();
    let stats = settle("partition", clients, &a, published, &[&a, &b, &c]).await;
    let on_c: Vec<&Stats> = stats.iter().filter(|s| s.node == 2).collect();
    assert!(!on_c.is_empty());
    for s in on_c {
        assert!(s.unsubscribes >= 1, "told to resubscribe: {s:?}");
    }
}
