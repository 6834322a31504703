#!/bin/bash
# test-packages.sh - build valet's packages and test them for real (as root,
# on Debian or Ubuntu): build the .debs (make deb), run lintian on them,
# install them with apt-get, check what they installed (user, permissions,
# unit, config), run the installed valetd (started directly: this must work
# where systemd is not PID 1, as in CI containers), submit jobs over HTTP,
# use the installed valet client against it, build a plugin and a program
# against libvalet-dev and run them, purge the
# packages and check what is left; then build the .rpms (make rpm) and check
# their file lists, requirements and scriptlets.
#
# Every check prints one line ("ok   ..." or "FAIL ..." with details); the
# last line is a plain "N passed, M failed" and the exit status is non-zero
# when anything failed. Safe to run again: it purges leftovers of an earlier
# run first, and purges the packages again when it ends (KEEP=1 leaves them
# installed, to look around after a failure).
#
# Environment: BUILD (default build), KEEP.
set -u

cd "$(dirname "$0")/.." || exit 2
BUILD=${BUILD:-build}
KEEP=${KEEP:-0}
PKGS="valetd valet-client libvalet0 libvalet-dev"
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" != 0 ]; then
	echo "test-packages.sh: must run as root (it installs and purges packages)" >&2
	exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "test-packages.sh: needs apt-get (Debian or Ubuntu)" >&2
	exit 2
fi

VERSION=$(sed -n 's/^VERSION := //p' Makefile)
passed=0
failed=0
pids=""
# Not under /tmp, which jobs see only in part (every job has its own /tmp):
# the exec tasks below run scripts from here.
tmp=$(mktemp -d /var/tmp/valet-pkgtest.XXXXXX) || exit 2
delegated=""
log=$tmp/check.log

# installed PKG...: all of them are installed.
installed() {
	[ "$(dpkg-query -W -f='${Status}\n' "$@" 2>/dev/null | grep -c "ok installed")" = $# ]
}

purge() {
	local p present=""
	for p in $PKGS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv "not-installed" &&
			present="$present $p"
	done
	[ -z "$present" ] || apt-get purge -y -qq $present >"$tmp/purge.log" 2>&1
}

cleanup() {
	local pid
	for pid in $pids; do
		kill -KILL "$pid" 2>/dev/null
	done
	undelegate
	[ "$KEEP" = 1 ] || purge
	rm -rf "$tmp"
}
trap cleanup EXIT

ok() {
	echo "ok   $*"
	passed=$((passed + 1))
}

fail() {
	echo "FAIL $*"
	failed=$((failed + 1))
}

# check DESCRIPTION COMMAND...: run COMMAND, ok when it exits 0; on failure
# show the end of its output.
check() {
	local desc=$1
	shift
	if "$@" >"$log" 2>&1; then
		ok "$desc"
	else
		fail "$desc"
		tail -n 25 "$log" | sed 's/^/     | /'
	fi
}

# The end of the run: the summary line, and the exit status.
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
	exit $?
}

# A step without which the rest cannot run.
fatal() {
	fail "$*"
	finish
}

# json FILE EXPR: print EXPR (Python, over the document "d") of a JSON file.
json() {
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# --- the valetd helpers ------------------------------------------------------

# service_caps [KEY]: the installed unit's AmbientCapabilities= (or KEY=) as setpriv wants
# them ("+setuid,+setgid,...").
service_caps() {
	sed -n "s/^${1:-AmbientCapabilities}=//p" /lib/systemd/system/valetd.service |
		tr ' ' '\n' | sed -n 's/^CAP_\(.*\)/+\1/p' | tr 'A-Z' 'a-z' | paste -sd, -
}

# delegate: what systemd does for valetd.service with Delegate=yes (systemd
# is not PID 1 here): a cgroup owned by user valet in each hierarchy valetd
# uses - cgroup2, and on a host with cgroup v1 controllers (like this VM)
# the memory and pids hierarchies, under this shell's own cgroups. Sets
# $delegated to their directories.
delegate() {
	local line ctrl path mnt dir
	[ -n "$delegated" ] && return 0
	while IFS=: read -r _ ctrl path; do
		case $ctrl in
		"") mnt=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo) ;;
		memory | pids) mnt=/sys/fs/cgroup/$ctrl ;;
		*) continue ;;
		esac
		[ -n "$mnt" ] && [ -d "$mnt$path" ] || continue
		dir=$mnt${path%/}/valet-pkgtest.$$
		mkdir -p "$dir" && chown valet:valet "$dir" "$dir/cgroup.procs" || return 1
		[ ! -e "$dir/cgroup.subtree_control" ] || chown valet:valet "$dir/cgroup.subtree_control"
		delegated="$delegated $dir"
	done </proc/self/cgroup
	[ -n "$delegated" ]
}

undelegate() {
	local dir
	for dir in $delegated; do
		rmdir "$dir" 2>/dev/null
	done
}

# start_valetd NAME ARGS...: start the installed valetd on a free port
# (-l 127.0.0.1:0) as valetd.service would (systemd is not PID 1 here): as
# the unit's User=valet with the unit's ambient capabilities, in cgroups
# delegated to it. Wait for its "listening on" line, set $url and $vpid.
# start_valetd NAME ARGS...: valetd (or $PROG: a program of its own that
# runs it) as the unit would, with its log in $tmp/NAME.log; sets $vpid, $url.
start_valetd() {
	local name=$1 addr caps bset
	shift
	caps=$(service_caps)
	bset=$(service_caps CapabilityBoundingSet)
	[ -n "$caps" ] || { echo "no AmbientCapabilities= in the installed unit"; return 1; }
	[ -n "$bset" ] || { echo "no CapabilityBoundingSet= in the installed unit"; return 1; }
	delegate || { echo "cannot delegate cgroups to user valet"; return 1; }
	chmod 755 "$tmp"
	# shellcheck disable=SC2016 # $$ and $d expand in the inner shell
	sh -c 'for d in $0; do echo $$ >"$d/cgroup.procs" || exit 1; done; exec "$@"' \
		"$delegated" \
		setpriv --reuid=valet --regid=valet --init-groups --inh-caps="$caps" --ambient-caps="$caps" \
		--bounding-set="-all,$bset" --no-new-privs \
		"${PROG:-/usr/sbin/valetd}" "$@" -l 127.0.0.1:0 -w 2 </dev/null >"$tmp/$name.log" 2>&1 &
	vpid=$!
	pids="$pids $vpid"
	for _ in $(seq 100); do
		addr=$(sed -n 's|.*listening on http://\([^ "]*\).*|\1|p' "$tmp/$name.log" | head -n 1)
		[ -n "$addr" ] && break
		kill -0 "$vpid" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$addr" ]; then
		echo "valetd did not start:"
		cat "$tmp/$name.log"
		return 1
	fi
	url=http://$addr
	echo "valetd pid $vpid at $url"
}

# stop_valetd: SIGTERM, then the exit status must be 0.
stop_valetd() {
	local rc
	kill -TERM "$vpid" || return 1
	wait "$vpid"
	rc=$?
	pids=$(echo "$pids" | sed "s/ $vpid\b//")
	[ "$rc" = 0 ] || { echo "valetd exited with status $rc"; return 1; }
}

# run_job NAME BODY: POST the job, wait until it is finished, leave the job
# in $tmp/NAME.job and its result in $tmp/NAME.result; fails unless the
# job COMPLETED.
run_job() {
	local name=$1 body=$2 id status
	curl -fsS -X POST -d "$body" "$url/api/jobs" >"$tmp/$name.job" || return 1
	id=$(json "$tmp/$name.job" 'd["id"]') || return 1
	for _ in $(seq 100); do
		curl -fsS "$url/api/jobs/$id" >"$tmp/$name.job" || return 1
		status=$(json "$tmp/$name.job" 'd["status"]')
		case "$status" in
		COMPLETED | FAILED | CANCELLED) break ;;
		esac
		sleep 0.1
	done
	curl -fsS "$url/api/jobs/$id/results" >"$tmp/$name.result" || return 1
	cat "$tmp/$name.job" "$tmp/$name.result"
	echo
	[ "$status" = COMPLETED ]
}

# --- checks ------------------------------------------------------------------

check_conf_perms() {
	local got
	got=$(stat -c '%a %U %G' /etc/valet/valetd.conf) || return 1
	echo "$got"
	[ "$got" = "640 root valet" ]
}

check_user() {
	local ent uid home
	getent group valet || return 1
	ent=$(getent passwd valet) || return 1
	echo "$ent"
	uid=$(echo "$ent" | cut -d: -f3)
	home=$(echo "$ent" | cut -d: -f6)
	[ "$uid" -lt 1000 ] && [ "$home" = /var/lib/valet ]
}

check_state_dir() {
	local got
	got=$(stat -c '%U %G' /var/lib/valet) || return 1
	echo "$got"
	[ "$got" = "valet valet" ]
}

check_version() {
	local out
	out=$(/usr/sbin/valetd -V) || return 1
	echo "$out"
	[ "$out" = "valetd $VERSION" ]
}

# The unit pings a watchdog and lets valetd's per-job and per-request lines
# through journald's rate limit (README, "Logging").
check_unit_logging() {
	local f=/lib/systemd/system/valetd.service
	grep -x 'WatchdogSec=30s' "$f" && grep -x 'LogRateLimitIntervalSec=30s' "$f" &&
		grep -x 'LogRateLimitBurst=200000' "$f"
}

check_unit() {
	# The unit's ExecStart, man pages (Documentation=) and targets must be
	# there; systemd need not be running.
	systemd-analyze verify /lib/systemd/system/valetd.service
}

# Every key of packaging/valetd.conf has its paragraph in valetd.conf(5).
check_man_keys() {
	local key missing=""
	for key in $(sed -n 's/^#\{0,1\}\([a-z_]*\) =.*/\1/p' packaging/valetd.conf | sort -u); do
		grep -q "^\.BR $key " packaging/man/valetd.conf.5 || missing="$missing $key"
	done
	[ -z "$missing" ] || { echo "not in packaging/man/valetd.conf.5:$missing"; return 1; }
}

# The Grafana files under /usr/share/valet/grafana, as the repository has
# them; the dashboard provider points at the installed dashboards.
check_grafana_files() {
	local f g=/usr/share/valet/grafana
	for f in packaging/grafana/*.json; do
		cmp "$f" "$g/dashboards/${f##*/}" || return 1
	done
	for f in datasources/valet-postgres.yaml alerting/valet-postgres.yaml; do
		cmp "packaging/grafana/provisioning/$f" "$g/provisioning/$f" || return 1
	done
	grep -x "      path: $g/dashboards" "$g/provisioning/dashboards/valet.yaml" || return 1
	cmp packaging/sql/valet_reader.sql /usr/share/valet/sql/valet_reader.sql
}

check_sha256_job() {
	local want got
	run_job sha256 '{"name":"pkg","task_name":"sha256","task_params":{"data":"abc"}}' || return 1
	want=$(printf abc | sha256sum | cut -d' ' -f1)
	got=$(json "$tmp/sha256.result" 'd["metadata"]["sha256"]') || return 1
	[ "$got" = "$want" ]
}

# The sha256 job ran with full isolation, not degraded (valetd as the unit
# runs it: user valet, the unit's capabilities, delegated cgroups).
check_full_isolation() {
	local got
	curl -fsS "$url/api/jobs/$(json "$tmp/sha256.job" 'd["id"]')" >"$tmp/sha256.final" ||
		return 1
	got=$(json "$tmp/sha256.final" \
		'(",".join(d["isolation"]["namespaces"]), d["isolation"]["cgroup"] is not None, d["isolation"]["degraded"])')
	echo "$got"
	[ "$got" = "('pid,mount,ipc,uts,net', True, False)" ]
}

check_tasks_listed() {
	curl -fsS "$url/api/tasks" >"$tmp/tasks.json" || return 1
	cat "$tmp/tasks.json"
	echo
	[ "$(json "$tmp/tasks.json" '" ".join(d["tasks"])')" = "$1" ]
}

# The plugin of the README, built against the installed libvalet-dev.
build_plugin() {
	local cflags
	mkdir -p "$tmp/plugins" || return 1
	cat >"$tmp/hello.c" <<'EOF' || return 1
#include <valet.h>

static json_t *hello(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	const char *who = "world";

	(void)previous;
	if (valet_decode_params(ctx, params, "{s?s}", "who", &who) < 0)
		return NULL;
	return json_pack("{s:s+}", "greeting", "hello, ", who);
}

static int init(void)
{
	return valet_register("hello", hello);
}

VALET_PLUGIN(init)
EOF
	cflags=$(pkg-config --cflags valet) || return 1
	echo "pkg-config --cflags valet: $cflags"
	read -ra cflags <<<"$cflags"
	cc -Wall -Wextra -Werror -shared -fPIC "$tmp/hello.c" "${cflags[@]}" -o "$tmp/plugins/hello.so"
}

# A program with its own main(), linked with the shared libvalet (libvalet0).
build_program() {
	local flags
	cat >"$tmp/mytasks.c" <<'EOF' || return 1
#include <valet.h>

static json_t *add(struct valet_ctx *ctx, json_t *params, json_t *previous)
{
	json_int_t a, b;

	(void)previous;
	if (valet_decode_params(ctx, params, "{s:I, s:I}", "a", &a, "b", &b) < 0)
		return NULL;
	return json_pack("{s:I}", "sum", a + b);
}

int main(int argc, char **argv)
{
	valet_register("add", add);
	return valet_main(argc, argv);
}
EOF
	flags=$(pkg-config --cflags --libs valet) || return 1
	echo "pkg-config --cflags --libs valet: $flags"
	read -ra flags <<<"$flags"
	cc -Wall -Wextra -Werror "$tmp/mytasks.c" "${flags[@]}" -o "$tmp/mytasks" || return 1
	ldd "$tmp/mytasks" | grep -E "libvalet.so.0 => (/usr)?/lib/" || return 1
	"$tmp/mytasks" -V | grep -x "valetd $VERSION"
}

# The program's own task, run by the installed valetd with the program as
# its spawner (valet_main()).
check_add_job() {
	run_job add '{"name":"pkg","task_name":"add","task_params":{"a":2,"b":3}}' || return 1
	[ "$(json "$tmp/add.result" 'd["metadata"]["sum"]')" = 5 ] || return 1
	pgrep -a -f -- "--valet-spawner" | grep -F "$tmp/mytasks"
}

# Depends of the built valetd .deb, as dh_shlibdeps computed them from the
# ELF files: every library valetd and its spawner link.
check_shlibdeps() {
	local deps lib
	deps=$(dpkg-deb -f "$BUILD"/valetd_"$VERSION"-*_"$(dpkg --print-architecture)".deb Depends)
	echo "Depends: $deps"
	for lib in libc6 libev4 libinih1 libjansson4 libhttp-parser2.9 libgnutls30 libpq5 libseccomp2 \
		libsystemd0; do
		echo "$deps" | grep -qw "$lib" || { echo "no $lib"; return 1; }
	done
}

# valet-client's Depends: libcurl (GnuTLS flavour) and jansson, not the daemon.
check_client_deps() {
	local deps
	deps=$(dpkg-deb -f "$BUILD"/valet-client_"$VERSION"-*_"$(dpkg --print-architecture)".deb Depends)
	echo "Depends: $deps"
	echo "$deps" | grep -qw libcurl3-gnutls && echo "$deps" | grep -qw libjansson4 &&
		! echo "$deps" | grep -qw valetd
}

# The installed valet client against the installed valetd at $url: status,
# and a job submitted and followed to the end (exit status 0: COMPLETED).
check_client_status() {
	local out
	out=$(/usr/bin/valet --url "$url" status) || return 1
	echo "$out"
	[ "$(echo "$out" | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')" = "$VERSION" ]
}

check_client_job() {
	VALET_URL=$url /usr/bin/valet submit sha256 --params '{"data":"abc"}' --wait \
		>"$tmp/cli.job" || return 1
	cat "$tmp/cli.job"
	[ "$(json "$tmp/cli.job" 'd["status"]')" = COMPLETED ] || return 1
	VALET_URL=$url /usr/bin/valet --table list --task sha256 | grep -q COMPLETED
}

# The installed spawner: libc and jansson, none of the daemon's libraries.
check_spawner_libs() {
	local f=/usr/lib/valet/valet-spawner
	test -x "$f" || return 1
	ldd "$f"
	! ldd "$f" | grep -E 'lib(ev|pq|http_parser|inih|seccomp|systemd)\.so'
}

check_hello_job() {
	run_job hello '{"name":"pkg","task_name":"hello","task_params":{"who":"deb"}}' || return 1
	[ "$(json "$tmp/hello.result" 'd["metadata"]["greeting"]')" = "hello, deb" ]
}

# An exec task reports who it runs as and what capabilities it has left.
# Each worker slot's tasks run as a uid of their own, from the block valetd
# picked (uid_base = auto: 600000-699999), which the job records.
check_task_identity() {
	local uid
	run_job whoami '{"name":"pkg","task_name":"whoami"}' || return 1
	uid=$(json "$tmp/whoami.result" 'd["metadata"]') || return 1
	[ "$uid" -ge 600000 ] && [ "$uid" -le 699999 ] || return 1
	[ "$(json "$tmp/whoami.job" 'd["isolation"]["uid"]')" = "$uid" ] || return 1
	run_job caps '{"name":"pkg","task_name":"caps"}' || return 1
	[ "$(json "$tmp/caps.result" 'd["metadata"]')" = 0000000000000000 ]
}

# The daemon (user valet) kills a task (a uid of its slot) at its deadline.
check_timeout_kill() {
	run_job slow '{"name":"pkg","task_name":"sleep","task_params":{"seconds":30},"timeout":0.5}'
	[ "$(json "$tmp/slow.job" 'd["failure_reason"]')" = "timed out after 500ms (killed)" ]
}

# An exec+net task gets a network of its own (slirp4netns, as the unit's
# capabilities and devices allow): valetd's own port on the node's
# loopback is out of its reach.
check_net_job() {
	local port=${url##*:}
	run_job netcheck "{\"name\":\"pkg\",\"task_name\":\"netcheck\",\"task_params\":{\"port\":$port}}" ||
		return 1
	[ "$(json "$tmp/netcheck.result" 'd["metadata"]')" = refused ] || return 1
	[ "$(json "$tmp/netcheck.job" 'd["isolation"]["network"]')" = slirp4netns ]
}

check_wordcount_job() {
	run_job wordcount '{"name":"pkg","task_name":"wordcount","task_params":{"text":"a b c\nd"}}' ||
		return 1
	[ "$(json "$tmp/wordcount.result" 'd["metadata"]')" = "{'words': 4, 'lines': 2}" ]
}

check_gone() {
	local f left=""
	for f in "$@"; do
		if [ -e "$f" ] || [ -L "$f" ]; then
			left="$left $f"
		fi
	done
	[ -z "$left" ] || { echo "still there:$left"; return 1; }
}

check_rpm_files() {
	local rpm=$1 f missing=""
	shift
	rpm -qlp "$rpm" >"$tmp/rpm.list" 2>&1 || { cat "$tmp/rpm.list"; return 1; }
	cat "$tmp/rpm.list"
	for f in "$@"; do
		grep -q "^$f" "$tmp/rpm.list" || missing="$missing $f"
	done
	[ -z "$missing" ] || { echo "missing:$missing"; return 1; }
}

# Each of the three scriptlets calls systemctl (or, with newer macros,
# systemd-update-helper) for valetd.service.
check_rpm_scripts() {
	local s
	rpm -qp --scripts "$1" >"$tmp/rpm.scripts" 2>&1 || return 1
	cat "$tmp/rpm.scripts"
	for s in postinstall preuninstall postuninstall; do
		awk -v s="$s" '/scriptlet/ { on = ($1 == s) } on' "$tmp/rpm.scripts" |
			grep -Eq '(systemctl|systemd-update-helper).*valetd\.service' ||
			{ echo "no systemd $s scriptlet"; return 1; }
	done
	grep -A8 '^preinstall scriptlet' "$tmp/rpm.scripts" | grep -Eq 'useradd|sysusers' ||
		{ echo "no preinstall scriptlet creating the valet user"; return 1; }
}

check_rpm_conf() {
	local line
	line=$(rpm -qlvp "$1" | grep ' /etc/valet/valetd.conf$') || return 1
	echo "$line"
	echo "$line" | grep -Eq '^-rw-r----- +1 root +valet ' &&
		rpm -qcp "$1" | grep -qx /etc/valet/valetd.conf
}

# --- run ---------------------------------------------------------------------
start=$(date +%s)

echo "== tools"
check "build and test tools installed (packaging/deps.sh --packages)" packaging/deps.sh --packages

echo "== leftovers of an earlier run"
check "no valet package installed" purge

echo "== make deb"
if make --no-print-directory BUILD="$BUILD" deb >"$tmp/deb.log" 2>&1; then
	ok "make deb"
else
	tail -n 40 "$tmp/deb.log" | sed 's/^/     | /'
	fatal "make deb"
fi
debs=""
for p in $PKGS; do
	debs="$debs ./$BUILD/${p}_${VERSION}-*_$(dpkg --print-architecture).deb"
done
# shellcheck disable=SC2086
check "the four .debs were built" ls $debs
check "lintian: no errors or warnings (overrides in packaging/debian)" \
	lintian --fail-on error,warning \
	"$BUILD"/deb/valet_*.changes
check "valetd.conf(5) documents every key of packaging/valetd.conf" check_man_keys

echo "== install"
# shellcheck disable=SC2086
check "apt-get install the .debs" apt-get install -y -qq $debs
installed $PKGS || fatal "the packages are not installed"
check "user and group valet exist (system user, home /var/lib/valet)" check_user
check "/etc/valet/valetd.conf is mode 640, root:valet" check_conf_perms
check "/etc/valet/valetd.conf is a conffile" \
	sh -c "dpkg-query -W -f='\${Conffiles}' valetd | grep -q ' /etc/valet/valetd.conf '"
check "the packaged config sets plugin_dir = /usr/lib/valet/tasks" \
	grep -qx 'plugin_dir = /usr/lib/valet/tasks' /etc/valet/valetd.conf
check "/var/lib/valet is owned by valet" check_state_dir
check "valetd's Depends are dh_shlibdeps's: the libraries it links" check_shlibdeps
check "the spawner (/usr/lib/valet/valet-spawner) links none of the daemon's libraries" \
	check_spawner_libs
check "valetd -V prints valetd $VERSION" check_version
check "valet-client's Depends: libcurl3-gnutls and jansson, not valetd" check_client_deps
check "valet -V prints valet $VERSION" sh -c "test \"\$(/usr/bin/valet -V)\" = 'valet $VERSION'"
check "man 1 valet" man -w 1 valet
check "valetd -t -c /etc/valet/valetd.conf" /usr/sbin/valetd -t -c /etc/valet/valetd.conf
check "man valetd and man 5 valetd.conf" sh -c 'man -w valetd && man -w 5 valetd.conf'
check "the Grafana dashboards, provisioning files and valet_reader.sql are installed" \
	check_grafana_files
check "valetd.service is enabled (multi-user.target.wants)" \
	test -L /etc/systemd/system/multi-user.target.wants/valetd.service
check "valetd.service sets WatchdogSec= and LogRateLimit*" check_unit_logging
if command -v systemd-analyze >/dev/null 2>&1; then
	check "systemd-analyze verify valetd.service" check_unit
else
	echo "skip systemd-analyze verify: systemd-analyze is not installed"
fi

echo "== run the installed valetd with the installed config"
if check "valetd starts with /etc/valet/valetd.conf" start_valetd installed -c /etc/valet/valetd.conf
then
	check "GET /api/tasks lists the demo plugin's tasks" \
		check_tasks_listed "dummytask echoprev failtask sha256 sleep"
	check "a sha256 job completes with the right hash" check_sha256_job
	check "it ran with namespaces and a cgroup, not degraded" check_full_isolation
	check "valet status against the installed valetd" check_client_status
	check "valet submit --wait against the installed valetd: COMPLETED, exit 0" check_client_job
	check "valetd stops on SIGTERM with status 0" stop_valetd
fi

echo "== libvalet-dev: a plugin and a program"
check "pkg-config --modversion valet is $VERSION" \
	sh -c "test \"\$(pkg-config --modversion valet)\" = $VERSION"
check "build a plugin with pkg-config --cflags valet" build_plugin
check "build a program with pkg-config --cflags --libs valet (shared libvalet)" build_program
# The config in a directory of its own: valetd hides its directory from
# jobs, which must still see the scripts of the tasks.
mkdir -p "$tmp/etc"
cat >"$tmp/etc/valetd.conf" <<EOF
[tasks]
plugin_dir = $tmp/plugins

[task.wordcount]
command = /usr/lib/valet/tasks/wordcount
timeout = 10s

[task.whoami]
command = /usr/bin/id -u

[task.caps]
command = /bin/sh $tmp/caps.sh

[task.netcheck]
command = /usr/bin/python3 $tmp/netcheck.py
profile = exec+net
EOF
cat >"$tmp/netcheck.py" <<'EOF'
import json, socket, sys
port = json.load(sys.stdin)["params"]["port"]
s = socket.socket()
s.settimeout(3)
try:
    s.connect(("127.0.0.1", port))
    print('"connected"')
except OSError:
    print('"refused"')
EOF
cat >"$tmp/caps.sh" <<'EOF'
printf '"%s"' "$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)"
EOF
[ -f /usr/lib/valet/tasks/demo.so ] && ln -sf /usr/lib/valet/tasks/demo.so "$tmp/plugins/demo.so"
chmod -R a+rX "$tmp"
if [ -f "$tmp/plugins/hello.so" ] &&
	check "valetd starts with a temporary plugin_dir" start_valetd plugin -c "$tmp/etc/valetd.conf"
then
	check "GET /api/tasks lists the tasks of the temporary config" \
		check_tasks_listed "caps dummytask echoprev failtask hello netcheck sha256 sleep whoami wordcount"
	check "a job of the new plugin completes" check_hello_job
	check "tasks run as a uid of their slot with no capabilities (daemon: user valet)" \
		check_task_identity
	check "a task is killed at its deadline (CAP_KILL)" check_timeout_kill
	check "a job of the installed wordcount exec task completes" check_wordcount_job
	if [ -x /usr/bin/python3 ]; then
		check "an exec+net job has its own network: valetd's port is out of reach" \
			check_net_job
	else
		echo "skip netcheck: /usr/bin/python3 is not installed"
	fi
	check "valetd stops on SIGTERM with status 0" stop_valetd
fi
cat >"$tmp/etc/own.conf" <<EOF
[tasks]
plugin_dir =
EOF
chmod a+r "$tmp/etc/own.conf"
if [ -x "$tmp/mytasks" ] &&
	PROG=$tmp/mytasks check "a program of its own runs the installed valetd" \
		start_valetd own -c "$tmp/etc/own.conf"
then
	check "its own task completes, run by the program as the spawner" check_add_job
	check "valetd stops on SIGTERM with status 0" stop_valetd
fi

echo "== purge"
check "apt-get purge -y $PKGS" apt-get purge -y -qq $PKGS
check "no package left installed" sh -c "! dpkg-query -W -f='\${Status}\n' $PKGS 2>/dev/null | grep -qv not-installed"
check "nothing of valet is left (binaries, config, unit, plugins, state, libraries)" \
	check_gone /usr/sbin/valetd /usr/bin/valet /usr/share/man/man1/valet.1.gz /etc/valet \
	/usr/lib/valet /var/lib/valet \
	/lib/systemd/system/valetd.service /usr/lib/sysusers.d/valet.conf \
	/etc/systemd/system/multi-user.target.wants/valetd.service \
	/usr/share/man/man8/valetd.8.gz /usr/share/man/man5/valetd.conf.5.gz /usr/share/valet \
	/usr/include/valet.h "/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/libvalet.so.0" \
	"/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/pkgconfig/valet.pc"
check "the valet user is kept after purge (documented in README.Debian)" getent passwd valet

echo "== make rpm"
if make --no-print-directory BUILD="$BUILD" rpm >"$tmp/rpm.log" 2>&1; then
	ok "make rpm"
	rpm_d=$(ls "$BUILD"/valetd-"$VERSION"-*.rpm 2>/dev/null | head -n 1)
	rpm_l=$(ls "$BUILD"/valet-libs-"$VERSION"-*.rpm 2>/dev/null | head -n 1)
	rpm_c=$(ls "$BUILD"/valet-client-"$VERSION"-*.rpm 2>/dev/null | head -n 1)
	rpm_v=$(ls "$BUILD"/valet-devel-"$VERSION"-*.rpm 2>/dev/null | head -n 1)
	libdir=$(rpm --eval %_libdir)
	check "valetd rpm lists its files" check_rpm_files "$rpm_d" /usr/sbin/valetd \
		/etc/valet/valetd.conf /usr/lib/systemd/system/valetd.service \
		/usr/lib/sysusers.d/valet.conf "$libdir/valet/tasks/demo.so" \
		"$libdir/valet/tasks/wordcount" /var/lib/valet /usr/share/man/man8/valetd.8 \
		/usr/share/man/man5/valetd.conf.5 /usr/share/valet/grafana/dashboards/valet-postgres.json \
		/usr/share/valet/grafana/provisioning/datasources/valet-postgres.yaml \
		/usr/share/valet/grafana/provisioning/dashboards/valet.yaml \
		/usr/share/valet/grafana/provisioning/alerting/valet-postgres.yaml \
		/usr/share/valet/sql/valet_reader.sql
	check "valetd rpm: /etc/valet/valetd.conf is %config, 0640 root:valet" check_rpm_conf "$rpm_d"
	check "valetd rpm: systemd scriptlets and the valet user" check_rpm_scripts "$rpm_d"
	check "valetd rpm has the spawner" check_rpm_files "$rpm_d" \
		/usr/libexec/valet/valet-spawner
	check "valetd rpm requires the libraries it links (automatic requires)" \
		sh -c "rpm -qp --requires '$rpm_d' | grep -q '^libhttp_parser.so'"
	check "valet-libs rpm has libvalet.so.0" check_rpm_files "$rpm_l" "$libdir/libvalet.so.0"
	check "valet-client rpm has valet and valet(1)" check_rpm_files "$rpm_c" /usr/bin/valet \
		/usr/share/man/man1/valet.1
	check "valet-client rpm requires libcurl (automatic requires)" \
		sh -c "rpm -qp --requires '$rpm_c' | grep -q '^libcurl'"
	check "valet-devel rpm has the header, the link, the archive, valet.pc" \
		check_rpm_files "$rpm_v" /usr/include/valet.h "$libdir/libvalet.so" \
		"$libdir/libvalet.a" "$libdir/pkgconfig/valet.pc"
else
	tail -n 40 "$tmp/rpm.log" | sed 's/^/     | /'
	fail "make rpm"
fi

echo "== took $(($(date +%s) - start))s"
finish
