#!/usr/bin/env bash
# scim-test-server.sh — a throwaway SCIM 2.0 service on loopback for the test suite.
#
# Usage: scripts/scim-test-server.sh {start|stop|status|env}
#
#   start   Create a Python virtualenv in the state dir and install the `scim2-server` package
#           from PyPI into it (once), start `scim2-server` on 127.0.0.1:$PORT in the background
#           (in-memory storage, a static bearer token), wait until it answers, and print the
#           env file (export lines) on stdout, so
#               eval "$(scripts/scim-test-server.sh start)"
#           works; all messages go to stderr. If our server already runs it is re-used.
#   stop    Stop the server started by this script (by the PID in its pidfile only).
#   status  Say whether it runs and answers; exit 0 if so, 3 if not running, 1 if not answering.
#   env     Print the env file written by start.
#
# Environment:
#   AUTOPROV_SCIM_STATE_DIR      state dir (default /var/tmp/autoprov-scim); venv and logs too
#   AUTOPROV_SCIM_PORT           TCP port on 127.0.0.1 (default 58080)
#   AUTOPROV_SCIM_START_TIMEOUT  seconds to wait for readiness (default 60)
#
# The bearer token is generated once per state dir (random, file mode 0600) and exported as
# AUTOPROV_SCIM_TOKEN; the service keeps everything in memory, so a restart empties it. It
# listens on loopback only and exists only for the tests: plain HTTP, never keep anything in it.
#
# Modelled on scripts/pg-test-server.sh. Needs python3 (with venv, installed from Debian's
# python3-venv if missing) and PyPI.

set -euo pipefail

readonly PROG="scim-test-server"
readonly STATE_DIR="${AUTOPROV_SCIM_STATE_DIR:-/var/tmp/autoprov-scim}"
readonly PORT="${AUTOPROV_SCIM_PORT:-58080}"
readonly START_TIMEOUT="${AUTOPROV_SCIM_START_TIMEOUT:-60}"
readonly STOP_TIMEOUT=20
readonly HOST="127.0.0.1"
# Pinned for reproducible tests; raise deliberately.
readonly PACKAGE="scim2-server==0.8.3"

readonly VENV="$STATE_DIR/venv"
readonly LOG_DIR="$STATE_DIR/logs"
readonly SERVER_LOG="$LOG_DIR/scim2-server.log"
readonly PID_FILE="$STATE_DIR/scim2-server.pid"
readonly ENV_FILE="$STATE_DIR/env"
readonly TOKEN_FILE="$STATE_DIR/token"
readonly LOCK_FILE="$STATE_DIR/lock"
readonly INSTALL_MARK="$VENV/.autoprov-installed-$PACKAGE"

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

log_tail() {
    local file=$1 n=${2:-40}
    [[ -f $file ]] || return 0
    say "---- last $n lines of $file ----"
    tail -n "$n" "$file" | sed "s/^/$PROG:   /" >&2 || true
    say "---- end of $file ----"
}

# Serialise concurrent invocations (several test binaries calling start at once).
LOCK_FD=
take_lock() {
    mkdir -p "$STATE_DIR"
    exec {LOCK_FD}>"$LOCK_FILE"
    flock -w 300 "$LOCK_FD" || die "could not get the lock $LOCK_FILE within 300 s"
}

install_package() {
    [[ -f $INSTALL_MARK && -x $VENV/bin/scim2-server ]] && return 0
    command -v python3 >/dev/null || die "python3 is needed"
    local log="$LOG_DIR/install.log"
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
        say "installing Debian's python3-venv"
        { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv; } \
            >"$log" 2>&1 || { log_tail "$log"; die "installing python3-venv failed"; }
    fi
    say "creating the virtualenv $VENV and installing $PACKAGE from PyPI"
    rm -rf "$VENV"
    {
        python3 -m venv "$VENV" &&
            "$VENV/bin/pip" install --disable-pip-version-check -q "$PACKAGE"
    } >>"$log" 2>&1 || { log_tail "$log"; die "installing $PACKAGE failed (log: $log)"; }
    touch "$INSTALL_MARK"
}

# Is PID our scim2-server (its command line names our venv's script and our port)?
is_ours() {
    local pid=$1 cmdline
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
    [[ $cmdline == *"$VENV/bin/scim2-server"*"--port $PORT"* ]]
}

running_pid() {
    local pid
    [[ -f $PID_FILE ]] || return 1
    pid=$(<"$PID_FILE")
    is_ours "$pid" || return 1
    printf '%s\n' "$pid"
}

answers() {
    curl -fsS -m 5 -o /dev/null "http://$HOST:$PORT/ServiceProviderConfig" 2>/dev/null
}

token() {
    if [[ ! -s $TOKEN_FILE ]]; then
        (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TOKEN_FILE")
    fi
    cat "$TOKEN_FILE"
}

start_server() {
    local tok pid deadline
    tok=$(token)
    if answers; then
        die "something else already answers on $HOST:$PORT (set AUTOPROV_SCIM_PORT)"
    fi
    say "starting scim2-server on $HOST:$PORT"
    # The server must not inherit the lock's descriptor (it would hold the lock while it runs).
    nohup "$VENV/bin/scim2-server" --hostname "$HOST" --port "$PORT" --bearer-token "$tok" \
        </dev/null >>"$SERVER_LOG" 2>&1 {LOCK_FD}>&- &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"
    deadline=$(( SECONDS + START_TIMEOUT ))
    while (( SECONDS < deadline )); do
        if answers; then
            say "scim2-server (pid $pid) answers on $HOST:$PORT"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    log_tail "$SERVER_LOG"
    stop_server 1
    die "scim2-server did not start on $HOST:$PORT within ${START_TIMEOUT}s (log: $SERVER_LOG)"
}

stop_server() {
    local quiet=${1:-0} pid deadline
    pid=$(cat "$PID_FILE" 2>/dev/null || true)
    pid=${pid//[^0-9]/}
    if [[ -z $pid ]] || ! is_ours "$pid"; then
        [[ $quiet -eq 1 ]] || say "not running"
        rm -f "$PID_FILE"
        return 0
    fi
    say "stopping scim2-server (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$(( SECONDS + STOP_TIMEOUT ))
    while (( SECONDS < deadline )) && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    say "stopped"
}

write_env() {
    local tmp="$ENV_FILE.tmp"
    (
        umask 077
        {
            # shellcheck disable=SC2016  # literal text
            printf '# Written by scripts/scim-test-server.sh: source it, or eval "$(scripts/scim-test-server.sh env)".\n'
            printf '# Throwaway SCIM service (scim2-server) on loopback, in memory.\n'
            printf "export AUTOPROV_SCIM_URL='http://%s:%s/v2'\n" "$HOST" "$PORT"
            printf "export AUTOPROV_SCIM_TOKEN='%s'\n" "$(token)"
        } >"$tmp"
    )
    mv -f "$tmp" "$ENV_FILE"
}

cmd_start() {
    local pid
    take_lock
    mkdir -p "$LOG_DIR"
    install_package
    if pid=$(running_pid); then
        say "already running (pid $pid); re-using it"
        answers || { log_tail "$SERVER_LOG"; die "scim2-server (pid $pid) runs but does not answer"; }
    else
        start_server
    fi
    write_env
    say "ready; env file: $ENV_FILE"
    cat "$ENV_FILE"
}

cmd_stop() {
    take_lock
    stop_server
}

cmd_status() {
    local pid
    if ! pid=$(running_pid); then
        say "not running"
        return 3
    fi
    if answers; then
        say "running (pid $pid), answering on $HOST:$PORT; env file: $ENV_FILE"
        return 0
    fi
    say "running (pid $pid) but NOT answering on $HOST:$PORT (log: $SERVER_LOG)"
    return 1
}

cmd_env() {
    [[ -f $ENV_FILE ]] || die "no env file at $ENV_FILE (run start first)"
    running_pid >/dev/null || say "warning: the test SCIM service is not running (run start)"
    cat "$ENV_FILE"
}

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    -h|--help|help) usage ;;
    *) usage; exit 2 ;;
esac
