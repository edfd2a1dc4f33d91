#!/usr/bin/env bash
# Instructions per delivery: Gyre and the floor under callgrind on a fixed small fan-out, so the
# figure does not depend on what else the machine is doing (callgrind counts the instructions the
# server executes in user space; the kernel's share, system calls and loopback TCP, is not in it).
#
#   bench/callgrind.sh            SUBS=100 subscribers, RATE=20 publishes/s, JSON and Protobuf,
#                                 and the API publish path alone at PUBLISH_RATE=200/s
#   SUBS=200 RATE=10 bench/callgrind.sh
#   ONLY=publish bench/callgrind.sh   only the API publish rows (ONLY=fanout: only the fan-out rows)
#
# Each system runs the same scenario twice, with one and with STEPS steps of the same rate; the
# figure is the difference in instructions over the difference in deliveries, so start-up,
# connecting and subscribing cancel out and only the per-publication work remains (the HTTP
# publish, the fan-out and the writes). Results: a table on standard output and
# bench/out/<date>-callgrind/results.md.
set -euo pipefail

SUBS=${SUBS:-100}
RATE=${RATE:-20}
STEPS=${STEPS:-4}
STEP_SECS=${STEP_SECS:-3}
PUBLISH_RATE=${PUBLISH_RATE:-200}
ONLY=${ONLY:-all}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
command -v valgrind >/dev/null || { apt-get update -q && apt-get install -y -q valgrind >&2; }
cargo build --release -q -p gyre-server --bin gyre
cargo build --release -q -p gyre-loadgen --bin gyre-loadgen
GYRE=$CARGO_TARGET_DIR/release/gyre
LG=$CARGO_TARGET_DIR/release/gyre-loadgen
OUT=$ROOT/bench/out/$(date +%Y%m%d-%H%M%S)-callgrind
mkdir -p "$OUT"
PORT=23000

wait_port() {
  for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "port $1 did not open" >&2; return 1
}

# measure SYSTEM PROTOCOL STEPS SUBSCRIBERS RATE: prints "instructions deliveries publishes" for
# one run under callgrind.
measure() {
  local system=$1 protocol=$2 steps=$3 subs=$4 rate=$5 rates="" name cg pid url pub_url scenario=fanout
  PORT=$((PORT + 10))
  name=$system-$protocol-$subs-$steps
  if [ "$subs" = 0 ]; then scenario=publish; fi
  cg=$OUT/$name.callgrind
  for _ in $(seq 1 "$steps"); do rates="$rates${rates:+,}$rate"; done
  case "$system" in
    gyre)
      cat > "$OUT/gyre-$PORT.json" <<EOF
{"http_server":{"address":"127.0.0.1","port":$PORT},"client":{"insecure":true},"http_api":{"key":"k"},
 "log":{"level":"error"},"channel":{"namespaces":[{"name":"nohist"}]}}
EOF
      valgrind --tool=callgrind --callgrind-out-file="$cg" "$GYRE" serve --config "$OUT/gyre-$PORT.json" \
        > "$OUT/$name.log" 2>&1 &
      pid=$!
      url=ws://127.0.0.1:$PORT/connection/websocket; pub_url=http://127.0.0.1:$PORT/api/publish
      wait_port "$PORT" ;;
    floor)
      valgrind --tool=callgrind --callgrind-out-file="$cg" "$LG" floor --ws-port "$PORT" \
        --http-port $((PORT + 1)) > "$OUT/$name.log" 2>&1 &
      pid=$!
      url=ws://127.0.0.1:$PORT/; pub_url=http://127.0.0.1:$((PORT + 1))/api/publish
      wait_port "$PORT"; wait_port $((PORT + 1)) ;;
  esac
  local proto_flag=""
  if [ "$protocol" = protobuf ]; then proto_flag=--protobuf; fi
  # No history on either side (Gyre's nohist namespace, the floor without --history).
  "$LG" run --target "$system" --url "$url" --publish-url "$pub_url" --via http --server-pid "$pid" \
    --workers 1 --conns "$subs" --scenario "$scenario" --rates "$rates" --step-secs "$STEP_SECS" \
    --p99-limit-ms 1000000 --channel nohist:bench $proto_flag --out "$OUT/$name.json" \
    > "$OUT/$name.lg.log" 2>&1
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  local instructions counts
  instructions=$(awk '/^(summary|totals):/ {print $2; exit}' "$cg")
  counts=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["steps"]; print(sum(x["received"] for x in s), sum(x["published"] for x in s))' "$OUT/$name.json")
  echo "$instructions $counts"
}

# per SYSTEM PROTOCOL SUBSCRIBERS RATE: the difference of a 1-step and a STEPS-step run, per
# delivery (per publish without subscribers), and the deliveries (publishes) of both runs.
per() {
  local i1 d1 p1 i2 d2 p2
  read -r i1 d1 p1 < <(measure "$1" "$2" 1 "$3" "$4")
  read -r i2 d2 p2 < <(measure "$1" "$2" "$STEPS" "$3" "$4")
  if [ "$3" = 0 ]; then d1=$p1; d2=$p2; fi
  python3 -c "import sys; i1,d1,i2,d2=map(int,sys.argv[1:]); print(f'{(i2-i1)/(d2-d1):.0f}' if d2>d1 else 'n/a', f'{d1} / {d2}')" "$i1" "$d1" "$i2" "$d2"
}

{
  echo "| system | protocol | subscribers | publishes/s | instructions per delivery (per publish without subscribers) | deliveries or publishes (1 step / $STEPS steps) |"
  echo "|---|---|---|---|---|---|"
} > "$OUT/results.md"
for protocol in json protobuf; do
  [ "$ONLY" = publish ] && break
  for system in gyre floor; do
    read -r figure counts < <(per "$system" "$protocol" "$SUBS" "$RATE")
    echo "| $system | $protocol | $SUBS | $RATE | $figure | $counts |" >> "$OUT/results.md"
  done
done
# The API publish path alone (S4's shape): no subscribers, instructions per publish.
for system in gyre floor; do
  [ "$ONLY" = fanout ] && break
  read -r figure counts < <(per "$system" json 0 "$PUBLISH_RATE")
  echo "| $system | API publish | 0 | $PUBLISH_RATE | $figure | $counts |" >> "$OUT/results.md"
done
cat "$OUT/results.md"
echo "results in $OUT" >&2
