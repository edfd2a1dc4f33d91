//! Every example runs against a `gyre serve` started here (the URL goes in `GYRE_URL`):
//! the test reads its output until the lines that show it worked, driving the server's HTTP
//! API where the example waits for something, then stops it. `cargo test` builds the
//! examples next to the test executables (`<target>/debug/examples`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use common::{Server, connection_token, gyre_bin, insecure_config, token_config};
use serde_json::json;

/// A running example whose stdout lines arrive on a channel.
struct Example {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example binaries, built once per test process from the current sources (a
/// filtered `cargo test --test examples` does not build them) into the target directory of
/// the running test executable.
fn example_path(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // <target>/debug/deps/<test> → <target>/debug
        let profile = exe
            .parent()
            .and_then(|p| p.parent())
            .expect("profile dir")
            .to_path_buf();
        let target = profile.parent().expect("target dir");
        let mut build = common::cargo_command();
        let status = build
            .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
            .args(["build", "-p", "gyre-client", "--examples", "--target-dir"])
            .arg(target)
            .status()
            .expect("run cargo build for the examples");
        assert!(status.success(), "building the examples failed");
        profile.join("examples")
    })
    .join(name)
}

fn run(name: &str, url: &str, args: &[&str]) -> Example {
    let mut child = Command::new(example_path(name))
        .args(args)
        .env("GYRE_URL", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("run example {name}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Example {
        child,
        lines,
        seen: Vec::new(),
    }
}

impl Example {
    /// Waits (at most 30 s) for a line containing `text`, or finds it among the lines
    /// already read (lines from concurrent events may come in either order); returns it.
    fn expect(&mut self, text: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {text:?}; output so far: {:#?}", self.seen),
            }
        }
    }

    /// Waits (at most 30 s) for the example to exit on its own; asserts success.
    fn exits_ok(mut self) {
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "exit {status}; output: {:#?}", self.seen);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("example did not exit; output: {:#?}", self.seen);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_run_against_gyre() {
    let server = Server::start(insecure_config());
    let url = server.url();

    let mut state = run("state_logging", &url, &[]);
    state.expect("connecting: 0 connect called");
    state.expect("connected with id");
    drop(state);

    run("rpc", &url, &[]).exits_ok_after("server error 108");

    let mut hp = run("history_presence", &url, &[]);
    hp.expect("epoch");
    hp.expect(r#"#1 {"text":"hello"}"#);
    hp.expect("stats:");
    hp.exits_ok();

    let mut sub = run("subscribe", &url, &["news"]);
    sub.expect("subscribed (was_recovering=false");
    server
        .api(
            "publish",
            json!({"channel": "news", "data": {"text": "hi"}}),
        )
        .await;
    sub.expect(r#"{"text":"hi"}"#);
    drop(sub);

    let mut ss = run("server_side", &url, &[]);
    let line = ss.expect("connected, client id ");
    let id = line.rsplit(' ').next().expect("client id").to_owned();
    server
        .api("subscribe", json!({"channel": "srv", "client": id}))
        .await;
    ss.expect("server-side subscribed: srv");
    server
        .api("publish", json!({"channel": "srv", "data": {"n": 1}}))
        .await;
    ss.expect(r#"srv: {"n":1}"#);
    drop(ss);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_example_runs_against_gyre() {
    let server = Server::start(token_config());
    let jwt = connection_token("example-user", 3600);
    let mut tokens = run("tokens", &server.url(), &[&jwt]);
    tokens.expect("connection token requested");
    tokens.expect("Connected(");
    tokens.expect("subscription token requested for Some(\"private\")");
}

#[test]
fn scale_example_runs_with_its_own_server() {
    let bin = gyre_bin();
    let bin = bin.to_str().expect("utf-8 path");
    let mut scale = run("scale", "", &["--gyre", bin, "--subs", "500"]);
    scale.expect("| Json | 500 |");
    scale.expect("| Protobuf | 500 |");
    scale.exits_ok();
}

impl Example {
    fn exits_ok_after(mut self, text: &str) {
        self.expect(text);
        self.exits_ok();
    }
}
