#!/usr/bin/env bash
# pg-test-server.sh — a throwaway PostgreSQL on loopback for the test suite.
#
# Usage: scripts/pg-test-server.sh {start|stop|status|reset|env}
#
#   start   Install Debian's postgresql if missing, create the throwaway cluster once (initdb,
#           in the state dir, owned by the postgres user), start it on 127.0.0.1:$PORT, create
#           the test role and database, and print the env file (export lines) on stdout, so
#               eval "$(scripts/pg-test-server.sh start)"
#           works; all messages go to stderr. If our server already runs it is re-used.
#   stop    Stop the server started by this script (by the PID in its pidfile only).
#   status  Say whether it runs and answers; exit 0 if so, 3 if not running, 1 if not answering.
#   reset   stop + remove the cluster + start (an empty cluster in a few seconds).
#   env     Print the env file written by start.
#
# Environment:
#   AUTOPROV_PG_STATE_DIR      state dir (default /var/tmp/autoprov-pg); logs live there too
#   AUTOPROV_PG_PORT           TCP port on 127.0.0.1 (default 55432, not the usual 5432)
#   AUTOPROV_PG_START_TIMEOUT  seconds to wait for readiness (default 60)
#
# The role's password is a FIXED, PUBLIC test value (autoprov-test). That is deliberate: the
# cluster is throwaway, listens on loopback only and exists only for the tests. Durability is
# switched off (fsync=off) for speed: never keep anything in it.
#
# Modelled on scripts/ad-test-server.sh (shared/docs/AD-TEST-SERVER.md). Needs root (apt,
# and to run the server as the postgres user) and Debian 12.

set -euo pipefail

readonly PROG="pg-test-server"
readonly STATE_DIR="${AUTOPROV_PG_STATE_DIR:-/var/tmp/autoprov-pg}"
readonly PORT="${AUTOPROV_PG_PORT:-55432}"
readonly START_TIMEOUT="${AUTOPROV_PG_START_TIMEOUT:-60}"
readonly STOP_TIMEOUT=20

readonly HOST="127.0.0.1"
readonly DB_USER="autoprov"
readonly DB_PASSWORD="autoprov-test"
readonly DB_NAME="autoprov"
readonly OS_USER="postgres"

readonly DATA_DIR="$STATE_DIR/data"
readonly SOCK_DIR="$STATE_DIR/run"
readonly LOG_DIR="$STATE_DIR/logs"
readonly PG_LOG="$LOG_DIR/postgres.log"
readonly PID_FILE="$STATE_DIR/postgres.pid"
readonly ENV_FILE="$STATE_DIR/env"
readonly LOCK_FILE="$STATE_DIR/lock"
readonly INIT_MARK="$DATA_DIR/.autoprov-initdb-complete"

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

now_ms() { date +%s%3N; }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%03ds' $((ms / 1000)) $((ms % 1000)); }

log_tail() {
    local file=$1 n=${2:-40}
    [[ -f $file ]] || return 0
    say "---- last $n lines of $file ----"
    tail -n "$n" "$file" | sed "s/^/$PROG:   /" >&2 || true
    say "---- end of $file ----"
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (apt, and running the server as $OS_USER)"
}

# Serialise concurrent invocations (several test binaries calling start at once).
LOCK_FD=
take_lock() {
    mkdir -p "$STATE_DIR"
    exec {LOCK_FD}>"$LOCK_FILE"
    if ! flock -w 300 "$LOCK_FD"; then
        die "could not get the lock $LOCK_FILE within 300 s (another invocation stuck?)"
    fi
}

# ---------------------------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------------------------

# The newest installed server's bin dir (Debian: /usr/lib/postgresql/<major>/bin), or nothing.
BIN_DIR=
find_bin_dir() {
    local d
    BIN_DIR=
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
        [[ -x $d/initdb && -x $d/postgres && -x $d/pg_ctl ]] && BIN_DIR=$d
    done
    [[ -n $BIN_DIR ]]
}

POLICY_RC_D_OURS=0
remove_policy_rc_d() {
    if [[ $POLICY_RC_D_OURS -eq 1 ]]; then
        rm -f /usr/sbin/policy-rc.d
        POLICY_RC_D_OURS=0
    fi
}

install_packages() {
    find_bin_dir && id -u "$OS_USER" >/dev/null 2>&1 && return 0
    command -v apt-get >/dev/null || die "apt-get not found: this script expects Debian 12"
    mkdir -p "$LOG_DIR"
    local log="$LOG_DIR/install.log" t0 rc=0
    t0=$(now_ms)
    say "installing Debian's postgresql (log: $log)"
    # Keep the package scripts from starting the distribution's own cluster on 5432.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# temporary, from scripts/pg-test-server.sh\nexit 101\n' \
            >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        POLICY_RC_D_OURS=1
    fi
    local install=(apt-get install -y --no-install-recommends
                   -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
                   postgresql)
    {
        DEBIAN_FRONTEND=noninteractive "${install[@]}" ||
        { DEBIAN_FRONTEND=noninteractive apt-get update &&
          DEBIAN_FRONTEND=noninteractive "${install[@]}"; }
    } >"$log" 2>&1 || rc=$?
    remove_policy_rc_d
    if [[ $rc -ne 0 ]]; then
        log_tail "$log"
        die "package installation failed (exit $rc)"
    fi
    find_bin_dir || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb found"
    id -u "$OS_USER" >/dev/null 2>&1 || die "postgresql installed but there is no $OS_USER user"
    say "postgresql installed in $(elapsed "$t0")"
}

as_pg() { runuser -u "$OS_USER" -- "$@"; }

# ---------------------------------------------------------------------------------------------
# The cluster (created once, kept between starts: tests use a fresh schema each)
# ---------------------------------------------------------------------------------------------

init_cluster() {
    [[ -f $INIT_MARK ]] && return 0
    local t0 log="$LOG_DIR/initdb.log" rc=0
    t0=$(now_ms)
    say "creating the throwaway cluster in $DATA_DIR (once; log: $log)"
    rm -rf "$DATA_DIR"
    mkdir -p "$DATA_DIR"
    chown "$OS_USER:" "$DATA_DIR"
    chmod 0700 "$DATA_DIR"
    # Local (socket) connections are trusted: only root and postgres can reach the socket dir.
    # TCP needs the password, as a real deployment would.
    as_pg "$BIN_DIR/initdb" -D "$DATA_DIR" -U postgres -E UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256 >"$log" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        log_tail "$log"
        rm -rf "$DATA_DIR"
        die "initdb failed (exit $rc)"
    fi
    cat >>"$DATA_DIR/postgresql.conf" <<EOF

# Written by scripts/pg-test-server.sh — throwaway test cluster on loopback.
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = '$SOCK_DIR'
max_connections = 300
# Tests only: no durability (several times faster writes). Never keep anything here.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    touch "$INIT_MARK"
    say "cluster created in $(elapsed "$t0")"
}

# ---------------------------------------------------------------------------------------------
# Process handling: only ever the PID in our pidfile
# ---------------------------------------------------------------------------------------------

# Is PID a live postgres server process serving our data dir?
is_our_postgres() {
    local pid=$1 exe
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    exe=${exe% (deleted)}
    [[ ${exe##*/} == postgres ]] || return 1
    # postmaster.pid's first line is the postmaster's PID: the data dir is ours.
    [[ $(head -n 1 "$DATA_DIR/postmaster.pid" 2>/dev/null) == "$pid" ]]
}

running_pid() {
    local pid
    [[ -f $PID_FILE ]] || return 1
    pid=$(<"$PID_FILE")
    is_our_postgres "$pid" || return 1
    printf '%s\n' "$pid"
}

port_in_use() {
    local hex
    printf -v hex '%04X' "$PORT"
    awk -v p=":$hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { f = 1 }
                      END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

answers() {
    "$BIN_DIR/pg_isready" -q -h "$HOST" -p "$PORT" -t 5 >/dev/null 2>&1
}

# Is PID a zombie (dead, not yet reaped)?
is_zombie() {
    local stat rest
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    rest=${stat##*) }
    [[ ${rest:0:1} == Z ]]
}

# PIDs of live postgres processes working in our data dir (a killed postmaster's backends).
data_dir_pids() {
    local d p exe
    for d in /proc/[0-9]*; do
        [[ $(readlink "$d/cwd" 2>/dev/null) == "$DATA_DIR" ]] || continue
        p=${d#/proc/}
        is_zombie "$p" && continue
        exe=$(readlink "$d/exe" 2>/dev/null || true)
        exe=${exe% (deleted)}
        [[ ${exe##*/} == postgres ]] && printf '%s\n' "$p"
    done
}

# After a server of ours was killed (SIGKILL, OOM), its postmaster.pid remains. postgres
# refuses to start while the PID in it exists: wait for the dead postmaster (and its backends,
# which exit once they notice) to go; a PID that is then a zombie or no postgres at all (reused)
# cannot hold the data dir, so the stale file goes. A live postgres on our data dir that is
# not in our pidfile is left alone.
clear_stale_lock() {
    local f="$DATA_DIR/postmaster.pid" pid exe deadline
    [[ -f $f ]] || return 0
    pid=$(head -n 1 "$f" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    local left=()
    deadline=$(( SECONDS + 10 ))
    while (( SECONDS < deadline )); do
        mapfile -t left < <(data_dir_pids)
        if [[ ${#left[@]} -eq 0 ]] && { ! kill -0 "$pid" 2>/dev/null || is_zombie "$pid"; }; then
            break
        fi
        sleep 0.1
    done
    if [[ ${#left[@]} -gt 0 ]]; then
        die "postgres process(es) ${left[*]} still work in $DATA_DIR (not in our pidfile);" \
            "stop them first: kill ${left[*]}"
    fi
    kill -0 "$pid" 2>/dev/null || return 0
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    exe=${exe% (deleted)}
    if is_zombie "$pid" || [[ ${exe##*/} != postgres ]]; then
        say "removing the stale lock files of pid $pid (no live postgres)"
        rm -f "$f"
        local lock
        for lock in "$SOCK_DIR"/.s.PGSQL.*.lock; do
            [[ -f $lock && $(head -n 1 "$lock" 2>/dev/null) == "$pid" ]] && rm -f "$lock"
        done
        return 0
    fi
    die "postgres pid $pid runs on $DATA_DIR but is not in our pidfile; stop it: kill $pid"
}

start_server() {
    if port_in_use; then
        if command -v ss >/dev/null; then
            ss -ltnp 2>/dev/null | grep -E ":$PORT\b" | sed "s/^/$PROG:   /" >&2 || true
        fi
        die "port $PORT is in use by something that is not our (pidfile-tracked) PostgreSQL;" \
            "stop it, or set AUTOPROV_PG_PORT"
    fi
    mkdir -p "$SOCK_DIR" "$LOG_DIR"
    chown "$OS_USER:" "$SOCK_DIR"
    [[ -f $PG_LOG ]] && mv -f "$PG_LOG" "$PG_LOG.old"
    touch "$PG_LOG"
    chown "$OS_USER:" "$PG_LOG"
    clear_stale_lock
    local t0 rc=0
    t0=$(now_ms)
    # pg_ctl detaches the postmaster from us (its own session); -w waits until it accepts
    # connections. The lock fd must not be inherited: the server would hold it for its life.
    as_pg "$BIN_DIR/pg_ctl" -D "$DATA_DIR" -l "$PG_LOG" -w -t "$START_TIMEOUT" start \
        >>"$LOG_DIR/pg_ctl.log" 2>&1 {LOCK_FD}>&- || rc=$?
    local pid
    pid=$(head -n 1 "$DATA_DIR/postmaster.pid" 2>/dev/null || true)
    if [[ -n $pid ]] && is_our_postgres "$pid"; then
        printf '%s\n' "$pid" >"$PID_FILE"
    fi
    if [[ $rc -ne 0 ]] || ! answers; then
        log_tail "$PG_LOG"
        [[ -f $PID_FILE ]] && stop_server 1
        die "postgres did not start on $HOST:$PORT within ${START_TIMEOUT}s (log: $PG_LOG)"
    fi
    say "postgres (pid $pid) answers on $HOST:$PORT after $(elapsed "$t0")"
}

# Stop the server in our pidfile: fast shutdown (SIGINT), then immediate (SIGQUIT).
stop_server() {
    local quiet=${1:-0} pid
    pid=$(cat "$PID_FILE" 2>/dev/null || true)
    pid=${pid//[^0-9]/}
    if [[ -z $pid ]] || ! is_our_postgres "$pid"; then
        [[ $quiet -eq 1 ]] || say "not running"
        rm -f "$PID_FILE"
        return 0
    fi
    say "stopping postgres (pid $pid)"
    kill -INT "$pid" 2>/dev/null || true
    local deadline=$(( SECONDS + STOP_TIMEOUT ))
    while (( SECONDS < deadline )); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            say "stopped"
            return 0
        fi
        sleep 0.1
    done
    say "still there after ${STOP_TIMEOUT}s; immediate shutdown (SIGQUIT)"
    kill -QUIT "$pid" 2>/dev/null || true
    deadline=$(( SECONDS + 10 ))
    while (( SECONDS < deadline )) && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && die "could not stop postgres (pid $pid)"
    rm -f "$PID_FILE"
    say "stopped (immediate)"
}

# ---------------------------------------------------------------------------------------------
# Role, database, env file
# ---------------------------------------------------------------------------------------------

psql_admin() {  # SQL...: as the superuser over our socket (trusted)
    "$BIN_DIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK_DIR" -p "$PORT" -U postgres \
        -d postgres "$@"
}

ensure_role_and_db() {
    local log="$LOG_DIR/setup.log" rc=0
    {
        psql_admin <<EOF
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD';
  END IF;
END \$\$;
EOF
        if [[ -z $(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") ]]; then
            psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
        fi
    } >"$log" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        log_tail "$log"
        die "creating role $DB_USER and database $DB_NAME failed (exit $rc)"
    fi
}

# The tests make a schema each (kit_<random>); a freshly started server drops those that
# earlier runs left (never while re-used: a running suite may be using them).
drop_test_schemas() {
    local log="$LOG_DIR/setup.log" rc=0
    psql_admin -d "$DB_NAME" >>"$log" 2>&1 <<'SQL' || rc=$?
DO $$ DECLARE s text; BEGIN
  FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 'kit\_%' LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', s);
  END LOOP;
END $$;
SQL
    [[ $rc -eq 0 ]] || say "warning: could not drop old test schemas (log: $log)"
}

write_env() {
    local tmp="$ENV_FILE.tmp"
    {
        # shellcheck disable=SC2016  # literal text
        printf '# Written by scripts/pg-test-server.sh: source it, or eval "$(scripts/pg-test-server.sh env)".\n'
        printf '# Throwaway PostgreSQL on loopback; the password is a fixed public test value.\n'
        printf "export AUTOPROV_PG_URL='postgres://%s:%s@%s:%s/%s'\n" \
            "$DB_USER" "$DB_PASSWORD" "$HOST" "$PORT" "$DB_NAME"
    } >"$tmp"
    mv -f "$tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

cmd_start() {
    local fresh=${1:-0} pid
    need_root
    take_lock
    mkdir -p "$LOG_DIR"
    chmod 0755 "$STATE_DIR"
    install_packages
    if [[ $fresh -eq 0 ]] && pid=$(running_pid); then
        say "already running (pid $pid); re-using it (use 'reset' for an empty cluster)"
        answers || { log_tail "$PG_LOG"; die "postgres (pid $pid) runs but does not answer; try 'reset'"; }
    else
        stop_server 1
        [[ $fresh -eq 1 ]] && rm -rf "$DATA_DIR"
        init_cluster
        start_server
        ensure_role_and_db
        drop_test_schemas
    fi
    ensure_role_and_db
    write_env
    say "ready; env file: $ENV_FILE"
    cat "$ENV_FILE"
}

cmd_stop() {
    need_root
    take_lock
    stop_server
}

cmd_status() {
    local pid
    if ! pid=$(running_pid); then
        say "not running"
        return 3
    fi
    find_bin_dir || true
    if answers; then
        say "running (pid $pid), answering on $HOST:$PORT; env file: $ENV_FILE"
        return 0
    fi
    say "running (pid $pid) but NOT answering on $HOST:$PORT (log: $PG_LOG)"
    return 1
}

cmd_env() {
    [[ -f $ENV_FILE ]] || die "no env file at $ENV_FILE (run start first)"
    running_pid >/dev/null || say "warning: the test PostgreSQL is not running (run start)"
    cat "$ENV_FILE"
}

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2
}

main() {
    local cmd=${1:-}
    case $cmd in
        start) cmd_start 0 ;;
        reset) cmd_start 1 ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        env) cmd_env ;;
        -h|--help|help) usage ;;
        *) usage; exit 2 ;;
    esac
}

trap remove_policy_rc_d EXIT
main "$@"
