#!/bin/sh
# Exec task that starts many sleeping children (bounded: 200) and waits for
# them. Some forks may fail under the process limit; either way the job must
# end at its deadline and every child must be gone afterwards. $1 is a unique
# sleep length used as a pgrep marker.
i=0
while [ "$i" -lt 200 ]; do
	sleep "${1:-100}" 2>/dev/null &
	i=$((i + 1))
done
wait
echo '{}'
