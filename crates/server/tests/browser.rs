//! Gyre in a real browser: headless Chromium (Debian's `/usr/bin/chromium`) driven through
//! playwright-core by `conformance/browser/driver.mjs`. The driver serves the test page and
//! centrifuge-js's browser bundle from a tiny static server of its own, so the page talks to
//! gyre cross-origin, through `client.allowed_origins` and gyre's CORS headers.
//!
//! - `sdk_transports_recover_after_restart`: centrifuge-js over WebSocket, then HTTP-streaming,
//!   then SSE: connect, subscribe, an API publication, then gyre restarts on the same port
//!   (Redis engine, a second node publishes while it is down) and the subscription recovers.
//! - `sdk_falls_back_without_websocket`: the SDK's transport list falls back to
//!   HTTP-streaming by itself, in a page without `WebSocket` and when the WebSocket endpoint
//!   fails (a path gyre does not serve).
//! - `uni_transports_without_sdk`: the browser's `EventSource` on `uni_sse` and `fetch`
//!   streaming on `uni_http_stream` receive the publications of a server-side subscription.

mod support;

use serde_json::{Value, json};
use support::Gyre;
use support::js::run_script;

/// The browser page's origin (the driver's static server on any loopback port) is allowed;
/// `insecure` lets the SDK pages connect without a token; `server` adds top-level sections.
fn browser_config(insecure: bool, server: Value) -> Value {
    let mut config = support::config(json!({
        "client": { "insecure": insecure, "allowed_origins": ["http://127.0.0.1:*"] },
        "channel": {
            "without_namespace": {
                "history_size": 10,
                "history_ttl": "300s",
                "force_recovery": true,
                "allow_subscribe_for_client": true,
            },
        },
        "uni_sse": { "enabled": true },
        "uni_http_stream": { "enabled": true },
    }));
    if let (Value::Object(c), Value::Object(e)) = (&mut config, server) {
        c.extend(e);
    }
    config
}

/// Runs the driver's `scenario` against `gyre`; `on_action` handles its `GYRE:` lines.
fn drive(
    gyre: &mut Gyre,
    scenario: &str,
    env: &[(&str, String)],
    on_action: impl FnMut(&str, &mut Gyre),
) {
    let mut env = env.to_vec();
    env.push(("GYRE_BROWSER_SCENARIO", scenario.to_owned()));
    let driver = support::repo_root().join("conformance/browser/driver.mjs");
    run_script(gyre, &driver.display().to_string(), "json", &env, on_action);
}

#[test]
fn sdk_transports_recover_after_restart() {
    let redis_port = support::free_port();
    let mut redis = support::spawn_redis(redis_port);
    let engine = json!({
        "type": "redis",
        "redis": { "address": [format!("127.0.0.1:{redis_port}")], "prefix": "gyre-browser" },
    });
    let port = support::free_port();
    let main_config = browser_config(
        true,
        json!({
            "engine": engine.clone(),
            "http_server": { "address": "127.0.0.1", "port": port },
        }),
    );
    // The second node publishes while the first is down.
    let other = Gyre::start(&browser_config(true, json!({ "engine": engine })));
    let mut gyre = Gyre::start(&main_config);
    let mut restarts = 0;
    drive(&mut gyre, "sdk", &[], |action, gyre| {
        let channel = action
            .strip_prefix("restart:")
            .unwrap_or_else(|| panic!("unexpected action {action}"));
        assert!(gyre.terminate(), "gyre did not stop");
        other.api("publish", json!({ "channel": channel, "data": { "n": 2 } }));
        *gyre = Gyre::start(&main_config);
        restarts += 1;
    });
    assert_eq!(restarts, 3, "one restart per transport");
    let _ = redis.kill();
    let _ = redis.wait();
}

#[test]
fn sdk_falls_back_without_websocket() {
    let mut gyre = Gyre::start(&browser_config(true, json!({})));
    drive(&mut gyre, "fallback", &[], |action, _| {
        panic!("unexpected action {action}")
    });
}

#[test]
fn uni_transports_without_sdk() {
    let mut gyre = Gyre::start(&browser_config(false, json!({})));
    let token = support::token(json!({
        "sub": "u1",
        "exp": support::now() + 3600,
        "channels": ["news"],
    }));
    drive(&mut gyre, "uni", &[("GYRE_TOKEN", token)], |action, _| {
        panic!("unexpected action {action}")
    });
}
