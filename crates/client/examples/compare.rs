//! Compares gyre-client with the official `centrifuge-client` crate (library `centrifuge`) and
//! `tokio-centrifuge` against one `gyre serve`, in JSON and Protobuf:
//!
//! - **receive rate**: one client subscribed to one channel, connected through an in-process
//!   TCP proxy; the HTTP API `batch` method publishes `--count` small messages (4 concurrent
//!   publishers, 500 per batch) while the proxy holds everything the server sends; then the
//!   proxy releases it at once and the client counts publications. The rate is measured in
//!   the client between the first and the last one received, so it is the client's own
//!   decoding and delivery rate, not the publisher's or the server's;
//! - **memory per subscription**: the RSS delta (`/proc/self/statm`) of the client process
//!   before and after creating and subscribing `--subs` subscriptions on one connection,
//!   divided by `--subs`.
//!
//! Each measurement runs in a fresh child process (this same binary), so allocator state and
//! RSS do not leak between SDKs. The server is started with `client.channel_limit: 20000` and
//! a 1 GiB per-connection queue so that a slow reader is not disconnected.
//!
//! ```sh
//! cargo build --release -p gyre-server --bin gyre
//! cargo run --release -p gyre-client --example compare -- --gyre target/release/gyre
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const API_KEY: &str = "compare";
const SDKS: [&str; 3] = ["gyre-client", "centrifuge-client", "tokio-centrifuge"];
const PROTOCOLS: [&str; 2] = ["json", "protobuf"];

type AnyResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> AnyResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.get(1).map(String::as_str) == Some("child") {
        return rt.block_on(child(&args[2..]));
    }
    let gyre = arg(&args, "--gyre").unwrap_or_else(|| "target/release/gyre".into());
    let count: u64 = arg(&args, "--count").map_or(Ok(200_000), |s| s.parse())?;
    let subs: u64 = arg(&args, "--subs").map_or(Ok(10_000), |s| s.parse())?;
    let only = arg(&args, "--only");
    rt.block_on(orchestrate(&gyre, count, subs, only.as_deref()))
}

// ----- the orchestrator ----------------------------------------------------------------------

struct Server {
    child: Child,
    port: u16,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(bin: &str) -> AnyResult<Server> {
    let dir = std::env::temp_dir().join(format!("gyre-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = serde_json::json!({
        "http_server": {"address": "127.0.0.1", "port": 0},
        "client": {"insecure": true, "channel_limit": 20000, "queue_max_size": 1u64 << 30},
        "http_api": {"key": API_KEY},
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
    Ok(Server {
        child,
        port,
        _dir: TempDir(dir),
    })
}

/// One HTTP API call (connection: close); returns the body.
async fn api(port: u16, method: &str, body: &str) -> AnyResult<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let req = format!(
        "POST /api/{method} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    if !text.starts_with("HTTP/1.1 200") {
        return Err(format!("API {method}: {}", text.lines().next().unwrap_or("")).into());
    }
    Ok(text)
}

/// Publishes `count` messages into `channel` with 4 concurrent batch publishers.
async fn publish_all(port: u16, channel: &str, count: u64) -> AnyResult<Duration> {
    const BATCH: u64 = 500;
    const WORKERS: u64 = 4;
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let (next, channel) = (next.clone(), channel.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let from = next.fetch_add(BATCH, Ordering::SeqCst);
                if from >= count {
                    return Ok::<(), String>(());
                }
                let to = (from + BATCH).min(count);
                let commands: Vec<serde_json::Value> = (from..to)
                    .map(|i| serde_json::json!({"publish": {"channel": channel, "data": {"i": i}}}))
                    .collect();
                let body = serde_json::json!({ "commands": commands }).to_string();
                api(port, "batch", &body).await.map_err(|e| e.to_string())?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

/// A TCP proxy to the server that, while `hold` is set, keeps what the server sends in memory
/// (counted in `buffered`) and writes it all out on `release`.
async fn hold_proxy(
    upstream: u16,
    hold: Arc<std::sync::atomic::AtomicBool>,
    buffered: Arc<AtomicU64>,
    release: Arc<tokio::sync::Notify>,
) -> AnyResult<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut cr, &mut sw).await;
            });
            let (hold, buffered, release) = (hold.clone(), buffered.clone(), release.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut held: Vec<u8> = Vec::new();
                loop {
                    let released = release.notified();
                    tokio::select! {
                        n = sr.read(&mut buf) => {
                            let n = match n { Ok(0) | Err(_) => return, Ok(n) => n };
                            if hold.load(Ordering::SeqCst) {
                                held.extend_from_slice(&buf[..n]);
                                buffered.fetch_add(n as u64, Ordering::SeqCst);
                            } else if cw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                        () = released => {
                            if cw.write_all(&held).await.is_err() {
                                return;
                            }
                            held = Vec::new();
                        }
                    }
                }
            });
        }
    });
    Ok(port)
}

struct ChildProc {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl ChildProc {
    fn spawn(args: &[String]) -> AnyResult<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("child")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        Ok(Self {
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The next line starting with `prefix` (blocking; runs on a blocking thread).
    fn expect(&mut self, prefix: &str) -> AnyResult<String> {
        for line in self.lines.by_ref() {
            let line = line?;
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.trim().to_owned());
            }
            eprintln!("  child: {line}");
        }
        Err(format!("child ended before printing {prefix:?}").into())
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn orchestrate(gyre: &str, count: u64, subs: u64, only: Option<&str>) -> AnyResult<()> {
    let server = start_server(gyre)?;
    let port = server.port;
    let url = format!("ws://127.0.0.1:{port}/connection/websocket");
    let hold = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let buffered = Arc::new(AtomicU64::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let proxy_port = hold_proxy(port, hold.clone(), buffered.clone(), release.clone()).await?;
    let proxy_url = format!("ws://127.0.0.1:{proxy_port}/connection/websocket");
    eprintln!("gyre serve on port {port}; {count} publications, {subs} subscriptions");
    let mut rows = Vec::new();
    for sdk in SDKS {
        if only.is_some_and(|o| o != sdk) {
            continue;
        }
        for protocol in PROTOCOLS {
            // (a) receive rate
            let channel = format!("rate-{sdk}-{protocol}");
            let args: Vec<String> = [
                "recv",
                sdk,
                protocol,
                &proxy_url,
                &channel,
                &count.to_string(),
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            let recv = tokio::task::spawn_blocking(move || -> AnyResult<(String, ChildProc)> {
                let mut c = ChildProc::spawn(&args)?;
                c.expect("ready")?;
                Ok((String::new(), c))
            })
            .await?;
            let rate = match recv {
                Ok((_, mut c)) => {
                    // Everything is published and queued at the proxy first, then released:
                    // the rate is the client's own, not the publisher's.
                    hold.store(true, Ordering::SeqCst);
                    let start = buffered.load(Ordering::SeqCst);
                    let publish = publish_all(port, &channel, count).await?;
                    let mut last = u64::MAX;
                    loop {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        let now = buffered.load(Ordering::SeqCst);
                        if now == last {
                            break;
                        }
                        last = now;
                    }
                    eprintln!("  {} bytes held at the proxy; releasing", last - start);
                    hold.store(false, Ordering::SeqCst);
                    release.notify_waiters();
                    let res = tokio::task::spawn_blocking(move || c.expect("result")).await?;
                    match res {
                        Ok(r) => format!("{r} (publisher done in {:.2}s)", publish.as_secs_f64()),
                        Err(e) => format!("failed: {e}"),
                    }
                }
                Err(e) => format!("failed: {e}"),
            };
            eprintln!("{sdk} {protocol} recv: {rate}");
            // (b) memory per subscription
            let args: Vec<String> = ["mem", sdk, protocol, &url, &subs.to_string()]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            let mem = tokio::task::spawn_blocking(move || -> AnyResult<String> {
                let mut c = ChildProc::spawn(&args)?;
                c.expect("result")
            })
            .await?
            .unwrap_or_else(|e| format!("failed: {e}"));
            eprintln!("{sdk} {protocol} mem: {mem}");
            rows.push((sdk, protocol, rate, mem));
        }
    }
    println!("| SDK | protocol | receive rate | memory per subscription |");
    println!("|---|---|---|---|");
    for (sdk, protocol, rate, mem) in rows {
        println!("| {sdk} | {protocol} | {rate} | {mem} |");
    }
    drop(server);
    Ok(())
}

// ----- the children --------------------------------------------------------------------------

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .map_or(0, |pages: u64| pages * 4096)
}

/// First/last receive instants and a count, shared with the SDK's callback.
#[derive(Default)]
struct Meter {
    count: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

impl Meter {
    fn hit(&self) {
        let now = Instant::now();
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        if n == 0 {
            *self.first.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
        }
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn child(args: &[String]) -> AnyResult<()> {
    let [mode, sdk, protocol, url, rest @ ..] = args else {
        return Err("usage: child <recv|mem> <sdk> <protocol> <url> ...".into());
    };
    let json = protocol == "json";
    match mode.as_str() {
        "recv" => {
            let [channel, count] = rest else {
                return Err("recv needs <channel> <count>".into());
            };
            let count: u64 = count.parse()?;
            let meter = Arc::new(Meter::default());
            let _keep = subscribe_counting(sdk, json, url, channel, count, meter.clone()).await?;
            say("ready");
            let deadline = Instant::now() + Duration::from_secs(120);
            while meter.count.load(Ordering::Relaxed) < count && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let got = meter.count.load(Ordering::Relaxed);
            let first = meter.first.lock().unwrap_or_else(|e| e.into_inner()).take();
            let last = meter.last.lock().unwrap_or_else(|e| e.into_inner()).take();
            let secs = match (first, last) {
                (Some(f), Some(l)) => l.duration_since(f).as_secs_f64(),
                _ => 0.0,
            };
            let rate = if secs > 0.0 {
                (got.saturating_sub(1)) as f64 / secs
            } else {
                0.0
            };
            if got < count {
                say(&format!(
                    "result only {got} of {count} received in 120 s ({rate:.0}/s while receiving)"
                ));
            } else {
                say(&format!("result {rate:.0} publications/s ({secs:.2}s)"));
            }
        }
        "mem" => {
            let [subs] = rest else {
                return Err("mem needs <subs>".into());
            };
            let subs: u64 = subs.parse()?;
            let (rss0, rss1, took) = subscribe_many(sdk, json, url, subs).await?;
            let per = rss1.saturating_sub(rss0) as f64 / subs as f64;
            say(&format!(
                "result {per:.0} B/subscription (RSS {:.1} → {:.1} MiB; all subscribed in {:.2}s)",
                rss0 as f64 / 1048576.0,
                rss1 as f64 / 1048576.0,
                took.as_secs_f64()
            ));
        }
        other => return Err(format!("unknown mode {other}").into()),
    }
    Ok(())
}

/// Keeps a client of any SDK alive while it is held.
type Keep = Box<dyn std::any::Any + Send>;

async fn subscribe_counting(
    sdk: &str,
    json: bool,
    url: &str,
    channel: &str,
    count: u64,
    meter: Arc<Meter>,
) -> AnyResult<Keep> {
    let timeout = Some(Duration::from_secs(10));
    match sdk {
        "gyre-client" => {
            let client = gyre_client::ClientOptions::new(url)
                .protocol(if json {
                    gyre_client::Protocol::Json
                } else {
                    gyre_client::Protocol::Protobuf
                })
                // Room for every publication: a stream that falls behind drops events.
                .event_capacity(usize::try_from(count)? + 16)
                .build()?;
            let sub = client.new_subscription(channel, gyre_client::SubscriptionOptions::new())?;
            let mut events = sub.events();
            sub.subscribe();
            client.connect();
            sub.ready(timeout).await?;
            let task = tokio::spawn(async move {
                while let Some(e) = events.recv().await {
                    match e {
                        gyre_client::SubscriptionEvent::Publication(_) => meter.hit(),
                        gyre_client::SubscriptionEvent::Lagged { missed, .. } => {
                            eprintln!("lagged: {missed} publications dropped");
                        }
                        _ => {}
                    }
                }
            });
            Ok(Box::new((client, task)))
        }
        "centrifuge-client" => {
            let client = centrifuge::Client::builder(url)
                .protocol(if json {
                    centrifuge::Protocol::Json
                } else {
                    centrifuge::Protocol::Protobuf
                })
                .proxy(centrifuge::ProxyConfig::None)
                .build()?;
            let sub = client
                .new_subscription(channel)
                .on_publication(move |_, _| meter.hit())
                .build()?;
            sub.subscribe();
            client.connect()?;
            sub.ready(timeout).await?;
            Ok(Box::new(client))
        }
        "tokio-centrifuge" => {
            let (url, config) = tokio_centrifuge_config(url, json);
            let client = tokio_centrifuge::client::Client::new(&url, config);
            let sub = client.new_subscription(channel);
            sub.on_publication(move |_| meter.hit());
            let subscribed = sub.subscribe();
            tokio::time::timeout(Duration::from_secs(10), client.connect())
                .await?
                .map_err(|()| "tokio-centrifuge: connect failed")?;
            tokio::time::timeout(Duration::from_secs(10), subscribed)
                .await?
                .map_err(|()| "tokio-centrifuge: subscribe failed")?;
            Ok(Box::new(client))
        }
        other => Err(format!("unknown SDK {other}").into()),
    }
}

/// tokio-centrifuge selects Protobuf with `?format=protobuf` (it sends no subprotocol).
fn tokio_centrifuge_config(url: &str, json: bool) -> (String, tokio_centrifuge::config::Config) {
    let config = tokio_centrifuge::config::Config::new().with_read_timeout(Duration::from_secs(30));
    if json {
        (url.to_owned(), config.use_json())
    } else {
        (format!("{url}?format=protobuf"), config.use_protobuf())
    }
}

/// Connects, then creates and subscribes `n` subscriptions; returns RSS before, RSS after
/// and the time until all were subscribed.
async fn subscribe_many(
    sdk: &str,
    json: bool,
    url: &str,
    n: u64,
) -> AnyResult<(u64, u64, Duration)> {
    let wait = Some(Duration::from_secs(60));
    let settle = Duration::from_millis(500);
    match sdk {
        "gyre-client" => {
            let client = gyre_client::ClientOptions::new(url)
                .protocol(if json {
                    gyre_client::Protocol::Json
                } else {
                    gyre_client::Protocol::Protobuf
                })
                .timeout(Duration::from_secs(60))
                .build()?;
            client.connect();
            client.ready(wait).await?;
            tokio::time::sleep(settle).await;
            let rss0 = rss_bytes();
            let started = Instant::now();
            let mut subs = Vec::new();
            for i in 0..n {
                let sub = client
                    .new_subscription(format!("m{i}"), gyre_client::SubscriptionOptions::new())?;
                sub.subscribe();
                subs.push(sub);
            }
            for s in &subs {
                s.ready(wait).await?;
            }
            let took = started.elapsed();
            tokio::time::sleep(settle).await;
            let rss1 = rss_bytes();
            drop(subs);
            client.close().await;
            Ok((rss0, rss1, took))
        }
        "centrifuge-client" => {
            let client = centrifuge::Client::builder(url)
                .protocol(if json {
                    centrifuge::Protocol::Json
                } else {
                    centrifuge::Protocol::Protobuf
                })
                .proxy(centrifuge::ProxyConfig::None)
                .timeout(Duration::from_secs(60))
                .build()?;
            client.connect()?;
            client.ready(wait).await?;
            tokio::time::sleep(settle).await;
            let rss0 = rss_bytes();
            let started = Instant::now();
            let mut subs = Vec::new();
            for i in 0..n {
                let sub = client.new_subscription(format!("m{i}")).build()?;
                sub.subscribe();
                subs.push(sub);
            }
            for s in &subs {
                s.ready(wait).await?;
            }
            let took = started.elapsed();
            tokio::time::sleep(settle).await;
            let rss1 = rss_bytes();
            drop(subs);
            client.close().await;
            Ok((rss0, rss1, took))
        }
        "tokio-centrifuge" => {
            let (url, config) = tokio_centrifuge_config(url, json);
            let client = tokio_centrifuge::client::Client::new(&url, config);
            tokio::time::timeout(Duration::from_secs(10), client.connect())
                .await?
                .map_err(|()| "tokio-centrifuge: connect failed")?;
            tokio::time::sleep(settle).await;
            let rss0 = rss_bytes();
            let started = Instant::now();
            let subs: Vec<_> = (0..n)
                .map(|i| client.new_subscription(&format!("m{i}")))
                .collect();
            let pending: Vec<_> = subs.iter().map(|s| s.subscribe().into_future()).collect();
            for p in pending {
                tokio::time::timeout(Duration::from_secs(60), p)
                    .await?
                    .map_err(|()| "tokio-centrifuge: subscribe failed")?;
            }
            let took = started.elapsed();
            tokio::time::sleep(settle).await;
            let rss1 = rss_bytes();
            drop(subs);
            client.disconnect().await;
            Ok((rss0, rss1, took))
        }
        other => Err(format!("unknown SDK {other}").into()),
    }
}
