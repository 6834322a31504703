#!/bin/sh
# Exec task that exits right after leaving a background child behind. The
# child keeps the stdout pipe open. $1 is a unique sleep length (e.g.
# 100.123456) that doubles as a marker the test finds with pgrep -f.
# With "setsid" as $2 the child is started in a new session (an orphan that
# a process-group kill would miss).
if [ "${2:-}" = setsid ]; then
	setsid sleep "${1:-100}" &
else
	sleep "${1:-100}" &
fi
# Give the child time to be in place (setsid done) before the main program
# exits.
sleep 0.1
echo '{}'
