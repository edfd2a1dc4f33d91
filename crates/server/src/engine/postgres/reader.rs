//! Reading an outbox table (the broker's stream table, the controller's message table): one
//! dedicated connection per node polls every shard past its cursor (the last id seen) in one
//! query, woken early by NOTIFY when enabled. Publishes of a shard serialize on its lock row,
//! so within a shard ids commit in id order and a cursor never skips a row.
//!
//! The connection is kept with backoff; the node starts (and serves) while PostgreSQL is
//! down. Cursors are taken once, at the first connection (rows committed before the node
//! started are not delivered: history serves them), and survive reconnects. After a loss the
//! owner is told ([`Outbox::regained`]) so positioned subscribers recover.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{Client, Row};
use tokio_util::sync::CancellationToken;

use super::conn::{Backoff, CONNECT_TIMEOUT, Connector};
use crate::engine::{BoxFuture, EngineError};

/// Bound of one poll: past it the connection counts as lost.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// What an outbox's owner does with what the reader finds.
pub(super) trait Outbox: Send + Sync + 'static {
    /// Runs once on the first connection, before cursors are taken (the schema set-up).
    fn prepare<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<(), EngineError>>;

    /// New rows of one poll: columns `id`, `shard_id` and then the reader's `columns`, in id
    /// order.
    fn rows(&self, rows: &[Row]);

    /// The connection is back after a loss: rows may have been missed by subscribers.
    fn regained(&self);
}

/// How to read one outbox table.
#[derive(Debug, Clone)]
pub(super) struct Reader {
    /// The reading connection's server.
    pub connector: Connector,
    /// The outbox table.
    pub table: String,
    /// Columns after `id, shard_id`, of the table aliased `s`.
    pub columns: String,
    /// Extra condition on the table aliased `t` (may use `$4`, bound to `extra`).
    pub filter: String,
    /// The value of `$4` when `filter` uses it.
    pub extra: Option<String>,
    /// Number of shards (cursors).
    pub shards: u32,
    /// Rows per shard in one poll.
    pub batch: u32,
    /// Pause between polls when idle.
    pub poll: Duration,
    /// Channel to LISTEN on for early wake-ups.
    pub notify: Option<String>,
    /// Whether the reader is connected with its cursors taken.
    pub up: Arc<AtomicBool>,
}

impl Reader {
    /// Runs until `shutdown`.
    pub(super) async fn run(self, outbox: Arc<dyn Outbox>, shutdown: CancellationToken) {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = self.keep(outbox) => {}
        }
        self.up.store(false, Ordering::Release);
    }

    async fn keep(&self, outbox: Arc<dyn Outbox>) {
        let shard_ids: Vec<i32> = (0..self.shards.max(1) as i32).collect();
        let mut cursors: Option<Vec<i64>> = None;
        let mut backoff = Backoff::default();
        let mut prepared = false;
        let mut down_logged = false;
        loop {
            let attempt = async {
                let (client, wake) =
                    tokio::time::timeout(CONNECT_TIMEOUT, self.connector.dedicated())
                        .await
                        .map_err(|_| EngineError::new("connection timed out"))??;
                if !prepared {
                    outbox.prepare(&client).await?;
                }
                if let Some(channel) = &self.notify {
                    client
                        .batch_execute(&format!("LISTEN {channel}"))
                        .await
                        .map_err(EngineError::caused_by)?;
                }
                let first = cursors.is_none();
                let taken = match cursors.take() {
                    Some(taken) => taken,
                    None => self.initial_cursors(&client, &shard_ids).await?,
                };
                Ok::<_, EngineError>((client, wake, taken, first))
            };
            let (client, mut wake, taken, first) = match attempt.await {
                Ok(ready) => ready,
                Err(e) => {
                    if !down_logged {
                        tracing::warn!(
                            "postgres at {} is unreachable ({e}); retrying in the background",
                            self.connector.describe()
                        );
                        down_logged = true;
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            };
            prepared = true;
            backoff = Backoff::default();
            tracing::info!(
                "postgres at {} is connected ({})",
                self.connector.describe(),
                self.table
            );
            let mut current = taken;
            self.up.store(true, Ordering::Release);
            // After a loss a subscriber may have read its position before the cursors were
            // taken again. Not at the first connection: a subscribe waits for the reader
            // ([`super::broker`]), so no position predates the first cursors.
            if !first {
                outbox.regained();
            }
            let error = self
                .poll_loop(&client, &mut wake, &shard_ids, &mut current, &*outbox)
                .await;
            cursors = Some(current);
            self.up.store(false, Ordering::Release);
            down_logged = true;
            tracing::warn!(
                "postgres connection to {} lost ({error}); reconnecting",
                self.connector.describe()
            );
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// The newest id of each shard.
    async fn initial_cursors(
        &self,
        client: &Client,
        shard_ids: &[i32],
    ) -> Result<Vec<i64>, EngineError> {
        let sql = format!(
            "SELECT c.sid, COALESCE((SELECT MAX(t.id) FROM {} t WHERE t.shard_id = c.sid), 0)
             FROM unnest($1::INT[]) AS c(sid) ORDER BY c.sid",
            self.table
        );
        let rows = client
            .query(sql.as_str(), &[&shard_ids])
            .await
            .map_err(EngineError::caused_by)?;
        let mut cursors = vec![0i64; shard_ids.len()];
        for row in rows {
            let shard: i32 = row.try_get(0).map_err(EngineError::caused_by)?;
            let id: i64 = row.try_get(1).map_err(EngineError::caused_by)?;
            if let Some(c) = cursors.get_mut(shard as usize) {
                *c = id;
            }
        }
        Ok(cursors)
    }

    /// Polls until the connection fails; returns why.
    async fn poll_loop(
        &self,
        client: &Client,
        wake: &mut mpsc::Receiver<()>,
        shard_ids: &[i32],
        cursors: &mut [i64],
        outbox: &dyn Outbox,
    ) -> EngineError {
        let sql = format!(
            "SELECT s.id, s.shard_id::INT, {columns}
             FROM unnest($1::INT[], $2::BIGINT[]) AS c(sid, cur)
             CROSS JOIN LATERAL (
               SELECT * FROM {table} t
               WHERE t.shard_id = c.sid AND t.id > c.cur {filter}
               ORDER BY t.id LIMIT $3
             ) s
             ORDER BY s.id",
            columns = self.columns,
            table = self.table,
            filter = self.filter,
        );
        let statement = match client.prepare(&sql).await {
            Ok(statement) => statement,
            Err(e) => return EngineError::caused_by(e),
        };
        let limit = i64::from(self.batch.max(1));
        loop {
            let rows = {
                let cursor_param: &[i64] = cursors;
                let query = async {
                    match &self.extra {
                        Some(extra) => {
                            client
                                .query(&statement, &[&shard_ids, &cursor_param, &limit, extra])
                                .await
                        }
                        None => {
                            client
                                .query(&statement, &[&shard_ids, &cursor_param, &limit])
                                .await
                        }
                    }
                };
                match tokio::time::timeout(POLL_TIMEOUT, query).await {
                    Ok(Ok(rows)) => rows,
                    Ok(Err(e)) => return EngineError::caused_by(e),
                    Err(_) => return EngineError::new("poll timed out"),
                }
            };
            let mut full = false;
            if !rows.is_empty() {
                outbox.rows(&rows);
                let mut counts = vec![0i64; cursors.len()];
                for row in &rows {
                    let (Ok(id), Ok(shard)) = (row.try_get::<_, i64>(0), row.try_get::<_, i32>(1))
                    else {
                        continue;
                    };
                    if let Some(c) = cursors.get_mut(shard as usize) {
                        *c = (*c).max(id);
                        counts[shard as usize] += 1;
                    }
                }
                full = counts.iter().any(|n| *n >= limit);
            }
            if full {
                continue;
            }
            tokio::select! {
                woken = wake.recv() => {
                    if woken.is_none() {
                        return EngineError::new("connection closed");
                    }
                }
                () = tokio::time::sleep(self.poll) => {}
            }
        }
    }
}
