#!/usr/bin/env bash
# Gyre benchmarks: builds the server and the load generator, installs the peers (NATS from
# Debian, Socket.IO from npm into bench/node_modules), runs every scenario against Gyre, the
# peers and the floor, and regenerates BENCHMARKS.md and bench/latency-vs-rate.svg.
#
#   bench/run.sh          quick suite (< 10 minutes once built)
#   bench/run.sh --full   larger runs (more connections and server processes, longer steps);
#                         report in bench/BENCHMARKS-full.md
#   bench/run.sh --only 's2x|s5'   only the scenarios whose result name matches (the report
#                                  then goes to the run's directory, BENCHMARKS.md is kept)
#
# Servers are pinned to CPU 0 and the load generator to CPU 1. Everything binds 127.0.0.1.
set -euo pipefail

MODE=quick
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --full) MODE=full ;;
    --quick) MODE=quick ;;
    --only) ONLY=$2; shift ;;
    *) echo "usage: $0 [--full] [--only REGEX]" >&2; exit 2 ;;
  esac
  shift
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ulimit -n "$(ulimit -Hn)"

echo "== build" >&2
cargo build --release -q -p gyre-server --bin gyre
cargo build --release -q -p gyre-loadgen --bin gyre-loadgen
GYRE=$CARGO_TARGET_DIR/release/gyre
LG=$CARGO_TARGET_DIR/release/gyre-loadgen

echo "== peers" >&2
if ! command -v nats-server >/dev/null; then
  apt-get update -q && apt-get install -y -q nats-server >&2
fi
if ! command -v redis-server >/dev/null; then
  apt-get update -q && apt-get install -y -q redis-server >&2
fi
if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  apt-get update -q && apt-get install -y -q postgresql >&2
fi
if [ ! -d bench/node_modules/socket.io ]; then
  (cd bench && npm install --no-audit --no-fund --silent)
fi

# The commit measured, "-dirty" when the code differs from it (the generated report and the
# hand-written notes do not count: a second run right after a first one measures the same code).
GYRE_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD -- . ':(exclude)BENCHMARKS.md' ':(exclude)bench/latency-vs-rate.svg' \
    ':(exclude)bench/BENCHMARKS-full.md' ':(exclude)bench/latency-vs-rate-full.svg' \
    ':(exclude)bench/notes.md' 2>/dev/null; then
  GYRE_COMMIT="$GYRE_COMMIT-dirty"
fi

OUT=$ROOT/bench/out/$(date +%Y%m%d-%H%M%S)-$MODE
mkdir -p "$OUT"
SUITE_START=$(date +%s)

if [ "$(nproc)" -ge 2 ]; then SRV_CPU="taskset -c 0"; LG_CPU="taskset -c 1"; else SRV_CPU=""; LG_CPU=""; fi

# S1 in full mode spreads the connections over several server processes (and as many load
# generator workers): one process holds fewer than 20,000 sockets on this machine.
if [ "$MODE" = full ]; then
  IDLE_CONNS=60000; IDLE_PROCS=4; IDLE_WORKERS=4; IDLE_HOLD=30; FAN_SUBS=10000; FAN_RATES=2,5,10,15,20,30,40,60; STEP=8
  PUB_RATES=2000,5000,10000,20000,40000; PUB_STEP=3; REC_CONNS=10000; GROUP_CONNS=10000; GROUP_RATES=1000,5000,10000,20000
  SLOW_SUBS=10000; SLOW_RATE=10; WORKERS=2
else
  IDLE_CONNS=10000; IDLE_PROCS=1; IDLE_WORKERS=2; IDLE_HOLD=15; FAN_SUBS=2000; FAN_RATES=10,25,50,100,150; STEP=4
  PUB_RATES=2000,10000,20000; PUB_STEP=2; REC_CONNS=10000; GROUP_CONNS=5000; GROUP_RATES=1000,5000,10000
  SLOW_SUBS=2000; SLOW_RATE=50; WORKERS=2
fi

PORT=21000
SPID=""
# Further processes of the system under test (Redis and the other node of a cluster): their CPU
# and memory are counted with the server's, and they are stopped with it.
EXTRA_PIDS=""
cleanup() {
  for pid in $SPID $EXTRA_PIDS; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  SPID=""; EXTRA_PIDS=""
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "port $1 did not open" >&2; return 1
}

# gyre_config PORT [ENGINE_JSON]: writes the Gyre config for a node on PORT.
gyre_config() {
  cat > "$OUT/gyre-$1.json" <<EOF
{"http_server":{"address":"127.0.0.1","port":$1},"client":{"insecure":true},"http_api":{"key":"k"},
 "log":{"level":"error"},${2:-}
 "channel":{"without_namespace":{"history_size":100,"history_ttl":"300s","force_recovery":true},
            "namespaces":[{"name":"nohist"}]}}
EOF
}

# start_postgres PORT: a throwaway PostgreSQL (Debian's binaries, run as the postgres user when
# root) on the server CPU; its pid goes to EXTRA_PIDS.
start_postgres() {
  local bin dir
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  dir=$OUT/pg-$1
  mkdir -p "$dir"
  local as=()
  if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$dir"; as=(runuser -u postgres --); fi
  "${as[@]}" "$bin/initdb" -A trust -U postgres -E UTF8 --no-sync -D "$dir/data" > "$dir/initdb.log" 2>&1
  $SRV_CPU "${as[@]}" "$bin/postgres" -D "$dir/data" -p "$1" -h 127.0.0.1 -k "$dir" \
    -c fsync=off -c synchronous_commit=off -c max_connections=200 > "$dir/postgres.log" 2>&1 &
  EXTRA_PIDS=$!
  for _ in $(seq 1 100); do "$bin/pg_isready" -h 127.0.0.1 -p "$1" -q && return 0; sleep 0.1; done
  echo "postgres on $1 did not get ready" >&2; return 1
}

# start_server TARGET [PROCESSES]: sets SPID (and EXTRA_PIDS), URL, PUB_URL, VIA (fresh ports
# every time, so TIME_WAIT sockets of the previous run never exhaust the ephemeral range). TARGET
# is a load generator target, optionally with a server variant: gyre-redis, floor-history, nats-js
# (JetStream enabled), socketio-recovery (connection state recovery on). With several processes,
# SPID and URL list them all (URL comma-separated, publishing goes to the first).
start_server() {
  PORT=$((PORT + 10))
  local target=$1 processes=${2:-1}
  if [ "$processes" -gt 1 ]; then
    local urls="" pids="" pub_url="" _
    for _ in $(seq 1 "$processes"); do
      start_server "$target"
      urls="$urls${urls:+,}$URL"; pids="$pids $SPID"; pub_url=${pub_url:-$PUB_URL}
    done
    URL=$urls; SPID=$pids; PUB_URL=$pub_url
    return
  fi
  case "$target" in
    gyre)
      gyre_config "$PORT"
      $SRV_CPU "$GYRE" serve --config "$OUT/gyre-$PORT.json" > "$OUT/gyre-$PORT.log" 2>&1 &
      SPID=$!
      URL=ws://127.0.0.1:$PORT/connection/websocket; PUB_URL=http://127.0.0.1:$PORT/api/publish; VIA=http
      wait_port "$PORT" ;;
    gyre-redis|gyre-nats|gyre-pg)
      # Two nodes on one broker (Redis, nats-server or PostgreSQL), all three on the server CPU:
      # subscribers on node B ($PORT), publishes through node A's API ($PORT + 1).
      local broker_port=$((PORT + 5)) engine
      case "$target" in
        gyre-redis)
          $SRV_CPU redis-server --port "$broker_port" --bind 127.0.0.1 --save "" --appendonly no \
            > "$OUT/redis-$broker_port.log" 2>&1 &
          EXTRA_PIDS=$!
          engine='"engine":{"type":"redis","redis":{"address":"redis://127.0.0.1:'"$broker_port"'"}},' ;;
        gyre-nats)
          $SRV_CPU nats-server -a 127.0.0.1 -p "$broker_port" > "$OUT/nats-$broker_port.log" 2>&1 &
          EXTRA_PIDS=$!
          engine='"broker":{"enabled":true,"type":"nats","nats":{"url":"nats://127.0.0.1:'"$broker_port"'"}},' ;;
        gyre-pg)
          start_postgres "$broker_port"
          engine='"broker":{"enabled":true,"type":"postgres","postgres":{"dsn":"postgres://postgres@127.0.0.1:'"$broker_port"'/postgres?sslmode=disable","use_notify":true,"binary_data":true}},' ;;
      esac
      wait_port "$broker_port"
      gyre_config "$((PORT + 1))" "$engine"
      $SRV_CPU "$GYRE" serve --config "$OUT/gyre-$((PORT + 1)).json" > "$OUT/gyre-$((PORT + 1)).log" 2>&1 &
      EXTRA_PIDS="$EXTRA_PIDS $!"
      gyre_config "$PORT" "$engine"
      $SRV_CPU "$GYRE" serve --config "$OUT/gyre-$PORT.json" > "$OUT/gyre-$PORT.log" 2>&1 &
      SPID=$!
      URL=ws://127.0.0.1:$PORT/connection/websocket; PUB_URL=http://127.0.0.1:$((PORT + 1))/api/publish; VIA=http
      wait_port "$PORT"; wait_port $((PORT + 1)) ;;
    floor|floor-history)
      # floor-history: a ring of the last 100 publications per channel outside namespaces.
      local hist=0
      if [ "$target" = floor-history ]; then hist=100; fi
      $SRV_CPU "$LG" floor --ws-port "$PORT" --http-port $((PORT + 1)) --history $hist > "$OUT/floor-$PORT.log" 2>&1 &
      SPID=$!
      URL=ws://127.0.0.1:$PORT/; PUB_URL=http://127.0.0.1:$((PORT + 1))/api/publish; VIA=http
      wait_port "$PORT"; wait_port $((PORT + 1)) ;;
    nats|nats-js)
      sed -e "s/@NATS_PORT@/$((PORT + 1))/" -e "s/@WS_PORT@/$PORT/" bench/nats.conf.in > "$OUT/nats-$PORT.conf"
      if [ "$target" = nats-js ]; then
        # JetStream (memory streams only; the load generator creates the stream).
        printf 'jetstream {\n  store_dir: "%s"\n  max_memory_store: 2147483648\n  max_file_store: 1073741824\n}\n' \
          "$OUT/nats-$PORT-js" >> "$OUT/nats-$PORT.conf"
      fi
      $SRV_CPU nats-server -c "$OUT/nats-$PORT.conf" > "$OUT/nats-$PORT.log" 2>&1 &
      SPID=$!
      URL=ws://127.0.0.1:$PORT/; PUB_URL=127.0.0.1:$((PORT + 1)); VIA=nats
      wait_port "$PORT"; wait_port $((PORT + 1)) ;;
    socketio|socketio-recovery)
      local recovery=""
      if [ "$target" = socketio-recovery ]; then recovery=--recovery; fi
      $SRV_CPU node bench/socketio-server.js "$PORT" $recovery > "$OUT/socketio-$PORT.log" 2>&1 &
      SPID=$!
      URL=ws://127.0.0.1:$PORT/socket.io/; PUB_URL=http://127.0.0.1:$PORT/api/publish; VIA=http
      wait_port "$PORT" ;;
  esac
  sleep 0.2
}

# lg NAME TARGET ARGS...: runs one scenario into $OUT/NAME.json (PROCESSES=N lg ... runs the
# system as N processes, WORKERS=N lg ... sets the load generator's worker processes).
lg() {
  local name=$1 target=$2; shift 2
  if [ -n "$ONLY" ] && ! [[ $name =~ $ONLY ]]; then return 0; fi
  echo "== $name (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  start_server "$target" "${PROCESSES:-1}"
  local pids
  pids=$(echo "$SPID $EXTRA_PIDS" | xargs | tr ' ' ',')
  $LG_CPU "$LG" run --target "${target%%-*}" --url "$URL" --publish-url "$PUB_URL" --via "$VIA" \
    --server-pid "$pids" --workers "$WORKERS" --out "$OUT/$name.json" "$@" \
    || echo "!! $name failed" >&2
  cleanup
  sleep 0.3
}

# S1: idle connections.
for t in gyre floor nats socketio; do
  PROCESSES=$IDLE_PROCS WORKERS=$IDLE_WORKERS \
    lg "s1-idle-$t" $t --scenario idle --conns $IDLE_CONNS --hold-secs $IDLE_HOLD --label $t
done
# S2: single-channel fan-out, rising rate, the same subscribers for every system.
for t in gyre floor nats socketio; do
  lg "s2-fanout-$t" $t --scenario fanout --conns $FAN_SUBS --rates $FAN_RATES --step-secs $STEP --label $t
done
lg "s2-fanout-gyre-protobuf" gyre --scenario fanout --conns $FAN_SUBS --rates $FAN_RATES --step-secs $STEP \
  --protobuf --label "gyre protobuf"
lg "s2-fanout-floor-protobuf" floor --scenario fanout --conns $FAN_SUBS --rates $FAN_RATES --step-secs $STEP \
  --protobuf --label "floor protobuf"
# S2 across nodes: the same fan-out with the subscribers on one node and the publisher on
# another, both on Redis, on the NATS broker or on the PostgreSQL broker (CPU and memory of both
# nodes and the broker's server counted as the server's).
lg "s2x-fanout-gyre-redis" gyre-redis --scenario fanout --conns $FAN_SUBS --rates $FAN_RATES --step-secs $STEP \
  --label "gyre, Redis engine, 2 nodes"
lg "s2x-fanout-gyre-redis-protobuf" gyre-redis --scenario fanout --conns $FAN_SUBS --rates $FAN_RATES --step-secs $STEP \
  --protobuf --label "gyre protobuf, Redis engine, 2 nodes"
lg "s2x-fanout-gyre-nats" gyre-nats --scenario fanout --conns $FAN_SUBS --rates $FAN_RATES --step-secs $STEP --channel nohist:bench \
  --label "gyre, NATS broker, 2 nodes"
lg "s2x-fanout-gyre-pg" gyre-pg --scenario fanout --conns $FAN_SUBS --rates $FAN_RATES --step-secs $STEP \
  --label "gyre, PostgreSQL broker, 2 nodes"
# S4: the publish path (no subscribers), API and client, with and without history. The floor
# keeps history outside namespaces (like Gyre); NATS publishes are either core PUB on a verbose
# connection (+OK each) or JetStream publishes (PubAck each); Socket.IO's history is its
# connection state recovery store.
lg "s4-publish-api-history" gyre --scenario publish --conns 0 --rates $PUB_RATES --step-secs $PUB_STEP --label "gyre, API, history"
lg "s4-publish-api-nohist" gyre --scenario publish --conns 0 --rates $PUB_RATES --step-secs $PUB_STEP --channel nohist:bench --label "gyre, API, no history"
lg "s4-publish-client-history" gyre --scenario publish --conns 0 --rates $PUB_RATES --step-secs $PUB_STEP --via client --label "gyre, client, history"
lg "s4-publish-client-nohist" gyre --scenario publish --conns 0 --rates $PUB_RATES --step-secs $PUB_STEP --via client --channel nohist:bench --label "gyre, client, no history"
lg "s4-publish-floor-api-history" floor-history --scenario publish --conns 0 --rates $PUB_RATES --step-secs $PUB_STEP --label "floor, API, history"
lg "s4-publish-floor-api-nohist" floor-history --scenario publish --conns 0 --rates $PUB_RATES --step-secs $PUB_STEP --channel nohist:bench --label "floor, API, no history"
lg "s4-publish-floor-client-history" floor-history --scenario publish --conns 0 --rates $PUB_RATES --step-secs $PUB_STEP --via client --label "floor, client, history"
lg "s4-publish-floor-client-nohist" floor-history --scenario publish --conns 0 --rates $PUB_RATES --step-secs $PUB_STEP --via client --channel nohist:bench --label "floor, client, no history"
lg "s4-publish-nats-core" nats --scenario publish --conns 0 --rates $PUB_RATES --step-secs $PUB_STEP --label "nats, core PUB (verbose +OK)"
lg "s4-publish-nats-jetstream" nats-js --scenario publish --conns 0 --rates $PUB_RATES --step-secs $PUB_STEP --history --label "nats, JetStream (PubAck)"
lg "s4-publish-socketio-api" socketio --scenario publish --conns 0 --rates $PUB_RATES --step-secs $PUB_STEP --label "socketio, API"
lg "s4-publish-socketio-api-recovery" socketio-recovery --scenario publish --conns 0 --rates $PUB_RATES --step-secs $PUB_STEP --label "socketio, API, recovery store"
lg "s4-publish-socketio-client" socketio --scenario publish --conns 0 --rates $PUB_RATES --step-secs $PUB_STEP --via client --label "socketio, client emit+ack"
lg "s4-publish-socketio-client-recovery" socketio-recovery --scenario publish --conns 0 --rates $PUB_RATES --step-secs $PUB_STEP --via client --label "socketio, client emit+ack, recovery store"
# S5: recovery storm, each system with its own recovery (Gyre and the floor: subscribe with
# recover; NATS: JetStream consumers; Socket.IO: connection state recovery).
lg "s5-recovery-gyre" gyre --scenario recovery --conns $REC_CONNS --missed 10 --label gyre
lg "s5-recovery-floor" floor-history --scenario recovery --conns $REC_CONNS --missed 10 --label floor
lg "s5-recovery-nats" nats-js --scenario recovery --conns $REC_CONNS --missed 10 --history --label "nats, JetStream"
lg "s5-recovery-socketio" socketio-recovery --scenario recovery --conns $REC_CONNS --missed 10 --label "socketio, connection state recovery"
# S7: slow consumers (1% stop reading) during fan-out.
lg "s7-slow-gyre" gyre --scenario fanout --conns $SLOW_SUBS --rates $SLOW_RATE --step-secs $((STEP * 2)) --slow-every 100 --label "gyre, 1% slow"
lg "s7-slow-floor" floor --scenario fanout --conns $SLOW_SUBS --rates $SLOW_RATE --step-secs $((STEP * 2)) --slow-every 100 --label "floor, 1% slow"
lg "s7-slow-nats" nats --scenario fanout --conns $SLOW_SUBS --rates $SLOW_RATE --step-secs $((STEP * 2)) --slow-every 100 --label "nats, 1% slow"
lg "s7-slow-socketio" socketio --scenario fanout --conns $SLOW_SUBS --rates $SLOW_RATE --step-secs $((STEP * 2)) --slow-every 100 --label "socketio, 1% slow"
# S3: personal + group channels with churn.
lg "s3-group-gyre" gyre --scenario group --conns $GROUP_CONNS --rates $GROUP_RATES --step-secs $STEP --churn 20 --label gyre
lg "s3-group-floor" floor --scenario group --conns $GROUP_CONNS --rates $GROUP_RATES --step-secs $STEP --churn 20 --label floor
lg "s3-group-nats" nats --scenario group --conns $GROUP_CONNS --rates $GROUP_RATES --step-secs $STEP --churn 20 --label nats
lg "s3-group-socketio" socketio --scenario group --conns $GROUP_CONNS --rates $GROUP_RATES --step-secs $STEP --churn 20 --label socketio

SUITE_END=$(date +%s)
cat > "$OUT/machine.json" <<EOF
{"cpu":"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')","cores":$(nproc),
 "mem_gib":$(awk '/MemTotal/{printf "%.0f", $2/1048576}' /proc/meminfo),"kernel":"$(uname -r)",
 "nofile":$(ulimit -n),"mode":"$MODE","only":"$ONLY","suite_seconds":$((SUITE_END - SUITE_START)),
 "nats":"$(nats-server --version 2>&1 | head -1)","redis":"$(redis-server --version | cut -d' ' -f3)","socketio":"$(node -p 'require("./bench/node_modules/socket.io/package.json").version')",
 "node":"$(node --version)","rustc":"$(rustc --version)","gyre_commit":"$GYRE_COMMIT",
 "date":"$(date -u +%Y-%m-%dT%H:%M:%SZ)"}
EOF
if [ -n "$ONLY" ]; then
  "$LG" report --dir "$OUT" --out "$OUT/BENCHMARKS.md" --svg "$OUT/latency-vs-rate.svg"
  echo "== done in $((SUITE_END - SUITE_START)) s: $OUT/BENCHMARKS.md" >&2
elif [ "$MODE" = full ]; then
  "$LG" report --dir "$OUT" --out "$ROOT/bench/BENCHMARKS-full.md" --svg "$ROOT/bench/latency-vs-rate-full.svg"
  echo "== done in $((SUITE_END - SUITE_START)) s: bench/BENCHMARKS-full.md, results in $OUT" >&2
else
  "$LG" report --dir "$OUT" --out "$ROOT/BENCHMARKS.md" --svg "$ROOT/bench/latency-vs-rate.svg"
  echo "== done in $((SUITE_END - SUITE_START)) s: BENCHMARKS.md, results in $OUT" >&2
fi
