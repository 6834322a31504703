#!/bin/sh
# Exec task that reports the fds open in a freshly exec'd program. ls opens
# one directory fd itself, so a clean sandbox shows exactly "0 1 2 3".
fds=$(ls /proc/self/fd | tr '\n' ' ')
printf '{"fds":"%s"}\n' "$fds"
