//! The server killed and restarted while publications keep coming (through another node on
//! the same Redis): the client goes connected → connecting → connected, its subscription
//! subscribed → subscribing → subscribed, and it recovers exactly the publications it missed.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use gyre_client::{ClientEvent, ClientOptions, Protocol, SubscriptionEvent, SubscriptionOptions};

/// A throwaway `redis-server` on a free loopback port, killed on drop.
struct Redis {
    child: Child,
    url: String,
}

impl Redis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed by scripts/install-test-deps.sh");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn missed_publications_are_recovered_after_a_server_restart() {
    let redis = Redis::start();
    let mut config = insecure_config();
    config["engine"] = serde_json::json!({"type": "redis", "redis": {"address": [redis.url]}});
    let mut node_a = Server::start(config.clone());
    let node_b = Server::start(config);
    for protocol in [Protocol::Json, Protocol::Protobuf] {
        let channel = format!("restart-{protocol:?}");
        let client = ClientOptions::new(node_a.url())
            .protocol(protocol)
            .timeout(Duration::from_secs(3))
            .reconnect_delay(Duration::from_millis(100), Duration::from_millis(500))
            .seed(7)
            .build()
            .expect("client");
        let mut events = client.events();
        let sub = client
            .new_subscription(&channel, SubscriptionOptions::new().recoverable(true))
            .expect("subscription");
        let mut sub_events = sub.events();
        sub.subscribe();
        client.connect();
        sub.ready(None).await.expect("subscribed");
        node_a
            .api(
                "publish",
                serde_json::json!({"channel": channel, "data": {"n": 1}}),
            )
            .await;
        match wait_sub(&mut sub_events, "first publication", |e| {
            matches!(e, SubscriptionEvent::Publication(_))
        })
        .await
        {
            SubscriptionEvent::Publication(p) => assert_eq!(p.offset, 1),
            other => panic!("{other:?}"),
        }
        // Everything up to now (connecting, connected, subscribing, subscribed) is seen.
        drain(&mut events, Duration::from_millis(50)).await;
        drain(&mut sub_events, Duration::from_millis(50)).await;
        node_a.kill();
        for n in 2..=4 {
            let r = node_b
                .api(
                    "publish",
                    serde_json::json!({"channel": channel, "data": {"n": n}}),
                )
                .await;
            assert!(r.get("result").is_some(), "{r}");
        }
        node_a.restart();
        let connecting = wait_client(&mut events, "connecting", is_state).await;
        assert!(
            matches!(&connecting, ClientEvent::Connecting { code: 1, reason } if reason.starts_with("transport closed")),
            "{connecting:?}"
        );
        let connected = wait_client(&mut events, "connected", is_state).await;
        assert!(
            matches!(connected, ClientEvent::Connected(_)),
            "{connected:?}"
        );
        let subscribing = wait_sub(&mut sub_events, "subscribing", is_sub_state).await;
        assert!(
            matches!(subscribing, SubscriptionEvent::Subscribing { code: 1, .. }),
            "{subscribing:?}"
        );
        let mut offsets = Vec::new();
        let mut recovered = None;
        while offsets.len() < 3 {
            match wait_sub(&mut sub_events, "recovery", |e| {
                matches!(
                    e,
                    SubscriptionEvent::Subscribed(_) | SubscriptionEvent::Publication(_)
                )
            })
            .await
            {
                SubscriptionEvent::Subscribed(ctx) => {
                    recovered = Some((ctx.was_recovering, ctx.recovered))
                }
                SubscriptionEvent::Publication(p) => offsets.push(p.offset),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(recovered, Some((true, true)), "{protocol:?}");
        assert_eq!(
            offsets,
            vec![2, 3, 4],
            "{protocol:?}: exactly the missed publications"
        );
        client.close().await;
    }
}
