//! Linear at scale: 10,000 subscriptions subscribe, and resubscribe after the server restarts,
//! against the real `gyre serve`, with a bounded amount of work per subscription. The bounds
//! are on counts the client reports ([`gyre_client::ClientStats`]), never on time: frames
//! written (subscribe commands are batched), commands (one subscribe each, no retries),
//! timer index operations (a constant number per subscription) and registry walks (one per
//! connect or connection loss, not one per subscription).

mod common;

use std::time::Duration;

use common::Server;
use futures_util::future::join_all;
use gyre_client::{ClientEvent, ClientOptions, ClientStats, SubscriptionOptions};

const N: u64 = 10_000;

fn config() -> serde_json::Value {
    serde_json::json!({
        "http_server": {"address": "127.0.0.1", "port": 0},
        // Pings far apart: a pong is a command too, and the counts below are exact.
        "client": {"insecure": true, "channel_limit": 200_000, "queue_max_size": 1u64 << 30,
            "ping_interval": "600s"},
    })
}

fn delta(a: ClientStats, b: ClientStats) -> ClientStats {
    let mut d = b;
    d.commands_sent -= a.commands_sent;
    d.frames_sent -= a.frames_sent;
    d.frames_received -= a.frames_received;
    d.timers_armed -= a.timers_armed;
    d.timers_removed -= a.timers_removed;
    d.registry_walks -= a.registry_walks;
    d
}

/// Waits until every subscription is subscribed (each `ready` is one queued call).
async fn all_ready(subs: &[gyre_client::Subscription]) {
    let wait = Some(Duration::from_secs(120));
    let results = join_all(subs.iter().map(|s| s.ready(wait))).await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} not subscribed, first: {:?}",
        failed.len(),
        failed.first()
    );
}

// A current-thread runtime: the subscribe calls below are all queued before the client task
// runs, as they would be from a busy application, so the frame bound is deterministic.
#[tokio::test]
async fn ten_thousand_subscriptions_subscribe_and_resubscribe_linearly() {
    let mut server = Server::start(config());
    let client = ClientOptions::new(server.url())
        // Generous: a debug build under load must not time out (this test is about counts).
        .timeout(Duration::from_secs(120))
        .reconnect_delay(Duration::from_millis(50), Duration::from_millis(500))
        .build()
        .expect("build");
    let mut events = client.events();
    client.connect();
    client.ready(None).await.expect("connected");
    let base = client.stats().await.expect("stats");

    let subs: Vec<_> = (0..N)
        .map(|i| {
            let sub = client
                .new_subscription(format!("scale-{i}"), SubscriptionOptions::new())
                .expect("new subscription");
            sub.subscribe();
            sub
        })
        .collect();
    all_ready(&subs).await;
    let subscribed = client.stats().await.expect("stats");
    let first = delta(base, subscribed);
    eprintln!("first subscribe of {N}: {first:?}");
    assert_eq!(
        first.commands_sent, N,
        "one subscribe command each, no retry"
    );
    // A subscribe command is under 60 bytes, a frame up to 60 KiB: the bound leaves room
    // for bursts split by scheduling, and is still ~100 times fewer than one write each.
    assert!(
        first.frames_sent <= N / 100,
        "frames: {}",
        first.frames_sent
    );
    // Each subscribe arms its reply timeout and each waiting `ready` its call timeout.
    assert!(
        first.timers_armed <= 2 * N,
        "timers: {}",
        first.timers_armed
    );
    assert!(first.timers_removed <= first.timers_armed + base.timers_armed);
    assert_eq!(
        first.registry_walks, 0,
        "no walk over the registry per subscribe"
    );

    // Restart the server: every subscription goes subscribing and resubscribes in the
    // commands that follow the new connect.
    server.restart();
    let mut reconnected = false;
    for _ in 0..1_000 {
        match tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
            Ok(Some(ClientEvent::Connected(_))) => {
                reconnected = true;
                break;
            }
            Ok(Some(_)) => {}
            other => panic!("no reconnect: {other:?}"),
        }
    }
    assert!(reconnected, "client reconnected");
    all_ready(&subs).await;
    let again = delta(subscribed, client.stats().await.expect("stats"));
    eprintln!("resubscribe of {N} after a restart: {again:?}");
    // The connect command and one subscribe per subscription (the failed connect attempts
    // while the server was down send nothing).
    assert_eq!(again.commands_sent, N + 1, "connect + one subscribe each");
    assert!(
        again.frames_sent <= N / 100,
        "frames: {}",
        again.frames_sent
    );
    assert!(
        again.timers_armed <= 2 * N,
        "timers: {}",
        again.timers_armed
    );
    // The connection loss and the connect reply: each walks the registry once.
    assert_eq!(again.registry_walks, 2, "registry walks");
    client.close().await;
}
