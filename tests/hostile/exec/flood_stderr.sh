#!/bin/sh
# Exec task that floods stderr forever: must end with the output limit.
exec yes >&2
