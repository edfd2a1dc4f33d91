//! Proxy configuration errors and warnings through the `gyre` command line: `checkconfig` and
//! `serve` fail naming the key; keys that are parsed but not implemented warn naming the key.

use std::process::Command;

fn write_temp(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gyre-proxy-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn gyre(command: &str, config: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gyre"))
        .arg(command)
        .arg("--config")
        .arg(config)
        .env("GYRE_LOG_LEVEL", "warn")
        .output()
        .expect("run gyre");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn bad_proxy_config_fails_naming_the_key() {
    let cases = [
        (
            r#"{"channel":{"namespaces":[{"name":"chat","subscribe_proxy_enabled":true,"subscribe_proxy_name":"nope"}]}}"#,
            "channel.namespaces[0].subscribe_proxy_name",
        ),
        (
            r#"{"client":{"proxy":{"connect":{"enabled":true,"endpoint":"127.0.0.1:3000/connect"}}}}"#,
            "client.proxy.connect.endpoint",
        ),
        (
            r#"{"proxies":[{"name":"p","endpoint":"backend/rpc"}]}"#,
            "proxies[0].endpoint",
        ),
        (
            r#"{"rpc":{"namespaces":[{"name":"admin","proxy_enabled":true,"proxy_name":"missing"}]}}"#,
            "rpc.namespaces[0].proxy_name",
        ),
    ];
    for (i, (config, key)) in cases.iter().enumerate() {
        let path = write_temp(&format!("bad{i}.json"), config);
        for command in ["checkconfig", "serve"] {
            let (ok, output) = gyre(command, &path);
            assert!(!ok, "{command} must fail for {config}");
            assert!(
                output.contains(key),
                "{command}: {key} not named in {output}"
            );
        }
    }
}

#[test]
fn unimplemented_proxy_keys_warn_naming_the_key() {
    let path = write_temp(
        "grpc.json",
        r#"{"proxies":[{"name":"g","endpoint":"grpc://127.0.0.1:1","grpc_metadata":["x-a"]}],
            "channel":{"namespaces":[{"name":"chat","subscribe_stream_proxy_enabled":true}]}}"#,
    );
    let (ok, output) = gyre("checkconfig", &path);
    assert!(ok, "{output}");
    assert!(output.contains("proxies[0].grpc_metadata"), "{output}");
    assert!(!output.contains("proxies[0].endpoint"), "{output}");
    assert!(
        output.contains("channel.namespaces[0].subscribe_stream_proxy_enabled"),
        "{output}"
    );
}

#[test]
fn unusable_grpc_proxy_tls_stops_serve_naming_the_key() {
    let path = write_temp(
        "grpc_tls.json",
        r#"{"http_server":{"address":"127.0.0.1","port":0},
            "rpc":{"proxy":{"endpoint":"grpc://127.0.0.1:1","grpc":{"tls":{"enabled":true,"server_ca_pem":"/nonexistent/ca.pem"}}}}}"#,
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_gyre"))
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .env("GYRE_LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run gyre");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        status.is_some_and(|s| !s.success()),
        "serve must stop: {status:?}\n{text}"
    );
    assert!(text.contains("rpc.proxy"), "{text}");
    assert!(text.contains("server_ca_pem"), "{text}");
}
