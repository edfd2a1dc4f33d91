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
    let config = crate::tls::client_config(key, c)?;
    let server_name = (!c.server_name.is_empty()).then(|| c.server_name.clone());
    if let Some(name) = &server_name {
        ServerName::try_from(name.clone()).map_err(|e| bad(format!("{key}.server_name"), e))?;
    }
    Ok(Tls {
        config: Arc::new(config),
        server_name,
    })
}
