//! The `map_broker` section: where map subscription state lives. As in Centrifugo v6 it is
//! chosen by `map_broker.type` alone, whatever the engine: "memory" (one node), "redis"
//! (every node sharing one Redis, settings under `map_broker.redis`) or "postgres" (parsed,
//! not served).

use serde::{Deserialize, Serialize};

use crate::values::MapBrokerKind;
use crate::{Duration, RedisConfig};

/// How often expired keys of the Redis map broker get their removals by default.
pub const DEFAULT_MAP_CLEANUP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// Expired keys handled per channel and cleanup round by default.
pub const DEFAULT_MAP_CLEANUP_BATCH_SIZE: usize = 100;

/// The `map_broker` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MapBrokerConfig {
    /// "memory" (default), "redis" or "postgres" (parsed, not served yet).
    #[serde(rename = "type")]
    pub kind: MapBrokerKind,
    /// Redis map broker settings (`type: redis`).
    pub redis: RedisMapBrokerConfig,
}

/// `map_broker.redis`: the connection settings of every Redis section plus the map
/// broker's own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisMapBrokerConfig {
    /// Addresses, prefix, TLS and topology, as in `engine.redis`.
    #[serde(flatten)]
    pub redis: RedisConfig,
    /// How often expired keys are removed and their removals delivered (0: 1 s).
    pub cleanup_interval: Duration,
    /// Expired keys handled per channel and round (0: 100).
    pub cleanup_batch_size: usize,
    /// How long idempotent publish results are kept (parsed: map publishes have no
    /// idempotency key here).
    pub idempotent_result_ttl: Duration,
    /// Only update the state, leave delivery to another component (parsed, not served).
    pub skip_pub_sub: bool,
}

impl Default for RedisMapBrokerConfig {
    fn default() -> Self {
        Self {
            redis: RedisConfig::default(),
            cleanup_interval: Duration(DEFAULT_MAP_CLEANUP_INTERVAL),
            cleanup_batch_size: DEFAULT_MAP_CLEANUP_BATCH_SIZE,
            idempotent_result_ttl: Duration::from_secs(300),
            skip_pub_sub: false,
        }
    }
}

impl RedisMapBrokerConfig {
    /// The cleanup interval (0: the default).
    pub fn effective_cleanup_interval(&self) -> std::time::Duration {
        if self.cleanup_interval.is_zero() {
            DEFAULT_MAP_CLEANUP_INTERVAL
        } else {
            self.cleanup_interval.get()
        }
    }

    /// The cleanup batch size (0: the default).
    pub fn effective_cleanup_batch_size(&self) -> usize {
        if self.cleanup_batch_size == 0 {
            DEFAULT_MAP_CLEANUP_BATCH_SIZE
        } else {
            self.cleanup_batch_size
        }
    }
}

impl crate::Config {
    /// Every `map_broker` configuration error as `(key, reason)`.
    pub(crate) fn map_broker_violations(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match self.map_broker.kind {
            MapBrokerKind::Redis => out.extend(crate::redis::redis_violations(
                "map_broker.redis",
                &self.map_broker.redis.redis,
            )),
            MapBrokerKind::Memory | MapBrokerKind::Postgres => {}
            MapBrokerKind::Unknown(_) => out.push((
                "map_broker.type".to_owned(),
                format!(
                    "unknown map broker type {:?} (expected \"memory\", \"redis\" or \"postgres\")",
                    self.map_broker.kind.as_str()
                ),
            )),
        }
        out
    }

    /// Warnings about `map_broker` settings parsed but not served.
    pub(crate) fn map_broker_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let has_map = self
            .channel_options_by_key()
            .any(|(_, o)| o.subscription_type.is_map());
        match self.map_broker.kind {
            MapBrokerKind::Postgres => out.push(
                "key \"map_broker.type\": the \"postgres\" map broker is not implemented yet; map state is kept in this node's memory".to_owned(),
            ),
            MapBrokerKind::Redis => {
                let r = &self.map_broker.redis;
                if r.skip_pub_sub {
                    out.push("key \"map_broker.redis.skip_pub_sub\" is not implemented yet: the Redis map broker always delivers changes over Redis Pub/Sub".to_owned());
                }
                if r.idempotent_result_ttl != RedisMapBrokerConfig::default().idempotent_result_ttl {
                    out.push("key \"map_broker.redis.idempotent_result_ttl\" is not implemented yet: map publishes carry no idempotency key".to_owned());
                }
            }
            _ => {
                if has_map && self.engine.kind == crate::EngineKind::Redis {
                    out.push(
                        "key \"map_broker.type\": map state is kept in each node's memory (set map_broker.type to \"redis\" to share it between nodes)".to_owned(),
                    );
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::{Format, load_str};

    #[test]
    fn redis_map_broker_section_parses_and_is_checked() {
        let text = r#"{"map_broker":{"type":"redis","redis":{"address":"127.0.0.1:6390","prefix":"m","cleanup_batch_size":7}}}"#;
        let loaded = load_str(text, Format::Json, &[], &[]).expect("valid");
        let r = &loaded.config.map_broker.redis;
        assert_eq!(r.redis.address, vec!["127.0.0.1:6390".to_owned()]);
        assert_eq!(r.redis.prefix, "m");
        assert_eq!(r.effective_cleanup_batch_size(), 7);
        assert_eq!(
            r.effective_cleanup_interval(),
            super::DEFAULT_MAP_CLEANUP_INTERVAL
        );
        assert!(
            !loaded.warnings.iter().any(|w| w.contains("map_broker")),
            "{:?}",
            loaded.warnings
        );
        let bad = r#"{"map_broker":{"type":"redis","redis":{"address":[]}}}"#;
        assert!(load_str(bad, Format::Json, &[], &[]).is_err());
        let pg = r#"{"map_broker":{"type":"postgres"}}"#;
        let loaded = load_str(pg, Format::Json, &[], &[]).expect("valid");
        assert!(loaded.warnings.iter().any(|w| w.contains("postgres")));
    }
}
