#!/usr/bin/env bash
# Fuzzes the parsers that read untrusted input (fuzz/fuzz_targets/): each
# target runs for SECONDS_PER_TARGET (default 60), one after another on one
# core, starting from the checked-in seeds (fuzz/seeds/<target>) and the
# corpus grown by earlier runs (fuzz/corpus/<target>, not checked in).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Exits non-zero when a target crashed, naming the reproducer
# (fuzz/artifacts/<target>/crash-*); replay one with
#   cd fuzz && cargo +nightly fuzz run <target> <file>
#
# Needs the nightly toolchain (libFuzzer and the address sanitizer); installs
# cargo-fuzz when missing. Builds into ${RBEE_FUZZ_TARGET_DIR:-fuzz/target},
# never the workspace's build folder: nightly with sanitizer flags would
# rebuild everything there. Not part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=${1:-60}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi

export CARGO_TARGET_DIR=${RBEE_FUZZ_TARGET_DIR:-$root/fuzz/target}
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzzing needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

# The unpack target creates and removes a directory per input: on tmpfs
# that costs no disk writes (and no fsync).
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    TMPDIR=$(mktemp -d /dev/shm/rbee-fuzz.XXXXXX)
    export TMPDIR
    trap 'rm -rf "$TMPDIR"' EXIT
fi

cd fuzz
# Start from the workspace's versions of the shared dependencies.
[ -f Cargo.lock ] || cp ../Cargo.lock Cargo.lock

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

echo "== building ${#targets[@]} targets into $CARGO_TARGET_DIR"
cargo +nightly fuzz build

mkdir -p artifacts/logs
summary=()
crashed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
    log="artifacts/logs/$t.log"
    echo "== $t: ${seconds}s (log: fuzz/$log)"
    touch "artifacts/logs/$t.start" # reproducers of this run are newer
    status=0
    # New inputs go to the first folder (corpus); seeds are only read.
    cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 || true)
    summary+=("$t: ${runs:-no summary} (exit $status)")
    if [ "$status" -ne 0 ]; then
        tail -n 30 "$log"
        crashed+=("$t")
    fi
done

echo "== summary"
printf '  %s\n' "${summary[@]}"
if [ ${#crashed[@]} -gt 0 ]; then
    echo "== crashed: ${crashed[*]}; reproducers:"
    for t in "${crashed[@]}"; do
        find "artifacts/$t" -maxdepth 1 -type f -newer "artifacts/logs/$t.start" \
            \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) |
            sed 's|^|  fuzz/|'
    done
    echo "replay: cd fuzz && cargo +nightly fuzz run <target> <reproducer>"
    exit 1
fi
