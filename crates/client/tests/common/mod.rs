//! Test support: boots the real `gyre` server and talks to its HTTP API.
//!
//! The binary is `$GYRE_BIN` when set. Otherwise it is built once per test process with
//! `cargo build -p gyre-server --bin gyre --target-dir <dir>`, where `<dir>` is the target
//! directory of the running test executable (`<dir>/debug/deps/<test>`), so it follows
//! `CARGO_TARGET_DIR` and the workspace default alike.

#![allow(dead_code)]

pub mod proxies;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use gyre_client::{ClientEvent, EventStream, SubscriptionEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const API_KEY: &str = "k";
pub const SECRET: &str = "s";

pub fn gyre_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("GYRE_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("test executable path");
        // <target>/debug/deps/<test> → <target>
        let profile_dir = exe
            .parent()
            .and_then(|p| p.parent())
            .expect("target/debug")
            .to_path_buf();
        let target = profile_dir.parent().expect("target").to_path_buf();
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let status = cargo_command()
            .current_dir(&workspace)
            .args([
                "build",
                "-p",
                "gyre-server",
                "--bin",
                "gyre",
                "--target-dir",
            ])
            .arg(&target)
            .status()
            .expect("run cargo build for the gyre server");
        assert!(status.success(), "building the gyre server failed");
        profile_dir.join("gyre")
    })
    .clone()
}

/// A `cargo` command for builds from inside a test, without what cargo sets for test
/// processes (package variables, the library path): build scripts that watch the
/// environment would otherwise rebuild their crates here and again on the next `cargo test`.
pub fn cargo_command() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let set_by_cargo = (k.starts_with("CARGO_")
            && !matches!(k.as_str(), "CARGO_HOME" | "CARGO_TARGET_DIR"))
            || matches!(k.as_str(), "LD_LIBRARY_PATH" | "OUT_DIR");
        if set_by_cargo {
            build.env_remove(&k);
        }
    }
    build
}

/// The default test configuration: insecure clients, history and recovery everywhere.
pub fn insecure_config() -> serde_json::Value {
    serde_json::json!({
        "http_server": {"address": "127.0.0.1", "port": 0},
        "client": {"insecure": true, "token": {"hmac_secret_key": SECRET}},
        "http_api": {"key": API_KEY},
        "channel": {"without_namespace": {
            "presence": true, "history_size": 10, "history_ttl": "300s",
            "force_recovery": true, "allowed_delta_types": ["fossil"]
        }}
    })
}

/// A configuration that needs connection tokens.
pub fn token_config() -> serde_json::Value {
    serde_json::json!({
        "http_server": {"address": "127.0.0.1", "port": 0},
        "client": {"token": {"hmac_secret_key": SECRET}},
        "http_api": {"key": API_KEY},
        "channel": {"without_namespace": {"presence": true}}
    })
}

pub struct Server {
    child: Option<Child>,
    pub port: u16,
    config: serde_json::Value,
    dir: PathBuf,
}

impl Server {
    pub fn start(config: serde_json::Value) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "gyre-client-test-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut s = Self {
            child: None,
            port: 0,
            config,
            dir,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut cfg = self.config.clone();
        cfg["http_server"]["port"] = serde_json::json!(self.port);
        let path = self.dir.join("config.json");
        std::fs::write(&path, cfg.to_string()).expect("write config");
        let mut child = Command::new(gyre_bin())
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn gyre");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ")
                    && let Some(t) = tx.take()
                {
                    let port = addr.rsplit(':').next().and_then(|p| p.trim().parse().ok());
                    let _ = t.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(30))
            .ok()
            .flatten()
            .expect("server printed its port");
        self.port = port;
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/connection/websocket", self.port)
    }

    /// Kills the server process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..50 {
            if std::net::TcpListener::bind(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.spawn();
    }

    /// Calls the server HTTP API; returns the response body as JSON.
    pub async fn api(&self, method: &str, body: serde_json::Value) -> serde_json::Value {
        let body = body.to_string();
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to API");
        let req = format!(
            "POST /api/{method} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {API_KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes())
            .await
            .expect("write API request");
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).await.expect("read API response");
        let text = String::from_utf8_lossy(&resp);
        let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("API {method}: {e}: {body}"))
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n..];
        s = s.strip_prefix("\r\n").unwrap_or(s);
    }
    out
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// A HS256 token with these claims, signed with [`SECRET`].
pub fn sign(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign token")
}

/// A HS256 connection token for `user` expiring in `ttl_secs`.
pub fn connection_token(user: &str, ttl_secs: i64) -> String {
    sign(&serde_json::json!({"sub": user, "exp": now() + ttl_secs}))
}

/// Events that arrive within `quiet` of each other (stops at the first silence).
pub async fn drain<T>(events: &mut EventStream<T>, quiet: Duration) -> Vec<T> {
    let mut out = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(quiet, events.recv()).await {
        out.push(e);
    }
    out
}

const WAIT: Duration = Duration::from_secs(10);

/// Waits for an event matching `pred`, returning it; other events are skipped.
async fn wait_event<T: std::fmt::Debug>(
    events: &mut EventStream<T>,
    what: &str,
    pred: impl Fn(&T) -> bool,
) -> T {
    let fut = async {
        while let Some(e) = events.recv().await {
            eprintln!("event: {e:?}");
            if pred(&e) {
                return e;
            }
        }
        panic!("event stream ended while waiting for {what}");
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Waits for a client event matching `pred`, returning it; other events are skipped.
pub async fn wait_client(
    events: &mut EventStream<ClientEvent>,
    what: &str,
    pred: impl Fn(&ClientEvent) -> bool,
) -> ClientEvent {
    wait_event(events, what, pred).await
}

/// Waits for a subscription event matching `pred`.
pub async fn wait_sub(
    events: &mut EventStream<SubscriptionEvent>,
    what: &str,
    pred: impl Fn(&SubscriptionEvent) -> bool,
) -> SubscriptionEvent {
    wait_event(events, what, pred).await
}

/// State-change events only (drops errors, publications and the like).
pub fn is_state(e: &ClientEvent) -> bool {
    matches!(
        e,
        ClientEvent::Connecting { .. }
            | ClientEvent::Connected(_)
            | ClientEvent::Disconnected { .. }
            | ClientEvent::Closed
    )
}

/// Subscription state-change events only.
pub fn is_sub_state(e: &SubscriptionEvent) -> bool {
    matches!(
        e,
        SubscriptionEvent::Subscribing { .. }
            | SubscriptionEvent::Subscribed(_)
            | SubscriptionEvent::Unsubscribed { .. }
    )
}
