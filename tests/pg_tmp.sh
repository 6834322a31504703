#!/bin/sh
# A throwaway PostgreSQL server for the tests.
#
#   tests/pg_tmp.sh start DIR     create a cluster in DIR, start it, create the
#                                 database valet_test, print its libpq URL
#   tests/pg_tmp.sh restart DIR [SECONDS]
#                                 restart it (fast shutdown, same port); with
#                                 SECONDS, it stays down that long (an outage)
#   tests/pg_tmp.sh stop DIR      stop it (fast shutdown) and remove DIR
#   tests/pg_tmp.sh url DIR       print the URL again
#   tests/pg_tmp.sh check         exit 0 when the server programs are found
#
# Theory of operation: initdb makes a cluster in DIR/data with trust
# authentication. The server listens on no TCP address at all, only on a
# unix socket in DIR itself, so the "port" just names the socket file
# (DIR/.s.PGSQL.PORT); one is still picked at random among ports no TCP
# listener uses, and kept in postgresql.conf so that a restart keeps it.
# Durability is switched off (fsync, full_page_writes, synchronous_commit)
# because the data is thrown away, unless PG_TMP_DURABLE=1 (the benchmark:
# PostgreSQL's defaults, every commit flushed to disk); max_connections is high because tests
# start many daemons, each with its own pool. The server logs to
# DIR/postgres.log. initdb and pg_ctl refuse to run as root, so as root the
# cluster belongs to the `postgres` user the server package creates (DIR is
# chowned to it, mode 0755, so that root's daemons and psql can reach the
# socket); otherwise it belongs to the caller. The URL names that user:
#   postgresql:///valet_test?host=DIR&port=PORT&user=USER
# A marker file, DIR/pg_tmp.env, is what lets `stop` remove DIR: it never
# removes a directory this script did not set up.
#
# Programs come from `pg_config --bindir`, then /usr/lib/postgresql/*/bin
# (Debian), /usr/pgsql-*/bin (PGDG RPMs), then PATH. PG_BINDIR overrides.
# Exit status: 0, 1 when something failed (with a message on stderr), 2 on
# a usage error.
set -eu

PROG=pg_tmp.sh
DB=valet_test
START_TIMEOUT=60

die() {
	echo "$PROG: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 start|restart|stop|url DIR" >&2
	echo "       $0 restart DIR SECONDS" >&2
	echo "       $0 check" >&2
	exit 2
}

# Settings in the environment that would beat our command-line options.
unset PGDATA PGHOSTADDR PGSERVICE PGSERVICEFILE PGOPTIONS PGSYSCONFDIR 2>/dev/null || true

# --- finding the programs ----------------------------------------------------
has_server() {
	[ -x "$1/initdb" ] && [ -x "$1/pg_ctl" ] && [ -x "$1/postgres" ]
}

find_bindir() {
	if [ -n "${PG_BINDIR:-}" ]; then
		has_server "$PG_BINDIR" && { echo "$PG_BINDIR"; return 0; }
		return 1
	fi
	d=$(pg_config --bindir 2>/dev/null || true)
	if [ -n "$d" ] && has_server "$d"; then
		echo "$d"
		return 0
	fi
	# Newest version first; unmatched globs stay as they are and fail has_server.
	for d in $(printf '%s\n' /usr/lib/postgresql/*/bin /usr/pgsql-*/bin | sort -V -r); do
		has_server "$d" && { echo "$d"; return 0; }
	done
	p=$(command -v initdb 2>/dev/null || true)
	if [ -n "$p" ]; then
		# /usr/local/bin/initdb may be a symlink into the real bindir.
		d=$(dirname "$(readlink -f "$p")")
		has_server "$d" && { echo "$d"; return 0; }
	fi
	return 1
}

# psql and pg_isready: the server's bindir first (same version), then PATH.
find_client() {
	if [ -x "$BINDIR/$1" ]; then
		echo "$BINDIR/$1"
	elif command -v "$1" >/dev/null 2>&1; then
		command -v "$1"
	else
		return 1
	fi
}

setup_programs() {
	BINDIR=$(find_bindir) || die "no PostgreSQL server found (initdb, pg_ctl, postgres: \
looked in \`pg_config --bindir\`, /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin and PATH); \
install it with packaging/deps.sh --test"
	PSQL=$(find_client psql) || die "psql not found; install the PostgreSQL client"
	PG_ISREADY=$(find_client pg_isready) || die "pg_isready not found; install the PostgreSQL client"
}

# --- who owns the cluster ----------------------------------------------------
setup_owner() {
	if [ "$(id -u)" = 0 ]; then
		OWNER=postgres
		id -u "$OWNER" >/dev/null 2>&1 ||
			die "running as root, but there is no \`postgres\` user to own the cluster \
(the PostgreSQL server package creates it)"
		if command -v runuser >/dev/null 2>&1; then
			AS_OWNER="runuser -u $OWNER --"
		elif command -v setpriv >/dev/null 2>&1; then
			AS_OWNER="setpriv --reuid=$OWNER --regid=$OWNER --init-groups --"
		else
			die "running as root, but neither runuser nor setpriv is there to switch to $OWNER"
		fi
	else
		OWNER=$(id -un)
		AS_OWNER=""
	fi
}

# Run a command as the cluster's owner, from a directory it can enter.
as_owner() {
	(cd / && $AS_OWNER "$@")
}

check_programs() {
	setup_programs
	setup_owner
	echo "$BINDIR"
}

# --- the cluster directory ---------------------------------------------------
set_dir() {
	case "$1" in
	/*) DIR=$1 ;;
	*) DIR=$(pwd)/$1 ;;
	esac
	DIR=${DIR%/}
	# The URL carries DIR unencoded, and postgresql.conf quotes it.
	case "$DIR" in
	*[!A-Za-z0-9/._-]*) die "$DIR: use a directory name of letters, digits, / . _ - only" ;;
	esac
	# sun_path holds 107 bytes: DIR + "/.s.PGSQL.NNNNN".
	[ ${#DIR} -le 90 ] || die "$DIR: too long for a unix socket path (90 characters at most)"
	DATA=$DIR/data
	LOG=$DIR/postgres.log
	MARK=$DIR/pg_tmp.env
}

# Reads PORT and OWNER_NAME that `start` wrote.
load_mark() {
	[ -f "$MARK" ] || die "$DIR: not a cluster made by $PROG (no $MARK)"
	PORT=$(sed -n 's/^port=\([0-9][0-9]*\)$/\1/p' "$MARK")
	OWNER_NAME=$(sed -n 's/^user=\([A-Za-z0-9._-]*\)$/\1/p' "$MARK")
	if [ -z "$PORT" ] || [ -z "$OWNER_NAME" ]; then
		die "$MARK: damaged"
	fi
}

url() {
	echo "postgresql:///$DB?host=$DIR&port=$PORT&user=$OWNER_NAME"
}

# True when some TCP socket listens on port $1 (IPv4 or IPv6).
tcp_port_used() {
	hex=$(printf '%04X' "$1")
	cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
		awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 }
			END { exit !found }'
}

pick_port() {
	i=0
	while [ $i -lt 50 ]; do
		n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
		port=$((20000 + n % 40000))
		if ! tcp_port_used "$port" && [ ! -e "$DIR/.s.PGSQL.$port" ]; then
			echo "$port"
			return 0
		fi
		i=$((i + 1))
	done
	die "found no free port"
}

wait_ready() {
	i=0
	while [ $i -lt $((START_TIMEOUT * 10)) ]; do
		if "$PG_ISREADY" -q -h "$DIR" -p "$PORT" -d postgres -U "$OWNER_NAME" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

log_tail() {
	if [ -f "$1" ]; then
		echo "--- last lines of $1 ---" >&2
		tail -n 25 "$1" >&2
		echo "--- end ---" >&2
	fi
}

server_pid() {
	if [ -f "$DATA/postmaster.pid" ]; then
		head -n 1 "$DATA/postmaster.pid" 2>/dev/null || true
	fi
}

# --- commands ----------------------------------------------------------------
cmd_start() {
	setup_programs
	setup_owner
	OWNER_NAME=$OWNER
	created=0
	if [ -e "$DIR" ]; then
		[ -d "$DIR" ] || die "$DIR exists and is not a directory"
		[ -z "$(ls -A "$DIR")" ] || die "$DIR is not empty (a running cluster? stop it first)"
	else
		mkdir -p "$DIR" || die "cannot create $DIR"
		created=1
	fi
	chmod 0755 "$DIR"
	if [ -n "$AS_OWNER" ]; then
		chown "$OWNER:" "$DIR"
		as_owner test -w "$DIR" -a -x "$DIR" ||
			{ [ $created = 0 ] || rmdir "$DIR"; die "$DIR: not reachable by user $OWNER \
(is a parent directory private? use a directory under /tmp)"; }
	fi
	PORT=$(pick_port)
	printf 'port=%s\nuser=%s\n' "$PORT" "$OWNER_NAME" >"$MARK"

	if ! as_owner "$BINDIR/initdb" -D "$DATA" -U "$OWNER_NAME" -A trust -E UTF8 \
		--locale=C -N >"$DIR/initdb.log" 2>&1; then
		log_tail "$DIR/initdb.log"
		start_failed "initdb failed"
	fi
	if [ "${PG_TMP_DURABLE:-0}" = 1 ]; then
		DURABILITY='fsync = on
full_page_writes = on
synchronous_commit = on'
	else
		DURABILITY='fsync = off
full_page_writes = off
synchronous_commit = off'
	fi
	cat >>"$DATA/postgresql.conf" <<EOF

# tests/pg_tmp.sh: a throwaway server for tests
listen_addresses = ''
unix_socket_directories = '$DIR'
port = $PORT
$DURABILITY
max_connections = 200
shared_buffers = 32MB
max_parallel_workers_per_gather = 0
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
EOF
	if ! as_owner "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -w -t "$START_TIMEOUT" start \
		>"$DIR/pg_ctl.log" 2>&1; then
		cat "$DIR/pg_ctl.log" >&2
		log_tail "$LOG"
		start_failed "the server did not start"
	fi
	wait_ready || { log_tail "$LOG"; start_failed "the server does not accept connections"; }
	if ! "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U "$OWNER_NAME" -d postgres \
		-c "CREATE DATABASE $DB" >"$DIR/createdb.log" 2>&1; then
		cat "$DIR/createdb.log" >&2
		start_failed "could not create the database $DB"
	fi
	url
}

# Undo a half-done start: stop the server if it runs, remove what we made.
start_failed() {
	pid=$(server_pid)
	if [ -n "$pid" ]; then
		as_owner "$BINDIR/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	if [ $created = 1 ]; then
		rm -rf "$DIR"
	else
		rm -rf "${DIR:?}"/* "${DIR:?}"/.[!.]* 2>/dev/null || true
	fi
	die "cannot start a test server in $DIR: $1"
}

cmd_restart() {
	load_mark
	setup_programs
	setup_owner
	if [ -n "${DOWN:-}" ]; then
		if ! as_owner "$BINDIR/pg_ctl" -D "$DATA" -m fast -w -t "$START_TIMEOUT" \
			stop >>"$DIR/pg_ctl.log" 2>&1; then
			tail -n 5 "$DIR/pg_ctl.log" >&2
			die "stop (for a restart) failed in $DIR"
		fi
		sleep "$DOWN"
		set -- start
	else
		set -- restart
	fi
	if ! as_owner "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -m fast -w -t "$START_TIMEOUT" \
		"$1" >>"$DIR/pg_ctl.log" 2>&1; then
		tail -n 5 "$DIR/pg_ctl.log" >&2
		log_tail "$LOG"
		die "restart failed in $DIR"
	fi
	wait_ready || { log_tail "$LOG"; die "the server in $DIR does not accept connections \
after the restart"; }
}

cmd_stop() {
	if [ ! -e "$DIR" ]; then
		echo "$PROG: $DIR does not exist; nothing to stop" >&2
		return 0
	fi
	load_mark
	setup_owner
	pid=$(server_pid)
	if [ -n "$pid" ]; then
		setup_programs
		if ! as_owner "$BINDIR/pg_ctl" -D "$DATA" -m fast -w -t 30 stop \
			>>"$DIR/pg_ctl.log" 2>&1; then
			echo "$PROG: fast shutdown failed, trying immediate" >&2
			as_owner "$BINDIR/pg_ctl" -D "$DATA" -m immediate -w -t 10 stop \
				>>"$DIR/pg_ctl.log" 2>&1 || true
		fi
		# Still there? Kill it if postmaster.pid still names this cluster.
		if [ -f "$DATA/postmaster.pid" ] && kill -0 "$pid" 2>/dev/null &&
			[ "$(sed -n 2p "$DATA/postmaster.pid")" = "$DATA" ]; then
			echo "$PROG: killing postmaster $pid" >&2
			kill -KILL "$pid" 2>/dev/null || true
			sleep 0.5
		fi
	fi
	rm -rf "$DIR" || die "cannot remove $DIR"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
check)
	[ $# -eq 0 ] || usage
	check_programs
	;;
start|restart|stop|url)
	if [ $# -eq 2 ] && [ "$cmd" = restart ]; then
		case $2 in
		''|*[!0-9.]*) usage ;;
		esac
		DOWN=$2
		set -- "$1"
	fi
	if [ $# -ne 1 ] || [ -z "$1" ]; then
		usage
	fi
	set_dir "$1"
	case "$cmd" in
	start) cmd_start ;;
	restart) cmd_restart ;;
	stop) cmd_stop ;;
	url) load_mark; url ;;
	esac
	;;
-h|--help)
	usage
	;;
*)
	usage
	;;
esac
