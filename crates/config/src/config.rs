//! The root [`Config`] type and the smaller top-level sections.

use serde::{Deserialize, Serialize};

use crate::values::{EngineKind, ErrorMode, LogLevel};

use crate::channel::ChannelIndex;
use crate::{ChannelConfig, ClientConfig, Duration};

/// Complete Gyre configuration using Centrifugo v6 key names.
///
/// `Config::default()` gives Centrifugo's defaults. Load a file with [`crate::load`], which
/// also validates and calls [`Config::prepare`]. A `Config` assembled by hand should be
/// checked with [`Config::validate`] and then prepared with [`Config::prepare`] so channel
/// resolution uses the precompiled namespace index. Equality ignores that index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Write the server's process id to this file at start-up and remove it at exit ("": none).
    pub pid_file: String,
    /// HTTP listener settings.
    pub http_server: HttpServerConfig,
    /// Logging settings.
    pub log: LogConfig,
    /// Broker/presence engine settings.
    pub engine: EngineConfig,
    /// Standalone broker, replacing the engine's when enabled.
    pub broker: crate::BrokerConfig,
    /// Standalone presence manager, replacing the engine's when enabled.
    pub presence_manager: crate::PresenceManagerConfig,
    /// Client connection settings.
    pub client: ClientConfig,
    /// Channel and namespace settings.
    pub channel: ChannelConfig,
    /// RPC settings.
    pub rpc: RpcConfig,
    /// Server HTTP API settings.
    pub http_api: HttpApiConfig,
    /// Server GRPC API settings.
    pub grpc_api: crate::GrpcApiConfig,
    /// WebSocket transport settings.
    pub websocket: WebSocketConfig,
    /// Health check endpoint.
    pub health: HealthConfig,
    /// Prometheus metrics endpoint.
    pub prometheus: PrometheusConfig,
    /// Admin web UI (parsed only).
    pub admin: AdminConfig,
    /// Node identity.
    pub node: NodeConfig,
    /// Graceful shutdown settings.
    pub shutdown: ShutdownConfig,
    /// Server-sent events (bidirectional emulation) transport.
    pub sse: SseConfig,
    /// HTTP streaming (bidirectional emulation) transport.
    pub http_stream: HttpStreamConfig,
    /// The endpoint of the emulation transports' client-to-server commands.
    pub emulation: EmulationConfig,
    /// Unidirectional WebSocket transport.
    pub uni_websocket: UniWebSocketConfig,
    /// Unidirectional SSE transport.
    pub uni_sse: UniSseConfig,
    /// Unidirectional HTTP-streaming transport.
    pub uni_http_stream: UniHttpStreamConfig,
    /// Where map subscription state lives.
    pub map_broker: crate::MapBrokerConfig,
    /// Named proxies, referred to by `*_proxy_name`.
    pub proxies: Vec<crate::NamedProxy>,
    /// Shared poll subscriptions (the track signature key).
    pub shared_poll: crate::SharedPollConfig,
    /// Node-to-node control over PostgreSQL (instead of the broker).
    pub controller: crate::ControllerConfig,
    /// Asynchronous consumers of server API commands (outbox table, Redis Streams, ...).
    pub consumers: Vec<crate::ConsumerConfig>,
    /// Runtime lookup tables built by [`Config::prepare`].
    #[serde(skip)]
    pub(crate) index: ChannelIndex,
}

impl Config {
    /// Serializes the configuration (including defaults) as pretty-printed JSON.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// `http_server` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpServerConfig {
    /// Address to bind ("" means all interfaces).
    pub address: String,
    /// External port for client transports.
    #[serde(deserialize_with = "crate::de::port")]
    pub port: u16,
    /// Address for internal endpoints ("" means same as `address`).
    pub internal_address: String,
    /// Port for internal endpoints (API, metrics, health); 0 means same as `port`.
    /// A numeric string is accepted, as Centrifugo declares this key as a string.
    #[serde(deserialize_with = "crate::de::port")]
    pub internal_port: u16,
    /// TLS of the listeners (the external port, and the internal one unless `tls_external`).
    pub tls: RedisTlsConfig,
    /// Automatic certificates from an ACME provider (parsed only: not implemented).
    pub tls_autocert: TlsAutocertConfig,
    /// TLS only on the external port when the internal port is separate.
    pub tls_external: bool,
    /// TLS of a separate internal port instead of `tls` (when enabled).
    pub internal_tls: RedisTlsConfig,
    /// HTTP/3 (parsed only: not implemented).
    pub http3: Http3Config,
}

/// `http_server.tls_autocert` section (parsed only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsAutocertConfig {
    /// Obtain certificates automatically.
    pub enabled: bool,
    /// Host names certificates may be obtained for.
    pub host_whitelist: Vec<String>,
    /// Directory the certificates are cached in.
    pub cache_dir: String,
    /// Contact e-mail of the ACME account.
    pub email: String,
    /// Name to use when a client sends no SNI.
    pub server_name: String,
    /// Serve the ACME HTTP-01 challenge.
    pub http: bool,
    /// Address of the HTTP-01 challenge listener.
    pub http_addr: String,
}

impl Default for TlsAutocertConfig {
    fn default() -> Self {
        TlsAutocertConfig {
            enabled: false,
            host_whitelist: Vec::new(),
            cache_dir: String::new(),
            email: String::new(),
            server_name: String::new(),
            http: false,
            http_addr: ":80".to_owned(),
        }
    }
}

/// `http_server.http3` section (parsed only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Http3Config {
    /// Serve HTTP/3 on the external port.
    pub enabled: bool,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            address: String::new(),
            port: 8000,
            internal_address: String::new(),
            internal_port: 0,
            tls: RedisTlsConfig::default(),
            tls_autocert: TlsAutocertConfig::default(),
            tls_external: false,
            internal_tls: RedisTlsConfig::default(),
            http3: Http3Config::default(),
        }
    }
}

impl HttpServerConfig {
    /// The port internal endpoints listen on (`internal_port`, or `port` when 0).
    pub fn effective_internal_port(&self) -> u16 {
        if self.internal_port == 0 {
            self.port
        } else {
            self.internal_port
        }
    }

    /// The address internal endpoints bind to (`internal_address`, or `address` when empty).
    pub fn effective_internal_address(&self) -> &str {
        if self.internal_address.is_empty() {
            &self.address
        } else {
            &self.internal_address
        }
    }
}

/// `log` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// Log level.
    pub level: LogLevel,
    /// Append logs to this file instead of writing them to standard output ("": standard output).
    pub file: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: LogLevel::Info,
            file: String::new(),
        }
    }
}

/// `engine` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    /// "memory" (default) or "redis".
    #[serde(rename = "type")]
    pub kind: EngineKind,
    /// Redis engine settings.
    pub redis: RedisConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            kind: EngineKind::Memory,
            redis: RedisConfig::default(),
        }
    }
}

/// `engine.redis` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    /// Redis addresses (`host:port` or `redis://...` URLs); several means sharding.
    /// A single string is accepted too.
    #[serde(deserialize_with = "crate::de::string_or_vec")]
    pub address: Vec<String>,
    /// Key prefix.
    pub prefix: String,
    /// ACL user name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Database number.
    pub db: u32,
    /// TLS settings.
    pub tls: RedisTlsConfig,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Read/write timeout.
    pub io_timeout: Duration,
    /// Presence entry lifetime.
    pub presence_ttl: Duration,
    /// Redis Cluster seed addresses (a single string is accepted too).
    #[serde(deserialize_with = "crate::de::string_or_vec")]
    pub cluster_address: Vec<String>,
    /// Redis Sentinel addresses (a single string is accepted too).
    #[serde(deserialize_with = "crate::de::string_or_vec")]
    pub sentinel_address: Vec<String>,
    /// Sentinel master name (required with `sentinel_address`).
    pub sentinel_master_name: String,
    /// ACL user name for the Sentinels.
    pub sentinel_user: String,
    /// Password for the Sentinels.
    pub sentinel_password: String,
    /// TLS settings for the Sentinel connections (the masters use `tls`).
    pub sentinel_tls: RedisTlsConfig,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            address: vec!["redis://127.0.0.1:6379".to_owned()],
            prefix: "centrifugo".to_owned(),
            user: String::new(),
            password: String::new(),
            db: 0,
            tls: RedisTlsConfig::default(),
            connect_timeout: Duration::from_secs(1),
            io_timeout: Duration::from_secs(4),
            presence_ttl: Duration::from_secs(60),
            cluster_address: Vec::new(),
            sentinel_address: Vec::new(),
            sentinel_master_name: String::new(),
            sentinel_user: String::new(),
            sentinel_password: String::new(),
            sentinel_tls: RedisTlsConfig::default(),
        }
    }
}

/// `engine.redis.tls` (and `engine.redis.sentinel_tls`) section.
///
/// As in Centrifugo v6, each `*_pem` value is raw PEM, base64-encoded PEM or the path of a PEM
/// file; the `*_pem_file` and `*_pem_b64` keys are accepted too (a path / base64 only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisTlsConfig {
    /// Connect over TLS (`rediss://` addresses do too).
    pub enabled: bool,
    /// Client certificate chain for mutual TLS (with `key_pem`).
    pub cert_pem: String,
    /// Path of the client certificate chain.
    pub cert_pem_file: String,
    /// Base64-encoded client certificate chain.
    pub cert_pem_b64: String,
    /// Client private key for mutual TLS (with `cert_pem`).
    pub key_pem: String,
    /// Path of the client private key.
    pub key_pem_file: String,
    /// Base64-encoded client private key.
    pub key_pem_b64: String,
    /// CA certificates that sign the server's certificate (the system roots when empty).
    pub server_ca_pem: String,
    /// Path of the server CA certificates.
    pub server_ca_pem_file: String,
    /// Base64-encoded server CA certificates.
    pub server_ca_pem_b64: String,
    /// CA certificates client certificates must be signed by (servers only: the HTTP server and
    /// the GRPC API then require a client certificate; clients warn that it is unused).
    pub client_ca_pem: String,
    /// Path of the client CA certificates.
    pub client_ca_pem_file: String,
    /// Base64-encoded client CA certificates.
    pub client_ca_pem_b64: String,
    /// Do not verify the server's certificate (testing only).
    pub insecure_skip_verify: bool,
    /// Name the server's certificate must have (and the SNI sent); the address host when empty.
    pub server_name: String,
}

/// `rpc` section: the built-in ping method and RPC proxies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcConfig {
    /// Built-in ping RPC method.
    pub ping: RpcPingConfig,
    /// Separator between RPC namespace and method.
    pub namespace_boundary: String,
    /// Default RPC proxy.
    pub proxy: crate::ProxyOptions,
    /// Options of methods without a namespace.
    pub without_namespace: crate::RpcOptions,
    /// RPC namespaces.
    pub namespaces: Vec<crate::RpcNamespace>,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            ping: RpcPingConfig::default(),
            namespace_boundary: ":".to_owned(),
            proxy: crate::ProxyOptions::default(),
            without_namespace: crate::RpcOptions::default(),
            namespaces: Vec::new(),
        }
    }
}

/// `rpc.ping` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcPingConfig {
    /// Answer RPC calls to `method` with an empty result.
    pub enabled: bool,
    /// Method name of the ping RPC.
    pub method: String,
}

impl Default for RpcPingConfig {
    fn default() -> Self {
        RpcPingConfig {
            enabled: false,
            method: "ping".to_owned(),
        }
    }
}

/// `http_api` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpApiConfig {
    /// Disable the server HTTP API.
    pub disabled: bool,
    /// URL prefix of the API.
    pub handler_prefix: String,
    /// API key expected in `X-API-Key` or `Authorization: apikey <key>`.
    pub key: String,
    /// "" (errors in response body) or "transport" (errors as HTTP status codes).
    pub error_mode: ErrorMode,
    /// Serve the API on the external port instead of the internal one.
    pub external: bool,
    /// Do not check the API key.
    pub insecure: bool,
}

impl Default for HttpApiConfig {
    fn default() -> Self {
        HttpApiConfig {
            disabled: false,
            handler_prefix: "/api".to_owned(),
            key: String::new(),
            error_mode: ErrorMode::Body,
            external: false,
            insecure: false,
        }
    }
}

/// `websocket` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebSocketConfig {
    /// Disable the bidirectional WebSocket transport.
    pub disabled: bool,
    /// URL path of the WebSocket endpoint.
    pub handler_prefix: String,
    /// Maximum incoming message size in bytes.
    pub message_size_limit: usize,
    /// Timeout of one write to the socket.
    pub write_timeout: Duration,
    /// Negotiate permessage-deflate (RFC 7692) with clients that offer it.
    pub compression: bool,
    /// Deflate level of compressed messages (1 fastest .. 9 smallest).
    pub compression_level: u32,
    /// Messages shorter than this many bytes are sent uncompressed.
    pub compression_min_size: usize,
    /// Largest message after decompression, in bytes; 0: 10 × `message_size_limit`.
    pub decompressed_message_size_limit: usize,
    /// Read buffer size in bytes (0 = implementation default).
    pub read_buffer_size: usize,
    /// Write buffer size in bytes (0 = implementation default).
    pub write_buffer_size: usize,
}

impl WebSocketConfig {
    /// The largest message after decompression: `decompressed_message_size_limit`, or 10 ×
    /// `message_size_limit` when 0 (Centrifugo's rule); 0 means no limit.
    pub fn effective_decompressed_limit(&self) -> usize {
        if self.decompressed_message_size_limit > 0 {
            self.decompressed_message_size_limit
        } else {
            self.message_size_limit.saturating_mul(10)
        }
    }
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            disabled: false,
            handler_prefix: "/connection/websocket".to_owned(),
            message_size_limit: 65_536,
            write_timeout: Duration::from_secs(1),
            compression: false,
            compression_level: 1,
            compression_min_size: 0,
            decompressed_message_size_limit: 0,
            read_buffer_size: 0,
            write_buffer_size: 0,
        }
    }
}

/// `health` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthConfig {
    /// Serve the health check endpoint.
    pub enabled: bool,
    /// URL path of the health endpoint.
    pub handler_prefix: String,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: false,
            handler_prefix: "/health".to_owned(),
        }
    }
}

/// `prometheus` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PrometheusConfig {
    /// Serve Prometheus metrics.
    pub enabled: bool,
    /// URL path of the metrics endpoint.
    pub handler_prefix: String,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            enabled: false,
            handler_prefix: "/metrics".to_owned(),
        }
    }
}

/// `admin` section (parsed only; the admin UI is not implemented).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdminConfig {
    /// Enable the admin UI.
    pub enabled: bool,
    /// Admin login password.
    pub password: String,
    /// Secret used to sign admin session tokens.
    pub secret: String,
}

/// `node` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeConfig {
    /// Human-readable node name ("" = generated from host name and port).
    pub name: String,
}

/// `shutdown` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShutdownConfig {
    /// Maximum time to wait for graceful shutdown.
    pub timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            timeout: Duration::from_secs(30),
        }
    }
}

/// `sse` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SseConfig {
    /// Enable the SSE bidirectional emulation transport.
    pub enabled: bool,
    /// URL path of the SSE endpoint.
    pub handler_prefix: String,
    /// Largest connect request body (POST) in bytes; 0 means 65536.
    pub max_request_body_size: usize,
}

impl Default for SseConfig {
    fn default() -> Self {
        SseConfig {
            enabled: false,
            handler_prefix: "/connection/sse".to_owned(),
            max_request_body_size: DEFAULT_MAX_REQUEST_BODY_SIZE,
        }
    }
}

/// The request body limit of the HTTP-based transports, as upstream.
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: usize = 64 * 1024;

/// `uni_websocket` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UniWebSocketConfig {
    /// Enable the unidirectional WebSocket transport.
    pub enabled: bool,
    /// URL path of its endpoint.
    pub handler_prefix: String,
    /// Maximum incoming message size in bytes (the connect request).
    pub message_size_limit: usize,
    /// Timeout of one write to the socket.
    pub write_timeout: Duration,
    /// Join the pushes of one write into one message (newline-delimited JSON) instead of
    /// one message per push.
    pub join_push_messages: bool,
    /// Do not send a disconnect push before the close frame.
    pub disable_disconnect_push: bool,
}

impl Default for UniWebSocketConfig {
    fn default() -> Self {
        UniWebSocketConfig {
            enabled: false,
            handler_prefix: "/connection/uni_websocket".to_owned(),
            message_size_limit: 65_536,
            write_timeout: Duration::from_secs(1),
            join_push_messages: false,
            disable_disconnect_push: false,
        }
    }
}

/// `uni_sse` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UniSseConfig {
    /// Enable the unidirectional SSE transport.
    pub enabled: bool,
    /// URL path of its endpoint.
    pub handler_prefix: String,
    /// Largest connect request body in bytes; 0 means 65536.
    pub max_request_body_size: usize,
}

impl Default for UniSseConfig {
    fn default() -> Self {
        UniSseConfig {
            enabled: false,
            handler_prefix: "/connection/uni_sse".to_owned(),
            max_request_body_size: DEFAULT_MAX_REQUEST_BODY_SIZE,
        }
    }
}

/// `uni_http_stream` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UniHttpStreamConfig {
    /// Enable the unidirectional HTTP-streaming transport.
    pub enabled: bool,
    /// URL path of its endpoint.
    pub handler_prefix: String,
    /// Largest connect request body in bytes; 0 means 65536.
    pub max_request_body_size: usize,
}

impl Default for UniHttpStreamConfig {
    fn default() -> Self {
        UniHttpStreamConfig {
            enabled: false,
            handler_prefix: "/connection/uni_http_stream".to_owned(),
            max_request_body_size: DEFAULT_MAX_REQUEST_BODY_SIZE,
        }
    }
}

/// `emulation` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmulationConfig {
    /// URL path of the emulation endpoint (served when `sse` or `http_stream` is enabled).
    pub handler_prefix: String,
    /// Largest emulation request body in bytes; 0 means 65536.
    pub max_request_body_size: usize,
}

impl Default for EmulationConfig {
    fn default() -> Self {
        EmulationConfig {
            handler_prefix: "/emulation".to_owned(),
            max_request_body_size: DEFAULT_MAX_REQUEST_BODY_SIZE,
        }
    }
}

/// `http_stream` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpStreamConfig {
    /// Enable the HTTP-streaming bidirectional emulation transport.
    pub enabled: bool,
    /// URL path of the HTTP-streaming endpoint.
    pub handler_prefix: String,
    /// Largest connect request body in bytes; 0 means 65536.
    pub max_request_body_size: usize,
}

impl Default for HttpStreamConfig {
    fn default() -> Self {
        HttpStreamConfig {
            enabled: false,
            handler_prefix: "/connection/http_stream".to_owned(),
            max_request_body_size: DEFAULT_MAX_REQUEST_BODY_SIZE,
        }
    }
}
