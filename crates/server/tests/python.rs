//! Conformance: the real PyPI `centrifuge-python` SDK (0.7.0, installed into `.deps/python` by
//! `scripts/install-test-deps.sh`) against the real `gyre serve` binary.
//!
//! Each scenario is a standalone asyncio script in `conformance/python/`; it reads the endpoint,
//! API and protocol from the environment, asserts real outcomes and exits 0 only on success.
//! Every scenario runs once over JSON and once over protobuf, each against its own server.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Hard limit for one script run (each script has its own, shorter, internal timeout).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(45);

fn scenarios_dir() -> PathBuf {
    support::repo_root().join("conformance/python")
}

/// Channel options shared by every scenario; individual scenarios merge more over them.
fn base_config() -> Value {
    support::config(json!({
        "channel": {
            "without_namespace": {
                "presence": true,
                "join_leave": true,
                "force_push_join_leave": true,
                "history_size": 10,
                "history_ttl": "300s",
                "force_recovery": true,
                "allow_subscribe_for_client": true,
                "allow_publish_for_subscriber": true,
                "allow_presence_for_subscriber": true,
                "allow_history_for_client": true
            },
            "namespaces": [
                {
                    "name": "small",
                    "history_size": 2,
                    "history_ttl": "300s",
                    "force_recovery": true,
                    "allow_subscribe_for_client": true
                },
                {
                    "name": "delta",
                    "history_size": 10,
                    "history_ttl": "300s",
                    "force_recovery": true,
                    "allowed_delta_types": ["fossil"],
                    "delta_publish": true,
                    "allow_subscribe_for_client": true
                }
            ]
        }
    }))
}

fn user_token(user: &str) -> String {
    support::token(json!({"sub": user, "exp": support::now() + 3600}))
}

/// Runs `conformance/python/<script>` with `protocol` against a fresh server started with
/// `config`, passing the standard environment plus `env`; panics with the script's output unless
/// it exits 0.
fn run_script(script: &str, protocol: &str, config: &Value, env: &[(&str, String)]) {
    let gyre = support::Gyre::start(config);
    let mut cmd = Command::new("python3");
    cmd.arg("-u")
        .arg(scenarios_dir().join(script))
        .current_dir(scenarios_dir())
        .env("PYTHONPATH", support::python_deps())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("GYRE_WS_URL", gyre.ws_url())
        .env("GYRE_API_URL", gyre.api_base())
        .env("GYRE_API_KEY", support::API_KEY)
        .env("GYRE_PROTOCOL", protocol)
        .env("GYRE_TOKEN_U1", user_token("u1"))
        .env("GYRE_TOKEN_U2", user_token("u2"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        cmd.env(key, value);
    }
    let mut child = cmd.spawn().expect("spawn python3");
    let started = Instant::now();
    let (status, stdout, stderr) = support::wait_bounded(&mut child, SCRIPT_TIMEOUT);
    let elapsed = started.elapsed();
    let verdict = match status {
        Some(s) if s.success() => return,
        Some(s) => format!("exited with {s}"),
        None => format!("was killed after {SCRIPT_TIMEOUT:?}"),
    };
    panic!(
        "python scenario {script} [{protocol}] {verdict} after {elapsed:.1?}\n\
         ----- stdout -----\n{stdout}\n----- stderr -----\n{stderr}"
    );
}

/// One scenario, as a module with a `json` and a `protobuf` test.
macro_rules! scenario {
    ($name:ident, $script:literal) => {
        scenario!($name, $script, |_protocol| (base_config(), Vec::new()));
    };
    ($name:ident, $script:literal, $setup:expr) => {
        mod $name {
            use super::*;

            fn setup(protocol: &str) -> (Value, Vec<(&'static str, String)>) {
                #[allow(clippy::redundant_closure_call)]
                ($setup)(protocol)
            }

            #[test]
            fn json() {
                let (config, env) = setup("json");
                run_script($script, "json", &config, &env);
            }

            #[test]
            fn protobuf() {
                let (config, env) = setup("protobuf");
                run_script($script, "protobuf", &config, &env);
            }
        }
    };
}

scenario!(connect_disconnect, "connect.py");
scenario!(subscribe_publish_unsubscribe, "pubsub.py");
scenario!(api_publish, "api_publish.py");
scenario!(presence, "presence.py");
scenario!(join_leave, "join_leave.py");
scenario!(history, "history.py");
scenario!(recovery, "recovery.py");
scenario!(history_overflow_unrecovered, "history_overflow.py");
scenario!(fossil_delta, "delta.py");
scenario!(personal_channel, "personal.py", |_protocol: &str| {
    let mut config = base_config();
    config["client"]["subscribe_to_user_personal_channel"] = json!({"enabled": true});
    (config, Vec::new())
});
scenario!(bad_token, "bad_token.py", |_protocol: &str| {
    let claims = json!({"sub": "u1", "exp": support::now() + 3600});
    let bad = gyre_auth::sign_hs256("not-the-server-secret", &claims).expect("sign");
    (base_config(), vec![("GYRE_BAD_TOKEN", bad)])
});
scenario!(token_refresh, "refresh.py", |_protocol: &str| {
    let mut config = base_config();
    config["client"]["expired_close_delay"] = json!("1s");
    let now = support::now();
    let first = support::token(json!({"sub": "u1", "exp": now + 3}));
    let refreshed = [now + 6, now + 60]
        .iter()
        .map(|exp| support::token(json!({"sub": "u1", "exp": exp})))
        .collect::<Vec<_>>()
        .join(",");
    (
        config,
        vec![
            // Overrides the standard long-lived token of u1.
            ("GYRE_TOKEN_U1", first),
            ("GYRE_TOKEN_EXP", (now + 3).to_string()),
            ("GYRE_REFRESH_TOKENS", refreshed),
        ],
    )
});
scenario!(rpc_not_available, "rpc.py");
