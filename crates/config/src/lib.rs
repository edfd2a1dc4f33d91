//! Centrifugo v6 compatible configuration for Gyre.
//!
//! This crate lets a Centrifugo user keep their configuration file: it loads JSON, YAML or
//! TOML files using Centrifugo v6 key names, overlays `CENTRIFUGO_*`/`GYRE_*` environment
//! variables and command-line overrides ([`load`]), validates the result
//! ([`Config::validate`]) and offers pure channel helpers used by the server at runtime
//! ([`Config::channel_options`], [`Config::check_channel`],
//! [`Config::user_allowed_in_channel`], [`Config::personal_channel`]).
//!
//! Unknown keys are reported as warnings, never errors, so configurations written for newer
//! Centrifugo versions (or using features Gyre does not implement, such as GRPC subscribe streams) still load.

#![warn(unreachable_pub)]

mod broker;
mod channel;
mod client;
mod config;
mod consumers;
mod de;
mod duration;
mod error;
mod grpc_api;
mod inactive;
mod load;
mod map;
mod map_broker;
mod nats;
mod options;
mod postgres;
mod proxy;
mod redis;
mod shared_poll;
mod validate;
mod values;

pub use broker::{BrokerConfig, PresenceManagerConfig};
pub use channel::ResolvedChannel;
pub use client::{ClientConfig, PersonalChannelConfig, SubscriptionTokenOptions, TokenOptions};
pub use config::{
    AdminConfig, Config, DEFAULT_MAX_REQUEST_BODY_SIZE, EmulationConfig, EngineConfig,
    HealthConfig, Http3Config, HttpApiConfig, HttpServerConfig, HttpStreamConfig, LogConfig,
    NodeConfig, PrometheusConfig, RedisConfig, RedisTlsConfig, RpcConfig, RpcPingConfig,
    ShutdownConfig, SseConfig, TlsAutocertConfig, UniHttpStreamConfig, UniSseConfig,
    UniWebSocketConfig, WebSocketConfig,
};
pub use consumers::{
    ConsumerConfig, NatsJetStreamConsumerConfig, NatsJetStreamPublicationDataMode, OpaqueSection,
    PostgresConsumerConfig, RedisStreamConsumerConfig, RedisStreamPublicationDataMode,
    consumer_kind_built,
};
pub use duration::{Duration, ParseDurationError};
pub use error::{ChannelError, ConfigError};
pub use grpc_api::GrpcApiConfig;
pub use load::{Format, Loaded, known_env_vars, load, load_str, render};
pub use map::{
    DEFAULT_MAP_MAX_PAGE_SIZE, DEFAULT_MAP_MIN_PAGE_SIZE, DEFAULT_MAP_PAGE_SIZE,
    DEFAULT_MAP_STREAM_SIZE, DEFAULT_MAP_STREAM_TTL, MapOptions,
};
pub use map_broker::{
    DEFAULT_MAP_CLEANUP_BATCH_SIZE, DEFAULT_MAP_CLEANUP_INTERVAL, MapBrokerConfig,
    RedisMapBrokerConfig,
};
pub use nats::{NatsBrokerConfig, NatsRawModeConfig};
pub use options::{ChannelConfig, ChannelOptions, Namespace};
pub use postgres::{
    ControllerConfig, PostgresBrokerConfig, PostgresControllerConfig, PostgresOutboxConfig,
};
pub use proxy::{
    ChannelProxyConfig, ClientProxyConfig, DEFAULT_PROXY_NAME, EnabledProxy, NamedProxy,
    NamespaceProxyOptions, ProxyGrpcOptions, ProxyHttpOptions, ProxyKind, ProxyOptions,
    RpcNamespace, RpcOptions, is_default_name,
};
pub use shared_poll::{SharedPollConfig, SharedPollOptions};
pub use values::{
    BrokerKind, ConsumerKind, ControllerKind, DataFormat, DeliverPolicy, DeltaType, EngineKind,
    ErrorMode, LogLevel, MapBrokerKind, MapClientKey, MapMode, PresenceManagerKind, RecoveryMode,
    SharedPollMode, SubscriptionType,
};
