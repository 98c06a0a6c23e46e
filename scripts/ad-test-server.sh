#!/usr/bin/env bash
# ad-test-server.sh — a real Active Directory (Samba AD DC) on loopback for the test suite.
#
# Usage: scripts/ad-test-server.sh {start|stop|status|reset|env}
#
#   start   Install the Debian packages if missing, provision the throwaway domain EXAMPLE.TEST
#           once (kept as a pristine copy), restore a clean working copy from it, start Samba
#           and wait until LDAPS answers. If our Samba is already running it is re-used as it
#           is (no restart, no restore). Prints the env file (export lines) on stdout, so
#               eval "$(scripts/ad-test-server.sh start)"
#           works; all messages go to stderr.
#   stop    Stop the Samba started by this script (by the PID in its pidfile only).
#   status  Say whether it runs and answers; exit 0 if so, 3 if not running, 1 if not answering.
#   reset   stop + restore the pristine domain + start (a clean domain in a few seconds).
#   env     Print the env file written by start.
#
# Environment:
#   AUTOPROV_AD_KEEP_DATA=1    start: keep the domain's data from the last run instead of
#                              restoring the pristine copy (outage tests restart the server)
#   AUTOPROV_AD_STATE_DIR        state dir (default /var/tmp/autoprov-ad); logs live there too
#   AUTOPROV_AD_ADMIN_PASSWORD   Administrator password used when provisioning (default below)
#   AUTOPROV_AD_START_TIMEOUT    seconds to wait for readiness (default 60)
#
# The Administrator password is a FIXED, PUBLIC test value (Autoprov-Test-Passw0rd! unless
# overridden at provisioning time). That is deliberate: the domain is throwaway, listens on
# loopback only and exists only for the tests. Never reuse this script or password for anything
# real. The password the pristine copy was provisioned with is stored in <state>/admin-password.
#
# Facts behind the choices here: shared/docs/AD-TEST-SERVER.md.
# Needs root (Samba binds the privileged ports 389/636/3268/3269) and Debian 12 (apt).

set -euo pipefail

readonly PROG="ad-test-server"
readonly STATE_DIR="${AUTOPROV_AD_STATE_DIR:-/var/tmp/autoprov-ad}"
readonly DEFAULT_ADMIN_PASSWORD='Autoprov-Test-Passw0rd!'
readonly START_TIMEOUT="${AUTOPROV_AD_START_TIMEOUT:-60}"
readonly STOP_TIMEOUT=10

readonly REALM="EXAMPLE.TEST"
readonly DOMAIN="EXAMPLE"
readonly HOST_NAME="dc1"
readonly HOST_IP="127.0.0.1"
readonly BASE_DN="DC=example,DC=test"
readonly LDAPS_URL="ldaps://127.0.0.1:636"
readonly LDAP_URL="ldap://127.0.0.1:389"

readonly WORK_DIR="$STATE_DIR/work"          # the live domain (restored from pristine)
readonly PRISTINE_DIR="$STATE_DIR/pristine"  # the freshly provisioned domain, never started
readonly PRISTINE_MARK="$PRISTINE_DIR/.autoprov-pristine-complete"
readonly TLS_DIR="$STATE_DIR/tls"
readonly LOG_DIR="$STATE_DIR/logs"
readonly CA_FILE="$TLS_DIR/ca.pem"
readonly SMB_CONF="$WORK_DIR/etc/smb.conf"
readonly PID_FILE="$STATE_DIR/samba.pid"
readonly SAMBA_LOG="$LOG_DIR/samba.log"
readonly ENV_FILE="$STATE_DIR/env"
readonly PASSWORD_FILE="$STATE_DIR/admin-password"
readonly LOCK_FILE="$STATE_DIR/lock"

readonly PACKAGES=(samba samba-ad-dc samba-ad-provision samba-dsdb-modules winbind ldap-utils
                   ldb-tools openssl)
readonly AD_PORTS=(389 636 3268 3269)

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

now_ms() { date +%s%3N; }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%03ds' $((ms / 1000)) $((ms % 1000)); }

# Print the last lines of a log file to stderr, prefixed, to explain a failure.
log_tail() {
    local file=$1 n=${2:-40}
    [[ -f $file ]] || return 0
    say "---- last $n lines of $file ----"
    tail -n "$n" "$file" | sed "s/^/$PROG:   /" >&2 || true
    say "---- end of $file ----"
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (Samba needs the privileged LDAP ports)"
}

# Serialise concurrent invocations (e.g. several test binaries calling start at once).
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

missing_packages() {
    local p status
    for p in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [[ $status == "install ok installed" ]] || printf '%s\n' "$p"
    done
}

POLICY_RC_D_OURS=0
remove_policy_rc_d() {
    if [[ $POLICY_RC_D_OURS -eq 1 ]]; then
        rm -f /usr/sbin/policy-rc.d
        POLICY_RC_D_OURS=0
    fi
}

install_packages() {
    local missing
    mapfile -t missing < <(missing_packages)
    [[ ${#missing[@]} -gt 0 ]] || return 0
    command -v apt-get >/dev/null || die "apt-get not found: this script expects Debian 12"

    local log="$LOG_DIR/install.log" t0
    t0=$(now_ms)
    say "installing packages: ${missing[*]} (log: $log)"

    # Keep the package scripts from starting Samba with the system's config.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# temporary, from scripts/ad-test-server.sh\nexit 101\n' \
            >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        POLICY_RC_D_OURS=1
    fi

    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${missing[@]}"
    } >"$log" 2>&1 || rc=$?
    remove_policy_rc_d

    if [[ $rc -ne 0 ]]; then
        log_tail "$log"
        die "package installation failed (exit $rc)"
    fi
    mapfile -t missing < <(missing_packages)
    [[ ${#missing[@]} -eq 0 ]] || die "still missing after install: ${missing[*]}"
    say "packages installed in $(elapsed "$t0")"
}

# ---------------------------------------------------------------------------------------------
# TLS: own CA + server certificate with SANs (Samba's self-signed one has none)
# ---------------------------------------------------------------------------------------------

make_tls() {
    if [[ -s $CA_FILE && -s $TLS_DIR/server.pem && -s $TLS_DIR/server.key ]]; then
        return 0
    fi
    say "generating test CA and server certificate in $TLS_DIR"
    rm -rf "$TLS_DIR"
    mkdir -p "$TLS_DIR"
    chmod 0700 "$TLS_DIR"
    local log="$LOG_DIR/tls.log"
    (
        set -e
        umask 077
        cd "$TLS_DIR"
        openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
            -keyout ca.key -out ca.pem \
            -subj "/O=autoprov tests/CN=autoprov AD test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -addext "subjectKeyIdentifier=hash"
        openssl req -new -newkey rsa:2048 -nodes -sha256 \
            -keyout server.key -out server.csr \
            -subj "/O=autoprov tests/CN=dc1.example.test"
        cat >server.ext <<'EOF'
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost,DNS:dc1.example.test
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
        openssl x509 -req -sha256 -days 3650 -in server.csr \
            -CA ca.pem -CAkey ca.key -CAcreateserial \
            -extfile server.ext -out server.pem
        rm -f server.csr
        chmod 0600 server.key ca.key   # Samba refuses a key file readable by others
        chmod 0644 ca.pem server.pem
    ) >"$log" 2>&1 || { log_tail "$log"; rm -rf "$TLS_DIR"; die "certificate generation failed"; }
}

# ---------------------------------------------------------------------------------------------
# Provisioning (once) and the pristine copy
# ---------------------------------------------------------------------------------------------

write_smb_conf() {
    local d=$WORK_DIR
    mkdir -p "$d/etc" "$d/private" "$d/lock" "$d/state" "$d/cache" "$d/bind-dns" \
             "$d/run" "$d/run/ncalrpc" "$d/run/winbindd" "$d/run/ntp_signd" "$LOG_DIR"
    cat >"$SMB_CONF" <<EOF
# Written by scripts/ad-test-server.sh — throwaway test domain on loopback. Do not edit:
# it is part of the pristine copy and restored on every start.
[global]
	netbios name = DC1
	realm = $REALM
	workgroup = $DOMAIN
	server role = active directory domain controller
	server services = ldap, cldap
	interfaces = lo
	bind interfaces only = yes
	idmap_ldb:use rfc2307 = yes

	private dir = $d/private
	lock directory = $d/lock
	state directory = $d/state
	cache directory = $d/cache
	binddns dir = $d/bind-dns
	pid directory = $d/run
	ncalrpc dir = $d/run/ncalrpc
	winbindd socket directory = $d/run/winbindd
	ntp signd socket directory = $d/run/ntp_signd
	log file = $LOG_DIR/samba.%m.log
	log level = 1

	tls enabled = yes
	tls keyfile = $TLS_DIR/server.key
	tls certfile = $TLS_DIR/server.pem
	tls cafile = $CA_FILE

	# Tests only: no fsync (~3x faster writes) and simple binds allowed on plain ldap://.
	ldb:nosync = true
	ldap server require strong auth = no

[sysvol]
	path = $d/state/sysvol
	read only = No

[netlogon]
	path = $d/state/sysvol/${REALM,,}/scripts
	read only = No
EOF
}

provision_once() {
    if [[ -f $PRISTINE_MARK ]]; then
        return 0
    fi
    local t0 log="$LOG_DIR/provision.log" password
    t0=$(now_ms)
    password="${AUTOPROV_AD_ADMIN_PASSWORD:-$DEFAULT_ADMIN_PASSWORD}"

    say "provisioning throwaway domain $REALM into $PRISTINE_DIR (once; log: $log)"
    rm -rf "$PRISTINE_DIR" "$PRISTINE_DIR.tmp" "$WORK_DIR"
    mkdir -p "$WORK_DIR"
    # An EMPTY config file: otherwise samba-tool reads the distribution's /etc/samba/smb.conf.
    : >"$STATE_DIR/empty.conf"

    local rc=0
    {
        samba-tool domain provision \
            --configfile="$STATE_DIR/empty.conf" \
            --targetdir="$WORK_DIR" \
            --realm="$REALM" --domain="$DOMAIN" \
            --server-role=dc --dns-backend=NONE --use-rfc2307 \
            --host-name="$HOST_NAME" --host-ip="$HOST_IP" \
            --adminpass="$password"
    } >"$log" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        log_tail "$log"
        rm -rf "$WORK_DIR"
        die "samba-tool domain provision failed (exit $rc)"
    fi

    write_smb_conf

    # Relax the password policy offline so tests can set and change passwords freely.
    # Complexity stays on (as on a real AD), minimum length stays 7.
    rc=0
    samba-tool domain passwordsettings set \
        --configfile="$SMB_CONF" -H "$WORK_DIR/private/sam.ldb" \
        --min-pwd-age=0 --history-length=0 >>"$log" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        log_tail "$log"
        rm -rf "$WORK_DIR"
        die "relaxing the password policy failed (exit $rc)"
    fi

    printf '%s\n' "$password" >"$PASSWORD_FILE"
    chmod 0600 "$PASSWORD_FILE"

    cp -a "$WORK_DIR" "$PRISTINE_DIR.tmp"
    touch "$PRISTINE_DIR.tmp/$(basename "$PRISTINE_MARK")"
    mv "$PRISTINE_DIR.tmp" "$PRISTINE_DIR"
    say "provisioned in $(elapsed "$t0")"
}

restore_pristine() {
    [[ -f $PRISTINE_MARK ]] || die "no pristine domain in $PRISTINE_DIR (run start first)"
    rm -rf "$WORK_DIR"
    cp -a "$PRISTINE_DIR" "$WORK_DIR"
    rm -f "$WORK_DIR/$(basename "$PRISTINE_MARK")"
}

# ---------------------------------------------------------------------------------------------
# Process handling: only ever the PID in our pidfile
# ---------------------------------------------------------------------------------------------

# Does PID exist and is it not a zombie?
pid_alive() {
    local stat rest
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    rest=${stat##*) }
    [[ ${rest:0:1} != Z ]]
}

# Is PID a live samba process?
is_samba_pid() {
    local pid=$1 exe
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    exe=${exe% (deleted)}
    [[ ${exe##*/} == samba ]]
}

# Prints the PID of our running samba (its root process), or fails.
running_pid() {
    local pid
    [[ -f $PID_FILE ]] || return 1
    pid=$(<"$PID_FILE")
    if is_samba_pid "$pid"; then
        printf '%s\n' "$pid"
        return 0
    fi
    return 1   # the pidfile stays: stop_samba cleans up what the dead root may have left
}

# Lists "port" for each AD port something is listening on (IPv4 or IPv6), from /proc.
bound_ports() {
    local port hex
    for port in "${AD_PORTS[@]}"; do
        printf -v hex '%04X' "$port"
        if awk -v p=":$hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { f = 1 }
                             END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
            printf '%s\n' "$port"
        fi
    done
}

ldap_rootdse() {  # url [extra ldapsearch args...]
    local url=$1; shift
    LDAPTLS_CACERT="$CA_FILE" LDAPTLS_REQCERT=demand \
        timeout 10 ldapsearch -H "$url" -x -o nettimeout=5 -LLL -b "" -s base "$@" \
        dnsHostName defaultNamingContext
}

admin_password() {
    if [[ -s $PASSWORD_FILE ]]; then
        head -n 1 "$PASSWORD_FILE"
    else
        printf '%s\n' "${AUTOPROV_AD_ADMIN_PASSWORD:-$DEFAULT_ADMIN_PASSWORD}"
    fi
}

# Called when our pidfile shows nothing running: any listener on the AD ports is not ours.
check_ports_free() {
    local busy pid
    mapfile -t busy < <(bound_ports)
    [[ ${#busy[@]} -eq 0 ]] && return 0
    say "port(s) ${busy[*]} already in use by something that is not our (pidfile-tracked) Samba:"
    if command -v ss >/dev/null; then
        ss -ltnp 2>/dev/null | grep -E ':(389|636|3268|3269)\b' | sed "s/^/$PROG:   /" >&2 || true
    fi
    # Samba's own pid file: a Samba from this state dir whose pidfile (ours) was lost?
    pid=$(cat "$WORK_DIR/run/samba.pid" 2>/dev/null || true)
    pid=${pid//[^0-9]/}
    if [[ -n $pid ]] && is_samba_pid "$pid"; then
        say "hint: samba pid $pid looks like one started from $STATE_DIR whose pidfile" \
            "$PID_FILE was lost; stop it with: kill $pid"
    fi
    die "cannot start the test AD: stop whatever holds port 636/389 first"
}

start_samba() {
    mkdir -p "$LOG_DIR"
    [[ -f $SAMBA_LOG ]] && mv -f "$SAMBA_LOG" "$SAMBA_LOG.old"
    local t0 pid
    t0=$(now_ms)
    # Foreground (-F) under setsid: the PID is samba's root process and leads its own process
    # group, so stop can signal exactly this tree.
    # The lock fd must not be inherited: samba would hold the lock for its whole life.
    setsid samba -F --debug-stdout -s "$SMB_CONF" </dev/null >"$SAMBA_LOG" 2>&1 {LOCK_FD}>&- &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"

    local deadline=$(( $(date +%s) + START_TIMEOUT ))
    while :; do
        if ! pid_alive "$pid"; then
            log_tail "$SAMBA_LOG"
            stop_samba 1   # its children may outlive it (seen: the ldap pre-fork master)
            die "samba exited during startup (log: $SAMBA_LOG)"
        fi
        if ldap_rootdse "$LDAPS_URL" >/dev/null 2>&1; then
            break
        fi
        if (( $(date +%s) >= deadline )); then
            log_tail "$SAMBA_LOG"
            say "samba (pid $pid) did not answer on $LDAPS_URL within ${START_TIMEOUT}s; stopping it"
            stop_samba || true
            exit 1
        fi
        sleep 0.2
    done
    say "samba (pid $pid) answers on $LDAPS_URL after $(elapsed "$t0")"
}

check_admin_bind() {
    local out rc=0
    out=$(ldap_rootdse "$LDAPS_URL" -D "Administrator@$REALM" -w "$(admin_password)" 2>&1) || rc=$?
    if [[ $rc -ne 0 ]]; then
        printf '%s\n' "$out" | sed "s/^/$PROG:   /" >&2
        die "Administrator bind over LDAPS failed (ldapsearch exit $rc)"
    fi
}

# PIDs of the live samba processes in process group $1. Our samba is started under setsid, so
# its root PID is also its process group ID; children that outlive the root stay in that group.
SAMBA_BIN=
samba_group_pids() {
    local pgid=$1 f stat rest grp p
    [[ -n $SAMBA_BIN ]] || SAMBA_BIN=$(command -v samba 2>/dev/null || true)
    for f in /proc/[0-9]*/stat; do
        read -r stat 2>/dev/null <"$f" || continue
        rest=${stat##*) }           # the fields after "pid (comm) "
        read -r _ _ grp _ <<<"$rest"  # state ppid pgrp ...
        [[ $grp == "$pgid" ]] || continue
        p=${f#/proc/}
        p=${p%/stat}
        # Fast builtin check first (no fork); zombies have no exe and count as gone.
        if [[ -n $SAMBA_BIN && /proc/$p/exe -ef $SAMBA_BIN ]] || is_samba_pid "$p"; then
            printf '%s\n' "$p"
        fi
    done
}

# Stop the samba recorded in our pidfile, and anything it left in its process group.
# Signals only samba processes of that group; never by name. $1=1: no "not running" message.
stop_samba() {
    local quiet=${1:-0} pid members
    pid=$(cat "$PID_FILE" 2>/dev/null || true)
    pid=${pid//[^0-9]/}
    members=()
    [[ -n $pid ]] && mapfile -t members < <(samba_group_pids "$pid")
    if [[ ${#members[@]} -eq 0 ]]; then
        [[ $quiet -eq 1 ]] || say "not running"
        rm -f "$PID_FILE"
        return 0
    fi
    if is_samba_pid "$pid"; then
        say "stopping samba (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
    else
        say "samba (pid $pid) is gone but left ${#members[@]} process(es) behind: ${members[*]}; stopping them"
        kill -TERM "${members[@]}" 2>/dev/null || true
    fi
    local deadline=$(( SECONDS + STOP_TIMEOUT ))
    while (( SECONDS < deadline )); do
        mapfile -t members < <(samba_group_pids "$pid")
        if [[ ${#members[@]} -eq 0 ]]; then
            rm -f "$PID_FILE"
            say "stopped"
            return 0
        fi
        sleep 0.1
    done
    say "still there after ${STOP_TIMEOUT}s: ${members[*]}; sending SIGKILL"
    kill -KILL "${members[@]}" 2>/dev/null || true
    deadline=$(( SECONDS + 5 ))
    while (( SECONDS < deadline )); do
        mapfile -t members < <(samba_group_pids "$pid")
        [[ ${#members[@]} -gt 0 ]] || break
        sleep 0.1
    done
    if [[ ${#members[@]} -gt 0 ]]; then
        die "could not kill samba process(es) ${members[*]}"
    fi
    rm -f "$PID_FILE"
    say "killed"
}

# ---------------------------------------------------------------------------------------------
# Env file
# ---------------------------------------------------------------------------------------------

shq() {  # single-quote for a shell
    local s=${1//\'/\'\\\'\'}
    printf "'%s'" "$s"
}

write_env() {
    local tmp="$ENV_FILE.tmp"
    {
        # shellcheck disable=SC2016  # literal text
        printf '# Written by scripts/ad-test-server.sh: source it, or eval "$(scripts/ad-test-server.sh env)".\n'
        printf '# Throwaway Samba AD on loopback; the password is a fixed public test value.\n'
        printf 'export AUTOPROV_AD_URL=%s\n' "$(shq "$LDAPS_URL")"
        printf 'export AUTOPROV_AD_PLAIN_URL=%s\n' "$(shq "$LDAP_URL")"
        printf 'export AUTOPROV_AD_STARTTLS_URL=%s\n' "$(shq "$LDAP_URL")"
        printf 'export AUTOPROV_AD_BASE_DN=%s\n' "$(shq "$BASE_DN")"
        printf 'export AUTOPROV_AD_BIND_DN=%s\n' "$(shq "Administrator@$REALM")"
        printf 'export AUTOPROV_AD_BIND_DN_FULL=%s\n' "$(shq "CN=Administrator,CN=Users,$BASE_DN")"
        printf 'export AUTOPROV_AD_PASSWORD=%s\n' "$(shq "$(admin_password)")"
        printf 'export AUTOPROV_AD_CA_FILE=%s\n' "$(shq "$CA_FILE")"
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

    if [[ $fresh -eq 0 ]] && pid=$(running_pid); then
        say "already running (pid $pid); re-using it (use 'reset' for a clean domain)"
        if ! ldap_rootdse "$LDAPS_URL" >/dev/null 2>&1; then
            log_tail "$SAMBA_LOG"
            die "samba (pid $pid) runs but does not answer on $LDAPS_URL; try 'reset'"
        fi
    else
        # reset: stop ours; start: clean up anything a dead samba of ours left behind.
        stop_samba 1
        install_packages
        make_tls
        provision_once
        check_ports_free
        local t0
        t0=$(now_ms)
        if [[ ${AUTOPROV_AD_KEEP_DATA:-0} == 1 && $fresh -eq 0 && -d $WORK_DIR ]]; then
            # An outage test stops the server and starts it again: the directory keeps what
            # it held, as a real domain controller does after a restart.
            say "keeping the domain's data (AUTOPROV_AD_KEEP_DATA=1)"
        else
            restore_pristine
            say "restored clean domain from pristine copy in $(elapsed "$t0")"
        fi
        start_samba
    fi
    check_admin_bind
    write_env
    say "ready; env file: $ENV_FILE"
    cat "$ENV_FILE"
}

cmd_stop() {
    need_root
    take_lock
    stop_samba
}

cmd_status() {
    local pid
    if ! pid=$(running_pid); then
        say "not running"
        return 3
    fi
    if ldap_rootdse "$LDAPS_URL" >/dev/null 2>&1; then
        say "running (pid $pid), answering on $LDAPS_URL; env file: $ENV_FILE"
        return 0
    fi
    say "running (pid $pid) but NOT answering on $LDAPS_URL (log: $SAMBA_LOG)"
    return 1
}

cmd_env() {
    [[ -f $ENV_FILE ]] || die "no env file at $ENV_FILE (run start first)"
    running_pid >/dev/null || say "warning: the test AD is not running (run start)"
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
