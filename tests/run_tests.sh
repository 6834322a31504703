#!/bin/sh
# Run valet's whole test suite: every cmocka unit binary $BUILD/tests/test_*,
# the libFuzzer harnesses $BUILD/fuzz/fuzz_* (tests/fuzz/fuzz.sh: each
# replays its corpus, then fuzzes for a short while), then the Python
# integration suites (tests/integration, and the hostile-task suite in
# tests/hostile) against the real valetd in $BUILD.
#
# Each binary and suite prints its name and result; then every skipped test
# with its reason; the last line is a plain
#   N passed, M failed, K skipped
# (test cases, summed over everything) and the exit status is non-zero when
# anything failed, or when nothing ran at all.
#
# A skip says why, as a line "SKIP(kind): reason" (tests/unit/skip.h; run.py
# prints one per skipped Python test, whose reason starts with "host: " or
# "asan: " for those kinds). Kinds: host (this host or kernel cannot run the
# test: no IA32 emulation, cgroup v1), asan (not under the sanitizers), needs
# (a prerequisite is missing: root, PostgreSQL, a program). A cmocka skip
# without a reason counts as needs. VALET_TEST_STRICT=1 (the default when
# run as root, as `make test` and CI are, since then deps.sh and
# tests/pg_tmp.sh provide every prerequisite) makes each "needs" skip a
# failure; 0 only reports it.
#
# Before anything runs, tests/pg_tmp.sh starts a throwaway PostgreSQL server
# in a temporary directory; VALET_TEST_DATABASE_URL (its libpq URL) and
# VALET_TEST_PG_DIR (its directory, for tests/pg_tmp.sh restart) are exported
# to every unit binary and suite, and the server is stopped and removed on
# exit. When it cannot start, that counts as a failure. A caller that sets
# VALET_TEST_DATABASE_URL brings its own database and no server is started.
#
# Environment: BUILD (default build), VALET_TEST_TIMEOUT (seconds per
# integration suite, default 900), VALET_TEST_FUZZ_TIME (seconds each fuzz
# harness fuzzes after its corpus, default 15; 0 = replay only; a harness
# counts as one test), SUITES (integration modules to run,
# default: DEFAULT_SUITES below). MODULE@STORE runs MODULE with VALET_TEST_STORE=STORE
# (memory or postgres), so that its daemons use that store; a plain MODULE
# keeps the caller's VALET_TEST_STORE (unset: memory).
# The API contract (test_api, test_api_refused), what a job gets
# (test_isolation) and valetd's command line (test_valetd_cli) run on both
# stores.
set -u

cd "$(dirname "$0")/.." || exit 2
BUILD=${BUILD:-build}
export BUILD

# Harmless in a normal build; in `make asan` they make sanitizer reports
# fail the run and keep crashing test tasks crashing with their own signal.
export ASAN_OPTIONS=handle_segv=0:handle_abort=0:handle_sigfpe=0:handle_sigbus=0:handle_sigill=0:detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
case "$BUILD" in
*/asan*) export VALET_ASAN=1 ;;
esac

if [ -z "${VALET_TEST_STRICT:-}" ]; then
	VALET_TEST_STRICT=0
	[ "$(id -u)" = 0 ] && VALET_TEST_STRICT=1
fi
DEFAULT_SUITES="
test_layout
test_api
test_api@postgres
test_api_refused
test_api_refused@postgres
test_isolation
test_isolation@postgres
test_valetd_cli
test_valetd_cli@postgres
test_http
test_auth
test_auth_pg@postgres
test_tls
test_pg@postgres
test_pg_cluster@postgres
test_pg_schema@postgres
test_pg_upgrade@postgres
test_grafana@postgres
test_exec
test_hostile
test_escapes
test_slotns
test_forker
test_examples
test_service
test_hosts
test_cli
test_openapi
test_ui
test_metrics
test_metrics@postgres
test_bench_noop
test_bench_noop@postgres
"
SUITES=${SUITES:-$DEFAULT_SUITES}
passed=0
failed=0
skipped=0
ran=0
log=$(mktemp "${TMPDIR:-/tmp}/valet-tests.XXXXXX") || exit 2
skips=$(mktemp "${TMPDIR:-/tmp}/valet-skips.XXXXXX") || exit 2
pg_dir=""
fuzz_new=""

cleanup() {
	rm -f "$log" "$skips"
	if [ -n "$fuzz_new" ]; then
		rm -rf "$fuzz_new"
	fi
	if [ -n "$pg_dir" ]; then
		tests/pg_tmp.sh stop "$pg_dir" || echo "postgres: could not stop the test server in $pg_dir" >&2
	fi
}
trap cleanup EXIT
# Make an interrupt run the EXIT trap too, so that the server is stopped.
trap 'exit 130' INT
trap 'exit 143' TERM

# The test server. Its directory is under /tmp, not $TMPDIR: the unix
# socket's path must stay short, and the postgres user must reach it.
if [ -z "${VALET_TEST_DATABASE_URL:-}" ]; then
	pg_dir=$(mktemp -d /tmp/valet-pg.XXXXXX) || exit 2
	if url=$(tests/pg_tmp.sh start "$pg_dir" 2>"$log"); then
		VALET_TEST_DATABASE_URL=$url
		VALET_TEST_PG_DIR=$pg_dir
		export VALET_TEST_DATABASE_URL VALET_TEST_PG_DIR
		echo "postgres: test server at $url"
	else
		cat "$log"
		echo "postgres: FAILED to start a test server (tests/pg_tmp.sh start $pg_dir);" \
			"the PostgreSQL tests will fail"
		failed=$((failed + 1))
		rm -rf "$pg_dir"
		pg_dir=""
	fi
fi

# Sum the numbers that follow "[  PASSED  ]" / "[  FAILED  ]" in cmocka's
# summary lines ("[  PASSED  ] 3 test(s).", "[  FAILED  ] 1 test(s), listed below:").
cmocka_count() {
	sed -n "s/^\[  $1  \] \([0-9][0-9]*\) test(s).*/\1/p" "$log" |
		awk '{ n += $1 } END { print n + 0 }'
}

# Collect the "SKIP(kind): reason" lines of $log as "NAME: kind: reason"
# lines in $skips; with $2 > 0, add "needs" lines for the skips that gave no
# reason ($2 is how many tests the log says were skipped).
collect_skips() {
	n=$(sed -n "s|.*SKIP(\([a-z]*\)): *\(.*\)|$1: \1: \2|p" "$log" | tee -a "$skips" | wc -l)
	while [ "$n" -lt "${2:-0}" ]; do
		echo "$1: needs: a skip that gave no reason" >>"$skips"
		n=$((n + 1))
	done
}

for bin in "$BUILD"/tests/test_*; do
	if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
		continue
	fi
	ran=$((ran + 1))
	name=$(basename "$bin")
	"$bin" >"$log" 2>&1
	rc=$?
	p=$(cmocka_count PASSED)
	f=$(cmocka_count FAILED)
	# "[  SKIPPED ] 2 test(s), listed below:"
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9][0-9]*\) test(s).*/\1/p' "$log" |
		awk '{ n += $1 } END { print n + 0 }')
	collect_skips "$name" "$s"
	skipped=$((skipped + s))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		# Crashed, or failed outside a test case: count it once.
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$f" -ne 0 ]; then
		cat "$log"
		echo "$name: FAILED ($p passed, $f failed, $s skipped, exit status $rc)"
	else
		echo "$name: ok ($p passed, $s skipped)"
	fi
done

# The fuzz harnesses, one at a time. What they find stays out of the
# repository and out of the next run (a scratch directory, removed).
fuzz_new=$(mktemp -d "${TMPDIR:-/tmp}/valet-fuzz.XXXXXX") || exit 2
for bin in "$BUILD"/fuzz/fuzz_*; do
	if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
		continue
	fi
	ran=$((ran + 1))
	if FUZZ_NEW=$fuzz_new FUZZ_MERGE=0 tests/fuzz/fuzz.sh -t "${VALET_TEST_FUZZ_TIME:-15}" \
		"${bin##*/fuzz_}"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
done
rm -rf "$fuzz_new"
fuzz_new=""

for suite in $SUITES; do
	ran=$((ran + 1))
	module=${suite%%@*}
	store=""
	case "$suite" in
	*@memory|*@postgres) store=${suite#*@} ;;
	*@*)
		echo "integration/$suite: FAILED (unknown store; use @memory or @postgres)"
		failed=$((failed + 1))
		continue
		;;
	esac
	echo "integration/$suite"
	# shellcheck disable=SC2086 # ${store:+...} is one word or nothing
	env ${store:+VALET_TEST_STORE=$store} python3 tests/integration/run.py "$module" 2>&1 |
		tee "$log"
	line=$(grep '^RESULT [0-9]* [0-9]* [0-9]*$' "$log" | tail -n 1)
	if [ -n "$line" ]; then
		# shellcheck disable=SC2086 # split "RESULT p f s" into words
		set -- $line
		p=$2
		f=$3
		s=$4
	else
		# The runner died before it could report.
		p=0
		f=1
		s=0
	fi
	collect_skips "integration/$suite" 0
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	if [ "$f" -ne 0 ]; then
		echo "integration/$suite: FAILED ($p passed, $f failed, $s skipped)"
	else
		echo "integration/$suite: ok ($p passed, $s skipped)"
	fi
done

if [ "$ran" -eq 0 ]; then
	echo "no tests found in $BUILD/tests" >&2
	failed=$((failed + 1))
fi
if [ -s "$skips" ]; then
	echo "skipped:"
	sed 's/^/  /' "$skips"
	needs=$(grep -c '^[^:]*: needs: ' "$skips")
	if [ "$needs" -gt 0 ] && [ "$VALET_TEST_STRICT" = 1 ]; then
		echo "FAILED: $needs test(s) skipped for want of what \`make test\` provides" \
			"(root, PostgreSQL, deps.sh --test); VALET_TEST_STRICT=0 only reports them"
		failed=$((failed + needs))
	fi
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
