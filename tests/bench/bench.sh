#!/usr/bin/env bash
# bench.sh - valetd's throughput / latency / memory benchmark (`make bench`).
#
# Theory of operation: `make bench` has built $BUILD/valetd, the demo plugin,
# $BUILD/bench/loadgen, forkloop, cmdloop and filterdump; this script builds
# nothing.
# Each measure gets a fresh daemon (memory store unless said, workers=2,
# capacity=300000, no access log, log level warn) on a free loopback port,
# so that no run sees the jobs of another. Jobs are isolated by seccomp,
# rlimits and a user switch only ([sandbox] namespaces = false, cgroups =
# false), as the core measured them, unless the measure says "full".
#
# Rounds. BENCH_REPEAT rounds; each runs every measure of the selected
# steps once, the fork loops (the ratios' ceiling) among them, in one list
# that odd rounds run forwards and even rounds backwards: two measures
# compared with each other come in both orders. The list puts them side by
# side, for the machine's drift (a VM's speed changes over minutes) to
# reach them alike: bwrap, exec, unshare. A minute apart, two runs of the
# same code differed by up to 25% on this project's 2-core VM; back to
# back, they drift far less. Three groups go further (side_by_side): the
# fork loops, empty and full; park's three daemons; postgres' (with
# pg_mem, pg1m) - their daemons are up at once and the measures take
# turns in chunks of their timed work. The summary
# (tests/bench/summary.py, also in $BUILD/bench/summary.txt) gives each
# ratio as the median of its per-round ratios, with its target and PASS or
# FAIL. The steps (BENCH_ONLY names some; default: all) and their measures:
#   forkloop  bare fork+exit+wait per second: one loop, and one loop per core
#             at once, summed (the ceiling for `workers` = cores); and one
#             loop per core whose child loads the strict profile's seccomp
#             filter (as valetd compiles it: bench/filterdump) and exits -
#             the ceiling for a process per job with a filter of its own
#   empty     BENCH_JOBS dummytask jobs on an empty queue, seccomp only
#   full      the same with full isolation (namespaces, a cgroup per slot, a
#             uid per slot - uid_base = auto - and seccomp)
#   exec      BENCH_EXEC_JOBS exec tasks (/bin/echo {}) under full isolation,
#             then with profile exec+net (a network namespace per slot served
#             by slirp4netns)
#   tools     what a user would pick instead, each run by 2 loops at once
#             (tests/bench/cmdloop.c): `bwrap --unshare-all --ro-bind / /
#             --dev /dev --proc /proc true` and `unshare -p -f -n -m -i -u true`
#   ui_poll   step empty with the web dashboard's polling beside it
#             (tests/bench/ui_poll.py: the page's requests every 2 s)
#   park      step empty's jobs on three daemons side by side: park_large
#             (BENCH_PARK_LARGE jobs parked, run_at an hour ahead; its RSS),
#             park_empty (none) and park_small (BENCH_PARK_SMALL)
#   metrics   step empty on a daemon with BENCH_METRICS_TASKS more (exec)
#             tasks, so that a scrape is large, without and with a scraper
#             that GETs /metrics once a second (its time and size per scrape
#             in $OUT/metrics_scraped.RUN.scrapes); then 2000 scrapes back to
#             back and the daemon's CPU time per scrape (/proc/PID/stat)
#   auth      park BENCH_AUTH_JOBS jobs (the submit path alone, no child) on a
#             daemon without API keys and on one with a keys file of 10 keys;
#             the submit rates and the daemon's CPU time per submit
#   noop      the queue engine alone: BENCH_NOOP_JOBS jobs on `valetd --bench-noop`
#             (jobs complete in the daemon, no process: HTTP + core + queue +
#             storage per job), memory store and PostgreSQL
#   postgres  step empty's jobs with storage = postgres: a throwaway
#             PostgreSQL on this machine (tests/pg_tmp.sh with
#             PG_TMP_DURABLE=1: fsync and synchronous_commit on), a fresh
#             schema per run, an untimed warm-up run of 2000 jobs before the
#             rounds and a CHECKPOINT after each chunk (so that its writes
#             are not left to the next); side by side with pg_mem, a
#             memory-store daemon (and pg1m, when it runs)
#   pg1m      a third daemon in step postgres, with BENCH_PG_PARK jobs
#             (1,000,000) queued in the database: parked once, before the
#             rounds, in a schema of their own that every round's run then
#             uses, by one INSERT ... SELECT
#             through psql (status PENDING, run_at = due_at a day ahead,
#             unclaimed: the row the API writes for such a submit - at a few
#             thousand submits a second the API would take minutes), then
#             VACUUM ANALYZE, as autovacuum would
#   kill      kill latency: BENCH_KILL jobs that sleep 10 s under a 50 ms timeout
#   edge      the HTTP edge (tests/bench/http_edge.py): a client's extra
#             latency with 2,000 idle and half-sent connections open, the
#             daemon's memory per connection, and how late a 0.3 s job is
#             killed while another client reads a 100 MB result
# A step that a selected step is compared with runs too: full and ui_poll
# bring empty (park and postgres have their own); exec brings tools and tools
# exec; pg1m brings postgres; noop needs nothing. kill and edge run once, after the
# rounds. The loadgen reports (JSON), the loops' outputs and the daemon logs
# stay in $BUILD/bench/.
#
# Knobs (environment): BENCH_JOBS=10000 BENCH_EXEC_JOBS=3000 BENCH_NOOP_JOBS=40000
# BENCH_CONNS=8
# BENCH_WORKERS=2 BENCH_PARK_SMALL=10000 BENCH_PARK_LARGE=100000
# BENCH_PG_PARK=1000000 BENCH_KILL=200 BENCH_AUTH_JOBS=20000
# BENCH_METRICS_TASKS=200 BENCH_LOOP_SECONDS=3 (each fork or tool loop)
# BENCH_REPEAT=3 (rounds), BENCH_CHUNKS=4 (chunks a measure in the groups),
# BENCH_ONLY="step ..." (default: all),
# BENCH_TIMEOUT=600 (seconds per loadgen run), BENCH_STRICT=1 (exit 1 when a
# target is missed or not measured; by default only a failed step does).
#
# A/B mode: BENCH_BASELINE=DIR, another build directory (its valetd and
# tasks/demo.so; its valetd finds its own spawner, if it has one, beside
# itself), is A and $BUILD is B; both are driven by $BUILD's loadgen and
# forkloop. Each round runs the fork loops, then steps empty and full for A
# and B - A.empty B.empty A.full B.full, backwards in even rounds, so that
# a pair runs close together and neither build always goes first. After the
# rounds, for B only: the daemon's RSS with BENCH_PARK_LARGE jobs parked
# (parked only, no timed jobs) and step kill. The summary gives per round
# each run's jobs/s, its ratio to that round's fork loop (one per core) and
# B/A; then per build the medians, and the median of the per-round B/A,
# whose target is >= 0.95: B no worse than A, with 5% left for the VM's
# noise (BENCH_BASELINE=$BUILD, an A/A run, shows how much).
set -u

BUILD=${BUILD:-build}
JOBS=${BENCH_JOBS:-10000}
NOOP_JOBS=${BENCH_NOOP_JOBS:-40000}
EXEC_JOBS=${BENCH_EXEC_JOBS:-3000}
CONNS=${BENCH_CONNS:-8}
WORKERS=${BENCH_WORKERS:-2}
PARK_SMALL=${BENCH_PARK_SMALL:-10000}
PARK_LARGE=${BENCH_PARK_LARGE:-100000}
PG_PARK=${BENCH_PG_PARK:-1000000}
KILL=${BENCH_KILL:-200}
REPEAT=${BENCH_REPEAT:-3}
METRICS_TASKS=${BENCH_METRICS_TASKS:-200}
ONLY=${BENCH_ONLY:-}
TIMEOUT=${BENCH_TIMEOUT:-600}
AUTH_JOBS=${BENCH_AUTH_JOBS:-20000}
CHUNKS=${BENCH_CHUNKS:-4}
LOOP_SECONDS=${BENCH_LOOP_SECONDS:-3}
CORES=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
STEPS="forkloop empty full exec tools ui_poll park metrics auth noop postgres pg1m kill edge"

for s in $ONLY; do
	case " $STEPS " in
	*" $s "*) ;;
	*)
		echo "bench: BENCH_ONLY: unknown step $s (steps: $STEPS)" >&2
		exit 2
		;;
	esac
done

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
CMDLOOP=$BUILD/bench/cmdloop
FILTERDUMP=$BUILD/bench/filterdump
OUT=$BUILD/bench
for f in "$VALETD" "$LOADGEN" "$FORKLOOP" "$CMDLOOP" "$FILTERDUMP"; do
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
	"$OUT"/*.cpu "$OUT"/*.txt
# The strict profile's program, as this build's valetd compiles it.
if ! "$FILTERDUMP" strict >"$OUT/strict.bpf"; then
	echo "bench: cannot write the strict profile's filter" >&2
	exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/valet-bench.XXXXXX")
DAEMON_PID=
PAIR_PIDS=
FAILED_STEPS=0
PG_DIR=
PG_URL=

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	stop_daemon
	local pid
	for pid in $PAIR_PIDS; do
		DAEMON_PID=$pid stop_daemon
	done
	if [ -n "$PG_DIR" ]; then
		tests/pg_tmp.sh stop "$PG_DIR" >/dev/null 2>&1
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed() {
	FAILED_STEPS=$((FAILED_STEPS + 1))
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
		2>/dev/null || echo $((20000 + RANDOM % 40000))
}

# start_daemon NAME: a fresh valetd on a free port; its log goes to
# $OUT/NAME.valetd.log. The valetd and tasks/ of DAEMON_BUILD (default
# $BUILD); FULL_ISOLATION=1, STORAGE_CONF, EXTRA_CONF (config text) and
# DAEMON_ARGS (valetd's options) change it.
start_daemon() {
	local name=$1 build=${DAEMON_BUILD:-$BUILD} conf
	# A file of its own: two daemons of a pair run at once, and a daemon
	# reloads its config when the file changes.
	conf=$TMP/$name.conf
	PORT=$(free_port)
	cat >"$conf" <<-EOF
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
		printf '[task.echo_net]\ncommand = /bin/echo {}\nprofile = exec+net\n' >>"$conf"
	fi
	printf '[sandbox]\n' >>"$conf"
	# Full isolation: the defaults (uid_base = auto: a block of uids no
	# other valetd holds, so that benchmarks side by side do not collide).
	if [ "${FULL_ISOLATION:-0}" != 1 ]; then
		printf 'namespaces = false\ncgroups = false\n' >>"$conf"
	fi
	if [ -n "${STORAGE_CONF:-}" ]; then
		printf '%s\n' "$STORAGE_CONF" >>"$conf"
	fi
	if [ -n "${EXTRA_CONF:-}" ]; then
		printf '%s\n' "$EXTRA_CONF" >>"$conf"
	fi
	# shellcheck disable=SC2086 # DAEMON_ARGS: words
	"$build/valetd" -c "$conf" -l "127.0.0.1:$PORT" ${DAEMON_ARGS:-} \
		2>"$OUT/$name.valetd.log" &
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
		failed
		return 1
	fi
}

# rss_kb PID: VmRSS of one process in kB.
rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

# cpu_ticks PID: the user and system CPU time of a process, in clock ticks.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
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

# park_jobs NAME N: park N jobs (run_at an hour ahead, untimed; none when N
# is 0) in the daemon at $PORT, report in $OUT/NAME.park.json, then its
# RSS (record_rss NAME).
park_jobs() {
	[ "$2" -gt 0 ] || return 0
	loadgen "$1.park" --park "$2" --jobs 0 && record_rss "$1"
}

# want STEP: whether the step runs: BENCH_ONLY (empty: all) names it, or
# names a step that is compared with it.
want() {
	[ -z "$ONLY" ] && return 0
	local s
	for s in $ONLY; do
		case "$s:$1" in
		"$1:$1" | full:empty | ui_poll:empty | exec:tools | tools:exec | \
			pg1m:postgres) return 0 ;;
		esac
	done
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

# measure NAME RUN PARK: one run on a fresh daemon: park PARK jobs (not timed,
# RSS read after), then the timed jobs (MEASURE_JOBS, default BENCH_JOBS, of
# MEASURE_TASK, default dummytask); report in $OUT/NAME.RUN.json, the
# daemon's CPU ticks over its life in $OUT/NAME.RUN.cpu. UI_POLL=1: the
# dashboard's polling beside the run; SCRAPE=1: a scraper of /metrics.
measure() {
	local name=$1 run=$2 park=$3
	if ! start_daemon "$name.$run"; then
		failed
		return
	fi
	if ! park_jobs "$name.$run" "$park"; then
		stop_daemon
		return
	fi
	local poller='' scraper_pid=''
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
		wait "$poller" || failed
	fi
	if [ -n "$scraper_pid" ]; then
		kill "$scraper_pid" 2>/dev/null
		wait "$scraper_pid" 2>/dev/null
		scrape_cpu >"$OUT/$name.$run.scrape_cpu"
	fi
	# The daemon's CPU time (utime + stime, clock ticks): what a run cost
	# valetd itself, which the machine's other load changes less than jobs/s.
	cpu_ticks "$DAEMON_PID" >"$OUT/$name.$run.cpu"
	stop_daemon
}

# side_by_side RUN NAME PARK KIND [NAME PARK KIND]...: measures compared
# with each other, taking turns. KIND: mem (a daemon, memory store), full
# (the same with full isolation), pg:SCHEMA (a daemon on the bench's
# PostgreSQL, in SCHEMA), loop (the fork loops of step forkloop, no
# daemon). The daemons are up at once; each parks its PARK jobs (not timed;
# its RSS after). Then the timed work runs in BENCH_CHUNKS chunks a
# measure - BENCH_JOBS / BENCH_CHUNKS jobs, or each fork loop for
# BENCH_LOOP_SECONDS / BENCH_CHUNKS -, the measures in order, then
# backwards, and so on (A B B A A B ...; A B C C B A ...), backwards first
# in even rounds. So whatever the machine's speed does over the minute or
# two reaches them alike: measures named next to each other are never
# more than a chunk apart. A CHECKPOINT (untimed) follows each chunk on
# PostgreSQL, as pg_measure does after its run. $OUT/NAME.RUN.cK.json (or
# .txt) are the chunks' reports, NAME.RUN.json (.txt) their merge
# (merge_chunks, merge_loops), NAME.RUN.cpu each daemon's CPU ticks over
# its life.
side_by_side() {
	local run=$1 i k n name ok=1 order loop_s
	shift
	loop_s=$(awk "BEGIN { print $LOOP_SECONDS / $CHUNKS }")
	local -a names=() parks=() kinds=() pids=() ports=()
	while [ $# -ge 3 ]; do
		names+=("$1") parks+=("$2") kinds+=("$3")
		shift 3
	done
	for i in "${!names[@]}"; do
		local sc='' full=0
		case ${kinds[i]} in
		loop) continue ;;
		full) full=1 ;;
		pg:*) sc=$(pg_conf "${kinds[i]#pg:}") ;;
		esac
		if ! FULL_ISOLATION=$full STORAGE_CONF=$sc start_daemon "${names[i]}.$run"; then
			failed
			ok=0
			break
		fi
		pids[i]=$DAEMON_PID ports[i]=$PORT
		PAIR_PIDS="$PAIR_PIDS $DAEMON_PID"
		if ! park_jobs "${names[i]}.$run" "${parks[i]}"; then
			ok=0
			break
		fi
	done
	DAEMON_PID=
	order=$(seq 0 $((${#names[@]} - 1)))
	[ $((run % 2)) = 0 ] && order=$(echo "$order" | tac)
	for k in $(seq "$CHUNKS"); do
		[ "$ok" = 1 ] || break
		n=$((JOBS / CHUNKS))
		[ "$k" = "$CHUNKS" ] && n=$((JOBS - n * (CHUNKS - 1)))
		for i in $order; do
			name=${names[i]}.$run
			if [ "${kinds[i]}" = loop ]; then
				LOOP_SECONDS=$loop_s forkloops "$run.c$k"
				continue
			fi
			if ! PORT=${ports[i]} loadgen "$name.c$k" --jobs "$n" --samples; then
				ok=0
				break
			fi
			case ${kinds[i]} in
			pg:*) psql_bench "${kinds[i]#pg:}" CHECKPOINT || failed ;;
			esac
		done
		order=$(echo "$order" | tac)
	done
	for i in "${!names[@]}"; do
		if [ "${kinds[i]}" = loop ]; then
			[ "$ok" = 1 ] && merge_loops "$run"
			continue
		fi
		[ -n "${pids[i]:-}" ] || continue
		cpu_ticks "${pids[i]}" >"$OUT/${names[i]}.$run.cpu"
		DAEMON_PID=${pids[i]} stop_daemon
		[ "$ok" = 1 ] && merge_chunks "${names[i]}.$run"
	done
	PAIR_PIDS=
}

# merge_loops RUN: the fork loops' chunks of round RUN (forkloop*.RUN.cK.txt)
# as one output each, forkloop*.RUN.txt: the mean of the chunks' rates
# (each ran as long).
merge_loops() {
	local f rates
	for f in forkloop forkloop_cores forkloop_filter; do
		rates=$(cat "$OUT/$f.$1".c*.txt 2>/dev/null | sed -n 's/^forkloop: \([0-9.]*\) forks\/s.*/\1/p')
		if [ -z "$rates" ]; then
			failed
			continue
		fi
		echo "$rates" | awk '{ s += $1; n++ } END { printf "forkloop: %.0f forks/s (mean of %d chunks)\n", s / n, n }' \
			>"$OUT/$f.$1.txt"
	done
}

# merge_chunks NAME: $OUT/NAME.cK.json (K = 1..BENCH_CHUNKS) as one report,
# $OUT/NAME.json: the jobs and their final states summed, the throughput
# all jobs over the chunks' spans summed, the percentiles over every job's
# samples (loadgen --samples), and each chunk's throughput ("chunks").
merge_chunks() {
	python3 - "$OUT/$1" "$CHUNKS" <<-'PY' || failed
		import json, math, sys
		base, n = sys.argv[1], int(sys.argv[2])
		runs = [json.load(open("%s.c%d.json" % (base, k)))["run"] for k in range(1, n + 1)]
		def pct(v, q):
		    v = sorted(v)
		    return v[max(1, math.ceil(q * len(v))) - 1] if v else None
		out = {k: sum(r[k] for r in runs) for k in
		       ("jobs", "accepted", "submit_errors", "retries_503", "completed", "failed",
		        "cancelled", "unfinished")}
		span = sum(r["span_seconds"] for r in runs)
		final = out["completed"] + out["failed"] + out["cancelled"]
		out["span_seconds"] = round(span, 3)
		out["throughput"] = round(final / span, 3)
		out["submit_seconds"] = round(sum(r["submit_seconds"] for r in runs), 3)
		out["submit_rate"] = round(out["accepted"] / out["submit_seconds"], 3)
		for key in ("submit_latency_ms", "latency_ms"):
		    v = [x for r in runs for x in r["samples"][key]]
		    out[key] = {"p50": pct(v, 0.50), "p99": pct(v, 0.99)}
		    if key == "latency_ms":
		        out[key]["max"] = max(v) if v else None
		out["chunks"] = [r["throughput"] for r in runs]
		json.dump({"run": out, "ok": all(r["unfinished"] == 0 for r in runs)},
		          open(base + ".json", "w"), indent=2)
	PY
}

# pg_conf SCHEMA: the [storage] section of a daemon on the bench's server.
pg_conf() {
	printf '[storage]\nbackend = postgres\ndatabase_url = %s\nschema = %s\nnode_id = bench\n' \
		"$PG_URL" "$1"
}

# psql_bench SCHEMA SQL: one statement on the bench's server.
psql_bench() {
	PGOPTIONS="-c search_path=$1" psql -X -q -v ON_ERROR_STOP=1 -d "$PG_URL" -c "$2" \
		>>"$OUT/postgres.psql.log" 2>&1
}

# pg_measure NAME RUN SCHEMA: measure NAME RUN on PostgreSQL, then a
# CHECKPOINT, untimed, so that the run's writes are not left to the next.
pg_measure() {
	STORAGE_CONF=$(pg_conf "$3") measure "$1" "$2" 0
	psql_bench "$3" CHECKPOINT || failed
}

# pg_park: the pg1m step's BENCH_PG_PARK parked jobs, in schema bench_pg1m
# (created by a daemon's migrations, then filled through psql: see the top).
pg_park() {
	echo "bench: pg1m: parking $PG_PARK jobs in PostgreSQL (INSERT ... SELECT)" >&2
	if ! STORAGE_CONF=$(pg_conf bench_pg1m) start_daemon pg1m.setup; then
		failed
		return 1
	fi
	# It listens before its migrations are done.
	for _ in $(seq 300); do
		[ "$(psql -X -At -d "$PG_URL" -c "SELECT to_regclass('bench_pg1m.jobs') IS NOT NULL")" = t ] &&
			break
		sleep 0.1
	done
	stop_daemon
	local t0=$SECONDS
	if ! psql_bench bench_pg1m "INSERT INTO jobs (id, name, task_name, task_params,
			timeout_ms, status, run_at, due_at, created_at, max_attempts)
		SELECT gen_random_uuid(), 'parked', 'dummytask', jsonb_build_object('i', g), 60000,
			'PENDING', now() + interval '1 day', now() + interval '1 day', now(), 1
		FROM generate_series(1, $PG_PARK) g" ||
		! psql_bench bench_pg1m "VACUUM ANALYZE jobs" ||
		! psql_bench bench_pg1m CHECKPOINT; then
		echo "bench: pg1m: parking failed; see $OUT/postgres.psql.log" >&2
		failed
		return 1
	fi
	echo "parked $PG_PARK jobs in $((SECONDS - t0)) s" >"$OUT/pg1m.park.txt"
}

# pg_start: the throwaway durable server, and the warm-up run. Its own
# directory under /tmp: the server runs as user postgres, who cannot enter
# $TMP (mode 0700).
pg_start() {
	PG_DIR=$(mktemp -u /tmp/valet-bench-pg.XXXXXX)
	if ! PG_URL=$(PG_TMP_DURABLE=1 tests/pg_tmp.sh start "$PG_DIR" 2>"$OUT/postgres.server.log"); then
		echo "bench: no PostgreSQL server for the postgres steps:" >&2
		tail -3 "$OUT/postgres.server.log" >&2
		PG_DIR=
		failed
		return 1
	fi
	STORAGE_CONF=$(pg_conf bench_warmup) MEASURE_JOBS=2000 measure postgres warmup 0
}

# auth_run off|on RUN: step auth's measure, report auth_WHICH.RUN.json, and
# the daemon's CPU time over the submits in auth_WHICH.RUN.cpu.
auth_run() {
	local which=$1 run=$2 before
	if [ ! -s "$TMP/bench.token" ]; then
		for k in $(seq 10); do
			"$VALETD" --file "$TMP/keys" key create "bench$k" --scopes submit,read \
				>"$TMP/bench.token" 2>/dev/null || failed
		done
	fi
	local conf=
	[ "$which" = on ] && conf="[server]
auth_keys = $TMP/keys"
	if ! EXTRA_CONF=$conf start_daemon "auth_$which.$run"; then
		failed
		return
	fi
	before=$(cpu_ticks "$DAEMON_PID")
	loadgen "auth_$which.$run" --park "$AUTH_JOBS" --jobs 0 \
		${conf:+--token "$(cat "$TMP/bench.token")"}
	echo "$(($(cpu_ticks "$DAEMON_PID") - before)) $(getconf CLK_TCK)" >"$OUT/auth_$which.$run.cpu"
	stop_daemon
}

# loop NAME RUN PROGRAM...: a tool run in 2 loops at once (cmdloop), in $OUT/NAME.RUN.txt.
loop() {
	local name=$1 run=$2
	shift 2
	echo "bench: $name ($run): cmdloop $*" >&2
	"$CMDLOOP" -j 2 -t "$LOOP_SECONDS" -- "$@" >"$OUT/$name.$run.txt" 2>"$OUT/$name.$run.log" || {
		echo "bench: $name: $(cat "$OUT/$name.$run.log")" >&2
		failed
	}
}

# forkloops RUN: step forkloop: one loop, then one per core at once, then
# one per core at once whose children load the strict filter.
forkloops() {
	echo "bench: forkloop ($1)" >&2
	"$FORKLOOP" "$LOOP_SECONDS" >"$OUT/forkloop.$1.txt" || failed
	"$FORKLOOP" "$LOOP_SECONDS" "$CORES" >"$OUT/forkloop_cores.$1.txt" || failed
	"$FORKLOOP" -f "$OUT/strict.bpf" "$LOOP_SECONDS" "$CORES" \
		>"$OUT/forkloop_filter.$1.txt" || failed
}

# one MEASURE RUN: one measure of a round (see measures).
one() {
	local run=$2
	case $1 in
	base)
		# shellcheck disable=SC2046 # three words a measure, or none
		side_by_side "$run" $(want forkloop && echo forkloop 0 loop) \
			$(want empty && echo empty 0 mem) $(want full && echo full 0 full)
		;;
	exec) FULL_ISOLATION=1 MEASURE_TASK=echo MEASURE_JOBS=$EXEC_JOBS measure exec "$run" 0 ;;
	exec_net)
		FULL_ISOLATION=1 MEASURE_TASK=echo_net MEASURE_JOBS=$EXEC_JOBS measure exec_net "$run" 0
		;;
	bwrap) loop bwrap "$run" bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc true ;;
	unshare) loop unshare "$run" unshare -p -f -n -m -i -u true ;;
	ui_poll) UI_POLL=1 measure ui_poll "$run" 0 ;;
	park)
		side_by_side "$run" park_large "$PARK_LARGE" mem park_empty 0 mem \
			park_small "$PARK_SMALL" mem
		;;
	metrics_base) EXTRA_CONF=$(metrics_tasks) measure metrics_base "$run" 0 ;;
	metrics_scraped) EXTRA_CONF=$(metrics_tasks) SCRAPE=1 measure metrics_scraped "$run" 0 ;;
	auth_off) auth_run off "$run" ;;
	auth_on) auth_run on "$run" ;;
	noop) MEASURE_JOBS=$NOOP_JOBS DAEMON_ARGS=--bench-noop measure noop "$run" 0 ;;
	noop_pg)
		MEASURE_JOBS=$NOOP_JOBS DAEMON_ARGS=--bench-noop pg_measure noop_pg "$run" "bench_noop_$run"
		;;
	postgres)
		# shellcheck disable=SC2046 # pg1m's three words, or none
		side_by_side "$run" pg_mem 0 mem postgres 0 "pg:bench_$run" \
			$(want pg1m && [ -s "$OUT/pg1m.park.txt" ] && echo pg1m 0 pg:bench_pg1m)
		;;
	A.* | B.*)
		DAEMON_BUILD=$(if [ "${1%%.*}" = A ]; then echo "$BASELINE"; else echo "$BUILD"; fi) \
			FULL_ISOLATION=$([ "${1#*.}" = full ] && echo 1 || echo 0) measure "$1" "$run" 0
		;;
	*)
		echo "bench: unknown measure $1" >&2
		failed
		;;
	esac
}

# measures: the round's list, from the steps that run (A/B: its own).
measures() {
	if [ -n "$BASELINE" ]; then
		echo A.empty B.empty A.full B.full
		return
	fi
	local m=
	{ want forkloop || want empty || want full; } && m="$m base"
	want park && m="$m park"
	want ui_poll && m="$m ui_poll"
	want tools && m="$m bwrap"
	want exec && m="$m exec"
	want tools && m="$m unshare"
	want exec && m="$m exec_net"
	want metrics && m="$m metrics_base metrics_scraped"
	want auth && m="$m auth_off auth_on"
	want noop && m="$m noop"
	[ -n "$PG_URL" ] && want noop && m="$m noop_pg"
	[ -n "$PG_URL" ] && want postgres && m="$m postgres"
	echo "$m"
}

# round RUN: the measures, backwards in even rounds (A/B: the fork loops
# first, then its measures).
round() {
	local run=$1 list m
	[ -n "$BASELINE" ] && forkloops "$run"
	list=$(measures)
	if [ $((run % 2)) = 0 ]; then
		list=$(echo "$list" | tr ' ' '\n' | tac | tr '\n' ' ')
	fi
	for m in $list; do
		one "$m" "$run"
	done
}

# edge: the HTTP edge (tests/bench/http_edge.py), report in $OUT/edge.json.
# The 100 MB result comes from an exec task; its script lives in $OUT,
# which the job's view of the file system shows.
edge() {
	cat >"$OUT/big_result.sh" <<-'SH'
		#!/bin/sh
		printf '"'; head -c 100000000 /dev/zero | tr '\000' a; printf '"'
	SH
	chmod 755 "$OUT/big_result.sh"
	local conf
	conf="[jobs]
max_result_size = 200M
max_output_size = 200M
[task.big]
command = $(cd "$OUT" && pwd)/big_result.sh
[task.sleeper]
command = /bin/sleep 10"
	if EXTRA_CONF=$conf start_daemon edge; then
		echo "bench: edge: http_edge.py" >&2
		python3 tests/bench/http_edge.py --port "$PORT" --pid "$DAEMON_PID" --big \
			>"$OUT/edge.json" 2>"$OUT/edge.log" || failed
		stop_daemon
	else
		failed
	fi
}

# after: what runs once, after the rounds.
after() {
	if [ -n "$BASELINE" ]; then
		# This build's memory with the large queue: parked jobs only.
		if start_daemon B.park_large; then
			park_jobs B.park_large "$PARK_LARGE"
			stop_daemon
		else
			failed
		fi
	fi
	if want kill || [ -n "$BASELINE" ]; then
		if start_daemon kill; then
			loadgen kill --kill "$KILL" --jobs 0
			stop_daemon
		else
			failed
		fi
	fi
	[ -z "$BASELINE" ] && want edge && edge
}

# finish: the summary; the exit status (see BENCH_STRICT).
finish() {
	python3 tests/bench/summary.py --out "$OUT" --repeat "$REPEAT" --jobs "$JOBS" \
		--exec-jobs "$EXEC_JOBS" --noop-jobs "$NOOP_JOBS" --conns "$CONNS" --workers "$WORKERS" --cores "$CORES" \
		--park-small "$PARK_SMALL" --park-large "$PARK_LARGE" --pg-park "$PG_PARK" \
		--kill "$KILL" --metrics-tasks "$METRICS_TASKS" --auth-jobs "$AUTH_JOBS" \
		${BASELINE:+--baseline "$BASELINE" --build "$BUILD"} >"$OUT/summary.txt" || failed
	cat "$OUT/summary.txt"
	echo "bench: reports in $OUT/ (summary.txt, *.json, *.txt, *.log); $SECONDS s in all" >&2
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
if [ -z "$BASELINE" ] && { want postgres || want noop; }; then
	if pg_start && want pg1m; then
		pg_park
	fi
fi
for run in $(seq "$REPEAT"); do
	round "$run"
done
after
finish
