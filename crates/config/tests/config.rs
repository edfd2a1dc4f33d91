//! Integration tests: loading files in all formats, environment overlay, overrides, warnings,
//! errors and the official centrifuge-js test configuration.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use gyre_config::{ChannelError, Config, ConfigError, Duration, Format, load, load_str};
use serde_json::{Value, json};

/// A file in the temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(ext: &str, contents: &str) -> TempFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("gyre-config-test-{}-{n}.{ext}", std::process::id()));
        std::fs::write(&path, contents).expect("write temp file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const CENTRIFUGE_JS_CONFIG: &str = r#"{"client":{"insecure":true,"concurrency":8,"token":{"hmac_secret_key":"secret"}},"http_stream":{"enabled":true},"sse":{"enabled":true},"http_api":{"key":"test-api-key"},"channel":{"without_namespace":{"presence":true,"allowed_delta_types":["fossil"],"delta_publish":true,"history_size":100,"history_ttl":"300s","force_recovery":true},"namespaces":[{"name":"delta","allowed_delta_types":["fossil"],"delta_publish":true,"force_recovery":true,"history_size":100,"history_ttl":"300s","allow_publish_for_subscriber":true,"allow_subscribe_for_client":true},{"name":"recovery","force_recovery":true,"history_size":100,"history_ttl":"300s","allow_publish_for_subscriber":true,"allow_subscribe_for_client":true},{"name":"smallhistory","force_recovery":true,"history_size":2,"history_ttl":"300s","allow_publish_for_subscriber":true,"allow_subscribe_for_client":true},{"name":"streamless","subscription_type":"map","allow_subscribe_for_client":true,"map":{"mode":"ephemeral","key_ttl":"60s"}}]},"shared_poll":{"hmac_secret_key":"test-poll-secret"}}"#;

#[test]
fn defaults_match_centrifugo() {
    let c = Config::default();
    assert_eq!(c.http_server.port, 8000);
    assert_eq!(c.http_server.address, "");
    assert_eq!(c.http_server.effective_internal_port(), 8000);
    assert_eq!(c.log.level, gyre_config::LogLevel::Info);
    assert_eq!(c.engine.kind, gyre_config::EngineKind::Memory);
    assert_eq!(c.engine.redis.prefix, "centrifugo");
    assert_eq!(c.engine.redis.presence_ttl, Duration::from_secs(60));
    assert_eq!(c.client.ping_interval, Duration::from_secs(25));
    assert_eq!(c.client.pong_timeout, Duration::from_secs(8));
    assert_eq!(c.client.expired_close_delay, Duration::from_secs(25));
    assert_eq!(c.client.expired_sub_close_delay, Duration::from_secs(25));
    assert_eq!(c.client.stale_close_delay, Duration::from_secs(10));
    assert_eq!(c.client.channel_limit, 128);
    assert_eq!(c.client.queue_max_size, 1_048_576);
    assert_eq!(c.client.presence_update_interval, Duration::from_secs(27));
    assert_eq!(
        c.client.channel_position_check_delay,
        Duration::from_secs(40)
    );
    assert_eq!(c.client.history_max_publication_limit, 300);
    assert_eq!(c.client.recovery_max_publication_limit, 300);
    assert_eq!(c.channel.history_meta_ttl, Duration::from_secs(720 * 3600));
    assert_eq!(c.channel.max_length, 255);
    assert_eq!(c.channel.private_prefix, "$");
    assert_eq!(c.channel.namespace_boundary, ":");
    assert_eq!(c.channel.user_boundary, "#");
    assert_eq!(c.channel.user_separator, ",");
    assert_eq!(
        c.channel.without_namespace.force_recovery_mode,
        gyre_config::RecoveryMode::Stream
    );
    assert!(!c.channel.without_namespace.history_enabled());
    assert_eq!(c.rpc.ping.method, "ping");
    assert_eq!(c.http_api.handler_prefix, "/api");
    assert_eq!(c.websocket.message_size_limit, 65_536);
    assert_eq!(c.websocket.write_timeout, Duration::from_secs(1));
    assert_eq!(c.shutdown.timeout, Duration::from_secs(30));

    // Loading nothing gives the defaults, without warnings.
    let loaded = load(None, &[], &[]).expect("load defaults");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config, c);
    assert_eq!(loaded.config.to_json_pretty(), c.to_json_pretty());
    let json: Value = serde_json::from_str(&c.to_json_pretty()).expect("json");
    assert_eq!(json["channel"]["history_meta_ttl"], "720h");
    assert_eq!(json["client"]["ping_interval"], "25s");
}

const SAMPLE_JSON: &str = r#"{
  "http_server": {"port": 9100, "internal_port": "9101"},
  "log": {"level": "debug"},
  "engine": {"type": "redis", "redis": {"address": "127.0.0.1:6379", "presence_ttl": "30s"}},
  "client": {
    "allowed_origins": ["http://localhost:3000"],
    "token": {"hmac_secret_key": "k"},
    "subscription_token": {"enabled": true, "hmac_secret_key": "s"},
    "ping_interval": "20s",
    "pong_timeout": 5
  },
  "channel": {
    "history_meta_ttl": "1h",
    "namespaces": [
      {"name": "chat", "presence": true, "history_size": 10, "history_ttl": "1m30s"}
    ]
  },
  "websocket": {"compression": true}
}"#;

const SAMPLE_YAML: &str = r#"
http_server:
  port: 9100
  internal_port: "9101"
log:
  level: debug
engine:
  type: redis
  redis:
    address: 127.0.0.1:6379
    presence_ttl: 30s
client:
  allowed_origins:
    - http://localhost:3000
  token:
    hmac_secret_key: k
  subscription_token:
    enabled: true
    hmac_secret_key: s
  ping_interval: 20s
  pong_timeout: 5
channel:
  history_meta_ttl: 1h
  namespaces:
    - name: chat
      presence: true
      history_size: 10
      history_ttl: 1m30s
websocket:
  compression: true
"#;

const SAMPLE_TOML: &str = r#"
[http_server]
port = 9100
internal_port = "9101"

[log]
level = "debug"

[engine]
type = "redis"

[engine.redis]
address = "127.0.0.1:6379"
presence_ttl = "30s"

[client]
allowed_origins = ["http://localhost:3000"]
ping_interval = "20s"
pong_timeout = 5

[client.token]
hmac_secret_key = "k"

[client.subscription_token]
enabled = true
hmac_secret_key = "s"

[channel]
history_meta_ttl = "1h"

[[channel.namespaces]]
name = "chat"
presence = true
history_size = 10
history_ttl = "1m30s"

[websocket]
compression = true
"#;

#[test]
fn json_yaml_toml_load_the_same() {
    let mut outputs = Vec::new();
    for (ext, text) in [
        ("json", SAMPLE_JSON),
        ("yaml", SAMPLE_YAML),
        ("toml", SAMPLE_TOML),
    ] {
        let file = TempFile::new(ext, text);
        let loaded = load(Some(&file.0), &[], &[]).unwrap_or_else(|e| panic!("{ext}: {e}"));
        // The sample turns permessage-deflate on, which is implemented: no warning.
        assert_eq!(loaded.warnings, Vec::<String>::new(), "{ext}");
        assert!(loaded.config.websocket.compression, "{ext}");
        let c = &loaded.config;
        assert_eq!(c.http_server.port, 9100);
        assert_eq!(c.http_server.effective_internal_port(), 9101);
        assert_eq!(c.engine.kind, gyre_config::EngineKind::Redis);
        assert_eq!(c.engine.redis.address, vec!["127.0.0.1:6379".to_owned()]);
        assert_eq!(c.client.pong_timeout, Duration::from_secs(5));
        assert!(c.client.subscription_token.enabled);
        assert_eq!(c.client.subscription_token.token.hmac_secret_key, "s");
        let r = c.channel_options("chat:1").expect("chat");
        assert!(r.options.presence && r.options.history_enabled());
        assert_eq!(r.options.history_ttl, Duration::from_secs(90));
        assert_eq!(r.history_meta_ttl, Duration::from_secs(3600));
        outputs.push(c.to_json_pretty());
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
    // The same text via load_str.
    let from_str = load_str(SAMPLE_YAML, Format::Yaml, &[], &[]).expect("yaml str");
    assert_eq!(from_str.config.to_json_pretty(), outputs[0]);
    // `.yml` is YAML too.
    let file = TempFile::new("yml", SAMPLE_YAML);
    assert!(load(Some(&file.0), &[], &[]).is_ok());
}

#[test]
fn env_overlay() {
    let file = TempFile::new("json", r#"{"http_server": {"port": 8001}}"#);
    let vars = env(&[
        ("CENTRIFUGO_CLIENT_INSECURE", "true"),
        ("CENTRIFUGO_HTTP_SERVER_PORT", "9000"),
        ("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "abc"),
        ("CENTRIFUGO_HTTP_API_KEY", "12345"),
        (
            "CENTRIFUGO_CLIENT_ALLOWED_ORIGINS",
            "http://a.com,http://b.com",
        ),
        (
            "CENTRIFUGO_ENGINE_REDIS_ADDRESS",
            "[\"r1:6379\",\"r2:6379\"]",
        ),
        ("CENTRIFUGO_CLIENT_PING_INTERVAL", "30"),
        ("CENTRIFUGO_WEBSOCKET_COMPRESSION", "1"),
        (
            "CENTRIFUGO_CHANNEL_NAMESPACES",
            r#"[{"name":"env_ns","presence":true}]"#,
        ),
        ("CENTRIFUGO_NOT_A_KEY", "1"),
        ("GYRE_LOG_LEVEL", "debug"),
        ("CENTRIFUGO_LOG_LEVEL", "error"),
        ("GYRE_SOMETHING_ELSE", "ignored"),
        ("PATH", "/usr/bin"),
    ]);
    let loaded = load(Some(&file.0), &vars, &[]).expect("load");
    let c = &loaded.config;
    assert!(c.client.insecure);
    assert_eq!(c.http_server.port, 9000);
    assert_eq!(c.client.token.hmac_secret_key, "abc");
    // String-typed keys keep the raw string even when it looks like a number.
    assert_eq!(c.http_api.key, "12345");
    assert_eq!(
        c.client.allowed_origins,
        vec!["http://a.com", "http://b.com"]
    );
    assert_eq!(c.engine.redis.address, vec!["r1:6379", "r2:6379"]);
    assert_eq!(c.client.ping_interval, Duration::from_secs(30));
    assert!(c.websocket.compression);
    assert_eq!(c.channel.namespaces[0].name, "env_ns");
    // GYRE_ wins over CENTRIFUGO_.
    assert_eq!(c.log.level, gyre_config::LogLevel::Debug);
    assert_eq!(
        loaded.warnings,
        vec!["unknown environment variable \"CENTRIFUGO_NOT_A_KEY\"".to_owned()]
    );
}

#[test]
fn env_wrong_type_names_key() {
    let err = load(None, &env(&[("CENTRIFUGO_HTTP_SERVER_PORT", "abc")]), &[]).unwrap_err();
    match err {
        ConfigError::Invalid { key, .. } => assert_eq!(key, "http_server.port"),
        other => panic!("unexpected {other}"),
    }
    let err = load(None, &env(&[("CENTRIFUGO_CLIENT_INSECURE", "maybe")]), &[]).unwrap_err();
    assert!(err.to_string().contains("client.insecure"), "{err}");
}

#[test]
fn overrides_apply_last() {
    let file = TempFile::new("json", r#"{"engine": {"type": "memory"}}"#);
    let overrides = vec![
        ("http_server.port".to_owned(), json!("7000")),
        ("client.insecure".to_owned(), json!(true)),
        ("admin.enabled".to_owned(), json!("true")),
        ("engine.type".to_owned(), json!("redis")),
        ("health.enabled".to_owned(), json!(true)),
        ("client.tokn".to_owned(), json!("x")),
    ];
    let vars = env(&[("CENTRIFUGO_HTTP_SERVER_PORT", "9000")]);
    let loaded = load(Some(&file.0), &vars, &overrides).expect("load");
    let c = &loaded.config;
    assert_eq!(c.http_server.port, 7000);
    assert!(c.client.insecure && c.admin.enabled && c.health.enabled);
    assert_eq!(c.engine.kind, gyre_config::EngineKind::Redis);
    assert_eq!(
        loaded.warnings,
        vec![
            "unknown key \"client.tokn\"".to_owned(),
            "key \"admin.enabled\" is not implemented yet: no admin web interface is served"
                .to_owned(),
        ]
    );
}

#[test]
fn unknown_keys_are_warnings_with_paths() {
    let text = r#"{
        "client": {"tokn": {"hmac_secret_key": "x"}, "token": {"hmac": 1}},
        "channel": {
            "without_namespace": {"presense": true},
            "namespaces": [{"name": "ns1", "foo": 1}],
            "proxy": {"subscribe": {"endpoint": "http://x"}}
        },
        "opentelemetry": {"enabled": true},
        "token_hmac_secret_key": "old",
        "presence": true,
        "rpc": {"without_namespace": {"proxy_enabled": true}, "proxy": {"endpoint": "http://x"}}
    }"#;
    let loaded = load_str(text, Format::Json, &[], &[]).expect("load");
    let w = &loaded.warnings;
    for expected in [
        "unknown key \"client.tokn\"",
        "unknown key \"client.token.hmac\"",
        "unknown key \"channel.without_namespace.presense\"",
        "unknown key \"channel.namespaces[0].foo\"",
        "unknown key \"opentelemetry\"",
    ] {
        assert!(
            w.iter().any(|m| m == expected),
            "missing {expected} in {w:?}"
        );
    }
    // Proxy keys are implemented now: no warning for them.
    assert!(!w.iter().any(|m| m.contains("proxy")), "{w:?}");
    assert!(
        w.iter().any(|m| m.contains("\"token_hmac_secret_key\"")
            && m.contains("client.token.hmac_secret_key"))
    );
    assert!(
        w.iter()
            .any(|m| m.contains("\"presence\"") && m.contains("channel.without_namespace.presence"))
    );
    assert_eq!(w.len(), 7, "{w:?}");
}

fn invalid_key(text: &str) -> String {
    match load_str(text, Format::Json, &[], &[]) {
        Err(ConfigError::Invalid { key, reason }) => {
            assert!(!reason.is_empty());
            key
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("expected an error for {text}"),
    }
}

#[test]
fn invalid_types_name_the_key() {
    assert_eq!(
        invalid_key(r#"{"http_server": {"port": "abc"}}"#),
        "http_server.port"
    );
    assert_eq!(
        invalid_key(r#"{"http_server": {"port": 70000}}"#),
        "http_server.port"
    );
    assert_eq!(
        invalid_key(r#"{"client": {"insecure": "yes"}}"#),
        "client.insecure"
    );
    assert_eq!(
        invalid_key(r#"{"client": {"ping_interval": "soon"}}"#),
        "client.ping_interval"
    );
    assert_eq!(
        invalid_key(r#"{"channel": {"without_namespace": {"history_size": -1}}}"#),
        "channel.without_namespace.history_size"
    );
    assert_eq!(
        invalid_key(
            r#"{"channel": {"namespaces": [{"name": "a1"}, {"name": "b1", "history_ttl": true}]}}"#
        ),
        "channel.namespaces[1].history_ttl"
    );
    assert_eq!(
        invalid_key(r#"{"channel": {"namespaces": [{"name": 5}]}}"#),
        "channel.namespaces[0].name"
    );
    assert_eq!(
        invalid_key(r#"{"client": {"subscription_token": {"enabled": true, "audience": 5}}}"#),
        "client.subscription_token.audience"
    );
    assert_eq!(invalid_key(r#"{"client": 5}"#), "client");
}

#[test]
fn parse_errors_and_formats() {
    let file = TempFile::new("json", "{not json");
    assert!(matches!(
        load(Some(&file.0), &[], &[]),
        Err(ConfigError::Parse { format: "JSON", .. })
    ));
    let file = TempFile::new("ini", "a=b");
    assert!(matches!(
        load(Some(&file.0), &[], &[]),
        Err(ConfigError::UnsupportedFormat { .. })
    ));
    let missing = std::env::temp_dir().join("gyre-config-definitely-missing.json");
    assert!(matches!(
        load(Some(&missing), &[], &[]),
        Err(ConfigError::Io { .. })
    ));
    assert!(matches!(
        load_str("[1, 2]", Format::Json, &[], &[]),
        Err(ConfigError::Parse { .. })
    ));
    // An empty YAML file is an empty configuration.
    assert!(load_str("", Format::Yaml, &[], &[]).is_ok());
}

#[test]
fn load_reports_all_validation_errors() {
    let text = r#"{"client": {"ping_interval": "5s", "pong_timeout": "10s"},
        "channel": {"namespaces": [{"name": "x", "history_size": 5}]}}"#;
    match load_str(text, Format::Json, &[], &[]) {
        Err(ConfigError::Validation(v)) => {
            assert_eq!(v.len(), 3, "{v:?}");
            assert!(v.iter().any(|m| m.starts_with("client.ping_interval: ")));
            assert!(
                v.iter()
                    .any(|m| m.starts_with("channel.namespaces[0].name: "))
            );
            assert!(
                v.iter()
                    .any(|m| m.starts_with("channel.namespaces[0].history_ttl: "))
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn centrifuge_js_test_config_loads() {
    let file = TempFile::new("json", CENTRIFUGE_JS_CONFIG);
    let loaded = load(Some(&file.0), &[], &[]).expect("centrifuge-js config must load");
    let c = &loaded.config;
    assert!(c.client.insecure);
    assert_eq!(c.client.concurrency, 8);
    assert_eq!(c.client.token.hmac_secret_key, "secret");
    assert!(c.http_stream.enabled && c.sse.enabled);
    assert_eq!(c.http_api.key, "test-api-key");
    assert_eq!(c.channel.namespaces.len(), 4);

    let top = c.channel_options("test").expect("top level");
    assert!(top.options.presence && top.options.force_recovery && top.options.delta_publish);
    assert!(top.options.delta_allowed(&gyre_config::DeltaType::Fossil));
    assert_eq!(top.options.history_size, 100);
    assert_eq!(top.options.history_ttl, Duration::from_secs(300));

    let small = c.channel_options("smallhistory:x").expect("smallhistory");
    assert_eq!(small.options.history_size, 2);
    assert!(small.options.allow_subscribe_for_client && small.options.allow_publish_for_subscriber);
    assert_eq!(
        c.channel_options("streamless:x")
            .expect("streamless")
            .namespace,
        Some("streamless")
    );
    assert_eq!(
        c.channel_options("missing:x").err(),
        Some(ChannelError::UnknownNamespace("missing".to_owned()))
    );

    // Map options are typed; only the shared poll section is still unknown.
    let streamless = c
        .channel_options("streamless:x")
        .expect("streamless")
        .options;
    assert_eq!(streamless.map.mode, gyre_config::MapMode::Ephemeral);
    assert_eq!(streamless.map.key_ttl, Duration::from_secs(60));
    assert!(!streamless.map.has_stream() && streamless.map.has_expiry());
    let w = &loaded.warnings;
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("key \"client.concurrency\" is not implemented yet"),
        "{w:?}"
    );
    assert_eq!(c.shared_poll.hmac_secret_key, "test-poll-secret");

    // The serialized form loads back to the same configuration, warning only about what is
    // not acted on yet.
    let again = load_str(&c.to_json_pretty(), Format::Json, &[], &[]).expect("round trip");
    assert!(
        again
            .warnings
            .iter()
            .all(|m| m.contains("not implemented yet")),
        "{:?}",
        again.warnings
    );
    assert_eq!(&again.config, c);
}

#[test]
fn env_variable_naming_a_section_is_ignored() {
    let env = vec![
        ("GYRE_LOG".to_owned(), "warn".to_owned()),
        ("CENTRIFUGO_CLIENT".to_owned(), "x".to_owned()),
        ("GYRE_LOG_LEVEL".to_owned(), "debug".to_owned()),
    ];
    let loaded = gyre_config::load(None, &env, &[]).expect("loads");
    assert_eq!(loaded.config.log.level, gyre_config::LogLevel::Debug);
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("CENTRIFUGO_CLIENT")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn keys_of_map_values_are_the_users_not_unknown_keys() {
    let loaded = load_str(
        r#"{"rpc":{"proxy":{"endpoint":"http://127.0.0.1:1/rpc","http":{"static_headers":{"X-Static":"1"}}}}}"#,
        Format::Json,
        &[],
        &[],
    )
    .expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded
            .config
            .rpc
            .proxy
            .http
            .static_headers
            .get("X-Static")
            .map(String::as_str),
        Some("1")
    );
}

#[test]
fn shared_poll_options_load_and_validate() {
    let good = json!({
        "shared_poll": {"hmac_secret_key": "s", "concurrency_limit": 4},
        "proxies": [{"name": "poll", "endpoint": "http://127.0.0.1:1/refresh"}],
        "channel": {"namespaces": [{
            "name": "poll",
            "subscription_type": "shared_poll",
            "shared_poll": {"proxy_name": "poll", "mode": "versioned", "refresh_interval": "200ms",
                "refresh_batch_size": 10, "max_keys_per_connection": 3, "publish_enabled": true}
        }]}
    });
    let loaded = load_str(&good.to_string(), Format::Json, &[], &[]).expect("valid");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let o = &loaded
        .config
        .channel_options("poll:x")
        .expect("poll")
        .options
        .shared_poll;
    assert_eq!(o.mode, gyre_config::SharedPollMode::Versioned);
    assert_eq!(o.refresh_interval, Duration::from_millis(200));
    assert_eq!((o.batch_size(), o.max_keys()), (10, 3));
    assert_eq!(loaded.config.shared_poll.concurrency_limit, 4);
    let defaults = gyre_config::SharedPollOptions::default();
    assert_eq!(defaults.mode, gyre_config::SharedPollMode::Versionless);
    assert_eq!((defaults.batch_size(), defaults.max_keys()), (1000, 5000));

    let violations = |patch: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        patch(&mut v);
        match load_str(&v.to_string(), Format::Json, &[], &[]) {
            Err(ConfigError::Validation(v)) => v,
            other => panic!("expected a validation error, got {other:?}"),
        }
    };
    let sp = |v: &mut Value| v["channel"]["namespaces"][0]["shared_poll"].clone();
    let v = violations(&|v| v["shared_poll"]["hmac_secret_key"] = json!(""));
    assert!(v[0].starts_with("shared_poll.hmac_secret_key: "), "{v:?}");
    let v = violations(&|v| {
        let mut o = sp(v);
        o["proxy_name"] = json!("nope");
        v["channel"]["namespaces"][0]["shared_poll"] = o;
    });
    assert!(v[0].contains("unknown proxy \"nope\""), "{v:?}");
    let v = violations(&|v| {
        let mut o = sp(v);
        o["mode"] = json!("versionless");
        v["channel"]["namespaces"][0]["shared_poll"] = o;
    });
    assert!(v[0].contains("shared_poll.publish_enabled"), "{v:?}");
    let v = violations(&|v| {
        let mut o = sp(v);
        o["mode"] = json!("sometimes");
        v["channel"]["namespaces"][0]["shared_poll"] = o;
    });
    assert!(v[0].contains("unknown mode"), "{v:?}");
    // Without a name, the default proxy: an error without one, fine with one.
    let unnamed = |v: &mut Value| {
        let mut o = sp(v);
        o["proxy_name"] = json!("");
        v["channel"]["namespaces"][0]["shared_poll"] = o;
    };
    let v = violations(&unnamed);
    assert!(
        v[0].contains("channel.proxy.shared_poll_refresh has no endpoint"),
        "{v:?}"
    );
    let mut with_default = good.clone();
    unnamed(&mut with_default);
    with_default["channel"]["proxy"] =
        json!({"shared_poll_refresh": {"endpoint": "http://127.0.0.1:1/x"}});
    let loaded =
        load_str(&with_default.to_string(), Format::Json, &[], &[]).expect("default proxy");
    assert_eq!(
        loaded
            .config
            .shared_poll_proxy("")
            .map(|p| p.endpoint.as_str()),
        Some("http://127.0.0.1:1/x")
    );
}
