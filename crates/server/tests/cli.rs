//! The `gyre` command line: version, config checks, warnings and start-up failures, the
//! token and config tools, and the root command running the server.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn gyre() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gyre"))
}

fn write_temp(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gyre-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn version_prints_the_crate_version() {
    let out = gyre().arg("version").output().expect("run");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("gyre {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn checkconfig_reads_json_yaml_and_toml_and_names_unknown_keys() {
    let json = write_temp(
        "c.json",
        r#"{"client":{"insecure":true,"tokn":1},"channel":{"namespaces":[{"name":"ns","presense":true}]}}"#,
    );
    let yaml = write_temp(
        "c.yaml",
        "client:\n  insecure: true\nhttp_server:\n  port: 9001\n",
    );
    let toml = write_temp(
        "c.toml",
        "[client]\ninsecure = true\n[http_api]\nkey = \"k\"\n",
    );
    for path in [&json, &yaml, &toml] {
        let out = gyre()
            .arg("checkconfig")
            .arg("--config")
            .arg(path)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{path:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = gyre()
        .arg("checkconfig")
        .arg("--config")
        .arg(&json)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("client.tokn"), "{stderr}");
    assert!(
        stderr.contains("channel.namespaces[0].presense"),
        "{stderr}"
    );
}

#[test]
fn invalid_values_stop_the_server_with_the_key_and_reason() {
    let cases = [
        (r#"{"http_server":{"port":"eighty"}}"#, "http_server.port"),
        (
            r#"{"client":{"ping_interval":"soon"}}"#,
            "client.ping_interval",
        ),
        (
            r#"{"channel":{"namespaces":[{"name":"x y"}]}}"#,
            "channel.namespaces",
        ),
        (
            r#"{"channel":{"without_namespace":{"history_size":10}}}"#,
            "history_ttl",
        ),
    ];
    for (text, key) in cases {
        let path = write_temp("bad.json", text);
        let out = gyre()
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{text} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{text}: {stderr}");
    }
    let out = gyre()
        .arg("serve")
        .arg("--config")
        .arg("/nonexistent/gyre.json")
        .output()
        .expect("run");
    assert!(!out.status.success());
}

#[test]
fn environment_overrides_the_file() {
    let path = write_temp(
        "env.json",
        r#"{"client":{"token":{"hmac_secret_key":"from-file"}}}"#,
    );
    let out = gyre()
        .args(["gentoken", "-q", "-u", "alice", "-t", "-1", "--config"])
        .arg(&path)
        .env("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "from-env")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let verifier = gyre_auth::TokenVerifier::new(gyre_auth::VerifierOptions {
        hmac_secret_key: "from-env".into(),
        ..Default::default()
    })
    .expect("verifier");
    assert_eq!(
        verifier
            .verify_connect(&token, 0)
            .expect("signed with the env secret")
            .user,
        "alice"
    );
}

/// A fresh empty directory for one test.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gyre-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the root command (no `serve`) with `args` in `dir`; returns the child and its address.
fn start_root(dir: &std::path::Path, args: &[&str]) -> (std::process::Child, String) {
    let mut child = gyre()
        .args(args)
        .args(["-p", "0", "-a", "127.0.0.1"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gyre");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = lines
        .by_ref()
        .take(20)
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_owned))
        .expect("gyre reports its address");
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

fn terminate(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("gyre did not stop on SIGTERM");
}

/// Connects centrifuge-js with `token` and prints the user the server answered with.
fn js_connect(ws_url: &str, token: &str) -> std::process::Output {
    let script = r#"
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
const c = new Centrifuge(process.env.URL, { websocket: WebSocket, token: process.env.TOKEN });
const timer = setTimeout(() => { console.log('timeout'); process.exit(2); }, 10000);
c.on('connected', (ctx) => { console.log('connected ' + ctx.client.length); clearTimeout(timer); c.disconnect(); process.exit(0); });
c.on('disconnected', (ctx) => { console.log('disconnected ' + ctx.code); process.exit(3); });
c.connect();
"#;
    Command::new("node")
        .args(["--input-type=module", "-e", script])
        .current_dir(support::node_deps())
        .env("URL", ws_url)
        .env("TOKEN", token)
        .output()
        .expect("run node")
}

#[test]
fn genconfig_then_root_command_then_gentoken_connects_a_real_client_and_checktoken_agrees() {
    let dir = temp_dir("roundtrip");
    let out = gyre()
        .arg("genconfig")
        .current_dir(&dir)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).expect("written"))
            .expect("JSON");
    let secret = generated["client"]["token"]["hmac_secret_key"]
        .as_str()
        .expect("secret");
    assert!(secret.len() >= 32, "{generated}");
    assert!(
        generated["http_api"]["key"]
            .as_str()
            .is_some_and(|k| !k.is_empty())
    );
    let again = gyre()
        .arg("genconfig")
        .current_dir(&dir)
        .output()
        .expect("run");
    assert!(
        !again.status.success(),
        "an existing file is never overwritten"
    );

    // The root command reads ./config.json like Centrifugo does, with -p/-a flags on top.
    let (mut server, addr) = start_root(&dir, &[]);
    let token = stdout_of(
        &gyre()
            .args(["gentoken", "-q", "-u", "alice", "-t", "3600"])
            .current_dir(&dir)
            .output()
            .expect("gentoken"),
    );
    let loud = stdout_of(
        &gyre()
            .args(["gentoken", "-u", "alice"])
            .current_dir(&dir)
            .output()
            .expect("gentoken"),
    );
    assert!(
        loud.starts_with("HMAC SHA-256 JWT for user \"alice\" with expiration TTL 168h0m0s:\n"),
        "{loud}"
    );
    let connected = js_connect(&format!("ws://{addr}/connection/websocket"), &token);
    assert!(
        stdout_of(&connected).starts_with("connected 36"),
        "{}{}",
        stdout_of(&connected),
        String::from_utf8_lossy(&connected.stderr)
    );
    terminate(&mut server);

    let check = gyre()
        .args(["checktoken", &token])
        .current_dir(&dir)
        .output()
        .expect("checktoken");
    assert!(check.status.success());
    assert!(
        stdout_of(&check).starts_with("valid token for user alice\npayload: {"),
        "{}",
        stdout_of(&check)
    );
    let mut tampered = token.clone();
    tampered.push('x');
    let bad = gyre()
        .args(["checktoken", &tampered])
        .current_dir(&dir)
        .output()
        .expect("checktoken");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("has error"));

    let sub = stdout_of(
        &gyre()
            .args(["gensubtoken", "-q", "-u", "bob", "-s", "news"])
            .current_dir(&dir)
            .output()
            .expect("gensubtoken"),
    );
    let check = gyre()
        .args(["checksubtoken", &sub])
        .current_dir(&dir)
        .output()
        .expect("checksubtoken");
    assert!(
        stdout_of(&check)
            .starts_with("valid subscription token for user \"bob\" and channel \"news\""),
        "{}",
        stdout_of(&check)
    );
    let no_channel = gyre()
        .args(["gensubtoken", "-u", "bob"])
        .current_dir(&dir)
        .output()
        .expect("run");
    assert_eq!(no_channel.status.code(), Some(1));
    // A connection token is not a subscription token (no channel).
    let wrong = gyre()
        .args(["checksubtoken", &token])
        .current_dir(&dir)
        .output()
        .expect("run");
    assert_eq!(wrong.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn defaultconfig_writes_every_format_and_each_loads_back_without_warnings() {
    let dir = temp_dir("defaults");
    for name in ["full.json", "full.yaml", "full.toml"] {
        let out = gyre()
            .args(["defaultconfig", "-c", name])
            .current_dir(&dir)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let check = gyre()
            .args(["checkconfig", "-c", name])
            .current_dir(&dir)
            .output()
            .expect("run");
        assert!(check.status.success(), "{name}");
        assert_eq!(String::from_utf8_lossy(&check.stderr), "", "{name} warns");
        let again = gyre()
            .args(["defaultconfig", "-c", name])
            .current_dir(&dir)
            .output()
            .expect("run");
        assert!(!again.status.success(), "{name} overwritten");
    }
    let dry = gyre()
        .args(["defaultconfig", "-d", "-c", "x.yaml"])
        .current_dir(&dir)
        .output()
        .expect("run");
    assert!(stdout_of(&dry).contains("http_server:"));
    assert!(!dir.join("x.yaml").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn defaultenv_lists_every_variable_and_the_changed_ones_of_a_base() {
    let dir = temp_dir("env");
    let all = stdout_of(
        &gyre()
            .arg("defaultenv")
            .current_dir(&dir)
            .output()
            .expect("run"),
    );
    for line in [
        "CENTRIFUGO_HTTP_SERVER_PORT=8000",
        "CENTRIFUGO_CLIENT_PING_INTERVAL=\"25s\"",
        "CENTRIFUGO_LOG_LEVEL=\"info\"",
    ] {
        assert!(all.lines().any(|l| l == line), "missing {line}");
    }
    assert!(all.lines().count() > 150);
    let base = dir.join("base.json");
    std::fs::write(
        &base,
        r#"{"http_server":{"port":9001},"log":{"level":"debug"}}"#,
    )
    .expect("write");
    let changed = stdout_of(
        &gyre()
            .args(["defaultenv", "--base-non-zero-only", "-b"])
            .arg(&base)
            .output()
            .expect("run"),
    );
    assert_eq!(
        changed,
        "CENTRIFUGO_HTTP_SERVER_PORT=9001\nCENTRIFUGO_LOG_LEVEL=\"debug\"\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pid_file_and_log_file_live_as_long_as_the_server() {
    let dir = temp_dir("pid");
    let pid = dir.join("gyre.pid");
    let log = dir.join("gyre.log");
    let (mut server, _) = start_root(
        &dir,
        &[
            "--pid_file",
            pid.to_str().expect("utf-8"),
            "--log.file",
            log.to_str().expect("utf-8"),
            "--log.level",
            "info",
        ],
    );
    let written = std::fs::read_to_string(&pid).expect("pid file");
    assert_eq!(written.trim(), server.id().to_string());
    terminate(&mut server);
    assert!(!pid.exists(), "pid file removed at exit");
    let logged = std::fs::read_to_string(&log).expect("log file");
    assert!(logged.contains("serving"), "{logged}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn keys_gyre_does_not_act_on_are_warned_not_ignored() {
    let path = write_temp(
        "inactive.json",
        r#"{"http_server":{"tls_autocert":{"enabled":true}},"client":{"concurrency":8},"admin":{"enabled":true}}"#,
    );
    let out = gyre()
        .arg("checkconfig")
        .arg("-c")
        .arg(&path)
        .args(["--uni_grpc.enabled"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in [
        "http_server.tls_autocert",
        "client.concurrency",
        "admin.enabled",
        "uni_grpc",
    ] {
        assert!(stderr.contains(key), "{key} not warned: {stderr}");
    }
}
