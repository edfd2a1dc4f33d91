//! Semantic validation of a [`Config`], mirroring the checks Centrifugo runs at start-up.
//!
//! [`Config::validate`] collects every violation instead of stopping at the first one; each is
//! reported as `"key: reason"` inside [`ConfigError::Validation`].

use crate::values::EngineKind;
use std::collections::HashSet;

use regex::Regex;

use crate::{ChannelOptions, Config, ConfigError, Duration, TokenOptions};

const NAMESPACE_NAME_PATTERN: &str = "^[-a-zA-Z0-9_.]{2,}$";

/// True when `name` matches `^[-a-zA-Z0-9_.]{2,}$`.
fn valid_namespace_name(name: &str) -> bool {
    name.len() >= 2
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Collects violations as `"key: reason"` strings.
struct Violations(Vec<String>);

impl Violations {
    fn push(&mut self, key: &str, reason: impl std::fmt::Display) {
        self.0.push(format!("{key}: {reason}"));
    }
}

impl Config {
    /// Checks the configuration and returns every violation found.
    ///
    /// Rules: namespace names match `^[-a-zA-Z0-9_.]{2,}$` and are unique; `history_size` and
    /// `history_ttl` are set together; TTLs are whole seconds and `history_ttl` does not exceed
    /// the effective `history_meta_ttl`; recovery (`force_recovery`/`allow_recovery`) needs
    /// history; `allowed_delta_types` only contains "fossil"; `force_recovery_mode` is
    /// "stream"/"cache"; `publication_data_format` is known; `channel_regex`, `audience_regex` and
    /// `issuer_regex` compile; `client.ping_interval` > `client.pong_timeout` when both are
    /// set; the personal channel namespace exists (with presence for `single_connection`);
    /// `engine.type`, `log.level` and `http_api.error_mode` are known; a Redis engine has an
    /// address, `sentinel_master_name` with `sentinel_address`, not both Sentinel and Cluster,
    /// no TLS and db 0 with Cluster, and client certificates with both `cert_pem` and `key_pem`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut v = Violations(Vec::new());
        self.validate_general(&mut v);
        self.validate_channels(&mut v);
        for (key, reason) in self.map_violations() {
            v.push(&key, reason);
        }
        for (key, reason) in self.proxy_violations() {
            v.push(&key, reason);
        }
        for (key, reason) in self.broker_violations() {
            v.push(&key, reason);
        }
        for (key, reason) in self.shared_poll_violations() {
            v.push(&key, reason);
        }
        for (key, reason) in self.consumer_violations() {
            v.push(&key, reason);
        }
        if v.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Validation(v.0))
        }
    }

    fn validate_general(&self, v: &mut Violations) {
        match &self.engine.kind {
            EngineKind::Memory => {}
            EngineKind::Redis => {
                for (key, reason) in
                    crate::redis::redis_violations("engine.redis", &self.engine.redis)
                {
                    v.push(&key, reason);
                }
            }
            EngineKind::Unknown(other) => v.push(
                "engine.type",
                format!("unknown engine type {other:?} (expected \"memory\" or \"redis\")"),
            ),
        }
        if !self.log.level.is_known() {
            v.push(
                "log.level",
                format!(
                    "unknown level {:?} (expected trace, debug, info, warn, error, fatal or none)",
                    self.log.level.as_str()
                ),
            );
        }
        if !self.grpc_api.error_mode.is_known() {
            v.push(
                "grpc_api.error_mode",
                format!(
                    "unknown mode {:?} (expected \"\" or \"transport\")",
                    self.grpc_api.error_mode.as_str()
                ),
            );
        }
        if !self.http_api.error_mode.is_known() {
            v.push(
                "http_api.error_mode",
                format!(
                    "unknown mode {:?} (expected \"\" or \"transport\")",
                    self.http_api.error_mode.as_str()
                ),
            );
        }
        if !(1..=9).contains(&self.websocket.compression_level) {
            v.push(
                "websocket.compression_level",
                format!("must be 1..9, not {}", self.websocket.compression_level),
            );
        }
        let c = &self.client;
        if !c.ping_interval.is_zero()
            && !c.pong_timeout.is_zero()
            && c.ping_interval <= c.pong_timeout
        {
            v.push(
                "client.ping_interval",
                format!(
                    "must be greater than client.pong_timeout ({} <= {})",
                    c.ping_interval, c.pong_timeout
                ),
            );
        }
        validate_token(v, "client.token", &c.token);
        if c.subscription_token.enabled {
            validate_token(v, "client.subscription_token", &c.subscription_token.token);
        }
    }

    fn validate_channels(&self, v: &mut Violations) {
        let ch = &self.channel;
        if !ch.history_meta_ttl.is_whole_seconds() {
            v.push(
                "channel.history_meta_ttl",
                "must be a whole number of seconds",
            );
        }
        if !ch.publication_data_format.is_known() {
            v.push(
                "channel.publication_data_format",
                format!("unknown format {:?}", ch.publication_data_format.as_str()),
            );
        }
        validate_options(
            v,
            "channel.without_namespace",
            &ch.without_namespace,
            ch.history_meta_ttl,
        );
        let mut seen = HashSet::new();
        for (i, ns) in ch.namespaces.iter().enumerate() {
            let prefix = format!("channel.namespaces[{i}]");
            if !valid_namespace_name(&ns.name) {
                v.push(
                    &format!("{prefix}.name"),
                    format!(
                        "invalid namespace name {:?} (must match {NAMESPACE_NAME_PATTERN})",
                        ns.name
                    ),
                );
            } else if !seen.insert(ns.name.as_str()) {
                v.push(
                    &format!("{prefix}.name"),
                    format!("duplicate namespace name {:?}", ns.name),
                );
            }
            validate_options(v, &prefix, &ns.options, ch.history_meta_ttl);
        }

        let personal = &self.client.subscribe_to_user_personal_channel;
        if personal.enabled {
            let key = "client.subscribe_to_user_personal_channel";
            let options = if personal.personal_channel_namespace.is_empty() {
                Some(&ch.without_namespace)
            } else {
                let found = ch
                    .namespaces
                    .iter()
                    .find(|ns| ns.name == personal.personal_channel_namespace);
                if found.is_none() {
                    v.push(
                        &format!("{key}.personal_channel_namespace"),
                        format!(
                            "namespace {:?} not found",
                            personal.personal_channel_namespace
                        ),
                    );
                }
                found.map(|ns| &ns.options)
            };
            if personal.single_connection && options.is_some_and(|o| !o.presence) {
                v.push(
                    &format!("{key}.single_connection"),
                    "requires presence enabled for the personal channel namespace",
                );
            }
        }
    }
}

fn validate_regex(v: &mut Violations, key: &str, pattern: &str) {
    if !pattern.is_empty()
        && let Err(e) = Regex::new(pattern)
    {
        v.push(key, format!("invalid regular expression: {e}"));
    }
}

fn validate_token(v: &mut Violations, prefix: &str, t: &TokenOptions) {
    validate_regex(v, &format!("{prefix}.audience_regex"), &t.audience_regex);
    validate_regex(v, &format!("{prefix}.issuer_regex"), &t.issuer_regex);
}

fn validate_options(v: &mut Violations, prefix: &str, o: &ChannelOptions, global_meta: Duration) {
    let key = |field: &str| format!("{prefix}.{field}");
    if !o.history_ttl.is_whole_seconds() {
        v.push(&key("history_ttl"), "must be a whole number of seconds");
    }
    if let Some(meta) = o.history_meta_ttl
        && !meta.is_whole_seconds()
    {
        v.push(
            &key("history_meta_ttl"),
            "must be a whole number of seconds",
        );
    }
    match (o.history_size > 0, !o.history_ttl.is_zero()) {
        (true, false) => v.push(
            &key("history_ttl"),
            "must be set when history_size is set (both are required for history)",
        ),
        (false, true) => v.push(
            &key("history_size"),
            "must be set when history_ttl is set (both are required for history)",
        ),
        _ => {}
    }
    let meta = o
        .history_meta_ttl
        .filter(|m| !m.is_zero())
        .unwrap_or(global_meta);
    if o.history_ttl > meta {
        v.push(
            &key("history_ttl"),
            format!(
                "history_ttl ({}) can not be greater than history_meta_ttl ({meta})",
                o.history_ttl
            ),
        );
    }
    if !o.history_enabled() {
        for (flag, set) in [
            ("force_recovery", o.force_recovery),
            ("allow_recovery", o.allow_recovery),
        ] {
            if set {
                v.push(
                    &key(flag),
                    "recovery requires history (set history_size and history_ttl)",
                );
            }
        }
    }
    for t in &o.allowed_delta_types {
        if !t.is_known() {
            v.push(
                &key("allowed_delta_types"),
                format!(
                    "unknown delta type {:?} (only \"fossil\" is supported)",
                    t.as_str()
                ),
            );
        }
    }
    if !o.force_recovery_mode.is_known() {
        v.push(
            &key("force_recovery_mode"),
            format!(
                "unknown recovery mode {:?} (expected \"stream\" or \"cache\")",
                o.force_recovery_mode.as_str()
            ),
        );
    }
    if o.auto_cache_recover && (!o.force_recovery || !o.cache_recovery()) {
        v.push(
            &key("auto_cache_recover"),
            "auto_cache_recover requires force_recovery and force_recovery_mode set to cache",
        );
    }
    if !o.publication_data_format.is_known() {
        v.push(
            &key("publication_data_format"),
            format!(
                "unknown format {:?} (expected \"\", \"json\", \"json_object\" or \"binary\")",
                o.publication_data_format.as_str()
            ),
        );
    }
    if !o.subscription_type.is_known() {
        v.push(
            &key("subscription_type"),
            format!(
                "unknown subscription type {:?} (expected \"stream\", \"map\", \"map_clients\", \"map_users\" or \"shared_poll\")",
                o.subscription_type.as_str()
            ),
        );
    }
    validate_regex(v, &key("channel_regex"), &o.channel_regex);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Namespace;
    use crate::values::{DataFormat, DeltaType, ErrorMode, RecoveryMode};

    fn errors(c: &Config) -> Vec<String> {
        match c.validate() {
            Ok(()) => Vec::new(),
            Err(ConfigError::Validation(v)) => v,
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    fn ns(name: &str, options: ChannelOptions) -> Namespace {
        Namespace {
            name: name.to_owned(),
            options,
        }
    }

    fn has(errs: &[String], key: &str) -> bool {
        errs.iter().any(|e| e.starts_with(&format!("{key}: ")))
    }

    #[test]
    fn defaults_are_valid() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn namespace_names() {
        let mut c = Config::default();
        c.channel.namespaces = vec![
            ns("ok-name_1.x", ChannelOptions::default()),
            ns("a", ChannelOptions::default()),
            ns("bad name", ChannelOptions::default()),
            ns("ok-name_1.x", ChannelOptions::default()),
        ];
        let e = errors(&c);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(has(&e, "channel.namespaces[1].name"));
        assert!(has(&e, "channel.namespaces[2].name"));
        assert!(e.iter().any(|m| m.contains("duplicate")));
    }

    #[test]
    fn history_pairs_and_whole_seconds() {
        let mut c = Config::default();
        c.channel.without_namespace.history_size = 10;
        let e = errors(&c);
        assert!(has(&e, "channel.without_namespace.history_ttl"), "{e:?}");

        let mut c = Config::default();
        c.channel.namespaces = vec![ns(
            "ns",
            ChannelOptions {
                history_ttl: Duration::from_secs(5),
                ..Default::default()
            },
        )];
        assert!(has(&errors(&c), "channel.namespaces[0].history_size"));

        let mut c = Config::default();
        c.channel.without_namespace.history_size = 10;
        c.channel.without_namespace.history_ttl = Duration::from_millis(1500);
        let e = errors(&c);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("whole number of seconds"));

        let mut c = Config::default();
        c.channel.without_namespace.history_size = 10;
        c.channel.without_namespace.history_ttl = Duration::from_secs(100);
        c.channel.without_namespace.history_meta_ttl = Some(Duration::from_secs(50));
        assert!(has(&errors(&c), "channel.without_namespace.history_ttl"));
    }

    #[test]
    fn recovery_requires_history() {
        let mut c = Config::default();
        c.channel.without_namespace.force_recovery = true;
        c.channel.without_namespace.allow_recovery = true;
        let e = errors(&c);
        assert!(has(&e, "channel.without_namespace.force_recovery"));
        assert!(has(&e, "channel.without_namespace.allow_recovery"));
        c.channel.without_namespace.history_size = 1;
        c.channel.without_namespace.history_ttl = Duration::from_secs(1);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn option_enums_and_regexes() {
        let mut c = Config::default();
        let o = &mut c.channel.without_namespace;
        o.allowed_delta_types = vec![DeltaType::Fossil, DeltaType::parse("xdelta")];
        o.force_recovery_mode = RecoveryMode::parse("fast");
        o.publication_data_format = DataFormat::parse("xml");
        o.channel_regex = "([a-z".to_owned();
        c.channel.publication_data_format = DataFormat::parse("yaml");
        c.client.token.issuer_regex = "(".to_owned();
        c.engine.kind = EngineKind::parse("nats");
        c.log.level = crate::LogLevel::parse("loud");
        c.http_api.error_mode = ErrorMode::parse("weird");
        let e = errors(&c);
        for key in [
            "channel.without_namespace.allowed_delta_types",
            "channel.without_namespace.force_recovery_mode",
            "channel.without_namespace.publication_data_format",
            "channel.without_namespace.channel_regex",
            "channel.publication_data_format",
            "client.token.issuer_regex",
            "engine.type",
            "log.level",
            "http_api.error_mode",
        ] {
            assert!(has(&e, key), "missing {key} in {e:?}");
        }
        assert_eq!(e.len(), 9, "{e:?}");
    }

    #[test]
    fn recovery_modes_accepted() {
        for mode in ["", "stream", "cache"] {
            let mut c = Config::default();
            c.channel.without_namespace.force_recovery_mode = RecoveryMode::parse(mode);
            assert!(c.validate().is_ok(), "{mode}");
        }
    }

    #[test]
    fn auto_cache_recover_needs_forced_cache_recovery() {
        let mut c = Config::default();
        let o = &mut c.channel.without_namespace;
        o.auto_cache_recover = true;
        o.history_size = 1;
        o.history_ttl = Duration::from_secs(60);
        assert!(has(
            &errors(&c),
            "channel.without_namespace.auto_cache_recover"
        ));
        c.channel.without_namespace.force_recovery = true;
        assert!(has(
            &errors(&c),
            "channel.without_namespace.auto_cache_recover"
        ));
        c.channel.without_namespace.force_recovery_mode = RecoveryMode::parse("cache");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn ping_pong() {
        let mut c = Config::default();
        c.client.ping_interval = Duration::from_secs(5);
        c.client.pong_timeout = Duration::from_secs(5);
        assert!(has(&errors(&c), "client.ping_interval"));
        c.client.pong_timeout = Duration::ZERO;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn personal_channel_namespace() {
        let mut c = Config::default();
        let p = &mut c.client.subscribe_to_user_personal_channel;
        p.enabled = true;
        p.personal_channel_namespace = "personal".to_owned();
        p.single_connection = true;
        let e = errors(&c);
        assert!(has(
            &e,
            "client.subscribe_to_user_personal_channel.personal_channel_namespace"
        ));
        c.channel.namespaces = vec![ns("personal", ChannelOptions::default())];
        let e = errors(&c);
        assert!(has(
            &e,
            "client.subscribe_to_user_personal_channel.single_connection"
        ));
        c.channel.namespaces[0].options.presence = true;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn redis_needs_address() {
        let mut c = Config::default();
        c.engine.kind = EngineKind::Redis;
        assert!(c.validate().is_ok());
        c.engine.redis.address.clear();
        assert!(has(&errors(&c), "engine.redis.address"));
    }

    #[test]
    fn compression_level_is_1_to_9_and_the_inflated_limit_defaults_to_ten_messages() {
        let mut c = Config::default();
        assert_eq!(c.websocket.effective_decompressed_limit(), 655_360);
        c.websocket.compression_level = 0;
        assert!(has(&errors(&c), "websocket.compression_level"));
        c.websocket.compression_level = 10;
        assert!(has(&errors(&c), "websocket.compression_level"));
        c.websocket.compression_level = 9;
        c.websocket.decompressed_message_size_limit = 1000;
        assert!(c.validate().is_ok());
        assert_eq!(c.websocket.effective_decompressed_limit(), 1000);
    }

    #[test]
    fn redis_sentinel_and_tls_rules() {
        let mut c = Config::default();
        c.engine.kind = EngineKind::Redis;
        c.engine.redis.sentinel_address = vec!["127.0.0.1:26379".to_owned()];
        assert!(has(&errors(&c), "engine.redis.sentinel_master_name"));
        c.engine.redis.sentinel_master_name = "mymaster".to_owned();
        assert!(c.validate().is_ok());
        c.engine.redis.cluster_address = vec!["127.0.0.1:7000".to_owned()];
        assert!(has(&errors(&c), "engine.redis.cluster_address"));
        c.engine.redis.sentinel_address.clear();
        c.engine.redis.tls.enabled = true;
        c.engine.redis.db = 1;
        let errs = errors(&c);
        assert!(has(&errs, "engine.redis.tls.enabled") && has(&errs, "engine.redis.db"));
        c.engine.redis.tls.enabled = false;
        c.engine.redis.db = 0;
        c.engine.redis.cluster_address.clear();
        c.engine.redis.tls.cert_pem_file = "client.crt".to_owned();
        assert!(has(&errors(&c), "engine.redis.tls.key_pem"));
        c.engine.redis.tls.key_pem = "client.key".to_owned();
        assert!(c.validate().is_ok());
        c.engine.redis.sentinel_tls.key_pem = "k".to_owned();
        assert!(has(&errors(&c), "engine.redis.sentinel_tls.cert_pem"));
    }
}
