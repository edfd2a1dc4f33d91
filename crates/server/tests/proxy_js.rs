//! Proxies with the real npm `centrifuge` SDK (`conformance/js/proxy.mjs`), in JSON and in
//! protobuf, against an axum backend started in the test: connect without a token, RPC, a
//! subscription refused, a publication rewritten, server-side refresh and a `disconnect` reply.

mod proxy_backend;
mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

fn scenario(protocol: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (base, backend) = runtime.block_on(proxy_backend::backend());
    let gyre = proxy_backend::gyre(&base);
    let mut child = Command::new("node")
        .arg("proxy.mjs")
        .current_dir(support::node_deps())
        .env("GYRE_WS_URL", gyre.ws_url())
        .env("GYRE_API_URL", gyre.api_base())
        .env("GYRE_API_KEY", support::API_KEY)
        .env("GYRE_PROTOCOL", protocol)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let (status, stdout, stderr) = support::wait_bounded(&mut child, Duration::from_secs(40));
    assert!(
        status.is_some_and(|s| s.success()),
        "proxy.mjs ({protocol}) failed: {status:?}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}"
    );
    assert!(
        backend.refreshes.load(Ordering::SeqCst) >= 1,
        "the refresh proxy was called"
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
