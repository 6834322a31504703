#!/bin/sh
# Run valet's libFuzzer harnesses ($BUILD/fuzz/fuzz_<target>, built by
# `make fuzz-build`) on their corpora (tests/fuzz/corpus/<target>).
#
#   tests/fuzz/fuzz.sh [-t SECONDS] [-m] [TARGET...]
#   tests/fuzz/fuzz.sh check      # can $FUZZ_CC build a harness? (make deps-test)
#
# For each target (default: every harness in $BUILD/fuzz), the whole corpus
# is first replayed input by input; then, unless SECONDS is 0, the harness
# fuzzes for SECONDS seconds from the corpus (libFuzzer -max_total_time,
# with tests/fuzz/<target>.dict when there is one). The inputs it finds go
# to $FUZZ_NEW/<target>, never into the repository; with -m (FUZZ_MERGE=1)
# those that add coverage are merged into the corpus afterwards (libFuzzer
# -merge=1: files named by their SHA-1). A crash, a sanitizer report, a
# broken contract (the harnesses abort), a leak, an input that runs over
# 10 s or 2 GB is a failure: the input is kept in $BUILD/fuzz/crashes/<target>/
# and its path is printed with the command that replays it; the libFuzzer
# log is $BUILD/fuzz/logs/<target>.log.
#
# One line per target: "fuzz/<target>: ok (...)" with the runs, exec/s and
# coverage, or "fuzz/<target>: FAILED (...)". The exit status is non-zero
# when any target failed. One harness runs at a time (one core).
#
# Environment: BUILD (default build), FUZZ_TIME (seconds when -t is not
# given, default 300), FUZZ_MERGE (1 = -m), FUZZ_NEW (default
# $BUILD/fuzz/new), FUZZ_FLAGS (more libFuzzer flags), FUZZ_CC (check only,
# default clang).
set -u

cd "$(dirname "$0")/../.." || exit 2
BUILD=${BUILD:-build}
seconds=${FUZZ_TIME:-300}
merge=${FUZZ_MERGE:-0}

if [ "${1:-}" = check ]; then
	dir=$(mktemp -d "${TMPDIR:-/tmp}/valet-fuzz-check.XXXXXX") || exit 2
	printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return 0; }' >"$dir/t.c"
	${FUZZ_CC:-clang} -fsanitize=fuzzer,address,undefined -o "$dir/t" "$dir/t.c" \
		>/dev/null 2>&1
	rc=$?
	rm -rf "$dir"
	exit $rc
fi

while getopts t:m opt; do
	case $opt in
	t) seconds=$OPTARG ;;
	m) merge=1 ;;
	*) echo "usage: $0 [-t SECONDS] [-m] [TARGET...] | $0 check" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
case $seconds in
'' | *[!0-9]*) echo "fuzz.sh: -t/FUZZ_TIME must be a number of seconds" >&2; exit 2 ;;
esac

# The sanitizers' defaults, whatever the caller's (tests/run_tests.sh
# sets options for the daemon that would keep ASan from seeing crashes).
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1

FUZZ_NEW=${FUZZ_NEW:-$BUILD/fuzz/new}
if [ $# -eq 0 ]; then
	for bin in "$BUILD"/fuzz/fuzz_*; do
		[ -x "$bin" ] && set -- "$@" "${bin##*/fuzz_}"
	done
	if [ $# -eq 0 ]; then
		echo "fuzz.sh: no harness in $BUILD/fuzz (make fuzz-build)" >&2
		exit 2
	fi
fi

# "stat::average_exec_per_sec: 1234" -> 1234
fuzz_stat() {
	sed -n "s/^stat::$1: *\([0-9]*\).*/\1/p" "$log" | tail -n 1
}

# The input libFuzzer kept for a failure, from its log.
reproducer() {
	sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1
}

failed=0
for target in "$@"; do
	bin=$BUILD/fuzz/fuzz_$target
	corpus=tests/fuzz/corpus/$target
	new=$FUZZ_NEW/$target
	crashes=$BUILD/fuzz/crashes/$target
	log=$BUILD/fuzz/logs/$target.log
	if [ ! -x "$bin" ] || [ ! -d "$corpus" ]; then
		echo "fuzz/$target: FAILED (no harness $bin or no corpus $corpus)"
		failed=$((failed + 1))
		continue
	fi
	mkdir -p "$new" "$crashes" "${log%/*}"
	dict=""
	[ -f "tests/fuzz/$target.dict" ] && dict="-dict=tests/fuzz/$target.dict"
	ninputs=$(find "$corpus" -type f | wc -l)

	# 1. Replay: every input of the corpus once, by name.
	# shellcheck disable=SC2046 # the corpus' file names have no spaces
	if ! "$bin" -artifact_prefix="$crashes/" $(find "$corpus" -type f | sort) >"$log" 2>&1; then
		failing=$(sed -n 's/^Running: //p' "$log" | tail -n 1)
		tail -n 40 "$log"
		echo "fuzz/$target: FAILED (corpus input $failing; replay: $bin $failing)"
		failed=$((failed + 1))
		continue
	fi
	if [ "$seconds" -eq 0 ]; then
		echo "fuzz/$target: ok ($ninputs corpus inputs replayed)"
		continue
	fi

	# 2. Fuzz from the corpus; new inputs go to $new (the first directory).
	start=$(date +%s)
	# shellcheck disable=SC2086 # $dict and $FUZZ_FLAGS are words or nothing
	timeout $((seconds + 300)) "$bin" -max_total_time="$seconds" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/" $dict \
		${FUZZ_FLAGS:-} "$new" "$corpus" >"$log" 2>&1
	rc=$?
	elapsed=$(($(date +%s) - start))
	if [ "$rc" -ne 0 ]; then
		unit=$(reproducer)
		grep -B2 -A30 -m1 -E '^==[0-9]+==|runtime error|contract broken|ERROR: libFuzzer' \
			"$log" | head -n 60
		if [ -n "$unit" ]; then
			echo "fuzz/$target: FAILED after ${elapsed}s (exit status $rc; reproducer $unit;" \
				"replay: $bin $unit)"
		else
			echo "fuzz/$target: FAILED after ${elapsed}s (exit status $rc; see $log)"
		fi
		failed=$((failed + 1))
		continue
	fi
	cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)
	added=""
	if [ "$merge" = 1 ]; then
		before=$(find "$corpus" -type f | wc -l)
		if ! "$bin" -merge=1 "$corpus" "$new" >>"$log" 2>&1; then
			echo "fuzz/$target: FAILED (merge into $corpus; see $log)"
			failed=$((failed + 1))
			continue
		fi
		added=", $(($(find "$corpus" -type f | wc -l) - before)) merged into $corpus"
	fi
	echo "fuzz/$target: ok ($ninputs corpus inputs, ${elapsed}s: $(fuzz_stat number_of_executed_units)" \
		"runs, $(fuzz_stat average_exec_per_sec) exec/s, $cov, $(fuzz_stat new_units_added) new" \
		"inputs in $new$added, peak RSS $(fuzz_stat peak_rss_mb) MB)"
done
[ "$failed" -eq 0 ]
