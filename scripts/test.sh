#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need
# (skopeo, CNCF Distribution, oras-py, ...), then formatting, lints and
# every test of the workspace. Safe to run again; fast when all is present.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-test-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
