#!/bin/sh
# Exec task run twice in one worker slot: "leave MARKER" leaves what a job
# could hand on to the next one - a file in /tmp, SysV IPC objects (should
# the sandbox let it make them) and a background process in a session of
# its own, `sleep MARKER`; "look" reports what it sees of such things. Both
# report their namespaces.
ns() {
	for n in pid mnt ipc uts; do
		printf '%s ' "$(readlink /proc/self/ns/$n)"
	done
}
if [ "$1" = leave ]; then
	if echo left >/tmp/left-by-an-earlier-job; then wrote=true; else wrote=false; fi
	ipcmk -M 4096 >/dev/null 2>&1
	ipcmk -Q >/dev/null 2>&1
	setsid sleep "$2" </dev/null >/dev/null 2>&1 &
	sleep 0.1
	printf '{"wrote":%s,"ns":"%s"}\n' "$wrote" "$(ns)"
	exit 0
fi
tmp=$(ls -A /tmp | tr '\n' ' ')
ipc=$(cat /proc/sysvipc/shm /proc/sysvipc/msg /proc/sysvipc/sem | grep -cv '^ *key')
comms=
for f in /proc/[0-9]*/comm; do
	read -r c <"$f" && comms="$comms$c "
done
printf '{"tmp":"%s","ipc":%d,"comms":"%s","ns":"%s"}\n' "$tmp" "$ipc" "$comms" "$(ns)"
