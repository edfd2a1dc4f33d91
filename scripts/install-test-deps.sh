#!/usr/bin/env bash
# Installs the real Centrifugo clients the conformance tests drive, into project-local folders:
#   conformance/js/node_modules  npm `centrifuge` (v5) and `ws`, from conformance/js/package-lock.json
#   conformance/browser/node_modules  npm `playwright-core` (drives headless Chromium in the
#                                browser tests), from conformance/browser/package-lock.json
#   .deps/python                 PyPI `centrifuge-python`, from conformance/python/requirements.txt
#   .deps/grpc                   PyPI `grpcio` + `grpcio-tools` (the GRPC API test generates its
#                                Python stubs from crates/server/proto/api.proto), from
#                                conformance/python/grpc-requirements.txt
#   redis-server                 Debian's `redis-server` package, only when it is not on PATH
#                                (the Redis engine tests start their own instance)
#   nats-server, postgresql      Debian's packages, only when missing (the NATS and PostgreSQL
#                                broker and consumer tests start their own throwaway servers)
#   chromium                     Debian's package, only when /usr/bin/chromium is missing (the
#                                browser tests run it headless through playwright-core)
# Re-running is cheap: each install is skipped when its lock file has not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

stamp_ok() { [[ -f "$1" ]] && [[ "$(cat "$1")" == "$2" ]]; }

js_lock=$(sha256sum conformance/js/package.json conformance/js/package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)
if ! stamp_ok conformance/js/node_modules/.gyre-stamp "$js_lock"; then
  echo "installing npm test clients into conformance/js/node_modules"
  (cd conformance/js && npm ci --no-audit --no-fund --loglevel=error)
  echo "$js_lock" > conformance/js/node_modules/.gyre-stamp
fi

browser_lock=$(sha256sum conformance/browser/package.json conformance/browser/package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)
if ! stamp_ok conformance/browser/node_modules/.gyre-stamp "$browser_lock"; then
  echo "installing playwright-core into conformance/browser/node_modules"
  (cd conformance/browser && npm ci --no-audit --no-fund --loglevel=error)
  echo "$browser_lock" > conformance/browser/node_modules/.gyre-stamp
fi

py_lock=$(sha256sum conformance/python/requirements.txt | cut -d' ' -f1)
if ! stamp_ok .deps/python/.gyre-stamp "$py_lock"; then
  echo "installing centrifuge-python into .deps/python"
  rm -rf .deps/python
  python3 -m pip install --quiet --disable-pip-version-check --target .deps/python -r conformance/python/requirements.txt
  echo "$py_lock" > .deps/python/.gyre-stamp
fi

grpc_lock=$(sha256sum conformance/python/grpc-requirements.txt | cut -d' ' -f1)
if ! stamp_ok .deps/grpc/.gyre-stamp "$grpc_lock"; then
  echo "installing grpcio and grpcio-tools into .deps/grpc"
  rm -rf .deps/grpc
  python3 -m pip install --quiet --disable-pip-version-check --target .deps/grpc -r conformance/python/grpc-requirements.txt
  echo "$grpc_lock" > .deps/grpc/.gyre-stamp
fi

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
if (( ${#missing[@]} )); then
  echo "installing ${missing[*]} (Debian packages)"
  sudo=""
  if [[ "$(id -u)" != "0" ]]; then sudo="sudo"; fi
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
