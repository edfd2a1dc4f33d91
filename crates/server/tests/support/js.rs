//! The node script runner shared by the centrifuge-js conformance tests (`tests/js.rs`,
//! `tests/js_tags.rs`): one `gyre serve`, one `node <script>` with the endpoints, the API key,
//! the protocol and extra variables in its environment, bounded in time.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Gyre;

/// Hard limit for one node script (each script also has its own, shorter, timeout).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(40);

/// Runs `script` against `gyre` with `protocol` (`json`, `protobuf`, or `<transport>/<protocol>`
/// for `http_stream` or `sse`) and extra environment; panics with the script's output unless
/// it exits 0. `on_action` handles `GYRE:<action>` lines.
pub fn run_script(
    gyre: &mut Gyre,
    script: &str,
    protocol: &str,
    env: &[(&str, String)],
    mut on_action: impl FnMut(&str, &mut Gyre),
) {
    // `transport/protocol` runs over another transport than WebSocket.
    let (transport, protocol) = protocol.split_once('/').unwrap_or(("websocket", protocol));
    let dir = super::node_deps();
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .current_dir(&dir)
        .env("GYRE_WS_URL", gyre.ws_url())
        .env("GYRE_API_URL", gyre.api_base())
        .env("GYRE_API_KEY", super::API_KEY)
        .env("GYRE_PROTOCOL", protocol)
        .env("GYRE_TRANSPORT", transport)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn node (is node installed?)");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let out_thread = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_thread = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let mut output = String::new();
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            let _ = child.kill();
            break;
        }
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => {
                output.push_str(&line);
                output.push('\n');
                if let Some(action) = line.trim().strip_prefix("GYRE:") {
                    on_action(action, gyre);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait().expect("wait node");
    let _ = out_thread.join();
    for line in rx.try_iter() {
        output.push_str(&line);
        output.push('\n');
    }
    let errors = err_thread.join().unwrap_or_default();
    assert!(
        !timed_out && status.success(),
        "scenario {script} ({protocol}) failed: {}\n--- stdout ---\n{output}--- stderr ---\n{errors}",
        if timed_out {
            format!("killed after {SCRIPT_TIMEOUT:?}")
        } else {
            format!("{status}")
        }
    );
}

/// Starts gyre with `extra` config and runs `script` with no server-side actions.
pub fn scenario(script: &str, protocol: &str, extra: Value, env: &[(&str, String)]) {
    let mut gyre = Gyre::start(&super::config(extra));
    run_script(&mut gyre, script, protocol, env, |action, _| {
        panic!("unexpected action request from {script}: {action}")
    });
}

/// A connection token for `user`, valid for an hour, with extra claims merged in.
pub fn user_token(user: &str, extra: Value) -> String {
    let mut claims = json!({ "sub": user, "exp": super::now() + 3600 });
    if let (Value::Object(c), Value::Object(e)) = (&mut claims, extra) {
        c.extend(e);
    }
    super::token(claims)
}

/// Defines a `json` and a `protobuf` test in a module named after each scenario function.
#[macro_export]
macro_rules! both_protocols {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn json() {
                    super::$name("json");
                }
                #[test]
                fn protobuf() {
                    super::$name("protobuf");
                }
            }
        )*
    };
}
