#!/bin/sh
# Exec task that floods stdout forever: must end with the output limit.
exec yes
