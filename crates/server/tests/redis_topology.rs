//! The Redis engine over TLS, through Sentinel and on a Redis Cluster: each test starts its
//! own `redis-server` processes on free loopback ports, runs two `gyre serve` nodes on them
//! and checks cross-node delivery, history/recovery and presence with raw protocol clients
//! and the real npm `centrifuge` client.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::json_conn::{Conn, client, next_pub, subscribe, wait_for};
use support::{Gyre, config};

/// A scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "gyre-{tag}-{}-{}",
            std::process::id(),
            support::now()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `redis-server` process, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Starts `redis-server` with `args` (which must make it listen on `port`) and waits until
    /// the port accepts connections.
    fn start(port: u16, args: &[String]) -> Self {
        let child = Command::new("redis-server")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server (run scripts/install-test-deps.sh)");
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// A plain server on a free port with extra `args`, its files in `dir`.
    fn plain(dir: &TempDir, extra: &[&str]) -> Self {
        let port = support::free_port();
        let mut args: Vec<String> = [
            "--dir",
            &path(&dir.0),
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start(port, &args)
    }

    /// `redis-cli -p <port> args...` (plain connections only); stdout.
    fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `check` holds, or panics with `what` after `limit`.
fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The gyre config for a node with the given `engine.redis` section.
fn node_config(redis: Value) -> Value {
    config(json!({
        "engine": { "type": "redis", "redis": redis },
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
        },
    }))
}

fn node(redis: Value) -> Gyre {
    Gyre::start(&node_config(redis))
}

/// Starts `gyre serve` with `config` written to `file` in `dir`.
fn spawn_serve(config: &Value, dir: &TempDir, file: &str, stdout: Stdio, stderr: Stdio) -> Child {
    let path = dir.write(file, &config.to_string());
    Command::new(env!("CARGO_BIN_EXE_gyre"))
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn gyre")
}

/// Runs `gyre serve` with `config`, expecting it to exit with an error within 20 s; its stderr.
fn failing_start(config: &Value, dir: &TempDir) -> String {
    let mut child = spawn_serve(config, dir, "failing.json", Stdio::null(), Stdio::piped());
    let (status, _, stderr) = support::wait_bounded(&mut child, Duration::from_secs(20));
    let status = status.expect("gyre kept running with a bad Redis setup");
    assert!(!status.success(), "gyre exited successfully");
    stderr
}

/// Runs `gyre serve` with `config`, which must keep running (it starts without Redis) and log
/// (on stdout) a line containing `needle` within 20 s; that line.
fn logged_at_start(config: &Value, dir: &TempDir, needle: &str) -> String {
    use std::io::BufRead as _;
    let mut child = spawn_serve(config, dir, "degraded.json", Stdio::piped(), Stdio::null());
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => break Some(line),
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    let still_running = child.try_wait().expect("wait gyre").is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(still_running, "gyre exited: {seen:?}");
    found.unwrap_or_else(|| panic!("no log line with {needle:?}: {seen:?}"))
}

/// Publishes on `a` (API) and expects the client on `b` to receive it in `channel`, with
/// `offset`.
async fn cross(a: &Gyre, on_b: &mut Conn, channel: &str, offset: u64) {
    let r = a.api(
        "publish",
        json!({ "channel": channel, "data": { "o": offset } }),
    );
    assert_eq!(r["offset"], offset, "{r}");
    let p = next_pub(on_b, channel).await;
    assert_eq!(
        (p["data"]["o"].as_u64(), p["offset"].as_u64()),
        (Some(offset), Some(offset))
    );
}

// ---------------------------------------------------------------------------------------
// TLS

/// A CA, a server certificate for `redis.test` and a client certificate, as PEM files.
struct Pki {
    ca: String,
    ca_path: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    client_key_pem: String,
}

fn pki(dir: &TempDir) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "gyre test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
        .expect("ca cert");
    let server_key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["redis.test".to_owned()])
        .expect("server params")
        .signed_by(&server_key, &ca)
        .expect("server cert");
    let client_key = KeyPair::generate().expect("client key");
    let client = CertificateParams::new(vec!["gyre-client".to_owned()])
        .expect("client params")
        .signed_by(&client_key, &ca)
        .expect("client cert");
    Pki {
        ca: ca.pem(),
        ca_path: dir.write("ca.pem", &ca.pem()),
        server_cert: dir.write("server.pem", &server.pem()),
        server_key: dir.write("server.key", &server_key.serialize_pem()),
        client_cert: dir.write("client.pem", &client.pem()),
        client_key: dir.write("client.key", &client_key.serialize_pem()),
        client_key_pem: client_key.serialize_pem(),
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_nodes_with_client_certificates_and_auth() {
    let dir = TempDir::new("redis-tls");
    let pki = pki(&dir);
    let port = support::free_port();
    let args: Vec<String> = [
        "--port",
        "0",
        "--tls-port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--tls-cert-file",
        &path(&pki.server_cert),
        "--tls-key-file",
        &path(&pki.server_key),
        "--tls-ca-cert-file",
        &path(&pki.ca_path),
        "--tls-auth-clients",
        "yes",
        "--requirepass",
        "s3cret",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let server = Server::start(port, &args);

    // Node A: a rediss:// URL with the password and db, CA and client certificate as files.
    let a = node(json!({
        "address": format!("rediss://:s3cret@127.0.0.1:{}/2", server.port),
        "tls": {
            "server_ca_pem": path(&pki.ca_path),
            "cert_pem": path(&pki.client_cert),
            "key_pem": path(&pki.client_key),
            "server_name": "redis.test",
        },
    }));
    // Node B: host:port with tls.enabled, password and db keys, raw / file / base64 PEM.
    let b = node(json!({
        "address": format!("127.0.0.1:{}", server.port),
        "password": "s3cret",
        "db": 2,
        "tls": {
            "enabled": true,
            "server_ca_pem": pki.ca,
            "cert_pem_file": path(&pki.client_cert),
            "key_pem_b64": base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                &pki.client_key_pem,
            ),
            "server_name": "redis.test",
        },
    }));

    let mut on_b = client(&b, "bob").await;
    subscribe(&mut on_b, 2, json!({ "channel": "secure" })).await;
    for offset in 1..=3 {
        cross(&a, &mut on_b, "secure", offset).await;
    }
    let h = b.api("history", json!({ "channel": "secure", "limit": -1 }));
    assert_eq!(h["publications"].as_array().map(Vec::len), Some(3), "{h}");
    // The stream is in db 2 (the URL's on A, the `db` key on B).
    let keys = Command::new("redis-cli")
        .args(["--tls", "--cacert", &path(&pki.ca_path)])
        .args([
            "--cert",
            &path(&pki.client_cert),
            "--key",
            &path(&pki.client_key),
        ])
        .args([
            "--sni",
            "redis.test",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args([
            "-a",
            "s3cret",
            "--no-auth-warning",
            "-n",
            "2",
            "--scan",
            "--pattern",
            "*.stream.*",
        ])
        .output()
        .expect("redis-cli");
    let keys = String::from_utf8_lossy(&keys.stdout).into_owned();
    assert!(
        keys.contains("centrifugo.stream.secure"),
        "keys in db 2: {keys:?}"
    );

    support::run_cross_node_js(&a, &b, "json");

    // insecure_skip_verify connects whatever the certificate's name.
    let c = node(json!({
        "address": format!("rediss://127.0.0.1:{}", server.port),
        "password": "s3cret",
        "db": 2,
        "tls": {
            "insecure_skip_verify": true,
            "cert_pem": path(&pki.client_cert),
            "key_pem": path(&pki.client_key),
        },
    }));
    cross(&c, &mut on_b, "secure", 4).await;

    // The certificate is checked: without server_name, 127.0.0.1 is not its name. The node
    // still starts (Redis may come later) and says why Redis is unreachable.
    let line = logged_at_start(
        &node_config(json!({
            "address": format!("rediss://:s3cret@127.0.0.1:{}", server.port),
            "tls": {
                "server_ca_pem": path(&pki.ca_path),
                "cert_pem": path(&pki.client_cert),
                "key_pem": path(&pki.client_key),
            },
        })),
        &dir,
        "unreachable",
    );
    assert!(line.contains("certificate"), "{line}");
    // A CA that is not PEM is named by its key.
    let err = failing_start(
        &node_config(json!({
            "address": format!("127.0.0.1:{}", server.port),
            "tls": { "enabled": true, "server_ca_pem": "/nonexistent/ca.pem" },
        })),
        &dir,
    );
    assert!(err.contains("engine.redis.tls.server_ca_pem"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Sentinel

/// A master, a replica and a Sentinel watching them as `mymaster`.
struct SentinelSetup {
    master: Server,
    replica: Server,
    sentinel: Server,
    _dir: TempDir,
}

fn sentinel_setup() -> SentinelSetup {
    let dir = TempDir::new("redis-sentinel");
    let master = Server::plain(&dir, &[]);
    let master_port = master.port.to_string();
    let replica = Server::plain(&dir, &["--replicaof", "127.0.0.1", &master_port]);
    eventually(Duration::from_secs(15), "replica in sync", || {
        replica
            .cli(&["info", "replication"])
            .contains("master_link_status:up")
    });
    let port = support::free_port();
    let conf = dir.write(
        "sentinel.conf",
        &format!(
            "port {port}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor mymaster 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds mymaster 2000\n\
             sentinel failover-timeout mymaster 10000\n",
            dir.0.display()
        ),
    );
    let sentinel = Server::start(port, &[path(&conf), "--sentinel".to_owned()]);
    eventually(Duration::from_secs(15), "sentinel sees the replica", || {
        sentinel
            .cli(&["sentinel", "replicas", "mymaster"])
            .contains(&replica.port.to_string())
    });
    SentinelSetup {
        master,
        replica,
        sentinel,
        _dir: dir,
    }
}

fn sentinel_node(s: &SentinelSetup) -> Gyre {
    node(json!({
        "sentinel_address": [format!("127.0.0.1:{}", s.sentinel.port)],
        "sentinel_master_name": "mymaster",
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_nodes_deliver_and_follow_a_failover() {
    let s = sentinel_setup();
    let a = sentinel_node(&s);
    let b = sentinel_node(&s);
    let mut on_b = client(&b, "bob").await;
    let sub = subscribe(
        &mut on_b,
        2,
        json!({ "channel": "news", "recoverable": true }),
    )
    .await;
    let epoch = sub["epoch"].as_str().expect("epoch").to_owned();
    cross(&a, &mut on_b, "news", 1).await;
    // Writes went to the master (the replica has them by replication, and refuses writes).
    assert!(
        s.master
            .cli(&["--scan", "--pattern", "*.stream.*"])
            .contains("centrifugo.stream.news")
    );
    support::run_cross_node_js(&a, &b, "json");

    // Failover while node A publishes all along (failures during the switch are expected).
    let publisher = support::BackgroundPublisher::start(&a.addr, "news", Duration::from_millis(10));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replica_port = s.replica.port.to_string();
    eventually(
        Duration::from_secs(15),
        "SENTINEL FAILOVER accepted",
        || {
            s.sentinel
                .cli(&["sentinel", "failover", "mymaster"])
                .starts_with("OK")
        },
    );
    eventually(Duration::from_secs(20), "the replica promoted", || {
        s.sentinel
            .cli(&["sentinel", "get-master-addr-by-name", "mymaster"])
            .contains(&replica_port)
            && s.replica.cli(&["role"]).starts_with("master")
    });

    // Until told to resubscribe, B's client sees a gapless sequence; then it is told its
    // state is insufficient (its Pub/Sub connection moved to the new master).
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
    assert!(
        offsets.windows(2).all(|w| w[1] == w[0] + 1),
        "no silent gap before the resubscribe: {offsets:?}"
    );
    // Resubscribing with its position: recovered from the new master (gapless) or told it
    // was not, never silently.
    let last = *offsets.last().expect("offsets");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut id = 3;
    let sub = loop {
        let cmd = json!({ "id": id, "subscribe": { "channel": "news", "recoverable": true, "recover": true, "offset": last, "epoch": epoch } });
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
    let mut at = sub["offset"].as_u64().unwrap_or(0);
    if sub["recovered"] == true {
        let recovered: Vec<u64> = sub["publications"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["offset"].as_u64()).collect())
            .unwrap_or_default();
        let expected: Vec<u64> = (last + 1..=last + recovered.len() as u64).collect();
        assert_eq!(recovered, expected, "recovered gaplessly: {sub}");
        at = last + recovered.len() as u64;
    }
    // Live again through the new master, gapless, while traffic goes on.
    for next in at + 1..=at + 5 {
        let p = next_pub(&mut on_b, "news").await;
        assert_eq!(
            p["offset"], next,
            "gapless after the resubscribe: {p} {sub}"
        );
    }
    assert!(publisher.stop() > 5);
    // The new master holds the stream.
    assert!(
        s.replica
            .cli(&["--scan", "--pattern", "*.stream.*"])
            .contains("centrifugo.stream.news")
    );
}

// ---------------------------------------------------------------------------------------
// Cluster

/// Three cluster-enabled `redis-server`s joined into one cluster (no replicas).
struct Cluster {
    nodes: Vec<Server>,
    _dir: TempDir,
}

fn cluster() -> Cluster {
    let dir = TempDir::new("redis-cluster");
    let nodes: Vec<Server> = (0..3)
        .map(|i| {
            let conf = dir.0.join(format!("nodes-{i}.conf"));
            // The bus port would default to port + 10000, which may be taken or out of range.
            let bus = support::free_port().to_string();
            Server::plain(
                &dir,
                &[
                    "--cluster-port",
                    &bus,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &path(&conf),
                    "--cluster-node-timeout",
                    "2000",
                ],
            )
        })
        .collect();
    let mut args: Vec<String> = vec!["--cluster".to_owned(), "create".to_owned()];
    args.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
    args.extend(["--cluster-replicas", "0", "--cluster-yes"].map(String::from));
    let out = Command::new("redis-cli")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli --cluster create");
    assert!(
        out.status.success(),
        "cluster create failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for n in &nodes {
        eventually(Duration::from_secs(20), "cluster_state:ok", || {
            n.cli(&["cluster", "info"]).contains("cluster_state:ok")
        });
    }
    Cluster { nodes, _dir: dir }
}

fn cluster_node(c: &Cluster) -> Gyre {
    let seeds: Vec<String> = c
        .nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    node(json!({ "cluster_address": seeds }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_nodes_deliver_recover_and_share_presence() {
    let c = cluster();
    let a = cluster_node(&c);
    let b = cluster_node(&c);
    // Two channels on each node's slot range (`--cluster create` gives node i the i-th third).
    let mut per_node = [0; 3];
    let mut channels = Vec::new();
    for i in 0..200 {
        let channel = format!("slot{i}");
        let slot: u32 = c.nodes[0]
            .cli(&["cluster", "keyslot", &format!("{{{channel}}}")])
            .trim()
            .parse()
            .expect("keyslot");
        let owner = match slot {
            0..=5460 => 0,
            5461..=10922 => 1,
            _ => 2,
        };
        if per_node[owner] < 2 {
            per_node[owner] += 1;
            channels.push(channel);
        }
        if channels.len() == 6 {
            break;
        }
    }
    assert_eq!(channels.len(), 6, "{per_node:?}");
    let mut on_b = client(&b, "bob").await;
    let mut epochs = Vec::new();
    for (i, channel) in channels.iter().enumerate() {
        let sub = subscribe(
            &mut on_b,
            10 + i as u64,
            json!({ "channel": channel, "recoverable": true }),
        )
        .await;
        epochs.push(sub["epoch"].as_str().expect("epoch").to_owned());
    }
    for channel in &channels {
        cross(&a, &mut on_b, channel, 1).await;
    }
    // Every cluster node holds some of the streams, each with its meta in the same slot.
    for n in &c.nodes {
        let keys = n.cli(&["--scan", "--pattern", "centrifugo.stream.*"]);
        assert!(
            !keys.trim().is_empty(),
            "no stream on the node at {}",
            n.port
        );
        for key in keys.lines() {
            let channel = key.trim_start_matches("centrifugo.stream.");
            assert!(channel.starts_with('{') && channel.ends_with('}'), "{key}");
            let meta = format!("centrifugo.meta.{channel}");
            assert_eq!(
                n.cli(&["exists", &meta]).trim(),
                "1",
                "{meta} next to {key}"
            );
        }
    }

    // Recovery on A of what B's client missed, for every channel.
    drop(on_b);
    for channel in &channels {
        b.api("publish", json!({ "channel": channel, "data": { "o": 2 } }));
        a.api("publish", json!({ "channel": channel, "data": { "o": 3 } }));
    }
    let mut on_a = client(&a, "bob").await;
    for (i, channel) in channels.iter().enumerate() {
        let sub = subscribe(
            &mut on_a,
            10 + i as u64,
            json!({ "channel": channel, "recoverable": true, "recover": true, "offset": 1, "epoch": epochs[i] }),
        )
        .await;
        assert_eq!(sub["recovered"], true, "{sub}");
        let offsets: Vec<u64> = sub["publications"]
            .as_array()
            .expect("publications")
            .iter()
            .filter_map(|p| p["offset"].as_u64())
            .collect();
        assert_eq!(offsets, vec![2, 3], "{channel}: {sub}");
    }

    // Presence spans both nodes.
    let mut on_b = client(&b, "carol").await;
    for (i, channel) in channels.iter().enumerate() {
        subscribe(&mut on_b, 10 + i as u64, json!({ "channel": channel })).await;
    }
    for channel in &channels {
        for node in [&a, &b] {
            let stats = node.api("presence_stats", json!({ "channel": channel }));
            assert_eq!(
                stats,
                json!({ "num_clients": 2, "num_users": 2 }),
                "{channel}"
            );
        }
    }
    // Control (info) works through the cluster too.
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.api("info", json!({}))["nodes"].as_array().map(Vec::len) != Some(2) {
        assert!(Instant::now() < deadline, "info never listed both nodes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    support::run_cross_node_js(&a, &b, "json");
    drop(on_a);
}
