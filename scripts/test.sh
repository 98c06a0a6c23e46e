#!/usr/bin/env bash
# The one command that passes all tests, the real-server suites included (README, `.ci/run`).
#
# 1. checks formatting and lints;
# 2. installs (Debian's samba packages, if missing) and starts the throwaway Samba domain
#    controller that the AD tests use, and exports its connection settings;
#    and likewise the throwaway PostgreSQL that the PostgreSQL store tests use, the
#    throwaway SCIM service (scim2-server from PyPI, in a virtualenv) that the SCIM tests use,
#    and the SMTP sink (aiosmtpd from PyPI, in a virtualenv) that the password-notification
#    tests read;
# 3. runs every test of the workspace and builds the docs;
# 4. stops each of those servers again if (and only if) this run started it.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
AD_STATE_DIR="${AUTOPROV_AD_STATE_DIR:-/var/tmp/autoprov-ad}"
PG_STATE_DIR="${AUTOPROV_PG_STATE_DIR:-/var/tmp/autoprov-pg}"
SCIM_STATE_DIR="${AUTOPROV_SCIM_STATE_DIR:-/var/tmp/autoprov-scim}"
SMTP_STATE_DIR="${AUTOPROV_SMTP_STATE_DIR:-/var/tmp/autoprov-smtp}"

step "format check"
cargo fmt --all -- --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --features ad,scim -- -D warnings

step "the guide's example package: at most 250 lines of code (tokei after rustfmt)"
if ! command -v tokei >/dev/null && [ ! -x "$HOME/.cargo/bin/tokei" ]; then
    cargo install tokei@15.0.0 --locked
fi
scripts/example-lines.sh

started_here=0
pg_started_here=0
scim_started_here=0
smtp_started_here=0
cleanup() {
    if [ "$smtp_started_here" = 1 ]; then
        bash scripts/smtp-test-server.sh stop || true
    fi
    if [ "$scim_started_here" = 1 ]; then
        bash scripts/scim-test-server.sh stop || true
    fi
    if [ "$started_here" = 1 ]; then
        bash scripts/ad-test-server.sh stop || true
    fi
    if [ "$pg_started_here" = 1 ]; then
        bash scripts/pg-test-server.sh stop || true
    fi
}
trap cleanup EXIT

step "AD test server (Samba domain controller on loopback)"
if ! bash scripts/ad-test-server.sh status >/dev/null 2>&1; then
    started_here=1
fi
bash scripts/ad-test-server.sh start
# shellcheck disable=SC1091
source "$AD_STATE_DIR/env"

step "PostgreSQL test server (throwaway cluster on loopback)"
if ! bash scripts/pg-test-server.sh status >/dev/null 2>&1; then
    pg_started_here=1
fi
bash scripts/pg-test-server.sh start >/dev/null
# shellcheck disable=SC1091
source "$PG_STATE_DIR/env"

step "SCIM test server (scim2-server on loopback)"
if ! bash scripts/scim-test-server.sh status >/dev/null 2>&1; then
    scim_started_here=1
fi
bash scripts/scim-test-server.sh start >/dev/null
# shellcheck disable=SC1091
source "$SCIM_STATE_DIR/env"

step "SMTP test server (aiosmtpd sink on loopback, from PyPI)"
if ! bash scripts/smtp-test-server.sh status >/dev/null 2>&1; then
    smtp_started_here=1
fi
bash scripts/smtp-test-server.sh start >/dev/null
# shellcheck disable=SC1091
source "$SMTP_STATE_DIR/env"

step "workspace tests (real-AD, PostgreSQL, SCIM and SMTP suites included)"
cargo test --workspace --features ad,scim --no-fail-fast

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --features ad,scim

step "all checks passed"
