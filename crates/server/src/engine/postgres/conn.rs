//! Connections to PostgreSQL: the parsed DSN with its TLS setup, a pool for requests
//! (publish, history, control messages) and dedicated reading connections that hear
//! LISTEN/NOTIFY and report when they are lost.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::future::poll_fn;
use gyre_config::RedisTlsConfig;
use tokio::sync::mpsc;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, NoTls};
use tokio_postgres::{AsyncMessage, Client, Config, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::engine::EngineError;

/// Bound of one connection attempt (and of waiting for a pooled connection).
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Rustls with an optional server name that replaces the DSN host for verification and SNI.
#[derive(Clone)]
pub(super) struct Tls {
    inner: MakeRustlsConnect,
    server_name: Option<String>,
}

impl<S> MakeTlsConnect<S> for Tls
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = <MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect;
    type Error = <MakeRustlsConnect as MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, host: &str) -> Result<Self::TlsConnect, Self::Error> {
        let host = self.server_name.as_deref().unwrap_or(host);
        <MakeRustlsConnect as MakeTlsConnect<S>>::make_tls_connect(&mut self.inner, host)
    }
}

/// Where and how to connect: one DSN and its TLS setup.
#[derive(Clone)]
pub(super) struct Connector {
    config: Config,
    tls: Option<Tls>,
    /// The DSN's host and port, for logs (never the password).
    describe: String,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

impl Connector {
    /// Parses `dsn` (URL or `key=value` form) with the `tls` section under `key`. TLS is used
    /// when the section enables it or the DSN asks for `sslmode=verify-ca`/`verify-full`
    /// (verifying the server with `sslrootcert` or the section's CA, else the system roots),
    /// or, without `sslmode=disable`, as libpq's `require` / `prefer` (encrypting without
    /// verification; `prefer` falls back to plain connections).
    pub(super) fn new(key: &str, dsn: &str, tls: &RedisTlsConfig) -> anyhow::Result<Self> {
        let (dsn, extras) = super::dsn::split(dsn);
        for ignored in &extras.ignored {
            tracing::warn!("{key}.dsn: {ignored} has no effect (the pool is sized by pool_size)");
        }
        let mut config: Config = dsn
            .parse()
            .map_err(|e| anyhow::anyhow!("{key}.dsn: not a PostgreSQL connection string: {e}"))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        let setup = if let Some(section) = extras.tls(tls) {
            config.ssl_mode(SslMode::Require);
            Some(section)
        } else if config.get_ssl_mode() == SslMode::Require
            || (config.get_ssl_mode() == SslMode::Prefer && tcp_only(&config))
        {
            // `require`, and libpq's default `prefer` (TLS when the server offers it, else
            // plain): encrypted without verification, as pgx and libpq do.
            Some(RedisTlsConfig {
                enabled: true,
                insecure_skip_verify: true,
                ..RedisTlsConfig::default()
            })
        } else {
            None
        };
        let tls = match setup {
            Some(section) => {
                let key = format!("{key}.tls");
                Some(Tls {
                    inner: MakeRustlsConnect::new(crate::tls::client_config(&key, &section)?),
                    server_name: crate::tls::server_name(&key, &section)?,
                })
            }
            None => None,
        };
        let describe = describe(&config);
        Ok(Self {
            config,
            tls,
            describe,
        })
    }

    /// Host and port of the server, for logs.
    pub(super) fn describe(&self) -> &str {
        &self.describe
    }

    /// A pool of at most `size` connections, created lazily (no I/O here).
    pub(super) fn pool(&self, size: u32) -> anyhow::Result<Pool> {
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &self.tls {
            Some(tls) => Manager::from_config(self.config.clone(), tls.clone(), manager_config),
            None => Manager::from_config(self.config.clone(), NoTls, manager_config),
        };
        Pool::builder(manager)
            .max_size(size.max(1) as usize)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| anyhow::anyhow!("postgres pool: {e}"))
    }

    /// A dedicated connection: its client, and a channel that yields each NOTIFY it hears and
    /// closes when the connection is lost.
    pub(super) async fn dedicated(&self) -> Result<(Client, mpsc::Receiver<()>), EngineError> {
        let (tx, rx) = mpsc::channel(1);
        let client = match &self.tls {
            Some(tls) => {
                let (client, connection) = self
                    .config
                    .connect(tls.clone())
                    .await
                    .map_err(EngineError::caused_by)?;
                tokio::spawn(drive(connection, tx));
                client
            }
            None => {
                let (client, connection) = self
                    .config
                    .connect(NoTls)
                    .await
                    .map_err(EngineError::caused_by)?;
                tokio::spawn(drive(connection, tx));
                client
            }
        };
        Ok((client, rx))
    }
}

/// Runs a connection until it ends, forwarding notifications (coalesced: one pending wake-up
/// is enough) and dropping `tx` at the end so the reader learns of the loss.
async fn drive<T>(mut connection: tokio_postgres::Connection<Socket, T>, tx: mpsc::Sender<()>)
where
    T: tokio_postgres::tls::TlsStream + Unpin,
{
    while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
        match message {
            Ok(AsyncMessage::Notification(_)) => {
                let _ = tx.try_send(());
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("postgres connection ended: {e}");
                break;
            }
        }
    }
}

/// Whether every host is reached over TCP (there is no TLS over a Unix socket).
fn tcp_only(config: &Config) -> bool {
    use tokio_postgres::config::Host;
    config.get_hosts().iter().all(|h| matches!(h, Host::Tcp(_)))
}

fn describe(config: &Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// An engine error from a pool failure.
pub(super) fn pool_err(e: deadpool_postgres::PoolError) -> EngineError {
    EngineError::caused_by(e)
}

/// Exponential reconnect delays with jitter: 100 ms doubling up to 3 s.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    attempts: u32,
}

impl Backoff {
    /// The next pause.
    pub(super) fn next_delay(&mut self) -> Duration {
        let base = 100u64.saturating_mul(1 << self.attempts.min(5)).min(3000);
        self.attempts = self.attempts.saturating_add(1);
        Duration::from_millis(base / 2 + rand::random_range(0..=base / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_follows_sslmode_and_hosts() {
        let none = RedisTlsConfig::default();
        let tls = |dsn: &str| Connector::new("k", dsn, &none).map(|c| c.tls.is_some());
        assert!(!tls("postgres://h/db?sslmode=disable").unwrap());
        assert!(tls("postgres://h/db").unwrap());
        assert!(tls("postgres://h/db?sslmode=require").unwrap());
        assert!(!tls("host=/var/run/postgresql dbname=db").unwrap());
        assert!(tls("host=db sslmode=require").unwrap());
        let err = Connector::new("broker.postgres", "postgres://h/db?bogus=1", &none)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("broker.postgres.dsn"), "{err}");
        assert_eq!(
            Connector::new("k", "postgres://u:secret@db:6543/x", &none)
                .unwrap()
                .describe(),
            "db:6543"
        );
    }
}
