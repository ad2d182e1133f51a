#!/bin/sh
# Installs what the end-to-end tests and the benchmark need on Debian
# (bookworm): skopeo, CNCF Distribution (`docker-registry`), htpasswd
# (apache2-utils, for Distribution's Basic auth), nginx and wrk from apt,
# and the `oras` Python SDK and `schemathesis` (pinned) from PyPI; then
# PostgreSQL (`postgresql` from apt) and a throwaway test cluster on
# 127.0.0.1 (scripts/test-postgres.sh).
#
# Idempotent: when everything is already present it touches nothing (no
# `apt-get update`, no pip) and returns at once. Run it as root, or as a user
# with sudo.
set -eu

# apt packages and the command each provides.
APT_TOOLS="skopeo:skopeo docker-registry:docker-registry apache2-utils:htpasswd nginx-light:nginx wrk:wrk"

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
if ! "$PYTHON" -m schemathesis.cli --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION\$"; then
    need_schemathesis=1
    have "$PYTHON" || missing_apt="$missing_apt python3"
    if ! have "$PYTHON" || ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
        missing_apt="$missing_apt python3-pip"
    fi
fi
# ---- end schemathesis ------------------------------------------------------

# The test cluster runs on every call (it returns at once when it answers).
postgres_cluster() { "$(dirname "$0")/test-postgres.sh"; }

if [ -z "$missing_apt" ] && [ "$need_oras" -eq 0 ] && [ "$need_schemathesis" -eq 0 ]; then
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
    $APT install -y skopeo docker-registry apache2-utils nginx-light wrk
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

postgres_cluster
echo "install-test-deps: done"

