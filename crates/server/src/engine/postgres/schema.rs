//! The schema: tables and functions created at start-up when missing (idempotent, serialized
//! between nodes by an advisory lock), and the periodic upkeep: daily partitions created
//! ahead and dropped after their retention, expired channel rows and idempotency results
//! deleted.

use tokio_postgres::Client;

use crate::engine::EngineError;

const STREAM_SQL: &str = include_str!("stream_schema.sql");
const CONTROLLER_SQL: &str = include_str!("controller_schema.sql");
/// Where the functions part of a template starts (it runs as its own transaction, so that
/// replacing functions never waits behind table DDL).
const FUNCTIONS_MARK: &str = "-- @FUNCTIONS@";

/// Names of the broker's objects for one data variant (JSONB or BYTEA).
#[derive(Debug, Clone)]
pub(super) struct StreamNames {
    /// The stream table (`cf_stream`).
    pub stream: String,
    /// Prefix of the other objects (`cf_stream_`).
    pub prefix: String,
}

impl StreamNames {
    /// Names under `table_prefix` (`cf`): `cf_stream_*`, or `cf_binary_stream_*`.
    pub(super) fn new(table_prefix: &str, binary: bool) -> Self {
        let base = table_prefix.trim_end_matches('_');
        let prefix = if binary {
            format!("{base}_binary_stream_")
        } else {
            format!("{base}_stream_")
        };
        Self {
            stream: prefix.trim_end_matches('_').to_owned(),
            prefix,
        }
    }

    /// An object named `<prefix><name>` (`meta`, `publish`, `notify`, ...).
    pub(super) fn object(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// Names of the controller's objects.
#[derive(Debug, Clone)]
pub(super) struct ControllerNames {
    /// Prefix with its trailing underscore (`cf_`).
    pub prefix: String,
}

impl ControllerNames {
    /// Names under `table_prefix` (`cf`).
    pub(super) fn new(table_prefix: &str) -> Self {
        Self {
            prefix: format!("{}_", table_prefix.trim_end_matches('_')),
        }
    }

    /// An object named `<prefix>controller_<name>` (`messages`, `publish`, `notify`, ...).
    pub(super) fn object(&self, name: &str) -> String {
        format!("{}controller_{name}", self.prefix)
    }
}

/// One rendered schema.
#[derive(Debug, Clone)]
pub(super) struct Schema {
    tables: String,
    functions: String,
    /// The partitioned table (partitions are named `<table>_YYYY_MM_DD`).
    pub partitioned: String,
    shard_lock: String,
}

/// Both variants of the broker's schema (as Centrifugo, a broker creates both).
pub(super) fn stream_schemas(table_prefix: &str) -> Vec<Schema> {
    [false, true]
        .into_iter()
        .map(|binary| {
            let names = StreamNames::new(table_prefix, binary);
            let sql = STREAM_SQL
                .replace("@STREAM@", &names.stream)
                .replace("@P@", &names.prefix)
                .replace("@DATA@", if binary { "BYTEA" } else { "JSONB" });
            split(sql, names.stream.clone(), names.object("shard_lock"))
        })
        .collect()
}

/// The controller's schema.
pub(super) fn controller_schema(table_prefix: &str) -> Schema {
    let names = ControllerNames::new(table_prefix);
    let sql = CONTROLLER_SQL.replace("@P@", &names.prefix);
    split(sql, names.object("messages"), names.object("shard_lock"))
}

fn split(sql: String, partitioned: String, shard_lock: String) -> Schema {
    let (tables, functions) = match sql.find(FUNCTIONS_MARK) {
        Some(at) => (sql[..at].to_owned(), sql[at..].to_owned()),
        None => (sql, String::new()),
    };
    Schema {
        tables,
        functions,
        partitioned,
        shard_lock,
    }
}

/// Runs `sql` as one transaction holding the schema lock of `name` (so nodes starting at
/// once do not race on the catalog).
async fn locked(client: &Client, name: &str, sql: &str) -> Result<(), EngineError> {
    let lock = format!("SELECT pg_advisory_xact_lock(hashtext('gyre-schema:{name}')::BIGINT);");
    client
        .batch_execute(&format!("{lock}\n{sql}"))
        .await
        .map_err(EngineError::caused_by)
}

/// Creates what is missing of `schema`: tables, functions, one lock row per shard, the
/// partitions of today and the next `lookahead` days.
pub(super) async fn ensure(
    client: &Client,
    schema: &Schema,
    num_shards: u32,
    lookahead: u32,
) -> Result<(), EngineError> {
    locked(client, &schema.partitioned, &schema.tables).await?;
    if !schema.functions.is_empty() {
        locked(client, &schema.partitioned, &schema.functions).await?;
    }
    let shards = format!(
        "INSERT INTO {lock} (shard_id) SELECT generate_series(0, {last}) ON CONFLICT DO NOTHING;
         DELETE FROM {lock} WHERE shard_id > {last};",
        lock = schema.shard_lock,
        last = num_shards.max(1) - 1,
    );
    locked(client, &schema.partitioned, &shards).await?;
    create_partitions(client, &schema.partitioned, lookahead).await
}

/// Creates the daily partitions (UTC) of today and the next `lookahead` days.
pub(super) async fn create_partitions(
    client: &Client,
    table: &str,
    lookahead: u32,
) -> Result<(), EngineError> {
    let sql = format!(
        "DO $$
         DECLARE d DATE;
         BEGIN
           FOR d IN SELECT g::DATE FROM generate_series(
               (NOW() AT TIME ZONE 'UTC')::DATE,
               (NOW() AT TIME ZONE 'UTC')::DATE + {lookahead},
               interval '1 day') AS g
           LOOP
             EXECUTE format(
               'CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
               '{table}_' || to_char(d, 'YYYY_MM_DD'), '{table}',
               d::TEXT || ' 00:00:00+00', (d + 1)::TEXT || ' 00:00:00+00');
           END LOOP;
         END $$;"
    );
    locked(client, table, &sql).await
}

/// Drops the partitions of `table` older than `retention` days (0: keeps them all).
pub(super) async fn drop_old_partitions(
    client: &Client,
    table: &str,
    retention: u32,
) -> Result<(), EngineError> {
    if retention == 0 {
        return Ok(());
    }
    let sql = format!(
        "DO $$
         DECLARE r RECORD;
         BEGIN
           FOR r IN SELECT n.nspname AS s, c.relname AS t
             FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE p.relname = '{table}' AND n.nspname = current_schema()
               AND c.relname ~ '_[0-9]{{4}}_[0-9]{{2}}_[0-9]{{2}}$'
               AND to_date(right(c.relname, 10), 'YYYY_MM_DD')
                   < (NOW() AT TIME ZONE 'UTC')::DATE - {retention}
           LOOP
             EXECUTE format('DROP TABLE IF EXISTS %I.%I', r.s, r.t);
           END LOOP;
         END $$;"
    );
    locked(client, table, &sql).await
}

/// Deletes expired channel rows (their channel is forgotten: the next publication starts a
/// new epoch) and expired idempotency results, in batches.
pub(super) async fn delete_expired(
    client: &Client,
    names: &StreamNames,
) -> Result<(), EngineError> {
    let meta = names.object("meta");
    let idempotency = names.object("idempotency");
    let statements = [
        format!(
            "DELETE FROM {meta} WHERE channel IN
               (SELECT channel FROM {meta} WHERE expires_at < NOW() LIMIT 1000)"
        ),
        format!(
            "DELETE FROM {idempotency} WHERE (channel, idempotency_key) IN
               (SELECT channel, idempotency_key FROM {idempotency}
                WHERE expires_at < NOW() LIMIT 1000)"
        ),
    ];
    for statement in &statements {
        loop {
            let removed = client
                .execute(statement.as_str(), &[])
                .await
                .map_err(EngineError::caused_by)?;
            if removed < 1000 {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_table_prefix() {
        let n = StreamNames::new("cf", false);
        assert_eq!(n.stream, "cf_stream");
        assert_eq!(n.object("publish"), "cf_stream_publish");
        let b = StreamNames::new("app_", true);
        assert_eq!(b.stream, "app_binary_stream");
        assert_eq!(b.object("meta"), "app_binary_stream_meta");
        assert_eq!(
            ControllerNames::new("cf").object("messages"),
            "cf_controller_messages"
        );
    }

    #[test]
    fn templates_render_without_placeholders() {
        for schema in stream_schemas("cf")
            .into_iter()
            .chain([controller_schema("cf")])
        {
            for part in [&schema.tables, &schema.functions] {
                assert!(!part.contains("@STREAM@") && !part.contains("@P@"));
                assert!(!part.contains("@DATA@"));
            }
            assert!(schema.functions.contains("CREATE OR REPLACE FUNCTION"));
            assert!(!schema.tables.contains("CREATE OR REPLACE FUNCTION"));
        }
    }
}
