//! Closed sets of configuration values, parsed once when the configuration is read.
//!
//! Each set is an enum with one variant per accepted value and an `Unknown` variant holding
//! anything else, so that loading never fails on a value and [`crate::Config::validate`]
//! reports every unknown one naming its key. A validated configuration holds no `Unknown`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! closed_set {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value outside the set (rejected by validation).
            Unknown(String),
        }

        impl $name {
            /// Parses a configuration value; anything outside the set is `Unknown`.
            pub fn parse(text: &str) -> Self {
                match text {
                    $( $text $(| $alias)* => Self::$variant, )+
                    other => Self::Unknown(other.to_owned()),
                }
            }

            /// The value as written in the configuration.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )+
                    Self::Unknown(text) => text,
                }
            }

            /// Whether the value is one of the set.
            pub fn is_known(&self) -> bool {
                !matches!(self, Self::Unknown(_))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(|text| Self::parse(&text))
            }
        }
    };
}

closed_set! {
    /// The engine (`engine.type`).
    #[derive(Default)]
    EngineKind {
        /// In-process streams and presence: a single node.
        #[default]
        Memory = "memory",
        /// Redis: many nodes sharing one or more Redis instances.
        Redis = "redis",
    }
}

closed_set! {
    /// The standalone broker (`broker.type`, with `broker.enabled`).
    #[derive(Default)]
    BrokerKind {
        /// In-process delivery and streams: a single node.
        #[default]
        Memory = "memory",
        /// Redis Pub/Sub and streams (`broker.redis`).
        Redis = "redis",
        /// NATS subjects, at most once, no history (`broker.nats`).
        Nats = "nats",
        /// PostgreSQL streams and outbox (`broker.postgres`).
        Postgres = "postgres",
    }
}

closed_set! {
    /// The standalone presence manager (`presence_manager.type`, with
    /// `presence_manager.enabled`).
    #[derive(Default)]
    PresenceManagerKind {
        /// In-process presence: a single node.
        #[default]
        Memory = "memory",
        /// Redis hashes and sorted sets (`presence_manager.redis`).
        Redis = "redis",
    }
}

closed_set! {
    /// The controller (`controller.type`, with `controller.enabled`).
    #[derive(Default)]
    ControllerKind {
        /// Not set.
        #[default]
        None = "",
        /// PostgreSQL message table (`controller.postgres`).
        Postgres = "postgres",
    }
}

closed_set! {
    /// How the server API reports errors (`http_api.error_mode`).
    #[derive(Default)]
    ErrorMode {
        /// Errors in the response body, with HTTP 200.
        #[default]
        Body = "",
        /// Errors as HTTP status codes.
        Transport = "transport",
    }
}

closed_set! {
    /// How a channel recovers missed publications (`force_recovery_mode`).
    #[derive(Default)]
    RecoveryMode {
        /// Replay all publications since the client's position (default; also `""`).
        #[default]
        Stream = "stream" | "",
        /// Deliver only the latest publication.
        Cache = "cache",
    }
}

closed_set! {
    /// A delta compression type (`allowed_delta_types`).
    DeltaType {
        /// Fossil delta.
        Fossil = "fossil",
    }
}

closed_set! {
    /// The data format publications must have (`publication_data_format`).
    #[derive(Default)]
    DataFormat {
        /// Any payload (default).
        #[default]
        Any = "",
        /// JSON values.
        Json = "json",
        /// JSON objects.
        JsonObject = "json_object",
        /// Binary payloads (may be empty).
        Binary = "binary",
    }
}

closed_set! {
    /// What subscribing to a channel of a namespace gives (`subscription_type`).
    #[derive(Default)]
    SubscriptionType {
        /// A stream of publications (default; also `""`).
        #[default]
        Stream = "stream" | "",
        /// A keyed state (map subscription).
        Map = "map",
        /// A map of the channel's clients.
        MapClients = "map_clients",
        /// A map of the channel's users.
        MapUsers = "map_users",
        /// Keys polled from the backend and shared by every subscriber of a node.
        SharedPoll = "shared_poll",
    }
}

closed_set! {
    /// How much the server logs (`log.level`).
    #[derive(Default)]
    LogLevel {
        /// Everything, including per-message traces.
        Trace = "trace",
        /// Debugging details.
        Debug = "debug",
        /// Start-up, shutdown and notable events (default).
        #[default]
        Info = "info",
        /// Warnings and errors.
        Warn = "warn",
        /// Errors only.
        Error = "error",
        /// Fatal errors only (as errors: Gyre has no separate fatal level).
        Fatal = "fatal",
        /// Nothing.
        None = "none",
    }
}

impl LogLevel {
    /// The `tracing` filter directive for this level.
    pub fn filter(&self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info | Self::Unknown(_) => "info",
            Self::Warn => "warn",
            Self::Error | Self::Fatal => "error",
            Self::None => "off",
        }
    }
}

closed_set! {
    /// How a map channel keeps its state (`map.mode`).
    #[derive(Default)]
    MapMode {
        /// Not set (required for map namespaces, checked by validation).
        #[default]
        Unset = "",
        /// Keys expire (`key_ttl`), no change stream: every subscribe loads the full state.
        Ephemeral = "ephemeral",
        /// Keys expire and a change stream allows recovery.
        Recoverable = "recoverable",
        /// Keys never expire; a change stream allows recovery.
        Persistent = "persistent",
    }
}

closed_set! {
    /// Which key a client's map publication writes (`map.client_key`).
    #[derive(Default)]
    MapClientKey {
        /// The key the client sends.
        #[default]
        Given = "",
        /// The client's connection id.
        ClientId = "client_id",
        /// The client's user id (anonymous clients are refused).
        UserId = "user_id",
    }
}

closed_set! {
    /// Where map state lives (`map_broker.type`).
    #[derive(Default)]
    MapBrokerKind {
        /// In this process (default).
        #[default]
        Memory = "memory" | "",
        /// Redis, shared by every node (`map_broker.redis`).
        Redis = "redis",
        /// PostgreSQL (parsed, not served yet).
        Postgres = "postgres",
    }
}

closed_set! {
    /// How a shared poll backend reports changes (`shared_poll.mode`).
    #[derive(Default)]
    SharedPollMode {
        /// The backend answers `{key, data}`; the server detects changes by content and
        /// numbers them itself (default; also `""`).
        #[default]
        Versionless = "versionless" | "",
        /// The backend answers `{key, data, version}`; higher versions are changes.
        Versioned = "versioned",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_once_and_keep_unknown_ones_for_validation() {
        assert_eq!(EngineKind::parse("redis"), EngineKind::Redis);
        assert_eq!(RecoveryMode::parse(""), RecoveryMode::Stream);
        assert_eq!(RecoveryMode::parse("cache"), RecoveryMode::Cache);
        let odd = DataFormat::parse("xml");
        assert!(!odd.is_known());
        assert_eq!(odd.as_str(), "xml");
        let mode: ErrorMode = serde_json::from_str("\"transport\"").expect("parses");
        assert_eq!(mode, ErrorMode::Transport);
        assert_eq!(
            serde_json::to_string(&DeltaType::Fossil).expect("serializes"),
            "\"fossil\""
        );
    }
}

closed_set! {
    /// The kind of an asynchronous consumer (`consumers[].type`), upstream's set.
    #[derive(Default)]
    ConsumerKind {
        /// Not set (rejected by validation).
        #[default]
        Unset = "",
        /// A PostgreSQL outbox table.
        Postgresql = "postgresql",
        /// Redis Streams with a consumer group.
        RedisStream = "redis_stream",
        /// A NATS JetStream durable consumer.
        NatsJetStream = "nats_jetstream",
        /// Kafka topics (not implemented in Gyre).
        Kafka = "kafka",
        /// Google Cloud Pub/Sub subscriptions (not implemented in Gyre).
        GooglePubSub = "google_pub_sub",
        /// AWS SQS queues (not implemented in Gyre).
        AwsSqs = "aws_sqs",
        /// Azure Service Bus queues (not implemented in Gyre).
        AzureServiceBus = "azure_service_bus",
    }
}

closed_set! {
    /// Where a new JetStream consumer starts (`consumers[].nats_jetstream.deliver_policy`).
    #[derive(Default)]
    DeliverPolicy {
        /// Only messages stored after the consumer was created (default).
        #[default]
        New = "new",
        /// Every message in the stream.
        All = "all",
    }
}
