#!/usr/bin/env bash
# Runs every test of the workspace: installs the real clients the conformance tests use,
# then runs the unit, integration and conformance tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo test --workspace --locked "$@"
