//! The `grpc_api` section: the server API over GRPC on a port of its own.

use serde::{Deserialize, Serialize};

use crate::RedisTlsConfig;
use crate::values::ErrorMode;

/// `grpc_api` section (Centrifugo v6 key names and defaults).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GrpcApiConfig {
    /// Serve the GRPC API.
    pub enabled: bool,
    /// "" (errors in the response message) or "transport" (errors as GRPC status codes).
    pub error_mode: ErrorMode,
    /// Address to bind ("" means all interfaces).
    pub address: String,
    /// Port of the GRPC API (default 10000).
    #[serde(deserialize_with = "crate::de::port")]
    pub port: u16,
    /// API key: calls must carry the metadata `authorization: apikey <key>` ("" checks nothing).
    pub key: String,
    /// TLS of the GRPC listener: `cert_pem` + `key_pem` are the server's identity,
    /// `client_ca_pem` asks for and verifies client certificates.
    pub tls: RedisTlsConfig,
    /// Serve GRPC server reflection (`grpc.reflection.v1`).
    pub reflection: bool,
    /// Largest request message in bytes (0: GRPC's usual 4 MiB).
    pub max_receive_message_size: usize,
}

impl Default for GrpcApiConfig {
    fn default() -> Self {
        GrpcApiConfig {
            enabled: false,
            error_mode: ErrorMode::Body,
            address: String::new(),
            port: 10000,
            key: String::new(),
            tls: RedisTlsConfig::default(),
            reflection: false,
            max_receive_message_size: 0,
        }
    }
}
