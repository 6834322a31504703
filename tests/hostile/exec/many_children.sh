#!/bin/sh
# Exec task that starts many sleeping children (bounded: 200), then sleeps
# itself until its deadline. The children are started by a subshell, which
# dies when a fork fails under the process limit and leaves the children it
# made to be reparented; the main program goes on regardless. At the
# deadline the job must be killed and every child must be gone. $1 is a
# unique sleep length used as a pgrep marker.
(
	i=0
	while [ "$i" -lt 200 ]; do
		sleep "${1:-100}" &
		i=$((i + 1))
	done
	wait
) >/dev/null 2>&1
exec sleep "${1:-100}"
