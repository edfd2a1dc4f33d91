//! The PostgreSQL sections (Centrifugo v6.8): `broker.postgres` (streams, history and
//! delivery through an outbox table, with transactional publishing from the application's own
//! SQL) and the top-level `controller` section (node-to-node control over PostgreSQL).

use serde::{Deserialize, Serialize};

use crate::values::ControllerKind;
use crate::{Duration, RedisTlsConfig};

/// `broker.postgres.outbox`: how each node reads the stream table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PostgresOutboxConfig {
    /// How often the stream table is polled when idle (and NOTIFY did not wake the reader).
    pub poll_interval: Duration,
    /// Rows read per shard in one poll.
    pub batch_size: u32,
}

impl Default for PostgresOutboxConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(100),
            batch_size: 1000,
        }
    }
}

/// `broker.postgres` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PostgresBrokerConfig {
    /// PostgreSQL connection string (`postgres://user:pass@host:5432/db?sslmode=disable`, or
    /// the `key=value` form).
    pub dsn: String,
    /// TLS for every connection of the broker (instead of TLS parameters in the DSN).
    pub tls: RedisTlsConfig,
    /// Maximum connections in the pool (publish, history).
    pub pool_size: u32,
    /// Channels are spread over this many shards (`hashtext(channel) % num_shards`); each
    /// shard keeps its own commit order.
    pub num_shards: u32,
    /// How often expired channel metadata and idempotency results are deleted, and daily
    /// partitions are created and dropped.
    pub cleanup_interval: Duration,
    /// How long the result of a publication with an idempotency key is kept.
    pub idempotent_result_ttl: Duration,
    /// Keep data in BYTEA columns (the `<prefix>_binary_stream_*` tables) instead of JSONB.
    pub binary_data: bool,
    /// How long a channel's epoch and top offset are kept when no meta TTL is configured.
    pub stream_retention: Duration,
    /// Wake readers with LISTEN/NOTIFY instead of waiting for the next poll.
    pub use_notify: bool,
    /// Separate connection string for the reading connection (LISTEN does not pass PgBouncer
    /// in transaction mode).
    pub notify_dsn: String,
    /// Prefix of every table and function (`cf` gives `cf_stream`, `cf_stream_meta`,
    /// `cf_stream_publish`, ...).
    pub table_prefix: String,
    /// Do not create the schema at start-up (it is managed elsewhere).
    pub skip_schema_init: bool,
    /// How the stream table is read.
    pub outbox: PostgresOutboxConfig,
    /// Daily partitions created ahead of time.
    pub partition_lookahead_days: u32,
    /// Partitions older than this many days are dropped whole (0: never).
    pub partition_retention_days: u32,
}

impl Default for PostgresBrokerConfig {
    fn default() -> Self {
        Self {
            dsn: String::new(),
            tls: RedisTlsConfig::default(),
            pool_size: 16,
            num_shards: 8,
            cleanup_interval: Duration::from_secs(60),
            idempotent_result_ttl: Duration::from_secs(300),
            binary_data: false,
            stream_retention: Duration::from_secs(24 * 3600),
            use_notify: false,
            notify_dsn: String::new(),
            table_prefix: "cf".to_owned(),
            skip_schema_init: false,
            outbox: PostgresOutboxConfig::default(),
            partition_lookahead_days: 2,
            partition_retention_days: 7,
        }
    }
}

/// Checks shared by the PostgreSQL sections: a DSN, a usable table prefix, positive sizes and
/// intervals, client certificates with both halves.
fn common_violations(
    at: &str,
    dsn: &str,
    prefix: &str,
    tls: &RedisTlsConfig,
    positive: &[(&str, u64)],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut push = |key: &str, reason: &str| out.push((format!("{at}.{key}"), reason.to_owned()));
    if dsn.trim().is_empty() {
        push("dsn", "a PostgreSQL DSN is required");
    }
    let trimmed = prefix.trim_end_matches('_');
    let identifier = trimmed
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !identifier || trimmed.len() > 40 {
        push(
            "table_prefix",
            "must be a SQL identifier of letters, digits and underscores (at most 40)",
        );
    }
    for (key, value) in positive {
        if *value == 0 {
            push(key, "must be greater than zero");
        }
    }
    let cert =
        !(tls.cert_pem.is_empty() && tls.cert_pem_file.is_empty() && tls.cert_pem_b64.is_empty());
    let key =
        !(tls.key_pem.is_empty() && tls.key_pem_file.is_empty() && tls.key_pem_b64.is_empty());
    if cert != key {
        push(
            if cert { "tls.key_pem" } else { "tls.cert_pem" },
            "a client certificate needs both cert_pem and key_pem",
        );
    }
    out
}

impl PostgresBrokerConfig {
    /// Every error of this section as `(key, reason)`, keys under `at`.
    pub(crate) fn violations(&self, at: &str) -> Vec<(String, String)> {
        let mut out = common_violations(
            at,
            &self.dsn,
            &self.table_prefix,
            &self.tls,
            &[
                ("pool_size", u64::from(self.pool_size)),
                ("num_shards", u64::from(self.num_shards)),
                ("outbox.batch_size", u64::from(self.outbox.batch_size)),
                (
                    "outbox.poll_interval",
                    self.outbox.poll_interval.0.as_millis() as u64,
                ),
                (
                    "cleanup_interval",
                    self.cleanup_interval.0.as_millis() as u64,
                ),
                (
                    "partition_lookahead_days",
                    u64::from(self.partition_lookahead_days),
                ),
            ],
        );
        if self.num_shards > 1024 {
            out.push((format!("{at}.num_shards"), "at most 1024".to_owned()));
        }
        out
    }
}

/// `controller.postgres` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PostgresControllerConfig {
    /// PostgreSQL connection string.
    pub dsn: String,
    /// TLS for every connection of the controller.
    pub tls: RedisTlsConfig,
    /// Maximum connections in the pool.
    pub pool_size: u32,
    /// Shards of the message table (each keeps its own commit order).
    pub num_shards: u32,
    /// Prefix of the tables and functions (`cf` gives `cf_controller_messages`, ...).
    pub table_prefix: String,
    /// How often the message table is polled when idle.
    pub poll_interval: Duration,
    /// Wake readers with LISTEN/NOTIFY.
    pub use_notify: bool,
    /// Separate connection string for the reading connection.
    pub notify_dsn: String,
    /// Partitions older than this many days are dropped (control messages are short-lived).
    pub partition_retention_days: u32,
    /// Daily partitions created ahead of time.
    pub partition_lookahead_days: u32,
    /// How often partitions are created and dropped.
    pub partition_cleanup_interval: Duration,
    /// Rows read in one poll.
    pub batch_size: u32,
    /// Do not create the schema at start-up.
    pub skip_schema_init: bool,
}

impl Default for PostgresControllerConfig {
    fn default() -> Self {
        Self {
            dsn: String::new(),
            tls: RedisTlsConfig::default(),
            pool_size: 8,
            num_shards: 1,
            table_prefix: "cf".to_owned(),
            poll_interval: Duration::from_millis(50),
            use_notify: false,
            notify_dsn: String::new(),
            partition_retention_days: 1,
            partition_lookahead_days: 2,
            partition_cleanup_interval: Duration::from_secs(60),
            batch_size: 1000,
            skip_schema_init: false,
        }
    }
}

/// `controller` section: node-to-node control (heartbeats, surveys, forwarded commands)
/// without a Redis engine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ControllerConfig {
    /// Carry control over this controller instead of the broker.
    pub enabled: bool,
    /// "postgres".
    #[serde(rename = "type")]
    pub kind: ControllerKind,
    /// PostgreSQL controller settings (`type: postgres`).
    pub postgres: PostgresControllerConfig,
}

impl ControllerConfig {
    /// Every error of this section as `(key, reason)`.
    pub(crate) fn violations(&self) -> Vec<(String, String)> {
        if !self.enabled {
            return Vec::new();
        }
        match &self.kind {
            ControllerKind::Postgres => {
                let p = &self.postgres;
                common_violations(
                    "controller.postgres",
                    &p.dsn,
                    &p.table_prefix,
                    &p.tls,
                    &[
                        ("pool_size", u64::from(p.pool_size)),
                        ("num_shards", u64::from(p.num_shards)),
                        ("batch_size", u64::from(p.batch_size)),
                        ("poll_interval", p.poll_interval.0.as_millis() as u64),
                        (
                            "partition_cleanup_interval",
                            p.partition_cleanup_interval.0.as_millis() as u64,
                        ),
                        (
                            "partition_lookahead_days",
                            u64::from(p.partition_lookahead_days),
                        ),
                    ],
                )
            }
            ControllerKind::None => vec![(
                "controller.type".to_owned(),
                "required with controller.enabled (\"postgres\")".to_owned(),
            )],
            ControllerKind::Unknown(other) => vec![(
                "controller.type".to_owned(),
                format!("unknown controller type {other:?} (expected \"postgres\")"),
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_section_needs_a_dsn_and_a_sane_prefix() {
        let mut c = PostgresBrokerConfig::default();
        let v = c.violations("broker.postgres");
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].0, "broker.postgres.dsn");
        c.dsn = "postgres://localhost/db".to_owned();
        assert!(c.violations("broker.postgres").is_empty());
        c.table_prefix = "bad-prefix; drop".to_owned();
        c.num_shards = 0;
        let keys: Vec<String> = c
            .violations("broker.postgres")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            ["broker.postgres.table_prefix", "broker.postgres.num_shards"]
        );
    }

    #[test]
    fn validation_and_the_missing_controller_warning() {
        let mut c = crate::Config::default();
        c.broker.enabled = true;
        c.broker.kind = crate::BrokerKind::Postgres;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("broker.postgres.dsn"), "{err}");
        c.broker.postgres.dsn = "postgres://localhost/app".to_owned();
        assert!(c.validate().is_ok());
        let warned = |c: &crate::Config| {
            c.inactive_key_warnings()
                .iter()
                .any(|w| w.contains("no node-to-node control"))
        };
        assert!(warned(&c));
        c.controller.enabled = true;
        c.controller.kind = ControllerKind::Postgres;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("controller.postgres.dsn")
        );
        c.controller.postgres.dsn = "postgres://localhost/app".to_owned();
        assert!(c.validate().is_ok());
        assert!(!warned(&c));
    }

    #[test]
    fn environment_variables_reach_nested_keys() {
        let vars = crate::known_env_vars();
        for (env, key) in [
            ("CENTRIFUGO_BROKER_POSTGRES_DSN", "broker.postgres.dsn"),
            (
                "CENTRIFUGO_BROKER_POSTGRES_OUTBOX_POLL_INTERVAL",
                "broker.postgres.outbox.poll_interval",
            ),
            (
                "CENTRIFUGO_CONTROLLER_POSTGRES_DSN",
                "controller.postgres.dsn",
            ),
            ("CENTRIFUGO_CONTROLLER_ENABLED", "controller.enabled"),
        ] {
            assert!(
                vars.iter().any(|(e, k)| e == env && k == key),
                "{env} -> {key} missing"
            );
        }
    }

    #[test]
    fn controller_section_is_checked_only_when_enabled() {
        let mut c = ControllerConfig::default();
        assert!(c.violations().is_empty());
        c.enabled = true;
        assert_eq!(c.violations()[0].0, "controller.type");
        c.kind = ControllerKind::Postgres;
        assert_eq!(c.violations()[0].0, "controller.postgres.dsn");
        c.postgres.dsn = "host=localhost".to_owned();
        assert!(c.violations().is_empty());
        c.kind = ControllerKind::parse("redis");
        assert!(c.violations()[0].1.contains("unknown controller type"));
    }
}
