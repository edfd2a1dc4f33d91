#!/usr/bin/env bash
# Async consumer throughput and latency, for BENCHMARKS.md: a throwaway PostgreSQL, Redis and
# nats-server (JetStream) on loopback, one `gyre serve` with a `postgresql` (outbox,
# LISTEN/NOTIFY), a `redis_stream` and a `nats_jetstream` consumer, and a centrifuge-js subscriber (bench/consumers_sub.mjs) that prints, per queue:
#
#   burst  N commands written at once (one transaction / one script): commands/s applied
#          from the first write to the last delivery;
#   paced  RATE commands/s for SECS seconds, one transaction / XADD each: write-to-delivery
#          p50 and p99 (the write time travels in the payload; one machine, one clock).
#
#   bench/consumers.sh                      release build of gyre
#   GYRE_BIN=target/debug/gyre N=2000 RATE=200 SECS=3 bench/consumers.sh
#
# Needs PostgreSQL's server programs, redis-server, nats-server and node (scripts/install-test-deps.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${N:-10000}
RATE=${RATE:-500}
SECS=${SECS:-5}
PACED=$((RATE * SECS))
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -z "${GYRE_BIN:-}" ]; then
  cargo build --release --locked -p gyre-server
  GYRE_BIN=$CARGO_TARGET_DIR/release/gyre
fi
[ -d conformance/js/node_modules/centrifuge ] || (cd conformance/js && npm ci --silent)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PG_PORT=$(free_port)
REDIS_PORT=$(free_port)
NATS_PORT=$(free_port)
WORK=$(mktemp -d)
chmod 755 "$WORK"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# PostgreSQL (as the postgres user when root, as the tests do).
PG_BIN=$(dirname "$(readlink -f "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb | sort | tail -1)")")
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres:postgres "$WORK"
as_pg "$PG_BIN/initdb" -A trust -U postgres -E UTF8 --no-sync -D "$WORK/pg" >/dev/null
as_pg "$PG_BIN/postgres" -D "$WORK/pg" -p "$PG_PORT" -h 127.0.0.1 -k "$WORK" -c fsync=off >"$WORK/pg.log" 2>&1 &
pids+=($!)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
pids+=($!)
mkdir -p "$WORK/nats"
nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$WORK/nats" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 200); do (echo > "/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break; sleep 0.05; done
for _ in $(seq 200); do "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" -q && break; sleep 0.05; done
DSN="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$DSN" "$@"; }
psql <<'SQL'
CREATE TABLE centrifugo_outbox (
    id BIGSERIAL PRIMARY KEY,
    method TEXT NOT NULL,
    payload JSONB NOT NULL,
    partition BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL
);
CREATE FUNCTION centrifugo_notify_partition_change() RETURNS TRIGGER AS $$
BEGIN PERFORM pg_notify('centrifugo_partition_change', NEW.partition::text); RETURN NEW; END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER centrifugo_notify_partition_trigger AFTER INSERT ON centrifugo_outbox
FOR EACH ROW EXECUTE FUNCTION centrifugo_notify_partition_change();
SQL

# NATS: a minimal client (standard library only): JetStream API requests, and HPUB with the
# method header for the commands (the stream stores core publishes on its subjects).
cat >"$WORK/nats_bench.py" <<'PY'
import json, socket, sys, time
port, action = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
f.readline()  # INFO
s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\nSUB _bench_inbox 1\r\n')
def request(subject, body):
    body = json.dumps(body).encode()
    s.sendall(b"PUB %s _bench_inbox %d\r\n%s\r\n" % (subject.encode(), len(body), body))
    while True:
        line = f.readline()
        if line.startswith(b"PING"):
            s.sendall(b"PONG\r\n")
        elif line.startswith(b"MSG") or line.startswith(b"HMSG"):
            size = int(line.split()[-1])
            return json.loads(f.read(size + 2)[:-2] or b"{}")
def hpub(phase, i):
    payload = json.dumps({"channel": "bench_nats", "data": {"phase": phase, "n": i, "t": time.time() * 1000}}).encode()
    headers = b"NATS/1.0\r\ncentrifugo-method: publish\r\n\r\n"
    return b"HPUB bench.cmd %d %d\r\n%s%s\r\n" % (len(headers), len(headers) + len(payload), headers, payload)
def idle():
    while True:
        info = request("$JS.API.CONSUMER.INFO.BENCH.gyre_bench", {})
        if info.get("num_pending") == 0 and info.get("num_ack_pending") == 0:
            return
        time.sleep(0.05)
if action == "stream":
    request("$JS.API.STREAM.CREATE.BENCH", {"name": "BENCH", "subjects": ["bench.>"], "storage": "memory"})
else:
    n, rate, secs = (int(a) for a in sys.argv[3:])
    s.sendall(b"".join(hpub("burst", i) for i in range(1, n + 1)))
    time.sleep(0.5)
    idle()
    start = time.monotonic()
    for i in range(1, rate * secs + 1):
        pause = start + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        s.sendall(hpub("paced", i))
    idle()
PY
python3 "$WORK/nats_bench.py" "$NATS_PORT" stream

cat >"$WORK/config.json" <<JSON
{
  "http_server": {"address": "127.0.0.1", "port": 0},
  "client": {"allow_anonymous_connect_without_token": true},
  "channel": {"without_namespace": {"allow_subscribe_for_client": true, "allow_subscribe_for_anonymous": true}},
  "consumers": [
    {"name": "bench_pg", "enabled": true, "type": "postgresql",
     "postgresql": {"dsn": "$DSN", "outbox_table_name": "centrifugo_outbox",
                    "partition_notification_channel": "centrifugo_partition_change"}},
    {"name": "bench_redis", "enabled": true, "type": "redis_stream",
     "redis_stream": {"address": "redis://127.0.0.1:$REDIS_PORT", "streams": ["bench"],
                      "consumer_group": "gyre"}},
    {"name": "bench_nats", "enabled": true, "type": "nats_jetstream",
     "nats_jetstream": {"url": "nats://127.0.0.1:$NATS_PORT", "stream_name": "BENCH",
                        "durable_consumer_name": "gyre_bench", "subjects": ["bench.cmd"],
                        "max_ack_pending": 1000}}
  ]
}
JSON
GYRE_LOG_LEVEL=warn "$GYRE_BIN" serve --config "$WORK/config.json" >"$WORK/gyre.out" 2>"$WORK/gyre.err" &
pids+=($!)
for _ in $(seq 200); do grep -q "listening on" "$WORK/gyre.out" && break; sleep 0.05; done
GYRE_PORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$WORK/gyre.out" | head -1)
sleep 1 # the consumers create their group and connections

export GYRE_WS_URL="ws://127.0.0.1:$GYRE_PORT/connection/websocket"
export BENCH_EXPECTED="{\"bench_pg/burst\": $N, \"bench_pg/paced\": $PACED, \"bench_redis/burst\": $N, \"bench_redis/paced\": $PACED, \"bench_nats/burst\": $N, \"bench_nats/paced\": $PACED}"
# ESM resolves packages next to the script: run a copy beside a link to the installed ones.
ln -s "$ROOT/conformance/js/node_modules" "$WORK/node_modules"
cp bench/consumers_sub.mjs "$WORK/"
node "$WORK/consumers_sub.mjs" >"$WORK/sub.out" 2>&1 &
SUB=$!
pids+=($SUB)
for _ in $(seq 200); do grep -qs ready "$WORK/sub.out" && break; sleep 0.05; done

echo "gyre: $GYRE_BIN; burst $N commands, paced $RATE/s for ${SECS}s, per queue"
# The write time in ms, with microseconds.
PG_T="extract(epoch from clock_timestamp()) * 1000"
psql -c "INSERT INTO centrifugo_outbox (method, payload)
  SELECT 'publish', jsonb_build_object('channel', 'bench_pg', 'data',
    jsonb_build_object('phase', 'burst', 'n', i, 't', $PG_T)) FROM generate_series(1, $N) AS i"
# The paced phase starts on an empty queue.
until [ "$(psql -At -c 'SELECT count(*) FROM centrifugo_outbox')" = 0 ]; do sleep 0.05; done
psql -c "DO \$\$ BEGIN FOR i IN 1..$PACED LOOP
  INSERT INTO centrifugo_outbox (method, payload) VALUES ('publish', jsonb_build_object(
    'channel', 'bench_pg', 'data', jsonb_build_object('phase', 'paced', 'n', i, 't', $PG_T)));
  COMMIT; PERFORM pg_sleep(1.0 / $RATE); END LOOP; END \$\$"

# Redis: a minimal RESP writer (standard library only), pipelined for the burst.
python3 - "$REDIS_PORT" "$N" "$RATE" "$SECS" <<'PY'
import json, socket, sys, time
port, n, rate, secs = (int(a) for a in sys.argv[1:])
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out
def xadd(phase, i):
    payload = json.dumps({"channel": "bench_redis", "data": {"phase": phase, "n": i, "t": time.time() * 1000}})
    return cmd("XADD", "bench", "*", "method", "publish", "payload", payload)
s.sendall(b"".join(xadd("burst", i) for i in range(1, n + 1)))
for _ in range(n):
    f.readline()
def group_info():
    s.sendall(cmd("XINFO", "GROUPS", "bench"))
    def read():
        line = f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"*":
            return [read() for _ in range(int(rest))]
        if kind == b"$":
            data = f.read(int(rest) + 2)[:-2]
            return data.decode()
        if kind == b":":
            return int(rest)
        return rest.decode()
    group = read()[0]
    return dict(zip(group[::2], group[1::2]))
# The paced phase starts on an empty queue (everything read and acknowledged).
while True:
    g = group_info()
    if g.get("lag") == 0 and g.get("pending") == 0:
        break
    time.sleep(0.05)
start = time.monotonic()
for i in range(1, rate * secs + 1):
    pause = start + i / rate - time.monotonic()
    if pause > 0:
        time.sleep(pause)
    s.sendall(xadd("paced", i))
    f.readline()
PY

python3 "$WORK/nats_bench.py" "$NATS_PORT" write "$N" "$RATE" "$SECS"

if wait "$SUB"; then
  cat "$WORK/sub.out" | grep -v '^ready$'
else
  echo "subscriber failed:"; cat "$WORK/sub.out"; tail -20 "$WORK/gyre.err"; exit 1
fi
