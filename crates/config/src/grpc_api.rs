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

#[cfg(test)]
mod tests {
    use crate::{Config, Format, load_str};

    #[test]
    fn defaults_and_keys_are_centrifugos() {
        let c = Config::default();
        assert!(!c.grpc_api.enabled);
        assert_eq!(c.grpc_api.port, 10000);
        let text = r#"{"grpc_api": {"enabled": true, "port": "10001", "key": "k",
            "error_mode": "transport", "reflection": true, "max_receive_message_size": 2048,
            "tls": {"enabled": true, "cert_pem": "c", "key_pem": "k"}}}"#;
        let loaded = load_str(text, Format::Json, &[], &[]).expect("loads");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let g = &loaded.config.grpc_api;
        assert_eq!(g.port, 10001);
        assert_eq!(g.error_mode, crate::ErrorMode::Transport);
        assert_eq!(g.max_receive_message_size, 2048);
        assert!(g.reflection && g.tls.enabled);
    }

    #[test]
    fn an_unknown_error_mode_is_refused() {
        let text = r#"{"grpc_api": {"error_mode": "loud"}}"#;
        let err = load_str(text, Format::Json, &[], &[]).expect_err("refused");
        assert!(err.to_string().contains("grpc_api.error_mode"), "{err}");
    }

    #[test]
    fn client_side_tls_keys_are_warned() {
        let text = r#"{"grpc_api": {"tls": {"server_name": "x"}}}"#;
        let loaded = load_str(text, Format::Json, &[], &[]).expect("loads");
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("grpc_api.tls.server_name")),
            "{:?}",
            loaded.warnings
        );
    }
}
