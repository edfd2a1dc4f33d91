//! TLS for Redis connections: the rustls client setup of a TLS section (built by
//! [`crate::tls`]) and the name the server's certificate must have.

use super::*;

impl From<crate::tls::TlsError> for ConfigError {
    fn from(err: crate::tls::TlsError) -> Self {
        ConfigError {
            key: err.key,
            reason: err.reason,
        }
    }
}

/// The TLS setup of section `key` (`engine.redis.tls` or `engine.redis.sentinel_tls`).
pub(crate) fn tls_setup(key: &str, c: &RedisTlsConfig) -> Result<Tls, ConfigError> {
    Ok(Tls {
        config: Arc::new(crate::tls::client_config(key, c)?),
        server_name: crate::tls::server_name(key, c)?,
    })
}
