//! Shared poll subscriptions with the real npm `centrifuge` SDK (`conformance/js/shared_poll.mjs`),
//! in JSON and in protobuf, against a poll backend (axum) started by the test: the script sets
//! the backend's items (`POST /set`) and reads what the node asked (`POST /stats`); gyre polls
//! it through a named `shared_poll_refresh` proxy (`POST /refresh`).

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{Value, json};

const POLL_SECRET: &str = "poll-secret";

/// What the backend has and what it was asked.
#[derive(Default)]
struct Backend {
    /// key → (data, version, removed).
    items: Mutex<HashMap<String, (Value, u64, bool)>>,
    /// channel → (requests, most items in one request, a request named a key twice).
    asked: Mutex<HashMap<String, (usize, usize, bool)>>,
}

async fn refresh(State(b): State<Arc<Backend>>, Json(req): Json<Value>) -> Response {
    let channel = req["channel"].as_str().unwrap_or("").to_owned();
    let keys: Vec<String> = req["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["key"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    {
        let mut asked = b.asked.lock();
        let entry = asked.entry(channel).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(keys.len());
        entry.2 |= keys.iter().collect::<HashSet<_>>().len() != keys.len();
    }
    // Unusable replies for the keys that ask for them.
    if keys.iter().any(|k| k == "bad-json") {
        return "not json".into_response();
    }
    if keys.iter().any(|k| k == "bad-shape") {
        return Json(json!({"result": {"items": "nope"}})).into_response();
    }
    if keys.iter().any(|k| k == "bad-status") {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let stored = b.items.lock();
    let items: Vec<Value> = keys
        .iter()
        .filter_map(|k| {
            let (data, version, removed) = stored.get(k)?;
            let mut item = json!({"key": k, "data": data});
            if *version > 0 {
                item["version"] = json!(version);
            }
            if *removed {
                item["removed"] = json!(true);
            }
            Some(item)
        })
        .collect();
    Json(json!({"result": {"items": items}})).into_response()
}

async fn set(State(b): State<Arc<Backend>>, Json(req): Json<Value>) -> Response {
    let key = req["key"].as_str().unwrap_or("").to_owned();
    let item = (
        req["data"].clone(),
        req["version"].as_u64().unwrap_or(0),
        req["removed"].as_bool().unwrap_or(false),
    );
    b.items.lock().insert(key, item);
    Json(json!({})).into_response()
}

/// Requests for one channel, or for all channels with `""`.
async fn stats(State(b): State<Arc<Backend>>, Json(req): Json<Value>) -> Response {
    let channel = req["channel"].as_str().unwrap_or("");
    let asked = b.asked.lock();
    let (requests, max_items, duplicates) = asked
        .iter()
        .filter(|(c, _)| channel.is_empty() || c.as_str() == channel)
        .fold((0, 0, false), |(r, m, d), (_, s)| {
            (r + s.0, m.max(s.1), d || s.2)
        });
    Json(json!({"requests": requests, "max_items": max_items, "duplicates": duplicates}))
        .into_response()
}

/// Starts the backend on a free loopback port; its base URL.
async fn start_backend() -> String {
    let app = axum::Router::new()
        .route("/refresh", axum::routing::post(refresh))
        .route("/set", axum::routing::post(set))
        .route("/stats", axum::routing::post(stats))
        .with_state(Arc::new(Backend::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn namespace(name: &str, mode: &str, batch: usize, max_keys: usize) -> Value {
    json!({
        "name": name,
        "subscription_type": "shared_poll",
        "allow_subscribe_for_client": true,
        "shared_poll": {
            "proxy_name": "poll", "mode": mode, "refresh_interval": "100ms",
            "refresh_batch_size": batch, "max_keys_per_connection": max_keys,
            "channel_shutdown_delay": "100ms", "publish_enabled": mode == "versioned",
        },
    })
}

fn scenario(protocol: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let base = runtime.block_on(start_backend());
    let mut expiring = namespace("pollx", "versioned", 100, 10);
    expiring["shared_poll"]["track_expired_extra_delay"] = json!("0s");
    let gyre = support::Gyre::start(&support::config(json!({
        "shared_poll": {"hmac_secret_key": POLL_SECRET},
        "proxies": [{"name": "poll", "endpoint": format!("{base}/refresh"), "timeout": "2s"}],
        "channel": {"namespaces": [
            namespace("poll", "versioned", 2, 3),
            namespace("pollb", "versioned", 1, 10),
            namespace("pollvl", "versionless", 100, 10),
            expiring,
        ]},
    })));
    let token = support::token(json!({"sub": "u1", "exp": support::now() + 3600}));
    let mut child = std::process::Command::new("node")
        .arg("shared_poll.mjs")
        .current_dir(support::node_deps())
        .env("GYRE_WS_URL", gyre.ws_url())
        .env("GYRE_API_URL", gyre.api_base())
        .env("GYRE_API_KEY", support::API_KEY)
        .env("GYRE_PROTOCOL", protocol)
        .env("GYRE_TOKEN", token)
        .env("GYRE_POLL_BACKEND", &base)
        .env("GYRE_POLL_SECRET", POLL_SECRET)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn node");
    let (status, stdout, stderr) = support::wait_bounded(&mut child, Duration::from_secs(40));
    assert!(
        status.is_some_and(|s| s.success()),
        "shared_poll.mjs ({protocol}) failed: {status:?}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}"
    );
}

#[test]
fn json() {
    scenario("json");
}

#[test]
fn protobuf() {
    scenario("protobuf");
}
