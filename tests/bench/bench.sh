#!/usr/bin/env bash
# bench.sh - valetd's throughput / latency / memory benchmark (`make bench`).
#
# Theory of operation: `make bench` has built $BUILD/valetd, the demo plugin,
# $BUILD/bench/loadgen and $BUILD/bench/forkloop; this script builds nothing.
# Each measurement gets a fresh daemon (memory store, workers=2,
# capacity=300000, no access log, log level warn) on a free loopback port, so
# that no run sees the jobs of another. Jobs are isolated by seccomp, rlimits
# and a user switch only ([sandbox] namespaces = false, cgroups = false), as
# the core measured them, except in step 2b:
#   1. forkloop: bare fork+exit+wait per second, the ceiling for one child per job
#   2. 20000 dummytask jobs on an empty queue
#   2b. the same with full isolation (the default: namespaces, a cgroup per
#      slot, a uid per slot - uid_base 61000 - and seccomp)
#   2d. step 2 with the web dashboard's polling beside it
#      (tests/bench/ui_poll.py: the page's requests every 2 s): its cost
#   3. the same with 10000 jobs parked (run_at an hour ahead) in the daemon
#   4. park 100000 jobs, read the daemon's VmRSS, then the same 20000 jobs
#   5. kill latency: 200 jobs that sleep 10 s under a 50 ms timeout
#   5b. the HTTP edge (tests/bench/http_edge.py): a client's extra latency
#      with 2,000 idle and half-sent connections open, the daemon's memory
#      per connection, and how late a 0.3 s job is killed while another
#      client reads a 100 MB result
#   2c. exec tasks under full isolation (/bin/echo {}, BENCH_EXEC_JOBS jobs):
#      profile exec, then exec+net (a network namespace per slot served by
#      slirp4netns): what the network costs per job
#   2e. /metrics: step 2 on a daemon with BENCH_METRICS_TASKS more (exec)
#      tasks, so that a scrape is large (every task's counters), without and
#      with (in turn first) a scraper that GETs /metrics once a second through the run
#      (its time and size per scrape in $OUT/metrics_scraped.RUN.scrapes):
#      what scraping costs the job throughput (target: < 2%); then, on that
#      daemon, 2000 scrapes back to back and the daemon's CPU time per
#      scrape (/proc/PID/stat), which a loaded machine does not blur: its
#      share of one CPU at one scrape a second
#   2f. submit throughput with API keys on and off, in the same round: park
#      BENCH_AUTH_JOBS jobs (run_at an hour ahead: the submit path alone, no
#      child) on a daemon without keys, then on one with a keys file of 10
#      keys (each request's token hashed and compared with every key), off
#      first in odd rounds; the summary gives the ratio on/off (target >= 95%),
#      and that of the daemon's CPU time per submit, which a loaded machine
#      disturbs less than the rate (target <= 105%)
#   6. step 2 with storage = postgres: a throwaway PostgreSQL on this machine
#      (tests/pg_tmp.sh with PG_TMP_DURABLE=1: fsync and synchronous_commit
#      on), a fresh schema per run, after an untimed warm-up run of 2000 jobs
# and prints a summary with the targets (>= 3000 jobs/s; full isolation
# >= 1000 jobs/s; with 100k parked
# within 10% of the empty-queue rate; kill p99 < 10 ms; RSS < 50 MB;
# PostgreSQL >= 2000 jobs/s with submit p99 < 20 ms), also
# written to $BUILD/bench/summary.txt. The loadgen reports (JSON) and the
# daemon logs stay in $BUILD/bench/.
#
# Knobs (environment): BENCH_JOBS=20000 BENCH_EXEC_JOBS=5000 BENCH_CONNS=8 BENCH_WORKERS=2
# BENCH_PARK_SMALL=10000 BENCH_PARK_LARGE=100000 BENCH_KILL=200
# BENCH_REPEAT=1 (rounds: steps 1-4 each run once per round, each on a fresh
# daemon, then step 6 as many times; the summary shows the median run, the
# largest RSS, and the ratios among steps 1-4 as the median of the
# per-round ratios)
# BENCH_AUTH_JOBS=20000; BENCH_ONLY=auth runs only step 2f (BENCH_REPEAT
# rounds) and prints its summary.
# BENCH_TIMEOUT=600 (seconds per loadgen run), BENCH_STRICT=1 (exit 1 when a
# target is missed; by default only a failed step does).
# BENCH_METRICS_TASKS=200; BENCH_ONLY="empty metrics" runs only the steps
# named (forkloop, empty, ui_poll, full, exec, park, metrics, auth, kill, edge,
# postgres; default: all) - the summary says n/a for the others.
# BENCH_ONLY=ui_poll alone: only steps 2 and 2d, alternately, BENCH_REPEAT
# times, and their ratio.
#
# A/B mode: BENCH_BASELINE=DIR, another build directory (its valetd and
# tasks/demo.so; its valetd finds its own spawner, if it has one, beside
# itself), is A and $BUILD is B; both are driven by $BUILD's loadgen and
# forkloop. Each of BENCH_REPEAT rounds runs step 1, then step 2 for A and B,
# then step 2b for A and B, each on a fresh daemon, A first in odd rounds and
# B first in even ones, so that a pair runs close together and neither build
# always goes first. After the rounds, for B only: the daemon's RSS with
# BENCH_PARK_LARGE jobs parked (parked only, no timed jobs) and step 5. Steps
# 2c, 3, 4 and 6 do not run. The summary gives per round each run's jobs/s,
# its ratio to that round's fork loop and B/A; then per build the median
# jobs/s and the median ratio to the fork loop, and the median of the
# per-round B/A, whose target is >= 0.95: B no worse than A, with 5% left
# for the VM's noise (BENCH_BASELINE=$BUILD, an A/A run, shows how much).
set -u

BUILD=${BUILD:-build}
JOBS=${BENCH_JOBS:-20000}
EXEC_JOBS=${BENCH_EXEC_JOBS:-5000}
CONNS=${BENCH_CONNS:-8}
WORKERS=${BENCH_WORKERS:-2}
PARK_SMALL=${BENCH_PARK_SMALL:-10000}
PARK_LARGE=${BENCH_PARK_LARGE:-100000}
KILL=${BENCH_KILL:-200}
REPEAT=${BENCH_REPEAT:-1}
METRICS_TASKS=${BENCH_METRICS_TASKS:-200}
ONLY=${BENCH_ONLY:-}
TIMEOUT=${BENCH_TIMEOUT:-600}
AUTH_JOBS=${BENCH_AUTH_JOBS:-20000}

BASELINE=
if [ -n "${BENCH_BASELINE:-}" ]; then
	# Resolved before the cd below: a relative path is the caller's.
	if ! BASELINE=$(cd "$BENCH_BASELINE" 2>/dev/null && pwd); then
		echo "bench: BENCH_BASELINE=$BENCH_BASELINE is not a directory" >&2
		exit 1
	fi
fi

cd "$(dirname "$0")/../.." || exit 1
VALETD=$BUILD/valetd
LOADGEN=$BUILD/bench/loadgen
FORKLOOP=$BUILD/bench/forkloop
OUT=$BUILD/bench
for f in "$VALETD" "$LOADGEN" "$FORKLOOP"; do
	if [ ! -x "$f" ]; then
		echo "bench: $f is missing; run 'make bench'" >&2
		exit 1
	fi
done
if [ ! -f "$BUILD/tasks/demo.so" ]; then
	echo "bench: $BUILD/tasks/demo.so is missing; run 'make bench'" >&2
	exit 1
fi
if [ -n "$BASELINE" ] && { [ ! -x "$BASELINE/valetd" ] || [ ! -f "$BASELINE/tasks/demo.so" ]; }; then
	echo "bench: BENCH_BASELINE=$BASELINE has no valetd or no tasks/demo.so" >&2
	exit 1
fi
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.log "$OUT"/*.rss "$OUT"/*.scrapes "$OUT"/*.scrape_cpu \
	"$OUT"/forkloop*.txt \
	"$OUT"/summary.txt

TMP=$(mktemp -d "${TMPDIR:-/tmp}/valet-bench.XXXXXX")
DAEMON_PID=
FAILED_STEPS=0

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	stop_daemon
	if [ -n "${PG_DIR:-}" ]; then
		tests/pg_tmp.sh stop "$PG_DIR" >/dev/null 2>&1
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
		2>/dev/null || echo $((20000 + RANDOM % 40000))
}

# start_daemon NAME: a fresh valetd on a free port; its log goes to $OUT/NAME.valetd.log.
# The valetd and tasks/ of DAEMON_BUILD (default $BUILD).
start_daemon() {
	local name=$1 build=${DAEMON_BUILD:-$BUILD}
	PORT=$(free_port)
	cat >"$TMP/bench.conf" <<-EOF
		[server]
		listen = 127.0.0.1:$PORT
		access_log = false
		[queue]
		workers = $WORKERS
		capacity = 300000
		shutdown_grace = 2s
		[tasks]
		plugin_dir = $(cd "$build/tasks" && pwd)
		[log]
		level = warn
		[task.echo]
		command = /bin/echo {}
	EOF
	if command -v slirp4netns >/dev/null; then
		printf '[task.echo_net]\ncommand = /bin/echo {}\nprofile = exec+net\n' >>"$TMP/bench.conf"
	fi
	printf '[sandbox]\n' >>"$TMP/bench.conf"
	# The issue-2 steps measure seccomp isolation alone (as the core was
	# built); the "full" step adds namespaces, cgroups and a uid per slot.
	if [ "${FULL_ISOLATION:-0}" = 1 ]; then
		printf 'uid_base = 61000\n' >>"$TMP/bench.conf"
	else
		printf 'namespaces = false\ncgroups = false\n' >>"$TMP/bench.conf"
	fi
	if [ -n "${STORAGE_CONF:-}" ]; then
		printf '%s\n' "$STORAGE_CONF" >>"$TMP/bench.conf"
	fi
	if [ -n "${EXTRA_CONF:-}" ]; then
		printf '%s\n' "$EXTRA_CONF" >>"$TMP/bench.conf"
	fi
	"$build/valetd" -c "$TMP/bench.conf" -l "127.0.0.1:$PORT" 2>"$OUT/$name.valetd.log" &
	DAEMON_PID=$!
	for _ in $(seq 100); do
		if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			echo "bench: valetd exited at start; its log:" >&2
			tail -20 "$OUT/$name.valetd.log" >&2
			DAEMON_PID=
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench: valetd did not listen on port $PORT within 10 s" >&2
	stop_daemon
	return 1
}

stop_daemon() {
	[ -n "$DAEMON_PID" ] || return 0
	kill -TERM "$DAEMON_PID" 2>/dev/null
	for _ in $(seq 150); do
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$DAEMON_PID" 2>/dev/null; then
		echo "bench: valetd did not stop on SIGTERM within 15 s; killing it" >&2
		kill -KILL "$DAEMON_PID" 2>/dev/null
	fi
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=
}

# loadgen NAME ARGS...: one loadgen run against the daemon, report in $OUT/NAME.json.
loadgen() {
	local name=$1
	shift
	echo "bench: $name: loadgen $*" >&2
	if ! "$LOADGEN" --port "$PORT" --conns "$CONNS" --timeout "$TIMEOUT" --json "$@" \
		>"$OUT/$name.json" 2>"$OUT/$name.loadgen.log"; then
		echo "bench: $name: loadgen failed:" >&2
		tail -5 "$OUT/$name.loadgen.log" >&2
		FAILED_STEPS=$((FAILED_STEPS + 1))
		return 1
	fi
}

# rss_kb PID: VmRSS of one process in kB.
rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

# step NAME LOADGEN-ARGS...: fresh daemon, one loadgen run, daemon stopped.
step() {
	local name=$1
	shift
	if start_daemon "$name"; then
		loadgen "$name" "$@"
		stop_daemon
	else
		FAILED_STEPS=$((FAILED_STEPS + 1))
	fi
}

# record_rss NAME: the daemon's VmRSS (kB) and that of the processes it forked
# and keeps (the spawner), in $OUT/NAME.rss.
record_rss() {
	local total=0 c kb
	# shellcheck disable=SC2013 # the file is a space-separated list of pids
	for c in $(cat /proc/"$DAEMON_PID"/task/*/children 2>/dev/null); do
		kb=$(rss_kb "$c")
		total=$((total + ${kb:-0}))
	done
	echo "$(rss_kb "$DAEMON_PID") $total" >"$OUT/$1.rss"
}

# want STEP: whether BENCH_ONLY (empty: all) names the step.
want() {
	[ -z "$ONLY" ] && return 0
	case " $ONLY " in
	*" $1 "*) return 0 ;;
	esac
	return 1
}

# scraper PORT FILE: GET /metrics once a second until killed, as
# Prometheus does (one process, one keep-alive connection), appending
# "seconds bytes" of each scrape to FILE.
scraper() {
	exec python3 - "$1" "$2" <<-'PY'
		import http.client, sys, time
		conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
		with open(sys.argv[2], "a") as out:
		    while True:
		        t0 = time.monotonic()
		        conn.request("GET", "/metrics")
		        size = len(conn.getresponse().read())
		        took = time.monotonic() - t0
		        out.write("%.6f %d\n" % (took, size))
		        out.flush()
		        time.sleep(max(0.0, 1.0 - took))
	PY
}

# measure NAME RUN PARK: one run on a fresh daemon: park PARK jobs (not timed,
# RSS read after), then the JOBS timed jobs; report in $OUT/NAME.RUN.json.
# SCRAPE=1: a scraper (above) runs against /metrics meanwhile.
measure() {
	local name=$1 run=$2 park=$3
	if ! start_daemon "$name.$run"; then
		FAILED_STEPS=$((FAILED_STEPS + 1))
		return
	fi
	if [ "$park" -gt 0 ]; then
		if ! loadgen "$name.$run.park" --park "$park" --jobs 0; then
			stop_daemon
			return
		fi
		record_rss "$name.$run"
	fi
	# The dashboard's requests beside the run (step 2d), or a Prometheus-like
	# scraper of /metrics (the metrics step).
	local poller= scraper_pid=
	if [ "${UI_POLL:-0}" = 1 ]; then
		python3 tests/bench/ui_poll.py --port "$PORT" >"$OUT/$name.$run.poll.json" &
		poller=$!
	fi
	if [ "${SCRAPE:-0}" = 1 ]; then
		scraper "$PORT" "$OUT/$name.$run.scrapes" &
		scraper_pid=$!
	fi
	loadgen "$name.$run" --jobs "${MEASURE_JOBS:-$JOBS}" ${MEASURE_TASK:+--task "$MEASURE_TASK"}
	if [ -n "$poller" ]; then
		kill -TERM "$poller" 2>/dev/null
		wait "$poller" || FAILED_STEPS=$((FAILED_STEPS + 1))
	fi
	if [ -n "$scraper_pid" ]; then
		kill "$scraper_pid" 2>/dev/null
		wait "$scraper_pid" 2>/dev/null
		scrape_cpu >"$OUT/$name.$run.scrape_cpu"
	fi
	# The daemon's CPU time (utime + stime, clock ticks): what a run cost
	# valetd itself, which the machine's other load changes less than jobs/s.
	awk '{ print $14 + $15 }' "/proc/$DAEMON_PID/stat" >"$OUT/$name.$run.cpu" 2>/dev/null
	stop_daemon
}

# ui_poll_only: BENCH_ONLY=ui_poll - step 2 without and with the dashboard's
# polling, alternately (which goes first changes each round), and the ratio.
ui_poll_only() {
	local run
	for run in $(seq "$REPEAT"); do
		if [ $((run % 2)) = 1 ]; then
			measure empty "$run" 0
			UI_POLL=1 measure ui_poll "$run" 0
		else
			UI_POLL=1 measure ui_poll "$run" 0
			measure empty "$run" 0
		fi
	done
	python3 - "$OUT" "$REPEAT" >"$OUT/summary.txt" <<'EOF'
import json, os, sys
out, repeat = sys.argv[1], int(sys.argv[2])
def rate(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return json.load(f)["run"]["throughput"]
    except (OSError, ValueError, KeyError):
        return None
def cpu_per_job(name):
    """valetd's CPU time per job of the run, in microseconds."""
    try:
        with open(os.path.join(out, name + ".cpu")) as f:
            ticks = float(f.read())
        with open(os.path.join(out, name + ".json")) as f:
            jobs = json.load(f)["run"]["completed"]
        return ticks * 1e6 / os.sysconf("SC_CLK_TCK") / jobs
    except (OSError, ValueError, KeyError, ZeroDivisionError):
        return None
def show(v, spec):
    return spec % v if v else "n/a"
print("%-6s %-10s %-15s %-7s %-18s %-18s %s" % (
    "round", "jobs/s", "polled jobs/s", "ratio", "valetd us/job", "polled us/job", "ratio"))
ratios, cpu_ratios = [], []
for r in range(1, repeat + 1):
    a, b = rate("empty.%d" % r), rate("ui_poll.%d" % r)
    ca, cb = cpu_per_job("empty.%d" % r), cpu_per_job("ui_poll.%d" % r)
    ratio = b / a if a and b else None
    cpu_ratio = cb / ca if ca and cb else None
    if ratio:
        ratios.append(ratio)
    if cpu_ratio:
        cpu_ratios.append(cpu_ratio)
    print("%-6d %-10s %-15s %-7s %-18s %-18s %s" % (
        r, show(a, "%.0f"), show(b, "%.0f"), show(ratio, "%.3f"), show(ca, "%.1f"), show(cb, "%.1f"),
        show(cpu_ratio, "%.3f")))
    try:
        with open(os.path.join(out, "ui_poll.%d.poll.json" % r)) as poll:
            print("       poller: %s" % poll.read().strip())
    except OSError:
        pass
ratios.sort()
cpu_ratios.sort()
med = ratios[(len(ratios) - 1) // 2] if ratios else None
cpu_med = cpu_ratios[(len(cpu_ratios) - 1) // 2] if cpu_ratios else None
print("dashboard polling: jobs/s ratio, median %s (target >= 0.98): %s" % (
    show(med, "%.3f"), "n/a" if med is None else "PASS" if med >= 0.98 else "FAIL"))
print("dashboard polling: valetd CPU per job, median ratio %s (target <= 1.02): %s" % (
    show(cpu_med, "%.3f"), "n/a" if cpu_med is None else "PASS" if cpu_med <= 1.02 else "FAIL"))
EOF
}

# scrape_cpu: the daemon's CPU time per GET /metrics (ms) and the text's
# size, over 2000 scrapes back to back on one connection.
scrape_cpu() {
	python3 - "$PORT" "$DAEMON_PID" <<-'PY'
		import http.client, os, sys
		port, pid = int(sys.argv[1]), sys.argv[2]
		def cpu():
		    with open("/proc/%s/stat" % pid) as f:
		        fields = f.read().rsplit(")", 1)[1].split()
		    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
		conn, n, size = http.client.HTTPConnection("127.0.0.1", port, timeout=30), 2000, 0
		t0 = cpu()
		for _ in range(n):
		    conn.request("GET", "/metrics")
		    size = len(conn.getresponse().read())
		print("%.4f %d" % ((cpu() - t0) / n * 1000, size))
	PY
}

# metrics_tasks: BENCH_METRICS_TASKS exec task sections (never run), for a
# daemon whose scrape holds many tasks' counters.
metrics_tasks() {
	local i
	for i in $(seq "$METRICS_TASKS"); do
		printf '[task.bench_task_%04d]\ncommand = /bin/true\n' "$i"
	done
}

# postgres RUN: the empty-queue workload with durable storage, schema bench_RUN.
postgres() {
	STORAGE_CONF="[storage]
backend = postgres
database_url = $PG_URL
schema = bench_$1
node_id = bench"
	if start_daemon "postgres.$1"; then
		if [ "$1" = warmup ]; then
			loadgen "postgres.$1" --jobs 2000
		else
			loadgen "postgres.$1" --jobs "$JOBS"
		fi
		stop_daemon
	else
		FAILED_STEPS=$((FAILED_STEPS + 1))
	fi
	STORAGE_CONF=
}

# edge: the HTTP edge (tests/bench/http_edge.py), report in $OUT/edge.json:
# 2,000 idle and half-sent connections against a normal client, and a 0.3 s
# job killed while a client reads a 100 MB result. The result comes from an
# exec task; its script lives in $OUT, which the job's view of the file
# system shows.
edge() {
	cat >"$OUT/big_result.sh" <<-'SH'
		#!/bin/sh
		printf '"'; head -c 100000000 /dev/zero | tr '\000' a; printf '"'
	SH
	chmod 755 "$OUT/big_result.sh"
	EXTRA_CONF="[jobs]
max_result_size = 200M
max_output_size = 200M
[task.big]
command = $(cd "$OUT" && pwd)/big_result.sh
[task.sleeper]
command = /bin/sleep 10"
	if start_daemon edge; then
		echo "bench: edge: http_edge.py" >&2
		python3 tests/bench/http_edge.py --port "$PORT" --pid "$DAEMON_PID" --big \
			>"$OUT/edge.json" 2>"$OUT/edge.log" || FAILED_STEPS=$((FAILED_STEPS + 1))
		stop_daemon
	else
		FAILED_STEPS=$((FAILED_STEPS + 1))
	fi
	EXTRA_CONF=
}

# cpu_ticks PID: the user and system CPU time of a process, in clock ticks.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# auth_pair RUN: step 2f, reports auth_off.RUN.json and auth_on.RUN.json, and
# the daemon's CPU time over the submits in auth_off.RUN.cpu, auth_on.RUN.cpu.
auth_pair() {
	local run=$1 which
	if [ ! -s "$TMP/bench.token" ]; then
		for k in $(seq 10); do
			"$VALETD" --file "$TMP/keys" key create "bench$k" --scopes submit,read \
				>"$TMP/bench.token" 2>/dev/null || FAILED_STEPS=$((FAILED_STEPS + 1))
		done
	fi
	for which in $(if [ $((run % 2)) = 1 ]; then echo off on; else echo on off; fi); do
		if [ "$which" = on ]; then
			EXTRA_CONF="[server]
auth_keys = $TMP/keys"
		fi
		if start_daemon "auth_$which.$run"; then
			local before
			before=$(cpu_ticks "$DAEMON_PID")
			loadgen "auth_$which.$run" --park "$AUTH_JOBS" --jobs 0 \
				${EXTRA_CONF:+--token "$(cat "$TMP/bench.token")"}
			echo "$(($(cpu_ticks "$DAEMON_PID") - before)) $(getconf CLK_TCK)" \
				>"$OUT/auth_$which.$run.cpu"
			stop_daemon
		else
			FAILED_STEPS=$((FAILED_STEPS + 1))
		fi
		EXTRA_CONF=
	done
}

# auth_summary: step 2f's lines of the summary.
auth_summary() {
	python3 - "$OUT" "$AUTH_JOBS" <<'EOF'
import glob, json, os, re, sys

out, jobs = sys.argv[1:]

def rate(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            v = json.load(f).get("park", {}).get("submit_rate")
            return v if isinstance(v, (int, float)) else None
    except (OSError, ValueError, AttributeError):
        return None

runs = sorted(int(re.search(r"\.([0-9]+)\.json$", p).group(1))
              for p in glob.glob(os.path.join(out, "auth_off.[0-9]*.json")))
def cpu_us(name):
    """The daemon's CPU time per submitted job, in microseconds."""
    try:
        with open(os.path.join(out, name + ".cpu")) as f:
            ticks, hz = (float(x) for x in f.read().split())
            return ticks / hz * 1e6 / int(jobs)
    except (OSError, ValueError):
        return None

def median(v):
    v = sorted(x for x in v if x is not None)
    return v[(len(v) - 1) // 2] if v else None

def pct(v):
    return "n/a" if v is None else "%.1f%%" % v

ratios, cpu_ratios = [], []
for r in runs:
    off, on = rate("auth_off.%d" % r), rate("auth_on.%d" % r)
    coff, con = cpu_us("auth_off.%d" % r), cpu_us("auth_on.%d" % r)
    ratio = on / off * 100 if on and off else None
    cpu_ratio = con / coff * 100 if con and coff else None
    ratios.append(ratio)
    cpu_ratios.append(cpu_ratio)
    print("API keys, round %d: %s jobs submitted (parked): off %s/s, on %s/s, on/off %s; "
          "daemon CPU per job off %s us, on %s us (%s)"
          % (r, jobs, "n/a" if off is None else "%.0f" % off,
             "n/a" if on is None else "%.0f" % on, pct(ratio),
             "n/a" if coff is None else "%.1f" % coff, "n/a" if con is None else "%.1f" % con,
             pct(cpu_ratio)))
med, cpu_med = median(ratios), median(cpu_ratios)
print("API keys on / off, submit throughput (median of rounds): %s   target >= 95%%   %s"
      % (pct(med), "" if med is None else ("PASS" if med >= 95 else "FAIL")))
print("API keys on / off, the daemon's CPU per submit (median of rounds): %s   target <= 105%%   %s"
      % (pct(cpu_med), "" if cpu_med is None else ("PASS" if cpu_med <= 105 else "FAIL")))
EOF
}

# forkloop RUN: step 1, in $OUT/forkloop.RUN.txt.
forkloop() {
	echo "bench: forkloop ($1)" >&2
	if ! "$FORKLOOP" 2 >"$OUT/forkloop.$1.txt"; then
		FAILED_STEPS=$((FAILED_STEPS + 1))
	fi
}

# ab_bench: the A/B mode (BENCH_BASELINE, see the top); reports A.empty.RUN,
# B.full.RUN, ..., B.park_large.rss, kill; the summary in $OUT/summary.txt.
ab_bench() {
	local run order build
	for run in $(seq "$REPEAT"); do
		forkloop "$run"
		if [ $((run % 2)) = 1 ]; then order="A B"; else order="B A"; fi
		for build in $order; do
			DAEMON_BUILD=$(ab_dir "$build") measure "$build.empty" "$run" 0
		done
		for build in $order; do
			DAEMON_BUILD=$(ab_dir "$build") FULL_ISOLATION=1 measure "$build.full" "$run" 0
		done
	done
	# This build's memory with the large queue: parked jobs only.
	if start_daemon B.park_large; then
		if loadgen B.park_large.park --park "$PARK_LARGE" --jobs 0; then
			record_rss B.park_large
		fi
		stop_daemon
	else
		FAILED_STEPS=$((FAILED_STEPS + 1))
	fi
	step kill --kill "$KILL" --jobs 0

	ab_summary >"$OUT/summary.txt"
}

# ab_dir A|B: the build directory of A (the baseline) or B (this build).
ab_dir() {
	if [ "$1" = A ]; then echo "$BASELINE"; else echo "$BUILD"; fi
}

ab_summary() {
	python3 - "$OUT" "$JOBS" "$CONNS" "$WORKERS" "$REPEAT" "$BASELINE" "$BUILD" "$PARK_LARGE" \
		"$KILL" <<'EOF'
import json, os, re, sys

out, jobs, conns, workers, repeat, base, build, park_large, kill = sys.argv[1:]
rounds = range(1, int(repeat) + 1)

def load(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def get(report, *keys):
    for k in keys:
        if not isinstance(report, dict):
            return None
        report = report.get(k)
    return report if isinstance(report, (int, float)) else None

def rate(name):
    return get(load(name), "run", "throughput")

def forkloop(run):
    try:
        with open(os.path.join(out, "forkloop.%d.txt" % run)) as f:
            m = re.search(r"forkloop: ([0-9.]+) forks/s", f.read())
            return float(m.group(1)) if m else None
    except OSError:
        return None

def median(values):
    values = sorted(v for v in values if v is not None)
    return values[(len(values) - 1) // 2] if values else None

def div(a, b):
    return a / b if a is not None and b else None

def fmt(v, spec="%.0f", unit=""):
    return "n/a" if v is None else (spec % v) + unit

def mark(ok):
    return "" if ok is None else ("PASS" if ok else "FAIL")

steps = [("empty", "seccomp only"), ("full", "full isolation")]
forks = {r: forkloop(r) for r in rounds}
rates = {(b, s, r): rate("%s.%s.%d" % (b, s, r)) for b in "AB" for s, _ in steps for r in rounds}

print("valet A/B benchmark: A = %s (baseline), B = %s (this build)" % (base, build))
print("%s jobs per run, %s connections, workers=%s, %d CPUs, %s round(s): the fork loop,"
      % (jobs, conns, workers, os.cpu_count(), repeat))
print("then each step for A and B (A first in odd rounds), each on a fresh daemon")
print()
print("%-6s %-15s %-16s %-20s %-20s %s" % ("round", "step", "fork loop", "A jobs/s (% fork)",
                                          "B jobs/s (% fork)", "B/A"))
print("-" * 86)
for r in rounds:
    for i, (s, label) in enumerate(steps):
        a, b, f = rates[("A", s, r)], rates[("B", s, r)], forks[r]
        cell = lambda v: "%s (%s)" % (fmt(v), fmt(div(v, f) and div(v, f) * 100, "%.1f", "%"))
        print(("%-6s %-15s %-16s %-20s %-20s %s" % (
            r if i == 0 else "", label, fmt(f, "%.0f", " forks/s") if i == 0 else "",
            cell(a), cell(b), fmt(div(b, a), "%.3f"))).rstrip())
print()

rows = [("fork loop (median of the rounds)", fmt(median(forks.values()), "%.0f", " forks/s"),
         "", "", "", "")]
for s, label in steps:
    per = {b: [rates[(b, s, r)] for r in rounds] for b in "AB"}
    pct = {b: [div(rates[(b, s, r)], forks[r]) and div(rates[(b, s, r)], forks[r]) * 100
               for r in rounds] for b in "AB"}
    ba = median(div(rates[("B", s, r)], rates[("A", s, r)]) for r in rounds)
    rows += [
        ("%s: jobs/s, median" % label, fmt(median(per["A"])), fmt(median(per["B"])), "", "", ""),
        ("  ratio to the fork loop, median", fmt(median(pct["A"]), "%.1f", "%"),
         fmt(median(pct["B"]), "%.1f", "%"), "", "", ""),
        ("  B/A, median of the rounds", "", "", fmt(ba, "%.3f"), ">= 0.95",
         mark(None if ba is None else ba >= 0.95)),
    ]
rss = None
try:
    with open(os.path.join(out, "B.park_large.rss")) as f:
        rss = [float(v) / 1024 for v in f.read().split()]
except (OSError, ValueError):
    pass
rss_mb = rss[0] if rss else None
killr = load("kill")
kill_p50, kill_p99 = get(killr, "kill", "kill_ms", "p50"), get(killr, "kill", "kill_ms", "p99")
edge = load("edge")
edge_p50 = get(edge, "idle", "extra_ms", "p50")
edge_p99 = get(edge, "idle", "extra_ms", "p99")
edge_kb = get(edge, "idle", "rss_kb_per_connection")
edge_kill = get(edge, "big_result", "kill_late_ms")
edge_read = get(edge, "big_result", "read_s")
rows += [
    ("2,000 idle/half-sent connections:", "", "", ""),
    ("  a client's extra latency p50 / p99", "%s / %s ms" % (
        fmt(edge_p50, "%.2f"), fmt(edge_p99, "%.2f")), "< 10 ms",
     mark(ok(edge_p50 is not None and max(edge_p50, edge_p99) < 10, edge_p50, edge_p99))),
    ("  daemon memory per connection", fmt(edge_kb, "%.1f", " kB"), "", ""),
    ("100 MB result read (%s s):" % fmt(edge_read, "%.2f"), "", "", ""),
    ("  a 0.3 s job's kill, late by", fmt(edge_kill, "%.1f", " ms"), "< 10 ms",
     mark(ok(edge_kill is not None and edge_kill < 10, edge_kill))),
    ("daemon RSS, %s parked" % park_large, "", fmt(rss_mb, "%.1f", " MB"), "", "< 50 MB",
     mark(None if rss_mb is None else rss_mb < 50)),
    ("  its child processes (spawner)", "", fmt(rss[1] if rss and len(rss) > 1 else None,
                                               "%.1f", " MB"), "", "", ""),
    ("kill latency p50 / p99 (%s jobs)" % kill, "", "%s / %s ms" % (
        fmt(kill_p50, "%.2f"), fmt(kill_p99, "%.2f")), "", "p99 < 10 ms",
     mark(None if kill_p99 is None else kill_p99 < 10)),
]
print("%-36s %-14s %-16s %-7s %-12s %s" % ("measure", "A", "B", "B/A", "target", ""))
print("-" * 92)
for row in rows:
    print(("%-36s %-14s %-16s %-7s %-12s %s" % row).rstrip())
marks = [row[5] for row in rows if row[5]]
missing = sum(1 for row in rows if row[4] and not row[5])
print()
print("targets: %d pass, %d fail, %d not measured"
      % (marks.count("PASS"), marks.count("FAIL"), missing))
EOF
}

# finish: prints the summary; the exit status (see BENCH_STRICT).
finish() {
	cat "$OUT/summary.txt"
	echo "bench: reports in $OUT/ (summary.txt, *.json, *.log)" >&2
	if [ "$FAILED_STEPS" -gt 0 ]; then
		echo "bench: $FAILED_STEPS step(s) failed" >&2
		exit 1
	fi
	if [ "${BENCH_STRICT:-0}" = 1 ] && ! grep -q "^targets: .* 0 fail, 0 not measured" "$OUT/summary.txt"; then
		exit 1
	fi
	exit 0
}

"$LOADGEN" --selftest || exit 1

if [ -n "$BASELINE" ]; then
	ab_bench
	finish
fi
if [ "${BENCH_ONLY:-}" = ui_poll ]; then
	ui_poll_only
	finish
fi

if [ "${BENCH_ONLY:-}" = auth ]; then
	for run in $(seq "$REPEAT"); do
		auth_pair "$run"
	done
	auth_summary >"$OUT/summary.txt"
	finish
fi

# Rounds: each measure once per round, so that the machine's drift (a VM's
# speed changes over minutes) reaches every measure alike and the ratios
# between them (to the fork loop, parked to empty, full isolation to
# seccomp only) compare runs made close together.
for run in $(seq "$REPEAT"); do
	want forkloop && forkloop "$run"
	want empty && measure empty "$run" 0
	# The same with the web dashboard polling beside it.
	want ui_poll && UI_POLL=1 measure ui_poll "$run" 0
	# Full isolation, same workload: namespaces + cgroup + uid + seccomp.
	want full && FULL_ISOLATION=1 measure full "$run" 0
	# Exec tasks, full isolation: without network, then with exec+net's.
	if want exec; then
		FULL_ISOLATION=1 MEASURE_TASK=echo MEASURE_JOBS=$EXEC_JOBS measure exec "$run" 0
		FULL_ISOLATION=1 MEASURE_TASK=echo_net MEASURE_JOBS=$EXEC_JOBS measure exec_net "$run" 0
	fi
	if want park; then
		measure park_small "$run" "$PARK_SMALL"
		measure park_large "$run" "$PARK_LARGE"
	fi
	# /metrics: the same daemon (many tasks) without and with a scraper,
	# the unscraped one first in odd rounds, second in even ones.
	if want metrics && [ $((run % 2)) = 1 ]; then
		EXTRA_CONF=$(metrics_tasks) measure metrics_base "$run" 0
		EXTRA_CONF=$(metrics_tasks) SCRAPE=1 measure metrics_scraped "$run" 0
	elif want metrics; then
		EXTRA_CONF=$(metrics_tasks) SCRAPE=1 measure metrics_scraped "$run" 0
		EXTRA_CONF=$(metrics_tasks) measure metrics_base "$run" 0
	fi
	if want auth; then
		auth_pair "$run"
	fi
done
want kill && step kill --kill "$KILL" --jobs 0
want edge && edge

# PostgreSQL last, in its own rounds: a server that has just taken 20,000
# jobs vacuums and checkpoints for a while, which would slow the runs that
# follow. Its own directory under /tmp: the server runs as user postgres,
# who cannot enter $TMP (mode 0700). A first, untimed run warms the fresh
# server (catalog caches, the first checkpoint); its report
# (postgres.warmup) is not counted.
PG_DIR=$(mktemp -u /tmp/valet-bench-pg.XXXXXX)
if ! want postgres; then
	:
elif PG_URL=$(PG_TMP_DURABLE=1 tests/pg_tmp.sh start "$PG_DIR" 2>"$OUT/postgres.server.log"); then
	for run in warmup $(seq "$REPEAT"); do
		postgres "$run"
	done
	tests/pg_tmp.sh stop "$PG_DIR" >/dev/null 2>&1
else
	echo "bench: no PostgreSQL server for the postgres step:" >&2
	tail -3 "$OUT/postgres.server.log" >&2
	FAILED_STEPS=$((FAILED_STEPS + 1))
fi
PG_DIR=

python3 - "$OUT" "$JOBS" "$PARK_SMALL" "$PARK_LARGE" "$KILL" "$WORKERS" "$CONNS" "$REPEAT" \
	"$EXEC_JOBS" "$METRICS_TASKS" >"$OUT/summary.txt" <<'EOF'
import glob, json, os, re, sys

out, jobs, park_small, park_large, kill, workers, conns, repeat, exec_jobs, metrics_tasks = \
    sys.argv[1:]

def load(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def get(report, *keys):
    for k in keys:
        if not isinstance(report, dict):
            return None
        report = report.get(k)
    return report if isinstance(report, (int, float)) else None

def median_run(name):
    """The report of the run with the median throughput (the lower middle one)."""
    runs = [r for r in (load(os.path.basename(p)[:-5]) for p in
                        glob.glob(os.path.join(out, name + ".[0-9]*.json"))
                        if re.search(r"\.[0-9]+\.json$", p))
            if get(r, "run", "throughput") is not None]
    runs.sort(key=lambda r: get(r, "run", "throughput"))
    return runs[(len(runs) - 1) // 2] if runs else None

def max_rss_mb(name, column):
    values = []
    for p in glob.glob(os.path.join(out, name + ".*.rss")):
        try:
            with open(p) as f:
                values.append(float(f.read().split()[column]) / 1024)
        except (OSError, ValueError, IndexError):
            pass
    return max(values) if values else None

def fmt(v, spec="%.0f", unit=""):
    return "n/a" if v is None else (spec % v) + unit

def mark(ok):
    return "" if ok is None else ("PASS" if ok else "FAIL")

def median(values):
    values = sorted(v for v in values if v is not None)
    return values[(len(values) - 1) // 2] if values else None

def forkloop(path):
    try:
        with open(path) as f:
            m = re.search(r"forkloop: ([0-9.]+) forks/s", f.read())
            return float(m.group(1)) if m else None
    except OSError:
        return None

forks = median(forkloop(p) for p in glob.glob(os.path.join(out, "forkloop.*.txt")))

empty, small, large = median_run("empty"), median_run("park_small"), median_run("park_large")
full = median_run("full")
rate_full = get(full, "run", "throughput")
pg = median_run("postgres")
rate_pg = get(pg, "run", "throughput")
submit_p99_pg = get(pg, "run", "submit_latency_ms", "p99")
killr = load("kill")
rate = get(empty, "run", "throughput")
rate_small = get(small, "run", "throughput")
rate_large = get(large, "run", "throughput")
def round_ratio(name, base):
    """Median over the rounds of NAME's throughput as a % of BASE's in the
    same round: the machine's drift between rounds cancels out."""
    ratios = []
    for p in glob.glob(os.path.join(out, name + ".[0-9]*.json")):
        m = re.search(r"\.([0-9]+)\.json$", p)
        if not m:
            continue
        a = get(load("%s.%s" % (name, m.group(1))), "run", "throughput")
        b = get(load("%s.%s" % (base, m.group(1))), "run", "throughput")
        if a and b:
            ratios.append(a / b * 100)
    return median(ratios)

def round_forks(name):
    """Median over the rounds of NAME's throughput as a % of that round's fork loop."""
    ratios = []
    for p in glob.glob(os.path.join(out, "forkloop.*.txt")):
        run = re.search(r"forkloop\.([0-9]+)\.txt$", p).group(1)
        a, f = get(load("%s.%s" % (name, run)), "run", "throughput"), forkloop(p)
        if a and f:
            ratios.append(a / f * 100)
    return median(ratios)

pct_small = round_ratio("park_small", "empty")
pct_large = round_ratio("park_large", "empty")
pct_full = round_ratio("full", "empty")
rate_ui = get(median_run("ui_poll"), "run", "throughput")
pct_ui = round_ratio("ui_poll", "empty")
rate_exec = get(median_run("exec"), "run", "throughput")
rate_exec_net = get(median_run("exec_net"), "run", "throughput")
pct_exec_net = round_ratio("exec_net", "exec")
# What exec+net's network costs a job: the difference of the per-job times.
net_us = (1e6 / rate_exec_net - 1e6 / rate_exec) * int(workers) \
    if rate_exec and rate_exec_net else None
# PostgreSQL runs after the other rounds: the ratio of the medians.
rate_empty = get(median_run("empty"), "run", "throughput")
pct_pg = get(median_run("postgres"), "run", "throughput") / rate_empty * 100 \
    if rate_empty and median_run("postgres") else None
pct_forks = round_forks("empty")
kill_p50, kill_p99 = get(killr, "kill", "kill_ms", "p50"), get(killr, "kill", "kill_ms", "p99")
edge = load("edge")
edge_p50 = get(edge, "idle", "extra_ms", "p50")
edge_p99 = get(edge, "idle", "extra_ms", "p99")
edge_kb = get(edge, "idle", "rss_kb_per_connection")
edge_kill = get(edge, "big_result", "kill_late_ms")
edge_read = get(edge, "big_result", "read_s")
rate_mbase = get(median_run("metrics_base"), "run", "throughput")
rate_mscraped = get(median_run("metrics_scraped"), "run", "throughput")
pct_scraped = round_ratio("metrics_scraped", "metrics_base")
scrapes = []
for p in glob.glob(os.path.join(out, "metrics_scraped.*.scrapes")):
    with open(p) as f:
        scrapes += [tuple(float(x) for x in line.split()) for line in f if len(line.split()) == 2]
scrape_ms = median([s[0] * 1000 for s in scrapes])
scrape_kb = median([s[1] / 1024 for s in scrapes])
cpu_ms = []
for p in glob.glob(os.path.join(out, "metrics_scraped.*.scrape_cpu")):
    with open(p) as f:
        words = f.read().split()
    if len(words) == 2:
        cpu_ms.append(float(words[0]))
scrape_cpu_ms = median(cpu_ms)
rss_mb = max_rss_mb("park_large", 0)
children_mb = max_rss_mb("park_large", 1)

def both(report, key, unit=" ms"):
    a, b = get(report, "run", key, "p50"), get(report, "run", key, "p99")
    return "%s / %s%s" % (fmt(a, "%.1f"), fmt(b, "%.1f"), unit)

def ok(cond, *vals):
    return None if any(v is None for v in vals) else cond

rows = [
    ("fork baseline (forkloop, 1 process)", fmt(forks, "%.0f", " forks/s"), "", ""),
    ("throughput, empty queue (seccomp only)", fmt(rate, "%.0f", " jobs/s"), ">= 3000 jobs/s",
     mark(ok(rate is not None and rate >= 3000, rate))),
    ("  ratio to forkloop", fmt(pct_forks, "%.0f", "%"),
     "", ""),
    ("  submit-to-complete p50 / p99", both(empty, "latency_ms"), "", ""),
    ("  HTTP submit latency p50 / p99", both(empty, "submit_latency_ms"), "", ""),
    ("  503 retries / failed jobs", "%s / %s" % (fmt(get(empty, "run", "retries_503")),
                                                fmt(get(empty, "run", "failed"))), "", ""),
    ("  with the dashboard polling (2 s)", "%s (%s of without)" % (
        fmt(rate_ui, "%.0f", " jobs/s"), fmt(pct_ui, "%.1f", "%")), ">= 98%",
     mark(ok(pct_ui is not None and pct_ui >= 98, pct_ui))),
    ("throughput, full isolation", "%s (%s of seccomp only)" % (
        fmt(rate_full, "%.0f", " jobs/s"),
        fmt(pct_full, "%.0f", "%")),
     ">= 1000 jobs/s", mark(ok(rate_full is not None and rate_full >= 1000, rate_full))),
    ("  (namespaces, cgroup, uid per slot)", "", "", ""),
    ("  submit-to-complete p50 / p99", both(full, "latency_ms"), "", ""),
    ("exec task (/bin/echo), full isolation", fmt(rate_exec, "%.0f", " jobs/s"), "", ""),
    ("  with exec+net's network (slirp4netns)", "%s (%s of exec)" % (
        fmt(rate_exec_net, "%.0f", " jobs/s"), fmt(pct_exec_net, "%.0f", "%")), "", ""),
    ("  the network's cost per job", fmt(net_us, "%.0f", " us"), "", ""),
    ("throughput, %s parked" % park_small, "%s (%s of empty)" % (
        fmt(rate_small, "%.0f", " jobs/s"), fmt(pct_small, "%.0f", "%")), "within 10%",
     mark(ok(pct_small is not None and pct_small >= 90, pct_small))),
    ("  submit-to-complete p50 / p99", both(small, "latency_ms"), "", ""),
    ("throughput, %s parked" % park_large, "%s (%s of empty)" % (
        fmt(rate_large, "%.0f", " jobs/s"), fmt(pct_large, "%.0f", "%")), "within 10%",
     mark(ok(pct_large is not None and pct_large >= 90, pct_large))),
    ("  submit-to-complete p50 / p99", both(large, "latency_ms"), "", ""),
    ("throughput, %s tasks, /metrics unscraped" % metrics_tasks,
     fmt(rate_mbase, "%.0f", " jobs/s"), "", ""),
    ("  scraped once a second", "%s (%s of unscraped)" % (
        fmt(rate_mscraped, "%.0f", " jobs/s"), fmt(pct_scraped, "%.1f", "%")), ">= 98%",
     mark(ok(pct_scraped is not None and pct_scraped >= 98, pct_scraped))),
    ("  a scrape: time, size (medians of %d)" % len(scrapes), "%s, %s" % (
        fmt(scrape_ms, "%.1f", " ms"), fmt(scrape_kb, "%.0f", " kB")), "", ""),
    ("  valetd's CPU per scrape (2000 in a row)", "%s (%s of a CPU at 1/s)" % (
        fmt(scrape_cpu_ms, "%.3f", " ms"),
        fmt(scrape_cpu_ms and scrape_cpu_ms / 10, "%.3f", "%")), "< 2%",
     mark(ok(scrape_cpu_ms is not None and scrape_cpu_ms < 20, scrape_cpu_ms))),
    ("kill latency p50 / p99 (%s jobs)" % kill, "%s / %s ms" % (
        fmt(kill_p50, "%.2f"), fmt(kill_p99, "%.2f")), "p99 < 10 ms",
     mark(ok(kill_p99 is not None and kill_p99 < 10, kill_p99))),
    ("2,000 idle/half-sent connections:", "", "", ""),
    ("  a client's extra latency p50 / p99", "%s / %s ms" % (
        fmt(edge_p50, "%.2f"), fmt(edge_p99, "%.2f")), "< 10 ms",
     mark(ok(edge_p50 is not None and max(edge_p50, edge_p99) < 10, edge_p50, edge_p99))),
    ("  daemon memory per connection", fmt(edge_kb, "%.1f", " kB"), "", ""),
    ("100 MB result read (%s s):" % fmt(edge_read, "%.2f"), "", "", ""),
    ("  a 0.3 s job's kill, late by", fmt(edge_kill, "%.1f", " ms"), "< 10 ms",
     mark(ok(edge_kill is not None and edge_kill < 10, edge_kill))),
    ("daemon RSS, %s parked" % park_large, fmt(rss_mb, "%.1f", " MB"), "< 50 MB",
     mark(ok(rss_mb is not None and rss_mb < 50, rss_mb))),
    ("  its child processes (spawner)", fmt(children_mb, "%.1f", " MB"), "", ""),
    ("throughput, PostgreSQL (durable)", "%s (%s of memory)" % (
        fmt(rate_pg, "%.0f", " jobs/s"),
        fmt(pct_pg, "%.0f", "%")),
     ">= 2000 jobs/s", mark(ok(rate_pg is not None and rate_pg >= 2000, rate_pg))),
    ("  HTTP submit latency p50 / p99", both(pg, "submit_latency_ms"), "p99 < 20 ms",
     mark(ok(submit_p99_pg is not None and submit_p99_pg < 20, submit_p99_pg))),
    ("  submit-to-complete p50 / p99", both(pg, "latency_ms"), "", ""),
]
print("valet benchmark: %s jobs per run, %s connections, workers=%s, %d CPUs%s"
      % (jobs, conns, workers, os.cpu_count(),
         ", median of %s runs" % repeat if repeat != "1" else ""))
print()
print("%-40s %-28s %-16s %s" % ("measure", "value", "target", ""))
print("-" * 92)
for r in rows:
    print(("%-40s %-28s %-16s %s" % r).rstrip())
marks = [r[3] for r in rows if r[3]]
missing = sum(1 for r in rows if r[2] and not r[3])
print()
print("targets: %d pass, %d fail, %d not measured"
      % (marks.count("PASS"), marks.count("FAIL"), missing))
EOF
auth_summary >>"$OUT/summary.txt"
finish
