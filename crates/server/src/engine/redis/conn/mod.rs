//! How the Redis engine reaches Redis: the topology (one server, a Sentinel-managed master or
//! a Redis Cluster), TLS and authentication. The engine sees a [`Link`] per shard: a command
//! connection (usable wherever the `redis` crate wants a connection, scripts included) that
//! can also open the shard's Pub/Sub connection.
//!
//! - **Standalone** (`engine.redis.address`): one multiplexed command connection per address,
//!   opened again on demand after it breaks; the Pub/Sub connection goes to the same server.
//! - **Sentinel** (`sentinel_address` + `sentinel_master_name`): the master's address is asked
//!   of the Sentinels (`SENTINEL GET-MASTER-ADDR-BY-NAME`, trying each in turn) and checked with
//!   `ROLE` before use. A broken connection, a `READONLY` reply (a demoted master) or the
//!   Sentinels naming another master (asked every second: a demoted master may accept writes
//!   until the Sentinels reconfigure it) drops the command connection, so the next command
//!   asks the Sentinels again. The Pub/Sub connection also goes to the master and ends on the
//!   same signs, so the engine reconnects, resubscribes and makes its subscribers recover (or
//!   learn they could not). Writes the old master accepted after the switch are lost, as with
//!   any asynchronous Redis replication.
//! - **Cluster** (`cluster_address`): commands go through the `redis` crate's cluster client,
//!   which routes each by key slot; the engine puts every key of one channel in one slot with a
//!   hash tag (`<prefix>.stream.{<channel>}`), so its Lua scripts run on one node. Publications
//!   use plain `PUBLISH` (from the scripts too), which a cluster broadcasts to every node, so the
//!   single Pub/Sub connection may go to any node: the engine uses one seed address, moving to
//!   the next seed when the connection breaks. (Sharded `SPUBLISH` would need a Pub/Sub
//!   connection per slot owner; the broadcast costs cluster bus traffic instead.)
//! - **TLS** (`rediss://` addresses or `engine.redis.tls.enabled`; `sentinel_tls` for the
//!   Sentinels): rustls with the configured CA (`server_ca_pem`, the system roots otherwise),
//!   an optional client certificate (`cert_pem` + `key_pem`), `server_name` (checked against
//!   the certificate and sent as SNI; the address host by default) and `insecure_skip_verify`.
//!   Cluster mode does not support TLS yet.
//! - **Authentication**: `user`, `password` and `db` from the config, or from the address URL
//!   (`redis://user:password@host:port/db`); the config wins when set. The Sentinels use
//!   `sentinel_user` / `sentinel_password`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use gyre_config::{RedisConfig, RedisTlsConfig};
use parking_lot::Mutex;
use redis::aio::{AsyncStream, ConnectionLike, MultiplexedConnection, PubSub, PubSubSink};
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline,
    RedisConnectionInfo, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};
mod sentinel;
pub(crate) mod tls;

use sentinel::{Sentinel, Single, Target, follow_master};
use tls::tls_setup;

use rustls::pki_types::ServerName;

/// A Redis setting that cannot be used, naming its key.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub(crate) struct ConfigError {
    key: String,
    reason: String,
}

fn bad(key: impl Into<String>, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.to_string(),
    }
}

/// Pub/Sub messages of one connection; ends when the connection is lost (or, with Sentinel,
/// when the master moved).
pub(super) type MessageStream = Pin<Box<dyn Stream<Item = redis::Msg> + Send>>;

type BoxStream = Pin<Box<dyn AsyncStream + Send + Sync>>;

#[derive(Clone, Copy, Debug)]
struct Timeouts {
    connect: Duration,
    io: Duration,
}

/// A TLS client setup.
#[derive(Clone)]
pub(crate) struct Tls {
    /// The rustls client configuration (roots or `insecure_skip_verify`, client certificate).
    pub(crate) config: Arc<rustls::ClientConfig>,
    /// Overrides the address host for verification and SNI.
    pub(crate) server_name: Option<String>,
}

/// One server to connect to.
#[derive(Clone)]
struct Endpoint {
    host: String,
    port: u16,
    tls: Option<Tls>,
    info: RedisConnectionInfo,
}

impl Endpoint {
    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Parses an address (`host:port`, `redis://` or `rediss://` URL) of setting `key`, with
/// `user`/`password`/`db` overriding the URL's when set.
fn endpoint(
    key: &str,
    address: &str,
    tls: Option<&Tls>,
    tls_key: &str,
    tls_config: &RedisTlsConfig,
    auth: (&str, &str, u32),
) -> Result<Endpoint, ConfigError> {
    let (secure, url) = if let Some(rest) = address.strip_prefix("rediss://") {
        (true, format!("redis://{rest}"))
    } else if address.contains("://") {
        (false, address.to_owned())
    } else {
        (false, format!("redis://{address}"))
    };
    let info = url
        .as_str()
        .into_connection_info()
        .map_err(|e| bad(key, format!("{address:?}: {e}")))?;
    let ConnectionAddr::Tcp(host, port) = info.addr().clone() else {
        return Err(bad(
            key,
            format!("{address:?}: only redis:// and rediss:// addresses are supported"),
        ));
    };
    let mut redis = info.redis_settings().clone();
    let (user, password, db) = auth;
    if !user.is_empty() {
        redis = redis.set_username(user);
    }
    if !password.is_empty() {
        redis = redis.set_password(password);
    }
    if db != 0 {
        redis = redis.set_db(i64::from(db));
    }
    let tls = match (tls, secure) {
        (Some(tls), _) => Some(tls.clone()),
        (None, true) => Some(tls_setup(tls_key, tls_config)?),
        (None, false) => None,
    };
    Ok(Endpoint {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
        tls,
        info: redis,
    })
}

/// Opens a TCP (and TLS) stream to `ep`.
async fn open(ep: &Endpoint, timeout: Duration) -> RedisResult<BoxStream> {
    let connect = async {
        let tcp = tokio::net::TcpStream::connect((ep.host.as_str(), ep.port)).await?;
        tcp.set_nodelay(true)?;
        let Some(tls) = &ep.tls else {
            return Ok::<BoxStream, std::io::Error>(Box::pin(tcp));
        };
        let name = tls.server_name.clone().unwrap_or_else(|| ep.host.clone());
        let name = ServerName::try_from(name)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let stream = tokio_rustls::TlsConnector::from(tls.config.clone())
            .connect(name, tcp)
            .await?;
        Ok(Box::pin(stream))
    };
    match tokio::time::timeout(timeout, connect).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(timed_out(ep)),
    }
}

fn timed_out(ep: &Endpoint) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("connecting to Redis at {} timed out", ep.addr()),
    ))
}

/// A multiplexed command connection to `ep`.
async fn connect_commands(ep: &Endpoint, t: Timeouts) -> RedisResult<MultiplexedConnection> {
    let stream = open(ep, t.connect).await?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(t.connect))
        .set_response_timeout(Some(t.io));
    let (conn, driver) = tokio::time::timeout(
        t.connect + t.io,
        MultiplexedConnection::new_with_config(&ep.info, stream, config),
    )
    .await
    .map_err(|_| timed_out(ep))??;
    tokio::spawn(driver);
    Ok(conn)
}

/// A Pub/Sub connection to `ep`.
async fn connect_pubsub(ep: &Endpoint, t: Timeouts) -> RedisResult<(PubSubSink, MessageStream)> {
    let stream = open(ep, t.connect).await?;
    let pubsub = tokio::time::timeout(t.connect + t.io, PubSub::new(&ep.info, stream))
        .await
        .map_err(|_| timed_out(ep))??;
    let (sink, stream) = pubsub.split();
    Ok((sink, Box::pin(stream)))
}

/// Whether a command error means the connection (or the server's role) is no longer good.
fn broken(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || e.is_timeout()
        || e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

/// A cluster: the crate's cluster client for commands (connected on first use), seeds for
/// Pub/Sub.
struct Cluster {
    client: redis::cluster::ClusterClient,
    conn: tokio::sync::OnceCell<ClusterConnection>,
    seeds: Vec<Endpoint>,
    next_seed: AtomicUsize,
    timeouts: Timeouts,
}

// Lives behind an `Arc` once per shard: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Single(Single),
    Cluster(Cluster),
}

/// One shard's way to Redis: a cheap-to-clone command connection (reconnecting on demand)
/// that also opens the shard's Pub/Sub connection.
#[derive(Clone)]
pub(crate) struct Link {
    kind: Arc<Kind>,
    db: i64,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("to", &self.describe())
            .finish()
    }
}

impl Cluster {
    async fn conn(&self) -> RedisResult<ClusterConnection> {
        self.conn
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
    }
}

/// The links of the configured topology: one per `address` (channels are sharded over them),
/// or a single one for Sentinel or Cluster. No I/O: links connect on first use; settings that cannot be used are errors naming their key. Called inside a
/// Tokio runtime, a Sentinel link also starts following the master.
pub(crate) fn links(config: &RedisConfig) -> Result<Vec<Link>, ConfigError> {
    let timeouts = Timeouts {
        connect: config.connect_timeout.0.max(Duration::from_millis(100)),
        io: config.io_timeout.0.max(Duration::from_millis(100)),
    };
    let auth = (config.user.as_str(), config.password.as_str(), config.db);
    let tls = if config.tls.enabled {
        Some(tls_setup("engine.redis.tls", &config.tls)?)
    } else {
        None
    };
    let ep = |key: &str, address: &str| {
        endpoint(
            key,
            address,
            tls.as_ref(),
            "engine.redis.tls",
            &config.tls,
            auth,
        )
    };
    let single = |target| Single {
        target,
        timeouts,
        current: Mutex::new(None),
        connected_to: Mutex::new(None),
        connecting: tokio::sync::Mutex::new((0, None)),
    };
    let mut links = Vec::new();
    if !config.cluster_address.is_empty() {
        let key = "engine.redis.cluster_address";
        let seeds = config
            .cluster_address
            .iter()
            .map(|a| ep(key, a))
            .collect::<Result<Vec<_>, _>>()?;
        if seeds.iter().any(|s| s.info.db() != 0) {
            return Err(bad("engine.redis.db", "a Redis Cluster only has db 0"));
        }
        if seeds.iter().any(|s| s.tls.is_some()) {
            return Err(bad(
                "engine.redis.tls",
                "TLS is not supported with cluster_address yet",
            ));
        }
        let infos = seeds
            .iter()
            .map(connection_info)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(key, e))?;
        let client = redis::cluster::ClusterClientBuilder::new(infos)
            .connection_timeout(timeouts.connect)
            .response_timeout(timeouts.io)
            .retries(2)
            .build()
            .map_err(|e| bad(key, e))?;
        links.push(Link {
            kind: Arc::new(Kind::Cluster(Cluster {
                client,
                conn: tokio::sync::OnceCell::new(),
                seeds,
                next_seed: AtomicUsize::new(0),
                timeouts,
            })),
            db: 0,
        });
        return Ok(links);
    }
    if !config.sentinel_address.is_empty() {
        let key = "engine.redis.sentinel_address";
        let sentinel_tls = if config.sentinel_tls.enabled {
            Some(tls_setup(
                "engine.redis.sentinel_tls",
                &config.sentinel_tls,
            )?)
        } else {
            None
        };
        let sentinels = config
            .sentinel_address
            .iter()
            .map(|a| {
                endpoint(
                    key,
                    a,
                    sentinel_tls.as_ref(),
                    "engine.redis.sentinel_tls",
                    &config.sentinel_tls,
                    (&config.sentinel_user, &config.sentinel_password, 0),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The master's authentication, TLS and db: a placeholder address with the settings.
        let master = ep("engine.redis.sentinel_address", "127.0.0.1:6379")?;
        let db = master.info.db();
        let sentinel = Arc::new(Sentinel {
            sentinels,
            master_name: config.sentinel_master_name.clone(),
            master,
            timeouts,
            conn: tokio::sync::Mutex::new(None),
        });
        let link = Link {
            kind: Arc::new(Kind::Single(single(Target::Sentinel(sentinel)))),
            db,
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(follow_master(Arc::downgrade(&link.kind)));
        }
        links.push(link);
        return Ok(links);
    }
    for address in &config.address {
        let endpoint = ep("engine.redis.address", address)?;
        links.push(Link {
            db: endpoint.info.db(),
            kind: Arc::new(Kind::Single(single(Target::Direct(endpoint)))),
        });
    }
    if links.is_empty() {
        return Err(bad("engine.redis.address", "no Redis address configured"));
    }
    Ok(links)
}

/// `host:port` of each endpoint (no credentials).
fn addrs(endpoints: &[Endpoint]) -> String {
    endpoints
        .iter()
        .map(Endpoint::addr)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `redis` crate's description of a plain TCP endpoint (for the cluster client).
fn connection_info(ep: &Endpoint) -> RedisResult<redis::ConnectionInfo> {
    Ok(ConnectionAddr::Tcp(ep.host.clone(), ep.port)
        .into_connection_info()?
        .set_redis_settings(ep.info.clone()))
}

impl Link {
    /// Whether keys need hash tags (a channel's keys must share a cluster slot).
    pub(super) fn is_cluster(&self) -> bool {
        matches!(&*self.kind, Kind::Cluster(_))
    }

    /// Where the link goes, for messages (no credentials).
    pub(super) fn describe(&self) -> String {
        match &*self.kind {
            Kind::Single(single) => match &single.target {
                Target::Direct(ep) => ep.addr(),
                Target::Sentinel(sentinel) => format!(
                    "{} (Sentinel, master {:?})",
                    addrs(&sentinel.sentinels),
                    sentinel.master_name
                ),
            },
            Kind::Cluster(cluster) => format!("{} (cluster)", addrs(&cluster.seeds)),
        }
    }

    /// Opens this shard's Pub/Sub connection (to the master with Sentinel, to a seed node in
    /// a cluster).
    pub(super) async fn pubsub(&self) -> RedisResult<(PubSubSink, MessageStream)> {
        match &*self.kind {
            Kind::Single(single) => match &single.target {
                Target::Direct(ep) => connect_pubsub(ep, single.timeouts).await,
                Target::Sentinel(sentinel) => sentinel.pubsub().await,
            },
            Kind::Cluster(cluster) => {
                let start = cluster.next_seed.fetch_add(1, Ordering::Relaxed);
                let mut last = None;
                for i in 0..cluster.seeds.len() {
                    let seed = &cluster.seeds[(start + i) % cluster.seeds.len()];
                    match connect_pubsub(seed, cluster.timeouts).await {
                        Ok(pubsub) => return Ok(pubsub),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    RedisError::from((ErrorKind::ClusterConnectionNotFound, "no cluster seed"))
                }))
            }
        }
    }
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            match &*self.kind {
                Kind::Single(single) => {
                    let (generation, mut conn) = single.get().await?;
                    let result = conn.req_packed_command(cmd).await;
                    single.check(generation, result)
                }
                Kind::Cluster(cluster) => cluster.conn().await?.req_packed_command(cmd).await,
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            match &*self.kind {
                Kind::Single(single) => {
                    let (generation, mut conn) = single.get().await?;
                    let result = conn.req_packed_commands(pipeline, offset, count).await;
                    single.check(generation, result)
                }
                Kind::Cluster(cluster) => {
                    cluster
                        .conn()
                        .await?
                        .req_packed_commands(pipeline, offset, count)
                        .await
                }
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_off() -> RedisTlsConfig {
        RedisTlsConfig::default()
    }

    #[test]
    fn addresses_and_auth() {
        let ep =
            endpoint("k", "127.0.0.1:7000", None, "t", &tls_off(), ("", "", 0)).expect("plain");
        assert_eq!(
            (ep.host.as_str(), ep.port, ep.tls.is_none()),
            ("127.0.0.1", 7000, true)
        );
        let ep = endpoint(
            "k",
            "redis://bob:secret@example.com:6380/3",
            None,
            "t",
            &tls_off(),
            ("", "", 0),
        )
        .expect("url");
        assert_eq!(ep.info.username(), Some("bob"));
        assert_eq!(ep.info.password(), Some("secret"));
        assert_eq!(ep.info.db(), 3);
        let ep = endpoint(
            "k",
            "redis://bob:secret@example.com:6380/3",
            None,
            "t",
            &tls_off(),
            ("alice", "pw", 5),
        )
        .expect("url");
        assert_eq!(
            (ep.info.username(), ep.info.password(), ep.info.db()),
            (Some("alice"), Some("pw"), 5)
        );
        let err = endpoint(
            "engine.redis.address",
            "unix:///tmp/x",
            None,
            "t",
            &tls_off(),
            ("", "", 0),
        )
        .err()
        .expect("unix rejected");
        assert!(
            err.to_string().starts_with("engine.redis.address: "),
            "{err}"
        );
    }

    #[test]
    fn rediss_turns_tls_on_and_bad_pem_names_the_key() {
        let mut tls = tls_off();
        tls.insecure_skip_verify = true;
        let ep = endpoint(
            "k",
            "rediss://localhost:6380",
            None,
            "engine.redis.tls",
            &tls,
            ("", "", 0),
        )
        .expect("rediss");
        assert!(ep.tls.is_some());
        let mut tls = tls_off();
        tls.server_ca_pem = "/nonexistent/ca.pem".to_owned();
        let err = tls_setup("engine.redis.tls", &tls).err().expect("bad CA");
        assert!(
            err.to_string()
                .starts_with("engine.redis.tls.server_ca_pem: "),
            "{err}"
        );
        let mut tls = tls_off();
        tls.insecure_skip_verify = true;
        tls.cert_pem =
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".to_owned();
        tls.key_pem = "nope".to_owned();
        let err = tls_setup("engine.redis.tls", &tls).err().expect("bad key");
        assert!(err.to_string().starts_with("engine.redis.tls."), "{err}");
    }
}
