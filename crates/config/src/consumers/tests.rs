use crate::values::ConsumerKind;
use crate::{ConfigError, Format, load_str};

fn load(text: &str) -> Result<crate::Loaded, ConfigError> {
    load_str(text, Format::Json, &[], &[])
}

fn violations(text: &str) -> Vec<String> {
    match load(text) {
        Err(ConfigError::Validation(v)) => v,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn upstream_keys_and_defaults() {
    let loaded = load(
        r#"{"consumers": [
            {"name": "outbox", "enabled": true, "type": "postgresql",
             "postgresql": {"dsn": "postgres://u@h/db", "outbox_table_name": "centrifugo_outbox",
                            "partition_notification_channel": "centrifugo_partition_change"}},
            {"name": "streams", "enabled": true, "type": "redis_stream",
             "redis_stream": {"address": "redis://127.0.0.1:6379", "streams": ["s1"],
                              "consumer_group": "centrifugo"}}
        ]}"#,
    )
    .expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = &loaded.config.consumers;
    assert_eq!(c[0].kind, ConsumerKind::Postgresql);
    let p = &c[0].postgresql;
    assert_eq!((p.partitions(), p.select_limit()), (1, 100));
    assert_eq!(p.poll_interval(), std::time::Duration::from_millis(300));
    assert!(!p.use_try_lock);
    let r = &c[1].redis_stream;
    assert_eq!(r.redis.address, vec!["redis://127.0.0.1:6379"]);
    assert_eq!(r.visibility_timeout.0, std::time::Duration::from_secs(30));
    assert_eq!((r.workers(), r.payload_value.as_str()), (1, "payload"));
    assert_eq!(r.method_value, "method");
    assert_eq!(
        r.publication_data_mode.channels_value,
        "centrifugo-channels"
    );
    let n = &c[1].nats_jetstream;
    assert_eq!(n.url, "nats://127.0.0.1:4222");
    assert_eq!(
        (n.max_ack_pending, n.method_header.as_str()),
        (100, "centrifugo-method")
    );
}

#[test]
fn names_types_and_required_options_are_checked() {
    let v = violations(
        r#"{"consumers": [
            {"name": "a", "type": "postgresql"},
            {"name": "ok_1", "type": "rabbitmq"},
            {"name": "ok_2", "type": "postgresql", "enabled": true,
             "postgresql": {"outbox_table_name": "x; drop table y"}},
            {"name": "ok_2", "type": "redis_stream", "enabled": true,
             "redis_stream": {"address": ["a:1", "b:2"]}},
            {"name": "bad-name", "type": "kafka"},
            {"name": "js", "type": "nats_jetstream", "enabled": true,
             "nats_jetstream": {"deliver_policy": "last"}}
        ]}"#,
    );
    let has = |needle: &str| v.iter().any(|s| s.contains(needle));
    assert!(has("consumers[0].name"), "{v:?}");
    assert!(
        has("consumers[1].type: unknown consumer type \"rabbitmq\""),
        "{v:?}"
    );
    assert!(has("consumers[2].postgresql.dsn: required"), "{v:?}");
    assert!(has("consumers[2].postgresql.outbox_table_name"), "{v:?}");
    assert!(
        has("consumers[3].name: \"ok_2\" is used by another consumer"),
        "{v:?}"
    );
    assert!(has("consumers[3].redis_stream.address"), "{v:?}");
    assert!(has("consumers[3].redis_stream.streams"), "{v:?}");
    assert!(has("consumers[3].redis_stream.consumer_group"), "{v:?}");
    assert!(has("consumers[4].name"), "{v:?}");
    assert!(
        has("consumers[5].nats_jetstream.stream_name: required"),
        "{v:?}"
    );
    assert!(
        has("consumers[5].nats_jetstream.durable_consumer_name: required"),
        "{v:?}"
    );
    assert!(has("consumers[5].nats_jetstream.deliver_policy"), "{v:?}");
    assert_eq!(v.len(), 12, "{v:?}");
}

#[test]
fn disabled_consumers_need_no_options_and_schema_tables_are_fine() {
    let loaded = load(
        r#"{"consumers": [
            {"name": "off", "type": "postgresql"},
            {"name": "on", "type": "postgresql", "enabled": true,
             "postgresql": {"dsn": "postgres://h/db", "outbox_table_name": "app.outbox"}}
        ]}"#,
    )
    .expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn unbuilt_types_and_unknown_keys_are_warned_about() {
    let loaded = load(
        r#"{"consumers": [
            {"name": "kf", "type": "kafka", "enabled": true,
             "kafka": {"brokers": ["localhost:9092"], "topics": ["t"], "consumer_group": "g"}},
            {"name": "k_off", "type": "kafka", "kafka": {"brokers": ["x"]}},
            {"name": "sqs", "type": "aws_sqs", "enabled": true},
            {"name": "pg", "type": "postgresql", "enabled": true,
             "postgresql": {"dsn": "postgres://h/db", "outbox_table_name": "o",
                            "tls": {"enabled": true, "server_name": "db"}, "bogus": 1}},
            {"name": "rs", "type": "redis_stream", "enabled": true,
             "redis_stream": {"streams": ["s"], "consumer_group": "g", "prefix": "x"}}
        ]}"#,
    )
    .expect("loads");
    let w = &loaded.warnings;
    let has = |needle: &str| w.iter().any(|s| s.contains(needle));
    assert!(
        has("consumers[0] (\"kf\"): consumer type \"kafka\" is not implemented in Gyre"),
        "{w:?}"
    );
    assert!(!has("consumers[1]"), "{w:?}");
    assert!(
        has("consumers[2] (\"sqs\"): consumer type \"aws_sqs\""),
        "{w:?}"
    );
    assert!(has("postgresql.tls.server_name"), "{w:?}");
    assert!(
        has("unknown key \"consumers[3].postgresql.bogus\""),
        "{w:?}"
    );
    assert!(has("redis_stream.prefix"), "{w:?}");
    assert_eq!(w.len(), 5, "{w:?}");
}

#[test]
fn consumers_from_an_environment_variable() {
    let env = vec![(
        "CENTRIFUGO_CONSUMERS".to_owned(),
        r#"[{"name":"pg","type":"postgresql","postgresql":{"dsn":"postgres://h/db"}}]"#.to_owned(),
    )];
    let loaded = load_str("{}", Format::Json, &env, &[]).expect("loads");
    assert_eq!(loaded.config.consumers[0].postgresql.dsn, "postgres://h/db");
    assert_eq!(loaded.config.consumers[0].postgresql.partitions(), 1);
}

#[test]
fn per_consumer_environment_variables_override_keys() {
    let env = vec![
        (
            "CENTRIFUGO_CONSUMERS".to_owned(),
            r#"[{"name":"pg","type":"postgresql"},{"name":"pg_2","type":"postgresql"}]"#.to_owned(),
        ),
        (
            "CENTRIFUGO_CONSUMERS_PG_ENABLED".to_owned(),
            "true".to_owned(),
        ),
        (
            "CENTRIFUGO_CONSUMERS_PG_POSTGRESQL_DSN".to_owned(),
            "postgres://h/db".to_owned(),
        ),
        (
            "CENTRIFUGO_CONSUMERS_PG_POSTGRESQL_OUTBOX_TABLE_NAME".to_owned(),
            "outbox".to_owned(),
        ),
        (
            "CENTRIFUGO_CONSUMERS_PG_2_POSTGRESQL_NUM_PARTITIONS".to_owned(),
            "4".to_owned(),
        ),
        (
            "CENTRIFUGO_CONSUMERS_NOBODY_ENABLED".to_owned(),
            "true".to_owned(),
        ),
    ];
    let loaded = load_str("{}", Format::Json, &env, &[]).expect("loads");
    let c = &loaded.config.consumers;
    assert!(c[0].enabled);
    assert_eq!(c[0].postgresql.dsn, "postgres://h/db");
    assert_eq!(c[0].postgresql.outbox_table_name, "outbox");
    assert_eq!(
        (c[0].postgresql.partitions(), c[1].postgresql.partitions()),
        (1, 4)
    );
    assert_eq!(
        loaded.warnings,
        vec!["unknown environment variable \"CENTRIFUGO_CONSUMERS_NOBODY_ENABLED\"".to_owned()]
    );
}
