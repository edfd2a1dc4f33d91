//! Sentinel-managed masters: asking the Sentinels for the master, checking its role, and the
//! on-demand command connection that drops itself when the master moves.

use super::*;

/// Sentinels and the master they watch.
pub(super) struct Sentinel {
    pub(super) sentinels: Vec<Endpoint>,
    pub(super) master_name: String,
    /// Authentication and TLS for the master (host and port come from the Sentinels).
    pub(super) master: Endpoint,
    pub(super) timeouts: Timeouts,
    /// A connection to the Sentinel that answered last.
    pub(super) conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl Sentinel {
    /// The master's address as the Sentinels tell it.
    pub(super) async fn master_addr(&self) -> RedisResult<(String, u16)> {
        let mut cached = self.conn.lock().await;
        let mut last = None;
        if let Some(conn) = cached.as_mut() {
            match self.ask(conn).await {
                Ok(addr) => return Ok(addr),
                Err(e) => last = Some(e),
            }
            *cached = None;
        }
        for sentinel in &self.sentinels {
            let mut conn = match connect_commands(sentinel, self.timeouts).await {
                Ok(conn) => conn,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match self.ask(&mut conn).await {
                Ok(addr) => {
                    *cached = Some(conn);
                    return Ok(addr);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            RedisError::from((ErrorKind::EmptySentinelList, "no Sentinel address"))
        }))
    }

    pub(super) async fn ask(&self, conn: &mut MultiplexedConnection) -> RedisResult<(String, u16)> {
        let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.master_name)
            .query_async(conn)
            .await?;
        addr.ok_or_else(|| {
            RedisError::from((
                ErrorKind::MasterNameNotFoundBySentinel,
                "the Sentinel does not know this master",
                self.master_name.clone(),
            ))
        })
    }

    pub(super) async fn master(&self) -> RedisResult<Endpoint> {
        let (host, port) = self.master_addr().await?;
        let mut ep = self.master.clone();
        ep.host = host;
        ep.port = port;
        Ok(ep)
    }

    /// A command connection to the current master, checked with `ROLE`, and its address.
    pub(super) async fn connect(&self) -> RedisResult<(MultiplexedConnection, String)> {
        let ep = self.master().await?;
        let mut conn = connect_commands(&ep, self.timeouts).await?;
        let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
        match role.first() {
            Some(Value::BulkString(r)) if r == b"master" => Ok((conn, ep.addr())),
            Some(Value::SimpleString(r)) if r == "master" => Ok((conn, ep.addr())),
            _ => Err(RedisError::from((
                ErrorKind::Server(ServerErrorKind::ReadOnly),
                "the address the Sentinels gave is not a master (yet)",
                ep.addr(),
            ))),
        }
    }

    /// A Pub/Sub connection to the current master that ends when the Sentinels name another.
    pub(super) async fn pubsub(self: &Arc<Self>) -> RedisResult<(PubSubSink, MessageStream)> {
        let ep = self.master().await?;
        let (sink, stream) = connect_pubsub(&ep, self.timeouts).await?;
        let sentinel = self.clone();
        let moved = async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match sentinel.master_addr().await {
                    Ok((host, port)) if host != ep.host || port != ep.port => {
                        tracing::info!("redis master moved from {} to {host}:{port}", ep.addr());
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!("sentinel query failed: {e}"),
                }
            }
        };
        Ok((sink, Box::pin(stream.take_until(Box::pin(moved)))))
    }
}

/// Where a non-cluster link connects.
pub(super) enum Target {
    Direct(Endpoint),
    Sentinel(Arc<Sentinel>),
}

/// A command connection opened on demand and dropped when it breaks.
pub(super) struct Single {
    pub(super) target: Target,
    pub(super) timeouts: Timeouts,
    pub(super) current: Mutex<Option<(u64, MultiplexedConnection)>>,
    /// With Sentinel: the master's address the current connection goes to.
    pub(super) connected_to: Mutex<Option<String>>,
    /// Serializes reconnections: the generation of the last connection and when the last
    /// attempt failed (callers arriving just after a failure fail at once).
    pub(super) connecting: tokio::sync::Mutex<(u64, Option<(Instant, RedisError)>)>,
}

impl Single {
    pub(super) async fn get(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.current.lock().clone() {
            return Ok(current);
        }
        let mut state = self.connecting.lock().await;
        if let Some(current) = self.current.lock().clone() {
            return Ok(current);
        }
        if let Some((at, e)) = &state.1
            && at.elapsed() < Duration::from_millis(200)
        {
            return Err(e.clone());
        }
        let connected = match &self.target {
            Target::Direct(ep) => connect_commands(ep, self.timeouts).await,
            Target::Sentinel(sentinel) => sentinel.connect().await.map(|(conn, addr)| {
                *self.connected_to.lock() = Some(addr);
                conn
            }),
        };
        match connected {
            Ok(conn) => {
                state.0 += 1;
                state.1 = None;
                *self.current.lock() = Some((state.0, conn.clone()));
                Ok((state.0, conn))
            }
            Err(e) => {
                state.1 = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// Drops the connection if it goes elsewhere than the Sentinels' current master (a
    /// demoted master may keep accepting writes until the Sentinels reconfigure it).
    pub(super) async fn follow_master(&self, sentinel: &Sentinel) {
        let Ok((host, port)) = sentinel.master_addr().await else {
            return;
        };
        let addr = format!("{host}:{port}");
        let mut connected_to = self.connected_to.lock();
        if connected_to.as_ref().is_some_and(|at| *at != addr) {
            tracing::info!("redis master moved to {addr}: reconnecting");
            *self.current.lock() = None;
            *connected_to = None;
        }
    }

    pub(super) fn check<T>(&self, generation: u64, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &result
            && broken(e)
        {
            let mut current = self.current.lock();
            if current.as_ref().map(|(g, _)| *g) == Some(generation) {
                tracing::debug!("redis connection dropped after: {e}");
                *current = None;
            }
        }
        result
    }
}

/// Every second, makes a Sentinel link's command connection follow the master, until the
/// link is dropped.
pub(super) async fn follow_master(kind: std::sync::Weak<Kind>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(kind) = kind.upgrade() else {
            return;
        };
        if let Kind::Single(single) = &*kind
            && let Target::Sentinel(sentinel) = &single.target
        {
            single.follow_master(sentinel).await;
        }
    }
}
