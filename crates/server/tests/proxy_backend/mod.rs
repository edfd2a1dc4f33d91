//! An application backend for proxy tests: an axum app on a free loopback port answering
//! Centrifugo proxy requests (`/connect`, `/refresh`, `/subscribe`, `/publish`, `/rpc`,
//! `/slow`) with results, errors, disconnects and unusable replies chosen by the request.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::support::{Gyre, config, now};

/// The backend's counters.
#[derive(Default)]
pub struct Backend {
    /// Refresh proxy calls so far.
    pub refreshes: AtomicUsize,
    /// Notified on each refresh call.
    pub refreshed: tokio::sync::Notify,
    /// Sub_refresh proxy calls so far.
    pub sub_refreshes: AtomicUsize,
    /// Notified on each sub_refresh call.
    pub sub_refreshed: tokio::sync::Notify,
}

fn result(v: Value) -> Response {
    Json(json!({ "result": v })).into_response()
}

async fn handle(
    State(backend): State<Arc<Backend>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    Json(req): Json<Value>,
) -> Response {
    let header_user = headers
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .or(req["data"]["user"].as_str())
        .unwrap_or("")
        .to_owned();
    match kind.as_str() {
        "connect" => match header_user.as_str() {
            "" => Json(json!({"error": {"code": 1001, "message": "who are you"}})).into_response(),
            "banned" => {
                Json(json!({"disconnect": {"code": 4501, "reason": "banned"}})).into_response()
            }
            "refresher" => result(json!({"user": "refresher", "expire_at": now() + 1})),
            user => result(json!({
                "user": user,
                "data": {"hello": user},
                "meta": {"team": "blue"},
                "info": {"name": user},
            })),
        },
        "refresh" => {
            backend.refreshes.fetch_add(1, Ordering::SeqCst);
            backend.refreshed.notify_waiters();
            result(json!({"expire_at": now() + 1, "info": {"refreshed": true}}))
        }
        "subscribe" => match req["channel"].as_str() {
            Some("sp:deny") => {
                Json(json!({"error": {"code": 1403, "message": "not in this room"}}))
                    .into_response()
            }
            Some(c) if c.starts_with("sr:") => result(json!({"expire_at": now() + 1})),
            _ => result(json!({"data": {"welcome": req["channel"]}, "info": {"seat": 7}})),
        },
        "sub_refresh" => {
            backend.sub_refreshes.fetch_add(1, Ordering::SeqCst);
            backend.sub_refreshed.notify_waiters();
            if req["channel"] == "sr:end" {
                return result(json!({"expired": true}));
            }
            result(json!({"expire_at": now() + 1}))
        }
        "publish" => result(json!({"data": {"rewritten": req["data"]}})),
        "slow" => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        "rpc" => match req["method"].as_str().unwrap_or("") {
            "echo" => result(json!({"data": {
                "user": req["user"], "meta": req["meta"], "data": req["data"],
                "encoding": req["encoding"], "protocol": req["protocol"],
                "transport": req["transport"], "client_set": req["client"].is_string(),
                "header": header_user, "static": headers.get("x-static").and_then(|v| v.to_str().ok()),
            }})),
            "fail" => Json(json!({"error": {"code": 1000, "message": "custom"}})).into_response(),
            "bye" => Json(json!({"disconnect": {"code": 4001, "reason": "bye"}})).into_response(),
            "bye_terminal" => {
                Json(json!({"disconnect": {"code": 4502, "reason": "bye"}})).into_response()
            }
            "garbage" => "not json".into_response(),
            "nothing" => Json(json!({})).into_response(),
            "b64bad" => result(json!({"b64data": "!!!"})),
            "status" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            "slow" => {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                result(json!({}))
            }
            _ => {
                Json(json!({"error": {"code": 104, "message": "method not found"}})).into_response()
            }
        },
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Starts the backend on a free loopback port; its base URL.
pub async fn backend() -> (String, Arc<Backend>) {
    let state = Arc::new(Backend::default());
    let app = axum::Router::new()
        .route("/{kind}", axum::routing::post(handle))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), state)
}

/// A node whose proxies all point at the backend at `base`.
pub fn gyre(base: &str) -> Gyre {
    let endpoint = |kind: &str| format!("{base}/{kind}");
    Gyre::start(&config(json!({
        "client": {
            "proxy": {
                "connect": {"enabled": true, "endpoint": endpoint("connect"), "http_headers": ["X-User"]},
                "refresh": {"enabled": true, "endpoint": endpoint("refresh")},
            },
        },
        "channel": {
            "without_namespace": {"allow_subscribe_for_client": true},
            "proxy": {
                "subscribe": {"endpoint": endpoint("subscribe")},
                "publish": {"endpoint": endpoint("publish")},
                "sub_refresh": {"endpoint": endpoint("sub_refresh")},
            },
            "namespaces": [
                {"name": "sp", "subscribe_proxy_enabled": true, "publish_proxy_enabled": true},
                {"name": "sr", "subscribe_proxy_enabled": true, "sub_refresh_proxy_enabled": true},
            ],
        },
        "proxies": [{"name": "stuck", "endpoint": endpoint("slow"), "timeout": "60s"}],
        "rpc": {
            "ping": {"enabled": true},
            "proxy": {
                "endpoint": endpoint("rpc"), "timeout": "1s", "include_connection_meta": true,
                "http_headers": ["x-user"], "http": {"static_headers": {"X-Static": "s1"}},
            },
            "without_namespace": {"proxy_enabled": true},
            "namespaces": [{"name": "stuck", "proxy_enabled": true, "proxy_name": "stuck"}],
        },
    })))
}

/// Runs one real-SDK proxy scenario: starts the backend and a `gyre serve` that uses it, runs
/// `sdk` (a configured command: program, script, working directory) with the server's addresses
/// and `protocol` in its environment, and checks that it succeeded within `bound` and that the
/// refresh proxy was called.
pub fn sdk_scenario(mut sdk: std::process::Command, protocol: &str, bound: std::time::Duration) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (base, backend) = runtime.block_on(self::backend());
    let gyre = self::gyre(&base);
    let mut child = sdk
        .env("GYRE_WS_URL", gyre.ws_url())
        .env("GYRE_API_URL", gyre.api_base())
        .env("GYRE_API_KEY", super::support::API_KEY)
        .env("GYRE_PROTOCOL", protocol)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the SDK scenario");
    let (status, stdout, stderr) = super::support::wait_bounded(&mut child, bound);
    let outputs = format!("--- stdout ---\n{stdout}--- stderr ---\n{stderr}");
    assert!(
        status.is_some_and(|s| s.success()),
        "{sdk:?} ({protocol}) failed: {status:?}\n{outputs}"
    );
    let refreshes = backend.refreshes.load(Ordering::SeqCst);
    assert!(
        refreshes >= 1,
        "the refresh proxy was called ({refreshes} times)\n{outputs}"
    );
}
