//! Proxies with the real npm `centrifuge` SDK (`conformance/js/proxy.mjs`), in JSON and in
//! protobuf, against an axum backend started in the test: connect without a token, RPC, a
//! subscription refused, a publication rewritten, server-side refresh and a `disconnect` reply.

mod proxy_backend;
mod support;

use std::process::Command;
use std::time::Duration;

fn scenario(protocol: &str) {
    let mut node = Command::new("node");
    node.arg("proxy.mjs").current_dir(support::node_deps());
    proxy_backend::sdk_scenario(node, protocol, Duration::from_secs(40));
}

#[test]
fn json() {
    scenario("json");
}

#[test]
fn protobuf() {
    scenario("protobuf");
}
