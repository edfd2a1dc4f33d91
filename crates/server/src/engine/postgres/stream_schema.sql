-- Gyre's PostgreSQL broker schema, laid out as Centrifugo v6.8's `broker.type: postgres`
-- (same tables, columns and function signatures, so an application's SQL and a mixed
-- Centrifugo/Gyre cluster work on one database). Every statement is idempotent.
--
-- Rendered once per data variant before it runs:
--   @STREAM@  stream table (e.g. cf_stream, cf_binary_stream)
--   @P@       prefix of the other objects (e.g. cf_stream_, cf_binary_stream_)
--   @DATA@    JSONB, or BYTEA for the binary variant
--
-- Rows of the stream table: kind 0 publication, 1 join, 2 leave. Publications of channels
-- with history carry their channel offset (>= 1) and epoch; those without history carry
-- offset 0 and an empty epoch. Every publish serializes on its shard's row in
-- @P@shard_lock, so within a shard ids commit in id order and readers keep one cursor
-- (the last id seen) per shard.

CREATE TABLE IF NOT EXISTS @STREAM@ (
    id              BIGSERIAL,
    channel         TEXT NOT NULL,
    channel_offset  BIGINT NOT NULL,
    epoch           TEXT NOT NULL DEFAULT '',
    kind            SMALLINT NOT NULL DEFAULT 0,
    data            @DATA@,
    tags            JSONB,
    client_id       TEXT,
    user_id         TEXT,
    conn_info       @DATA@,
    chan_info       @DATA@,
    prev_data       @DATA@,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    shard_id        SMALLINT NOT NULL DEFAULT 0,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

CREATE INDEX IF NOT EXISTS @STREAM@_channel_epoch_offset_idx
    ON @STREAM@ (channel, epoch, channel_offset) WHERE kind = 0;
CREATE INDEX IF NOT EXISTS @STREAM@_shard_id_idx ON @STREAM@ (shard_id, id);
CREATE INDEX IF NOT EXISTS @STREAM@_created_at_idx ON @STREAM@ (created_at);

-- One row per channel: top offset and epoch, the history window of the last publish, the
-- newest accepted version, and when the channel is forgotten.
CREATE TABLE IF NOT EXISTS @P@meta (
    channel            TEXT PRIMARY KEY,
    top_offset         BIGINT NOT NULL DEFAULT 0,
    epoch              TEXT NOT NULL DEFAULT '',
    history_ttl        INTERVAL NOT NULL DEFAULT interval '1 minute',
    history_size       INTEGER NOT NULL DEFAULT 100,
    top_version        BIGINT NOT NULL DEFAULT 0,
    top_version_epoch  TEXT NOT NULL DEFAULT '',
    expires_at         TIMESTAMPTZ NOT NULL DEFAULT NOW() + interval '7 days',
    created_at         TIMESTAMPTZ DEFAULT NOW(),
    updated_at         TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS @P@meta_expires_idx ON @P@meta (expires_at);

-- Results of publications with an idempotency key, until they expire.
CREATE TABLE IF NOT EXISTS @P@idempotency (
    channel         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    result_offset   BIGINT NOT NULL,
    result_epoch    TEXT NOT NULL,
    result_id       BIGINT NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel, idempotency_key)
);
CREATE INDEX IF NOT EXISTS @P@idempotency_expires_idx ON @P@idempotency (expires_at);

CREATE TABLE IF NOT EXISTS @P@shard_lock (
    shard_id SMALLINT PRIMARY KEY
);

CREATE TABLE IF NOT EXISTS @P@schema_version (
    id              INTEGER PRIMARY KEY,
    schema_version  INTEGER NOT NULL
);
INSERT INTO @P@schema_version (id, schema_version) VALUES (1, 1) ON CONFLICT (id) DO NOTHING;

-- @FUNCTIONS@ (the part below runs in its own statement batch)

-- The shard of a channel: locks its row (so publishes of a shard commit in id order).
CREATE OR REPLACE FUNCTION @P@lock_shard(p_channel TEXT, p_num_shards INTEGER)
RETURNS INTEGER AS $$
DECLARE
    n INTEGER := p_num_shards;
    s INTEGER;
BEGIN
    IF n IS NULL OR n <= 0 THEN
        SELECT COUNT(*)::INTEGER INTO n FROM @P@shard_lock;
    END IF;
    IF n <= 0 THEN
        RAISE EXCEPTION '@P@shard_lock is empty: the schema is not initialized';
    END IF;
    s := (abs(hashtext(p_channel)::BIGINT) % n)::INTEGER;
    PERFORM 1 FROM @P@shard_lock WHERE shard_id = s FOR UPDATE;
    RETURN s;
END;
$$ LANGUAGE plpgsql;

-- Publishes into a channel's stream: the call an application makes inside its own
-- transaction, so the publication commits (and is delivered) with its data, or never.
-- Returns where it landed; a repeated idempotency key or a version not newer than the
-- stream's is suppressed (nothing written, the earlier or current position returned).
CREATE OR REPLACE FUNCTION @P@publish(
    p_channel TEXT,
    p_data @DATA@,
    p_tags JSONB DEFAULT NULL,
    p_history_ttl INTERVAL DEFAULT NULL,
    p_history_size INTEGER DEFAULT NULL,
    p_meta_ttl INTERVAL DEFAULT NULL,
    p_version BIGINT DEFAULT NULL,
    p_version_epoch TEXT DEFAULT NULL,
    p_idempotency_key TEXT DEFAULT NULL,
    p_idempotency_ttl INTERVAL DEFAULT NULL,
    p_use_delta BOOLEAN DEFAULT FALSE,
    p_client_id TEXT DEFAULT NULL,
    p_user_id TEXT DEFAULT NULL,
    p_conn_info @DATA@ DEFAULT NULL,
    p_chan_info @DATA@ DEFAULT NULL,
    p_num_shards INTEGER DEFAULT NULL
) RETURNS TABLE(
    out_result_id BIGINT,
    out_channel_offset BIGINT,
    out_epoch TEXT,
    out_suppressed BOOLEAN,
    out_suppress_reason TEXT
) AS $$
DECLARE
    v_shard INTEGER;
    v_ttl INTERVAL;
    v_top BIGINT;
    v_epoch TEXT;
    v_version BIGINT;
    v_version_epoch TEXT;
    v_prev @DATA@;
    v_id BIGINT;
    v_found_offset BIGINT;
    v_found_epoch TEXT;
BEGIN
    v_shard := @P@lock_shard(p_channel, p_num_shards);

    -- The channel is kept at least as long as its history; 7 days when nothing says.
    v_ttl := GREATEST(COALESCE(p_meta_ttl, interval '0'), COALESCE(p_history_ttl, interval '0'));
    IF v_ttl = interval '0' THEN
        v_ttl := interval '7 days';
    END IF;

    -- Create or lock the channel's row in one statement (a new channel gets a new epoch).
    INSERT INTO @P@meta AS m (channel, top_offset, epoch, updated_at)
    VALUES (p_channel, 0, substr(md5(random()::TEXT || clock_timestamp()::TEXT), 1, 8), NOW())
    ON CONFLICT (channel) DO UPDATE SET updated_at = m.updated_at
    RETURNING m.top_offset, m.epoch, m.top_version, m.top_version_epoch
    INTO v_top, v_epoch, v_version, v_version_epoch;

    IF p_idempotency_key IS NOT NULL THEN
        SELECT i.result_offset, i.result_epoch INTO v_found_offset, v_found_epoch
        FROM @P@idempotency i
        WHERE i.channel = p_channel AND i.idempotency_key = p_idempotency_key
          AND i.expires_at > NOW();
        IF FOUND THEN
            RETURN QUERY SELECT NULL::BIGINT, v_found_offset, v_found_epoch, TRUE, 'idempotency'::TEXT;
            RETURN;
        END IF;
    END IF;

    -- Versions compare within one version epoch ('' or NULL matches any).
    IF COALESCE(p_version, 0) > 0 AND v_version > 0
       AND (COALESCE(p_version_epoch, '') = '' OR p_version_epoch = v_version_epoch)
       AND p_version <= v_version THEN
        RETURN QUERY SELECT NULL::BIGINT, v_top, v_epoch, TRUE, 'version'::TEXT;
        RETURN;
    END IF;

    IF p_use_delta THEN
        SELECT s.data INTO v_prev FROM @STREAM@ s
        WHERE s.channel = p_channel AND s.epoch = v_epoch AND s.kind = 0
        ORDER BY s.channel_offset DESC LIMIT 1;
    END IF;

    UPDATE @P@meta AS m SET
        top_offset = m.top_offset + 1,
        history_ttl = COALESCE(p_history_ttl, m.history_ttl),
        history_size = COALESCE(p_history_size, m.history_size),
        top_version = CASE WHEN COALESCE(p_version, 0) > 0 THEN p_version ELSE m.top_version END,
        top_version_epoch = CASE WHEN COALESCE(p_version, 0) > 0
            THEN COALESCE(p_version_epoch, m.top_version_epoch) ELSE m.top_version_epoch END,
        expires_at = CASE WHEN v_ttl < interval '0' THEN 'infinity'::TIMESTAMPTZ
            ELSE NOW() + v_ttl END,
        updated_at = NOW()
    WHERE m.channel = p_channel
    RETURNING m.top_offset INTO v_top;

    INSERT INTO @STREAM@ (channel, channel_offset, epoch, kind, data, tags, client_id,
                          user_id, conn_info, chan_info, prev_data, shard_id)
    VALUES (p_channel, v_top, v_epoch, 0, p_data, p_tags, p_client_id, p_user_id,
            p_conn_info, p_chan_info, v_prev, v_shard)
    RETURNING id INTO v_id;

    IF p_idempotency_key IS NOT NULL THEN
        INSERT INTO @P@idempotency (channel, idempotency_key, result_offset, result_epoch,
                                    result_id, expires_at)
        VALUES (p_channel, p_idempotency_key, v_top, v_epoch, v_id,
                NOW() + COALESCE(p_idempotency_ttl, interval '5 minutes'))
        ON CONFLICT (channel, idempotency_key) DO NOTHING;
    END IF;

    PERFORM pg_notify('@P@notify', '');
    RETURN QUERY SELECT v_id, v_top, v_epoch, FALSE, NULL::TEXT;
END;
$$ LANGUAGE plpgsql;

-- As publish, but a suppressed publication is an error.
CREATE OR REPLACE FUNCTION @P@publish_strict(
    p_channel TEXT,
    p_data @DATA@,
    p_tags JSONB DEFAULT NULL,
    p_history_ttl INTERVAL DEFAULT NULL,
    p_history_size INTEGER DEFAULT NULL,
    p_meta_ttl INTERVAL DEFAULT NULL,
    p_version BIGINT DEFAULT NULL,
    p_version_epoch TEXT DEFAULT NULL,
    p_idempotency_key TEXT DEFAULT NULL,
    p_idempotency_ttl INTERVAL DEFAULT NULL,
    p_use_delta BOOLEAN DEFAULT FALSE,
    p_client_id TEXT DEFAULT NULL,
    p_user_id TEXT DEFAULT NULL,
    p_conn_info @DATA@ DEFAULT NULL,
    p_chan_info @DATA@ DEFAULT NULL,
    p_num_shards INTEGER DEFAULT NULL
) RETURNS TABLE(out_result_id BIGINT, out_channel_offset BIGINT, out_epoch TEXT) AS $$
DECLARE
    r RECORD;
BEGIN
    SELECT * INTO r FROM @P@publish(p_channel, p_data, p_tags, p_history_ttl, p_history_size,
        p_meta_ttl, p_version, p_version_epoch, p_idempotency_key, p_idempotency_ttl,
        p_use_delta, p_client_id, p_user_id, p_conn_info, p_chan_info, p_num_shards);
    IF r.out_suppressed THEN
        RAISE EXCEPTION 'publish suppressed: %', r.out_suppress_reason;
    END IF;
    RETURN QUERY SELECT r.out_result_id, r.out_channel_offset, r.out_epoch;
END;
$$ LANGUAGE plpgsql;

-- A publication of a channel without history: delivered, never read back (offset 0, no
-- epoch, no channel row). A repeated idempotency key is not delivered again (NULL returned).
CREATE OR REPLACE FUNCTION @P@publish_live(
    p_channel TEXT,
    p_data @DATA@,
    p_tags JSONB DEFAULT NULL,
    p_client_id TEXT DEFAULT NULL,
    p_user_id TEXT DEFAULT NULL,
    p_conn_info @DATA@ DEFAULT NULL,
    p_chan_info @DATA@ DEFAULT NULL,
    p_num_shards INTEGER DEFAULT NULL,
    p_idempotency_key TEXT DEFAULT NULL,
    p_idempotency_ttl INTERVAL DEFAULT NULL
) RETURNS BIGINT AS $$
DECLARE
    v_shard INTEGER;
    v_id BIGINT;
BEGIN
    v_shard := @P@lock_shard(p_channel, p_num_shards);
    IF p_idempotency_key IS NOT NULL THEN
        PERFORM 1 FROM @P@idempotency i
        WHERE i.channel = p_channel AND i.idempotency_key = p_idempotency_key
          AND i.expires_at > NOW();
        IF FOUND THEN
            RETURN NULL;
        END IF;
    END IF;
    INSERT INTO @STREAM@ (channel, channel_offset, kind, data, tags, client_id, user_id,
                          conn_info, chan_info, shard_id)
    VALUES (p_channel, 0, 0, p_data, p_tags, p_client_id, p_user_id, p_conn_info,
            p_chan_info, v_shard)
    RETURNING id INTO v_id;
    IF p_idempotency_key IS NOT NULL THEN
        INSERT INTO @P@idempotency (channel, idempotency_key, result_offset, result_epoch,
                                    result_id, expires_at)
        VALUES (p_channel, p_idempotency_key, 0, '', v_id,
                NOW() + COALESCE(p_idempotency_ttl, interval '5 minutes'))
        ON CONFLICT (channel, idempotency_key) DO UPDATE
            SET result_id = EXCLUDED.result_id, expires_at = EXCLUDED.expires_at;
    END IF;
    PERFORM pg_notify('@P@notify', '');
    RETURN v_id;
END;
$$ LANGUAGE plpgsql;

-- A join (kind 1) of a client to a channel, for subscribers on every node.
CREATE OR REPLACE FUNCTION @P@publish_join(
    p_channel TEXT,
    p_client_id TEXT,
    p_user_id TEXT,
    p_conn_info @DATA@ DEFAULT NULL,
    p_chan_info @DATA@ DEFAULT NULL,
    p_num_shards INTEGER DEFAULT NULL
) RETURNS BIGINT AS $$
DECLARE
    v_shard INTEGER;
    v_id BIGINT;
BEGIN
    v_shard := @P@lock_shard(p_channel, p_num_shards);
    INSERT INTO @STREAM@ (channel, channel_offset, kind, client_id, user_id, conn_info,
                          chan_info, shard_id)
    VALUES (p_channel, 0, 1, p_client_id, p_user_id, p_conn_info, p_chan_info, v_shard)
    RETURNING id INTO v_id;
    PERFORM pg_notify('@P@notify', '');
    RETURN v_id;
END;
$$ LANGUAGE plpgsql;

-- A leave (kind 2), as publish_join.
CREATE OR REPLACE FUNCTION @P@publish_leave(
    p_channel TEXT,
    p_client_id TEXT,
    p_user_id TEXT,
    p_conn_info @DATA@ DEFAULT NULL,
    p_chan_info @DATA@ DEFAULT NULL,
    p_num_shards INTEGER DEFAULT NULL
) RETURNS BIGINT AS $$
DECLARE
    v_shard INTEGER;
    v_id BIGINT;
BEGIN
    v_shard := @P@lock_shard(p_channel, p_num_shards);
    INSERT INTO @STREAM@ (channel, channel_offset, kind, client_id, user_id, conn_info,
                          chan_info, shard_id)
    VALUES (p_channel, 0, 2, p_client_id, p_user_id, p_conn_info, p_chan_info, v_shard)
    RETURNING id INTO v_id;
    PERFORM pg_notify('@P@notify', '');
    RETURN v_id;
END;
$$ LANGUAGE plpgsql;

-- Forgets a channel's publications; its epoch and top offset stay.
CREATE OR REPLACE FUNCTION @P@remove_history(p_channel TEXT, p_num_shards INTEGER DEFAULT NULL)
RETURNS VOID AS $$
BEGIN
    PERFORM @P@lock_shard(p_channel, p_num_shards);
    DELETE FROM @STREAM@ WHERE channel = p_channel AND kind = 0;
END;
$$ LANGUAGE plpgsql;

-- The channel's top position (offset 0 and '' for an unknown channel): read in the
-- application's transaction together with its own state, then handed to a client that
-- subscribes from there and recovers what followed.
CREATE OR REPLACE FUNCTION @P@top_position(p_channel TEXT)
RETURNS TABLE(out_top_offset BIGINT, out_epoch TEXT) AS $$
BEGIN
    RETURN QUERY SELECT COALESCE(m.top_offset, 0::BIGINT), COALESCE(m.epoch, ''::TEXT)
    FROM (SELECT 1) AS one LEFT JOIN @P@meta m ON m.channel = p_channel;
END;
$$ LANGUAGE plpgsql;
