#!/usr/bin/env bash
# Soak test of the registry (docs/registry.md, "Soak test"): 16 clients push,
# pull, delete, re-tag and mount while the release `rbee-registry` is killed
# (`kill -9`, sometimes SIGTERM) and restarted every 30 s; after each restart
# every acknowledged blob, manifest, tag and referrer is read back. Exits
# non-zero on any violation. Not part of CI (it runs for minutes).
#
#   scripts/soak.sh                  # 5 minutes
#   scripts/soak.sh --quick          # 1 minute
#   scripts/soak.sh --duration 10m --clients 32 --restart-every 20s --seed 7
set -euo pipefail
cd "$(dirname "$0")/.."

args=()
for arg in "$@"; do
    if [ "$arg" = "--quick" ]; then
        args+=(--duration 1m)
    else
        args+=("$arg")
    fi
done

cargo build --release --locked -p rbee-registry --bin rbee-registry --example soak
target="${CARGO_TARGET_DIR:-target}"
# The build folder may be shared with other checkouts: run copies, so that
# the binary under test cannot change while the soak runs.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$target/release/rbee-registry" "$target/release/examples/soak" "$work/"
"$work/soak" --binary "$work/rbee-registry" "${args[@]}"
