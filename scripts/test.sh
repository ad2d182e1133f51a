#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need
# (skopeo, CNCF Distribution, oras-py, ...), then formatting, lints and
# every test of the workspace. Safe to run again; fast when all is present.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-test-deps.sh
# The PostgreSQL cluster install-test-deps.sh started: the store's tests
# run on it as well as on SQLite (each test in its own database).
RBEE_TEST_POSTGRES_URL="$(cat "${TMPDIR:-/tmp}/rbee-test-postgres/url")"
export RBEE_TEST_POSTGRES_URL

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
