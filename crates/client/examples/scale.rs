//! Times subscribing N channels on one connection, and resubscribing all of them after the
//! server restarts, against a `gyre serve` this example starts itself.
//!
//! ```sh
//! cargo build --release -p gyre-server --bin gyre
//! cargo run --release -p gyre-client --example scale -- --gyre target/release/gyre --subs 10000,100000
//! ```
//!
//! "subscribe" is the time from the first `subscribe()` call until every subscription is
//! subscribed; "resubscribe" the time from the `Connected` event after the restart until
//! every subscription is subscribed again. Both wait with one `ready()` per subscription,
//! in turn.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gyre_client::{ClientEvent, ClientOptions, Protocol, Subscription, SubscriptionOptions};

type AnyResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Server {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(bin: &str, port: u16) -> AnyResult<Server> {
    let dir = std::env::temp_dir().join(format!("gyre-scale-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = serde_json::json!({
        "http_server": {"address": "127.0.0.1", "port": port},
        "client": {"insecure": true, "channel_limit": 1_000_000, "queue_max_size": 1u64 << 30},
        "log": {"level": "error"}
    });
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string())?;
    let mut child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn {bin}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let line = lines.next().ok_or("server exited")??;
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.rsplit(':').next().unwrap_or("").trim().parse()?;
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok(Server { child, port, dir })
}

/// Waits for each subscription in turn: by the time the first is subscribed most others are
/// too, and each later `ready` is one round trip to the client task (a `join_all` of 100,000
/// futures would cost more than the subscribing itself).
async fn all_ready(subs: &[Subscription]) -> AnyResult<()> {
    let wait = Some(Duration::from_secs(600));
    for s in subs {
        s.ready(wait).await?;
    }
    Ok(())
}

async fn run(bin: &str, n: usize, protocol: Protocol) -> AnyResult<(Duration, Duration)> {
    let server = start(bin, 0)?;
    let port = server.port;
    let client = ClientOptions::new(format!("ws://127.0.0.1:{port}/connection/websocket"))
        .protocol(protocol)
        .timeout(Duration::from_secs(600))
        .reconnect_delay(Duration::from_millis(20), Duration::from_millis(200))
        .build()?;
    let mut events = client.events();
    client.connect();
    client.ready(None).await?;
    let t0 = Instant::now();
    let subs = (0..n)
        .map(|i| {
            let s = client.new_subscription(format!("scale-{i}"), SubscriptionOptions::new())?;
            s.subscribe();
            Ok(s)
        })
        .collect::<Result<Vec<_>, gyre_client::Error>>()?;
    all_ready(&subs).await?;
    let subscribe = t0.elapsed();
    drop(server);
    let _server = start(bin, port)?;
    loop {
        match events.recv().await {
            Some(ClientEvent::Connected(_)) => break,
            Some(_) => {}
            None => return Err("client ended".into()),
        }
    }
    let t1 = Instant::now();
    all_ready(&subs).await?;
    let resubscribe = t1.elapsed();
    let stats = client.stats().await?;
    eprintln!("  {n}: {stats:?}");
    client.close().await;
    Ok((subscribe, resubscribe))
}

fn main() -> AnyResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let bin = arg("--gyre").unwrap_or_else(|| "target/release/gyre".into());
    let counts: Vec<usize> = arg("--subs")
        .unwrap_or_else(|| "10000,100000".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    println!("| protocol | subscriptions | subscribe (s) | resubscribe after restart (s) |");
    println!("|---|---|---|---|");
    for protocol in [Protocol::Json, Protocol::Protobuf] {
        for &n in &counts {
            let (s, r) = rt.block_on(run(&bin, n, protocol))?;
            println!(
                "| {protocol:?} | {n} | {:.3} | {:.3} |",
                s.as_secs_f64(),
                r.as_secs_f64()
            );
        }
    }
    Ok(())
}
