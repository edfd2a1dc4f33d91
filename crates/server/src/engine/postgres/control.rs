//! Control over PostgreSQL (`controller.type: postgres`): every node's control messages
//! (heartbeats, surveys, forwarded commands: [`crate::node::cluster`]) go into
//! `<prefix>_controller_messages` through `<prefix>_controller_publish`; every node reads
//! them with the outbox [`reader`](super::reader), skipping those addressed to other nodes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use gyre_config::PostgresControllerConfig;
use tokio_postgres::{Client, Row};
use tokio_util::sync::CancellationToken;

use super::conn::{Connector, pool_err};
use super::reader::{Outbox, Reader};
use super::schema::{self, ControllerNames};
use crate::engine::{BoxFuture, ControlBus, EngineError, EngineEvents};

/// The PostgreSQL controller.
pub(crate) struct PostgresControl {
    config: PostgresControllerConfig,
    names: ControllerNames,
    publish_sql: String,
    pool: Pool,
    connector: Connector,
    events: Arc<dyn EngineEvents>,
    /// Whether the reading connection is up.
    up: Arc<AtomicBool>,
}

impl std::fmt::Debug for PostgresControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresControl")
            .field("server", &self.connector)
            .field("prefix", &self.names.prefix)
            .finish()
    }
}

impl PostgresControl {
    /// The controller of `controller.postgres`, reporting to `events` (no I/O here).
    pub(crate) fn new(
        config: &PostgresControllerConfig,
        events: Arc<dyn EngineEvents>,
    ) -> anyhow::Result<Arc<Self>> {
        let connector = Connector::new("controller.postgres", &config.dsn, &config.tls)?;
        let pool = connector.pool(config.pool_size)?;
        let names = ControllerNames::new(&config.table_prefix);
        Ok(Arc::new(Self {
            publish_sql: format!("SELECT {}($1, $2, $3::INT)", names.object("publish")),
            config: config.clone(),
            names,
            pool,
            connector,
            events,
            up: Arc::default(),
        }))
    }

    /// Starts the reader and the partition upkeep, until `shutdown`.
    pub(crate) fn start(self: &Arc<Self>, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let connector = if self.config.notify_dsn.is_empty() {
            self.connector.clone()
        } else {
            Connector::new(
                "controller.postgres",
                &self.config.notify_dsn,
                &self.config.tls,
            )?
        };
        let reader = Reader {
            connector,
            table: self.names.object("messages"),
            columns: "s.data".to_owned(),
            filter: "AND (t.node_id = '' OR t.node_id = $4)".to_owned(),
            extra: Some(self.events.node_id().to_owned()),
            shards: self.config.num_shards,
            batch: self.config.batch_size,
            poll: self.config.poll_interval.0.max(Duration::from_millis(1)),
            notify: self.config.use_notify.then(|| self.names.object("notify")),
            up: self.up.clone(),
        };
        tokio::spawn(reader.run(self.clone(), shutdown.clone()));
        let control = self.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let period = control
                .config
                .partition_cleanup_interval
                .0
                .max(Duration::from_secs(1));
            let mut every = tokio::time::interval(period);
            every.reset();
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = every.tick() => {
                        if let Err(e) = control.upkeep().await {
                            tracing::debug!("postgres controller upkeep failed: {e}");
                        }
                    }
                }
            }
        });
        Ok(())
    }

    async fn upkeep(&self) -> Result<(), EngineError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let table = self.names.object("messages");
        schema::create_partitions(&client, &table, self.config.partition_lookahead_days).await?;
        schema::drop_old_partitions(&client, &table, self.config.partition_retention_days).await
    }
}

impl Outbox for PostgresControl {
    fn prepare<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            if self.config.skip_schema_init {
                return Ok(());
            }
            let schema = schema::controller_schema(&self.config.table_prefix);
            schema::ensure(
                client,
                &schema,
                self.config.num_shards,
                self.config.partition_lookahead_days,
            )
            .await?;
            tracing::info!(
                "postgres controller schema {}controller_* is ready",
                self.names.prefix
            );
            Ok(())
        })
    }

    fn rows(&self, rows: &[Row]) {
        for row in rows {
            if let Ok(data) = row.try_get::<_, &[u8]>(2) {
                self.events.control(data);
            }
        }
    }

    fn regained(&self) {
        // Control messages are short-lived: heartbeats resume, surveys are retried.
    }
}

impl ControlBus for PostgresControl {
    fn publish<'a>(
        &'a self,
        message: String,
        to: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(pool_err)?;
            let statement = client
                .prepare_cached(&self.publish_sql)
                .await
                .map_err(EngineError::caused_by)?;
            let shards = i32::try_from(self.config.num_shards).unwrap_or(1);
            client
                .execute(
                    &statement,
                    &[&message.as_bytes(), &to.unwrap_or_default(), &shards],
                )
                .await
                .map_err(EngineError::caused_by)?;
            Ok(())
        })
    }

    fn shared(&self) -> bool {
        true
    }

    fn wait_connected(&self, bound: Duration) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let deadline = Instant::now() + bound;
            while !self.up.load(Ordering::Acquire) {
                if Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            true
        })
    }
}
