//! The PostgreSQL broker and controller (Centrifugo v6.8's `broker.type: postgres` and
//! `controller.type: postgres`): many nodes sharing one database, no Redis needed.
//!
//! - Streams: per channel a row in `<prefix>_stream_meta` (top offset, epoch, history
//!   window, newest version, expiry) and its publications in the partitioned stream table
//!   `<prefix>_stream`. The SQL function `<prefix>_stream_publish` assigns the next offset
//!   (a new channel gets a new epoch), checks idempotency keys and versions, inserts the row
//!   and NOTIFYs, in the caller's transaction: an application calls it inside its own
//!   transaction, so a publication commits with the application's data and a rolled-back
//!   one never reaches anyone. History reads apply the window at read time (the last
//!   `history_size` offsets younger than `history_ttl`); daily partitions are dropped after
//!   `partition_retention_days`, expired channel rows and idempotency results are deleted
//!   every `cleanup_interval`.
//! - Delivery: every node reads the stream table through one dedicated connection
//!   ([`reader`]): a cursor per shard, polled every `outbox.poll_interval` or woken by
//!   NOTIFY (`use_notify`), and hands each row to the node ([`EngineEvents`]). After the
//!   connection was lost, positioned subscribers of the node's channels are told to recover.
//! - Control ([`control`]): the same pattern on `<prefix>_controller_messages`, with
//!   messages addressed to one node filtered by node id.
//! - The node starts (and serves) while PostgreSQL is down; the schema is created at the
//!   first connection unless `skip_schema_init`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use deadpool_postgres::Pool;
use gyre_config::PostgresBrokerConfig;
use parking_lot::Mutex;
use tokio_postgres::{Client, Row};
use tokio_util::sync::CancellationToken;

mod broker;
mod codec;
mod conn;
mod control;
mod dsn;
mod reader;
mod schema;

pub(crate) use control::PostgresControl;

use crate::engine::{BoxFuture, EngineError, EngineEvents};
use conn::Connector;
use reader::{Outbox, Reader};
use schema::StreamNames;

/// The SQL of the broker's requests (built once from the table names).
#[derive(Debug)]
struct Statements {
    publish: String,
    publish_live: String,
    join: String,
    leave: String,
    remove_history: String,
    meta: String,
    create_meta: String,
    history_asc: String,
    history_desc: String,
}

impl Statements {
    fn new(n: &StreamNames) -> Self {
        let ms = |p: &str| format!("({p}::BIGINT * interval '1 millisecond')");
        let history = |order: &str| {
            format!(
                "SELECT {columns} FROM {stream} s
                 WHERE s.channel = $1 AND s.kind = 0 AND s.epoch = $2
                   AND s.channel_offset >= $3 AND s.channel_offset <= $4
                   AND ($5::BIGINT <= 0 OR s.created_at > NOW() - {ttl})
                 ORDER BY s.channel_offset {order} LIMIT $6",
                columns = codec::ROW_COLUMNS,
                stream = n.stream,
                ttl = ms("$5"),
            )
        };
        Self {
            publish: format!(
                "SELECT out_channel_offset, out_epoch FROM {}($1, $2, $3, {}, $5::INT, {},
                 $7::BIGINT, $8::TEXT, $9::TEXT, {}, $11::BOOL, $12::TEXT, $13::TEXT, $14, $15,
                 $16::INT)",
                n.object("publish"),
                ms("$4"),
                ms("$6"),
                ms("$10"),
            ),
            publish_live: format!(
                "SELECT {}($1, $2, $3, $4::TEXT, $5::TEXT, $6, $7, $8::INT, $9::TEXT, {})",
                n.object("publish_live"),
                ms("$10"),
            ),
            join: format!(
                "SELECT {}($1, $2, $3, $4, $5, $6::INT)",
                n.object("publish_join")
            ),
            leave: format!(
                "SELECT {}($1, $2, $3, $4, $5, $6::INT)",
                n.object("publish_leave")
            ),
            remove_history: format!("SELECT {}($1, $2::INT)", n.object("remove_history")),
            meta: format!(
                "SELECT top_offset, epoch, history_size,
                        (EXTRACT(EPOCH FROM history_ttl) * 1000)::BIGINT
                 FROM {} WHERE channel = $1",
                n.object("meta")
            ),
            create_meta: format!(
                "INSERT INTO {} (channel, top_offset, epoch, history_ttl, history_size, expires_at)
                 VALUES ($1, 0, substr(md5(random()::TEXT || clock_timestamp()::TEXT), 1, 8),
                         {}, $3::INT, NOW() + {})
                 ON CONFLICT (channel) DO NOTHING",
                n.object("meta"),
                ms("$2"),
                ms("$4"),
            ),
            history_asc: history("ASC"),
            history_desc: history("DESC"),
        }
    }
}

/// The PostgreSQL broker: streams, history and delivery for every node on one database.
pub(crate) struct PostgresBroker {
    config: PostgresBrokerConfig,
    /// The objects of the data variant in use (JSONB, or BYTEA with `binary_data`).
    names: StreamNames,
    sql: Statements,
    pool: Pool,
    events: Arc<dyn EngineEvents>,
    /// Channels this node receives (their subscribers are told to recover after a loss).
    subscribed: Mutex<HashSet<String>>,
    /// Whether the reading connection is up.
    up: Arc<AtomicBool>,
    connector: Connector,
}

impl std::fmt::Debug for PostgresBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBroker")
            .field("server", &self.connector)
            .field("stream", &self.names.stream)
            .finish()
    }
}

impl PostgresBroker {
    /// The broker of `broker.postgres`, reporting to `events`. No I/O here: connections are
    /// made in the background and on demand.
    pub(crate) fn new(
        config: &PostgresBrokerConfig,
        events: Arc<dyn EngineEvents>,
    ) -> anyhow::Result<Arc<Self>> {
        let connector = Connector::new("broker.postgres", &config.dsn, &config.tls)?;
        let pool = connector.pool(config.pool_size)?;
        let names = StreamNames::new(&config.table_prefix, config.binary_data);
        Ok(Arc::new(Self {
            config: config.clone(),
            sql: Statements::new(&names),
            names,
            pool,
            events,
            subscribed: Mutex::default(),
            up: Arc::default(),
            connector,
        }))
    }

    /// Starts the reader and the periodic upkeep, until `shutdown`.
    pub(crate) fn start(self: &Arc<Self>, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let reader_connector = if self.config.notify_dsn.is_empty() {
            self.connector.clone()
        } else {
            Connector::new("broker.postgres", &self.config.notify_dsn, &self.config.tls)?
        };
        let reader = Reader {
            connector: reader_connector,
            table: self.names.stream.clone(),
            columns: format!("s.kind, s.channel, {}", codec::ROW_COLUMNS),
            filter: String::new(),
            extra: None,
            shards: self.config.num_shards,
            batch: self.config.outbox.batch_size,
            poll: self
                .config
                .outbox
                .poll_interval
                .0
                .max(Duration::from_millis(1)),
            notify: self.config.use_notify.then(|| self.names.object("notify")),
            up: self.up.clone(),
        };
        tokio::spawn(reader.run(self.clone(), shutdown.clone()));
        let broker = self.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut every =
                tokio::time::interval(broker.config.cleanup_interval.0.max(Duration::from_secs(1)));
            every.reset();
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = every.tick() => {
                        if let Err(e) = broker.upkeep().await {
                            tracing::debug!("postgres broker upkeep failed: {e}");
                        }
                    }
                }
            }
        });
        Ok(())
    }

    /// Partitions ahead and behind, expired rows.
    async fn upkeep(&self) -> Result<(), EngineError> {
        let client = self.pool.get().await.map_err(conn::pool_err)?;
        for schema in schema::stream_schemas(&self.config.table_prefix) {
            schema::create_partitions(
                &client,
                &schema.partitioned,
                self.config.partition_lookahead_days,
            )
            .await?;
            schema::drop_old_partitions(
                &client,
                &schema.partitioned,
                self.config.partition_retention_days,
            )
            .await?;
        }
        for binary in [false, true] {
            let names = StreamNames::new(&self.config.table_prefix, binary);
            schema::delete_expired(&client, &names).await?;
        }
        Ok(())
    }
}

impl Outbox for PostgresBroker {
    fn prepare<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            if self.config.skip_schema_init {
                return Ok(());
            }
            for schema in schema::stream_schemas(&self.config.table_prefix) {
                schema::ensure(
                    client,
                    &schema,
                    self.config.num_shards,
                    self.config.partition_lookahead_days,
                )
                .await?;
            }
            tracing::info!("postgres broker schema {}* is ready", self.names.prefix);
            Ok(())
        })
    }

    fn rows(&self, rows: &[Row]) {
        for row in rows {
            let (Ok(kind), Ok(channel)) = (row.try_get::<_, i16>(2), row.try_get::<_, &str>(3))
            else {
                continue;
            };
            if !self.events.has_subscribers(channel) {
                continue;
            }
            match kind {
                0 => match codec::row_publication(row, 4) {
                    Ok((publication, delta, epoch)) => {
                        self.events
                            .publication(channel, &publication, delta, &epoch)
                    }
                    Err(e) => tracing::debug!("unreadable publication in {channel}: {e}"),
                },
                1 | 2 => {
                    if let Ok(Some(info)) = codec::row_info(row, 8) {
                        self.events.join_leave(channel, &info, kind == 1);
                    }
                }
                _ => {}
            }
        }
    }

    fn regained(&self) {
        let channels: Vec<String> = self.subscribed.lock().iter().cloned().collect();
        for channel in channels {
            self.events.stream_lost(&channel);
        }
    }
}
