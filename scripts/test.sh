#!/usr/bin/env bash
# Runs every test of the workspace: installs the real clients the conformance tests use,
# then runs the unit, integration and conformance tests; then runs the server suites again
# on the Redis engine (a throwaway `redis-server` on a free loopback port), so both engines
# pass the same tests. GYRE_TEST_ENGINES=memory skips the second run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo test --workspace --locked "$@"

if [[ "${GYRE_TEST_ENGINES:-memory,redis}" == *redis* ]]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
  redis_pid=$!
  trap 'kill "$redis_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    if (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.05
  done
  echo "running the server suites again on the Redis engine (redis-server on port $port)"
  GYRE_TEST_REDIS_URL="redis://127.0.0.1:$port" cargo test --locked -p gyre-server \
    --test api --test bad_input --test attacks --test js --test map_bad_input --test js_tags --test tags_bad_input --test python --test rust_sdk --test grpc_api --test consumers --test consumers_nats "$@"
fi
