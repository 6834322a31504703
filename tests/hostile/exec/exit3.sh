#!/bin/sh
# Exec task that fails with a non-zero exit status and a message on stderr:
# failure_reason must be "exited with status 3: bad thing happened".
echo 'bad thing happened' >&2
exit 3
