//! Proxies with the real PyPI `centrifuge-python` SDK (`conformance/python/proxy.py`), in JSON
//! and in protobuf, against an axum backend started in the test: connect without a token, RPC,
//! a subscription refused, a publication rewritten, server-side refresh and a `disconnect`
//! reply.

mod proxy_backend;
mod support;

use std::process::Command;
use std::time::Duration;

fn scenario(protocol: &str) {
    let dir = support::repo_root().join("conformance/python");
    let mut python = Command::new("python3");
    python
        .arg("-u")
        .arg(dir.join("proxy.py"))
        .current_dir(&dir)
        .env("PYTHONPATH", support::python_deps())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    proxy_backend::sdk_scenario(python, protocol, Duration::from_secs(45));
}

#[test]
fn json() {
    scenario("json");
}

#[test]
fn protobuf() {
    scenario("protobuf");
}
