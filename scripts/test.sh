#!/usr/bin/env bash
# The one command that passes all tests, the real-AD suite included (README, `.ci/run`).
#
# 1. checks formatting and lints;
# 2. installs (Debian's samba packages, if missing) and starts the throwaway Samba domain
#    controller that the AD tests use, and exports its connection settings;
# 3. runs every test of the workspace and builds the docs;
# 4. stops the domain controller again if (and only if) this run started it.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
AD_STATE_DIR="${AUTOPROV_AD_STATE_DIR:-/var/tmp/autoprov-ad}"

step "format check"
cargo fmt --all -- --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --features ad -- -D warnings

step "AD test server (Samba domain controller on loopback)"
started_here=0
if ! bash scripts/ad-test-server.sh status >/dev/null 2>&1; then
    started_here=1
fi
bash scripts/ad-test-server.sh start
cleanup() {
    if [ "$started_here" = 1 ]; then
        bash scripts/ad-test-server.sh stop || true
    fi
}
trap cleanup EXIT
# shellcheck disable=SC1091
source "$AD_STATE_DIR/env"

step "workspace tests (real-AD suite included)"
cargo test --workspace --features ad --no-fail-fast

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --features ad

step "all checks passed"
