#!/usr/bin/env bash
# The whole test suite: installs the real tools the tests run against (idempotent), then
# runs every unit and integration test of the workspace, then fmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-test-tools.sh
cargo build --workspace --all-targets
cargo test --workspace -- --test-threads="${PINNACE_TEST_THREADS:-2}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
