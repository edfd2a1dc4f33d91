//! Test support: starts the real `gyre serve` binary on a free loopback port with a given
//! config, talks to its HTTP API, and locates the project-local client installs.
#![allow(dead_code)]

pub mod chaos_client;
pub mod fault_proxy;
pub mod http_stream;
pub mod js;
pub mod json_conn;
pub mod pg_nodes;
pub mod raw;
pub mod services;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// The HMAC secret used by test configs.
pub const SECRET: &str = "test-secret";
/// The API key used by test configs.
pub const API_KEY: &str = "test-api-key";

/// A running `gyre serve` process, killed on drop.
pub struct Gyre {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    config_path: PathBuf,
}

/// Repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// A config with the test secret, API key, the emulation transports on and a loopback address
/// on a free port; `extra` is merged over it (objects deep-merged).
pub fn config(extra: Value) -> Value {
    let mut base = json!({
        "http_server": { "address": "127.0.0.1", "port": 0 },
        "client": { "token": { "hmac_secret_key": SECRET } },
        "http_api": { "key": API_KEY },
        "http_stream": { "enabled": true },
        "sse": { "enabled": true },
    });
    merge(&mut base, extra);
    base
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

impl Gyre {
    /// Starts `gyre serve` with `config` (see [`config`]) and waits until it listens.
    ///
    /// With `GYRE_TEST_REDIS_URL` set (see `scripts/test.sh`), a config without an `engine`
    /// runs on the Redis engine at that URL, under a key prefix of its own, with the Redis map
    /// broker there too (unless it has a `map_broker`), so the same suites check both engines.
    pub fn start(config: &Value) -> Self {
        Self::start_with_env(config, &[])
    }

    /// [`Gyre::start`] with extra environment variables for the server process.
    pub fn start_with_env(config: &Value, env: &[(&str, &str)]) -> Self {
        let id = uuid_like();
        let dir = std::env::temp_dir().join(format!("gyre-test-{id}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config_path = dir.join("config.json");
        let mut config = config.clone();
        if let Ok(url) = std::env::var("GYRE_TEST_REDIS_URL")
            && !url.is_empty()
            && config.get("engine").is_none()
        {
            let redis = json!({ "address": [url], "prefix": format!("gyre-test-{id}-{}", now()) });
            config["engine"] = json!({ "type": "redis", "redis": redis.clone() });
            // Map state on the same Redis (the same section: one set of connections).
            if config.get("map_broker").is_none() {
                config["map_broker"] = json!({ "type": "redis", "redis": redis });
            }
        }
        std::fs::write(&config_path, config.to_string()).expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_gyre"))
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("GYRE_LOG_LEVEL", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn gyre");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let mut addr = None;
        for _ in 0..20 {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            if let Some(a) = line.trim().strip_prefix("listening on ") {
                let port = a.rsplit(':').next().expect("port");
                addr = Some(format!("127.0.0.1:{port}"));
                break;
            }
        }
        let addr = addr.expect("gyre did not report its address");
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        Self {
            child,
            addr,
            config_path,
        }
    }

    /// WebSocket endpoint URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/connection/websocket", self.addr)
    }

    /// Base URL of the server API (`http://addr/api`).
    pub fn api_base(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// Calls a server API method with the test key; returns (status, body as JSON or Null).
    pub fn api_raw(&self, method: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
        http_post(
            &self.addr,
            &format!("/api/{method}"),
            &body.to_string(),
            headers,
        )
    }

    /// Calls a server API method with the test key and returns its `result`, panicking on error.
    pub fn api(&self, method: &str, body: Value) -> Value {
        let (status, reply) = self.api_raw(method, &body, &[("X-API-Key", API_KEY)]);
        assert_eq!(status, 200, "api {method} status");
        assert!(reply.get("error").is_none(), "api {method} error: {reply}");
        reply["result"].clone()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident set size (`VmRSS` of `/proc/<pid>/status`) in KiB, if readable.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Kills the server with SIGKILL (no shutdown at all) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited in time.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Gyre {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = self.config_path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A minimal HTTP/1.1 POST over loopback; returns (status, JSON body or Null).
pub fn http_post(addr: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).expect("connect api");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).expect("write request");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// Mints an HS256 token with the test secret.
pub fn token(claims: Value) -> String {
    gyre_auth::sign_hs256(SECRET, &claims).expect("sign")
}

/// Current unix time.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

/// `conformance/js` (scenarios, with npm `centrifuge` and `ws` installed by `scripts/test.sh`).
pub fn node_deps() -> PathBuf {
    let dir = repo_root().join("conformance/js");
    assert!(
        dir.join("node_modules/centrifuge").exists(),
        "npm centrifuge is not installed in conformance/js: run scripts/install-test-deps.sh"
    );
    dir
}

/// `.deps/python` (PyPI `centrifuge-python`), installed by `scripts/test.sh`.
pub fn python_deps() -> PathBuf {
    let dir = repo_root().join(".deps/python");
    assert!(
        dir.join("centrifuge").exists(),
        "centrifuge-python is not installed in .deps/python: run scripts/install-test-deps.sh"
    );
    dir
}

/// `.deps/grpc` (PyPI `grpcio` and `grpcio-tools`), installed by `scripts/install-test-deps.sh`.
pub fn grpc_python_deps() -> PathBuf {
    let dir = repo_root().join(".deps/grpc");
    assert!(
        dir.join("grpc_tools").exists(),
        "grpcio-tools is not installed in .deps/grpc: run scripts/install-test-deps.sh"
    );
    dir
}

/// Waits for a child at most `limit` (killing it then); returns its status (None when
/// killed), stdout and stderr.
pub fn wait_bounded(
    child: &mut Child,
    limit: Duration,
) -> (Option<std::process::ExitStatus>, String, String) {
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut out);
            }
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status,
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    )
}

/// Runs the real npm `centrifuge` client across nodes `a` and `b`
/// (`conformance/js/cross_node.mjs`: delivery both ways, presence of both nodes, recovery when
/// moving between nodes) in `protocol` (`json` or `protobuf`), bounded at 40 s.
pub fn run_cross_node_js(a: &Gyre, b: &Gyre, protocol: &str) {
    run_cross_node_script(a, b, protocol, "cross_node.mjs", &[]);
}

/// [`run_cross_node_js`] with extra environment for the script (`GYRE_PRESENCE_SCOPE=node`
/// when presence is kept per node).
pub fn run_cross_node_js_env(a: &Gyre, b: &Gyre, protocol: &str, env: &[(&str, &str)]) {
    run_cross_node_script(a, b, protocol, "cross_node.mjs", env);
}

/// Runs the two-node centrifuge-js scenario `script` (in `conformance/js`, with the same
/// environment as [`run_cross_node_js`] plus `env`) in `protocol`, bounded at 40 s.
pub fn run_cross_node_script(
    a: &Gyre,
    b: &Gyre,
    protocol: &str,
    script: &str,
    env: &[(&str, &str)],
) {
    let exp = now() + 3600;
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(node_deps())
        .env("GYRE_WS_URL", a.ws_url())
        .env("GYRE_WS_URL_B", b.ws_url())
        .env("GYRE_API_URL", a.api_base())
        .env("GYRE_API_KEY", API_KEY)
        .env("GYRE_PROTOCOL", protocol)
        .envs(env.iter().copied())
        .env("GYRE_TOKEN_A", token(json!({ "sub": "ua", "exp": exp })))
        .env("GYRE_TOKEN_B", token(json!({ "sub": "ub", "exp": exp })))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let (status, stdout, stderr) = wait_bounded(&mut child, Duration::from_secs(40));
    assert!(
        status.is_some_and(|s| s.success()),
        "{script} ({protocol}) failed: {status:?}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}"
    );
}

/// A free loopback port (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port()
}

/// Publishes `{"n": 1}`, `{"n": 2}`, ... to `channel` through the API of the node at `addr`
/// every `pause`, on a thread, until stopped; failed publishes are expected (Redis away) and
/// not counted.
pub struct BackgroundPublisher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl BackgroundPublisher {
    /// Starts publishing.
    pub fn start(addr: &str, channel: &str, pause: Duration) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (addr, channel, stop) = (addr.to_owned(), channel.to_owned(), stop.clone());
            std::thread::spawn(move || {
                let mut ok = 0;
                let mut n = 1;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (_, reply) = http_post(
                        &addr,
                        "/api/publish",
                        &json!({ "channel": channel, "data": { "n": n } }).to_string(),
                        &[("X-API-Key", API_KEY)],
                    );
                    if reply.get("error").is_none() {
                        ok += 1;
                    }
                    n += 1;
                    std::thread::sleep(pause);
                }
                ok
            })
        };
        Self { stop, thread }
    }

    /// Stops publishing; how many publishes succeeded.
    pub fn stop(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("publisher")
    }
}

/// Starts a throwaway `redis-server` (nothing persisted) on `port` and waits until it accepts
/// connections (10 s at most).
pub fn spawn_redis(port: u16) -> Child {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server (run scripts/install-test-deps.sh)");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}
