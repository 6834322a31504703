#!/bin/sh
# Exec task that reports a failure the documented way: {"error": "..."} on
# stdout, exit 0. The job must become FAILED with exactly that message.
cat >/dev/null
echo '{"error":"exec task failed on purpose"}'
