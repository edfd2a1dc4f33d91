-- Gyre's PostgreSQL controller schema, laid out as Centrifugo v6.8's `controller.type:
-- postgres`: control messages of every node in one partitioned table, read by every node
-- with a cursor per shard. @P@ is the prefix with its trailing underscore (e.g. cf_).
-- Every statement is idempotent.

CREATE TABLE IF NOT EXISTS @P@controller_messages (
    id          BIGSERIAL,
    shard_id    SMALLINT NOT NULL DEFAULT 0,
    node_id     TEXT NOT NULL DEFAULT '',
    data        BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

CREATE INDEX IF NOT EXISTS @P@controller_messages_shard_id_idx
    ON @P@controller_messages (shard_id, id);

CREATE TABLE IF NOT EXISTS @P@controller_shard_lock (
    shard_id SMALLINT PRIMARY KEY
);

CREATE TABLE IF NOT EXISTS @P@controller_schema_version (
    id              INTEGER PRIMARY KEY,
    schema_version  INTEGER NOT NULL
);
INSERT INTO @P@controller_schema_version (id, schema_version) VALUES (1, 1)
    ON CONFLICT (id) DO NOTHING;

-- @FUNCTIONS@

-- Sends a control message to every node (p_node_id '') or to one node. Messages of a shard
-- serialize on its lock row, so their ids commit in order.
CREATE OR REPLACE FUNCTION @P@controller_publish(
    p_data BYTEA,
    p_node_id TEXT DEFAULT '',
    p_num_shards INTEGER DEFAULT NULL
) RETURNS BIGINT AS $$
DECLARE
    n INTEGER := p_num_shards;
    s INTEGER;
    v_id BIGINT;
BEGIN
    IF n IS NULL OR n <= 0 THEN
        SELECT COUNT(*)::INTEGER INTO n FROM @P@controller_shard_lock;
    END IF;
    IF n <= 1 THEN
        s := 0;
    ELSIF p_node_id <> '' THEN
        s := (abs(hashtext(p_node_id)::BIGINT) % n)::INTEGER;
    ELSE
        s := (txid_current() % n)::INTEGER;
    END IF;
    PERFORM 1 FROM @P@controller_shard_lock WHERE shard_id = s FOR UPDATE;
    INSERT INTO @P@controller_messages (shard_id, node_id, data)
    VALUES (s, p_node_id, p_data)
    RETURNING id INTO v_id;
    PERFORM pg_notify('@P@controller_notify', '');
    RETURN v_id;
END;
$$ LANGUAGE plpgsql;
