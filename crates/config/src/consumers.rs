//! The `consumers` array: asynchronous consumers that read server API commands from a queue
//! (a PostgreSQL outbox table, Redis Streams, NATS JetStream, ...) and apply them, with
//! upstream's keys and defaults.
//!
//! Gyre runs the `postgresql`, `redis_stream` and `nats_jetstream` types. The other upstream types are parsed
//! (their sections are kept as given) and an enabled one gets a start-up warning saying it
//! is not implemented, so no consumer is silently dropped.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::values::{ConsumerKind, DeliverPolicy};
use crate::{Duration, RedisConfig, RedisTlsConfig};

/// The options of a consumer type Gyre does not build, kept as written.
pub type OpaqueSection = Map<String, Value>;

/// One entry of `consumers`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerConfig {
    /// Unique name (`^[a-zA-Z0-9_]{2,}$`), used in logs and metric labels.
    pub name: String,
    /// Run this consumer.
    pub enabled: bool,
    /// Which queue it reads.
    #[serde(rename = "type")]
    pub kind: ConsumerKind,
    /// `type: postgresql` options.
    pub postgresql: PostgresConsumerConfig,
    /// `type: redis_stream` options.
    pub redis_stream: RedisStreamConsumerConfig,
    /// `type: nats_jetstream` options.
    pub nats_jetstream: NatsJetStreamConsumerConfig,
    /// `type: kafka` options (not implemented in Gyre).
    pub kafka: OpaqueSection,
    /// `type: google_pub_sub` options (not implemented in Gyre).
    pub google_pub_sub: OpaqueSection,
    /// `type: aws_sqs` options (not implemented in Gyre).
    pub aws_sqs: OpaqueSection,
    /// `type: azure_service_bus` options (not implemented in Gyre).
    pub azure_service_bus: OpaqueSection,
}

/// `consumers[].postgresql`: an outbox table with columns `id bigserial`, `method text`,
/// `payload jsonb`, `partition bigint` (and usually `created_at`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PostgresConsumerConfig {
    /// Connection string (`postgres://user:pass@host:5432/db`).
    pub dsn: String,
    /// The outbox table (`name` or `schema.name`).
    pub outbox_table_name: String,
    /// Partitions consumed in parallel, one worker each (0 means 1).
    pub num_partitions: u32,
    /// Most rows one worker reads per query (0 means 100).
    pub partition_select_limit: u32,
    /// How often an idle partition is polled (0 means 300ms).
    pub partition_poll_interval: Duration,
    /// `LISTEN` channel whose notifications (payload: a partition number) wake a partition up.
    pub partition_notification_channel: String,
    /// A separate connection string for the `LISTEN` connection ("" uses `dsn`).
    pub partition_notification_dsn: String,
    /// TLS for the connections.
    pub tls: RedisTlsConfig,
    /// Skip a partition whose lock another node holds (`pg_try_advisory_xact_lock`) instead
    /// of waiting for it.
    pub use_try_lock: bool,
}

impl Default for PostgresConsumerConfig {
    fn default() -> Self {
        Self {
            dsn: String::new(),
            outbox_table_name: String::new(),
            num_partitions: 1,
            partition_select_limit: 100,
            partition_poll_interval: Duration::from_millis(300),
            partition_notification_channel: String::new(),
            partition_notification_dsn: String::new(),
            tls: RedisTlsConfig::default(),
            use_try_lock: false,
        }
    }
}

impl PostgresConsumerConfig {
    /// Partitions to consume (at least one).
    pub fn partitions(&self) -> u32 {
        self.num_partitions.max(1)
    }

    /// Rows per query (100 when unset).
    pub fn select_limit(&self) -> u32 {
        if self.partition_select_limit == 0 {
            100
        } else {
            self.partition_select_limit
        }
    }

    /// Poll interval of an idle partition (300ms when unset).
    pub fn poll_interval(&self) -> std::time::Duration {
        if self.partition_poll_interval.is_zero() {
            std::time::Duration::from_millis(300)
        } else {
            self.partition_poll_interval.0
        }
    }
}

/// `consumers[].redis_stream`: the Redis connection keys of the other Redis sections plus
/// the stream options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisStreamConsumerConfig {
    /// Connection (`address`, `user`, `password`, `db`, `tls`, Sentinel, Cluster, ...).
    #[serde(flatten)]
    pub redis: RedisConfig,
    /// Stream keys to read.
    pub streams: Vec<String>,
    /// Consumer group (created at the end of each stream when missing).
    pub consumer_group: String,
    /// How long a read entry may stay unacknowledged before another worker claims it.
    pub visibility_timeout: Duration,
    /// Workers per stream (0 means 1).
    pub num_workers: u32,
    /// Field holding the payload.
    pub payload_value: String,
    /// Field holding the API method; when present the payload is the request itself.
    pub method_value: String,
    /// Publish the payload field itself to channels named in the entry.
    pub publication_data_mode: RedisStreamPublicationDataMode,
}

impl Default for RedisStreamConsumerConfig {
    fn default() -> Self {
        Self {
            redis: RedisConfig::default(),
            streams: Vec::new(),
            consumer_group: String::new(),
            visibility_timeout: Duration::from_secs(30),
            num_workers: 1,
            payload_value: "payload".to_owned(),
            method_value: "method".to_owned(),
            publication_data_mode: RedisStreamPublicationDataMode::default(),
        }
    }
}

impl RedisStreamConsumerConfig {
    /// Workers per stream (at least one).
    pub fn workers(&self) -> u32 {
        self.num_workers.max(1)
    }
}

/// `consumers[].redis_stream.publication_data_mode`: the entry's payload field is the
/// publication data; other fields name the channels and publication options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisStreamPublicationDataMode {
    /// Use this mode instead of API commands.
    pub enabled: bool,
    /// Field with comma-separated channels.
    pub channels_value: String,
    /// Field with the idempotency key.
    pub idempotency_key_value: String,
    /// Field with the delta flag (`true`/`false`).
    pub delta_value: String,
    /// Field with the publication version.
    pub version_value: String,
    /// Field with the version epoch.
    pub version_epoch_value: String,
    /// Prefix of fields that become publication tags.
    pub tags_value_prefix: String,
}

impl Default for RedisStreamPublicationDataMode {
    fn default() -> Self {
        Self {
            enabled: false,
            channels_value: "centrifugo-channels".to_owned(),
            idempotency_key_value: "centrifugo-idempotency-key".to_owned(),
            delta_value: "centrifugo-delta".to_owned(),
            version_value: "centrifugo-version".to_owned(),
            version_epoch_value: "centrifugo-version-epoch".to_owned(),
            tags_value_prefix: "centrifugo-tag-".to_owned(),
        }
    }
}

/// `consumers[].nats_jetstream`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsJetStreamConsumerConfig {
    /// NATS server URL.
    pub url: String,
    /// Credentials file (overrides user/password and token).
    pub credentials_file: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Token.
    pub token: String,
    /// The stream.
    pub stream_name: String,
    /// Attach to an existing durable consumer instead of creating it.
    pub use_existing_consumer: bool,
    /// Subjects the created consumer filters on.
    pub subjects: Vec<String>,
    /// Durable consumer name.
    pub durable_consumer_name: String,
    /// Where a created consumer starts.
    pub deliver_policy: DeliverPolicy,
    /// Most unacknowledged messages.
    pub max_ack_pending: i64,
    /// Header holding the API method; when present the payload is the request itself.
    pub method_header: String,
    /// Publish the payload itself to channels named in headers.
    pub publication_data_mode: NatsJetStreamPublicationDataMode,
    /// TLS.
    pub tls: RedisTlsConfig,
}

impl Default for NatsJetStreamConsumerConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            credentials_file: String::new(),
            username: String::new(),
            password: String::new(),
            token: String::new(),
            stream_name: String::new(),
            use_existing_consumer: false,
            subjects: Vec::new(),
            durable_consumer_name: String::new(),
            deliver_policy: DeliverPolicy::New,
            max_ack_pending: 100,
            method_header: "centrifugo-method".to_owned(),
            publication_data_mode: NatsJetStreamPublicationDataMode::default(),
            tls: RedisTlsConfig::default(),
        }
    }
}

/// `consumers[].nats_jetstream.publication_data_mode`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsJetStreamPublicationDataMode {
    /// Use this mode instead of API commands.
    pub enabled: bool,
    /// Header with comma-separated channels.
    pub channels_header: String,
    /// Header with the idempotency key.
    pub idempotency_key_header: String,
    /// Header with the delta flag.
    pub delta_header: String,
    /// Header with the publication version.
    pub version_header: String,
    /// Header with the version epoch.
    pub version_epoch_header: String,
    /// Prefix of headers that become publication tags.
    pub tags_header_prefix: String,
}

impl Default for NatsJetStreamPublicationDataMode {
    fn default() -> Self {
        Self {
            enabled: false,
            channels_header: "centrifugo-channels".to_owned(),
            idempotency_key_header: "centrifugo-idempotency-key".to_owned(),
            delta_header: "centrifugo-delta".to_owned(),
            version_header: "centrifugo-version".to_owned(),
            version_epoch_header: "centrifugo-version-epoch".to_owned(),
            tags_header_prefix: "centrifugo-tag-".to_owned(),
        }
    }
}

/// True when `name` matches upstream's `^[a-zA-Z0-9_]{2,}$`.
fn valid_consumer_name(name: &str) -> bool {
    name.len() >= 2 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// True for `ident` or `schema.ident`, each `[A-Za-z_][A-Za-z0-9_]*` (the table name is
/// written into SQL, so nothing else is accepted).
fn valid_table_name(name: &str) -> bool {
    let ident = |part: &str| {
        let mut bytes = part.bytes();
        bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() <= 2 && parts.iter().all(|p| ident(p))
}

/// Consumer types Gyre runs.
pub fn consumer_kind_built(kind: &ConsumerKind) -> bool {
    matches!(
        kind,
        ConsumerKind::Postgresql | ConsumerKind::RedisStream | ConsumerKind::NatsJetStream
    )
}

impl crate::Config {
    /// Every `consumers` error as `(key, reason)`: names match the pattern and are unique,
    /// types are known, and an enabled consumer has its required options.
    pub(crate) fn consumer_violations(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.consumers.iter().enumerate() {
            let at = format!("consumers[{i}]");
            let mut push = |key: &str, reason: String| out.push((format!("{at}.{key}"), reason));
            if !valid_consumer_name(&c.name) {
                push(
                    "name",
                    format!("{:?} must match ^[a-zA-Z0-9_]{{2,}}$", c.name),
                );
            } else if !seen.insert(c.name.as_str()) {
                push("name", format!("{:?} is used by another consumer", c.name));
            }
            if !c.kind.is_known() || c.kind == ConsumerKind::Unset {
                push(
                    "type",
                    format!(
                        "unknown consumer type {:?} (expected postgresql, kafka, nats_jetstream, \
                         redis_stream, google_pub_sub, aws_sqs or azure_service_bus)",
                        c.kind.as_str()
                    ),
                );
                continue;
            }
            if !c.enabled {
                continue;
            }
            match c.kind {
                ConsumerKind::Postgresql => {
                    let p = &c.postgresql;
                    if p.dsn.is_empty() {
                        push("postgresql.dsn", "required".to_owned());
                    }
                    if p.outbox_table_name.is_empty() {
                        push("postgresql.outbox_table_name", "required".to_owned());
                    } else if !valid_table_name(&p.outbox_table_name) {
                        push(
                            "postgresql.outbox_table_name",
                            format!(
                                "{:?} must be an identifier or schema.identifier",
                                p.outbox_table_name
                            ),
                        );
                    }
                }
                ConsumerKind::RedisStream => {
                    let r = &c.redis_stream;
                    for (key, reason) in
                        crate::redis::redis_violations(&format!("{at}.redis_stream"), &r.redis)
                    {
                        out.push((key, reason));
                    }
                    let mut push =
                        |key: &str, reason: String| out.push((format!("{at}.{key}"), reason));
                    if r.redis.address.len() > 1
                        && r.redis.cluster_address.is_empty()
                        && r.redis.sentinel_address.is_empty()
                    {
                        push(
                            "redis_stream.address",
                            "a consumer reads one Redis (one address)".to_owned(),
                        );
                    }
                    if r.streams.is_empty() || r.streams.iter().any(String::is_empty) {
                        push("redis_stream.streams", "at least one stream key".to_owned());
                    }
                    if r.consumer_group.is_empty() {
                        push("redis_stream.consumer_group", "required".to_owned());
                    }
                    if r.payload_value.is_empty() {
                        push("redis_stream.payload_value", "required".to_owned());
                    }
                    if r.publication_data_mode.enabled
                        && r.publication_data_mode.channels_value.is_empty()
                    {
                        push(
                            "redis_stream.publication_data_mode.channels_value",
                            "required with publication_data_mode".to_owned(),
                        );
                    }
                }
                ConsumerKind::NatsJetStream => {
                    let n = &c.nats_jetstream;
                    if n.url.is_empty() {
                        push("nats_jetstream.url", "required".to_owned());
                    }
                    if n.stream_name.is_empty() {
                        push("nats_jetstream.stream_name", "required".to_owned());
                    }
                    if n.durable_consumer_name.is_empty() {
                        push(
                            "nats_jetstream.durable_consumer_name",
                            "required".to_owned(),
                        );
                    }
                    if !n.use_existing_consumer && !n.deliver_policy.is_known() {
                        push(
                            "nats_jetstream.deliver_policy",
                            format!("{:?} is not \"new\" or \"all\"", n.deliver_policy.as_str()),
                        );
                    }
                    if n.publication_data_mode.enabled
                        && n.publication_data_mode.channels_header.is_empty()
                    {
                        push(
                            "nats_jetstream.publication_data_mode.channels_header",
                            "required with publication_data_mode".to_owned(),
                        );
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Start-up warnings: an enabled consumer of a type Gyre does not run, and settings of a
    /// running consumer that have no effect.
    pub(crate) fn consumer_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let redis_defaults = RedisConfig::default();
        for (i, c) in self.consumers.iter().enumerate() {
            if !c.enabled || !c.kind.is_known() || c.kind == ConsumerKind::Unset {
                continue;
            }
            let at = format!("consumers[{i}] ({:?})", c.name);
            if !consumer_kind_built(&c.kind) {
                out.push(format!(
                    "{at}: consumer type \"{}\" is not implemented in Gyre: nothing is consumed",
                    c.kind
                ));
                continue;
            }
            match c.kind {
                ConsumerKind::Postgresql if !c.postgresql.tls.server_name.is_empty() => {
                    out.push(format!(
                        "{at}: key \"postgresql.tls.server_name\" is not implemented yet: the dsn host is verified"
                    ))
                }
                ConsumerKind::NatsJetStream if c.nats_jetstream.tls.enabled => out.push(format!(
                    "{at}: key \"nats_jetstream.tls\" is not implemented yet: connections are plain"
                )),
                ConsumerKind::RedisStream => {
                    let r = &c.redis_stream.redis;
                    if r.prefix != redis_defaults.prefix {
                        out.push(format!(
                            "{at}: key \"redis_stream.prefix\" has no effect: stream keys are used as given"
                        ));
                    }
                    if r.presence_ttl != redis_defaults.presence_ttl {
                        out.push(format!(
                            "{at}: key \"redis_stream.presence_ttl\" has no effect on a consumer"
                        ));
                    }
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
