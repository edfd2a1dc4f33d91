//! The standalone `broker` and `presence_manager` sections (Centrifugo v6): when enabled they
//! replace the engine's broker or presence manager, so delivery can run on NATS or PostgreSQL
//! while presence stays in Redis or memory.

use serde::{Deserialize, Serialize};

use crate::values::{BrokerKind, EngineKind, PresenceManagerKind};
use crate::{NatsBrokerConfig, PostgresBrokerConfig, RedisConfig};

/// `broker` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BrokerConfig {
    /// Use this broker instead of the engine's.
    pub enabled: bool,
    /// "memory" (default), "redis", "nats" or "postgres".
    #[serde(rename = "type")]
    pub kind: BrokerKind,
    /// Redis broker settings (`type: redis`).
    pub redis: RedisConfig,
    /// NATS broker settings (`type: nats`).
    pub nats: NatsBrokerConfig,
    /// PostgreSQL broker settings (`type: postgres`).
    pub postgres: PostgresBrokerConfig,
}

/// `presence_manager` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PresenceManagerConfig {
    /// Use this presence manager instead of the engine's.
    pub enabled: bool,
    /// "memory" (default) or "redis".
    #[serde(rename = "type")]
    pub kind: PresenceManagerKind,
    /// Redis presence manager settings (`type: redis`).
    pub redis: RedisConfig,
}

impl crate::Config {
    /// The broker the node runs on: the standalone one when `broker.enabled`, else the
    /// engine's.
    pub fn effective_broker(&self) -> BrokerKind {
        if self.broker.enabled {
            return self.broker.kind.clone();
        }
        match &self.engine.kind {
            EngineKind::Redis => BrokerKind::Redis,
            _ => BrokerKind::Memory,
        }
    }

    /// The presence manager the node runs on: the standalone one when
    /// `presence_manager.enabled`, else the engine's.
    pub fn effective_presence_manager(&self) -> PresenceManagerKind {
        if self.presence_manager.enabled {
            return self.presence_manager.kind.clone();
        }
        match &self.engine.kind {
            EngineKind::Redis => PresenceManagerKind::Redis,
            _ => PresenceManagerKind::Memory,
        }
    }

    /// Every `broker` / `presence_manager` configuration error as `(key, reason)`.
    pub(crate) fn broker_violations(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.broker.kind.is_known() {
            out.push((
                "broker.type".to_owned(),
                format!(
                    "unknown broker type {:?} (expected \"memory\", \"redis\", \"nats\" or \"postgres\")",
                    self.broker.kind.as_str()
                ),
            ));
        }
        if !self.presence_manager.kind.is_known() {
            out.push((
                "presence_manager.type".to_owned(),
                format!(
                    "unknown presence manager type {:?} (expected \"memory\" or \"redis\")",
                    self.presence_manager.kind.as_str()
                ),
            ));
        }
        if self.broker.enabled {
            match self.broker.kind {
                BrokerKind::Redis => out.extend(crate::redis::redis_violations(
                    "broker.redis",
                    &self.broker.redis,
                )),
                BrokerKind::Nats => out.extend(self.broker.nats.violations("broker.nats")),
                BrokerKind::Postgres => {
                    out.extend(self.broker.postgres.violations("broker.postgres"))
                }
                _ => {}
            }
        }
        if self.presence_manager.enabled && self.presence_manager.kind == PresenceManagerKind::Redis
        {
            out.extend(crate::redis::redis_violations(
                "presence_manager.redis",
                &self.presence_manager.redis,
            ));
        }
        out.extend(self.controller.violations());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_sections_override_the_engine() {
        let mut c = crate::Config::default();
        assert_eq!(c.effective_broker(), BrokerKind::Memory);
        c.engine.kind = EngineKind::Redis;
        assert_eq!(c.effective_broker(), BrokerKind::Redis);
        assert_eq!(c.effective_presence_manager(), PresenceManagerKind::Redis);
        c.broker.enabled = true;
        c.broker.kind = BrokerKind::Nats;
        assert_eq!(c.effective_broker(), BrokerKind::Nats);
        assert_eq!(c.effective_presence_manager(), PresenceManagerKind::Redis);
        c.presence_manager.enabled = true;
        assert_eq!(c.effective_presence_manager(), PresenceManagerKind::Memory);
    }

    #[test]
    fn unknown_kinds_are_violations() {
        let mut c = crate::Config::default();
        c.broker.kind = BrokerKind::parse("kafka");
        c.presence_manager.kind = PresenceManagerKind::parse("etcd");
        let v = c.broker_violations();
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].0, "broker.type");
        assert_eq!(v[1].0, "presence_manager.type");
    }
}
