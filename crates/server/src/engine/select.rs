//! Builds the engine a configuration asks for: the broker (the engine's, or the standalone
//! `broker` section), the presence manager (likewise with `presence_manager`), the control
//! bus, which travels with the broker so that every node hearing a channel's publications also
//! hears the cluster unless the `controller` section carries it (over PostgreSQL), and the map
//! broker (`map_broker.type` alone, as upstream: memory unless it says redis).

use std::sync::Arc;
use std::time::Duration;

use gyre_config::{
    BrokerKind, Config, ControllerKind, MapBrokerKind, PresenceManagerKind, RedisConfig,
};
use tokio_util::sync::CancellationToken;

use super::map::MapBroker;
use super::map::memory::MemoryMapBroker;
use super::memory::{MemoryBroker, MemoryControl};
use super::nats::NatsEngine;
use super::postgres::{PostgresBroker, PostgresControl};
use super::presence::MemoryPresence;
use super::redis::RedisEngine;
use super::redis::map::RedisMapBroker;
use super::{Engine, EngineEvents};

impl Engine {
    /// A single node's engine: everything in this process.
    pub(crate) fn memory(events: Arc<dyn EngineEvents>, shutdown: &CancellationToken) -> Self {
        Engine {
            broker: MemoryBroker::start(events.clone(), shutdown.clone()),
            presence: Arc::new(MemoryPresence::default()),
            control: Arc::new(MemoryControl),
            map: MemoryMapBroker::start(events, shutdown.clone()),
        }
    }

    /// The engine `config` asks for, reporting to `events`, with its background tasks
    /// running until `shutdown`. No I/O happens here: engines connect in the background and
    /// the node starts while their servers are down.
    pub(crate) async fn from_config(
        config: &Config,
        events: Arc<dyn EngineEvents>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        // One Redis engine per distinct Redis section, so an engine, broker and presence
        // manager configured alike share connections.
        let mut redis: Vec<(RedisConfig, Arc<RedisEngine>)> = Vec::new();
        let mut redis_for = async |section: &RedisConfig| -> anyhow::Result<Arc<RedisEngine>> {
            if let Some((_, engine)) = redis.iter().find(|(c, _)| c == section) {
                return Ok(engine.clone());
            }
            let engine = RedisEngine::connect(section, events.clone()).await?;
            engine.start(shutdown);
            redis.push((section.clone(), engine.clone()));
            Ok(engine)
        };
        let memory = Engine::memory(events.clone(), shutdown);
        let (broker, control): (Arc<dyn super::Broker>, Arc<dyn super::ControlBus>) =
            match config.effective_broker() {
                BrokerKind::Memory => (memory.broker.clone(), memory.control.clone()),
                BrokerKind::Redis => {
                    let section = if config.broker.enabled {
                        &config.broker.redis
                    } else {
                        &config.engine.redis
                    };
                    let engine = redis_for(section).await?;
                    (engine.clone(), engine)
                }
                BrokerKind::Nats => {
                    let engine =
                        NatsEngine::connect(&config.broker.nats, events.clone(), shutdown).await?;
                    engine.start();
                    (engine.clone(), engine)
                }
                BrokerKind::Postgres => {
                    let broker = PostgresBroker::new(&config.broker.postgres, events.clone())?;
                    broker.start(shutdown)?;
                    // As in Centrifugo, control goes over the `controller` section (below);
                    // without it each node only hears itself.
                    (broker, memory.control.clone())
                }
                other => anyhow::bail!("broker type {other} is not implemented yet"),
            };
        // The `controller` section replaces the broker's control bus.
        let control: Arc<dyn super::ControlBus> =
            match (&config.controller.enabled, &config.controller.kind) {
                (true, ControllerKind::Postgres) => {
                    let controller =
                        PostgresControl::new(&config.controller.postgres, events.clone())?;
                    controller.start(shutdown)?;
                    controller
                }
                (true, other) => anyhow::bail!("controller type {other:?} is not implemented"),
                (false, _) => control,
            };
        let presence: Arc<dyn super::PresenceManager> = match config.effective_presence_manager() {
            PresenceManagerKind::Memory => memory.presence.clone(),
            PresenceManagerKind::Redis => {
                let section = if config.presence_manager.enabled {
                    &config.presence_manager.redis
                } else {
                    &config.engine.redis
                };
                redis_for(section).await?
            }
            PresenceManagerKind::Unknown(other) => {
                anyhow::bail!("unknown presence manager type {other:?}")
            }
        };
        let map: Arc<dyn MapBroker> = match config.map_broker.kind {
            MapBrokerKind::Redis => {
                let section = &config.map_broker.redis;
                let engine = redis_for(&section.redis).await?;
                RedisMapBroker::start(
                    engine,
                    section.effective_cleanup_interval(),
                    section.effective_cleanup_batch_size(),
                    shutdown,
                )
            }
            // Postgres is warned about at start-up: map state stays in memory.
            _ => memory.map.clone(),
        };
        Ok(Engine {
            broker,
            presence,
            control,
            map,
        })
    }

    /// How long a starting node waits for its control bus: twice the Redis connect timeout
    /// or the NATS dial timeout (at least 2 s), nothing in memory.
    pub(crate) fn connect_wait(config: &Config) -> Duration {
        config
            .engine
            .redis
            .connect_timeout
            .0
            .max(config.broker.redis.connect_timeout.0)
            .max(config.broker.nats.dial_timeout.0)
            .max(Duration::from_secs(1))
            * 2
    }
}
