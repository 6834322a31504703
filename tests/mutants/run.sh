#!/bin/sh
# Mutation tests: does the suite fail when a promise breaks?
#
# Each tests/mutants/NAME.patch is one small mutation of the tree (a unified
# diff, `patch -p1`) that breaks one promise, with a header before the diff
# that patch and git apply ignore:
#
#   promise: what the mutation breaks, in one sentence
#   tests: the tests that must catch it, cheapest first
#   ci: yes                  (in the CI subset, `make mutants-ci`)
#
# A test is a cmocka binary, test_x (all its tests) or test_x:PATTERN (the
# tests whose names match, cmocka's * and ? wildcards: for a binary whose
# main() passes VALET_TEST_FILTER to cmocka_set_test_filter(), as cmocka 1.1
# filters only from code), or an integration test as run.py takes it: a
# module, module.Class or module.Class.test_name (tests/integration or
# tests/hostile), with @postgres or @memory for its store.
#
# This script copies the tree once (the files git knows, as they are in the
# working tree) into a scratch directory under build/ (not under /tmp,
# whose directories jobs get bound into their own /tmp), builds it once, and then for each
# mutant: applies the patch, rebuilds what changed, runs the named tests one
# after the other until one fails, and reverts the patch. A mutant is
#   CAUGHT  a named test failed (or hung: killed at MUTANTS_TIMEOUT)
#   MISSED  every named test passed: a gap in the suite
#   BROKEN  the patch does not apply, the tree does not build, a test
#           name does not resolve or a filter runs no test: the patch must
#           be brought up to date
# It prints a table (mutant, result, seconds, tests, promise) and a summary
# line; the exit status is non-zero when a mutant is MISSED or BROKEN. The
# logs of MISSED and BROKEN mutants are kept (their directory is printed).
#
# A throwaway PostgreSQL server (tests/pg_tmp.sh) serves every test, unless
# the caller brings VALET_TEST_DATABASE_URL (and VALET_TEST_PG_DIR).
#
# Environment: MUTANTS="a b" (run these, by name), MUTANTS_SET=ci (only the
# CI subset; default all), MUTANTS_TIMEOUT (seconds per test, default 600),
# MUTANTS_BASELINE=1 (first run each mutant's tests on the unmutated tree:
# a failure there makes the mutant BROKEN, as its CAUGHT would prove
# nothing), MUTANTS_JOBS (make -j, default 2), MUTANTS_LOGS=DIR (write
# every mutant's log there and keep it).
#
# To add a mutant: break the promise in your tree, `git diff > 
# tests/mutants/NAME.patch`, restore the tree, write the header at the top of
# the patch, and run `MUTANTS=NAME make mutants`.
set -u

cd "$(dirname "$0")/../.." || exit 2
top=$(pwd)
dir=$top/tests/mutants
set_=${MUTANTS_SET:-all}
tmo=${MUTANTS_TIMEOUT:-600}
jobs=${MUTANTS_JOBS:-2}

case "$set_" in
all | ci) ;;
*)
	echo "mutants: MUTANTS_SET is all or ci, not '$set_'" >&2
	exit 2
	;;
esac

# field FILE KEY: the value of "KEY: value" in the patch's header.
field() {
	sed -n -e '/^diff /q' -e '/^--- /q' -e "s/^$2:[[:space:]]*//p" "$1" | head -n 1
}

names=""
if [ -n "${MUTANTS:-}" ]; then
	names=$MUTANTS
else
	for p in "$dir"/*.patch; do
		[ -f "$p" ] || continue
		n=$(basename "$p" .patch)
		if [ "$set_" = ci ] && [ "$(field "$p" ci)" != yes ]; then
			continue
		fi
		names="$names $n"
	done
fi
if [ -z "$names" ]; then
	echo "mutants: no mutants in $dir" >&2
	exit 2
fi

# The scratch tree must be reachable by the task users (exec tasks' programs).
mkdir -p build || exit 2
scratch=$(mktemp -d "$top/build/mutants.XXXXXX") && chmod 755 "$scratch" || exit 2
keep_logs=0
if [ -n "${MUTANTS_LOGS:-}" ]; then
	logs=$MUTANTS_LOGS
	mkdir -p "$logs" || exit 2
	keep_logs=2
else
	logs=$(mktemp -d "${TMPDIR:-/tmp}/valet-mutants-logs.XXXXXX") || exit 2
fi
table=$logs/table
: >"$table"
pg_dir=""

cleanup() {
	if [ -n "$pg_dir" ]; then
		tests/pg_tmp.sh stop "$pg_dir" >/dev/null 2>&1 ||
			echo "mutants: could not stop the test server in $pg_dir" >&2
	fi
	rm -rf "$scratch"
	if [ "$keep_logs" -eq 0 ]; then
		rm -rf "$logs"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The scratch copy: what git knows (tracked files, and untracked ones that
# are not ignored), as in the working tree; without git, everything but build/.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard |
		tar --null --ignore-failed-read -cf - -T - 2>/dev/null | tar -xf - -C "$scratch" ||
		exit 2
else
	tar --exclude=./build -cf - . | tar -xf - -C "$scratch" || exit 2
fi

# BUILD and the flags are this script's: a caller's BUILD (make test's) must
# not point the scratch tree's make elsewhere.
smake() {
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$scratch" -j"$jobs" BUILD=build WERROR=0 \
		"$@"
}

start=$(date +%s)
echo "mutants: building a scratch copy in $scratch"
if ! smake check-build >"$logs/build.log" 2>&1; then
	tail -n 30 "$logs/build.log"
	echo "mutants: the unmutated tree does not build"
	keep_logs=1
	exit 1
fi

if [ -z "${VALET_TEST_DATABASE_URL:-}" ]; then
	pg_dir=$(mktemp -d /tmp/valet-pg.XXXXXX) || exit 2
	if url=$(tests/pg_tmp.sh start "$pg_dir" 2>"$logs/pg.log"); then
		VALET_TEST_DATABASE_URL=$url
		VALET_TEST_PG_DIR=$pg_dir
		export VALET_TEST_DATABASE_URL VALET_TEST_PG_DIR
	else
		cat "$logs/pg.log"
		echo "mutants: could not start a PostgreSQL test server"
		rm -rf "$pg_dir"
		pg_dir=""
		keep_logs=1
		exit 1
	fi
fi
export ASAN_OPTIONS=handle_segv=0:handle_abort=0:handle_sigfpe=0:handle_sigbus=0:handle_sigill=0

# resolves TEST: 0 when the test exists (a cmocka binary, with a filter only
# if it takes one, or a name run.py loads).
resolves() {
	rt=${1%@*}
	case "$rt" in
	*:*)
		# The filter may be read by a harness header the file includes
		# (spawner_run.h, sbx_filter_run.h, ...).
		src=$scratch/tests/unit/${rt%%:*}.c
		[ -f "$src" ] || return 1
		grep -qs VALET_TEST_FILTER "$src" $(sed -n 's|^#include "\([^"/]*\.h\)"$|'"$scratch"'/tests/unit/\1|p' "$src")
		return
		;;
	esac
	if [ -f "$scratch/tests/unit/$rt.c" ]; then
		return 0
	fi
	(cd "$scratch" && python3 -c '
import sys, unittest
sys.path[:0] = ["tests/integration", "tests/hostile"]
s = unittest.defaultTestLoader.loadTestsFromName(sys.argv[1])
sys.exit(0 if s.countTestCases() > 0 else 1)' "$rt") >/dev/null 2>&1
}

# run_test TEST LOG: 0 when TEST passed, 1 when it failed, 2 when it hung,
# 3 when a filter ran no test.
run_test() {
	rt=${1%@*}
	store=""
	case "$1" in
	*@*) store=${1##*@} ;;
	esac
	filter=""
	case "$rt" in
	*:*)
		filter=${rt#*:}
		rt=${rt%%:*}
		;;
	esac
	if [ -f "$scratch/tests/unit/$rt.c" ]; then
		(cd "$scratch" && if [ -n "$filter" ]; then export VALET_TEST_FILTER="$filter"; fi &&
			timeout -k 10 "$tmo" "build/tests/$rt") >"$logs/cmocka.out" 2>&1
		rc=$?
		cat "$logs/cmocka.out" >>"$2"
		if [ "$rc" -eq 0 ] && grep -q '^\[  PASSED  \] 0 test(s)' "$logs/cmocka.out"; then
			return 3
		fi
	else
		# shellcheck disable=SC2086 # ${store:+...} is one word or nothing
		(cd "$scratch" && env BUILD=build VALET_TEST_TIMEOUT="$tmo" ${store:+VALET_TEST_STORE=$store} \
			timeout -k 10 $((tmo + 30)) python3 tests/integration/run.py "$rt") >>"$2" 2>&1
		rc=$?
	fi
	if [ "$rc" -eq 0 ]; then
		return 0
	elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] || [ "$rc" -eq 3 ]; then
		return 2
	fi
	return 1
}

# build_for TESTS: make what the tests need.
build_for() {
	targets="all build/tests/hostile.so build/tests/hostile_exec"
	for rt in $1; do
		rt=${rt%@*}
		rt=${rt%%:*}
		if [ -f "$scratch/tests/unit/$rt.c" ]; then
			targets="$targets build/tests/$rt"
		fi
	done
	# shellcheck disable=SC2086 # a list of targets
	smake $targets
}

caught=0
missed=0
broken=0
total=0
for n in $names; do
	total=$((total + 1))
	p=$dir/$n.patch
	log=$logs/$n.log
	t0=$(date +%s)
	result=BROKEN
	why=""
	promise=""
	tests=""
	if [ ! -f "$p" ]; then
		why="no such patch"
	else
		promise=$(field "$p" promise)
		tests=$(field "$p" tests)
	fi
	if [ -z "$why" ] && { [ -z "$promise" ] || [ -z "$tests" ]; }; then
		why="header without promise: or tests:"
	fi
	if [ -z "$why" ]; then
		for t in $tests; do
			if ! resolves "$t"; then
				why="no test $t"
				break
			fi
		done
	fi
	if [ -z "$why" ] && [ "${MUTANTS_BASELINE:-0}" = 1 ]; then
		if ! build_for "$tests" >>"$log" 2>&1; then
			why="the unmutated tree does not build"
		else
			for t in $tests; do
				echo "=== baseline: $t" >>"$log"
				run_test "$t" "$log"
				case $? in
				0) ;;
				3)
					why="$t runs no test"
					break
					;;
				*)
					why="$t fails without the mutant"
					break
					;;
				esac
			done
		fi
	fi
	applied=0
	if [ -z "$why" ]; then
		if (cd "$scratch" && patch -p1 --batch --forward --fuzz=0 --dry-run) <"$p" >>"$log" 2>&1 &&
			(cd "$scratch" && patch -p1 --batch --forward --fuzz=0) <"$p" >>"$log" 2>&1; then
			applied=1
		else
			why="the patch does not apply"
		fi
	fi
	if [ -z "$why" ] && ! build_for "$tests" >>"$log" 2>&1; then
		why="does not build"
	fi
	if [ -z "$why" ]; then
		result=MISSED
		for t in $tests; do
			echo "=== $t" >>"$log"
			run_test "$t" "$log"
			case $? in
			1)
				result=CAUGHT
				why="by $t"
				break
				;;
			2)
				result=CAUGHT
				why="by $t (hung, killed)"
				break
				;;
			3)
				result=BROKEN
				why="$t runs no test"
				break
				;;
			esac
		done
	fi
	if [ "$applied" -eq 1 ] && ! (cd "$scratch" && patch -p1 --batch -R) <"$p" >>"$log" 2>&1; then
		echo "mutants: $n: could not revert the patch; the scratch tree is spoiled" >&2
		keep_logs=1
		exit 1
	fi
	secs=$(($(date +%s) - t0))
	case $result in
	CAUGHT) caught=$((caught + 1)) ;;
	MISSED) missed=$((missed + 1)) ;;
	BROKEN) broken=$((broken + 1)) ;;
	esac
	if [ "$result" != CAUGHT ] && [ "$keep_logs" -eq 0 ]; then
		keep_logs=1
	fi
	printf '%-32s %-7s %5ss  %s\n' "$n" "$result" "$secs" "${why:-}"
	printf '%s\t%s\t%s\t%s\t%s\n' "$n" "$result" "$secs" "$tests" "$promise" >>"$table"
done

echo
printf '| %s | %s | %s | %s | %s |\n' mutant result seconds tests promise
printf '|---|---|---|---|---|\n'
while IFS="	" read -r n result secs tests promise; do
	printf '| %s | %s | %s | %s | %s |\n' "$n" "$result" "$secs" "$tests" "$promise"
done <"$table"
echo
echo "mutants ($set_): $caught caught, $missed missed, $broken broken of $total" \
	"in $(($(date +%s) - start)) s"
if [ "$keep_logs" -ne 0 ]; then
	echo "mutants: logs in $logs"
fi
[ "$missed" -eq 0 ] && [ "$broken" -eq 0 ]
