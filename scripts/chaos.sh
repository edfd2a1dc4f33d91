#!/usr/bin/env bash
# Chaos with real processes, longer and with more clients than `cargo test --test chaos`:
# three `gyre serve` nodes on one redis-server, recovering raw WebSocket subscribers spread
# over them and a publisher on the HTTP API, through a node kill -9, a Redis restart (data
# lost) and a node partitioned from Redis by a fault proxy (crates/server/tests/chaos.rs).
#
#   scripts/chaos.sh [--clients N] [--load-ms MS] [--pause-ms MS] [--release]
#
# Defaults: 300 clients, 5000 ms of load before and after each fault, 5 ms between publishes.
# Prints one table row per scenario (markdown), fails when any case fails (a duplicate, a
# silent gap, a client not back at the stream's top, a node above the RSS ceiling).
set -euo pipefail
cd "$(dirname "$0")/.."

clients=300
load_ms=5000
pause_ms=5
profile=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --clients) clients="$2"; shift ;;
    --load-ms) load_ms="$2"; shift ;;
    --pause-ms) pause_ms="$2"; shift ;;
    --release) profile=(--release) ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

# Many clients: make sure this shell may open enough sockets.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
GYRE_CHAOS_CLIENTS="$clients" GYRE_CHAOS_LOAD_MS="$load_ms" GYRE_CHAOS_PAUSE_MS="$pause_ms" \
  cargo test "${profile[@]}" -p gyre-server --test chaos -- --nocapture --test-threads 1 \
  >"$out" 2>&1 || status=$?

echo "clients=$clients load_ms=$load_ms pause_ms=$pause_ms ${profile[*]:-debug}"
echo
echo "| scenario | clients | publications | received | recovered | recovered:false | lost | duplicated | reconnects | max node RSS (MiB) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
grep -o 'CHAOS|.*' "$out" | while IFS='|' read -r _ name n pubs recv rec norec lost dup reconn rss; do
  echo "| $name | $n | $pubs | $recv | $rec | $norec | $lost | $dup | $reconn | $rss |"
done
if [[ $status -ne 0 ]]; then
  echo
  grep -E 'panicked|FAILED|failed|error' "$out" | head -20 >&2
  echo "chaos: failed (full output above)" >&2
fi
exit "$status"
