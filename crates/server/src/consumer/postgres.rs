//! `type: postgresql`: an outbox table the application writes commands into inside its own
//! transactions (`INSERT INTO centrifugo_outbox (method, payload, partition) VALUES (...)`),
//! so a command exists exactly when the transaction that wrote it committed.
//!
//! One worker per partition (`num_partitions`). Each batch is one transaction on the
//! worker's own connection: take the partition's advisory lock (upstream's lock name, so
//! Gyre and Centrifugo nodes share a table safely; `use_try_lock` skips a partition another
//! node holds instead of waiting), read up to `partition_select_limit` rows in `id` order,
//! apply them one by one, delete those applied, commit. A temporary error stops the batch at
//! that row (the rows before it are deleted) and the worker retries it after a pause, so
//! commands of one partition apply in order. A full batch is followed at once by the next;
//! otherwise the worker waits `partition_poll_interval` or a `LISTEN` notification on
//! `partition_notification_channel` (payload: the partition number) from a dedicated
//! connection, whichever comes first.

use std::sync::Arc;

use futures_util::StreamExt;
use gyre_config::PostgresConsumerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::{AsyncMessage, Client, Config, Connection, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{Backoff, Consumer, Temporary};

/// Starts the partition workers (and the `LISTEN` task when configured).
pub(super) fn spawn(consumer: Consumer, config: PostgresConsumerConfig) {
    let connector = match Connector::new(&consumer.name, &config) {
        Ok(connector) => connector,
        Err(err) => {
            tracing::error!(consumer = %consumer.name, "postgresql consumer not started: {err}");
            return;
        }
    };
    let config = Arc::new(config);
    let wakeups: Arc<Vec<Notify>> =
        Arc::new((0..config.partitions()).map(|_| Notify::new()).collect());
    if !config.partition_notification_channel.is_empty() {
        tokio::spawn(listen(
            consumer.clone(),
            connector.clone(),
            config.clone(),
            wakeups.clone(),
        ));
    }
    for partition in 0..config.partitions() {
        let worker = Worker {
            lock: format!("centrifugo_partition_lock_{}{partition}", consumer.name),
            select: format!(
                "SELECT id::bigint, coalesce(method, ''), payload::text FROM {} \
                 WHERE partition = $1::bigint ORDER BY id ASC LIMIT $2::bigint",
                config.outbox_table_name
            ),
            delete: format!(
                "DELETE FROM {} WHERE id = ANY($1::bigint[])",
                config.outbox_table_name
            ),
            partition,
            connector: connector.clone(),
            consumer: consumer.clone(),
            config: config.clone(),
            wakeups: wakeups.clone(),
        };
        tokio::spawn(worker.run());
    }
}

/// How connections are made: plain, or TLS (`tls.enabled`, which also makes the DSN's
/// default `sslmode=prefer` a `require`).
#[derive(Clone)]
enum Connector {
    Plain,
    Tls(MakeRustlsConnect),
}

impl Connector {
    fn new(consumer: &str, config: &PostgresConsumerConfig) -> Result<Self, String> {
        if !config.tls.enabled {
            return Ok(Connector::Plain);
        }
        let key = format!("consumers ({consumer}).postgresql.tls");
        let tls = crate::tls::client_config(&key, &config.tls).map_err(|err| err.to_string())?;
        Ok(Connector::Tls(MakeRustlsConnect::new(tls)))
    }

    fn config(&self, dsn: &str) -> Result<Config, tokio_postgres::Error> {
        let mut config: Config = dsn.parse()?;
        if matches!(self, Connector::Tls(_)) && config.get_ssl_mode() == SslMode::Prefer {
            config.ssl_mode(SslMode::Require);
        }
        Ok(config)
    }

    /// Opens a connection whose driver runs in its own task; its notifications go to
    /// `notifications` when given.
    async fn connect(
        &self,
        dsn: &str,
        notifications: Option<mpsc::UnboundedSender<String>>,
    ) -> Result<(Client, JoinHandle<Result<(), tokio_postgres::Error>>), tokio_postgres::Error>
    {
        let config = self.config(dsn)?;
        Ok(match self {
            Connector::Plain => {
                let (client, connection) = config.connect(NoTls).await?;
                (client, drive(connection, notifications))
            }
            Connector::Tls(tls) => {
                let (client, connection) = config.connect(tls.clone()).await?;
                (client, drive(connection, notifications))
            }
        })
    }
}

/// Runs a connection until it closes, handing its notifications on.
fn drive<S, T>(
    mut connection: Connection<S, T>,
    notifications: Option<mpsc::UnboundedSender<String>>,
) -> JoinHandle<Result<(), tokio_postgres::Error>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            if let (AsyncMessage::Notification(n), Some(tx)) = (message?, &notifications)
                && tx.send(n.payload().to_owned()).is_err()
            {
                return Ok(());
            }
        }
        Ok(())
    })
}

/// Why a batch did not complete.
enum BatchError {
    /// Another node holds the partition (`use_try_lock`).
    Busy,
    /// A command failed temporarily; the rows before it were applied and deleted.
    Retry(Temporary),
    /// The database failed; nothing of the batch was deleted.
    Db(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for BatchError {
    fn from(err: tokio_postgres::Error) -> Self {
        BatchError::Db(err)
    }
}

/// One partition's worker.
struct Worker {
    consumer: Consumer,
    connector: Connector,
    config: Arc<PostgresConsumerConfig>,
    wakeups: Arc<Vec<Notify>>,
    partition: u32,
    /// Advisory lock name of the partition.
    lock: String,
    select: String,
    delete: String,
}

impl Worker {
    async fn run(self) {
        let c = &self.consumer;
        let limit = self.config.select_limit();
        let mut client: Option<Client> = None;
        let mut backoff = Backoff::default();
        while !c.stopping() {
            if client.as_ref().is_none_or(Client::is_closed) {
                match self.connector.connect(&self.config.dsn, None).await {
                    Ok((fresh, _driver)) => client = Some(fresh),
                    Err(err) => {
                        c.counters.errors.inc();
                        tracing::warn!(consumer = %c.name, "outbox database not reachable: {err}");
                        if !c.sleep(backoff.next()).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            let Some(conn) = client.as_mut() else {
                continue;
            };
            match self.batch(conn, limit).await {
                Ok(applied) => {
                    backoff.reset();
                    if applied < limit && !self.idle().await {
                        break;
                    }
                }
                Err(BatchError::Busy) => {
                    if !self.idle().await {
                        break;
                    }
                }
                Err(BatchError::Retry(reason)) => {
                    tracing::warn!(
                        consumer = %c.name,
                        partition = self.partition,
                        "retrying outbox command: {reason}"
                    );
                    if !c.sleep(backoff.next()).await {
                        break;
                    }
                }
                Err(BatchError::Db(err)) => {
                    c.counters.errors.inc();
                    tracing::warn!(
                        consumer = %c.name,
                        partition = self.partition,
                        "outbox batch failed: {err}"
                    );
                    if !c.sleep(backoff.next()).await {
                        break;
                    }
                }
            }
        }
    }

    /// Waits for the poll interval or a notification; false on shutdown.
    async fn idle(&self) -> bool {
        let wakeup = &self.wakeups[self.partition as usize];
        tokio::select! {
            _ = self.consumer.shutdown.cancelled() => false,
            _ = tokio::time::sleep(self.config.poll_interval()) => true,
            _ = wakeup.notified() => true,
        }
    }

    /// One locked read-apply-delete transaction; the number of rows done with.
    async fn batch(&self, client: &mut Client, limit: u32) -> Result<u32, BatchError> {
        let tx = client.transaction().await?;
        if self.config.use_try_lock {
            let row = tx
                .query_one(
                    "SELECT pg_try_advisory_xact_lock(hashtext($1))",
                    &[&self.lock],
                )
                .await?;
            if !row.try_get::<_, bool>(0)? {
                return Err(BatchError::Busy);
            }
        } else {
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&self.lock])
                .await?;
        }
        let rows = tx
            .query(
                &self.select,
                &[&i64::from(self.partition), &i64::from(limit)],
            )
            .await?;
        let mut done: Vec<i64> = Vec::with_capacity(rows.len());
        let mut retry = None;
        for row in &rows {
            if self.consumer.stopping() {
                break;
            }
            let id: i64 = row.try_get(0)?;
            let method: &str = row.try_get(1)?;
            let payload: &str = row.try_get(2)?;
            match self.consumer.apply(Some(method), payload).await {
                Ok(()) => done.push(id),
                Err(reason) => {
                    retry = Some(reason);
                    break;
                }
            }
        }
        if !done.is_empty() {
            tx.execute(&self.delete, &[&done]).await?;
        }
        tx.commit().await?;
        match retry {
            Some(reason) => Err(BatchError::Retry(reason)),
            None => Ok(u32::try_from(done.len()).unwrap_or(u32::MAX)),
        }
    }
}

/// `"name"` with inner quotes doubled: a safe SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Keeps a `LISTEN` connection open (reconnecting after a pause) and wakes the partition a
/// notification names. Every partition is woken once after each successful `LISTEN`, for
/// rows written while no connection listened.
async fn listen(
    c: Consumer,
    connector: Connector,
    config: Arc<PostgresConsumerConfig>,
    wakeups: Arc<Vec<Notify>>,
) {
    let dsn = if config.partition_notification_dsn.is_empty() {
        &config.dsn
    } else {
        &config.partition_notification_dsn
    };
    let mut backoff = Backoff::default();
    while !c.stopping() {
        let channel = &config.partition_notification_channel;
        let result = listen_once(&c, &connector, dsn, channel, &wakeups).await;
        if c.stopping() {
            break;
        }
        match result {
            Ok(()) => tracing::warn!(consumer = %c.name, "outbox LISTEN connection closed"),
            Err(err) => tracing::warn!(consumer = %c.name, "outbox LISTEN failed: {err}"),
        }
        if !c.sleep(backoff.next()).await {
            break;
        }
    }
}

/// One `LISTEN` connection's life, until shutdown or the connection ends.
async fn listen_once(
    c: &Consumer,
    connector: &Connector,
    dsn: &str,
    channel: &str,
    wakeups: &[Notify],
) -> Result<(), tokio_postgres::Error> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (client, driver) = connector.connect(dsn, Some(tx)).await?;
    client
        .batch_execute(&format!("LISTEN {}", quote_ident(channel)))
        .await?;
    for wakeup in wakeups {
        wakeup.notify_one();
    }
    loop {
        tokio::select! {
            _ = c.shutdown.cancelled() => return Ok(()),
            payload = rx.recv() => {
                let Some(payload) = payload else { break };
                match payload.trim().parse::<usize>().ok().and_then(|p| wakeups.get(p)) {
                    Some(wakeup) => wakeup.notify_one(),
                    None => tracing::debug!(
                        consumer = %c.name,
                        "notification for no partition: {payload:?}"
                    ),
                }
            }
        }
    }
    drop(client);
    match driver.await {
        Ok(Err(err)) => Err(err),
        _ => Ok(()),
    }
}
