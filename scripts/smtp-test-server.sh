#!/usr/bin/env bash
# smtp-test-server.sh — a throwaway SMTP sink on loopback for the test suite.
#
# Usage: scripts/smtp-test-server.sh {start|stop|status|env}
#
#   start   Create a Python virtualenv in the state dir and install aiosmtpd (PyPI) into it if
#           missing, start aiosmtpd on 127.0.0.1:$PORT with its Mailbox handler (every mail
#           it accepts is written to a Maildir in the state dir, where tests read it), wait
#           until it answers, and print the env file (export lines) on stdout. If our server
#           already runs it is re-used.
#   stop    Stop the server started by this script (by the PID in its pidfile only).
#   status  Exit 0 if it runs and answers, 3 if not running, 1 if running but not answering.
#   env     Print the env file written by start.
#
# Environment:
#   AUTOPROV_SMTP_STATE_DIR  state dir (default /var/tmp/autoprov-smtp)
#   AUTOPROV_SMTP_PORT       TCP port on 127.0.0.1 (default 2525)
#
# The sink accepts any mail without authentication and keeps it on disk: loopback and tests
# only. Modelled on scripts/ad-test-server.sh and scripts/pg-test-server.sh.

set -euo pipefail

readonly PROG="smtp-test-server"
readonly STATE_DIR="${AUTOPROV_SMTP_STATE_DIR:-/var/tmp/autoprov-smtp}"
readonly PORT="${AUTOPROV_SMTP_PORT:-2525}"
readonly HOST="127.0.0.1"
readonly START_TIMEOUT=30
readonly AIOSMTPD_VERSION="1.4.6"

readonly VENV="$STATE_DIR/venv"
readonly MAILDIR="$STATE_DIR/maildir"
readonly LOG="$STATE_DIR/aiosmtpd.log"
readonly PID_FILE="$STATE_DIR/aiosmtpd.pid"
readonly ENV_FILE="$STATE_DIR/env"

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

answers() {
    # An SMTP greeting on the port.
    python3 - "$HOST" "$PORT" <<'EOF' >/dev/null 2>&1
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
banner = s.recv(512)
s.sendall(b"QUIT\r\n")
s.close()
sys.exit(0 if banner.startswith(b"220") else 1)
EOF
}

running_pid() {
    [[ -f $PID_FILE ]] || return 1
    local pid
    pid=$(cat "$PID_FILE")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    # Ours: the command line names our state dir.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$MAILDIR" || return 1
    printf '%s\n' "$pid"
}

install_venv() {
    if [[ -x $VENV/bin/aiosmtpd ]]; then
        return 0
    fi
    say "creating a virtualenv in $VENV and installing aiosmtpd==$AIOSMTPD_VERSION from PyPI"
    mkdir -p "$STATE_DIR"
    python3 -m venv "$VENV" || die "python3 -m venv failed (is python3-venv installed?)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION" \
        || die "pip install aiosmtpd failed"
}

write_env() {
    cat >"$ENV_FILE" <<EOF
export AUTOPROV_SMTP_HOST='$HOST'
export AUTOPROV_SMTP_PORT='$PORT'
export AUTOPROV_SMTP_MAILDIR='$MAILDIR'
EOF
}

cmd_start() {
    # A Maildir: aiosmtpd writes to tmp/ then moves to new/.
    mkdir -p "$MAILDIR/tmp" "$MAILDIR/new" "$MAILDIR/cur"
    if pid=$(running_pid) && answers; then
        say "already running (pid $pid) on $HOST:$PORT"
        write_env
        cat "$ENV_FILE"
        return 0
    fi
    install_venv
    if answers; then
        die "something else answers on $HOST:$PORT; set AUTOPROV_SMTP_PORT"
    fi
    setsid "$VENV/bin/aiosmtpd" -n -l "$HOST:$PORT" -c aiosmtpd.handlers.Mailbox "$MAILDIR" \
        </dev/null >"$LOG" 2>&1 &
    local pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"
    local deadline=$(( $(date +%s) + START_TIMEOUT ))
    until answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$LOG" >&2 || true
            die "aiosmtpd exited during startup (log: $LOG)"
        fi
        if (( $(date +%s) >= deadline )); then
            kill "$pid" 2>/dev/null || true
            die "aiosmtpd did not answer on $HOST:$PORT within ${START_TIMEOUT}s"
        fi
        sleep 0.2
    done
    say "aiosmtpd (pid $pid) answers on $HOST:$PORT; mail goes to $MAILDIR"
    write_env
    cat "$ENV_FILE"
}

cmd_stop() {
    local pid
    if ! pid=$(running_pid); then
        say "not running"
        rm -f "$PID_FILE"
        return 0
    fi
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    say "stopped (pid $pid)"
}

cmd_status() {
    local pid
    if ! pid=$(running_pid); then
        say "not running"
        return 3
    fi
    if answers; then
        say "running (pid $pid) on $HOST:$PORT"
        return 0
    fi
    say "running (pid $pid) but not answering on $HOST:$PORT"
    return 1
}

cmd_env() {
    [[ -f $ENV_FILE ]] || die "no env file: run start first"
    cat "$ENV_FILE"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *) printf 'usage: %s {start|stop|status|env}\n' "$0" >&2; exit 2 ;;
esac
