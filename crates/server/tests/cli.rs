//! The `gyre` command line: version, config checks, warnings and start-up failures.

use std::process::Command;

fn gyre() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gyre"))
}

fn write_temp(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gyre-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn version_prints_the_crate_version() {
    let out = gyre().arg("version").output().expect("run");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("gyre {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn checkconfig_reads_json_yaml_and_toml_and_names_unknown_keys() {
    let json = write_temp(
        "c.json",
        r#"{"client":{"insecure":true,"tokn":1},"channel":{"namespaces":[{"name":"ns","presense":true}]}}"#,
    );
    let yaml = write_temp(
        "c.yaml",
        "client:\n  insecure: true\nhttp_server:\n  port: 9001\n",
    );
    let toml = write_temp(
        "c.toml",
        "[client]\ninsecure = true\n[http_api]\nkey = \"k\"\n",
    );
    for path in [&json, &yaml, &toml] {
        let out = gyre()
            .arg("checkconfig")
            .arg("--config")
            .arg(path)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{path:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = gyre()
        .arg("checkconfig")
        .arg("--config")
        .arg(&json)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("client.tokn"), "{stderr}");
    assert!(
        stderr.contains("channel.namespaces[0].presense"),
        "{stderr}"
    );
}

#[test]
fn invalid_values_stop_the_server_with_the_key_and_reason() {
    let cases = [
        (r#"{"http_server":{"port":"eighty"}}"#, "http_server.port"),
        (
            r#"{"client":{"ping_interval":"soon"}}"#,
            "client.ping_interval",
        ),
        (
            r#"{"channel":{"namespaces":[{"name":"x y"}]}}"#,
            "channel.namespaces",
        ),
        (
            r#"{"channel":{"without_namespace":{"history_size":10}}}"#,
            "history_ttl",
        ),
    ];
    for (text, key) in cases {
        let path = write_temp("bad.json", text);
        let out = gyre()
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{text} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{text}: {stderr}");
    }
    let out = gyre()
        .arg("serve")
        .arg("--config")
        .arg("/nonexistent/gyre.json")
        .output()
        .expect("run");
    assert!(!out.status.success());
}

#[test]
fn environment_overrides_the_file() {
    let path = write_temp(
        "env.json",
        r#"{"client":{"token":{"hmac_secret_key":"from-file"}}}"#,
    );
    let out = gyre()
        .args(["gentoken", "-u", "alice", "-t", "-1", "--config"])
        .arg(&path)
        .env("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "from-env")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let verifier = gyre_auth::TokenVerifier::new(gyre_auth::VerifierOptions {
        hmac_secret_key: "from-env".into(),
        ..Default::default()
    })
    .expect("verifier");
    assert_eq!(
        verifier
            .verify_connect(&token, 0)
            .expect("signed with the env secret")
            .user,
        "alice"
    );
}
